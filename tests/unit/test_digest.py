"""The verifying reader: never more than the size, the digest checked before the last
byte is handed out, marks and rewinds for resumed uploads."""

from __future__ import annotations

import io

import pytest

from imgpull.digest import Digest, Verifier, VerifyingReader
from imgpull.errors import DigestMismatchError

DATA = b"0123456789" * 100


def reader(data: bytes, expected: bytes = DATA, *, trusted: bool = False) -> VerifyingReader:
    verifier = Verifier(Digest.of(expected), len(expected), what="blob")
    return VerifyingReader(lambda offset: io.BytesIO(data[offset:]), verifier, trusted=trusted)


def read_all(stream: VerifyingReader, size: int = 64) -> bytes:
    parts = []
    while chunk := stream.read(size):
        parts.append(chunk)
    return b"".join(parts)


def test_good_bytes_read_through() -> None:
    stream = reader(DATA)
    assert read_all(stream) == DATA
    assert stream.done


def test_the_last_byte_is_never_handed_out_when_the_digest_is_wrong() -> None:
    bad = DATA[:-1] + b"X"
    stream = reader(bad)
    handed = b""
    with pytest.raises(DigestMismatchError, match="digest"):
        while chunk := stream.read(64):
            handed += chunk
    assert len(handed) < len(DATA)  # the consumer never saw a complete body


def test_a_longer_source_is_cut_at_the_size() -> None:
    stream = reader(DATA + b"trailing garbage")
    assert read_all(stream) == DATA


def test_a_short_source_is_an_integrity_error() -> None:
    with pytest.raises(DigestMismatchError, match="ended after 500 of 1000"):
        read_all(reader(DATA[:500]))


def test_a_short_trusted_file_is_a_disk_error() -> None:
    with pytest.raises(OSError, match="ended after 500"):
        read_all(reader(DATA[:500], trusted=True))


def test_rewind_to_a_mark_keeps_verifying_the_whole() -> None:
    stream = reader(DATA)
    stream.read(300)
    stream.mark()
    stream.read(400)
    assert stream.marked(300) and not stream.marked(700)
    stream.rewind(300)
    assert stream.position == 300
    assert read_all(stream) == DATA[300:]
    assert stream.done
    stream.rewind(0)  # the start is always marked
    assert read_all(stream) == DATA


def test_resume_from_verified_state() -> None:
    verifier = Verifier(Digest.of(DATA), len(DATA), what="blob")
    verifier.update(DATA[:600])
    opened: list[int] = []

    def open_at(offset: int) -> io.BytesIO:
        opened.append(offset)
        return io.BytesIO(DATA[offset:])

    stream = VerifyingReader(open_at, verifier)
    assert read_all(stream) == DATA[600:]
    assert opened == [600] and stream.done


def test_empty_blob() -> None:
    stream = reader(b"", b"")
    assert stream.read(10) == b"" and stream.done
