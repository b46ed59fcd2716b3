"""``pull``: images from registries (through mirrors and proxies) into one archive."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from imgpull.archive.layout import FORMATS, ArchiveFormat
from imgpull.archive.output import STDOUT, Output
from imgpull.archive.writer import ArchiveSink
from imgpull.cache import BlobStore
from imgpull.config.settings import Settings
from imgpull.errors import UnsupportedError, UsageError
from imgpull.model import Platform, PlatformSelection
from imgpull.naming import safe_filename
from imgpull.ops.common import open_store, parse_references, settings_or_default
from imgpull.ops.results import PulledImage, PullResult
from imgpull.ops.signed import KeyPaths, load_keys, require_signatures
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference
from imgpull.registry.session import Registries, scope_credentials
from imgpull.registry.source import RegistrySource
from imgpull.source import Placement, SourceImage
from imgpull.transfer import transfer

__all__ = ["STDOUT", "pull"]


def pull(
    references: Sequence[str | Reference] | str,
    output: str | os.PathLike[str] | None = None,
    *,
    platform: str | Platform | Sequence[Platform | str] | None = None,
    all_platforms: bool = False,
    archive_format: ArchiveFormat = "docker",
    referrers: bool = False,
    require_signature: KeyPaths = None,
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> PullResult:
    """Pull images into one archive at ``output`` ("-" for stdout).

    ``platform`` picks from multi-platform images (default: the host's); several
    platforms ("linux/amd64,linux/arm64") or ``all_platforms`` put an index of those in
    the archive's OCI view, while its Docker view loads the first requested platform (or
    the host's). The archive appears only when everything succeeded; on any error
    nothing is left at ``output``. ``referrers`` also takes the signatures, attestations
    and SBOMs attached to each image (kept in the OCI view); ``require_signature`` (cosign
    public key files) refuses images without a signature that verifies with one of them.
    """
    refs = _checked(references, archive_format)
    selection = PlatformSelection.of(platform, all_platforms)
    keys = load_keys(require_signature)
    settings = scope_credentials(settings_or_default(settings), (r.registry for r in refs))
    destination = _destination(output, refs)
    registries = Registries(settings, reporter)
    near = None if destination == STDOUT else Path(destination).resolve().parent
    out: Output | None = None
    store: BlobStore | None = None
    throwaway = False
    try:
        out = Output(destination)
        # Without a cache, a regular file takes each blob in place (one write per byte);
        # standard output, a FIFO or a device sees nothing before all is verified, so
        # their blobs wait in a throwaway store.
        if (settings.use_cache and settings.cache_dir is not None) or out.partial is None:
            store, throwaway = open_store(settings, near)
        source = RegistrySource(
            registries, refs, store=store, reporter=reporter, referrers=referrers or bool(keys)
        )
        images = source.resolve(selection)
        if keys:
            require_signatures(source, images, keys)
        if archive_format == "docker":
            for image in images:
                _check_loadable(image)
        placements = [Placement(image, (ref,)) for ref, image in zip(refs, images, strict=True)]
        sink = ArchiveSink(
            out, archive_format=archive_format, reporter=reporter, in_place=store is None
        )
        transfer(source, sink, placements, jobs=settings.jobs, reporter=reporter, store=store,
                 action="downloading", on_cancel=registries.http.cancel_all)  # fmt: skip
    except BaseException:
        if out is not None:
            out.abort()
        raise
    finally:
        registries.close()
        if throwaway and store is not None:
            store.discard()
        reporter.close()
    pulled = tuple(PulledImage.of(ref, image) for ref, image in zip(refs, images, strict=True))
    return PullResult(pulled, destination, archive_format, sink.size)


def _checked(references: Sequence[str | Reference] | str, archive_format: str) -> list[Reference]:
    refs = parse_references(references, "pull")
    if not refs:
        raise UsageError("no image references given", "name at least one image to pull")
    if archive_format not in FORMATS:
        raise UsageError(
            f"unknown archive format {archive_format!r}", f"use one of: {', '.join(FORMATS)}"
        )
    return refs


def _check_loadable(image: SourceImage) -> None:
    """The docker format is for container images; an artifact is refused clearly."""
    primary = image.primary
    if not primary.is_image:
        raise UnsupportedError(
            f"{image.label} is not a container image but an artifact ({primary.kind}); "
            "docker cannot load it",
            "pull it with --format oci, which writes it as an OCI layout (oras and helm read it)",
        )


def _destination(output: str | os.PathLike[str] | None, refs: Sequence[Reference]) -> str:
    if output is None:
        if len(refs) > 1:
            raise UsageError(
                "several images need an output file", "name one with -o, e.g. -o bundle.tar"
            )
        return safe_filename(refs[0])
    if not isinstance(output, str | os.PathLike):
        raise UsageError(f"output must be a path, not {type(output).__name__}")
    return os.fspath(output)
