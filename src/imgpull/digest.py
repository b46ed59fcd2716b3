"""Content digests and a hashing sink that verifies size and digest while data streams."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from imgpull.errors import DigestMismatchError, UnsupportedError

_ALGORITHMS: Final = {"sha256": 64, "sha512": 128}
_DIGEST_RE: Final = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")


@dataclass(frozen=True, slots=True)
class Digest:
    """A content digest such as ``sha256:9f86...``; compares and hashes by value."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = _DIGEST_RE.match(text)
        if not match:
            raise ValueError(f"not a digest: {text!r}")
        algorithm, encoded = match.groups()
        length = _ALGORITHMS.get(algorithm)
        if length is None:
            raise UnsupportedError(f"unsupported digest algorithm {algorithm!r} in {text!r}")
        if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
            raise ValueError(f"not a valid {algorithm} digest: {text!r}")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @property
    def short(self) -> str:
        """The first 12 hex digits, as docker prints layer ids."""
        return self.hex[:12]

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


class Verifier:
    """Accumulates streamed bytes and checks them against an expected size and digest.

    Feeding more bytes than expected fails at once, so a hostile server cannot make us
    write an unbounded amount of data under a small descriptor.
    """

    def __init__(self, expected: Digest, size: int | None, *, what: str) -> None:
        self.expected = expected
        self.size = size
        self.what = what
        self.received = 0
        self._hash = expected.hasher()

    def update(self, chunk: bytes | memoryview) -> None:
        self.received += len(chunk)
        if self.size is not None and self.received > self.size:
            raise DigestMismatchError(
                f"{self.what}: received more than the {self.size} bytes its descriptor declares",
                "the registry or a proxy is serving wrong data; try again or another mirror",
            )
        self._hash.update(chunk)

    def copy(self) -> Verifier:
        clone = Verifier(self.expected, self.size, what=self.what)
        clone.received = self.received
        clone._hash = self._hash.copy()
        return clone

    def verify(self) -> None:
        if self.size is not None and self.received != self.size:
            raise DigestMismatchError(
                f"{self.what}: got {self.received} bytes, expected {self.size}",
                "the transfer was cut short or the registry serves wrong data; try again",
            )
        actual = Digest(self.expected.algorithm, self._hash.hexdigest())
        if actual != self.expected:
            raise DigestMismatchError(
                f"{self.what}: content digest is {actual}, expected {self.expected}",
                "the data was corrupted in transit or by the registry; try again or "
                "use another mirror",
            )


class ByteStream(Protocol):
    """What a blob's bytes are read from: a file, a response body, an archive member."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


Opener = Callable[[int], ByteStream]


class VerifyingReader:
    """A blob's bytes, read from its source and checked on the way.

    Never more than the declared size is read, and the digest is verified *before* the
    read that hands out the last byte returns: whoever consumes the stream (an upload
    that completes when the last byte arrives, an archive being written) never finishes
    with content that does not match. ``open_at(offset)`` gives the source's bytes from
    ``offset``; ``start`` is the state of bytes already verified (a resumed download).

    ``mark()`` remembers the hash state at the current position and ``rewind(offset)``
    goes back to a marked position, reopening the source there: an upload resumed from
    where the registry stands keeps verifying the whole. ``trusted`` skips hashing for
    bytes that were verified before and kept where only we write (the blob store).
    """

    def __init__(
        self,
        open_at: Opener,
        verifier: Verifier,
        *,
        trusted: bool = False,
    ) -> None:
        self._open_at = open_at
        self._verifier = verifier
        self._trusted = trusted
        self._stream: ByteStream | None = None
        self._marks: dict[int, Verifier] = {verifier.received: verifier.copy()}
        self._verified = False

    @property
    def size(self) -> int:
        assert self._verifier.size is not None
        return self._verifier.size

    @property
    def position(self) -> int:
        return self._verifier.received

    @property
    def done(self) -> bool:
        """Every byte was read and verified."""
        return self.position == self.size and self._verified

    def _source(self) -> ByteStream:
        if self._stream is None:
            self._stream = self._open_at(self.position)
        return self._stream

    def read(self, size: int = -1) -> bytes:
        left = self.size - self.position
        if left <= 0:
            self._finish()
            return b""
        data = self._source().read(left if size < 0 else min(size, left))
        self._took(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Like ``read``, into ``buffer`` (hashed there: no copy of the bytes is made)."""
        left = self.size - self.position
        if left <= 0:
            self._finish()
            return 0
        view = memoryview(buffer)[:left]
        source = self._source()
        into = getattr(source, "readinto", None)  # files, bodies and members have it
        if into is not None:
            count = int(into(view))
        else:
            data = source.read(len(view))
            count = len(data)
            view[:count] = data
        self._took(view[:count])
        return count

    def _took(self, data: bytes | memoryview) -> None:
        if not data and self._trusted:
            # A file we wrote ourselves came up short: the disk, not the content.
            raise OSError(
                f"{self._verifier.what}: the file ended after {self.position} of {self.size} bytes"
            )
        if not data:
            raise DigestMismatchError(
                f"{self._verifier.what}: the source ended after {self.position} of "
                f"{self.size} bytes",
                "the transfer was cut short or the source serves wrong data; try again",
            )
        if self._trusted:
            self._verifier.received += len(data)
        else:
            self._verifier.update(data)
        if self.position == self.size:
            self._finish()

    def _finish(self) -> None:
        if not self._verified:
            if not self._trusted:
                self._verifier.verify()
            self._verified = True

    def mark(self) -> None:
        self._marks[self.position] = self._verifier.copy()

    def marked(self, offset: int) -> bool:
        return offset in self._marks

    def rewind(self, offset: int) -> None:
        """Go back to a marked ``offset`` (KeyError if it was never marked)."""
        state = self._marks[offset]
        self.close()
        self._verifier = state.copy()
        self._verified = False

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
