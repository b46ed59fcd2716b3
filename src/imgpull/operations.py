"""Pull, inspect and list tags: the only module that knows registries and archives both."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from imgpull.archive import ArchiveFormat, ArchiveImage, write_archive
from imgpull.auth import find_credentials
from imgpull.cache import BlobCache
from imgpull.digest import Digest
from imgpull.errors import ArchiveError, ConfigError, ImgpullError, PlatformNotFoundError
from imgpull.model import Descriptor, ImageConfig, Index, Manifest, Platform
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference, parse_reference, parse_repository, safe_filename
from imgpull.registry import RegistryClient
from imgpull.settings import Settings, default_docker_config_dir
from imgpull.transport import HttpClient

STDOUT = "-"


@dataclass(frozen=True, slots=True)
class PulledImage:
    reference: Reference
    digest: Digest  # what the reference resolves to: the index digest for multi-arch images
    manifest: Manifest
    config: ImageConfig
    platform: Platform
    endpoint: str  # the registry host that served the manifest

    @property
    def size(self) -> int:
        return self.manifest.size


@dataclass(frozen=True, slots=True)
class PullResult:
    images: tuple[PulledImage, ...]
    output: str  # a path, or "-" for standard output
    archive_format: ArchiveFormat
    archive_size: int


class _Cancelled(Exception):
    """Raised inside a worker once another worker has failed."""


class Session:
    """Registry clients and the blob store for one run, shared by every image in it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.http = HttpClient(settings)
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def client(self, reference: Reference) -> RegistryClient:
        with self._lock:
            client = self._clients.get(reference.registry)
            if client is None:
                credentials = find_credentials(
                    reference.registry,
                    config_dir=default_docker_config_dir(self.settings),
                    username=self.settings.username,
                    password=self.settings.password,
                )
                host = self.settings.registry_host(reference.registry)
                client = RegistryClient(host, self.http, credentials)
                self._clients[reference.registry] = client
            return client

    def close(self) -> None:
        self.http.close()

    def resolve(self, reference: Reference, platform: Platform | None) -> tuple[Digest, Manifest]:
        """The image manifest for ``reference`` on ``platform``, and the digest it has."""
        client = self.client(reference)
        found = client.get_manifest(reference.repository, reference.identifier)
        top = found.digest
        if isinstance(found, Index):
            wanted = platform or Platform.host()
            choice = found.select(wanted)
            found = client.get_manifest(reference.repository, str(choice.digest))
            if isinstance(found, Index):
                raise ImgpullError(f"{reference.familiar}: nested indexes are not supported")
        return top, found


def parse_all(references: Iterable[str | Reference]) -> list[Reference]:
    return [r if isinstance(r, Reference) else parse_reference(r) for r in references]


def pull(
    references: Sequence[str | Reference],
    output: str | os.PathLike[str] | None = None,
    *,
    platform: str | Platform | None = None,
    archive_format: ArchiveFormat = "docker",
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> PullResult:
    """Pull images into one archive at ``output`` ("-" for stdout).

    The archive appears only when everything succeeded; on any error nothing is left at
    ``output``.
    """
    refs = parse_all(references)
    if not refs:
        raise ConfigError("no image references given", "name at least one image to pull")
    settings = settings or Settings.from_environment()
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    destination = _destination(output, refs)
    session = Session(settings)
    cache = _open_cache(settings, destination)
    try:
        images = _resolve_all(session, refs, wanted, cache, reporter)
        _fetch_blobs(session, images, cache, reporter)
        size = _write(destination, images, cache, archive_format, reporter)
    finally:
        session.close()
        if not settings.use_cache:
            cache.discard()
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


def _run_parallel(jobs: int, tasks: Sequence[Any], work: Any) -> list[Any]:
    """Run ``work(task, cancelled)`` on a pool; the first failure cancels the rest."""
    if not tasks:
        return []
    cancelled = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks)))) as pool:
        futures: list[Future[Any]] = [pool.submit(work, t, cancelled) for t in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and f.exception()), None)
        if failed is not None:
            cancelled.set()
            for future in futures:
                future.cancel()
            wait(futures)
            errors = [f.exception() for f in futures if f.done() and not f.cancelled()]
            real = [e for e in errors if e is not None and not isinstance(e, _Cancelled)]
            raise real[0] if real else failed.exception()  # type: ignore[misc]
        return [f.result() for f in futures]


def _resolve_all(
    session: Session,
    refs: Sequence[Reference],
    platform: Platform | None,
    cache: BlobCache,
    reporter: Reporter,
) -> list[PulledImage]:
    def resolve(ref: Reference, cancelled: threading.Event) -> PulledImage:
        if cancelled.is_set():
            raise _Cancelled
        top, manifest = session.resolve(ref, platform)
        _fetch_one(session, ref, manifest.config, cache, reporter, cancelled, "config")
        with cache.open(manifest.config.digest) as handle:
            config = ImageConfig.parse(handle.read(), manifest.config.digest)
        image_platform = config.platform.normalized()
        if platform is not None and not platform.matches(image_platform):
            raise PlatformNotFoundError(
                f"{ref.familiar} is a single-platform image for {image_platform}, not {platform}",
                f"use --platform {image_platform} or pick another tag",
                available=(str(image_platform),),
            )
        reporter.resolved(ref.familiar, str(top), image_platform)
        return PulledImage(ref, top, manifest, config, image_platform, ref.registry)

    return _run_parallel(session.settings.jobs, refs, resolve)


def _fetch_one(
    session: Session,
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

    def progress(received: int) -> None:
        if cancelled.is_set():
            raise _Cancelled
        reporter.blob_progress(descriptor, received)

    label = f"{what} {descriptor.digest} of {ref.familiar_name}"
    with cache.partial(descriptor.digest, descriptor.size, what=label) as partial:
        if partial.complete:
            reporter.blob_done(descriptor)
            return
        if partial.offset:
            reporter.blob_progress(descriptor, partial.offset)
        session.client(ref).download_blob(
            ref.repository, descriptor, partial, progress, retries=session.settings.retries
        )
        partial.commit()
    reporter.blob_done(descriptor)


def _fetch_blobs(
    session: Session, images: Sequence[PulledImage], cache: BlobCache, reporter: Reporter
) -> None:
    unique: dict[Digest, tuple[Reference, Descriptor]] = {}
    for image in images:
        for layer in image.manifest.layers:
            unique.setdefault(layer.digest, (image.reference, layer))
    # Biggest first: the long transfers start early and the pool drains evenly.
    tasks = sorted(unique.values(), key=lambda item: -item[1].size)

    def fetch(task: tuple[Reference, Descriptor], cancelled: threading.Event) -> None:
        ref, descriptor = task
        _fetch_one(session, ref, descriptor, cache, reporter, cancelled, "layer")

    _run_parallel(session.settings.jobs, tasks, fetch)


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
            )
        )
    return result


def _write(
    destination: str,
    images: Sequence[PulledImage],
    cache: BlobCache,
    archive_format: ArchiveFormat,
    reporter: Reporter,
) -> int:
    entries = _archive_images(images)
    total = sum(image.size for image in images)
    reporter.writing(destination, total)
    if destination == STDOUT:
        try:
            return write_archive(
                sys.stdout.buffer, entries, cache.open, archive_format=archive_format
            )
        except BrokenPipeError as exc:
            raise ArchiveError("the reader of standard output went away") from exc
    with _atomic_output(Path(destination)) as out:
        return write_archive(out, entries, cache.open, archive_format=archive_format)


@contextlib.contextmanager
def _atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A temporary file beside ``path``, renamed onto it only if the body succeeds."""
    directory = path.resolve().parent
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
        client = session.client(ref)
        found = client.get_manifest(ref.repository, ref.identifier)
        result: dict[str, Any] = {
            "name": ref.familiar,
            "reference": str(ref),
            "digest": str(found.digest),
            "mediaType": found.media_type,
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
        return session.client(ref).get_manifest(ref.repository, ref.identifier).raw
    finally:
        session.close()


def list_tags(repository: str | Reference, *, settings: Settings | None = None) -> list[str]:
    """Every tag of a repository, following the registry's pagination."""
    ref = repository if isinstance(repository, Reference) else parse_repository(repository)
    session = Session(settings or Settings.from_environment())
    try:
        return list(session.client(ref).list_tags(ref.repository))
    finally:
        session.close()


# -- credentials ---------------------------------------------------------------------------


def login(registry: str, *, settings: Settings) -> str:
    """Check ``settings``' credentials against ``registry`` and save them as docker does."""
    from imgpull.auth import Credentials, save_credentials
    from imgpull.reference import normalize_registry

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
    from imgpull.auth import remove_credentials
    from imgpull.reference import normalize_registry

    return remove_credentials(default_docker_config_dir(settings), normalize_registry(registry))
