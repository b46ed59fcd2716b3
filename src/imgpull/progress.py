"""Progress events. The library reports through a ``Reporter`` and never draws itself;
the CLI renders bars on a terminal and plain lines elsewhere. Every event comes from
``imgpull.transfer`` (blobs, manifests) or the operations (resolved images, warnings)."""

from __future__ import annotations

from imgpull.model import Descriptor, Platform


class Reporter:
    """Receives progress; every method is a no-op here. Called from worker threads."""

    def resolved(self, reference: str, digest: str, platform: Platform | None, kind: str) -> None:
        """A reference's manifest was found (and its platform picked from an index);
        ``kind`` says what it is when it is not a container image (an artifact type)."""

    def warning(self, text: str) -> None:
        """Something the user should know that does not stop the work."""

    def started(self, descriptor: Descriptor, action: str) -> None:
        """Bytes of a blob start moving: ``downloading``, ``uploading`` or ``copying``."""

    def skipped(self, descriptor: Descriptor, reason: str) -> None:
        """A blob needs no transfer: ``cached``, ``exists``, ``mounted from REPO``."""

    def progress(self, descriptor: Descriptor, count: int) -> None:
        """``count`` more bytes of a blob moved."""

    def restarted(self, descriptor: Descriptor) -> None:
        """A blob's transfer starts again from zero (wrong bytes from one endpoint)."""

    def finished(self, descriptor: Descriptor) -> None:
        """A blob is in the destination."""

    def stored(self, name: str, digest: str) -> None:
        """A manifest was stored under ``name``."""

    def writing(self, destination: str, total: int) -> None:
        """The archive is being written."""

    def close(self) -> None:
        """No more events will come."""


SILENT = Reporter()
