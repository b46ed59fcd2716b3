"""Image data: media types, platforms, descriptors, manifests, indexes and configs.

Every parsed object keeps the bytes it was parsed from, so digests are always computed
over what the registry actually sent, and archives can store those exact bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from imgpull.digest import Digest
from imgpull.errors import PlatformNotFoundError, RegistryError, UnsupportedError
from imgpull.model import strict
from imgpull.model.platform import Platform
from imgpull.text import shown

DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
OCI_LAYER: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"

MANIFEST_TYPES: Final = (DOCKER_MANIFEST, OCI_MANIFEST)
IMAGE_CONFIG_TYPES: Final = (DOCKER_CONFIG, OCI_CONFIG)
INDEX_TYPES: Final = (DOCKER_MANIFEST_LIST, OCI_INDEX)
SCHEMA1_TYPES: Final = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json")
# One Accept header asking for everything we can handle, most specific first.
ACCEPT_MANIFESTS: Final = ", ".join(
    (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
)

# Annotations that name an image inside an OCI layout.
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME: Final = "io.containerd.image.name"


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, data: Any, what: str = "manifest") -> Descriptor:
        """A descriptor from JSON, every field checked; RegistryError naming what is wrong."""
        where = f"malformed descriptor in {what}"
        if not isinstance(data, dict):
            raise RegistryError(f"{where}: not an object")
        size = data.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise RegistryError(f"{where}: bad size {shown(repr(size), 40)}")
        digest = data.get("digest")
        if not isinstance(digest, str):
            raise RegistryError(f"{where}: no digest")
        try:
            parsed = Digest.parse(digest)
        except ValueError:
            raise RegistryError(f"{where}: bad digest {shown(digest, 80)}") from None
        plat = strict.obj(data, "platform", where)
        platform = None
        if plat:
            platform = Platform(
                strict.string(plat, "os", where) or _missing(where, "platform.os"),
                strict.string(plat, "architecture", where)
                or _missing(where, "platform.architecture"),
                strict.string(plat, "variant", where) or None,
            )
        return cls(
            media_type=strict.string(data, "mediaType", where),
            digest=parsed,
            size=size,
            urls=strict.strings(data, "urls", where),
            annotations=strict.string_map(data, "annotations", where),
            platform=platform,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            plat = {"architecture": self.platform.architecture, "os": self.platform.os}
            if self.platform.variant:
                plat["variant"] = self.platform.variant
            out["platform"] = plat
        return out

    @property
    def is_attestation(self) -> bool:
        plat = self.platform
        return (plat is not None and (plat.os, plat.architecture) == ("unknown", "unknown")) or (
            "vnd.docker.reference.type" in self.annotations
        )


def _missing(where: str, key: str) -> str:
    raise RegistryError(f"{where}: {key} is missing")


@dataclass(frozen=True, slots=True)
class Manifest:
    """One image: its config and layers."""

    raw: bytes
    media_type: str
    digest: Digest
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    artifact_type: str = ""  # OCI 1.1 artifactType, when set
    subject: Descriptor | None = None  # what this manifest refers to (signatures, SBOMs)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def is_image(self) -> bool:
        """A container image (docker loads it), not an artifact (a Helm chart, a
        signature, an SBOM) that only OCI tools keep."""
        return self.config.media_type in IMAGE_CONFIG_TYPES and not self.artifact_type

    @property
    def kind(self) -> str:
        """What it is, for messages: the artifact type, else the config media type."""
        return self.artifact_type or self.config.media_type

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)

    @property
    def size(self) -> int:
        """Bytes to transfer: manifest, config and layers."""
        return len(self.raw) + sum(d.size for d in self.blobs)


@dataclass(frozen=True, slots=True)
class Index:
    """A multi-platform image: an OCI index or a Docker manifest list."""

    raw: bytes
    media_type: str
    digest: Digest
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def platforms(self) -> tuple[Platform, ...]:
        return tuple(d.platform for d in self.images() if d.platform is not None)

    def images(self) -> Iterator[Descriptor]:
        """Entries that are runnable images: attestations and platformless entries skipped."""
        for desc in self.manifests:
            if desc.platform is not None and not desc.is_attestation:
                yield desc

    def select(self, wanted: Platform) -> Descriptor:
        candidates = [d for d in self.images() if d.platform and wanted.matches(d.platform)]
        if not candidates:
            available = tuple(sorted({str(p.normalized()) for p in self.platforms if p}))
            raise PlatformNotFoundError(
                f"no image for platform {wanted} in this index; it has: "
                + (", ".join(available) or "no platforms"),
                f"choose one with --platform, e.g. --platform {available[0]}" if available else "",
                available=available,
            )
        # Prefer an exact variant match, then the first listed, as containerd does.
        exact = [d for d in candidates if d.platform and d.platform.normalized() == wanted]
        return (exact or candidates)[0]


def index_subset(index: Index, children: Sequence[Descriptor]) -> Index:
    """``index`` listing only ``children`` (same media type and annotations); the index
    itself when nothing is left out, so its digest survives."""
    keep = {str(c.digest) for c in children}
    if {str(d.digest) for d in index.manifests} <= keep:
        return index
    data = json.loads(index.raw)
    data["manifests"] = [m for m in data["manifests"] if m.get("digest") in keep]
    raw = json.dumps(data, indent=2).encode()
    kept = tuple(d for d in index.manifests if str(d.digest) in keep)
    return Index(raw, index.media_type, Digest.of(raw), kept, index.annotations, index.subject)


def parse_manifest(raw: bytes, media_type: str, digest: Digest) -> Manifest | Index:
    """Parse manifest bytes by the media type the registry declared (or the body's own).
    Every field is checked: a malformed manifest is a RegistryError naming the field."""
    data = strict.load_object(raw, "manifest")
    declared = strict.string(data, "mediaType", "manifest")
    kind = media_type.split(";")[0].strip()
    if kind in ("", "application/json", "application/octet-stream", "text/plain"):
        kind = declared
    if not kind:
        # OCI allows mediaType to be absent; tell index from manifest by shape.
        kind = OCI_INDEX if "manifests" in data else OCI_MANIFEST
    if kind in SCHEMA1_TYPES or data.get("schemaVersion") == 1:
        raise UnsupportedError(
            "this image uses the deprecated Docker schema 1 manifest format, which imgpull "
            "does not support",
            "ask the image's publisher to re-push it with a current Docker or OCI client",
        )
    what = f"{kind} manifest"
    if kind in INDEX_TYPES:
        entries = strict.objects(data, "manifests", f"malformed {what}")
        return Index(
            raw,
            kind,
            digest,
            tuple(Descriptor.from_json(d, what) for d in entries),
            annotations=strict.string_map(data, "annotations", what),
            subject=_subject(data, what),
        )
    if kind in MANIFEST_TYPES:
        config = strict.obj(data, "config", f"malformed {what}", required=True)
        layers = data.get("layers")
        if layers is None and "config" in data and strict.string(data, "artifactType", what):
            layers = []  # an OCI 1.1 artifact may have no layers at all
        if not isinstance(layers, list):
            raise RegistryError(f"malformed {what}: 'layers' is missing or not a list")
        return Manifest(
            raw,
            kind,
            digest,
            Descriptor.from_json(config, what),
            tuple(Descriptor.from_json(d, what) for d in layers),
            strict.string_map(data, "annotations", what),
            artifact_type=strict.string(data, "artifactType", what),
            subject=_subject(data, what),
        )
    raise UnsupportedError(f"unsupported manifest media type {shown(kind, 100)!r}")


def _subject(data: dict[str, Any], what: str) -> Descriptor | None:
    subject = data.get("subject")
    return None if subject is None else Descriptor.from_json(subject, f"the subject of {what}")


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of an image config that people look at."""

    raw: bytes
    digest: Digest
    platform: Platform
    created: str | None
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    working_dir: str
    user: str
    labels: Mapping[str, str]
    diff_ids: tuple[str, ...]

    @classmethod
    def parse(cls, raw: bytes, digest: Digest) -> ImageConfig:
        """Every field people look at checked for its type: RegistryError otherwise."""
        what = "image config"
        data = strict.load_object(raw, what)
        conf = strict.obj(data, "config", what)
        rootfs = strict.obj(data, "rootfs", what)
        created = data.get("created")
        return cls(
            raw=raw,
            digest=digest,
            platform=Platform(
                strict.string(data, "os", what),
                strict.string(data, "architecture", what),
                strict.string(data, "variant", what) or None,
            ),
            created=created if isinstance(created, str) else None,
            entrypoint=strict.strings(conf, "Entrypoint", what),
            cmd=strict.strings(conf, "Cmd", what),
            env=strict.strings(conf, "Env", what),
            working_dir=strict.string(conf, "WorkingDir", what),
            user=strict.string(conf, "User", what),
            labels=strict.string_map(conf, "Labels", what),
            diff_ids=strict.strings(rootfs, "diff_ids", what),
        )
