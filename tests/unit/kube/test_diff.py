"""Diffs from edits: the same text difflib gives, in linear time."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgpull.kube import diff_edits, unified_diff


def apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    out, position = [], 0
    for start, end, new in sorted(edits):
        out += (text[position:start], new)
        position = end
    return "".join([*out, text[position:]])


@st.composite
def texts_and_edits(draw: st.DrawFn) -> tuple[str, list[tuple[int, int, str]]]:
    """Lines of distinct words (difflib then aligns as a rewrite does) and edits that
    replace a word, sometimes swallowing a line break."""
    count = draw(st.integers(1, 40))
    lines = [f"line {i} word{i}" for i in range(count)]
    text = "\n".join(lines) + draw(st.sampled_from(["", "\n"]))
    chosen = draw(st.lists(st.integers(0, count - 1), unique=True, max_size=count))
    edits = []
    for number in sorted(chosen):
        start = text.index(f"word{number}", sum(len(line) + 1 for line in lines[:number]))
        end = start + len(f"word{number}")
        if draw(st.booleans()) and end < len(text) and number + 1 not in chosen:
            end += 1  # join with the next line: the new text has fewer lines
        edits.append((start, end, f"NEW{number}"))
    return text, edits


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_and_edits())
def test_diff_from_edits_is_difflibs(case: tuple[str, list[tuple[int, int, str]]]) -> None:
    text, edits = case
    assert diff_edits("f.yaml", text, edits) == unified_diff("f.yaml", text, apply(text, edits))


def test_no_newline_at_end_and_first_and_last_lines() -> None:
    text = "a\nb\nc"
    assert diff_edits("x", text, [(4, 5, "C"), (0, 1, "A")]) == (
        "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n-a\n+A\n b\n-c\n\\ No newline at end of file\n"
        "+C\n\\ No newline at end of file\n"
    )
    assert diff_edits("x", text, []) == ""


def test_linear_on_large_texts() -> None:
    lines = [f"  - image: quay.io/org/app-{i}:v1" for i in range(200_000)]
    text = "\n".join(lines) + "\n"
    edits, offset = [], 0
    for i, line in enumerate(lines):
        if i % 3 == 0:
            start = offset + line.index("quay.io")
            edits.append((start, start + len("quay.io"), "q.local"))
        offset += len(line) + 1
    started = time.process_time()
    diff = diff_edits("big.yaml", text, edits)
    assert time.process_time() - started < 10  # a quadratic diff takes minutes here
    assert diff.count("\n+  - image: q.local/") == len(edits)
