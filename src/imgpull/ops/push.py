"""``push``: every image of an archive (imgpull, docker save, podman, skopeo, ...) into a
registry: pull in reverse."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from imgpull.archive.reader import ImageArchive
from imgpull.archive.source import ArchiveSource
from imgpull.config.settings import Settings
from imgpull.errors import ArchiveError, ConfigError, UsageError
from imgpull.model import PlatformSelection
from imgpull.naming import destination_for
from imgpull.ops.common import settings_or_default
from imgpull.ops.results import Pushed
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference, parse_reference
from imgpull.registry.session import Registries, scope_credentials
from imgpull.registry.sink import RegistrySink
from imgpull.source import Placement, SourceImage
from imgpull.transfer import transfer

__all__ = ["push", "push_targets"]


def push(
    archive_path: str | os.PathLike[str],
    destination: str | None = None,
    *,
    chunk_size: int | None = None,
    image_repository: str | None = None,
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> list[Pushed]:
    """Push every image of an archive to a registry. ``destination`` is a full reference
    (one-image archives), a ``registry[/namespace]`` prefix under which each named image
    keeps its path, or the repository for images that carry only tags; without it
    images go back to the names they carry. ``image_repository`` names Kubernetes'
    images as kubeadm's ``imageRepository`` does (``REPO/kube-apiserver:v1.31.0``)."""
    if not isinstance(archive_path, str | os.PathLike):
        raise UsageError(f"archive_path must be a path, not {type(archive_path).__name__}")
    if chunk_size is not None and chunk_size <= 0:
        raise UsageError(f"invalid chunk size {chunk_size}", "give a positive number of bytes")
    settings = settings_or_default(settings)
    path = Path(archive_path)
    work = Path(tempfile.mkdtemp(prefix="imgpull-push-"))
    try:
        source = ArchiveSource(ImageArchive(path), work)
        try:
            images = source.resolve(PlatformSelection())
            if not images:
                raise ArchiveError(f"{path} holds no images")
            several = len(images) > 1
            placements = [
                Placement(image, push_targets(image, destination, several, path, image_repository))
                for image in images
            ]
            scoped = scope_credentials(
                settings, {name.registry for p in placements for name in p.names}
            )
            return _push(source, placements, scoped, chunk_size, reporter)
        finally:
            source.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        reporter.close()


def _push(
    source: ArchiveSource,
    placements: Sequence[Placement],
    settings: Settings,
    chunk_size: int | None,
    reporter: Reporter,
) -> list[Pushed]:
    registries = Registries(settings, reporter)
    try:
        digests = transfer(
            source,
            RegistrySink(registries, chunk_size=chunk_size),
            placements,
            jobs=settings.jobs,
            reporter=reporter,
            action="uploading",
            on_cancel=registries.http.cancel_all,
        )
    finally:
        registries.close()
    return [
        Pushed(tuple(str(n) for n in p.image.names) or p.image.tags, name, digest)
        for p, digest in zip(placements, digests, strict=True)
        for name in p.names
    ]


def push_targets(
    image: SourceImage,
    destination: str | None,
    several: bool,
    archive: object,
    image_repository: str | None = None,
) -> tuple[Reference, ...]:
    """Where one image of an archive goes.

    Named images (full references in the archive) go to their names, or under the
    ``destination`` prefix keeping their paths. Images that carry only tags (OCI
    layouts written by skopeo or podman) go to ``destination`` as the repository, one
    name per tag. A full reference as ``destination`` names the one image.
    """
    if destination is not None and _is_full_reference(destination):
        if several:
            raise ConfigError(
                f"destination {destination} names one image, but {archive} holds several",
                "give a registry[/namespace] prefix instead, e.g. registry.local:5000/mirror",
            )
        return (parse_reference(destination.rstrip("/")),)
    if image.names:
        if destination is None:
            return image.names
        found = [
            destination_for(name, destination, several=several, image_repository=image_repository)
            for name in image.names
        ]
        return tuple(dict.fromkeys(found))
    if destination is not None and image.tags:
        repository = destination.rstrip("/")
        return tuple(parse_reference(f"{repository}:{tag}") for tag in image.tags)
    if destination is None:
        raise ConfigError(
            f"{image.label} in {archive} has no name to push to",
            "give a destination, e.g. registry.local:5000/team/app:1",
        )
    raise ConfigError(
        f"{image.label} in {archive} has no name or tag",
        "push it to a full reference (with a tag), e.g. registry.local:5000/team/app:1",
    )


def _is_full_reference(destination: str) -> bool:
    text = destination.rstrip("/")
    last = text.rsplit("/", 1)[-1]
    return not destination.endswith("/") and ("@" in text or ("/" in text and ":" in last))
