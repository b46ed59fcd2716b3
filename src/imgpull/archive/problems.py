"""What can be wrong with an archive, said once: every problem becomes one ArchiveError
naming the archive, what is wrong and what to do."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

DAMAGED: Final = (
    "the archive is incomplete or damaged; create it again "
    "(imgpull pull, docker save, podman save or skopeo copy)"
)
NOT_AN_ARCHIVE: Final = (
    "give a tar written by imgpull pull, docker save, podman save or skopeo copy "
    "(docker-archive: or oci-archive:), or such an archive unpacked into a directory"
)
UNSAFE: Final = (
    "imgpull never follows paths outside an archive; this archive was not written by a "
    "container tool, do not load it anywhere"
)


class Problem(Exception):
    """Internal: what is wrong (turned into one ArchiveError with the archive's name)."""

    def __init__(self, what: str, hint: str = DAMAGED) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


class Missing(Problem):
    """A member that is not there at all (as opposed to one that is there but unusable)."""


@contextlib.contextmanager
def about(what: str) -> Iterator[None]:
    """Prefix problems raised inside with what was being read: ``layer 2 of image 1``."""
    try:
        yield
    except Problem as problem:
        problem.what = f"{what}: {problem.what}"
        raise
