"""Progress events. The library reports through a ``Reporter`` and never draws itself;
the CLI renders bars on a terminal and plain lines elsewhere."""

from __future__ import annotations

from imgpull.model import Descriptor, Platform


class Reporter:
    """Receives progress; every method is a no-op here. Called from worker threads."""

    def resolved(self, reference: str, digest: str, platform: Platform | None) -> None:
        """A reference's manifest was found (and its platform picked from an index)."""

    def warning(self, text: str) -> None:
        """Something the user should know that does not stop the work."""

    def blob_started(self, descriptor: Descriptor, *, cached: bool, what: str) -> None:
        """A blob is about to be fetched (or was found in the cache)."""

    def blob_progress(self, descriptor: Descriptor, received: int) -> None:
        """More bytes of a blob arrived; negative after a restart from zero."""

    def blob_done(self, descriptor: Descriptor) -> None:
        """A blob was verified and stored."""

    def writing(self, destination: str, total: int) -> None:
        """The archive is being written."""

    def close(self) -> None:
        """No more events will come."""


SILENT = Reporter()
