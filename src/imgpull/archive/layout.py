"""What an archive's top-level files say: ``index.json`` (the OCI view: every image with
its full name and tag) and ``manifest.json`` (Docker's view: the image each loads).

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from imgpull.archive.records import blob_path
from imgpull.digest import Digest
from imgpull.model import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    OCI_INDEX,
    Descriptor,
    Index,
    Manifest,
)
from imgpull.source import Attached, Placement

ArchiveFormat = Literal["docker", "oci"]
# Which image an attached manifest (a signature, an SBOM) in index.json belongs to.
ANNOTATION_SUBJECT = "dev.imgpull.subject"
# Its cosign tag. Not org.opencontainers.image.ref.name: `ctr images import` names every
# entry that has one as an image and fails unpacking a signature's payload.
ANNOTATION_TAG = "dev.imgpull.tag"
FORMATS: tuple[ArchiveFormat, ...] = ("docker", "oci")


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    """One image to store: its manifest(s) and the names it is known by."""

    manifest: Manifest  # the image the Docker view (manifest.json) loads
    docker_tags: tuple[str, ...]  # RepoTags entries, e.g. "nginx:1.27"; may be empty
    full_names: tuple[str, ...]  # canonical references, e.g. "docker.io/library/nginx:1.27"
    tags: tuple[str, ...]  # bare tags for org.opencontainers.image.ref.name
    # Several platforms: every image manifest stored, and the index naming them, which
    # the OCI view (index.json) points at instead of ``manifest``.
    platform_manifests: tuple[Manifest, ...] = ()
    index: Index | None = None

    @classmethod
    def of(cls, placement: Placement) -> ArchiveImage:
        image = placement.image
        docker_tags: list[str] = []
        full_names: list[str] = []
        tags: list[str] = []
        for ref in placement.names:
            tag = ref.docker_tag()
            if tag:
                docker_tags.append(tag)
            digest = ref.digest or image.resolved
            full_names.append(f"{ref.name}:{ref.tag}" if ref.tag else f"{ref.name}@{digest}")
            tags.append(ref.tag or "")
        top = image.top
        if isinstance(top, Index):
            return cls(
                image.primary,
                tuple(docker_tags),
                tuple(full_names),
                tuple(tags),
                image.manifests,
                top,
            )
        return cls(top, tuple(docker_tags), tuple(full_names), tuple(tags))

    @property
    def top(self) -> Descriptor:
        """What index.json lists for this image."""
        if self.index is not None:
            return self.index.descriptor
        return self.manifest.descriptor

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return self.platform_manifests or (self.manifest,)


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), sort_keys=False).encode()


def merge(images: Sequence[ArchiveImage]) -> list[ArchiveImage]:
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


def index_json(images: Sequence[ArchiveImage], attached: Sequence[Attached] = ()) -> dict[str, Any]:
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
    for item in attached:
        entry = item.manifest.descriptor.to_json()
        # No image name, so containerd imports it as content only.
        entry["annotations"] = {ANNOTATION_SUBJECT: str(item.subject)}
        if item.tag:
            entry["annotations"][ANNOTATION_TAG] = item.tag
        manifests.append(entry)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}


def docker_manifest_json(images: Sequence[ArchiveImage]) -> list[dict[str, Any]]:
    """Docker's view: the image each entry loads (the primary platform's)."""
    return [
        {
            "Config": blob_path(image.manifest.config.digest),
            "RepoTags": list(image.docker_tags),
            "Layers": [blob_path(layer.digest) for layer in image.manifest.layers],
        }
        for image in images
    ]


def json_bytes(data: Any) -> bytes:
    return _json(data)
