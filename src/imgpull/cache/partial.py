"""A download in progress in the blob store: resumed from its verified bytes, or in
pieces recorded beside it, and moved into the store only once it verifies."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Final, Self

from imgpull.digest import Verifier
from imgpull.errors import ImgpullError
from imgpull.model import Descriptor

if TYPE_CHECKING:
    from imgpull.cache.store import BlobStore, StoredBlob

READ_CHUNK: Final = 1024 * 1024


class PartialBlob:
    """A download in progress. Existing bytes are hashed again on open, so a resumed
    download is verified end to end exactly like a fresh one; ``verifier`` holds that
    state for the reader that continues it.

    A big blob may instead be downloaded in pieces (:meth:`split`), written at their
    offsets and recorded as done in a ``.pieces`` file beside it, so a later run fetches
    only the missing ones; the transfer hashes the whole file at the end.
    """

    def __init__(self, store: BlobStore, path: Path, descriptor: Descriptor, what: str) -> None:
        self.store = store
        self.path = path
        self.descriptor = descriptor
        self.what = what
        self.verifier = Verifier(descriptor.digest, descriptor.size, what=what)
        # Unbuffered: a write the disk cannot take fails in write(), where the error is
        # named, never later in a flush that nobody names.
        self._file: io.FileIO | None = None
        # One writer per blob across threads and processes; the others wait, then find
        # the blob complete. flock-style locks vanish with their process, even on kill -9.
        # Imported here: it takes 15 ms, and runs of small blobs and warm runs never lock.
        from filelock import FileLock

        self._lock = FileLock(str(path) + ".lock")
        self._pieces_path = path.with_name(path.name + ".pieces")
        self._done: set[int] = set()
        self._piece_size = 0
        self._start = 0
        self._write_lock = threading.Lock()

    @property
    def complete(self) -> bool:
        """True when another writer finished this blob while we waited for the lock."""
        return self.store.lookup(self.descriptor) is not None

    def __enter__(self) -> Self:
        self._lock.acquire()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
            self._file = io.FileIO(fd, "r+")
        except BaseException:
            self._lock.release()
            raise
        if self._pieces_path.exists():
            return self  # a download in pieces: its own record says what is there
        try:
            while chunk := self._file.read(READ_CHUNK):
                self.verifier.update(chunk)
        except ImgpullError:
            self.restart()  # an over-long leftover: start again
        self._file.seek(0, os.SEEK_END)
        return self

    # -- in pieces

    @property
    def in_pieces(self) -> bool:
        return self._pieces_path.exists()

    def split(self, start: int, piece_size: int) -> list[tuple[int, int, int]]:
        """Fetch the rest, from ``start`` (bytes before it are here and verified), in
        pieces: returns them as (index, start, end)."""
        assert self._file is not None
        self._file.flush()
        self._file.truncate(self.descriptor.size)  # holes the pieces fill in
        self._start, self._piece_size, self._done = start, piece_size, set()
        self._save_pieces()
        return self._missing()

    def resume_pieces(self) -> list[tuple[int, int, int]] | None:
        """The pieces an earlier run left to fetch, or None (start afresh then)."""
        try:
            data = json.loads(self._pieces_path.read_text())
            start, piece = int(data["start"]), int(data["piece"])
            done = {int(i) for i in data["done"]}
            ok = data["size"] == self.descriptor.size and 0 <= start < self.descriptor.size
        except (OSError, ValueError, TypeError, KeyError, RecursionError):
            ok = False
        if not ok or piece <= 0:
            return None
        self._start, self._piece_size, self._done = start, piece, done
        return self._missing()

    def _missing(self) -> list[tuple[int, int, int]]:
        size, piece, first = self.descriptor.size, self._piece_size, self._start
        count = -(-(size - first) // piece)
        return [
            (i, first + i * piece, min(size, first + (i + 1) * piece))
            for i in range(count)
            if i not in self._done
        ]

    def _save_pieces(self) -> None:
        record = {
            "size": self.descriptor.size,
            "start": self._start,
            "piece": self._piece_size,
            "done": sorted(self._done),
        }
        temp = self._pieces_path.with_name(f".{self._pieces_path.name}.{threading.get_ident()}")
        try:
            temp.write_text(json.dumps(record))
            os.replace(temp, self._pieces_path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()  # a full disk must not keep one file per piece
            raise

    @property
    def pieces_done_bytes(self) -> int:
        """Bytes already here: the verified start, and the pieces done."""
        return self.descriptor.size - sum(end - start for _, start, end in self._missing())

    def writer(self) -> BinaryIO:
        """A handle of its own for one piece's thread (written at that piece's offsets)."""
        fd = os.open(self.path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        return os.fdopen(fd, "r+b")

    def piece_done(self, index: int) -> None:
        with self._write_lock:
            self._done.add(index)
            self._save_pieces()

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

    def write(self, chunk: bytes | memoryview) -> None:
        assert self._file is not None
        view = memoryview(chunk)
        try:
            while view:
                view = view[self._file.write(view) :]
        except OSError as exc:  # a full cache disk names the cache, not nothing
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc

    def restart(self) -> None:
        """Forget what is on disk (bytes from a lying server must not seed another try)."""
        assert self._file is not None
        self._file.seek(0)
        self._file.truncate()
        self.verifier = Verifier(self.descriptor.digest, self.descriptor.size, what=self.what)
        self._done = set()
        with contextlib.suppress(OSError):
            self._pieces_path.unlink()

    def discard(self) -> None:
        """Remove the partial download entirely."""
        self.restart()
        assert self._file is not None
        self._file.close()
        self._file = None
        with contextlib.suppress(OSError):
            self.path.unlink()

    def commit(self) -> StoredBlob:
        """Move the verified download into the store; anything else is an error and the
        partial is deleted, never kept."""
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
        with contextlib.suppress(OSError):
            self._pieces_path.unlink()
        return self.store.committed(self.descriptor, self.path)
