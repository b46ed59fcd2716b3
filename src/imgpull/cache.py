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
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from filelock import FileLock, Timeout

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
        handle = self.path(digest).open("rb")
        with contextlib.suppress(OSError):
            os.utime(handle.fileno() if os.utime in os.supports_fd else self.path(digest))
        return handle

    def entries(self) -> list[CacheEntry]:
        """Complete blobs, least recently used first (a use refreshes the mtime)."""
        found: list[CacheEntry] = []
        blobs = self.root / "blobs"
        if not blobs.is_dir():
            return found
        for directory in sorted(blobs.iterdir()):
            for path in directory.iterdir():
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    found.append(CacheEntry(path, stat.st_size, stat.st_mtime, False))
        return sorted(found, key=lambda e: e.last_used)

    def partials(self) -> list[CacheEntry]:
        found: list[CacheEntry] = []
        directory = self.root / "partial"
        if directory.is_dir():
            for path in directory.iterdir():
                if path.suffix == ".lock":
                    continue
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    found.append(CacheEntry(path, stat.st_size, stat.st_mtime, True))
        return found

    def prune(
        self,
        *,
        older_than: float | None = None,
        max_size: int | None = None,
        everything: bool = False,
    ) -> tuple[int, int]:
        """Remove blobs unused for ``older_than`` seconds, then the least recently used
        until at most ``max_size`` bytes remain; returns (files removed, bytes freed).
        Partial downloads count as blobs, unless a pull is writing them. Lock files stay:
        removing one another process may be waiting on would let two writers in."""
        now = time.time()
        entries = [*self.entries(), *self.partials()]
        entries.sort(key=lambda e: e.last_used)
        total = sum(e.size for e in entries)
        removed = freed = 0
        for entry in entries:
            stale = everything or (older_than is not None and now - entry.last_used > older_than)
            over = max_size is not None and total > max_size
            if not (stale or over):
                continue
            if entry.partial:
                lock = FileLock(str(entry.path) + ".lock")
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue  # a pull is writing it right now
                try:
                    with contextlib.suppress(OSError):
                        entry.path.unlink()
                finally:
                    lock.release()
            else:
                try:
                    entry.path.unlink()
                except OSError:
                    continue  # in use elsewhere (Windows) or already gone
            removed += 1
            freed += entry.size
            total -= entry.size
        return removed, freed

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


@dataclass(frozen=True, slots=True)
class CacheEntry:
    path: Path
    size: int
    last_used: float  # seconds since the epoch
    partial: bool


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
        try:
            self.verifier.update(chunk)
        except Exception:
            self.restart()  # bytes from a lying server must not seed the next attempt
            raise
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
