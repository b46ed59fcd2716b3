"""Registries as an image source: references resolved through mirrors, blobs streamed
with resume.

A reference resolves on the first endpoint that answers (mirrors first); its blobs are
then asked of that endpoint first, then of the others, since blobs are content
addressed. A stream cut off midway goes on with a ``Range`` request from where it
stopped (same endpoint, then the next), as the retry policy and the deadline allow; a
stream whose bytes fail verification marks the endpoints it used as bad for that blob.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Final, TypeVar

from imgpull.cache import BlobStore
from imgpull.digest import ByteStream, Digest, Verifier, VerifyingReader
from imgpull.errors import DigestMismatchError, ImgpullError, NetworkError, UnsupportedError
from imgpull.model import Descriptor, ImageConfig, Index, Manifest, PlatformSelection, index_subset
from imgpull.progress import Reporter
from imgpull.reference import Reference
from imgpull.registry import referrers
from imgpull.registry.client import RangeIgnored
from imgpull.registry.response import Response
from imgpull.registry.session import Endpoint, Registries
from imgpull.registry.urls import redact
from imgpull.source import PIECE_CONNECTIONS, SourceImage
from imgpull.workers import Cancelled, run_parallel

log = logging.getLogger("imgpull.registry.source")
T = TypeVar("T")

_READ: Final = 1024 * 1024
# Pieces are slow streams by definition (that is why a blob was cut), and there are up to
# 4 per parallel blob (-j): smaller reads keep the sum of their buffers small.
_PIECE_READ: Final = 128 * 1024


class RegistrySource:
    """The images ``references`` name, from their registries (and mirrors)."""

    def __init__(
        self,
        registries: Registries,
        references: Sequence[Reference],
        *,
        store: BlobStore | None = None,
        reporter: Reporter,
        read_configs: bool = True,
        referrers: bool = False,
    ) -> None:
        self.registries = registries
        self.read_configs = read_configs
        self.referrers = referrers
        self.references = list(references)
        self.store = store
        self.reporter = reporter
        self._endpoints: dict[Digest, list[Endpoint]] = {}
        self._bad: dict[Digest, set[str]] = {}
        self._used: dict[Digest, set[str]] = {}
        self._repository: dict[Digest, str] = {}
        self._configs: dict[Digest, bytes] = {}
        self._pieces: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # -- resolving ------------------------------------------------------------------------

    def resolve(self, selection: PlatformSelection) -> list[SourceImage]:
        def one(reference: Reference, cancelled: threading.Event) -> SourceImage:
            if cancelled.is_set():
                raise Cancelled
            return self.resolve_one(reference, selection)

        return run_parallel(self.registries.settings.jobs, self.references, one)

    def resolve_one(self, reference: Reference, selection: PlatformSelection) -> SourceImage:
        """What ``reference`` names on the selected platforms, and who served it."""

        def fetch(endpoint: Endpoint) -> SourceImage:
            return self._resolve_on(endpoint, reference, selection)

        # Manifests are small and latency-bound: the endpoints race for them.
        found, endpoint = self.registries.race(self.registries.endpoints(reference), fetch)
        others = [e for e in self.registries.endpoints(reference) if e.host != endpoint.host]
        with self._lock:
            for blob in found.blobs():
                self._endpoints.setdefault(blob.digest, [endpoint, *others])
                self._repository.setdefault(blob.digest, reference.repository)
        image = self._with_configs(found, [endpoint, *others], reference, selection)
        if self.referrers:
            image = self._with_referrers(image, endpoint, reference)
        kind = "" if image.primary.is_image else image.primary.kind
        self.reporter.resolved(reference.familiar, str(image.resolved), image.platform, kind)
        return image

    def _resolve_on(
        self, endpoint: Endpoint, reference: Reference, selection: PlatformSelection
    ) -> SourceImage:
        client = endpoint.client
        repository = reference.repository
        found = client.get_manifest(repository, reference.identifier)
        if isinstance(found, Manifest):
            manifests: list[Manifest] = [found]
            top: Manifest | Index = found
        else:
            children = selection.choose(found)
            primary = selection.primary(children)
            ordered = [primary, *(c for c in children if c.digest != primary.digest)]
            manifests = [self._child(endpoint, reference, found, c) for c in ordered]
            top = index_subset(found, children) if selection.several else manifests[0]
        return SourceImage(
            label=reference.familiar,
            top=top,
            manifests=tuple(manifests),
            configs={},
            resolved=found.digest,
            endpoint=endpoint.label,
            names=(reference,),
            origin=None
            if endpoint.host.mirror_of is not None
            else (endpoint.host.api_host, endpoint.host.repository(repository)),
        )

    def _with_configs(
        self,
        image: SourceImage,
        endpoints: Sequence[Endpoint],
        reference: Reference,
        selection: PlatformSelection,
    ) -> SourceImage:
        """The image with its configs, asked of every endpoint in turn (configs are blobs:
        any endpoint's copy will do once verified); a single-platform image is checked
        against the platform asked for."""
        if not self.read_configs:
            return image
        configs: dict[Digest, ImageConfig] = {}
        for manifest in image.manifests:
            if manifest.is_image:
                descriptor = manifest.config

                def fetch(endpoint: Endpoint, d: Descriptor = descriptor) -> ImageConfig:
                    return self._config(endpoint, reference.repository, d)

                configs[descriptor.digest], _ = self.registries.first_success(endpoints, fetch)
        image = dataclasses.replace(image, configs=configs)
        single = isinstance(image.top, Manifest) and image.resolved == image.top.digest
        if single and image.platform is not None:
            selection.check_single(reference.familiar, image.platform)
        return image

    def _with_referrers(
        self, image: SourceImage, endpoint: Endpoint, reference: Reference
    ) -> SourceImage:
        """The image with what refers to it (and to each platform's manifest) attached;
        their blobs come from the same endpoint, as the image's do."""
        subjects = dict.fromkeys(
            [image.resolved, image.top.digest, *(m.digest for m in image.manifests)]
        )
        attached = [
            found
            for subject in subjects
            for found in referrers.find(endpoint.client, reference.repository, subject)
        ]
        others = [e for e in self.registries.endpoints(reference) if e.host != endpoint.host]
        with self._lock:
            for item in attached:
                for blob in item.manifest.blobs:
                    self._endpoints.setdefault(blob.digest, [endpoint, *others])
                    self._repository.setdefault(blob.digest, reference.repository)
        return dataclasses.replace(image, attached=tuple(attached))

    def _child(
        self, endpoint: Endpoint, reference: Reference, index: Index, child: Descriptor
    ) -> Manifest:
        found = endpoint.client.get_manifest(
            reference.repository, str(child.digest), size=child.size
        )
        if isinstance(found, Index):
            raise UnsupportedError(f"{reference.familiar}: nested indexes are not supported")
        return found

    def _config(self, endpoint: Endpoint, repository: str, descriptor: Descriptor) -> ImageConfig:
        raw = self.store.read_small(descriptor) if self.store is not None else None
        if raw is None:
            limit = self.registries.settings.manifest_limit
            raw = endpoint.client.fetch_blob(repository, descriptor, limit)
            if self.store is not None:
                self.store.put_bytes(descriptor, raw)
        with self._lock:
            self._configs[descriptor.digest] = raw
        return ImageConfig.parse(raw, descriptor.digest)

    # -- blobs ----------------------------------------------------------------------------

    def open_blob(self, descriptor: Descriptor, resume: Verifier | None = None) -> VerifyingReader:
        verifier = resume or Verifier(
            descriptor.digest, descriptor.size, what=f"blob {descriptor.digest}"
        )
        with self._lock:
            held = self._configs.get(descriptor.digest)
        if held is not None and verifier.received == 0:
            # Checked with the caller's verifier: it is the record of what was written.
            return VerifyingReader(lambda offset: io.BytesIO(held[offset:]), verifier)
        return VerifyingReader(lambda offset: self._stream(descriptor, offset), verifier)

    def _stream(self, descriptor: Descriptor, offset: int) -> ByteStream:
        with self._lock:
            endpoints = [
                e
                for e in self._endpoints.get(descriptor.digest, [])
                if e.label not in self._bad.get(descriptor.digest, set())
            ]
            repository = self._repository.get(descriptor.digest, "")
        if not endpoints:
            raise DigestMismatchError(
                f"blob {descriptor.digest}: no endpoint serves it with the right content"
            )
        return _ResumingStream(self, descriptor, repository, endpoints, offset)

    def fetch_pieces(
        self,
        descriptor: Descriptor,
        pieces: Sequence[tuple[int, int, int]],
        writer: Callable[[], BinaryIO],
        piece_done: Callable[[int], None],
        progress: Callable[[int], None],
    ) -> None:
        """Fetch ``pieces`` (index, start, end) of a blob over several connections at
        once, each written where it belongs as it arrives. RangeIgnored when an endpoint
        sends whole blobs (the caller falls back to one stream)."""
        with self._lock:
            if self._pieces is None:
                workers = max(1, self.registries.settings.jobs) * PIECE_CONNECTIONS
                self._pieces = ThreadPoolExecutor(workers, thread_name_prefix="imgpull-piece")
            pool = self._pieces

        stop = threading.Event()

        def one(piece: tuple[int, int, int]) -> None:
            index, start, end = piece
            stream = self._piece_stream(descriptor, start, end)
            position = start
            buffer = memoryview(bytearray(_PIECE_READ))
            try:
                with writer() as handle:
                    handle.seek(start)
                    while count := stream.readinto(buffer):
                        if stop.is_set():
                            raise Cancelled
                        handle.write(buffer[:count])
                        position += count
                        progress(count)
            finally:
                stream.close()
            if position != end:
                raise DigestMismatchError(
                    f"blob {descriptor.digest}: a piece ended at byte {position}, not {end}"
                )
            piece_done(index)

        futures = [pool.submit(one, piece) for piece in pieces]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()
            for future in futures:
                future.cancel()
            for future in futures:
                if not future.cancelled():
                    future.exception()  # wait for it to stop
            raise

    def _piece_stream(self, descriptor: Descriptor, start: int, end: int) -> _ResumingStream:
        with self._lock:
            endpoints = [
                e
                for e in self._endpoints.get(descriptor.digest, [])
                if e.label not in self._bad.get(descriptor.digest, set())
            ]
            repository = self._repository.get(descriptor.digest, "")
        if not endpoints or descriptor.urls:
            raise RangeIgnored("foreign layers and unknown blobs come in one stream")
        return _ResumingStream(self, descriptor, repository, endpoints, start, end)

    def retry_blob(self, descriptor: Descriptor) -> bool:
        with self._lock:
            used = self._used.pop(descriptor.digest, set())
            bad = self._bad.setdefault(descriptor.digest, set())
            bad.update(used)
            left = [e for e in self._endpoints.get(descriptor.digest, []) if e.label not in bad]
        for label in sorted(used):
            self.reporter.warning(
                f"{label} skipped for blob {descriptor.digest.short}: its content does not "
                "match the digest"
            )
        return bool(left) and bool(used)

    def note_used(self, descriptor: Descriptor, endpoint: Endpoint) -> None:
        with self._lock:
            self._used.setdefault(descriptor.digest, set()).add(endpoint.label)

    def close(self) -> None:
        with self._lock:
            pool, self._pieces = self._pieces, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class _ResumingStream:
    """A blob's bytes from ``offset``; a connection that fails midway is resumed with a
    Range request at the current position, on the same endpoint while the retry policy
    allows, then on the next. Foreign layers come from their URLs first."""

    def __init__(
        self,
        source: RegistrySource,
        descriptor: Descriptor,
        repository: str,
        endpoints: Sequence[Endpoint],
        offset: int,
        end: int | None = None,
    ) -> None:
        self.source = source
        self.descriptor = descriptor
        self.repository = repository
        self.position = offset
        self.end = end  # a piece: bytes up to here only
        # (endpoint, foreign URL or None) in the order to try.
        self.places: list[tuple[Endpoint, str | None]] = [
            (endpoints[0], url) for url in descriptor.urls
        ] + [(e, None) for e in endpoints]
        self.response: Response | None = None
        self.failures = 0
        self.errors: list[str] = []

    def _open(self) -> Response:
        http = self.source.registries.http
        while self.places:
            endpoint, url = self.places[0]
            try:
                response = endpoint.client.blob_response(
                    self.repository, self.descriptor, self.position, url, end=self.end
                )
            except RangeIgnored:
                raise
            except ImgpullError as exc:
                self._failed(endpoint, url, exc)
                continue
            if response.status == 200 and self.position:
                # The server ignores Range: skip what we have (verified already).
                self._skip(response, self.position)
            self.source.note_used(self.descriptor, endpoint)
            return response
        http.deadline.check()
        raise self._exhausted()

    def _skip(self, response: Response, count: int) -> None:
        while count:
            data = response.read1(min(count, _READ))
            if not data:
                break
            count -= len(data)

    def _failed(self, endpoint: Endpoint, url: str | None, exc: ImgpullError) -> None:
        """Count a failure; move to the next place when this one is used up."""
        http = self.source.registries.http
        http.deadline.check()
        where = redact(url) if url else endpoint.label
        self.errors.append(exc.message if where in exc.message else f"{where}: {exc.message}")
        self.failures += 1
        # A place that stalled (no data, or too little, for --speed-time) is not asked
        # again while another can serve; the last one is, up to --retries times, since a
        # new connection often cures a stuck one (and resumes where it stood).
        stalled = isinstance(exc, NetworkError) and exc.stalled and len(self.places) > 1
        if not exc.temporary or stalled or self.failures > http.policy.retries:
            self.places.pop(0)
            self.failures = 0
            if self.places:
                self.source.reporter.warning(
                    f"{where} skipped for blob {self.descriptor.digest.short}: {exc.message}"
                )
            return
        log.debug("blob %s: %s; attempt %d", self.descriptor.digest.short, exc, self.failures)
        http.deadline.sleep(http.policy.backoff(self.failures - 1))

    def _exhausted(self) -> ImgpullError:
        left = self.descriptor.size - self.position
        detail = "; ".join(dict.fromkeys(self.errors[-3:])) or "no endpoint"
        if len(self.errors) > 1:
            detail += f" ({len(self.errors)} tries)"
        return NetworkError(
            f"{detail} (blob {self.descriptor.digest.short}, {left} of "
            f"{self.descriptor.size} bytes left)",
            "check the network path, or try again",
            temporary=False,
        )

    def read(self, size: int = -1) -> bytes:
        want = self._wanted(size if size > 0 else _READ)
        data = self._take(lambda response: response.read1(want)) if want else b""
        self.position += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        view = buffer[: self._wanted(len(buffer))]
        count = self._take(lambda response: response.readinto(view)) if len(view) else 0
        self.position += count
        return count

    def _take(self, read: Callable[[Response], T]) -> T:
        """``read`` from the current answer; a failed one is dropped, and the read tried
        again where the failure leaves it (the same place resumed, or the next)."""
        while True:
            if self.response is None:
                self.response = self._open()
            try:
                return read(self.response)
            except ImgpullError as exc:
                self.response.close()
                self.response = None
                endpoint, url = self.places[0]
                self._failed(endpoint, url, exc)

    def _wanted(self, size: int) -> int:
        if self.end is None:
            return size
        return max(0, min(size, self.end - self.position))

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None
