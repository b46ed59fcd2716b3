"""A gzip-, bzip2- or xz-compressed tar: indexed in one pass, read forward only.

A compressed tar cannot be read at random: opening a member decompresses from the start,
or from where the last closed reader stopped, so reading blobs in archive order costs
one pass. Small members are kept from the indexing pass.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import tarfile
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Final, cast

from imgpull.archive.members import (
    CHUNK,
    HEAD,
    BoundedTarInfo,
    Entry,
    ReadAt,
    Store,
    TarIndex,
    index_errors,
    member_name,
    tar_problem,
)
from imgpull.archive.problems import Problem
from imgpull.archive.records import OuterCompression
from imgpull.text import shown

MiB: Final = 1024 * 1024
_CACHE_MEMBER: Final = MiB
_CACHE_TOTAL: Final = 32 * MiB


class _Cursor:
    """A decompressing stream of the whole tar and where it is."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0

    def skip_to(self, offset: int) -> None:
        while self.position < offset:
            data = self.stream.read(min(CHUNK, offset - self.position))
            if not data:
                raise Problem("the archive is truncated")
            self.position += len(data)

    def read(self, count: int) -> bytes:
        parts: list[bytes] = []
        while count > 0:
            data = self.stream.read(count)
            if not data:
                break
            parts.append(data)
            count -= len(data)
            self.position += len(data)
        return b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()


class CompressedTar(Store):
    """A gzip/bzip2/xz-compressed tar: indexed in one pass, read forward only."""

    seekable = False

    def __init__(self, path: Path, compression: OuterCompression) -> None:
        self.path = path
        self.compression = compression
        self.index = TarIndex()
        self.cache: dict[str, bytes] = {}
        self.heads: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.spare: _Cursor | None = None
        cached = 0
        stream = self._decompressor()
        try:
            with tarfile.open(fileobj=stream, mode="r:", tarinfo=BoundedTarInfo) as tar:
                for info in tar:
                    self.index.add(info)
                    name = member_name(info.name)
                    if name is None or not info.isreg() or info.issparse():
                        continue
                    want = HEAD
                    if info.size <= _CACHE_MEMBER and cached + info.size <= _CACHE_TOTAL:
                        want = info.size
                    stream.seek(info.offset_data)
                    data = stream.read(min(want, info.size))
                    self.heads[name] = data[:HEAD]
                    if want == info.size:
                        if len(data) != info.size:
                            raise Problem(f"the archive is truncated in {shown(name)}")
                        self.cache[name] = data
                        cached += info.size
        except Problem:
            raise
        except index_errors() as exc:
            raise tar_problem(exc) from exc
        finally:
            stream.close()

    def _decompressor(self) -> BinaryIO:
        stream: io.BufferedIOBase
        if self.compression == "gzip":
            stream = gzip.GzipFile(filename=self.path, mode="rb")
        elif self.compression == "bzip2":
            stream = bz2.BZ2File(self.path, "rb")
        else:
            stream = lzma.LZMAFile(self.path, "rb")  # noqa: SIM115 (the caller closes it)
        return cast(BinaryIO, stream)

    def locate(self, member: str) -> Entry:
        name, info = self.index.resolve(member)
        return Entry(name, info.size, info.offset_data)

    def head(self, entry: Entry) -> bytes:
        return self.heads.get(entry.name, b"")

    def _acquire(self, offset: int) -> _Cursor:
        with self.lock:
            spare, self.spare = self.spare, None
        if spare is not None and spare.position <= offset:
            cursor = spare
        else:
            if spare is not None:
                spare.close()
            cursor = _Cursor(self._decompressor())
        try:
            cursor.skip_to(offset)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _release(self, cursor: _Cursor) -> None:
        with self.lock:
            old, self.spare = self.spare, cursor
        if old is not None:
            old.close()

    def reader(self, entry: Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        cached = self.cache.get(entry.name)
        if cached is not None:
            data = cached

            def read_cached(position: int, count: int) -> bytes:
                return data[position : position + count]

            return read_cached, lambda: None, True
        cursor: _Cursor | None = None
        base = entry.offset

        def read_at(position: int, count: int) -> bytes:
            nonlocal cursor
            try:
                if cursor is None:
                    cursor = self._acquire(base)
                if cursor.position != base + position:
                    raise io.UnsupportedOperation(
                        "a member of a compressed archive reads forward only"
                    )
                return cursor.read(count)
            except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
                if isinstance(exc, io.UnsupportedOperation):
                    raise
                text = shown(str(exc) or type(exc).__name__, 60)
                raise Problem(f"the archive is truncated or corrupt ({text})") from None

        def close() -> None:
            if cursor is not None:
                self._release(cursor)

        return read_at, close, False

    def close(self) -> None:
        with self.lock:
            spare, self.spare = self.spare, None
        if spare is not None:
            spare.close()
