"""The archive reader against archives the real tools write: docker save (Docker 20.10:
the old ``<id>/layer.tar`` format), podman save (docker-archive, oci-archive, oci-dir,
docker-dir), skopeo copy (docker-archive:, oci-archive:, zstd, multi-platform --all).

The source images are built offline and written with imgpull's own writer, then loaded
into the tools; no registry is involved. For every archive the reader must find the
names the tool recorded, every layer, and diff_ids that match the config, checked by
hashing each layer's uncompressed stream (gunzip / zstd -dc on the fly).

What the tools write (pinned here):

* ``docker save`` 20.10: ``<layer id>/{VERSION,json,layer.tar}``, ``<config hex>.json``,
  ``manifest.json``, ``repositories``; layers uncompressed; a layer identical to an
  earlier one is a symlink ``<id>/layer.tar -> ../<first id>/layer.tar``; saving by ID
  gives ``"RepoTags": null`` and no ``repositories``.
* ``podman save`` (docker-archive): ``<diff_id hex>.tar`` layers (a duplicate stored once,
  listed twice), ``<config hex>.json``, ``<id>/layer.tar`` symlinks to the ``.tar`` files;
  ``-m`` with two names of one image writes ONE entry with both RepoTags.
* ``podman save --format oci-archive``: gzip-recompressed layers and a REWRITTEN config
  (docker-only fields dropped), so its digest is not the image ID podman reports;
  ``ref.name`` holds the full name; index.json has no mediaType.
* ``podman save --format docker-dir``: the ``dir:`` layout; the manifest declares
  ``tar.gzip`` for layers that are stored uncompressed (digest = diff_id).
* skopeo ``oci-archive:`` -> ``oci-archive:`` keeps every byte (manifest digest kept);
  ``docker-archive:`` -> ``oci-archive:REF`` converts like podman, ``REF`` becomes
  ``ref.name``; ``docker-archive:...:name`` writes a fully qualified RepoTag.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from imgpull.archive.reader import DOCKER_LAYER, ArchivedBlob, ArchivedImage, ImageArchive
from imgpull.archive.writer import ArchiveImage, write_archive
from imgpull.digest import Digest
from imgpull.model import (
    ANNOTATION_REF_NAME,
    DOCKER_LAYER_GZIP,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Manifest,
    parse_manifest,
)
from tests.fixtures.images import (
    BuiltImage,
    BuiltIndex,
    File,
    Symlink,
    build_image,
    build_index,
    build_layer,
    busybox_bytes,
    host_arch,
)
from tests.fixtures.loaders import DockerDaemon, Podman, Skopeo

pytestmark = pytest.mark.e2e

X_NAME = "127.0.0.1:5000/test/x:1"
Y_NAME = "test/y:2"
B_NAME = "127.0.0.1:5000/test/b:1"


@dataclass(frozen=True)
class Source:
    archive: Path  # written by imgpull: x (two names) and b
    x: BuiltImage  # four layers, the 2nd and 4th identical
    b: BuiltImage  # Docker media types, shares the base layer
    multi: BuiltIndex  # amd64 + arm64 + attestation
    multi_dir: Path  # OCI layout directory holding ``multi`` as ref.name "multi"


def _archive_image(image: BuiltImage, names: list[tuple[str, str, str]]) -> list[ArchiveImage]:
    manifest = parse_manifest(image.manifest, image.media_type, Digest.parse(image.manifest_digest))
    assert isinstance(manifest, Manifest)
    return [ArchiveImage(manifest, (tag,), (full,), (short,)) for tag, full, short in names]


def _blob_store(*images: BuiltImage) -> dict[Digest, bytes]:
    blobs: dict[Digest, bytes] = {}
    for image in images:
        blobs[Digest.parse(image.config_digest)] = image.config
        blobs[Digest.parse(image.manifest_digest)] = image.manifest
        for layer in image.layers:
            blobs[Digest.parse(layer.digest)] = layer.compressed
    return blobs


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("reader-source")
    arch = host_arch()
    base = build_layer({"bin/busybox": File(busybox_bytes(), 0o755), "bin/sh": Symlink("busybox")})
    dup = build_layer({"etc/dup": b"the same layer twice\n"})
    extra = build_layer({"etc/extra": b"extra\n"})
    x = build_image([base, dup, extra, dup], cmd=["/bin/sh"], arch=arch, media="oci")
    b = build_image(
        [base, build_layer({"etc/b": b"b\n"})], cmd=["/bin/sh"], arch=arch, media="docker"
    )
    blobs = _blob_store(x, b)
    archive = root / "source.tar"
    with archive.open("wb") as out:
        write_archive(
            out,
            [
                *_archive_image(x, [(X_NAME, X_NAME, "1"), (Y_NAME, "docker.io/test/y:2", "2")]),
                *_archive_image(b, [(B_NAME, B_NAME, "1")]),
            ],
            lambda digest: io.BytesIO(blobs[digest]),
        )
    amd = build_image([base], cmd=["/bin/sh"], arch="amd64", media="oci")
    arm = build_image([base], cmd=["/bin/sh"], arch="arm64", variant="v8", media="oci")
    multi = build_index([amd, arm], media="oci", attestation=True)
    multi_dir = root / "multi-layout"
    (multi_dir / "blobs" / "sha256").mkdir(parents=True)
    for digest, data in _blob_store(*multi.children).items():
        (multi_dir / "blobs" / digest.algorithm / digest.hex).write_bytes(data)
    (multi_dir / "blobs" / "sha256" / multi.digest.split(":")[1]).write_bytes(multi.manifest)
    (multi_dir / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": multi.media_type,
                "digest": multi.digest,
                "size": len(multi.manifest),
                "annotations": {ANNOTATION_REF_NAME: "multi"},
            }
        ],
    }
    (multi_dir / "index.json").write_text(json.dumps(index))
    return Source(archive, x, b, multi, multi_dir)


# -- checking what was read ----------------------------------------------------------------


def _zstd_digest(stream: Any) -> str:
    """sha256 of ``zstd -dc`` of the stream, fed and drained concurrently (no buffering)."""
    zstd = shutil.which("zstd")
    assert zstd, "the zstd command is needed to check zstd layers"
    proc = subprocess.Popen([zstd, "-dc"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    stdin = proc.stdin

    def feed() -> None:
        with stdin:
            while chunk := stream.read(64 * 1024):
                stdin.write(chunk)

    feeder = threading.Thread(target=feed)
    feeder.start()
    hasher = hashlib.sha256()
    while chunk := proc.stdout.read(64 * 1024):
        hasher.update(chunk)
    feeder.join()
    assert proc.wait() == 0
    return "sha256:" + hasher.hexdigest()


def uncompressed_digest(archive: ImageArchive, layer: ArchivedBlob) -> str:
    with archive.open(layer) as stream:
        if layer.compression == "zstd":
            return _zstd_digest(stream)
        hasher = hashlib.sha256()
        inflate = zlib.decompressobj(wbits=31) if layer.compression == "gzip" else None
        while chunk := stream.read(256 * 1024):
            hasher.update(inflate.decompress(chunk) if inflate else chunk)
        if inflate:
            assert inflate.eof
        return "sha256:" + hasher.hexdigest()


def check_image(archive: ImageArchive, image: ArchivedImage, built: BuiltImage) -> None:
    """Layer count, diff_ids as in the config and as hashed, config digest and bytes."""
    config = json.loads(image.config)
    assert Digest.of(image.config) == image.config_digest
    assert config["rootfs"]["diff_ids"] == list(built.diff_ids)
    assert [layer.diff_id for layer in image.layers] == list(built.diff_ids)
    for layer in image.layers:
        assert uncompressed_digest(archive, layer) == layer.diff_id
    if image.manifest is not None:
        assert image.manifest.config.digest == image.config_digest
        assert [str(layer.digest) for layer in image.layers] == [
            str(d.digest) for d in image.manifest.layers
        ]


def tar_symlinks(path: Path) -> dict[str, str]:
    with tarfile.open(path) as tar:
        return {m.name: m.linkname for m in tar.getmembers() if m.issym()}


def tar_names(path: Path) -> set[str]:
    with tarfile.open(path) as tar:
        return set(tar.getnames())


# -- docker save (Docker 20.10: the old format) ------------------------------------------


def test_docker_save_legacy_format(
    clean_dockerd: DockerDaemon, source: Source, tmp_path: Path
) -> None:
    docker = clean_dockerd
    docker.load(source.archive)
    image_id = docker.inspect_image(X_NAME)["Id"]
    assert image_id == source.x.config_digest

    saved = tmp_path / "docker-save.tar"
    docker.docker("save", "-o", str(saved), X_NAME, Y_NAME)
    names = tar_names(saved)
    assert {"manifest.json", "repositories"} <= names
    assert "index.json" not in names and "oci-layout" not in names  # not the Docker 25 layout
    links = tar_symlinks(saved)
    assert len(links) == 1  # the duplicate layer
    ((link, target),) = links.items()
    assert link.endswith("/layer.tar") and target.startswith("../")

    with ImageArchive(saved) as archive:
        assert archive.format == "docker"
        (image,) = archive.images
        assert image.names == (X_NAME, Y_NAME)
        assert str(image.config_digest) == image_id
        assert image.config == source.x.config  # docker keeps the config bytes
        assert image.manifest is None
        assert len(image.layers) == 4
        assert {layer.compression for layer in image.layers} == {"none"}
        assert {layer.media_type for layer in image.layers} == {DOCKER_LAYER}
        assert image.layers[1].member == image.layers[3].member  # the symlink, resolved
        assert [str(layer.digest) for layer in image.layers] == list(source.x.diff_ids)
        check_image(archive, image, source.x)

    # docker save | gzip: the same, read through one decompressing pass per blob order.
    packed = tmp_path / "docker-save.tar.gz"
    with saved.open("rb") as raw, gzip.open(packed, "wb", compresslevel=1) as out:
        shutil.copyfileobj(raw, out)
    with ImageArchive(packed) as archive:
        assert archive.compression == "gzip"
        (image,) = archive.images
        assert image.names == (X_NAME, Y_NAME)
        check_image(archive, image, source.x)

    # By ID: "RepoTags": null, no repositories file.
    by_id = tmp_path / "by-id.tar"
    docker.docker("save", "-o", str(by_id), image_id)
    assert "repositories" not in tar_names(by_id)
    with ImageArchive(by_id) as archive:
        (image,) = archive.images
        assert image.names == ()
        assert str(image.config_digest) == image_id


def test_docker_save_two_images(
    clean_dockerd: DockerDaemon, source: Source, tmp_path: Path
) -> None:
    docker = clean_dockerd
    docker.load(source.archive)
    saved = tmp_path / "two.tar"
    docker.docker("save", "-o", str(saved), X_NAME, B_NAME)
    ids = {docker.inspect_image(ref)["Id"]: ref for ref in (X_NAME, B_NAME)}
    with ImageArchive(saved) as archive:
        assert len(archive.images) == 2
        by_name = {image.names: image for image in archive.images}
        assert set(by_name) == {(X_NAME,), (B_NAME,)}
        for image in archive.images:
            assert ids[str(image.config_digest)] == image.names[0]
        check_image(archive, by_name[(X_NAME,)], source.x)
        check_image(archive, by_name[(B_NAME,)], source.b)
        # The base layer both images share is stored once.
        assert by_name[(X_NAME,)].layers[0].member == by_name[(B_NAME,)].layers[0].member


# -- podman save ------------------------------------------------------------------------------


def test_podman_save_formats(clean_podman: Podman, source: Source, tmp_path: Path) -> None:
    podman = clean_podman
    podman.load(source.archive)
    podman_id = podman.inspect_image(X_NAME)["Id"]
    assert "sha256:" + podman_id.removeprefix("sha256:") == source.x.config_digest

    docker_archive = tmp_path / "podman.tar"
    podman.podman("save", "-o", str(docker_archive), X_NAME)
    with ImageArchive(docker_archive) as archive:
        assert archive.format == "docker"
        (image,) = archive.images
        assert image.names == (X_NAME,)
        assert str(image.config_digest) == source.x.config_digest
        assert [layer.member for layer in image.layers] == [
            d.split(":")[1] + ".tar" for d in source.x.diff_ids
        ]
        check_image(archive, image, source.x)

    both = tmp_path / "podman-m.tar"
    podman.podman("save", "-m", "-o", str(both), X_NAME, Y_NAME)
    with ImageArchive(both) as archive:
        (image,) = archive.images  # one entry, both names
        assert image.names[0] == X_NAME
        assert len(image.names) == 2 and image.names[1].endswith(Y_NAME)  # localhost/...
        check_image(archive, image, source.x)

    oci_archive = tmp_path / "podman-oci.tar"
    podman.podman("save", "--format", "oci-archive", "-o", str(oci_archive), X_NAME)
    with ImageArchive(oci_archive) as archive:
        assert archive.format == "oci"
        assert archive.index is not None
        assert "mediaType" not in json.loads(archive.index.raw)
        (image,) = archive.images
        assert image.names == (X_NAME,) and image.tags == ()  # ref.name is the full name
        assert image.manifest is not None
        assert {layer.compression for layer in image.layers} == {"gzip"}
        assert {layer.media_type for layer in image.layers} == {OCI_LAYER_GZIP}
        # podman rewrote the config: not the image ID it reports, same diff_ids.
        assert str(image.config_digest) != source.x.config_digest
        check_image(archive, image, source.x)

    oci_dir = tmp_path / "podman-oci-dir"
    podman.podman("save", "--format", "oci-dir", "-o", str(oci_dir), X_NAME)
    with ImageArchive(oci_dir) as archive:
        assert archive.format == "oci" and archive.is_directory
        (image,) = archive.images
        assert image.names == (X_NAME,)
        check_image(archive, image, source.x)

    docker_dir = tmp_path / "podman-docker-dir"
    podman.podman("save", "--format", "docker-dir", "-o", str(docker_dir), X_NAME)
    with ImageArchive(docker_dir) as archive:
        assert archive.format == "dir"
        (image,) = archive.images
        assert image.names == ()
        assert image.manifest is not None
        assert image.manifest.raw == (docker_dir / "manifest.json").read_bytes()
        for layer in image.layers:  # labelled tar.gzip, stored uncompressed
            assert layer.declared == DOCKER_LAYER_GZIP
            assert (layer.compression, layer.media_type) == ("none", DOCKER_LAYER)
            assert layer.mislabeled
        check_image(archive, image, source.x)


# -- skopeo -------------------------------------------------------------------------------------


def test_skopeo_archives(skopeo: Skopeo, source: Source, tmp_path: Path) -> None:
    # oci-archive -> oci-archive: every byte kept, so a push keeps the manifest digest.
    copy = tmp_path / "copy.tar"
    skopeo.copy(f"oci-archive:{source.archive}:1", f"oci-archive:{copy}")
    with ImageArchive(copy) as archive:
        assert archive.format == "oci"
        (image,) = archive.images
        assert image.names == () and image.tags == ()  # no reference given
        assert image.manifest is not None
        assert image.manifest.raw == source.x.manifest
        assert str(image.manifest.digest) == source.x.manifest_digest
        assert image.config == source.x.config
        check_image(archive, image, source.x)

    # docker-archive -> oci-archive:REF: converted like podman; REF is the ref.name.
    converted = tmp_path / "converted.tar"
    skopeo.copy(f"docker-archive:{source.archive}:{B_NAME}", f"oci-archive:{converted}:mytag")
    with ImageArchive(converted) as archive:
        (image,) = archive.images
        assert (image.names, image.tags) == ((), ("mytag",))
        check_image(archive, image, source.b)

    # docker-archive -> docker-archive:NAME: a fully qualified RepoTag.
    redone = tmp_path / "redone.tar"
    skopeo.copy(f"docker-archive:{source.archive}:{Y_NAME}", f"docker-archive:{redone}:foo/bar:3")
    with ImageArchive(redone) as archive:
        assert archive.format == "docker"
        (image,) = archive.images
        assert image.names == ("docker.io/foo/bar:3",)
        check_image(archive, image, source.x)


def test_skopeo_zstd_layers(skopeo: Skopeo, source: Source, tmp_path: Path) -> None:
    out = tmp_path / "zstd.tar"
    skopeo.copy(
        f"oci-archive:{source.archive}:1",
        f"oci-archive:{out}",
        "--dest-compress-format",
        "zstd",
    )
    with ImageArchive(out) as archive:
        (image,) = archive.images
        assert {layer.compression for layer in image.layers} == {"zstd"}
        assert {layer.media_type for layer in image.layers} == {OCI_LAYER_ZSTD}
        check_image(archive, image, source.x)


def test_skopeo_multi_platform_archive(skopeo: Skopeo, source: Source, tmp_path: Path) -> None:
    out = tmp_path / "multi.tar"
    skopeo.copy(f"oci:{source.multi_dir}:multi", f"oci-archive:{out}:multi", "--all")
    with ImageArchive(out) as archive:
        assert archive.images == ()
        (index,) = archive.indexes
        assert index.tags == ("multi",)
        assert index.index.raw == source.multi.manifest  # exact bytes: the digest survives
        assert index.missing == ()
        children = {str(i.manifest.digest): i for i in index.images if i.manifest}
        assert set(children) == {c.manifest_digest for c in source.multi.children}
        for built in source.multi.images:
            check_image(archive, children[built.manifest_digest], built)
        (attestation,) = source.multi.attestations
        assert children[attestation.manifest_digest].is_attestation
