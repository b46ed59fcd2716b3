"""Rewriting image values in place of the text, checked, in linear time.

Only image values change; every other byte (comments, key order, quoting, indentation,
blank lines, anchors, document separators) is kept: new text is spliced into the
original string at the spans the parse gives (:mod:`imgpull.kube.splice`). An image
given through an alias is rewritten once, at its anchor (every use of that anchor is the
same value, so an anchor also used outside a container changes there too). The result is
parsed again and compared event by event with the original (:mod:`imgpull.kube.check`):
it must be the same document with only the image values changed, or nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgpull.errors import ConfigError, InvalidReferenceError
from imgpull.kube.check import check_rewrite
from imgpull.kube.find import Hit, Scan, Skipped, scan
from imgpull.kube.mapping import Mapper
from imgpull.kube.parse import DEFAULT_MAX_DEPTH
from imgpull.kube.positions import positions, reference_offset
from imgpull.kube.problems import at, reference_error
from imgpull.kube.sources import Source
from imgpull.kube.splice import Edit, replacement
from imgpull.kube.tree import Scalar

__all__ = ["Rewritten", "rewrite_source", "rewrite_text"]


@dataclass
class Rewritten:
    """One source rewritten: the new ``text`` (the old one, unchanged, when nothing
    changed), the ``edits`` made to the old text, each (old, new) image value, and what
    was skipped."""

    source: Source
    text: str
    edits: list[Edit] = field(default_factory=list)
    replacements: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.edits)


def _where(source: Source, hit: Hit) -> str:
    offset = reference_offset(source.text, hit.node, hit.start)
    line, column = positions(source.text, [offset])[offset]
    return at(source.label, line - 1, column - 1)


def _new_value(source: Source, hit: Hit, mapper: Mapper) -> str | None:
    old = hit.text
    try:
        return mapper(old)
    except InvalidReferenceError as exc:
        raise reference_error(source.label, _where(source, hit), old, exc) from None


def _edits(
    source: Source, found: Scan, mapper: Mapper, result: Rewritten
) -> dict[int, tuple[str, Scalar]]:
    """Fill ``result.edits``; returns {event ordinal: (new value, node)} for the check."""
    expected: dict[int, tuple[str, Scalar]] = {}
    done: set[int] = set()
    for hit in found.hits:
        node = hit.node
        if id(node) in done:
            continue
        done.add(id(node))
        new = _new_value(source, hit, mapper)
        if new is None or new == hit.text:
            continue
        edit = replacement(source.text, node, hit.start, new)
        if edit is None:
            raise ConfigError(
                f"{_where(source, hit)}: cannot rewrite an image written as a multi-line "
                "block scalar",
                "write the image on one line",
            )
        result.edits.append(edit)
        result.replacements.append((hit.text, new))
        expected[node.ordinal] = (node.value[: hit.start] + new, node)
    return expected


def _apply(text: str, edits: list[Edit]) -> str:
    pieces: list[str] = []
    position = 0
    for start, end, new in sorted(edits):
        pieces += (text[position:start], new)
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def rewrite_source(
    source: Source,
    mapper: Mapper,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    registries: frozenset[str] = frozenset(),
) -> Rewritten:
    """``source`` with each image value replaced by ``mapper(value)`` (None: keep).

    ConfigError naming ``FILE:LINE:COLUMN`` for a YAML syntax error or an image
    ``mapper`` finds invalid (InvalidReferenceError), and if the result would not be the
    same document with just the images changed. ``registries``: see :func:`scan`.
    """
    found = scan(source, max_depth=max_depth, registries=registries)
    result = Rewritten(source, source.text, skipped=found.skipped)
    expected = _edits(source, found, mapper, result)
    if result.edits:
        result.text = _apply(source.text, result.edits)
        check_rewrite(found.parsed, result.text, expected)
    return result


def rewrite_text(source: Source, mapper: Mapper, *, max_depth: int = DEFAULT_MAX_DEPTH) -> str:
    """``source.text`` with each image value replaced by ``mapper(value)`` (None: keep);
    the text itself when nothing changes. Errors as :func:`rewrite_source`."""
    return rewrite_source(source, mapper, max_depth=max_depth).text
