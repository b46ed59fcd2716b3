"""The blob store: verified blobs only, checked by stamp, hashed again when the file
changed since it was verified; partial downloads resume with their verified state."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from imgpull.cache import BlobStore
from imgpull.digest import Digest, VerifyingReader
from imgpull.errors import DigestMismatchError
from imgpull.model import Descriptor

DATA = os.urandom(3 * 1024 * 1024 + 17)
BLOB = Descriptor("application/octet-stream", Digest.of(DATA), len(DATA))


def download(store: BlobStore, data: bytes, *, stop_after: int | None = None) -> None:
    with store.partial(BLOB, what="blob") as partial:
        reader = VerifyingReader(lambda offset: io.BytesIO(data[offset:]), partial.verifier)
        while chunk := reader.read(64 * 1024):
            partial.write(chunk)
            if stop_after is not None and partial.offset >= stop_after:
                return  # as if killed mid-download
        partial.commit()


def test_a_verified_blob_is_found_by_its_stamp(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    assert store.lookup(BLOB) is None
    download(store, DATA)
    found = store.lookup(BLOB)
    assert found is not None and found.read() == DATA


def test_a_blob_changed_on_disk_is_hashed_again_and_removed(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    download(store, DATA)
    path = store.path(BLOB.digest)
    tampered = bytearray(DATA)
    tampered[1000] ^= 0xFF
    path.write_bytes(bytes(tampered))  # same size, other content
    assert store.lookup(BLOB) is None
    assert not path.exists()


def test_a_blob_without_stamp_is_hashed_and_kept_when_right(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    download(store, DATA)
    for stamp in (tmp_path / "stamps").rglob("*"):
        if stamp.is_file():
            stamp.unlink()
    assert store.lookup(BLOB) is not None
    assert any(p.is_file() for p in (tmp_path / "stamps").rglob("*"))  # stamped again


def test_an_interrupted_download_resumes_verified(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    download(store, DATA, stop_after=1024 * 1024)
    with store.partial(BLOB, what="blob") as partial:
        assert partial.offset >= 1024 * 1024  # bytes on disk, hashed again on open
    download(store, DATA)
    assert store.lookup(BLOB) is not None


def test_wrong_bytes_never_enter_the_store(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    bad = DATA[:-1] + bytes([DATA[-1] ^ 1])
    with pytest.raises(DigestMismatchError):
        download(store, bad)
    assert store.lookup(BLOB) is None


def test_verify_all_removes_what_no_longer_matches(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    download(store, DATA)
    small = b"small blob"
    store.put_bytes(Descriptor("", Digest.of(small), len(small)), small)
    store.path(Digest.of(small)).write_bytes(b"other blob")
    assert store.verify_all() == (2, 1)
    assert store.lookup(BLOB) is not None


def test_small_blobs_are_stored_whole_and_wrong_ones_never(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    small = os.urandom(4096)
    blob = Descriptor("", Digest.of(small), len(small))
    with pytest.raises(DigestMismatchError):
        store.put_bytes(blob, small[:-1] + b"x")
    assert store.lookup(blob) is None
    found = store.put_bytes(blob, small)
    assert found.read() == small and store.lookup(blob) is not None
    store.put_verified(blob, small)  # a second writer of the same blob: still whole
    assert store.lookup(blob) is not None
    assert [p.name for p in (tmp_path / "partial").iterdir()] == []  # no temporary left


def test_prune_removes_a_killed_writers_small_temporary_only_when_old(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    (tmp_path / "partial").mkdir()
    young = tmp_path / "partial" / f".small-{'a' * 64}-1-2"
    old = tmp_path / "partial" / f".small-{'b' * 64}-1-2"
    young.write_bytes(b"in flight")
    old.write_bytes(b"left by kill -9")
    an_hour_ago = old.stat().st_mtime - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    assert store.prune(everything=True) == (1, len(b"left by kill -9"))
    assert young.exists() and not old.exists()
