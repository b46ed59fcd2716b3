"""The one transfer routine, with sources and sinks that live in memory: each blob
once, manifests after their blobs and children before indexes, nothing committed after
a failure, wrong bytes tried again elsewhere."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from imgpull.digest import Digest, Verifier, VerifyingReader
from imgpull.errors import DigestMismatchError
from imgpull.model import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    PlatformSelection,
    parse_manifest,
)
from imgpull.progress import SILENT
from imgpull.reference import Reference, parse_reference
from imgpull.source import BlobContent, Placement, SourceImage
from imgpull.transfer import transfer


def blob(data: bytes, media: str = OCI_LAYER_GZIP) -> Descriptor:
    return Descriptor(media, Digest.of(data), len(data))


def manifest(config: bytes, *layers: bytes) -> Manifest:
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": blob(config, OCI_CONFIG).to_json(),
            "layers": [blob(layer).to_json() for layer in layers],
        }
    ).encode()
    parsed = parse_manifest(raw, OCI_MANIFEST, Digest.of(raw))
    assert isinstance(parsed, Manifest)
    return parsed


class MemorySource:
    def __init__(self, blobs: dict[Digest, bytes], bad: int = 0) -> None:
        self.blobs = blobs
        self.bad = bad  # how many reads serve wrong bytes before good ones
        self.opened: list[Digest] = []

    def resolve(self, selection: PlatformSelection) -> Sequence[SourceImage]:
        return []

    def open_blob(self, descriptor: Descriptor, resume: Verifier | None = None) -> VerifyingReader:
        self.opened.append(descriptor.digest)
        data = self.blobs[descriptor.digest]
        if self.bad:
            self.bad -= 1
            data = bytes(b ^ 1 for b in data)
        verifier = resume or Verifier(descriptor.digest, descriptor.size, what="blob")
        return VerifyingReader(lambda offset: io.BytesIO(data[offset:]), verifier)

    def retry_blob(self, descriptor: Descriptor) -> bool:
        return True

    def close(self) -> None:
        pass


class MemorySink:
    def __init__(self, fail_on: Digest | None = None) -> None:
        self.events: list[str] = []
        self.blobs: dict[Digest, bytes] = {}
        self.fail_on = fail_on

    def begin(self, placements: Sequence[Placement]) -> None:
        self.events.append("begin")

    def has_blob(self, descriptor: Descriptor, placements: Sequence[Placement]) -> bool:
        return False

    def put_blob(
        self,
        content: BlobContent,
        placements: Sequence[Placement],
        progress: Callable[[int], None] | None = None,
    ) -> str:
        if content.descriptor.digest == self.fail_on:
            raise OSError("disk full")
        with content.open() as reader:
            self.blobs[content.descriptor.digest] = reader.read(-1)
        self.events.append(f"blob {content.descriptor.digest.short}")
        return "written"

    def put_manifest(
        self, manifest: Manifest | Index, name: Reference | None, *, by_digest: bool = False
    ) -> Digest:
        assert all(b.digest in self.blobs for b in getattr(manifest, "blobs", ()))
        self.events.append(f"manifest {manifest.digest.short} {'@' if by_digest else name}")
        return manifest.digest

    def commit(self) -> None:
        self.events.append("commit")

    def abort(self) -> None:
        self.events.append("abort")


def image(m: Manifest, label: str) -> SourceImage:
    return SourceImage(label, m, (m,), {}, m.digest, "memory")


CONFIG_A, CONFIG_B, SHARED, ONLY_B = b'{"a":1}', b'{"b":2}', b"shared layer", b"b layer"


def test_each_blob_once_then_manifests_then_commit() -> None:
    a, b = manifest(CONFIG_A, SHARED), manifest(CONFIG_B, SHARED, ONLY_B)
    source = MemorySource({Digest.of(x): x for x in (CONFIG_A, CONFIG_B, SHARED, ONLY_B)})
    sink = MemorySink()
    placements = [
        Placement(image(a, "a"), (parse_reference("r.example/a:1"),)),
        Placement(image(b, "b"), (parse_reference("r.example/b:1"),)),
    ]
    digests = transfer(source, sink, placements, jobs=3, reporter=SILENT)
    assert digests == [a.digest, b.digest]
    assert sorted(source.opened, key=str) == sorted(
        {Digest.of(x) for x in (CONFIG_A, CONFIG_B, SHARED, ONLY_B)}, key=str
    )
    assert sink.events[0] == "begin" and sink.events[-1] == "commit"
    assert [e.split()[0] for e in sink.events[1:-1]] == ["blob"] * 4 + ["manifest"] * 2


def test_an_index_stores_children_before_itself() -> None:
    amd, arm = manifest(CONFIG_A, SHARED), manifest(CONFIG_B, ONLY_B)
    raw = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX,
         "manifests": [amd.descriptor.to_json(), arm.descriptor.to_json()]}
    ).encode()  # fmt: skip
    top = parse_manifest(raw, OCI_INDEX, Digest.of(raw))
    assert isinstance(top, Index)
    multi = SourceImage("multi", top, (amd, arm), {}, top.digest, "memory")
    source = MemorySource({Digest.of(x): x for x in (CONFIG_A, CONFIG_B, SHARED, ONLY_B)})
    sink = MemorySink()
    name = parse_reference("r.example/multi:1")
    transfer(source, sink, [Placement(multi, (name,))], jobs=2, reporter=SILENT)
    manifests = [e for e in sink.events if e.startswith("manifest")]
    assert manifests == [
        f"manifest {amd.digest.short} @",
        f"manifest {arm.digest.short} @",
        f"manifest {top.digest.short} {name}",
    ]


def test_a_failure_aborts_and_publishes_nothing() -> None:
    a = manifest(CONFIG_A, SHARED, ONLY_B)
    source = MemorySource({Digest.of(x): x for x in (CONFIG_A, SHARED, ONLY_B)})
    sink = MemorySink(fail_on=Digest.of(ONLY_B))
    with pytest.raises(OSError, match="disk full"):
        transfer(source, sink, [Placement(image(a, "a"), ())], jobs=2, reporter=SILENT)
    assert sink.events[-1] == "abort"
    assert not any(e.startswith("manifest") for e in sink.events)


def test_wrong_bytes_are_tried_again_and_never_stored() -> None:
    a = manifest(CONFIG_A, SHARED)
    source = MemorySource({Digest.of(x): x for x in (CONFIG_A, SHARED)}, bad=1)
    sink = MemorySink()
    transfer(source, sink, [Placement(image(a, "a"), ())], jobs=1, reporter=SILENT)
    assert sink.blobs[Digest.of(SHARED)] == SHARED
    assert sink.blobs[Digest.of(CONFIG_A)] == CONFIG_A


def test_a_source_that_keeps_lying_fails_with_an_integrity_error() -> None:
    a = manifest(CONFIG_A, SHARED)
    source = MemorySource({Digest.of(x): x for x in (CONFIG_A, SHARED)}, bad=100)
    sink = MemorySink()
    with pytest.raises(DigestMismatchError):
        transfer(source, sink, [Placement(image(a, "a"), ())], jobs=1, reporter=SILENT)
    assert sink.events[-1] == "abort"


def test_a_store_takes_blobs_first(tmp_path: Path) -> None:
    from imgpull.cache import BlobStore

    a = manifest(CONFIG_A, SHARED)
    source = MemorySource({Digest.of(x): x for x in (CONFIG_A, SHARED)})
    store = BlobStore(tmp_path)
    transfer(source, MemorySink(), [Placement(image(a, "a"), ())], jobs=2,
             reporter=SILENT, store=store)  # fmt: skip
    again = MemorySource({})
    transfer(again, MemorySink(), [Placement(image(a, "a"), ())], jobs=2,
             reporter=SILENT, store=store)  # fmt: skip
    assert again.opened == []  # a warm run reads nothing from the source
