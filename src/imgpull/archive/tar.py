"""A minimal, deterministic tar writer that streams large members with the cheapest copy
the operating system offers (copy_file_range, then sendfile, then a buffered loop).

The data of each streamed member starts at a multiple of 4 KiB (a PAX ``comment`` record
pads the header when needed, which every tar reader skips). On file systems that share
blocks between files (XFS, btrfs), copy_file_range then clones a cached blob into the
archive instead of copying it: one physical write per byte, and warm pulls that copy
nothing.
"""

from __future__ import annotations

import os
import tarfile
from typing import BinaryIO, Final

BLOCK: Final = 512
ALIGN: Final = 4096
_COPY_CHUNK: Final = 8 * 1024 * 1024
_COMMENT_OVERHEAD: Final = len(" comment=\n")


def _header(name: str, size: int, *, directory: bool = False, pad: int = 0) -> bytes:
    """A member's header; with ``pad``, a PAX header of exactly ``pad`` bytes before it."""
    info = tarfile.TarInfo(name)
    if pad:
        record = pad - BLOCK  # the PAX header's own block, then its record
        digits = len(str(record))
        info.pax_headers = {"comment": "x" * (record - digits - _COMMENT_OVERHEAD)}
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.mtime = 0  # deterministic: the same image always gives the same bytes
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


class TarStream:
    """Writes members one after another; the output may be a pipe (no seeking)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.written = 0

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.written += len(data)

    def add_directory(self, name: str) -> None:
        self._write(_header(name.rstrip("/") + "/", 0, directory=True))

    def add_bytes(self, name: str, data: bytes) -> None:
        self._write(_header(name, len(data)))
        self._write(data)
        self._write(_padding(len(data)))

    def add_file(self, name: str, source: BinaryIO, size: int) -> None:
        self._write(_header(name, size, pad=_padding_for(self.written)))
        self.out.flush()
        copied = copy_exactly(source, self.out, size)
        self.written += copied
        self._write(_padding(size))

    def reserve(self, name: str, size: int) -> int:
        """Write a member's header as :meth:`add_file` would and leave its data to be
        filled in later, at the offset returned (the output must be a seekable file;
        what is never written reads as zeros)."""
        self._write(_header(name, size, pad=_padding_for(self.written)))
        start = self.written
        self.written += size + (-size % BLOCK)
        self.out.seek(self.written)
        return start

    def close(self) -> None:
        self._write(b"\0" * (2 * BLOCK))
        self.out.flush()


def _padding_for(offset: int) -> int:
    """How many bytes of PAX header put the data of a member whose header starts at
    ``offset`` on an ALIGN boundary (0, or a size the PAX header can have)."""
    gap = -(offset + BLOCK) % ALIGN
    if gap == 0:
        return 0
    return gap if gap >= 2 * BLOCK else gap + ALIGN


def copy_exactly(source: BinaryIO, out: BinaryIO, size: int) -> int:
    """Copy ``size`` bytes from the current position of ``source`` to ``out``."""
    remaining = size
    try:
        src_fd, dst_fd = source.fileno(), out.fileno()
    except (OSError, AttributeError, ValueError):
        src_fd = dst_fd = -1
    if src_fd >= 0 and dst_fd >= 0:
        offset = source.tell()
        for name in ("copy_file_range", "sendfile"):
            call = getattr(os, name, None)
            if call is None or remaining == 0:
                continue
            try:
                while remaining:
                    n = (
                        call(src_fd, dst_fd, min(remaining, 1 << 30), offset)
                        if name == "copy_file_range"
                        else call(dst_fd, src_fd, offset, min(remaining, 1 << 30))
                    )
                    if n == 0:
                        break
                    offset += n
                    remaining -= n
            except OSError:
                continue  # not supported between these two files: try the next way
            if remaining == 0:
                source.seek(offset)
                return size
        source.seek(offset)
    while remaining:
        chunk = source.read(min(_COPY_CHUNK, remaining))
        if not chunk:
            raise OSError(f"source ended {remaining} bytes early")
        out.write(chunk)
        remaining -= len(chunk)
    return size


__all__ = ["TarStream", "copy_exactly"]
