"""The library's face for Kubernetes YAML: ``imgpull.images`` and ``imgpull.rewrite``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from imgpull.errors import UsageError
from imgpull.kube.batch import RewriteResult, rewrite
from imgpull.kube.listing import list_images
from imgpull.kube.sources import read_sources


def _paths(paths: Sequence[str] | str) -> list[str]:
    if isinstance(paths, str):
        return [paths]
    if not all(isinstance(p, str) for p in paths):
        raise UsageError("paths must be strings: files, directories or '-'")
    return list(paths)


def list_paths(
    paths: Sequence[str] | str, *, normalized: bool = False, stdin: IO[Any] | None = None
) -> list[str]:
    """The image references the YAML at ``paths`` uses (files, directories, ``-`` for
    ``stdin``), unique, in order of first appearance."""
    sources = read_sources(_paths(paths), stdin or sys.stdin)
    return list_images(sources, normalized=normalized)


def rewrite_paths(
    paths: Sequence[str] | str,
    *,
    mirrors: Mapping[str, str] | Sequence[str] = (),
    to: str | None = None,
    image_repository: str | None = None,
    in_place: bool = False,
    stdin: IO[Any] | None = None,
) -> RewriteResult:
    """Point the images of the YAML at ``paths`` elsewhere (see ``imgpull rewrite``);
    the result holds the diff, or with ``in_place`` the files written."""
    return rewrite(
        _paths(paths),
        stdin or sys.stdin,
        mirrors=mirrors,
        to=to,
        image_repository=image_repository,
        in_place=in_place,
    )
