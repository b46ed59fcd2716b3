"""``imgpull rewrite``: many inputs, all or nothing (or ``keep_going``), shown or in place.

Every input is read and rewritten in memory before anything is written, so an error in
any input (YAML syntax, an invalid reference, an unreadable path) leaves every file
untouched -- unless ``keep_going``, where bad inputs are recorded and skipped. A diff is
made only when it is asked for (``show_diff``; never with ``in_place``), from the edits,
in linear time. In-place writes go to a temporary file beside the target, keep the
file's permission bits (and owner, where permitted), and replace it with ``os.replace``;
only changed files are written (a symbolic link is followed, its target rewritten).
Each file is replaced atomically; if writing one fails, the error names the files
already rewritten.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from imgpull.errors import ConfigError, UsageError
from imgpull.kube.diff import diff_edits
from imgpull.kube.find import Skipped
from imgpull.kube.mapping import make_mapper
from imgpull.kube.parse import DEFAULT_MAX_DEPTH
from imgpull.kube.problems import TemplateError
from imgpull.kube.rewriter import Rewritten, rewrite_source
from imgpull.kube.sources import DEFAULT_MAX_BYTES, STDIN, Failure, iter_sources
from imgpull.kube.write import write_atomic
from imgpull.naming import Renamer

__all__ = ["RewriteResult", "rewrite"]


@dataclass
class RewriteResult:
    """What :func:`rewrite` did or would do.

    ``diff``: unified diffs of the changed files (standard input excluded), in input
    order; empty with ``in_place`` or without ``show_diff``. ``changed``: names of the
    sources whose text changed (``-`` for standard input). ``text_for_stdin``: the
    rewritten standard input (even if unchanged), None without ``-``. ``replacements``:
    (old, new) image pairs applied, unique, in order of appearance; ``values_changed``
    counts every value changed. ``written``: files replaced (``in_place``).
    ``failures``: inputs skipped under ``keep_going``. ``skipped``: image-like strings
    left alone.
    """

    diff: str
    changed: list[str] = field(default_factory=list)
    text_for_stdin: str | None = None
    replacements: list[tuple[str, str]] = field(default_factory=list)
    values_changed: int = 0
    written: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def files_changed(self) -> list[str]:
        """``changed`` without standard input."""
        return [name for name in self.changed if name != STDIN]


@dataclass
class _Pending:
    """A changed file waiting to be written."""

    name: str
    path: str
    text: str


def _check_arguments(paths: Sequence[str], renamer: Renamer, in_place: bool) -> None:
    if not renamer:
        raise ConfigError(
            "nothing to rewrite to",
            "give --mirror SRC=DST (repeatable), --image-repository REPO or --to PREFIX",
        )
    if in_place and STDIN in paths:
        raise ConfigError(
            "standard input cannot be rewritten in place",
            "drop --in-place to print the rewritten text",
        )
    if STDIN in paths and len(paths) > 1:
        raise UsageError(
            "standard input cannot be rewritten together with files",
            "its rewritten text goes to standard output; rewrite the files in another run",
        )


def _record(
    item: Rewritten, result: RewriteResult, pending: list[_Pending] | None, show_diff: bool
) -> str:
    """Take what ``result`` needs from ``item`` (the old text is not kept); returns the
    item's diff."""
    source = item.source
    result.skipped.extend(item.skipped)
    if source.path is None:
        result.text_for_stdin = item.text
    if not item.changed:
        return ""
    result.changed.append(source.name)
    result.values_changed += len(item.edits)
    result.replacements.extend(item.replacements)
    if source.path is None:
        return ""
    if pending is not None:
        pending.append(_Pending(source.name, source.path, item.text))
    return diff_edits(source.name, source.text, item.edits) if show_diff else ""


def _write_all(pending: list[_Pending], result: RewriteResult, keep_going: bool) -> None:
    ready = []
    for item in pending:
        if os.path.isfile(item.path):
            ready.append(item)
            continue
        error = ConfigError(f"{item.name}: not a regular file; cannot rewrite in place")
        if not keep_going:
            raise error
        result.failures.append(Failure(item.name, error))
    for item in ready:
        try:
            write_atomic(item.path, item.text)
        except ConfigError as exc:
            if keep_going:
                result.failures.append(Failure(item.name, exc))
                continue
            done = ", ".join(result.written)
            hint = f"already rewritten: {done}" if done else "no file was changed"
            raise ConfigError(exc.message, hint) from None
        result.written.append(item.name)


def rewrite(
    paths: Sequence[str],
    stdin: IO[Any],
    *,
    mirrors: Mapping[str, str] | Sequence[str] = (),
    to: str | None = None,
    image_repository: str | None = None,
    renamer: Renamer | None = None,
    in_place: bool = False,
    keep_going: bool = False,
    show_diff: bool = True,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> RewriteResult:
    """Rewrite the images of every input under ``renamer`` (or the rules ``mirrors``,
    ``to`` and ``image_repository``; see :class:`imgpull.naming.Renamer`).

    ConfigError for invalid rules, a bad input (unless ``keep_going``), standard input
    with ``in_place`` or together with files, or a failed write.
    """
    rules = renamer or Renamer(mirrors=mirrors, to=to, image_repository=image_repository)
    _check_arguments(paths, rules, in_place)
    mapper = make_mapper(renamer=rules)
    result = RewriteResult("", failures=[])
    pending: list[_Pending] = []
    diffs: list[str] = []
    failures = result.failures if keep_going else None
    for source in iter_sources(paths, stdin, max_bytes=max_bytes, failures=failures):
        try:
            item = rewrite_source(
                source, mapper, max_depth=max_depth, registries=rules.source_registries
            )
        except ConfigError as exc:
            error = exc.for_command("rewrite") if isinstance(exc, TemplateError) else exc
            if not keep_going:
                raise error from None
            result.failures.append(Failure(source.label, error))
            continue
        diffs.append(
            _record(item, result, pending if in_place else None, show_diff and not in_place)
        )
    result.diff = "".join(diffs)
    result.replacements = list(dict.fromkeys(result.replacements))
    if in_place:
        _write_all(pending, result, keep_going)
    return result
