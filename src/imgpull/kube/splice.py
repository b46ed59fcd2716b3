"""The text that replaces an image in the source, keeping its quoting style.

Where the scalar is written as it reads (plain on one line, or quoted without escapes),
only the reference's own characters are replaced, so ``--flag=`` and the quotes stay as
they were. Otherwise the whole scalar is written again: a plain scalar stays plain when
the new value is safe as one (else it gets double quotes; in a flow collection a new
``:`` is quoted for the sake of older parsers unless the old value had one too),
single- and double-quoted ones keep their quotes, and a one-line ``|``/``>`` block
scalar keeps its header. A multi-line block scalar is not rewritten (None).
"""

from __future__ import annotations

import re
from typing import Final

import yaml  # type: ignore[import-untyped,unused-ignore]

from imgpull.kube.positions import value_start
from imgpull.kube.tree import STR_TAG, Scalar

__all__ = ["Edit", "replacement"]

#: (start, end, new text) of the source.
Edit = tuple[int, int, str]

_PLAIN_SAFE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", re.ASCII)
_INSIDE_PLAIN_RE: Final = re.compile(r"[A-Za-z0-9._/:@-]+", re.ASCII)
_RESOLVER: Final = yaml.SafeLoader("")


def _plain_ok(text: str, *, flow: bool, colon_ok: bool) -> bool:
    """Whether ``text`` reads back as the same plain string.

    In a flow collection ``a:b`` is plain for PyYAML and libyaml 0.2, but older parsers
    refuse it; it stays plain only if the original value already had a ``:``.
    """
    if not _PLAIN_SAFE_RE.fullmatch(text) or (flow and ":" in text and not colon_ok):
        return False
    return bool(_RESOLVER.resolve(yaml.ScalarNode, text, (True, False)) == STR_TAG)


def _double_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _render(node: Scalar, new: str, text: str, start: int) -> str | None:
    """The text for ``text[start:node.end]`` holding value ``new``."""
    style = node.style
    if style == "'":
        return "'" + new.replace("'", "''") + "'"
    if style in ("|", ">"):
        old = node.value.rstrip("\n")
        header, newline, body = text[start : node.end].partition("\n")
        if newline and "\n" not in old and body.strip() == old:
            return header + newline + body.replace(old, new, 1)
        return None
    if style is None and _plain_ok(new, flow=node.flow, colon_ok=":" in node.value):
        return new
    return _double_quoted(new)


def _inner_ok(node: Scalar, old: str, new: str) -> bool:
    """Whether ``new`` can replace ``old`` inside the scalar's text as it is."""
    if "\n" in new or "\\" in new or (node.style is not None and node.style in new):
        return False
    if node.style is not None:
        return True
    if not _INSIDE_PLAIN_RE.fullmatch(new):
        return False
    return not (node.flow and ":" in new and ":" not in old)


def replacement(text: str, node: Scalar, start: int, new_ref: str) -> Edit | None:
    """The edit that makes ``node.value[start:]`` read ``new_ref``; None if the scalar
    cannot be rewritten (a multi-line block scalar)."""
    begin = value_start(text, node)
    value = node.value
    quote = 1 if node.style in ("'", '"') else 0
    inner = begin + quote
    verbatim = node.style in (None, "'", '"') and node.end == inner + len(value) + quote
    verbatim = verbatim and text[inner : inner + len(value)] == value
    old_ref = value[start:]
    if verbatim and start > 0 and _inner_ok(node, old_ref, new_ref):
        return inner + start, inner + len(value), new_ref
    if verbatim and start == 0 and node.style is not None and _inner_ok(node, old_ref, new_ref):
        return inner, inner + len(value), new_ref
    rendered = _render(node, value[:start] + new_ref, text, begin)
    return None if rendered is None else (begin, node.end, rendered)
