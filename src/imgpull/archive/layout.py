"""Writing image archives from a blob store.

Two formats, one layout:

* ``docker`` (default): an OCI image layout (``oci-layout``, ``index.json``,
  ``blobs/sha256/...`` holding the original compressed blobs) plus Docker's
  ``manifest.json`` pointing into ``blobs/``, as ``docker save`` writes since Docker 25.
  ``docker load`` (20.10 and newer), ``podman load`` and skopeo's ``docker-archive:``
  read the ``manifest.json`` view; OCI tools read the layout. Nothing is recompressed.
* ``oci``: the OCI image layout alone.

Member names are built only from validated digests and fixed names, so no tag or
repository name can make an entry escape the archive. Image names live inside JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

from imgpull.archive.tar import TarStream
from imgpull.digest import Digest
from imgpull.model import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    OCI_INDEX,
    Descriptor,
    Index,
    Manifest,
)

ArchiveFormat = Literal["docker", "oci"]
FORMATS: tuple[ArchiveFormat, ...] = ("docker", "oci")


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    """One image to store: its manifest and the names it is known by."""

    manifest: Manifest  # the image the Docker view (manifest.json) loads
    docker_tags: tuple[str, ...]  # RepoTags entries, e.g. "nginx:1.27"; may be empty
    full_names: tuple[str, ...]  # canonical references, e.g. "docker.io/library/nginx:1.27"
    tags: tuple[str, ...]  # bare tags for org.opencontainers.image.ref.name
    # Several platforms: every image manifest stored, and the index naming them, which
    # the OCI view (index.json) points at instead of ``manifest``.
    platform_manifests: tuple[Manifest, ...] = ()
    index: Index | None = None

    @property
    def top(self) -> Descriptor:
        """What index.json lists for this image."""
        if self.index is not None:
            return Descriptor(self.index.media_type, self.index.digest, len(self.index.raw))
        return self.manifest.descriptor

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return self.platform_manifests or (self.manifest,)


BlobOpener = Callable[[Digest], BinaryIO]


def blob_path(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=False).encode()


def _merge(images: Sequence[ArchiveImage]) -> list[ArchiveImage]:
    """Images with the same manifest become one entry carrying every name."""
    merged: dict[Digest, ArchiveImage] = {}
    for image in images:
        seen = merged.get(image.top.digest)
        if seen is None:
            merged[image.top.digest] = image
            continue
        # (full name, tag) pairs stay together: two names may share a tag.
        pairs = dict.fromkeys(
            (
                *zip(seen.full_names, seen.tags, strict=True),
                *zip(image.full_names, image.tags, strict=True),
            )
        )
        merged[image.top.digest] = ArchiveImage(
            seen.manifest,
            tuple(dict.fromkeys((*seen.docker_tags, *image.docker_tags))),
            tuple(name for name, _ in pairs),
            tuple(tag for _, tag in pairs),
            seen.platform_manifests,
            seen.index,
        )
    return list(merged.values())


def index_json(images: Sequence[ArchiveImage]) -> dict[str, Any]:
    manifests: list[dict[str, Any]] = []
    for image in images:
        names = list(zip(image.full_names, image.tags, strict=True)) or [("", "")]
        for full_name, tag in names:
            entry = image.top.to_json()
            annotations = {}
            if full_name:
                annotations[ANNOTATION_CONTAINERD_NAME] = full_name
            if tag:
                annotations[ANNOTATION_REF_NAME] = tag
            if annotations:
                entry["annotations"] = annotations
            manifests.append(entry)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


def docker_manifest_json(images: Sequence[ArchiveImage]) -> list[dict[str, Any]]:
    return [
        {
            "Config": blob_path(image.manifest.config.digest),
            "RepoTags": list(image.docker_tags),
            "Layers": [blob_path(layer.digest) for layer in image.manifest.layers],
        }
        for image in images
    ]


def write_archive(
    out: BinaryIO,
    images: Sequence[ArchiveImage],
    open_blob: BlobOpener,
    *,
    archive_format: ArchiveFormat = "docker",
) -> int:
    """Write the archive to ``out`` (a file or a pipe); returns the bytes written."""
    unique = _merge(images)
    tar = TarStream(out)
    tar.add_bytes("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
    tar.add_directory("blobs")
    algorithms = sorted(
        {d.digest.algorithm for image in unique for m in image.manifests for d in m.blobs}
        | {image.top.digest.algorithm for image in unique}
    )
    for algorithm in algorithms:
        tar.add_directory(f"blobs/{algorithm}")
    written: set[Digest] = set()

    def add_json(digest: Digest, raw: bytes) -> None:
        if digest not in written:
            written.add(digest)
            tar.add_bytes(blob_path(digest), raw)

    for image in unique:
        if image.index is not None:
            add_json(image.index.digest, image.index.raw)
        for manifest in image.manifests:
            add_json(manifest.digest, manifest.raw)
            for descriptor in manifest.blobs:
                if descriptor.digest in written:
                    continue
                written.add(descriptor.digest)
                with open_blob(descriptor.digest) as source:
                    tar.add_file(blob_path(descriptor.digest), source, descriptor.size)
    tar.add_bytes("index.json", _json(index_json(unique)))
    if archive_format == "docker":
        tar.add_bytes("manifest.json", _json(docker_manifest_json(unique)))
    tar.close()
    return tar.written
