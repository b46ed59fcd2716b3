"""A content-addressed blob store: verified blobs only, partial downloads kept for resume.

Layout under the root: ``blobs/sha256/<hex>`` for complete, verified blobs and
``partial/sha256-<hex>`` for downloads in progress. A blob enters ``blobs/`` only by an
atomic rename after its size and digest were checked, so a reader never sees a torn or
unverified file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from filelock import FileLock

from imgpull.digest import Digest, Verifier
from imgpull.errors import ArchiveError

_READ_CHUNK = 1024 * 1024


class BlobCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def temporary(cls, near: Path | None = None) -> BlobCache:
        """A throwaway store (for --no-cache), removed with ``discard``."""
        directory = tempfile.mkdtemp(prefix=".imgpull-", dir=near)
        return cls(Path(directory))

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def has(self, digest: Digest, size: int) -> bool:
        try:
            return self.path(digest).stat().st_size == size
        except OSError:
            return False

    def open(self, digest: Digest) -> BinaryIO:
        return self.path(digest).open("rb")

    def partial(self, digest: Digest, size: int, *, what: str) -> PartialBlob:
        directory = self.root / "partial"
        try:
            directory.mkdir(parents=True, exist_ok=True)
            (self.root / "blobs" / digest.algorithm).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(
                f"cannot create the blob cache in {self.root}: {exc.strerror}",
                "set --cache-dir or IMGPULL_CACHE_DIR to a writable directory, or --no-cache",
            ) from exc
        return PartialBlob(
            directory / f"{digest.algorithm}-{digest.hex}", self.path(digest), digest, size, what
        )


class PartialBlob:
    """A download in progress. Existing bytes are re-hashed on open, so a resumed
    download is verified end to end exactly like a fresh one."""

    def __init__(self, path: Path, final: Path, digest: Digest, size: int, what: str) -> None:
        self.path = path
        self.final = final
        self.verifier = Verifier(digest, size, what=what)
        self._file: BinaryIO | None = None
        # One writer per blob across threads and processes; the others wait, then find
        # the blob complete. flock-style locks vanish with their process, even on kill -9.
        self._lock = FileLock(str(path) + ".lock")

    @property
    def complete(self) -> bool:
        """True when another writer finished this blob while we waited for the lock."""
        try:
            return self.final.stat().st_size == self.verifier.size
        except OSError:
            return False

    def __enter__(self) -> Self:
        self._lock.acquire()
        try:
            self._file = self.path.open("a+b")
        except BaseException:
            self._lock.release()
            raise
        self._file.seek(0)
        try:
            while chunk := self._file.read(_READ_CHUNK):
                self.verifier.update(chunk)
        except Exception:
            self.restart()  # an over-long leftover: start again
        self._file.seek(0, os.SEEK_END)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._lock.release()

    @property
    def offset(self) -> int:
        return self.verifier.received

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self.verifier.update(chunk)
        self._file.write(chunk)

    def restart(self) -> None:
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self.verifier = Verifier(
            self.verifier.expected, self.verifier.size, what=self.verifier.what
        )

    def commit(self) -> Path:
        """Verify and move into the store; a bad download is deleted, never kept."""
        assert self._file is not None
        self._file.flush()
        try:
            self.verifier.verify()
        except Exception:
            self._file.close()
            self._file = None
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        self._file.close()
        self._file = None
        os.replace(self.path, self.final)
        return self.final
