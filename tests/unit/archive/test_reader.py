"""Tests for imgpull.archive.reader: every archive layout, built by hand, and garbage.

Layouts mirror what the real tools write (see tests/e2e/test_archive_reader_formats.py
for the tools themselves): ``docker save`` before Docker 25 (``<id>/layer.tar``, dedup
symlinks), Docker 25+ (OCI layout + manifest.json, uncompressed blobs), OCI layouts,
podman/skopeo docker-archives (``<diff_id>.tar``), the ``dir:`` transport, directories,
whole-archive gzip, and imgpull's own writer (round trip).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imgpull.archive.reader import (
    DOCKER_LAYER,
    ArchivedBlob,
    ArchivedImage,
    ImageArchive,
    sniff_compression,
)
from imgpull.archive.writer import ArchiveImage, write_archive
from imgpull.digest import Digest
from imgpull.errors import ArchiveError
from imgpull.model import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Manifest,
    Platform,
    parse_manifest,
)
from tests.fixtures.images import (
    BuiltImage,
    BuiltIndex,
    Layer,
    build_image,
    build_index,
    build_layer,
    sha256_digest,
)

# -- building archives ----------------------------------------------------------------------

Entry = bytes | tuple[str, str]  # content, or ("symlink"|"hardlink", target)


def write_tar(path: Path, members: Iterable[tuple[str, Entry]], *, dirs: bool = True) -> Path:
    """A tar with ``members`` in order (parent directories first when ``dirs``)."""
    seen: set[str] = set()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, entry in members:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                parent = "/".join(parts[:i])
                if dirs and parent not in seen and parent not in ("", ".", ".."):
                    seen.add(parent)
                    info = tarfile.TarInfo(parent)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            if isinstance(entry, tuple):
                kind, target = entry
                info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                info.linkname = target
                tar.addfile(info)
            else:
                info.size = len(entry)
                tar.addfile(info, io.BytesIO(entry))
    return path


def jdump(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def hexof(digest: str) -> str:
    return digest.split(":", 1)[1]


def _layers(seed: str, count: int) -> list[Layer]:
    return [build_layer({f"etc/{seed}-{i}": f"{seed} {i}\n".encode()}) for i in range(count)]


def image_with(layers: Sequence[Layer], *, media: str = "oci", arch: str = "amd64") -> BuiltImage:
    return build_image(layers, cmd=["/bin/true"], media=media, arch=arch)  # type: ignore[arg-type]


def legacy_members(
    images: Sequence[tuple[BuiltImage, Sequence[str]]],
) -> list[tuple[str, Entry]]:
    """``docker save`` before Docker 25: ``<id>/layer.tar`` (uncompressed), ``<id>/json``,
    ``<id>/VERSION``, ``<config hex>.json``, manifest.json, repositories. A layer whose
    content was already written is a symlink ``../<first id>/layer.tar``, as Docker does."""
    members: list[tuple[str, Entry]] = []
    first_id: dict[str, str] = {}
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for number, (image, tags) in enumerate(images):
        config_name = hexof(image.config_digest) + ".json"
        members.append((config_name, image.config))
        paths = []
        chain = ""
        for layer in image.layers:
            chain = hashlib.sha256(f"{chain} {layer.diff_id} {number}".encode()).hexdigest()
            members.append((f"{chain}/VERSION", b"1.0"))
            members.append((f"{chain}/json", jdump({"id": chain})))
            if layer.diff_id in first_id:
                target = f"../{first_id[layer.diff_id]}/layer.tar"
                members.append((f"{chain}/layer.tar", ("symlink", target)))
            else:
                first_id[layer.diff_id] = chain
                members.append((f"{chain}/layer.tar", layer.uncompressed()))
            paths.append(f"{chain}/layer.tar")
        manifest.append({"Config": config_name, "RepoTags": list(tags) or None, "Layers": paths})
        for tag in tags:
            repo, _, version = tag.rpartition(":")
            repositories.setdefault(repo, {})[version] = chain
    members.append(("manifest.json", jdump(manifest)))
    if repositories:
        members.append(("repositories", jdump(repositories)))
    return members


def podman_members(image: BuiltImage, tags: Sequence[str]) -> list[tuple[str, Entry]]:
    """podman/skopeo docker-archive: ``<diff_id hex>.tar`` layers, ``<id>/layer.tar``
    symlinks to them, ``<config hex>.json``; no directory entries."""
    members: list[tuple[str, Entry]] = []
    written: set[str] = set()
    for layer in image.layers:
        if layer.diff_id not in written:
            written.add(layer.diff_id)
            members.append((hexof(layer.diff_id) + ".tar", layer.uncompressed()))
    members.append((hexof(image.config_digest) + ".json", image.config))
    for number, layer in enumerate(image.layers):
        legacy = hashlib.sha256(f"{number} {layer.diff_id}".encode()).hexdigest()
        members.append((f"{legacy}/layer.tar", ("symlink", f"../{hexof(layer.diff_id)}.tar")))
    members.append(
        (
            "manifest.json",
            jdump(
                [
                    {
                        "Config": hexof(image.config_digest) + ".json",
                        "RepoTags": list(tags),
                        "Layers": [hexof(layer.diff_id) + ".tar" for layer in image.layers],
                    }
                ]
            ),
        )
    )
    return members


@dataclass
class NamedManifest:
    manifest: bytes
    digest: str
    media_type: str
    annotations: Mapping[str, str]


def oci_members(
    entries: Sequence[NamedManifest],
    blobs: Mapping[str, bytes],
    *,
    docker_view: list[dict[str, Any]] | None = None,
    prefix: str = "",
) -> list[tuple[str, Entry]]:
    members: list[tuple[str, Entry]] = [(prefix + "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    for digest, data in blobs.items():
        members.append((f"{prefix}blobs/sha256/{hexof(digest)}", data))
    for entry in entries:
        members.append((f"{prefix}blobs/sha256/{hexof(entry.digest)}", entry.manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": e.media_type,
                "digest": e.digest,
                "size": len(e.manifest),
                **({"annotations": dict(e.annotations)} if e.annotations else {}),
            }
            for e in entries
        ],
    }
    members.append((prefix + "index.json", jdump(index)))
    if docker_view is not None:
        members.append((prefix + "manifest.json", jdump(docker_view)))
    return members


def image_blobs(image: BuiltImage) -> dict[str, bytes]:
    blobs = {image.config_digest: image.config}
    for layer in image.layers:
        blobs[layer.digest] = layer.compressed
    return blobs


def named(image: BuiltImage | BuiltIndex, **annotations: str) -> NamedManifest:
    if isinstance(image, BuiltIndex):
        return NamedManifest(image.manifest, image.digest, image.media_type, annotations)
    return NamedManifest(image.manifest, image.manifest_digest, image.media_type, annotations)


def uncompressed_oci_image(layers: Sequence[Layer]) -> tuple[BuiltImage, bytes, dict[str, bytes]]:
    """Docker 25 ``docker save``: uncompressed layers as blobs, an OCI manifest with
    ``application/vnd.oci.image.layer.v1.tar``; returns (image, manifest bytes, blobs)."""
    image = image_with(layers)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": image.config_digest,
            "size": len(image.config),
        },
        "layers": [
            {"mediaType": OCI_LAYER, "digest": layer.diff_id, "size": layer.uncompressed_size}
            for layer in image.layers
        ],
    }
    raw = json.dumps(manifest, indent=2).encode()
    blobs = {image.config_digest: image.config}
    for layer in image.layers:
        blobs[layer.diff_id] = layer.uncompressed()
    return image, raw, blobs


def read_all(archive: ImageArchive, blob: ArchivedBlob | str) -> bytes:
    with archive.open(blob) as stream:
        return stream.read()


def uncompressed_digest(archive: ImageArchive, blob: ArchivedBlob) -> str:
    """sha256 of the layer's tar, streaming (gunzip on the fly)."""
    hasher = hashlib.sha256()
    inflate = zlib.decompressobj(wbits=31) if blob.compression == "gzip" else None
    with archive.open(blob) as stream:
        while chunk := stream.read(64 * 1024):
            hasher.update(inflate.decompress(chunk) if inflate else chunk)
    return "sha256:" + hasher.hexdigest()


def assert_layers_match(archive: ImageArchive, image: ArchivedImage) -> None:
    config = json.loads(image.config)
    assert [layer.diff_id for layer in image.layers] == config["rootfs"]["diff_ids"]
    for layer in image.layers:
        assert uncompressed_digest(archive, layer) == layer.diff_id


def fails(path: Path, *contains: str) -> ArchiveError:
    """Opening ``path`` fails with ONE line naming it, saying ``contains``, with a hint."""
    with pytest.raises(ArchiveError) as caught:
        ImageArchive(path).close()
    return check_error(caught.value, path, *contains)


def check_error(error: ArchiveError, path: Path, *contains: str) -> ArchiveError:
    message = str(error)
    assert "\n" not in message and "\r" not in message, message
    assert message.startswith(str(path) + ": "), message
    for text in contains:
        assert text.lower() in message.lower(), f"{text!r} not in {message!r}"
    assert error.hint and "\n" not in error.hint, error.hint
    return error


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_layers() -> list[Layer]:
    return _layers("base", 3)


@pytest.fixture(scope="module")
def dup_image(base_layers: list[Layer]) -> BuiltImage:
    """Four layers, the second and the fourth identical (docker save symlinks one)."""
    return image_with([base_layers[0], base_layers[1], base_layers[2], base_layers[1]])


# -- docker save before Docker 25 --------------------------------------------------------


def test_legacy_docker_save_with_symlinked_duplicate(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = write_tar(
        tmp_path / "legacy.tar", legacy_members([(dup_image, ["nginx:1.27", "127.0.0.1:5000/x:1"])])
    )
    with ImageArchive(path) as archive:
        assert archive.format == "docker"
        assert archive.index is None and archive.indexes == ()
        assert archive.compression == "none" and archive.seekable
        (image,) = archive.images
        assert image.names == ("nginx:1.27", "127.0.0.1:5000/x:1")
        assert image.config == dup_image.config
        assert str(image.config_digest) == dup_image.config_digest
        assert image.config_media_type == DOCKER_CONFIG
        assert image.manifest is None
        assert image.platform == Platform("linux", "amd64")
        assert len(image.layers) == 4
        for layer, built in zip(image.layers, dup_image.layers, strict=True):
            assert layer.compression == "none"
            assert layer.media_type == DOCKER_LAYER
            assert layer.declared is None and not layer.mislabeled
            assert layer.diff_id == built.diff_id
            # An uncompressed layer's digest is its diff_id, stated by the config.
            assert str(layer.digest) == built.diff_id
            assert layer.size == built.uncompressed_size
            assert read_all(archive, layer) == built.uncompressed()
        # The symlinked duplicate resolves to the first copy: one member, read once.
        assert image.layers[1].member == image.layers[3].member
        assert image.layers[1].member.endswith("/layer.tar")
        assert len(list(archive.blobs())) == 3
        assert_layers_match(archive, image)


def test_legacy_untagged_image_has_no_names(tmp_path: Path, dup_image: BuiltImage) -> None:
    """``docker save IMAGE_ID`` writes ``"RepoTags": null``."""
    path = write_tar(tmp_path / "id.tar", legacy_members([(dup_image, [])]))
    with ImageArchive(path) as archive:
        (image,) = archive.images
        assert image.names == () and image.tags == ()
        assert image.label == f"image {Digest.parse(dup_image.config_digest).short}"


def test_multi_image_docker_archive(tmp_path: Path, base_layers: list[Layer]) -> None:
    first = image_with(base_layers[:2])
    second = image_with([base_layers[0], *_layers("other", 2)], arch="arm64")
    path = write_tar(
        tmp_path / "two.tar", legacy_members([(first, ["a:1", "a:latest"]), (second, ["b:2"])])
    )
    with ImageArchive(path) as archive:
        assert [i.names for i in archive.images] == [("a:1", "a:latest"), ("b:2",)]
        assert [str(i.config_digest) for i in archive.images] == [
            first.config_digest,
            second.config_digest,
        ]
        assert archive.images[1].platform.architecture == "arm64"
        # The shared base layer is stored once: the second image links to the first's.
        assert archive.images[0].layers[0].member == archive.images[1].layers[0].member
        for image in archive.images:
            assert_layers_match(archive, image)


def test_podman_docker_archive(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = write_tar(
        tmp_path / "podman.tar",
        podman_members(dup_image, ["localhost/test/y:2"]),
        dirs=False,
    )
    with ImageArchive(path) as archive:
        assert archive.format == "docker"
        (image,) = archive.images
        assert image.names == ("localhost/test/y:2",)
        assert [layer.member for layer in image.layers] == [
            hexof(layer.diff_id) + ".tar" for layer in dup_image.layers
        ]
        assert_layers_match(archive, image)


def test_gzip_compressed_layers_in_a_docker_archive(
    tmp_path: Path, base_layers: list[Layer]
) -> None:
    """docker load accepts gzip layer.tar files; their digest is not stated anywhere."""
    image = image_with(base_layers[:2])
    members = legacy_members([(image, ["gz:1"])])
    members = [
        (name, image.layers[0].compressed if entry == image.layers[0].uncompressed() else entry)
        for name, entry in members
    ]
    path = write_tar(tmp_path / "gz-layers.tar", members)
    with ImageArchive(path) as archive:
        first, second = archive.images[0].layers
        assert (first.compression, first.media_type, first.digest) == (
            "gzip",
            DOCKER_LAYER_GZIP,
            None,
        )
        assert second.compression == "none"
        with archive.open(first) as stream:
            assert stream.read() == image.layers[0].compressed
            assert str(stream.digest) == image.layers[0].digest  # type: ignore[attr-defined]
        assert_layers_match(archive, archive.images[0])


def test_zstd_layer_makes_the_image_oci(tmp_path: Path, base_layers: list[Layer]) -> None:
    """A zstd layer has no Docker media type: the whole image gets OCI types."""
    image = image_with(base_layers[:2])
    fake_zstd = b"\x28\xb5\x2f\xfd" + b"zstd frame follows"
    members = [
        (name, fake_zstd if entry == image.layers[1].uncompressed() else entry)
        for name, entry in legacy_members([(image, ["z:1"])])
    ]
    path = write_tar(tmp_path / "zstd.tar", members)
    with ImageArchive(path) as archive:
        (only,) = archive.images
        assert [layer.compression for layer in only.layers] == ["none", "zstd"]
        assert [layer.media_type for layer in only.layers] == [OCI_LAYER, OCI_LAYER_ZSTD]
        assert only.config_media_type == OCI_CONFIG


# -- OCI layouts and Docker 25 ----------------------------------------------------------------


def test_docker25_save_both_views(tmp_path: Path, dup_image: BuiltImage) -> None:
    image, manifest, blobs = uncompressed_oci_image(dup_image.layers)
    digest = sha256_digest(manifest)
    entry = NamedManifest(
        manifest,
        digest,
        OCI_MANIFEST,
        {ANNOTATION_CONTAINERD_NAME: "docker.io/library/nginx:1.27", ANNOTATION_REF_NAME: "1.27"},
    )
    docker_view = [
        {
            "Config": f"blobs/sha256/{hexof(image.config_digest)}",
            "RepoTags": ["nginx:1.27"],
            "Layers": [f"blobs/sha256/{hexof(layer.diff_id)}" for layer in image.layers],
        }
    ]
    path = write_tar(tmp_path / "d25.tar", oci_members([entry], blobs, docker_view=docker_view))
    with ImageArchive(path) as archive:
        assert archive.format == "docker+oci"
        assert archive.index is not None and len(archive.index.manifests) == 1
        (only,) = archive.images
        assert only.names == ("nginx:1.27", "docker.io/library/nginx:1.27")
        assert only.tags == ("1.27",)
        assert only.manifest is not None
        assert only.manifest.raw == manifest and str(only.manifest.digest) == digest
        assert [layer.media_type for layer in only.layers] == [OCI_LAYER] * 4
        assert [str(layer.digest) for layer in only.layers] == list(image.diff_ids)
        assert_layers_match(archive, only)


def test_oci_layout_keeps_manifest_bytes(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = write_tar(
        tmp_path / "oci.tar",
        oci_members(
            [named(dup_image, **{ANNOTATION_REF_NAME: "127.0.0.1:5000/test/x:1"})],
            image_blobs(dup_image),
        ),
    )
    with ImageArchive(path) as archive:
        assert archive.format == "oci"
        (image,) = archive.images
        # podman writes the full name into ref.name: a name, not a tag.
        assert image.names == ("127.0.0.1:5000/test/x:1",) and image.tags == ()
        assert image.manifest is not None
        assert image.manifest.raw == dup_image.manifest
        assert str(image.manifest.digest) == dup_image.manifest_digest
        assert image.config_media_type == OCI_CONFIG
        for layer, built in zip(image.layers, dup_image.layers, strict=True):
            assert str(layer.digest) == built.digest
            assert layer.compression == "gzip" and layer.media_type == OCI_LAYER_GZIP
            assert read_all(archive, layer) == built.compressed
        assert image.layers[1].member == image.layers[3].member
        assert_layers_match(archive, image)


def test_oci_layout_with_dot_slash_member_names(tmp_path: Path, dup_image: BuiltImage) -> None:
    """``tar -C layout -cf x.tar .`` prefixes every member with ``./``."""
    path = write_tar(
        tmp_path / "dot.tar",
        oci_members([named(dup_image)], image_blobs(dup_image), prefix="./"),
    )
    with ImageArchive(path) as archive:
        (image,) = archive.images
        assert image.layers[0].member.startswith("blobs/sha256/")
        assert_layers_match(archive, image)


def test_oci_index_with_several_manifests_and_names(
    tmp_path: Path, base_layers: list[Layer]
) -> None:
    one = image_with(base_layers[:1])
    two = image_with(base_layers[1:], media="docker")
    three = image_with(_layers("three", 1))
    entries = [
        named(one, **{ANNOTATION_CONTAINERD_NAME: "reg.local/one:1", ANNOTATION_REF_NAME: "1"}),
        named(one, **{ANNOTATION_CONTAINERD_NAME: "reg.local/one:latest"}),
        named(two, **{ANNOTATION_REF_NAME: "mytag"}),
        named(three),
    ]
    blobs = {**image_blobs(one), **image_blobs(two), **image_blobs(three)}
    path = write_tar(tmp_path / "many.tar", oci_members(entries, blobs))
    with ImageArchive(path) as archive:
        assert len(archive.images) == 3  # one manifest listed twice is one image
        first, second, third = archive.images
        assert first.names == ("reg.local/one:1", "reg.local/one:latest")
        assert first.tags == ("1",)
        assert (second.names, second.tags) == ((), ("mytag",))
        assert second.manifest is not None and second.manifest.media_type == DOCKER_MANIFEST
        assert second.config_media_type == DOCKER_CONFIG
        assert [layer.media_type for layer in second.layers] == [DOCKER_LAYER_GZIP] * 2
        assert (third.names, third.tags) == ((), ())
        for image in archive.images:
            assert_layers_match(archive, image)


def test_nested_index_with_attestation_and_missing_child(
    tmp_path: Path, base_layers: list[Layer]
) -> None:
    amd = image_with(base_layers[:1], arch="amd64")
    arm = image_with(base_layers[:1], arch="arm64")
    index = build_index([amd, arm], media="oci", attestation=True)
    (attestation,) = index.attestations
    blobs = {**image_blobs(amd), **image_blobs(attestation)}
    blobs[amd.manifest_digest] = amd.manifest
    blobs[attestation.manifest_digest] = attestation.manifest  # arm64 not saved
    entry = named(index, **{ANNOTATION_CONTAINERD_NAME: "docker.io/library/multi:1"})
    path = write_tar(tmp_path / "nested.tar", oci_members([entry], blobs))
    with ImageArchive(path) as archive:
        assert archive.images == ()
        (nested,) = archive.indexes
        assert nested.names == ("docker.io/library/multi:1",)
        assert nested.index.raw == index.manifest
        assert [str(i.manifest.digest) for i in nested.images if i.manifest] == [
            amd.manifest_digest,
            attestation.manifest_digest,
        ]
        assert [i.is_attestation for i in nested.images] == [False, True]
        assert [str(d.digest) for d in nested.missing] == [arm.manifest_digest]
        statement = nested.images[1].layers[0]
        assert statement.compression == "none"
        assert statement.media_type == "application/vnd.in-toto+json"  # kept as declared
        assert_layers_match(archive, nested.images[0])


def test_mislabeled_layers_in_dir_transport(tmp_path: Path, dup_image: BuiltImage) -> None:
    """``podman save --format docker-dir``: manifest.json is a registry manifest naming
    uncompressed layers ``tar.gzip``; blobs are files named by hex digest."""
    layout = tmp_path / "docker-dir"
    layout.mkdir()
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG,
            "size": len(dup_image.config),
            "digest": dup_image.config_digest,
        },
        "layers": [
            {
                "mediaType": DOCKER_LAYER_GZIP,
                "size": layer.uncompressed_size,
                "digest": layer.diff_id,
            }
            for layer in dup_image.layers
        ],
    }
    raw = jdump(manifest)
    (layout / "manifest.json").write_bytes(raw)
    (layout / "version").write_text("Directory Transport Version: 1.1\n")
    (layout / hexof(dup_image.config_digest)).write_bytes(dup_image.config)
    for built in dup_image.layers:
        (layout / hexof(built.diff_id)).write_bytes(built.uncompressed())
    with ImageArchive(layout) as archive:
        assert archive.format == "dir" and archive.is_directory
        (image,) = archive.images
        assert image.names == ()
        assert image.manifest is not None and image.manifest.raw == raw
        for layer in image.layers:
            assert layer.compression == "none"
            assert layer.declared == DOCKER_LAYER_GZIP
            assert layer.media_type == DOCKER_LAYER and layer.mislabeled
        assert_layers_match(archive, image)


def test_unpacked_docker_save_directory(tmp_path: Path, dup_image: BuiltImage) -> None:
    packed = write_tar(tmp_path / "legacy.tar", legacy_members([(dup_image, ["x:1"])]))
    unpacked = tmp_path / "unpacked"
    with tarfile.open(packed) as tar:
        tar.extractall(unpacked, filter="tar")
    with ImageArchive(unpacked) as archive:
        assert archive.format == "docker" and archive.is_directory
        (image,) = archive.images
        assert image.layers[1].member == image.layers[3].member  # the symlink resolved
        assert_layers_match(archive, image)
        assert read_all(archive, "manifest.json").startswith(b"[")


# -- imgpull's own archives -------------------------------------------------------------------


def _archive_image(image: BuiltImage, full: str, tag: str) -> ArchiveImage:
    manifest = parse_manifest(image.manifest, image.media_type, Digest.parse(image.manifest_digest))
    assert isinstance(manifest, Manifest)
    short = full.removeprefix("docker.io/").removeprefix("library/")
    return ArchiveImage(manifest, (short,), (full,), (tag,))


@pytest.mark.parametrize("archive_format", ["docker", "oci"])
def test_round_trip_of_imgpull_writer(
    tmp_path: Path, dup_image: BuiltImage, base_layers: list[Layer], archive_format: str
) -> None:
    other = image_with(_layers("second", 2), media="docker")
    blobs = {
        Digest.parse(k): v for k, v in {**image_blobs(dup_image), **image_blobs(other)}.items()
    }
    path = tmp_path / "imgpull.tar"
    with path.open("wb") as out:
        write_archive(
            out,
            [
                _archive_image(dup_image, "docker.io/library/nginx:1.27", "1.27"),
                _archive_image(dup_image, "127.0.0.1:5000/x:1", "1"),
                _archive_image(other, "docker.io/team/app:2", "2"),
            ],
            lambda digest: io.BytesIO(blobs[digest]),
            archive_format=archive_format,  # type: ignore[arg-type]
        )
    with ImageArchive(path) as archive:
        assert archive.format == ("docker+oci" if archive_format == "docker" else "oci")
        first, second = archive.images
        if archive_format == "docker":
            assert first.names == (
                "nginx:1.27",
                "127.0.0.1:5000/x:1",
                "docker.io/library/nginx:1.27",
            )
        else:
            assert first.names == ("docker.io/library/nginx:1.27", "127.0.0.1:5000/x:1")
        assert first.tags == ("1.27", "1")
        for read, built in ((first, dup_image), (second, other)):
            assert read.manifest is not None
            assert read.manifest.raw == built.manifest
            assert read.config == built.config
            assert [str(layer.digest) for layer in read.layers] == list(built.layer_digests)
            for layer, original in zip(read.layers, built.layers, strict=True):
                assert read_all(archive, layer) == original.compressed
            assert_layers_match(archive, read)


# -- compressed archives, streams, memory --------------------------------------------------


@pytest.mark.parametrize("kind", ["gzip", "bzip2"])
def test_compressed_whole_archive(tmp_path: Path, dup_image: BuiltImage, kind: str) -> None:
    plain = write_tar(tmp_path / "legacy.tar", legacy_members([(dup_image, ["x:1"])]))
    packed = tmp_path / f"legacy.tar.{kind}"
    compress = gzip.compress if kind == "gzip" else bz2.compress
    packed.write_bytes(compress(plain.read_bytes()))
    with ImageArchive(packed) as archive:
        assert archive.compression == kind and not archive.seekable
        (image,) = archive.images
        assert image.names == ("x:1",)
        assert_layers_match(archive, image)
        with archive.open(image.layers[0]) as stream:
            assert stream.seekable()  # small members were kept from the indexing pass


def test_compressed_archive_reads_once_in_archive_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bigger-than-cached layers in archive order reuse one decompressing stream."""
    big = [build_layer({f"data/{i}": os.urandom(1536 * 1024)}) for i in range(3)]
    image = image_with(big)
    plain = write_tar(tmp_path / "big.tar", legacy_members([(image, ["big:1"])]))
    packed = tmp_path / "big.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    from imgpull.archive.compressed import CompressedTar

    opened: list[int] = []
    original = CompressedTar._decompressor

    def counting(self: Any) -> Any:
        opened.append(1)
        return original(self)

    monkeypatch.setattr(CompressedTar, "_decompressor", counting)
    with ImageArchive(packed) as archive:
        assert len(opened) == 1  # the indexing pass
        order = archive.in_archive_order(reversed(archive.images[0].layers))
        assert [b.offset for b in order] == sorted(b.offset for b in order)
        for blob in order:
            assert uncompressed_digest(archive, blob) == blob.diff_id
        assert len(opened) == 2  # one more pass for all three layers
        uncompressed_digest(archive, order[0])  # going back starts again
        assert len(opened) == 3
        with archive.open(order[1]) as stream:
            assert not stream.seekable()
            with pytest.raises(io.UnsupportedOperation):
                stream.seek(10)


def test_streams_are_independent_and_seekable(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = write_tar(tmp_path / "legacy.tar", legacy_members([(dup_image, ["x:1"])]))
    with ImageArchive(path) as archive:
        first, second = archive.images[0].layers[:2]
        want_a, want_b = dup_image.layers[0].uncompressed(), dup_image.layers[1].uncompressed()
        with archive.open(first) as a, archive.open(second) as b:
            got_a, got_b = bytearray(), bytearray()
            while True:
                chunk_a, chunk_b = a.read(1000), b.read(777)
                got_a += chunk_a
                got_b += chunk_b
                if not chunk_a and not chunk_b:
                    break
            assert (bytes(got_a), bytes(got_b)) == (want_a, want_b)
        with archive.open(first) as stream:
            assert stream.seekable()
            stream.seek(100)
            assert stream.read(50) == want_a[100:150]
            stream.seek(10, os.SEEK_CUR)
            assert stream.tell() == 160
            assert stream.read() == want_a[160:]
            assert stream.digest is None  # type: ignore[attr-defined]  # not read in order

        results: list[bytes] = []

        def worker() -> None:
            results.append(read_all(archive, first))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [want_a] * 4


def test_constant_memory(tmp_path: Path) -> None:
    """Indexing and streaming a 48 MiB layer never holds it in memory."""
    size = 48 * 1024 * 1024
    layer_path = tmp_path / "layer.bin"
    with layer_path.open("wb") as out:
        for i in range(size // (1024 * 1024)):
            out.write(hashlib.sha256(str(i).encode()).digest() * 32768)
    hasher = hashlib.sha256()
    with layer_path.open("rb") as src:
        while chunk := src.read(1 << 20):
            hasher.update(chunk)
    diff_id = "sha256:" + hasher.hexdigest()
    config = jdump(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    )
    path = tmp_path / "big.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in (("c.json", config),):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(layer_path, arcname="l/layer.tar")
        manifest = jdump([{"Config": "c.json", "RepoTags": ["big:1"], "Layers": ["l/layer.tar"]}])
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    tracemalloc.start()
    try:
        with ImageArchive(path) as archive:
            (layer,) = archive.images[0].layers
            with archive.open(layer) as stream:
                while stream.read(1 << 20):
                    pass
                assert str(stream.digest) == diff_id  # type: ignore[attr-defined]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, peak


def test_read_small_and_raw_members(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = write_tar(tmp_path / "legacy.tar", legacy_members([(dup_image, ["x:1"])]))
    with ImageArchive(path) as archive:
        top = archive.images[0].layers[-1]
        repositories = json.loads(archive.read_small("./repositories"))
        assert repositories == {
            "x": {
                "1": json.loads(archive.read_small("manifest.json"))[0]["Layers"][-1].split("/")[0]
            }
        }
        assert read_all(archive, top.member) == dup_image.layers[-1].uncompressed()
        with pytest.raises(ArchiveError, match="more than the 10 bytes"):
            archive.read_small("manifest.json", limit=10)
        for bad in ("../etc/passwd", "/etc/passwd", "a/../../b"):
            with pytest.raises(ArchiveError, match="outside the archive"):
                archive.read_small(bad)
        with pytest.raises(ArchiveError, match="missing"):
            archive.open("nope.json")


def test_sniff_compression() -> None:
    assert sniff_compression(b"\x1f\x8b\x08\x00") == "gzip"
    assert sniff_compression(b"\x28\xb5\x2f\xfd\x00") == "zstd"
    assert sniff_compression(b"BZh91AY&SY....") == "bzip2"
    assert sniff_compression(b"BZh-is-a-file-name") == "none"
    assert sniff_compression(b"\xfd7zXZ\x00\x00") == "xz"
    assert sniff_compression(b"etc/\x00\x00\x00") == "none"
    assert sniff_compression(b"") == "none"


# -- garbage: one clear ArchiveError each ------------------------------------------------------


def _legacy_with(
    tmp_path: Path, image: BuiltImage, change: Callable[[list[tuple[str, Entry]]], None]
) -> Path:
    members = legacy_members([(image, ["x:1"])])
    change(members)
    return write_tar(tmp_path / "bad.tar", members)


def _set_manifest(members: list[tuple[str, Entry]], edit: Callable[[Any], Any]) -> None:
    for number, (name, entry) in enumerate(members):
        if name == "manifest.json":
            assert isinstance(entry, bytes)
            members[number] = (name, jdump(edit(json.loads(entry))))


def test_missing_file(tmp_path: Path) -> None:
    fails(tmp_path / "nope.tar", "no such file")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tar"
    path.write_bytes(b"")
    fails(path, "empty")


def test_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "random.tar"
    path.write_bytes(os.urandom(4096))
    fails(path, "not a tar")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 200)
    fails(path, "not a tar")


def test_gzip_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.gz"
    path.write_bytes(gzip.compress(b"not a tar at all" * 100))
    fails(path, "not a tar")


def test_tar_without_manifest_or_index(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "plain.tar", [("etc/hosts", b"127.0.0.1 localhost\n")])
    fails(path, "neither manifest.json nor index.json")


def test_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    fails(tmp_path / "d", "neither manifest.json nor index.json")


def test_zstd_compressed_archive(tmp_path: Path) -> None:
    path = tmp_path / "x.tar.zst"
    path.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(100))
    error = fails(path, "zstd-compressed")
    assert "zstd -d" in error.hint


def test_manifest_json_not_json(tmp_path: Path) -> None:
    fails(
        write_tar(tmp_path / "b.tar", [("manifest.json", b"[{oops")]),
        "manifest.json is not valid JSON",
    )


def test_manifest_json_wrong_shape(tmp_path: Path) -> None:
    fails(write_tar(tmp_path / "b.tar", [("manifest.json", b'"text"')]), "manifest.json is neither")
    fails(write_tar(tmp_path / "c.tar", [("manifest.json", b"[42]")]), "not a JSON object")


def test_missing_layer_member(tmp_path: Path, dup_image: BuiltImage) -> None:
    first = dup_image.layers[0].uncompressed()
    path = _legacy_with(
        tmp_path, dup_image, lambda m: m.__setitem__(slice(None), [x for x in m if x[1] != first])
    )
    fails(path, "layer 1 of image 1", "layer.tar is missing")


def test_missing_config(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = _legacy_with(tmp_path, dup_image, lambda m: m.__setitem__(0, ("renamed.json", m[0][1])))
    fails(path, "the config of image 1 of manifest.json", ".json is missing")


def test_config_not_json(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = _legacy_with(tmp_path, dup_image, lambda m: m.__setitem__(0, (m[0][0], b"\x00garbage")))
    fails(path, "the config of image 1 of manifest.json is not valid JSON")


def test_config_with_wrong_types(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = _legacy_with(
        tmp_path, dup_image, lambda m: m.__setitem__(0, (m[0][0], b'{"rootfs": "layers"}'))
    )
    fails(path, "not an image config")


def test_layer_count_differs_from_diff_ids(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = _legacy_with(
        tmp_path,
        dup_image,
        lambda m: _set_manifest(m, lambda d: [{**d[0], "Layers": d[0]["Layers"][:3]}]),
    )
    fails(path, "3 layers", "4 diff_ids")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Layers", "/etc/passwd"),
        ("Layers", "../outside/layer.tar"),
        ("Layers", "a/../../b/layer.tar"),
        ("Config", "../config.json"),
        ("Config", "/config.json"),
    ],
)
def test_paths_outside_the_archive_are_refused(
    tmp_path: Path, dup_image: BuiltImage, field: str, value: str
) -> None:
    def edit(data: Any) -> Any:
        entry = dict(data[0])
        entry[field] = [value, *entry["Layers"][1:]] if field == "Layers" else value
        return [entry]

    path = _legacy_with(tmp_path, dup_image, lambda m: _set_manifest(m, edit))
    error = fails(path, "outside the archive")
    assert "never follows" in error.hint


@pytest.mark.parametrize(
    ("kind", "target", "message"),
    [
        ("symlink", "../../../etc/passwd", "outside the archive"),
        ("symlink", "/etc/passwd", "outside the archive"),
        ("hardlink", "../etc/passwd", "outside the archive"),
        ("symlink", "layer.tar", "too many links"),
        ("symlink", "../nowhere/layer.tar", "which is missing"),
    ],
)
def test_unsafe_or_broken_links(
    tmp_path: Path, dup_image: BuiltImage, kind: str, target: str, message: str
) -> None:
    def relink(members: list[tuple[str, Entry]]) -> None:
        for number, (name, entry) in enumerate(members):
            if isinstance(entry, tuple):  # the duplicate layer's symlink
                members[number] = (name, (kind, target))

    fails(_legacy_with(tmp_path, dup_image, relink), message)


def test_directory_symlink_escaping(tmp_path: Path, dup_image: BuiltImage) -> None:
    packed = write_tar(tmp_path / "legacy.tar", legacy_members([(dup_image, ["x:1"])]))
    unpacked = tmp_path / "unpacked"
    with tarfile.open(packed) as tar:
        tar.extractall(unpacked, filter="tar")
    (tmp_path / "secret").write_bytes(b"secret")
    layer = next(p for p in unpacked.glob("*/layer.tar") if p.is_symlink())
    layer.unlink()
    layer.symlink_to(tmp_path / "secret")
    fails(unpacked, "outside the directory")


def test_bzip2_layer_is_refused(tmp_path: Path, dup_image: BuiltImage) -> None:
    first = dup_image.layers[0].uncompressed()
    path = _legacy_with(
        tmp_path,
        dup_image,
        lambda m: m.__setitem__(
            next(i for i, (_, e) in enumerate(m) if e == first),
            (next(n for n, e in m if e == first), bz2.compress(first)),
        ),
    )
    fails(path, "layer 1 of image 1", "bzip2-compressed")


def test_truncated_tar(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = write_tar(tmp_path / "whole.tar", legacy_members([(dup_image, ["x:1"])]))
    data = path.read_bytes()
    # Cut inside the big first layer: it ends early and the members after it are gone.
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: data.index(dup_image.layers[0].uncompressed()[:512]) + 1000])
    fails(cut, "truncated")


def test_truncated_gzip_archive(tmp_path: Path, dup_image: BuiltImage) -> None:
    plain = write_tar(tmp_path / "whole.tar", legacy_members([(dup_image, ["x:1"])]))
    packed = gzip.compress(plain.read_bytes())
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(packed[: len(packed) // 2])
    fails(path, "truncated")


def _oci_with(
    tmp_path: Path, image: BuiltImage, change: Callable[[list[tuple[str, Entry]]], None]
) -> Path:
    members = oci_members([named(image, **{ANNOTATION_REF_NAME: "1"})], image_blobs(image))
    change(members)
    return write_tar(tmp_path / "bad-oci.tar", members)


def test_oci_index_points_to_missing_manifest(tmp_path: Path, dup_image: BuiltImage) -> None:
    gone = f"blobs/sha256/{hexof(dup_image.manifest_digest)}"
    path = _oci_with(
        tmp_path, dup_image, lambda m: m.__setitem__(slice(None), [x for x in m if x[0] != gone])
    )
    fails(path, "manifest 1 of index.json", "is missing")


def test_oci_manifest_does_not_match_digest(tmp_path: Path, dup_image: BuiltImage) -> None:
    name = f"blobs/sha256/{hexof(dup_image.manifest_digest)}"

    def corrupt(members: list[tuple[str, Entry]]) -> None:
        for number, (member, _) in enumerate(members):
            if member == name:
                members[number] = (member, dup_image.manifest.replace(b"2", b"3", 1))

    fails(_oci_with(tmp_path, dup_image, corrupt), "does not match its digest")


def test_oci_layer_size_differs(tmp_path: Path, dup_image: BuiltImage) -> None:
    name = f"blobs/sha256/{hexof(dup_image.layers[0].digest)}"

    def grow(members: list[tuple[str, Entry]]) -> None:
        for number, (member, entry) in enumerate(members):
            if member == name:
                assert isinstance(entry, bytes)
                members[number] = (member, entry + b"\0")

    fails(_oci_with(tmp_path, dup_image, grow), "layer 1 of manifest 1", "its manifest says")


def test_index_json_not_an_index(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = _oci_with(
        tmp_path, dup_image, lambda m: m.__setitem__(-1, ("index.json", dup_image.manifest))
    )
    fails(path, "index.json is not an image index")
    path = _oci_with(tmp_path, dup_image, lambda m: m.__setitem__(-1, ("index.json", b"{")))
    fails(path, "index.json is not valid JSON")


def test_corrupt_layer_fails_when_read_through(tmp_path: Path, dup_image: BuiltImage) -> None:
    """A layer of the right size but wrong content: found while streaming it."""
    name = f"blobs/sha256/{hexof(dup_image.layers[2].digest)}"

    def flip(members: list[tuple[str, Entry]]) -> None:
        for number, (member, entry) in enumerate(members):
            if member == name:
                assert isinstance(entry, bytes)
                members[number] = (member, entry[:-1] + bytes([entry[-1] ^ 1]))

    path = _oci_with(tmp_path, dup_image, flip)
    with ImageArchive(path) as archive:
        layer = archive.images[0].layers[2]
        with pytest.raises(ArchiveError) as caught, archive.open(layer) as stream:
            stream.read()
        check_error(caught.value, path, "is corrupt", "hashes to")
        assert len(read_all(archive, layer.member)) == layer.size  # raw member: no check
        with archive.open(layer, verify=False) as stream:
            assert len(stream.read()) == layer.size


def test_a_pipe_is_refused(tmp_path: Path) -> None:
    """``imgpull push <(docker save x)``: reading needs a real file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    error = fails(fifo, "a pipe")
    assert "save it to a file" in error.hint


def test_a_reader_outlives_its_archive(tmp_path: Path, dup_image: BuiltImage) -> None:
    path = write_tar(tmp_path / "legacy.tar", legacy_members([(dup_image, ["x:1"])]))
    archive = ImageArchive(path)
    layer = archive.images[0].layers[0]
    stream = archive.open(layer)
    archive.close()
    with open(path, "rb") as unrelated:  # may take the archive's descriptor number
        assert stream.read() == dup_image.layers[0].uncompressed()
        assert unrelated.read(1)
    stream.close()
    with pytest.raises(ValueError, match="closed"):
        archive.open(layer)
