"""The blob store: verified blobs by digest, checked by stamp (partial downloads: ``partial.py``).

Layout under the root: ``blobs/sha256/<hex>`` for complete, verified blobs,
``stamps/sha256/<hex>`` recording the file as it was when verified, and
``partial/sha256-<hex>`` for downloads in progress. A blob enters ``blobs/`` only by an
atomic rename after its size and digest were checked.

A stored blob is used without hashing it again only while its stamp matches the file
(size, inode, modification and, where the system has one, change time): any write to
the file since it was verified changes these, and then the blob is hashed again before
use, and removed if it no longer matches. This keeps the warm path free of hashing
while a blob altered on disk never reaches an output. The stamp's own modification time
records when the blob was last used (least recently used pruning).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from imgpull.cache.partial import READ_CHUNK, PartialBlob
from imgpull.digest import Digest, Verifier, VerifyingReader
from imgpull.errors import ArchiveError, ImgpullError
from imgpull.model import Descriptor

# A blob up to this size is downloaded into memory and stored in one write: a resumable
# partial file and its lock cost more than fetching it again would.
SMALL_BLOB: Final = 1024 * 1024
# Where a small blob is written before its rename into ``blobs/``; one left by a killed
# process is removed by ``prune`` once it is older than any write could take.
_SMALL_PREFIX: Final = ".small-"
_STALE_SMALL: Final = 60.0
_O_BINARY: Final = getattr(os, "O_BINARY", 0)


def _fingerprint(stat: os.stat_result) -> str:
    # ctime cannot be set from user space on POSIX; on Windows it means creation time.
    parts = [stat.st_size, stat.st_ino, stat.st_mtime_ns]
    if sys.platform != "win32":
        parts.append(stat.st_ctime_ns)
    return " ".join(str(p) for p in parts)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """A verified blob in the store (it is also a :class:`~imgpull.source.BlobContent`)."""

    descriptor: Descriptor
    file: Path

    def open(self) -> VerifyingReader:
        d = self.descriptor
        verifier = Verifier(d.digest, d.size, what=f"blob {d.digest.short} in the cache")
        return VerifyingReader(self._open_at, verifier, trusted=True)

    def _open_at(self, offset: int) -> BinaryIO:
        handle = self.file.open("rb")
        handle.seek(offset)
        return handle

    def path(self) -> Path | None:
        return self.file

    def read(self) -> bytes:
        return self.file.read_bytes()


@dataclass(frozen=True, slots=True)
class CacheEntry:
    path: Path
    size: int
    last_used: float  # seconds since the epoch
    partial: bool


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: set[Path] = set()  # directories known to exist (made once per run)

    @classmethod
    def temporary(cls, near: Path | None = None) -> BlobStore:
        """A throwaway store (for --no-cache), removed with ``discard``."""
        return cls(Path(tempfile.mkdtemp(prefix=".imgpull-", dir=near)))

    def discard(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex

    def _stamp(self, digest: Digest) -> Path:
        return self.root / "stamps" / digest.algorithm / digest.hex

    # -- reading ----------------------------------------------------------------------------

    def lookup(self, descriptor: Descriptor) -> StoredBlob | None:
        """The blob if the store holds it, checked: by its stamp, else hashed again (and
        removed if it does not match)."""
        path = self.path(descriptor.digest)
        try:
            stat = path.stat()
        except OSError:
            return None
        if stat.st_size != descriptor.size:
            self._remove(descriptor.digest)
            return None
        stamp = self._stamp(descriptor.digest)
        try:
            valid = stamp.read_text(encoding="ascii").strip() == _fingerprint(stat)
        except (OSError, UnicodeDecodeError):
            valid = False
        if not valid and not self._rehash(descriptor, path):
            return None
        with contextlib.suppress(OSError):
            os.utime(stamp)  # last used
        return StoredBlob(descriptor, path)

    def _rehash(self, descriptor: Descriptor, path: Path) -> bool:
        verifier = Verifier(descriptor.digest, descriptor.size, what="a cached blob")
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(READ_CHUNK):
                    verifier.update(chunk)
            verifier.verify()
        except (OSError, ImgpullError):
            self._remove(descriptor.digest)
            return False
        self._write_stamp(descriptor.digest)
        return True

    def read_small(self, descriptor: Descriptor) -> bytes | None:
        found = self.lookup(descriptor)
        if found is None:
            return None
        try:
            return found.read()
        except OSError:
            return None

    # -- writing ----------------------------------------------------------------------------

    def _write_stamp(self, digest: Digest) -> None:
        stamp = self._stamp(digest)
        temp = stamp.with_name(f".{stamp.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            self._make(stamp.parent)
            fingerprint = _fingerprint(self.path(digest).stat())
            _write_file(temp, (fingerprint + "\n").encode("ascii"))
            os.replace(temp, stamp)
        except OSError:
            # Without a stamp the blob is hashed again when used: slower, not wrong.
            with contextlib.suppress(OSError):
                temp.unlink()

    def _remove(self, digest: Digest) -> None:
        for path in (self.path(digest), self._stamp(digest)):
            with contextlib.suppress(OSError):
                path.unlink()

    def _make(self, directory: Path) -> None:
        if directory not in self._made:
            directory.mkdir(parents=True, exist_ok=True)
            self._made.add(directory)

    def _directories(self, digest: Digest) -> Path:
        directory = self.root / "partial"
        try:
            self._make(directory)
            self._make(self.root / "blobs" / digest.algorithm)
        except OSError as exc:
            raise ArchiveError(
                f"cannot create the blob cache in {self.root}: {exc.strerror}",
                "set --cache-dir or IMGPULL_CACHE_DIR to a writable directory, or --no-cache",
            ) from exc
        return directory

    def partial(self, descriptor: Descriptor, *, what: str) -> PartialBlob:
        directory = self._directories(descriptor.digest)
        digest = descriptor.digest
        return PartialBlob(self, directory / f"{digest.algorithm}-{digest.hex}", descriptor, what)

    def put_bytes(self, descriptor: Descriptor, data: bytes) -> StoredBlob:
        """Store a small blob held in memory (it is verified here)."""
        verifier = Verifier(descriptor.digest, descriptor.size, what=f"blob {descriptor.digest}")
        verifier.update(data)
        verifier.verify()
        return self.put_verified(descriptor, data)

    def put_verified(self, descriptor: Descriptor, data: bytes | bytearray) -> StoredBlob:
        """Store a blob whose bytes in memory were verified: written beside the store and
        renamed into it, without a lock. The name is the digest, so two writers write the
        same bytes, and whichever rename comes last leaves a whole blob."""
        directory = self._directories(descriptor.digest)
        name = f"{_SMALL_PREFIX}{descriptor.digest.hex}-{os.getpid()}-{threading.get_ident()}"
        temp = directory / name
        try:
            _write_file(temp, data)
            os.replace(temp, self.path(descriptor.digest))
        except OSError as exc:  # a full cache disk names the cache, not nothing
            with contextlib.suppress(OSError):
                temp.unlink()
            raise OSError(exc.errno, exc.strerror, str(temp)) from exc
        self._write_stamp(descriptor.digest)
        return StoredBlob(descriptor, self.path(descriptor.digest))

    def committed(self, descriptor: Descriptor, partial: Path) -> StoredBlob:
        final = self.path(descriptor.digest)
        os.replace(partial, final)
        self._write_stamp(descriptor.digest)
        return StoredBlob(descriptor, final)

    # -- housekeeping -----------------------------------------------------------------------

    def entries(self) -> list[CacheEntry]:
        """Complete blobs, least recently used first."""
        found: list[CacheEntry] = []
        blobs = self.root / "blobs"
        if not blobs.is_dir():
            return found
        for directory in sorted(blobs.iterdir()):
            for path in directory.iterdir():
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    used = stat.st_mtime
                    with contextlib.suppress(OSError):
                        used = max(
                            used,
                            (self.root / "stamps" / directory.name / path.name).stat().st_mtime,
                        )
                    found.append(CacheEntry(path, stat.st_size, used, False))
        return sorted(found, key=lambda e: e.last_used)

    def partials(self) -> list[CacheEntry]:
        found: list[CacheEntry] = []
        directory = self.root / "partial"
        if directory.is_dir():
            for path in directory.iterdir():
                small = path.name.startswith(_SMALL_PREFIX)
                if path.suffix in (".lock", ".pieces") or (path.name.startswith(".") and not small):
                    continue
                with contextlib.suppress(OSError):
                    stat = path.stat()
                    found.append(CacheEntry(path, stat.st_size, stat.st_mtime, True))
        return found

    def verify_all(self) -> tuple[int, int]:
        """Hash every stored blob again; remove those that do not match their digest.
        Returns (blobs checked, blobs removed)."""
        checked = removed = 0
        for entry in self.entries():
            algorithm, hexdigest = entry.path.parent.name, entry.path.name
            try:
                digest = Digest.parse(f"{algorithm}:{hexdigest}")
            except (ValueError, ImgpullError):
                with contextlib.suppress(OSError):
                    entry.path.unlink()
                removed += 1
                continue
            checked += 1
            if not self._rehash(Descriptor("", digest, entry.size), entry.path):
                removed += 1
        return checked, removed

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
        entries = sorted([*self.entries(), *self.partials()], key=lambda e: e.last_used)
        total = sum(e.size for e in entries)
        removed = freed = 0
        for entry in entries:
            stale = everything or (older_than is not None and now - entry.last_used > older_than)
            over = max_size is not None and total > max_size
            if not (stale or over) or not self._prune_one(entry):
                continue
            removed += 1
            freed += entry.size
            total -= entry.size
        return removed, freed

    def _prune_one(self, entry: CacheEntry) -> bool:
        if entry.path.name.startswith(_SMALL_PREFIX):
            # No lock guards these: only one old enough to be a killed writer's goes.
            if time.time() - entry.last_used < _STALE_SMALL:
                return False
            with contextlib.suppress(OSError):
                entry.path.unlink()
            return True
        if not entry.partial:
            try:
                entry.path.unlink()
            except OSError:
                return False  # in use elsewhere (Windows) or already gone
            with contextlib.suppress(OSError):
                (self.root / "stamps" / entry.path.parent.name / entry.path.name).unlink()
            return True
        from filelock import FileLock, Timeout  # see PartialBlob

        lock = FileLock(str(entry.path) + ".lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return False  # a pull is writing it right now
        try:
            for path in (entry.path, entry.path.with_name(entry.path.name + ".pieces")):
                with contextlib.suppress(OSError):
                    path.unlink()
        finally:
            lock.release()
        return True


def _write_file(path: Path, data: bytes | bytearray) -> None:
    # os.open and a raw write: no buffer and no terminal check for a file written whole.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _O_BINARY, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
