"""What the operations return."""

from __future__ import annotations

from dataclasses import dataclass

from imgpull.archive.layout import ArchiveFormat
from imgpull.digest import Digest
from imgpull.model import ImageConfig, Index, Manifest, Platform
from imgpull.reference import Reference
from imgpull.source import SourceImage


@dataclass(frozen=True, slots=True)
class PulledImage:
    reference: Reference
    digest: Digest  # what the reference resolves to: the index digest for multi-arch images
    manifest: Manifest  # the image docker loads
    config: ImageConfig | None  # None for artifacts (a Helm chart, a signature)
    platform: Platform | None
    endpoint: str  # the registry host (or mirror) that served the manifest
    # With several platforms: every image manifest in the archive (``manifest`` among
    # them, loaded by docker) and the index that lists just those.
    platform_manifests: tuple[Manifest, ...] = ()
    index: Index | None = None

    @classmethod
    def of(cls, reference: Reference, image: SourceImage) -> PulledImage:
        top = image.top
        several = isinstance(top, Index)
        return cls(
            reference,
            image.resolved,
            image.primary,
            image.configs.get(image.primary.config.digest),
            image.platform,
            image.endpoint,
            image.manifests if several else (),
            top if isinstance(top, Index) else None,
        )

    @property
    def manifests(self) -> tuple[Manifest, ...]:
        return self.platform_manifests or (self.manifest,)

    @property
    def size(self) -> int:
        return sum(m.size for m in self.manifests)


@dataclass(frozen=True, slots=True)
class PullResult:
    images: tuple[PulledImage, ...]
    output: str  # a path, or "-" for standard output
    archive_format: ArchiveFormat
    archive_size: int


@dataclass(frozen=True, slots=True)
class Pushed:
    names: tuple[str, ...]  # as recorded in the archive
    destination: Reference
    digest: Digest


@dataclass(frozen=True, slots=True)
class Copied:
    source: Reference
    destination: Reference
    digest: Digest  # what the destination tag now points at
    platforms: tuple[str, ...]
