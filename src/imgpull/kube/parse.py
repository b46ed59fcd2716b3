"""YAML text -> a compact tree (:mod:`imgpull.kube.tree`), in linear time and memory.

PyYAML's event parser does the YAML (libyaml's ``CParser`` when PyYAML has it, about ten
times faster, else the pure-Python one; both give the same positions); the composition
here is iterative, so nesting is limited by ``max_depth`` (:data:`DEFAULT_MAX_DEPTH`, the
same for ``images`` and ``rewrite``) and not by Python's stack. Only events are read,
never Python objects constructed, so no tag can run code. Besides the tree, each event's
*signature* (a 64-bit hash of its kind, anchor, tag and value) is kept, 8 bytes an event,
so a rewrite can be checked by parsing only the new text (:mod:`imgpull.kube.check`).

libyaml skips a byte order mark without counting it, so text that starts with one is
given to it without the mark and every offset moved by one. Text libyaml refuses is
tried with the pure-Python parser too (they differ on rare line breaks such as U+2028)
when it is small or has such characters, and refused only if both refuse it.

libyaml refuses nesting deeper than 1000 levels itself; that is reported like
``max_depth`` (no second try), so the limit is 1000 at most with libyaml.

Anchors may be redefined (a later definition wins, as in kubectl); an alias to an
undefined anchor is an error.
"""

from __future__ import annotations

import contextlib
import gc
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import yaml  # type: ignore[import-untyped,unused-ignore]

from imgpull.kube.composer import Candidate, Composer, event_signature
from imgpull.kube.problems import LIBYAML_DEPTH_PROBLEM, syntax_error
from imgpull.kube.sources import Source
from imgpull.kube.tree import Node

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "Candidate",
    "Parsed",
    "compose",
    "event_signature",
    "events",
    "paused_gc",
]

#: The deepest nesting of collections accepted (Kubernetes objects are rarely 20 deep).
DEFAULT_MAX_DEPTH: Final = 1000
_FALLBACK_MAX_CHARS: Final = 1024 * 1024
_ODD_BREAKS_RE: Final = re.compile("[\x85\u2028\u2029]")
_FAST_LOADER: Final[Any] = getattr(yaml, "CSafeLoader", None)


@dataclass
class Parsed:
    """A composed input: its documents, event signatures and image-like strings."""

    source: Source
    documents: list[Node]
    signatures: array[int]
    candidates: list[Candidate] = field(default_factory=list)
    candidates_dropped: int = 0
    loader: Any = None
    offset: int = 0  # characters of the text the parser was not given (a BOM)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a parse makes objects by the million:
    its passes over a growing heap make composition several times slower (the few
    cycles recursive aliases make are collected once it runs again)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def events(loader_class: Any, text: str) -> Iterator[Callable[[], Any]]:
    """A function giving the next event of ``text``, None after the last; it raises
    yaml.YAMLError where the text is not YAML."""
    loader = loader_class(text)
    try:
        yield loader.get_event
    finally:
        loader.dispose()


def _compose_with(loader: Any, source: Source, max_depth: int) -> Parsed:
    text = source.text
    offset = 1 if loader is _FAST_LOADER and text.startswith("\ufeff") else 0
    composer = Composer(source.label, text, offset, max_depth)
    with paused_gc(), events(loader, text[offset:] if offset else text) as get_event:
        composer.run(get_event)
    return Parsed(
        source,
        composer.documents,
        composer.signatures,
        composer.candidates,
        composer.candidates_dropped,
        loader=loader,
        offset=offset,
    )


def _fallback_worth_trying(text: str) -> bool:
    return len(text) <= _FALLBACK_MAX_CHARS or bool(_ODD_BREAKS_RE.search(text))


def compose(source: Source, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Parsed:
    """All documents of ``source`` composed; ConfigError naming the position if it is
    not YAML, nested deeper than ``max_depth``, or a Helm template (TemplateError)."""
    text = source.text
    if _FAST_LOADER is None:
        loaders: tuple[Any, ...] = (yaml.SafeLoader,)
    elif _fallback_worth_trying(text):
        loaders = (_FAST_LOADER, yaml.SafeLoader)
    else:
        loaders = (_FAST_LOADER,)
    first_error: tuple[yaml.YAMLError, int, str] | None = None
    for loader in loaders:
        try:
            return _compose_with(loader, source, max_depth)
        except yaml.YAMLError as exc:
            if first_error is None:
                shift = 1 if loader is _FAST_LOADER and text.startswith("\ufeff") else 0
                first_error = (exc, shift, text[shift:])
            if getattr(exc, "problem", None) == LIBYAML_DEPTH_PROBLEM:
                break  # the same for any parser, and slow to find for the Python one
    assert first_error is not None
    error, shift, parsed_text = first_error
    raise syntax_error(source.label, parsed_text, error, column_shift=shift) from None
