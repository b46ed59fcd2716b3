"""What an archive holds, as read: its images, indexes and layers, with the names they
carry; and the media-type rules for stored layers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from imgpull.digest import Digest
from imgpull.model import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    DOCKER_LAYER_GZIP,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
    Index,
    Manifest,
    Platform,
)

Compression = Literal["gzip", "zstd", "none"]
ArchiveKind = Literal["oci", "docker", "docker+oci", "dir"]
OuterCompression = Literal["none", "gzip", "bzip2", "xz"]

#: Uncompressed Docker layer (what ``docker save`` stores); containerd's zstd variant.
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_ZSTD: Final = "application/vnd.docker.image.rootfs.diff.tar.zstd"
OCI_ND_LAYER: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"

MiB: Final = 1024 * 1024
SMALL_LIMIT: Final = 8 * MiB
CHUNK: Final = MiB
_MAX_LINK_HOPS: Final = 16
MAX_INDEX_DEPTH: Final = 4
# Compressed archives: small members are kept from the one indexing pass.
_CACHE_MEMBER: Final = MiB
_CACHE_TOTAL: Final = 32 * MiB
HEAD: Final = 16

TAG_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

LAYER_TYPES: Final[dict[str, tuple[str, Compression]]] = {
    DOCKER_LAYER: ("docker", "none"),
    DOCKER_LAYER_GZIP: ("docker", "gzip"),
    DOCKER_LAYER_ZSTD: ("docker", "zstd"),
    OCI_LAYER: ("oci", "none"),
    OCI_LAYER_GZIP: ("oci", "gzip"),
    OCI_LAYER_ZSTD: ("oci", "zstd"),
    OCI_ND_LAYER: ("oci-nd", "none"),
    OCI_ND_LAYER + "+gzip": ("oci-nd", "gzip"),
    OCI_ND_LAYER + "+zstd": ("oci-nd", "zstd"),
}
BY_FAMILY: Final[dict[tuple[str, Compression], str]] = {v: k for k, v in LAYER_TYPES.items()}


# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchivedBlob:
    """One layer as stored in the archive.

    ``digest`` is what the archive states for the stored bytes, not yet verified: the
    OCI descriptor (and ``blobs/`` file name), or, for an uncompressed layer of a
    docker-archive, the config's diff_id (an uncompressed layer's digest *is* its
    diff_id). None when nothing states it (a compressed layer in a docker-archive):
    hash while reading (:attr:`BlobReader.digest`). :meth:`ImageArchive.open` verifies a
    stated digest when the blob is read through.

    ``media_type`` matches the stored bytes: the declared type when it agrees with the
    sniffed ``compression``, else the same family's type for what is really stored
    (podman's ``docker-dir`` labels uncompressed layers ``tar.gzip``); ``declared`` is
    what the manifest said (None in docker-archives, which declare nothing).
    """

    member: str  # resolved member path (relative, also for directories)
    size: int
    digest: Digest | None
    media_type: str
    compression: Compression
    diff_id: str | None
    declared: str | None = None
    offset: int = field(default=0, compare=False)  # data offset in the (uncompressed) tar

    @property
    def mislabeled(self) -> bool:
        """True when the declared media type names another compression than stored."""
        return self.declared is not None and self.declared != self.media_type


@dataclass(frozen=True, slots=True)
class ArchivedImage:
    """One image of the archive: enough to push it.

    ``manifest`` is the archive's own manifest, exact bytes (OCI layouts, ``dir``):
    pushing those keeps every digest. It is None for docker-archives, which have none;
    build one from ``config_media_type``, the config and ``layers`` then.
    """

    names: tuple[str, ...]
    tags: tuple[str, ...]
    config: bytes = field(repr=False)
    config_digest: Digest
    config_media_type: str
    layers: tuple[ArchivedBlob, ...]
    manifest: Manifest | None
    platform: Platform

    @property
    def diff_ids(self) -> tuple[str | None, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def label(self) -> str:
        """How to call the image in messages: its first name, else its short config id."""
        return self.names[0] if self.names else f"image {self.config_digest.short}"

    @property
    def is_attestation(self) -> bool:
        return (self.platform.os, self.platform.architecture) == ("unknown", "unknown")

    @property
    def size(self) -> int:
        return len(self.config) + sum(layer.size for layer in self.layers)


@dataclass(frozen=True, slots=True)
class ArchivedAttached:
    """A signature, attestation or SBOM in an archive: the image it is about (subject)
    and, for cosign's, the tag it lives under."""

    image: ArchivedImage
    subject: Digest
    tag: str | None


@dataclass(frozen=True, slots=True)
class ArchivedIndex:
    """A multi-platform image (an index blob named by ``index.json``): its exact bytes,
    the children the archive holds and the ones it does not (Docker 25 saves only the
    platforms it has)."""

    names: tuple[str, ...]
    tags: tuple[str, ...]
    index: Index
    images: tuple[ArchivedImage, ...]
    missing: tuple[Descriptor, ...]


# -- helpers ------------------------------------------------------------------------------


def blob_path(digest: Digest) -> str:
    """Where an OCI layout keeps a blob."""
    return f"blobs/{digest.algorithm}/{digest.hex}"


def sniff_compression(head: bytes) -> Compression | Literal["bzip2", "xz"]:
    """Compression by magic bytes; an uncompressed tar has none."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if re.match(rb"BZh[1-9]1AY&SY", head):
        return "bzip2"
    return "none"


def layer_media_type(declared: str | None, compression: Compression, family: str) -> str:
    """The media type for what is stored; the declared one when it is right."""
    known = LAYER_TYPES.get(declared or "")
    if declared is not None and known is None:
        return declared  # not a standard layer type (in-toto, foreign, artifacts): as is
    if declared is not None and known is not None:
        if known[1] == compression:
            return declared
        family = known[0]
    return BY_FAMILY[(family, compression)]


def unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def split_names(annotations: Iterable[dict[str, str]]) -> tuple[list[str], list[str]]:
    """(full names, bare tags) from index.json annotations."""
    names: list[str] = []
    tags: list[str] = []
    for ann in annotations:
        full = ann.get(ANNOTATION_CONTAINERD_NAME)
        if isinstance(full, str) and full:
            names.append(full)
        ref = ann.get(ANNOTATION_REF_NAME)
        if isinstance(ref, str) and ref:
            (tags if TAG_RE.fullmatch(ref) else names).append(ref)
    return names, tags


def renamed(image: ArchivedImage, names: Sequence[str], tags: Sequence[str]) -> ArchivedImage:
    return ArchivedImage(
        names=unique(names),
        tags=unique(tags),
        config=image.config,
        config_digest=image.config_digest,
        config_media_type=image.config_media_type,
        layers=image.layers,
        manifest=image.manifest,
        platform=image.platform,
    )
