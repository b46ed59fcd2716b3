"""A read-only stream over one archive member: no copy, no extraction, hashed in order."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from types import TracebackType
from typing import Any, BinaryIO, Self

from imgpull.archive.members import ReadAt
from imgpull.archive.problems import Problem
from imgpull.digest import Digest
from imgpull.errors import ArchiveError
from imgpull.text import shown


class BlobReader(io.RawIOBase, BinaryIO):
    """A read-only stream over one archive member (no copy, no extraction).

    Hashes what it reads in order; after reading to the end, :attr:`digest` is the
    member's digest, and a stated digest that does not match raises ArchiveError (when
    opened with ``verify``). Seekable for plain tars and directories; a member of a
    compressed archive reads forward only (``seek`` raises io.UnsupportedOperation).
    """

    def __init__(
        self,
        size: int,
        read_at: ReadAt,
        on_close: Callable[[], None],
        *,
        seekable: bool,
        expected: Digest | None,
        describe: Callable[[str], ArchiveError],
        name: str,
    ) -> None:
        super().__init__()
        self._size = size
        self._read_at = read_at
        self._on_close = on_close
        self._seekable = seekable
        self._expected = expected
        self._describe = describe
        self._name = name
        self._position = 0
        self._hash = expected.hasher() if expected is not None else hashlib.sha256()
        self._hashed = 0  # bytes hashed from the start; reads elsewhere are not hashed
        self._digest: Digest | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def digest(self) -> Digest | None:
        """The digest of the member, once it was read through in order."""
        return self._digest

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("a member of a compressed archive reads forward")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._size - self._position)
        if count <= 0:
            self._finish()
            return 0
        try:
            data = self._read_at(self._position, count)
        except Problem as problem:
            raise self._describe(problem.what) from None
        except io.UnsupportedOperation:
            raise
        except OSError as exc:
            text = exc.strerror or str(exc)
            raise self._describe(f"cannot read {shown(self._name)}: {text}") from None
        if not data:
            raise self._describe(
                f"the archive is truncated: {shown(self._name)} ends "
                f"{self._size - self._position} bytes early"
            )
        got = len(data)
        view[:got] = data
        if self._hashed == self._position:
            self._hash.update(data)
            self._hashed += got
        self._position += got
        if self._position >= self._size:
            self._finish()
        return got

    def _finish(self) -> None:
        if self._digest is not None or self._hashed != self._size:
            return
        self._digest = Digest(self._hash.name, self._hash.hexdigest())
        if self._expected is not None and self._digest != self._expected:
            raise self._describe(
                f"{shown(self._name)} is corrupt: its content hashes to {self._digest}, "
                f"not {self._expected}"
            )

    def close(self) -> None:
        if not self.closed:
            try:
                self._on_close()
            finally:
                super().close()

    # typing.IO declares these; RawIOBase's are the real ones.
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
