"""Image data: media types, platforms, descriptors, manifests, indexes and configs.

Every parsed object keeps the bytes it was parsed from, so digests are always computed
over what the registry actually sent, and archives can store those exact bytes.
"""

from __future__ import annotations

import json
import platform as host_platform
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Final, Protocol

from imgpull.digest import Digest
from imgpull.errors import PlatformNotFoundError, RegistryError, UnsupportedError

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
INDEX_TYPES: Final = (DOCKER_MANIFEST_LIST, OCI_INDEX)
SCHEMA1_TYPES: Final = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json")
# One Accept header asking for everything we can handle, most specific first.
ACCEPT_MANIFESTS: Final = ", ".join(
    (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
)

# Annotations that name an image inside an OCI layout.
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME: Final = "io.containerd.image.name"

_ARCH_ALIASES: Final = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}


@dataclass(frozen=True, slots=True)
class Platform:
    """An OS/architecture pair such as ``linux/arm64/v8``, normalised as containerd does."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {text!r}: use os/arch[/variant], e.g. linux/arm64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None).normalized()

    @classmethod
    def host(cls) -> Platform:
        """Linux on this machine's CPU: images are Linux images even on macOS and Windows."""
        return cls("linux", host_platform.machine().lower()).normalized()

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant or None
        if self.architecture in ("armhf",) and variant is None:
            variant = "v7"
        if self.architecture == "armel" and variant is None:
            variant = "v6"
        if arch == "arm64" and variant == "v8":
            variant = None
        return Platform(self.os, arch, variant)

    def matches(self, other: Platform) -> bool:
        """True when ``other`` (an index entry) satisfies this (a request).

        A request without a variant accepts any variant of that architecture.
        """
        mine, theirs = self.normalized(), other.normalized()
        if (mine.os, mine.architecture) != (theirs.os, theirs.architecture):
            return False
        return mine.variant is None or mine.variant == theirs.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        try:
            plat = data.get("platform")
            platform = (
                Platform(plat["os"], plat["architecture"], plat.get("variant")) if plat else None
            )
            size = data["size"]
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"bad size {size!r}")
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=Digest.parse(data["digest"]),
                size=size,
                urls=tuple(data.get("urls") or ()),
                annotations=dict(data.get("annotations") or {}),
                platform=platform,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RegistryError(f"malformed descriptor in manifest: {exc}") from exc

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


def _load_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return data


@dataclass(frozen=True, slots=True)
class Manifest:
    """One image: its config and layers."""

    raw: bytes
    media_type: str
    digest: Digest
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

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
    return Index(raw, index.media_type, Digest.of(raw), kept)


def parse_manifest(raw: bytes, media_type: str, digest: Digest) -> Manifest | Index:
    """Parse manifest bytes by the media type the registry declared (or the body's own)."""
    data = _load_json(raw, "manifest")
    declared = str(data.get("mediaType") or "")
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
    try:
        if kind in INDEX_TYPES:
            return Index(
                raw,
                kind,
                digest,
                tuple(Descriptor.from_json(d) for d in data["manifests"]),
            )
        if kind in MANIFEST_TYPES:
            return Manifest(
                raw,
                kind,
                digest,
                Descriptor.from_json(data["config"]),
                tuple(Descriptor.from_json(d) for d in data["layers"]),
                dict(data.get("annotations") or {}),
            )
    except (KeyError, TypeError) as exc:
        raise RegistryError(f"malformed {kind} manifest: missing {exc}") from exc
    raise UnsupportedError(f"unsupported manifest media type {kind!r}")


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
        data = _load_json(raw, "image config")
        conf = data.get("config") or {}
        rootfs = data.get("rootfs") or {}
        return cls(
            raw=raw,
            digest=digest,
            platform=Platform(
                str(data.get("os", "")), str(data.get("architecture", "")), data.get("variant")
            ),
            created=data.get("created"),
            entrypoint=tuple(conf.get("Entrypoint") or ()),
            cmd=tuple(conf.get("Cmd") or ()),
            env=tuple(conf.get("Env") or ()),
            working_dir=str(conf.get("WorkingDir") or ""),
            user=str(conf.get("User") or ""),
            labels=dict(conf.get("Labels") or {}),
            diff_ids=tuple(rootfs.get("diff_ids") or ()),
        )


class ImageSource(Protocol):
    """Where images come from: a registry or an archive. Writers only see this."""

    def get_manifest(self, identifier: str) -> Manifest | Index: ...

    def open_blob(self, descriptor: Descriptor) -> BinaryIO: ...
