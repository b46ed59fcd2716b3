"""Unified diffs of a rewrite, made from its edits in linear time.

``difflib`` compares whole files and can take quadratic time on large ones; a rewrite
knows exactly which spans it changed, so the diff is built from those: every changed
line is shown as removed and added, hunks have three lines of context and are joined
when at most six unchanged lines separate them, as ``diff -u`` and ``difflib`` do.
Lines end at ``\\n`` only; a last line without one is marked
``\\ No newline at end of file``.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from imgpull.kube.splice import Edit

__all__ = ["diff_edits", "unified_diff"]

CONTEXT: Final = 3


@dataclass
class _Block:
    """Whole lines ``text[start:end]`` that the edits in it change."""

    start: int
    end: int
    edits: list[Edit]


def _line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def _line_end(text: str, offset: int) -> int:
    """The end of the line holding ``offset`` (after its ``\\n``)."""
    newline = text.find("\n", offset)
    return len(text) if newline < 0 else newline + 1


def _blocks(text: str, edits: Sequence[Edit]) -> list[_Block]:
    """Edits grouped into runs of changed lines (adjacent lines form one run)."""
    blocks: list[_Block] = []
    for edit in sorted(edits):
        last = max(edit[0], edit[1] - 1)
        start, end = _line_start(text, edit[0]), _line_end(text, last)
        if text[last : last + 1] == "\n" and not edit[2].endswith("\n"):
            end = _line_end(text, end)  # the line break went: the next line joins in
        if blocks and start <= blocks[-1].end:
            blocks[-1].end = max(blocks[-1].end, end)
            blocks[-1].edits.append(edit)
        else:
            blocks.append(_Block(start, end, [edit]))
    return blocks


def _back(text: str, offset: int, lines: int) -> int:
    for _ in range(lines):
        if offset == 0:
            break
        offset = _line_start(text, offset - 1)
    return offset


def _forward(text: str, offset: int, lines: int) -> int:
    for _ in range(lines):
        if offset >= len(text):
            break
        offset = _line_end(text, offset)
    return offset


def _split(segment: str) -> list[str]:
    parts = segment.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _emit(prefix: str, lines: list[str], out: list[str]) -> None:
    for line in lines:
        out.append(
            prefix + line
            if line.endswith("\n")
            else f"{prefix}{line}\n\\ No newline at end of file\n"
        )


def _new_segment(text: str, block: _Block) -> str:
    pieces: list[str] = []
    position = block.start
    for start, end, new in block.edits:
        pieces += (text[position:start], new)
        position = end
    pieces.append(text[position : block.end])
    return "".join(pieces)


def _range(start: int, length: int) -> str:
    """A hunk range as ``difflib`` writes it (1-based start; empty ranges at start-1)."""
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _hunk(text: str, group: list[_Block], old_line: int, shift: int, out: list[str]) -> int:
    """Append one hunk; ``old_line``: 0-based line of its first context line. Returns
    how many lines the group adds (negative: removes)."""
    body: list[str] = []
    old_count = new_count = 0
    position = _back(text, group[0].start, CONTEXT)
    for block in group:
        context = _split(text[position : block.start])
        old, new = _split(text[block.start : block.end]), _split(_new_segment(text, block))
        _emit(" ", context, body)
        _emit("-", old, body)
        _emit("+", new, body)
        old_count += len(context) + len(old)
        new_count += len(context) + len(new)
        position = block.end
    tail = _split(text[position : _forward(text, position, CONTEXT)])
    _emit(" ", tail, body)
    old_count += len(tail)
    new_count += len(tail)
    out.append(f"@@ -{_range(old_line, old_count)} +{_range(old_line + shift, new_count)} @@\n")
    out.extend(body)
    return new_count - old_count


def diff_edits(name: str, text: str, edits: Sequence[Edit]) -> str:
    """The unified diff (``a/NAME``, ``b/NAME``) of applying ``edits`` to ``text``."""
    blocks = _blocks(text, edits)
    if not blocks:
        return ""
    groups: list[list[_Block]] = [[blocks[0]]]
    for block in blocks[1:]:
        gap = text.count("\n", groups[-1][-1].end, block.start)
        if gap <= 2 * CONTEXT:
            groups[-1].append(block)
        else:
            groups.append([block])
    out = [f"--- a/{name}\n", f"+++ b/{name}\n"]
    shift = line = counted_to = 0
    for group in groups:
        first = _back(text, group[0].start, CONTEXT)
        line += text.count("\n", counted_to, first)
        counted_to = first
        shift += _hunk(text, group, line, shift, out)
    return "".join(out)


def unified_diff(name: str, old: str, new: str) -> str:
    """A git-style unified diff of two texts (``difflib``; for small texts and tests)."""
    if old == new:
        return ""
    out = []
    for line in difflib.unified_diff(_split(old), _split(new), f"a/{name}", f"b/{name}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
