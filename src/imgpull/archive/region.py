"""A blob's place in an archive being written, filled in as its bytes arrive.

When a pull keeps no cache and writes a regular file, every blob member's header is
laid out first and the data lands straight at its offset in the unfinished archive:
one write per byte, instead of a throwaway cache file and a copy of it. The archive is
still a hidden partial file that appears at its path only when every blob verified.

A region offers what a download needs of the place it writes to, as the blob store's
partial files do: a verifier holding the state of the bytes written so far, the write
itself, restarting, and writers of their own for pieces fetched in parallel.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Final, Self, cast

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12

from imgpull.digest import Verifier, VerifyingReader
from imgpull.model import Descriptor

_O_BINARY: Final = getattr(os, "O_BINARY", 0)


class _Window(io.FileIO):
    """A file seen from ``base`` on: offsets are the blob's, not the archive's. A failed
    write names the archive as the user gave it (a full disk: "No space left on device:
    out.tar"), not the hidden file."""

    def __init__(self, path: Path, base: int, shown: str) -> None:
        super().__init__(os.open(path, os.O_RDWR | _O_BINARY), "r+b", closefd=True)
        self.base = base
        self.shown = shown
        super().seek(base)

    def write(self, data: Buffer, /) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.shown) from exc

    def seek(self, offset: int, whence: int = os.SEEK_SET, /) -> int:
        if whence == os.SEEK_SET:
            offset += self.base
        return super().seek(offset, whence) - self.base

    def tell(self) -> int:
        return super().tell() - self.base


class PlacedBlob:
    """A blob verified in its place in the archive (a :class:`BlobContent`)."""

    def __init__(self, descriptor: Descriptor, path: Path, base: int, shown: str) -> None:
        self.descriptor = descriptor
        self._path = path
        self._base = base
        self._shown = shown

    def open(self) -> VerifyingReader:
        d = self.descriptor
        verifier = Verifier(d.digest, d.size, what=f"blob {d.digest.short} in the archive")
        return VerifyingReader(self._open_at, verifier, trusted=True)

    def _open_at(self, offset: int) -> BinaryIO:
        handle = _Window(self._path, self._base, self._shown)
        handle.seek(offset)
        return cast(BinaryIO, handle)

    def path(self) -> Path | None:
        return None  # not a file of its own


class ArchiveRegion:
    """Where one blob's bytes land in the archive: ``size`` bytes from ``base``."""

    def __init__(
        self, path: Path, base: int, descriptor: Descriptor, *, what: str, shown: str
    ) -> None:
        self.path = path
        self.base = base
        self.shown = shown
        self.descriptor = descriptor
        self.what = what
        self.verifier = Verifier(descriptor.digest, descriptor.size, what=what)
        self._file: BinaryIO | None = None

    def __enter__(self) -> Self:
        self._file = self.writer()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def offset(self) -> int:
        return self.verifier.received

    def write(self, chunk: bytes | memoryview) -> None:
        assert self._file is not None
        self._file.write(chunk)

    def writer(self) -> BinaryIO:
        """A handle of its own, at the blob's offset 0 (for one piece's thread)."""
        return cast(BinaryIO, io.BufferedRandom(_Window(self.path, self.base, self.shown)))

    def restart(self) -> None:
        """From the start again: the bytes there are written over."""
        assert self._file is not None
        self._file.seek(0)
        self.verifier = Verifier(self.descriptor.digest, self.descriptor.size, what=self.what)

    discard = restart  # the archive as a whole is removed if the pull fails

    def split(self, start: int, piece_size: int) -> list[tuple[int, int, int]]:
        """The rest, from ``start``, as pieces (index, start, end)."""
        assert self._file is not None
        self._file.flush()  # the stream's bytes, before the pieces' own handles write
        size = self.descriptor.size
        count = -(-(size - start) // piece_size)
        return [
            (i, start + i * piece_size, min(size, start + (i + 1) * piece_size))
            for i in range(count)
        ]

    def piece_done(self, index: int) -> None:
        """Nothing to record: an archive without a cache is not resumed by a later run."""

    def commit(self) -> PlacedBlob:
        """The blob, once every byte is in place and verified."""
        assert self._file is not None
        self._file.flush()
        self.verifier.verify()
        return PlacedBlob(self.descriptor, self.path, self.base, self.shown)
