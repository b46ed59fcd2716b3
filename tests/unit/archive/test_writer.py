"""Tests for imgpull.archive.writer: the tar layout, names, sharing, merging and determinism."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from typing import Any, BinaryIO

import pytest

from imgpull.archive.writer import ArchiveFormat, ArchiveImage, blob_path, write_archive
from imgpull.digest import Digest
from imgpull.model import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Manifest,
    parse_manifest,
)

ODD_NAMES = (
    "../../etc/passwd",
    "/etc/shadow",
    "..",
    "a/../../b:1",
    "evil\nname:tag",
    "C:\\Windows\\system32:x",
    "ünïcødé/名前:タグ",
    "blobs/sha256/../../../x",
)


class BlobStore:
    """A dict-backed blob opener that counts how often each blob was opened."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}
        self.opened: dict[Digest, int] = {}

    def add(self, data: bytes) -> tuple[Digest, int]:
        digest = Digest.of(data)
        self.blobs[digest] = data
        return digest, len(data)

    def open(self, digest: Digest) -> BinaryIO:
        self.opened[digest] = self.opened.get(digest, 0) + 1
        return io.BytesIO(self.blobs[digest])


def make_manifest(store: BlobStore, config: bytes, layers: Sequence[bytes]) -> Manifest:
    config_digest, config_size = store.add(config)
    layer_descs = []
    for data in layers:
        digest, size = store.add(data)
        layer_descs.append({"mediaType": OCI_LAYER_GZIP, "digest": str(digest), "size": size})
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": str(config_digest), "size": config_size},
            "layers": layer_descs,
        },
        indent=2,
    ).encode()
    parsed = parse_manifest(body, OCI_MANIFEST, Digest.of(body))
    assert isinstance(parsed, Manifest)
    return parsed


def image(manifest: Manifest, name: str, tag: str) -> ArchiveImage:
    return ArchiveImage(manifest, (f"{name}:{tag}",), (f"registry.example/{name}:{tag}",), (tag,))


def write(
    images: Sequence[ArchiveImage], store: BlobStore, archive_format: ArchiveFormat = "docker"
) -> bytes:
    out = io.BytesIO()
    written = write_archive(out, images, store.open, archive_format=archive_format)
    data = out.getvalue()
    assert written == len(data)
    assert len(data) % 512 == 0
    return data


def read(data: bytes) -> dict[str, Any]:
    """Member name -> bytes (files) or None (directories); fails on duplicates."""
    members: dict[str, Any] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar.getmembers():
            assert info.name not in members, f"duplicate member {info.name}"
            if info.isdir():
                members[info.name] = None
            else:
                assert info.isreg(), info.name
                handle = tar.extractfile(info)
                assert handle is not None
                content = handle.read()
                assert len(content) == info.size
                members[info.name] = content
    return members


def check_safe_names(data: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for info in tar.getmembers():
            name = info.name
            assert not name.startswith("/"), name
            assert ".." not in name.split("/"), name
            assert "\\" not in name and "\n" not in name and ":" not in name, name
            fixed = ("oci-layout", "index.json", "manifest.json", "blobs", "blobs/sha256")
            is_blob = name.startswith("blobs/sha256/") and len(name) == len("blobs/sha256/") + 64
            assert name in fixed or is_blob, name
            assert info.mode in (0o644, 0o755)
            assert info.mtime == 0
            assert info.uid == 0 and info.gid == 0
            # Extraction with the strictest stdlib filter must accept every member.
            tarfile.data_filter(info, "/tmp/imgpull-never-extracted")


def check_blobs(members: dict[str, Any]) -> None:
    for name, content in members.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(content).hexdigest() == name.rsplit("/", 1)[1]


@pytest.fixture
def store() -> BlobStore:
    return BlobStore()


def test_layout_and_contents(store: BlobStore) -> None:
    manifest = make_manifest(store, b'{"os":"linux"}', [b"layer one" * 100, b"layer two"])
    data = write([image(manifest, "app", "1")], store)
    check_safe_names(data)
    members = read(data)
    check_blobs(members)
    blob_names = {blob_path(d.digest) for d in manifest.blobs} | {blob_path(manifest.digest)}
    assert set(members) == {
        "oci-layout",
        "index.json",
        "manifest.json",
        "blobs",
        "blobs/sha256",
        *blob_names,
    }
    assert json.loads(members["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert members[blob_path(manifest.digest)] == manifest.raw
    for descriptor in manifest.blobs:
        content = members[blob_path(descriptor.digest)]
        assert content == store.blobs[descriptor.digest]
        assert len(content) == descriptor.size

    index = json.loads(members["index.json"])
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": str(manifest.digest),
            "size": len(manifest.raw),
            "annotations": {
                ANNOTATION_CONTAINERD_NAME: "registry.example/app:1",
                ANNOTATION_REF_NAME: "1",
            },
        }
    ]
    assert json.loads(members["manifest.json"]) == [
        {
            "Config": blob_path(manifest.config.digest),
            "RepoTags": ["app:1"],
            "Layers": [blob_path(layer.digest) for layer in manifest.layers],
        }
    ]


def test_every_member_path_exists(store: BlobStore) -> None:
    a = make_manifest(store, b"config a", [b"shared", b"only a"])
    b = make_manifest(store, b"config b", [b"shared", b"only b"])
    members = read(write([image(a, "a", "1"), image(b, "b", "2")], store))
    for entry in json.loads(members["manifest.json"]):
        assert entry["Config"] in members
        for layer in entry["Layers"]:
            assert layer in members
    for entry in json.loads(members["index.json"])["manifests"]:
        assert blob_path(Digest.parse(entry["digest"])) in members


def test_odd_names_never_become_paths(store: BlobStore) -> None:
    manifest = make_manifest(store, b"config", [b"layer"])
    odd = ArchiveImage(manifest, ODD_NAMES, ODD_NAMES, ODD_NAMES)
    data = write([odd], store)
    check_safe_names(data)
    members = read(data)
    check_blobs(members)
    # The names survive, as data, inside the JSON documents.
    assert json.loads(members["manifest.json"])[0]["RepoTags"] == list(ODD_NAMES)
    names = [
        m["annotations"][ANNOTATION_CONTAINERD_NAME]
        for m in json.loads(members["index.json"])["manifests"]
    ]
    assert names == list(ODD_NAMES)


def test_shared_layers_stored_once(store: BlobStore) -> None:
    a = make_manifest(store, b"config a", [b"base layer" * 1000, b"only a"])
    b = make_manifest(store, b"config b", [b"base layer" * 1000, b"only b"])
    data = write([image(a, "a", "1"), image(b, "b", "1")], store)
    check_safe_names(data)
    members = read(data)  # fails on duplicate members
    blobs = [name for name in members if name.startswith("blobs/sha256/")]
    unique = {d.digest for m in (a, b) for d in m.blobs} | {a.digest, b.digest}
    assert len(blobs) == len(unique) == 7  # 2 manifests, 2 configs, 3 layers
    shared = a.layers[0].digest
    assert store.opened[shared] == 1
    docker = json.loads(members["manifest.json"])
    assert [entry["RepoTags"] for entry in docker] == [["a:1"], ["b:1"]]
    assert docker[0]["Layers"][0] == docker[1]["Layers"][0] == blob_path(shared)


def test_same_manifest_twice_is_one_entry(store: BlobStore) -> None:
    manifest = make_manifest(store, b"config", [b"layer"])
    data = write([image(manifest, "app", "1"), image(manifest, "app", "latest")], store)
    members = read(data)
    docker = json.loads(members["manifest.json"])
    assert len(docker) == 1
    assert docker[0]["RepoTags"] == ["app:1", "app:latest"]
    index = json.loads(members["index.json"])["manifests"]
    assert [(m["annotations"][ANNOTATION_CONTAINERD_NAME], m["digest"]) for m in index] == [
        ("registry.example/app:1", str(manifest.digest)),
        ("registry.example/app:latest", str(manifest.digest)),
    ]
    assert [m["annotations"][ANNOTATION_REF_NAME] for m in index] == ["1", "latest"]
    assert len([n for n in members if n.startswith("blobs/sha256/")]) == 3


def test_identical_references_are_not_duplicated(store: BlobStore) -> None:
    manifest = make_manifest(store, b"config", [b"layer"])
    data = write([image(manifest, "app", "1"), image(manifest, "app", "1")], store)
    members = read(data)
    assert json.loads(members["manifest.json"])[0]["RepoTags"] == ["app:1"]
    assert len(json.loads(members["index.json"])["manifests"]) == 1


def test_two_names_with_the_same_tag_both_in_index(store: BlobStore) -> None:
    # e.g. `imgpull pull test/hello:1 public/hello:1`: one manifest, two repositories.
    manifest = make_manifest(store, b"config", [b"layer"])
    data = write([image(manifest, "test/hello", "1"), image(manifest, "public/hello", "1")], store)
    members = read(data)
    assert json.loads(members["manifest.json"])[0]["RepoTags"] == [
        "test/hello:1",
        "public/hello:1",
    ]
    index = json.loads(members["index.json"])["manifests"]
    assert [m["annotations"][ANNOTATION_CONTAINERD_NAME] for m in index] == [
        "registry.example/test/hello:1",
        "registry.example/public/hello:1",
    ]


def test_digest_reference_without_tags(store: BlobStore) -> None:
    manifest = make_manifest(store, b"config", [b"layer"])
    full = f"registry.example/app@{manifest.digest}"
    members = read(write([ArchiveImage(manifest, (), (full,), ("",))], store))
    assert json.loads(members["manifest.json"])[0]["RepoTags"] == []
    (entry,) = json.loads(members["index.json"])["manifests"]
    assert entry["annotations"] == {ANNOTATION_CONTAINERD_NAME: full}


def test_image_without_any_name(store: BlobStore) -> None:
    manifest = make_manifest(store, b"config", [b"layer"])
    members = read(write([ArchiveImage(manifest, (), (), ())], store))
    (entry,) = json.loads(members["index.json"])["manifests"]
    assert "annotations" not in entry
    assert entry["digest"] == str(manifest.digest)


def test_deterministic(store: BlobStore) -> None:
    a = make_manifest(store, b"config a", [b"shared", b"only a" * 999])
    b = make_manifest(store, b"config b", [b"shared", b"only b"])
    images = [image(a, "a", "1"), image(b, "b", "2"), image(a, "a", "latest")]
    first = write(images, store)
    second = write(images, store)
    assert first == second
    assert hashlib.sha256(first).digest() == hashlib.sha256(write(images, store)).digest()


def test_oci_format_has_no_manifest_json(store: BlobStore) -> None:
    manifest = make_manifest(store, b"config", [b"layer"])
    docker = read(write([image(manifest, "app", "1")], store, "docker"))
    oci_data = write([image(manifest, "app", "1")], store, "oci")
    check_safe_names(oci_data)
    oci = read(oci_data)
    assert "manifest.json" not in oci
    assert set(docker) - set(oci) == {"manifest.json"}
    for name in oci:
        assert oci[name] == docker[name]


def test_empty_layer_and_block_sized_layer(store: BlobStore) -> None:
    manifest = make_manifest(store, b"c" * 512, [b"", b"x" * 1024, b"y" * 513])
    members = read(write([image(manifest, "app", "1")], store))
    check_blobs(members)
    for descriptor in manifest.blobs:
        assert len(members[blob_path(descriptor.digest)]) == descriptor.size


def test_short_blob_fails(store: BlobStore) -> None:
    manifest = make_manifest(store, b"config", [b"full layer content"])
    store.blobs[manifest.layers[0].digest] = b"short"
    with pytest.raises(OSError):
        write([image(manifest, "app", "1")], store)
