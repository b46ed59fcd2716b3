"""The compact tree that :mod:`imgpull.kube.parse` builds: only what finding images needs.

PyYAML's own nodes cost about 60 times the text (a dict and two marks per scalar); these
keep, per document, the collections and only the scalars that can matter: mapping
values under the keys in :data:`VALUE_KEYS`, items of ``args``/``command`` sequences and
anchored scalars. Mapping keys are kept as a *token*: the key itself when it is one of
:data:`KEY_TOKENS`, :data:`MERGE` for a ``<<`` merge key, else None; pairs whose value was
dropped are not kept, nor are collections left empty. Composition is iterative and
aliases share nodes, so deep nesting and alias "bombs" cost no more than the text.
"""

from __future__ import annotations

from typing import Final, TypeAlias, cast

__all__ = [
    "CONTAINER_KEYS",
    "ENTRIES_KEY",
    "ENTRY_KEYS",
    "KEY_TOKENS",
    "MERGE",
    "SEQUENCE_KEYS",
    "STR_TAG",
    "VALUE_KEYS",
    "Mapping",
    "Node",
    "Scalar",
    "Sequence",
    "get",
    "get_str",
]

STR_TAG: Final = "tag:yaml.org,2002:str"
MERGE_TAG: Final = "tag:yaml.org,2002:merge"
#: The key token of a ``<<`` merge key.
MERGE: Final = "<<"
#: Keys whose sequence entries are containers.
CONTAINER_KEYS: Final = frozenset({"containers", "initContainers", "ephemeralContainers"})
#: Keys whose sequences keep their scalar items (container arguments).
SEQUENCE_KEYS: Final = frozenset({"args", "command"})
#: Keys whose scalar values are kept (those of ENTRY_KEYS only in ``env`` entries).
VALUE_KEYS: Final = frozenset(
    {"image", "name", "value", "apiVersion", "kind", "baseImage", "version", "tag", "sha"}
)
#: The sequence whose mapping entries keep their ENTRY_KEYS values.
ENTRIES_KEY: Final = "env"
ENTRY_KEYS: Final = frozenset({"name", "value"})
#: Every key the rules look at.
KEY_TOKENS: Final = CONTAINER_KEYS | SEQUENCE_KEYS | VALUE_KEYS | {"env", "spec", "thanos"}


class Scalar:
    """A kept scalar: its value, resolved tag, and where it is.

    ``index``/``end``: offsets of the node in the text (``index`` at its anchor or tag, if
    it has any); ``ordinal``: the number of its event in the event stream, which the
    rewrite check compares; ``flow``: inside a flow collection; ``anchor`` and
    ``raw_tag`` as written.
    """

    __slots__ = ("anchor", "end", "flow", "index", "ordinal", "raw_tag", "style", "tag", "value")

    def __init__(
        self,
        value: str,
        tag: str,
        index: int,
        end: int,
        *,
        style: str | None,
        ordinal: int,
        flow: bool,
        anchor: str | None,
        raw_tag: str | None,
    ) -> None:
        self.value = value
        self.tag = tag
        self.index = index
        self.end = end
        self.style = style
        self.ordinal = ordinal
        self.flow = flow
        self.anchor = anchor
        self.raw_tag = raw_tag

    @property
    def text(self) -> str | None:
        """The value if it is a non-empty string, else None."""
        return self.value if self.tag == STR_TAG and self.value else None


class Sequence:
    """A sequence's kept items."""

    __slots__ = ("items",)

    def __init__(self, items: list[Node] | None = None) -> None:
        self.items: list[Node] = [] if items is None else items


class Mapping:
    """A mapping's kept pairs, flat: ``[key token, value, key token, value, ...]``."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[str | Node | None] | None = None) -> None:
        self.pairs: list[str | Node | None] = [] if pairs is None else pairs

    def items(self) -> list[tuple[str | None, Node]]:
        """(key token, value) pairs."""
        pairs = self.pairs
        return [
            (cast(str | None, pairs[i]), cast(Node, pairs[i + 1])) for i in range(0, len(pairs), 2)
        ]


Node: TypeAlias = Scalar | Sequence | Mapping


def get(node: Mapping, key: str) -> Node | None:
    """The value of the first ``key`` in ``node`` (merge keys not followed)."""
    pairs = node.pairs
    for i in range(0, len(pairs), 2):
        if pairs[i] == key:
            return cast(Node, pairs[i + 1])
    return None


def get_str(node: Mapping, key: str) -> Scalar | None:
    """The value of ``key`` if it is a non-empty string scalar."""
    value = get(node, key)
    return value if isinstance(value, Scalar) and value.text is not None else None
