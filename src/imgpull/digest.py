"""Content digests and a hashing sink that verifies size and digest while data streams."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

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
