"""Events -> the compact tree of :mod:`imgpull.kube.tree`, iteratively, depth-limited.

Each event's signature goes to ``signatures`` (see :func:`event_signature`); string
values that look like they hold an image go to ``candidates``. Most events are keys and
values no rule looks at: :meth:`Composer.run` handles those inline, as that loop is where
the time goes on large inputs.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import yaml  # type: ignore[import-untyped,unused-ignore]

from imgpull.errors import ConfigError
from imgpull.kube.problems import TemplateError, at, too_deep
from imgpull.kube.tree import (
    ENTRIES_KEY,
    ENTRY_KEYS,
    KEY_TOKENS,
    MERGE,
    MERGE_TAG,
    SEQUENCE_KEYS,
    STR_TAG,
    VALUE_KEYS,
    Mapping,
    Node,
    Scalar,
    Sequence,
)

__all__ = ["CANDIDATE_RE", "MAX_CANDIDATES", "Candidate", "Composer", "event_signature"]

#: At most this many image-like strings are remembered per input (see ``Candidate``).
MAX_CANDIDATES: Final = 10_000
#: A registry host followed by a path: where an image reference may start in a string.
CANDIDATE_RE: Final = re.compile(
    r"(?<![\w.:/@\[\]-])(?:localhost|\[[0-9A-Fa-f:]+\]|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
    r"|[A-Za-z0-9-]+(?=:[0-9]))(?::[0-9]+)?/[\w./:@-]+",
    re.ASCII,
)
_RESOLVER: Final = yaml.SafeLoader("")  # only its resolve(): the same for both parsers
_SCALAR: Final = yaml.ScalarEvent
_ALIAS: Final = yaml.AliasEvent
_MAP_START: Final = yaml.MappingStartEvent
_SEQ_START: Final = yaml.SequenceStartEvent
_MAP_END: Final = yaml.MappingEndEvent
_SEQ_END: Final = yaml.SequenceEndEvent


def event_signature(event: Any) -> int:
    """What must stay equal when a rewrite leaves an event alone."""
    cls = event.__class__
    if cls is _SCALAR:
        return hash((event.anchor, event.tag, event.implicit, event.value))
    if cls is _MAP_START or cls is _SEQ_START:
        return hash((cls, event.anchor, event.tag, event.implicit))
    if cls is _ALIAS:
        return hash((cls, event.anchor))
    return hash(cls)


_END_SIGNATURES: Final = {_MAP_END: hash(_MAP_END), _SEQ_END: hash(_SEQ_END)}


@dataclass(frozen=True)
class Candidate:
    """A string value with something like ``host/path`` in it: an image ``sed`` would
    change. Those no rule finds are reported as skipped."""

    ordinal: int
    index: int
    value: str


def _resolved(event: Any) -> str:
    tag: str | None = event.tag
    if tag is None or tag == "!":
        return str(_RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit))
    return tag


def _token_tag(event: Any) -> str:
    """The resolved tag of a key that is one of KEY_TOKENS or ``<<``: the resolver is
    needed only for a plain ``<<`` (a merge key); the other tokens are plain words."""
    tag: str | None = event.tag
    if tag is not None and tag != "!":
        return tag
    if event.value == MERGE and event.implicit[0]:
        return MERGE_TAG
    return STR_TAG


def _key_token(value: str, tag: str) -> str | None:
    if tag == STR_TAG and value in KEY_TOKENS:
        return value
    return MERGE if tag == MERGE_TAG else None


class _Frame:
    """An open collection; its node is made at its end, or at its start if anchored."""

    __slots__ = (
        "expect_key",
        "flow",
        "is_key",
        "is_map",
        "items",
        "keep_entry",
        "keep_items",
        "key",
        "node",
    )

    def __init__(
        self,
        is_map: bool,
        flow: bool,
        key: str | None,
        keep_items: bool,
        keep_entry: bool,
        is_key: bool,
    ) -> None:
        self.is_map = is_map
        self.flow = flow
        self.key = key  # a mapping's pending key; a sequence's own key
        self.keep_items = keep_items  # a sequence whose scalar items are kept
        self.keep_entry = keep_entry  # a mapping whose ENTRY_KEYS values are kept
        self.is_key = is_key  # a collection that is a mapping key
        self.items: list[Any] = []  # a sequence's items; a mapping's flat pairs
        self.node: Mapping | Sequence | None = None
        self.expect_key = True


class Composer:
    """Builds the documents of one text from its events."""

    def __init__(self, label: str, text: str, offset: int, max_depth: int) -> None:
        self.label = label
        self.text = text
        self.offset = offset
        self.max_depth = max_depth
        self.documents: list[Node] = []
        self.signatures: array[int] = array("q")
        self.candidates: list[Candidate] = []
        self.candidates_dropped = 0
        self.frames: list[_Frame] = []
        self.anchors: dict[str, Node] = {}
        self.ordinal = 0

    def run(self, get_event: Callable[[], Any]) -> None:
        """Consume every event (``get_event`` gives None after the last).

        Long on purpose: this loop is where the time goes on large inputs, and a method
        call per event would cost as much as the rest of the work. Scalars nobody looks
        at (most of them) are settled inline; the others go to :meth:`scalar`.
        """
        append = self.signatures.append
        frames = self.frames
        ordinal = 0
        while (event := get_event()) is not None:
            cls = event.__class__
            if cls is _SCALAR:
                value = event.value
                append(hash((event.anchor, event.tag, event.implicit, value)))
                if frames and event.anchor is None:
                    frame = frames[-1]
                    if frame.is_map:
                        if frame.expect_key:
                            frame.expect_key = False
                            if value in KEY_TOKENS or value == MERGE:
                                frame.key = _key_token(value, _token_tag(event))
                            ordinal += 1
                            continue
                        key = frame.key
                        if "/" not in value and (
                            key not in VALUE_KEYS or (key in ENTRY_KEYS and not frame.keep_entry)
                        ):
                            frame.expect_key, frame.key = True, None
                            ordinal += 1
                            continue
                    elif not frame.keep_items and "/" not in value:
                        ordinal += 1
                        continue
                self.ordinal = ordinal
                self.scalar(event)
            elif cls is _MAP_END or cls is _SEQ_END:
                append(_END_SIGNATURES[cls])
                self.end()
            elif cls is _MAP_START or cls is _SEQ_START:
                append(hash((cls, event.anchor, event.tag, event.implicit)))
                self.ordinal = ordinal
                self.start(event, cls is _MAP_START)
            else:
                append(event_signature(event))
                self.ordinal = ordinal
                self.other(event)
            ordinal += 1

    def other(self, event: Any) -> None:
        """Aliases and document ends (anchors do not carry over to the next document)."""
        if event.__class__ is _ALIAS:
            self.alias(event)
        elif event.__class__ is yaml.DocumentEndEvent:
            self.anchors = {}

    def where(self, event: Any) -> str:
        mark = event.start_mark
        return at(self.label, mark.line, mark.column + (self.offset if mark.line == 0 else 0))

    def attach(self, node: Node | None) -> None:
        frames = self.frames
        if not frames:
            if node is not None and not isinstance(node, Scalar):
                self.documents.append(node)
            return
        frame = frames[-1]
        if frame.is_map:
            if node is not None:
                frame.items += (frame.key, node)
            frame.expect_key, frame.key = True, None
        elif node is not None:
            frame.items.append(node)

    def make_scalar(self, event: Any) -> Scalar:
        frames = self.frames
        return Scalar(
            event.value,
            _resolved(event),
            event.start_mark.index + self.offset,
            event.end_mark.index + self.offset,
            style=event.style or None,
            ordinal=self.ordinal,
            flow=bool(frames) and frames[-1].flow,
            anchor=event.anchor,
            raw_tag=event.tag,
        )

    def scalar(self, event: Any) -> None:
        """A scalar the inline path did not settle: a key with an anchor, a value that
        may be kept, or one with a ``/`` in it."""
        frame = self.frames[-1] if self.frames else None
        value: str = event.value
        if frame is not None and frame.is_map and frame.expect_key:
            if event.anchor is not None:
                self.anchors[event.anchor] = self.make_scalar(event)
            frame.key = _key_token(value, _resolved(event))
            frame.expect_key = False
            return
        key = frame.key if frame is not None and frame.is_map else None
        if "/" in value and key != "apiVersion" and CANDIDATE_RE.search(value):
            self.candidate(event)
        if frame is None:
            keep = False
        elif frame.is_map:
            keep = key in VALUE_KEYS and (key not in ENTRY_KEYS or frame.keep_entry)
        else:
            keep = frame.keep_items
        node = self.make_scalar(event) if keep or event.anchor is not None else None
        if node is not None and event.anchor is not None:
            self.anchors[event.anchor] = node
        self.attach(node)

    def candidate(self, event: Any) -> None:
        if len(self.candidates) >= MAX_CANDIDATES:
            self.candidates_dropped += 1
            return
        index = event.start_mark.index + self.offset
        self.candidates.append(Candidate(self.ordinal, index, event.value))

    def alias(self, event: Any) -> None:
        node = self.anchors.get(event.anchor)
        if node is None:
            raise ConfigError(
                f"{self.where(event)}: invalid YAML: found undefined alias {event.anchor!r}",
                "define the anchor (&NAME) before its alias (*NAME)",
            )
        frame = self.frames[-1] if self.frames else None
        if frame is not None and frame.is_map and frame.expect_key:
            if isinstance(node, Scalar):
                frame.key = _key_token(node.value, node.tag)
            frame.expect_key = False
            return
        self.attach(node)

    def _check_start(self, event: Any, is_map: bool) -> None:
        if len(self.frames) >= self.max_depth:
            raise too_deep(self.where(event), self.max_depth)
        if is_map and event.flow_style:
            index = event.start_mark.index + self.offset
            if self.text.startswith("{{", index):
                raise TemplateError(self.label)

    def start(self, event: Any, is_map: bool) -> None:
        frames = self.frames
        if len(frames) >= self.max_depth or (is_map and event.flow_style):
            self._check_start(event, is_map)
        anchored = event.anchor is not None
        flow = bool(event.flow_style)
        if not frames:
            frame = _Frame(is_map, flow, None, anchored, anchored, False)
        elif (parent := frames[-1]).is_map:
            is_key = parent.expect_key
            key = None if is_key else parent.key
            keep_items = anchored or key in SEQUENCE_KEYS
            frame = _Frame(is_map, flow or parent.flow, key, keep_items, anchored, is_key)
        else:
            keep_entry = anchored or parent.key == ENTRIES_KEY
            frame = _Frame(is_map, flow or parent.flow, None, anchored, keep_entry, False)
        if anchored:
            frame.node = Mapping(frame.items) if is_map else Sequence(frame.items)
            self.anchors[event.anchor] = frame.node
        frames.append(frame)

    def end(self) -> None:
        frames = self.frames
        frame = frames.pop()
        if frame.is_key:
            frames[-1].key, frames[-1].expect_key = None, False
            return
        node = frame.node
        if node is None and frame.items:
            node = Mapping(frame.items) if frame.is_map else Sequence(frame.items)
        self.attach(node)
