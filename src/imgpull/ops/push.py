"""Copy images between registries, and push archives into them: pull in reverse.

Blobs the destination holds are skipped (HEAD), blobs on the same registry are mounted
from the source repository, everything else is streamed from the source straight into
the upload, never whole in memory. Manifests keep their exact bytes, so digests survive.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from imgpull.config.settings import Settings
from imgpull.digest import Digest
from imgpull.errors import ArchiveError, ConfigError, ImgpullError, UnsupportedError
from imgpull.model import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_LAYER_ZSTD,
    Descriptor,
    Index,
    Manifest,
    Platform,
    index_subset,
)
from imgpull.naming import destination_for
from imgpull.ops.pull import (
    Endpoint,
    PlatformSelection,
    Session,
    parse_all,
    scope_credentials,
)
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference, parse_reference
from imgpull.registry.client import RegistryClient
from imgpull.registry.upload import blob_exists, mount_blob, put_manifest, upload_blob
from imgpull.workers import Cancelled, run_parallel

if TYPE_CHECKING:
    from imgpull.archive.reader import ArchivedBlob, ArchivedImage, ImageArchive


@dataclass(frozen=True, slots=True)
class Copied:
    source: Reference
    destination: Reference
    digest: Digest  # what the destination tag now points at
    platforms: tuple[str, ...]


class _BlobCopier:
    """Copies blobs from one endpoint's repository to a destination repository."""

    def __init__(self, session: Session, reporter: Reporter) -> None:
        self.session = session
        self.reporter = reporter
        self._done: set[tuple[str, str, Digest]] = set()
        self._lock = threading.Lock()

    def copy(
        self,
        source: Endpoint,
        src_repo: str,
        dst: RegistryClient,
        dst_repo: str,
        descriptor: Descriptor,
        cancelled: threading.Event,
    ) -> None:
        key = (dst.host.api_host, dst_repo, descriptor.digest)
        with self._lock:
            if key in self._done:
                return
        if descriptor.urls:
            return  # foreign layers stay where their URLs point, as docker push does
        if blob_exists(dst, dst_repo, descriptor.digest) or (
            source.host.api_host == dst.host.api_host
            and source.host.prefix == dst.host.prefix
            and mount_blob(dst, dst_repo, descriptor.digest, src_repo)
        ):
            self.reporter.blob_started(descriptor, cached=True, what="layer")
        else:
            self.reporter.blob_started(descriptor, cached=False, what="layer")

            def progress(count: int) -> None:
                if cancelled.is_set():
                    raise Cancelled
                self.reporter.blob_progress(descriptor, count)

            upload_blob(
                dst,
                dst_repo,
                descriptor.digest,
                descriptor.size,
                _source_opener(source.client, src_repo, descriptor),
                retries=self.session.settings.retries,
                progress=progress,
            )
        self.reporter.blob_done(descriptor)
        with self._lock:
            self._done.add(key)


def _source_opener(
    client: RegistryClient, repository: str, descriptor: Descriptor
) -> Callable[[int], BinaryIO]:
    def open_at(offset: int) -> BinaryIO:
        return cast(BinaryIO, client.open_blob(repository, descriptor, offset))

    return open_at


def copy(
    sources: Sequence[str | Reference],
    destination: str,
    *,
    platform: str | Platform | Sequence[Platform] | None = None,
    all_platforms: bool = False,
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> list[Copied]:
    """Copy images from registry to registry (through the same mirrors, proxies, auth)."""
    refs = parse_all(sources)
    if not refs:
        raise ConfigError("no images to copy", "name at least one source image")
    several = len(refs) > 1
    # -u/-p are for the destination (the push side); sources use saved credentials.
    targets = [destination_for(ref, destination, several=several) for ref in refs]
    settings = scope_credentials(
        settings or Settings.from_environment(), (t.registry for t in targets)
    )
    wanted = PlatformSelection.of(platform, all_platforms)
    session = Session(settings, reporter)
    copier = _BlobCopier(session, reporter)
    try:
        return [
            _copy_one(session, copier, ref, target, wanted)
            for ref, target in zip(refs, targets, strict=True)
        ]
    finally:
        session.close()
        reporter.close()


def _copy_one(
    session: Session,
    copier: _BlobCopier,
    source: Reference,
    target: Reference,
    wanted: PlatformSelection,
) -> Copied:
    found, endpoint = session.first_success(
        session.endpoints(source),
        lambda e: e.client.get_manifest(source.repository, source.identifier),
    )
    dst = session.client(target)
    tag = target.tag or (str(target.digest) if target.digest else "latest")
    if isinstance(found, Manifest):
        _copy_manifest(session, copier, endpoint, source, found, dst, target, tag)
        return Copied(source, target, found.digest, ())
    children = wanted.choose(found)
    platforms = tuple(str(c.platform) for c in children if c.platform)
    manifests = []
    for child in children:
        manifest = endpoint.client.get_manifest(source.repository, str(child.digest))
        if isinstance(manifest, Index):
            raise UnsupportedError(f"{source.familiar}: nested indexes are not supported")
        manifests.append(manifest)
    if not wanted.everything and len(wanted.platforms) <= 1:
        # One platform: the tag names that image, as `docker pull` + `docker push` would.
        [single] = manifests
        _copy_manifest(session, copier, endpoint, source, single, dst, target, tag)
        return Copied(source, target, single.digest, platforms)
    for manifest in manifests:
        _copy_manifest(
            session, copier, endpoint, source, manifest, dst, target, str(manifest.digest)
        )
    # The whole index keeps its bytes and digest; a selection gets an index of its own.
    raw = index_subset(found, children).raw
    digest = put_manifest(dst, target.repository, tag, raw, found.media_type or OCI_INDEX)
    return Copied(source, target, digest, platforms)


def _copy_manifest(
    session: Session,
    copier: _BlobCopier,
    source: Endpoint,
    ref: Reference,
    manifest: Manifest,
    dst: RegistryClient,
    target: Reference,
    reference: str,
) -> None:
    blobs = list(manifest.blobs)

    def one(descriptor: Descriptor, cancelled: threading.Event) -> None:
        copier.copy(source, ref.repository, dst, target.repository, descriptor, cancelled)

    run_parallel(session.settings.jobs, blobs, one)
    put_manifest(dst, target.repository, reference, manifest.raw, manifest.media_type)


# -- push: archives into registries ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pushed:
    names: tuple[str, ...]  # as recorded in the archive
    destination: Reference
    digest: Digest


@dataclass(frozen=True, slots=True)
class _ReadyBlob:
    """A blob as it will be uploaded: its digest and size, and where to read it."""

    descriptor: Descriptor
    open_at: Callable[[int], BinaryIO]


def push(
    archive_path: str | os.PathLike[str],
    destination: str | None = None,
    *,
    chunk_size: int | None = None,
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> list[Pushed]:
    """Push every image of an archive (imgpull, docker save, podman save, skopeo) to a
    registry. ``destination`` is a full reference (one-image archives) or a
    registry[/namespace] prefix; without it images go back to the names they carry."""
    from imgpull.archive.reader import ImageArchive

    settings = settings or Settings.from_environment()
    work = Path(tempfile.mkdtemp(prefix="imgpull-push-"))
    session: Session | None = None
    try:
        with ImageArchive(Path(archive_path)) as archive:
            count = len(archive.images) + len(archive.indexes)
            if not count:
                raise ArchiveError(f"{archive_path} holds no images")
            names = [n for i in archive.images for n in i.names]
            names += [n for x in archive.indexes for n in x.names]
            registries = (
                {t.registry for t in _push_targets(names, destination, count > 1, archive_path)}
                if names or destination
                else set()
            )
            session = Session(scope_credentials(settings, registries), reporter)
            results: list[Pushed] = []
            pushed: dict[tuple[str, Digest], str] = {}  # (registry, blob) -> repository
            for number, image in enumerate(archive.images):
                targets = _push_targets(image.names, destination, count > 1, archive_path)
                prepared = _prepare(archive, image, work / str(number))
                for target in targets:
                    digest = _push_one(
                        session, target, _tag(target), prepared, chunk_size, reporter, pushed
                    )
                    results.append(Pushed(tuple(image.names), target, digest))
            for number, index in enumerate(archive.indexes):
                targets = _push_targets(index.names, destination, count > 1, archive_path)
                children = [
                    _prepare(archive, child, work / f"index-{number}-{n}")
                    for n, child in enumerate(index.images)
                ]
                present = [c.manifest.descriptor for c in index.images if c.manifest]
                raw = _renamed_children(
                    index_subset(index.index, present).raw,
                    {
                        str(child.manifest.digest): prepared
                        for child, prepared in zip(index.images, children, strict=True)
                        if child.manifest is not None
                    },
                )
                for target in targets:
                    for prepared in children:
                        _push_one(
                            session,
                            target,
                            str(Digest.of(prepared[0])),
                            prepared,
                            chunk_size,
                            reporter,
                            pushed,
                        )
                    client = session.client(target)
                    digest = put_manifest(
                        client,
                        target.repository,
                        _tag(target),
                        raw,
                        index.index.media_type or OCI_INDEX,
                    )
                    results.append(Pushed(tuple(index.names), target, digest))
            return results
    finally:
        if session is not None:
            session.close()
        shutil.rmtree(work, ignore_errors=True)
        reporter.close()


def _push_targets(
    names: Sequence[str], destination: str | None, several: bool, archive: object
) -> list[Reference]:
    refs: list[Reference] = []
    for name in names:
        try:
            refs.append(parse_reference(name))
        except ImgpullError:
            continue  # an odd name in the archive; the others still count
    if destination is None:
        if not refs:
            raise ConfigError(
                f"an image in {archive} has no name to push to",
                "give a destination, e.g. registry.local:5000/team/app:1",
            )
        return refs
    if not refs:
        try:
            explicit = destination_for(
                parse_reference("imgpull-unnamed"), destination, several=several
            )
        except ConfigError as exc:
            raise ConfigError(
                f"an image in {archive} has no name", "push it to a full reference (with a tag)"
            ) from exc
        if explicit.repository.endswith("imgpull-unnamed"):
            raise ConfigError(
                f"an image in {archive} has no name", "push it to a full reference (with a tag)"
            )
        return [explicit]
    return list(dict.fromkeys(destination_for(r, destination, several=several) for r in refs))


def _prepare(
    archive: ImageArchive, image: ArchivedImage, work: Path
) -> tuple[bytes, str, list[_ReadyBlob]]:
    """The manifest to push and its blobs. The archive's own manifest is kept byte for
    byte when it has one and no layer needed compressing; otherwise a Docker schema 2
    manifest is written, as `docker push` would."""
    config = Descriptor(
        image.config_media_type or DOCKER_CONFIG, image.config_digest, len(image.config)
    )
    blobs = [_ReadyBlob(config, lambda offset: io.BytesIO(image.config[offset:]))]
    changed = False
    layers: list[Descriptor] = []
    for number, layer in enumerate(image.layers):
        if layer.compression == "none":
            ready = _compress(archive, layer, work / f"layer-{number}.tar.gz")
            changed = True
        else:
            digest = layer.digest or _hash(archive, layer)
            kind = layer.compression
            fallback = DOCKER_LAYER_GZIP if kind == "gzip" else OCI_LAYER_ZSTD
            media = layer.media_type if kind in layer.media_type else fallback
            ready = _ReadyBlob(
                Descriptor(media, digest, layer.size), _member_opener(archive, layer)
            )
        layers.append(ready.descriptor)
        blobs.append(ready)
    if image.manifest is not None and not changed:
        return image.manifest.raw, image.manifest.media_type, blobs
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layers],
    }
    return json.dumps(manifest, indent=3).encode(), DOCKER_MANIFEST, blobs


def _renamed_children(
    raw: bytes, prepared: dict[str, tuple[bytes, str, list[_ReadyBlob]]]
) -> bytes:
    """The index with each child whose manifest was rewritten for the push (layers that
    needed compressing) pointing at the rewritten manifest; unchanged when none was."""
    data = json.loads(raw)
    changed = False
    for entry in data.get("manifests", []):
        ready = prepared.get(entry.get("digest"))
        if ready is None or str(Digest.of(ready[0])) == entry["digest"]:
            continue
        entry.update(digest=str(Digest.of(ready[0])), size=len(ready[0]), mediaType=ready[1])
        changed = True
    return json.dumps(data, indent=2).encode() if changed else raw


def _member_opener(archive: ImageArchive, layer: ArchivedBlob) -> Callable[[int], BinaryIO]:
    def open_at(offset: int) -> BinaryIO:
        stream = archive.open(layer)
        _skip(stream, offset)
        return stream

    return open_at


def _skip(stream: BinaryIO, offset: int) -> None:
    if not offset:
        return
    try:
        stream.seek(offset, os.SEEK_CUR)
    except (OSError, ValueError, io.UnsupportedOperation):
        while offset:
            data = stream.read(min(offset, 1024 * 1024))
            if not data:
                raise ArchiveError("archive member ended early") from None
            offset -= len(data)


def _hash(archive: ImageArchive, layer: ArchivedBlob) -> Digest:
    hasher = hashlib.sha256()
    with archive.open(layer) as stream:
        while chunk := stream.read(1024 * 1024):
            hasher.update(chunk)
    return Digest("sha256", hasher.hexdigest())


def _compress(archive: ImageArchive, layer: ArchivedBlob, path: Path) -> _ReadyBlob:
    """gzip an uncompressed layer to a file (deterministic: no name, no mtime), so its
    digest and size are known before the upload; the diffID does not change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    with archive.open(layer) as source, path.open("wb") as raw:
        tee = _HashingWriter(raw, hasher)
        with gzip.GzipFile(
            fileobj=cast(BinaryIO, tee), mode="wb", mtime=0, compresslevel=3, filename=""
        ) as packed:
            while chunk := source.read(1024 * 1024):
                packed.write(chunk)
    size = path.stat().st_size
    descriptor = Descriptor(DOCKER_LAYER_GZIP, Digest("sha256", hasher.hexdigest()), size)

    def open_at(offset: int) -> BinaryIO:
        handle = path.open("rb")
        handle.seek(offset)
        return handle

    return _ReadyBlob(descriptor, open_at)


class _HashingWriter:
    def __init__(self, out: BinaryIO, hasher: hashlib._Hash) -> None:
        self.out = out
        self.hasher = hasher

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _tag(target: Reference) -> str:
    return target.tag or (str(target.digest) if target.digest else "latest")


def _push_one(
    session: Session,
    target: Reference,
    reference: str,
    prepared: tuple[bytes, str, list[_ReadyBlob]],
    chunk_size: int | None,
    reporter: Reporter,
    pushed: dict[tuple[str, Digest], str],
) -> Digest:
    manifest_raw, media_type, blobs = prepared
    client = session.client(target)

    def one(blob: _ReadyBlob, cancelled: threading.Event) -> None:
        descriptor = blob.descriptor
        # A blob this run put into another repository of the same registry is mounted.
        elsewhere = pushed.get((client.host.api_host, descriptor.digest))
        if blob_exists(client, target.repository, descriptor.digest) or (
            elsewhere is not None
            and elsewhere != target.repository
            and mount_blob(client, target.repository, descriptor.digest, elsewhere)
        ):
            reporter.blob_started(descriptor, cached=True, what="layer")
            reporter.blob_done(descriptor)
            pushed.setdefault((client.host.api_host, descriptor.digest), target.repository)
            return
        reporter.blob_started(descriptor, cached=False, what="layer")

        def progress(count: int) -> None:
            if cancelled.is_set():
                raise Cancelled
            reporter.blob_progress(descriptor, count)

        upload_blob(
            client,
            target.repository,
            descriptor.digest,
            descriptor.size,
            blob.open_at,
            chunk_size=chunk_size,
            retries=session.settings.retries,
            progress=progress,
        )
        reporter.blob_done(descriptor)
        pushed[(client.host.api_host, descriptor.digest)] = target.repository

    run_parallel(session.settings.jobs, blobs, one)
    return put_manifest(client, target.repository, reference, manifest_raw, media_type)
