"""Pull, inspect and list tags: the only module that knows registries and archives both."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from imgpull.archive.writer import ArchiveFormat, ArchiveImage, write_archive
from imgpull.cache import BlobCache
from imgpull.config.settings import RegistryHost, Settings, default_docker_config_dir
from imgpull.digest import Digest
from imgpull.errors import (
    ArchiveError,
    AuthError,
    ConfigError,
    DigestMismatchError,
    ImgpullError,
    NetworkError,
    NotFoundError,
    PlatformNotFoundError,
    RateLimitedError,
    RegistryError,
    UnsupportedError,
)
from imgpull.model import Descriptor, ImageConfig, Index, Manifest, Platform, index_subset
from imgpull.naming import safe_filename
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference, parse_reference, parse_repository
from imgpull.registry.auth import find_credentials
from imgpull.registry.client import RegistryClient
from imgpull.registry.transport import HttpClient
from imgpull.workers import Cancelled, run_parallel

STDOUT = "-"


@dataclass(frozen=True, slots=True)
class PulledImage:
    reference: Reference
    digest: Digest  # what the reference resolves to: the index digest for multi-arch images
    manifest: Manifest
    config: ImageConfig
    platform: Platform
    endpoint: str  # the registry host that served the manifest
    # With several platforms: every image manifest in the archive (``manifest`` among
    # them, loaded by docker) and the index that lists just those.
    platform_manifests: tuple[Manifest, ...] = ()
    index: Index | None = None

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
class Endpoint:
    """A place that serves a registry's repositories: one of its mirrors, or itself."""

    host: RegistryHost
    client: RegistryClient


@dataclass(frozen=True, slots=True)
class PlatformSelection:
    """Which images of a multi-platform index to take."""

    platforms: tuple[Platform, ...] = ()  # empty: the host's
    everything: bool = False  # --all-platforms: the whole index, digests preserved

    @classmethod
    def of(
        cls, platform: str | Platform | Sequence[Platform] | None, everything: bool = False
    ) -> PlatformSelection:
        if platform is None:
            found: tuple[Platform, ...] = ()
        elif isinstance(platform, Platform):
            found = (platform,)
        elif isinstance(platform, str):
            found = tuple(Platform.parse(p) for p in platform.split(",") if p.strip())
        else:
            found = tuple(platform)
        return cls(found, everything)

    @property
    def single(self) -> Platform | None:
        return self.platforms[0] if len(self.platforms) == 1 and not self.everything else None

    def choose(self, index: Index) -> list[Descriptor]:
        if self.everything:
            return list(index.manifests)
        wanted = self.platforms or (Platform.host(),)
        chosen: dict[Digest, Descriptor] = {}
        for platform in wanted:
            descriptor = index.select(platform)
            chosen.setdefault(descriptor.digest, descriptor)
        return list(chosen.values())

    def primary(self, index: Index, children: Sequence[Descriptor]) -> Descriptor:
        """The image docker loads: the first requested platform, else the host's, else
        the first image."""
        images = [c for c in children if c.platform is not None and not c.is_attestation]
        for wanted in (*self.platforms, Platform.host()):
            for child in images:
                if child.platform is not None and wanted.matches(child.platform):
                    return child
        return (images or list(children))[0]

    def index_for(self, index: Index, children: Sequence[Descriptor]) -> Index:
        """The index an archive holds: the original when all of it is there (its digest
        preserved), else one listing only the platforms present."""
        return index_subset(index, children)


@dataclass(frozen=True, slots=True)
class Resolution:
    digest: Digest  # what the reference resolves to
    manifest: Manifest  # the image docker loads
    platform_manifests: tuple[Manifest, ...]  # all images, with several platforms
    index: Index | None


# Failures after which the next endpoint (mirror, then upstream) is worth a try.
_SKIPPABLE = (
    NetworkError,
    RegistryError,
    AuthError,
    NotFoundError,
    RateLimitedError,
    DigestMismatchError,
)
T = TypeVar("T")


class Session:
    """Registry clients and settings for one run, shared by every image in it."""

    def __init__(self, settings: Settings, reporter: Reporter = SILENT) -> None:
        self.settings = settings
        self.reporter = reporter
        self.http = HttpClient(settings)
        self._clients: dict[RegistryHost, RegistryClient] = {}
        self._lock = threading.Lock()

    def client_for(self, host: RegistryHost) -> RegistryClient:
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                # Flag credentials belong to the one registry they were given for, never
                # to its mirrors or other registries; those get what config.json holds.
                owner = self.settings.credential_registry
                ours = host.mirror_of is None and (owner is None or owner == host.name)
                credentials = find_credentials(
                    host.name,
                    config_dir=default_docker_config_dir(self.settings),
                    username=self.settings.username if ours else None,
                    password=self.settings.password if ours else None,
                )
                client = RegistryClient(host, self.http, credentials)
                self._clients[host] = client
            return client

    def client(self, reference: Reference) -> RegistryClient:
        """The client of the registry itself (no mirrors)."""
        return self.client_for(self.settings.registry_host(reference.registry))

    def endpoints(self, reference: Reference) -> list[Endpoint]:
        return [
            Endpoint(h, self.client_for(h)) for h in self.settings.endpoints(reference.registry)
        ]

    def close(self) -> None:
        self.http.close()

    def first_success(
        self, endpoints: Sequence[Endpoint], action: Callable[[Endpoint], T]
    ) -> tuple[T, Endpoint]:
        """``action`` on each endpoint in turn until one succeeds; the last failure,
        naming what the skipped endpoints said, if none does."""
        skipped: list[str] = []
        for number, endpoint in enumerate(endpoints):
            try:
                return action(endpoint), endpoint
            except _SKIPPABLE as exc:
                if number == len(endpoints) - 1:
                    if skipped:
                        exc.message = f"{exc.message} (also tried: {'; '.join(skipped)})"
                        exc.args = (exc.message,)
                    raise
                skipped.append(f"{endpoint.host.label}: {exc.message}")
                self.reporter.warning(f"{endpoint.host.label} skipped: {exc.message}")
        raise ConfigError("no endpoint to try")  # endpoints() never returns an empty list

    def resolve(
        self, reference: Reference, selection: PlatformSelection
    ) -> tuple[Resolution, Endpoint]:
        """What ``reference`` names on the selected platforms, and who served it."""

        def fetch(endpoint: Endpoint) -> Resolution:
            repository = reference.repository
            found = endpoint.client.get_manifest(repository, reference.identifier)
            if isinstance(found, Manifest):
                return Resolution(found.digest, found, (), None)
            children = selection.choose(found)
            manifests = []
            for child in children:
                manifest = endpoint.client.get_manifest(repository, str(child.digest))
                if isinstance(manifest, Index):
                    raise UnsupportedError(
                        f"{reference.familiar}: nested indexes are not supported"
                    )
                manifests.append(manifest)
            primary = manifests[
                [c.digest for c in children].index(selection.primary(found, children).digest)
            ]
            if len(manifests) == 1:
                return Resolution(found.digest, primary, (), None)
            return Resolution(
                found.digest, primary, tuple(manifests), selection.index_for(found, children)
            )

        return self.first_success(self.endpoints(reference), fetch)

    def blob_endpoints(self, reference: Reference, served_by: Endpoint) -> list[Endpoint]:
        """Blobs are content-addressed: the endpoint that served the manifest first, then
        every other endpoint of the registry, mirrors first."""
        rest = [e for e in self.endpoints(reference) if e.host != served_by.host]
        return [served_by, *rest]


def parse_all(references: Iterable[str | Reference]) -> list[Reference]:
    return [r if isinstance(r, Reference) else parse_reference(r) for r in references]


def scope_credentials(settings: Settings, registries: Iterable[str]) -> Settings:
    """Settings whose -u/-p credentials belong to the one registry of ``registries``;
    refused when that is ambiguous, so a password never reaches a second registry."""
    if settings.username is None or settings.credential_registry is not None:
        return settings
    names = sorted(set(registries))
    if len(names) > 1:
        raise ConfigError(
            "-u/--username applies to one registry, but this run talks to " + ", ".join(names),
            "save credentials for each with `imgpull login REGISTRY` instead",
        )
    return dataclasses.replace(settings, credential_registry=names[0] if names else None)


def pull(
    references: Sequence[str | Reference],
    output: str | os.PathLike[str] | None = None,
    *,
    platform: str | Platform | Sequence[Platform] | None = None,
    all_platforms: bool = False,
    archive_format: ArchiveFormat = "docker",
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> PullResult:
    """Pull images into one archive at ``output`` ("-" for stdout).

    ``platform`` picks from multi-platform images (default: the host's); several
    platforms ("linux/amd64,linux/arm64") or ``all_platforms`` put an index of those in
    the archive's OCI view, while its Docker view loads the first requested platform (or
    the host's). The archive appears only when everything succeeded; on any error
    nothing is left at ``output``.
    """
    refs = parse_all(references)
    if not refs:
        raise ConfigError("no image references given", "name at least one image to pull")
    settings = scope_credentials(
        settings or Settings.from_environment(), (r.registry for r in refs)
    )
    wanted = PlatformSelection.of(platform, all_platforms)
    destination = _destination(output, refs)
    session = Session(settings, reporter)
    cache = _open_cache(settings, destination)
    try:
        resolved = _resolve_all(session, refs, wanted, cache, reporter)
        images = [item.image for item in resolved]
        downloads = _Downloads(session, resolved, cache, reporter)
        try:
            size = _write(destination, images, downloads, archive_format, reporter)
            downloads.wait()
        except BaseException:
            # The write may fail first only because a download did: report that one.
            if downloads.failures:
                raise downloads.failures[0] from None
            raise
        finally:
            downloads.close()
    finally:
        session.close()
        if cache.root != settings.cache_dir:
            cache.discard()  # a throwaway store, not the shared cache
        reporter.close()
    return PullResult(tuple(images), destination, archive_format, size)


def _destination(output: str | os.PathLike[str] | None, refs: Sequence[Reference]) -> str:
    if output is None:
        if len(refs) > 1:
            raise ConfigError(
                "several images need an output file", "name one with -o, e.g. -o bundle.tar"
            )
        return safe_filename(refs[0])
    text = os.fspath(output)
    if text == STDOUT and sys.stdout.isatty():
        raise ConfigError(
            "refusing to write an archive to a terminal",
            "redirect standard output, e.g. `imgpull pull IMAGE -o - | docker load`",
        )
    if text != STDOUT:
        path = Path(text)
        if path.is_dir():
            raise ConfigError(f"output {text} is a directory", "name a file, e.g. -o image.tar")
        # Fail before downloading anything, not after.
        if not path.resolve().parent.is_dir():
            raise ConfigError(
                f"cannot write {text}: directory {path.resolve().parent} does not exist",
                "create it or choose another path with -o",
            )
    return text


def _open_cache(settings: Settings, destination: str) -> BlobCache:
    if settings.use_cache and settings.cache_dir is not None:
        return BlobCache(settings.cache_dir)
    near = None if destination == STDOUT else Path(destination).resolve().parent
    try:
        return BlobCache.temporary(near)
    except OSError:
        return BlobCache.temporary(None)


@dataclass(frozen=True, slots=True)
class _Resolved:
    image: PulledImage
    blob_endpoints: list[Endpoint]


def _resolve_all(
    session: Session,
    refs: Sequence[Reference],
    selection: PlatformSelection,
    cache: BlobCache,
    reporter: Reporter,
) -> list[_Resolved]:
    def resolve(ref: Reference, cancelled: threading.Event) -> _Resolved:
        if cancelled.is_set():
            raise Cancelled
        found, endpoint = session.resolve(ref, selection)
        manifest = found.manifest
        endpoints = session.blob_endpoints(ref, endpoint)
        _fetch_one(session, endpoints, ref, manifest.config, cache, reporter, cancelled, "config")
        with cache.open(manifest.config.digest) as handle:
            config = ImageConfig.parse(handle.read(), manifest.config.digest)
        image_platform = config.platform.normalized()
        wanted = selection.single
        if found.index is None and wanted is not None and not wanted.matches(image_platform):
            raise PlatformNotFoundError(
                f"{ref.familiar} is a single-platform image for {image_platform}, not {wanted}",
                f"use --platform {image_platform} or pick another tag",
                available=(str(image_platform),),
            )
        reporter.resolved(ref.familiar, str(found.digest), image_platform)
        image = PulledImage(
            ref,
            found.digest,
            manifest,
            config,
            image_platform,
            endpoint.host.label,
            found.platform_manifests,
            found.index,
        )
        return _Resolved(image, endpoints)

    return run_parallel(session.settings.jobs, refs, resolve)


def _fetch_one(
    session: Session,
    endpoints: Sequence[Endpoint],
    ref: Reference,
    descriptor: Descriptor,
    cache: BlobCache,
    reporter: Reporter,
    cancelled: threading.Event,
    what: str,
) -> None:
    if cache.has(descriptor.digest, descriptor.size):
        reporter.blob_started(descriptor, cached=True, what=what)
        reporter.blob_done(descriptor)
        return
    reporter.blob_started(descriptor, cached=False, what=what)
    reported = 0

    def progress(received: int) -> None:
        nonlocal reported
        if cancelled.is_set():
            raise Cancelled
        reported += received
        reporter.blob_progress(descriptor, received)

    label = f"{what} {descriptor.digest} of {ref.familiar_name}"

    def attempt(endpoint: Endpoint) -> None:
        with cache.partial(descriptor.digest, descriptor.size, what=label) as partial:
            if partial.complete:
                return
            # Bytes already on disk (a resumed download, or another endpoint's) count.
            progress(partial.offset - reported)
            endpoint.client.download_blob(
                ref.repository, descriptor, partial, progress, retries=session.settings.retries
            )
            partial.commit()

    session.first_success(endpoints, attempt)
    reporter.blob_done(descriptor)


class _Downloads:
    """Layer downloads running on a pool while the archive is written: the writer takes
    each blob as soon as it is in the cache, in archive order, so writing overlaps the
    transfers still going on. The first failure cancels the rest and is what is raised."""

    def __init__(
        self,
        session: Session,
        resolved: Sequence[_Resolved],
        cache: BlobCache,
        reporter: Reporter,
    ) -> None:
        self.cache = cache
        self.cancelled = threading.Event()
        self.failures: list[BaseException] = []
        unique: dict[Digest, tuple[_Resolved, Descriptor]] = {}
        for item in resolved:
            for manifest in item.image.manifests:
                for blob in manifest.blobs:
                    unique.setdefault(blob.digest, (item, blob))

        def fetch(item: _Resolved, descriptor: Descriptor) -> None:
            try:
                _fetch_one(
                    session,
                    item.blob_endpoints,
                    item.image.reference,
                    descriptor,
                    cache,
                    reporter,
                    self.cancelled,
                    "layer",
                )
            except BaseException as exc:
                if not isinstance(exc, Cancelled):
                    self.failures.append(exc)
                self.cancelled.set()
                raise

        workers = max(1, min(session.settings.jobs, len(unique)))
        self.pool = ThreadPoolExecutor(max_workers=workers)
        # Submitted in archive order, which is the order the writer needs them.
        self.futures = {d: self.pool.submit(fetch, *task) for d, task in unique.items()}

    def _raise_failure(self, future: Future[None] | None) -> None:
        error = future.exception() if future is not None else None  # waits for it
        if error is not None:
            self.cancelled.set()
            raise self.failures[0] if self.failures else error

    def open(self, digest: Digest) -> BinaryIO:
        self._raise_failure(self.futures.get(digest))
        return self.cache.open(digest)

    def wait(self) -> None:
        """Every download finished; raises the first failure."""
        for future in self.futures.values():
            self._raise_failure(future)

    def close(self) -> None:
        self.cancelled.set()
        for future in self.futures.values():
            future.cancel()
        self.pool.shutdown(wait=True)


def _archive_images(images: Sequence[PulledImage]) -> list[ArchiveImage]:
    result = []
    for image in images:
        ref = image.reference
        tag = ref.docker_tag()
        full = f"{ref.name}:{ref.tag}" if ref.tag else f"{ref.name}@{image.digest}"
        result.append(
            ArchiveImage(
                image.manifest,
                (tag,) if tag else (),
                (full,),
                (ref.tag,) if ref.tag else ("",),
                image.platform_manifests,
                image.index,
            )
        )
    return result


def _write(
    destination: str,
    images: Sequence[PulledImage],
    downloads: _Downloads,
    archive_format: ArchiveFormat,
    reporter: Reporter,
) -> int:
    entries = _archive_images(images)
    total = sum(image.size for image in images)
    reporter.writing(destination, total)
    if destination == STDOUT:
        # Nothing may reach a pipe before every blob is verified: a reader such as
        # `docker load` would take a half-pulled image.
        downloads.wait()
        try:
            return write_archive(
                sys.stdout.buffer, entries, downloads.open, archive_format=archive_format
            )
        except BrokenPipeError as exc:
            raise ArchiveError("the reader of standard output went away") from exc
    with _atomic_output(Path(destination)) as out:
        return write_archive(out, entries, downloads.open, archive_format=archive_format)


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``path``, renamed onto it only if the body succeeds."""
    path = path.resolve()  # through a symlink: replace its target, on its file system
    directory = path.parent
    # Not mkstemp: its 0600 mode would stick to the archive; "x" honours the umask.
    temp = directory / f".{path.name}.{secrets.token_hex(4)}.partial"
    try:
        out = temp.open("xb")
    except OSError as exc:
        raise ArchiveError(
            f"cannot write in {directory}: {exc.strerror}", "choose another path with -o"
        ) from exc
    try:
        with out:
            yield out
        os.replace(temp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError) and not isinstance(exc, ImgpullError):
            raise ArchiveError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


# -- look before you pull ------------------------------------------------------------------


def inspect(
    reference: str | Reference,
    *,
    platform: str | Platform | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of an image or index, without downloading layers."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    settings = settings or Settings.from_environment()
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    session = Session(settings)
    try:
        found, endpoint = session.first_success(
            session.endpoints(ref),
            lambda e: e.client.get_manifest(ref.repository, ref.identifier),
        )
        client = endpoint.client
        result: dict[str, Any] = {
            "name": ref.familiar,
            "reference": str(ref),
            "digest": str(found.digest),
            "mediaType": found.media_type,
            "endpoint": endpoint.host.label,
        }
        if isinstance(found, Index):
            result["platforms"] = [
                {
                    "platform": str(d.platform),
                    "digest": str(d.digest),
                    "size": d.size,
                    "mediaType": d.media_type,
                }
                for d in found.images()
            ]
            if wanted is None:
                return result
            found = client.get_manifest(ref.repository, str(found.select(wanted).digest))
            assert isinstance(found, Manifest)
            result["image"] = _describe(client, ref, found)
            return result
        result.update(_describe(client, ref, found))
        return result
    finally:
        session.close()


def _describe(client: RegistryClient, ref: Reference, manifest: Manifest) -> dict[str, Any]:
    config = ImageConfig.parse(
        client.get_blob_bytes(ref.repository, manifest.config), manifest.config.digest
    )
    return {
        "manifestDigest": str(manifest.digest),
        "manifestMediaType": manifest.media_type,
        "platform": str(config.platform.normalized()),
        "created": config.created,
        "config": {
            "digest": str(manifest.config.digest),
            "entrypoint": list(config.entrypoint),
            "cmd": list(config.cmd),
            "env": list(config.env),
            "workingDir": config.working_dir,
            "user": config.user,
            "labels": dict(config.labels),
        },
        "layers": [
            {"digest": str(d.digest), "size": d.size, "mediaType": d.media_type}
            for d in manifest.layers
        ],
        "size": manifest.size,
    }


def raw_manifest(reference: str | Reference, *, settings: Settings | None = None) -> bytes:
    """The manifest or index exactly as the registry served it (digest verified)."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    session = Session(settings or Settings.from_environment())
    try:
        found, _ = session.first_success(
            session.endpoints(ref),
            lambda e: e.client.get_manifest(ref.repository, ref.identifier),
        )
        return found.raw
    finally:
        session.close()


def list_tags(repository: str | Reference, *, settings: Settings | None = None) -> list[str]:
    """Every tag of a repository, following the registry's pagination."""
    ref = repository if isinstance(repository, Reference) else parse_repository(repository)
    session = Session(settings or Settings.from_environment())
    try:
        tags, _ = session.first_success(
            session.endpoints(ref), lambda e: list(e.client.list_tags(ref.repository))
        )
        return tags
    finally:
        session.close()


# -- credentials ---------------------------------------------------------------------------


def login(registry: str, *, settings: Settings) -> str:
    """Check ``settings``' credentials against ``registry`` and save them as docker does."""
    from imgpull.reference import normalize_registry
    from imgpull.registry.auth import Credentials, save_credentials

    name = normalize_registry(registry)
    if not settings.username:
        raise ConfigError("login needs a username", "pass -u NAME")
    credentials = Credentials(settings.username, settings.password or "")
    session = Session(settings)
    try:
        client = RegistryClient(settings.registry_host(name), session.http, credentials)
        client.verify_login()
    finally:
        session.close()
    return save_credentials(default_docker_config_dir(settings), name, credentials)


def logout(registry: str, *, settings: Settings) -> bool:
    from imgpull.reference import normalize_registry
    from imgpull.registry.auth import remove_credentials

    return remove_credentials(default_docker_config_dir(settings), normalize_registry(registry))
