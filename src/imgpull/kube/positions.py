"""Offsets in the text -> what users read: 1-based line and column, and where a value
starts once its anchor and tag are skipped."""

from __future__ import annotations

from collections.abc import Iterable

from imgpull.kube.tree import Scalar

__all__ = ["positions", "reference_offset", "value_start"]


def positions(text: str, offsets: Iterable[int]) -> dict[int, tuple[int, int]]:
    """{offset: (line, column)}, both 1-based (columns count characters), found in one
    pass over ``text`` whatever the order of ``offsets``."""
    found: dict[int, tuple[int, int]] = {}
    line, previous = 0, 0
    for offset in sorted(set(offsets)):
        line += text.count("\n", previous, offset)
        previous = offset
        found[offset] = (line + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1)
    return found


def value_start(text: str, node: Scalar) -> int:
    """Where the scalar's own text starts: after its anchor and tag, if any.

    A node's start is at its properties (``&img !!str nginx``); they are separated from
    the value by spaces, line breaks and comments only.
    """
    index, end = node.index, node.end
    if text[index : index + 1] not in ("&", "!"):
        return index
    while index < end:
        char = text[index]
        if char in "&!":
            while index < end and text[index] not in " \t\r\n":
                index += 1
        elif char in " \t\r\n":
            index += 1
        elif char == "#":
            newline = text.find("\n", index, end)
            index = end if newline < 0 else newline
        else:
            break
    return index


def reference_offset(text: str, node: Scalar, start: int) -> int:
    """The offset of ``node.value[start:]`` in the text when the value before it is
    written as it reads (no escapes, no line folding), else of the value's start."""
    begin = value_start(text, node)
    if start == 0:
        return begin
    inner = begin + (1 if node.style in ("'", '"') else 0)
    return inner + start if text[inner : inner + start] == node.value[:start] else begin
