"""Archives as an image sink: a deterministic tar written while the blobs still arrive.

Blobs are written in the order the images list them (so the same images always give the
same bytes), each as soon as it and every blob before it are in: whichever worker
completes the next blob writes it and any that follow it, while the others keep
transferring. Where the output must not see anything before every byte is verified
(standard output, a FIFO, a device), everything is written at ``commit`` instead.
Manifests follow the blobs, then ``index.json`` and, for the docker format, Docker's
``manifest.json``; the archive appears at its path only at ``commit``.

``in_place`` (a pull without a cache, into a regular file) lays out every blob's member
at ``begin`` and hands each download its region (:meth:`ArchiveSink.landing`), so the
bytes are written once, where they belong, in whatever order they arrive; the same
images still give the same bytes.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Concatenate, ParamSpec, TypeVar

from imgpull.archive.layout import (
    ArchiveFormat,
    ArchiveImage,
    docker_manifest_json,
    index_json,
    json_bytes,
    merge,
)
from imgpull.archive.output import Output, StreamOutput
from imgpull.archive.records import blob_path
from imgpull.archive.region import ArchiveRegion, PlacedBlob
from imgpull.archive.tar import TarStream
from imgpull.digest import Digest, Verifier, VerifyingReader
from imgpull.model import Descriptor, Index, Manifest
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference
from imgpull.source import Attached, BlobContent, Placement

P = ParamSpec("P")
R = TypeVar("R")
# What a full or read-only disk says; only the output can be the one written here.
_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def _names_output(
    method: Callable[Concatenate[ArchiveSink, P], R],
) -> Callable[Concatenate[ArchiveSink, P], R]:
    """A full disk names the archive ("No space left on device: out.tar"), not nothing:
    the cache lives on another disk as often as not."""

    def wrapper(self: ArchiveSink, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except OSError as exc:
            if exc.filename is not None or exc.errno not in _WRITE_ERRORS:
                raise
            raise OSError(exc.errno, exc.strerror, self.output.shown) from exc

    return wrapper


class ArchiveSink:
    def __init__(
        self,
        output: Output | StreamOutput,
        *,
        archive_format: ArchiveFormat,
        reporter: Reporter = SILENT,
        in_place: bool = False,
    ) -> None:
        self.output = output
        self.archive_format = archive_format
        self.reporter = reporter
        self.tar = TarStream(output.stream)
        self._images: list[ArchiveImage] = []
        self._order: list[Descriptor] = []
        self._next = 0  # index into _order of the next blob to write
        self._ready: dict[Digest, BlobContent] = {}
        self._written: set[Digest] = set()
        self._pending_manifests: list[Manifest | Index] = []
        self._attached: list[Attached] = []
        self._state = threading.Lock()
        self._writer = threading.Lock()
        partial = output.partial if isinstance(output, Output) else None
        self._in_place = partial if in_place else None
        self._regions: dict[Digest, int] = {}  # in place: where each blob's data starts

    @property
    def size(self) -> int:
        return self.tar.written

    def begin(self, placements: Sequence[Placement]) -> None:
        self.begin_images([ArchiveImage.of(p) for p in placements])
        known = {d.digest for d in self._order}
        for placement in placements:  # signatures, SBOMs: their blobs go in too
            for attached in placement.image.attached:
                for blob in attached.manifest.blobs:
                    if blob.digest not in known:
                        known.add(blob.digest)
                        self._order.append(blob)
        if self._in_place is not None:
            self._lay_out()

    @_names_output
    def _lay_out(self) -> None:
        for descriptor in self._order:
            self._regions[descriptor.digest] = self.tar.reserve(
                blob_path(descriptor.digest), descriptor.size
            )
        self.tar.out.flush()  # the headers are on disk before any region is written
        self._written.update(self._regions)

    def landing(self, descriptor: Descriptor) -> ArchiveRegion | None:
        """The blob's place in the archive, when it is written in place."""
        base = self._regions.get(descriptor.digest)
        if self._in_place is None or base is None:
            return None
        return ArchiveRegion(
            self._in_place,
            base,
            descriptor,
            what=f"blob {descriptor.digest}",
            shown=self.output.shown,
        )

    @_names_output
    def begin_images(self, images: Sequence[ArchiveImage]) -> None:
        """What the archive will hold; writes its first members."""
        self._images = list(images)
        seen: dict[Digest, Descriptor] = {}
        for image in self._images:
            for manifest in image.manifests:
                for blob in manifest.blobs:
                    seen.setdefault(blob.digest, blob)
        self._order = list(seen.values())
        tops = [image.top for image in self._images]
        algorithms = sorted(
            {d.digest.algorithm for d in (*self._order, *tops)}
            | {m.digest.algorithm for image in self._images for m in image.manifests}
        )
        self.tar.add_bytes("oci-layout", json_bytes({"imageLayoutVersion": "1.0.0"}))
        self.tar.add_directory("blobs")
        for algorithm in algorithms:
            self.tar.add_directory(f"blobs/{algorithm}")
        total = sum(m.size for image in self._images for m in image.manifests)
        self.reporter.writing(self.output.shown, total)

    @property
    def blob_order(self) -> list[Descriptor]:
        return list(self._order)

    def has_blob(self, descriptor: Descriptor, placements: Sequence[Placement]) -> bool:
        return False  # the transfer gives each blob once; an archive starts empty

    @_names_output
    def put_blob(
        self,
        content: BlobContent,
        placements: Sequence[Placement],
        progress: Callable[[int], None] | None = None,
    ) -> str:
        if self._in_place is not None:
            if not isinstance(content, PlacedBlob):  # transfer's bug
                raise AssertionError(f"blob {content.descriptor.digest} was not put in place")
            with self._state:
                self._ready[content.descriptor.digest] = content
            return "written"
        with self._state:
            self._ready[content.descriptor.digest] = content
        if not self.output.through:
            self._drain()
        return "written"

    def _drain(self) -> None:
        """Write every blob that is next in order and ready. A worker that finds another
        writing leaves it to that one, which looks again after letting go."""
        while self._next_ready():
            if not self._writer.acquire(blocking=False):
                return
            try:
                while (content := self._next_ready()) is not None:
                    self._write_blob(content)
                    with self._state:
                        self._next += 1
            finally:
                self._writer.release()

    def _next_ready(self) -> BlobContent | None:
        with self._state:
            if self._next >= len(self._order):
                return None
            return self._ready.get(self._order[self._next].digest)

    def _write_blob(self, content: BlobContent) -> None:
        descriptor = content.descriptor
        if descriptor.digest in self._written:
            return
        self._written.add(descriptor.digest)
        name = blob_path(descriptor.digest)
        path = content.path()
        if path is not None:
            with path.open("rb") as source:
                self.tar.add_file(name, source, descriptor.size)
            return
        with content.open() as reader:
            self.tar.add_file(name, reader, descriptor.size)  # type: ignore[arg-type]

    @_names_output
    def put_manifest(
        self, manifest: Manifest | Index, name: Reference | None, *, by_digest: bool = False
    ) -> Digest:
        if not self.output.through:
            self._finish_blobs()
        if manifest.digest not in self._written:
            self._written.add(manifest.digest)
            self._pending_manifests.append(manifest)
        if not self.output.through:
            self._write_manifests()
        return manifest.digest

    def _finish_blobs(self) -> None:
        if self._in_place is not None:
            unput = [d.digest for d in self._order if d.digest not in self._ready]
            if unput:
                raise AssertionError(f"blob {unput[0]} was never put")  # transfer's bug
            return
        with self._writer:
            while self._next < len(self._order):
                content = self._ready.get(self._order[self._next].digest)
                if content is None:
                    missing = self._order[self._next].digest
                    raise AssertionError(f"blob {missing} was never put")  # transfer's bug
                self._write_blob(content)
                self._next += 1

    def _write_manifests(self) -> None:
        pending, self._pending_manifests = self._pending_manifests, []
        for manifest in pending:
            self.tar.add_bytes(blob_path(manifest.digest), manifest.raw)

    def put_attached(self, attached: Attached, name: Reference | None) -> None:
        """Kept beside the image in the OCI view: its manifest among the blobs, an entry
        in index.json (named by its tag where it has one; docker load never sees it)."""
        self.put_manifest(attached.manifest, None)
        if all(a.manifest.digest != attached.manifest.digest for a in self._attached):
            self._attached.append(attached)

    @_names_output
    def commit(self) -> None:
        self._finish_blobs()
        self._write_manifests()
        for attached in self._attached:
            if attached.subject not in self._written:
                self.reporter.warning(
                    f"{attached.manifest.digest.short} refers to {attached.subject.short}, "
                    "which is not in the archive (a platform of a multi-platform image was "
                    "picked); pull with --all-platforms to keep the signed index"
                )
        images = merge(self._images)
        self.tar.add_bytes("index.json", json_bytes(index_json(images, self._attached)))
        if self.archive_format == "docker":
            self.tar.add_bytes("manifest.json", json_bytes(docker_manifest_json(images)))
        self.tar.close()
        self.output.commit()

    def abort(self) -> None:
        self.output.abort()


class _GivenContent:
    """A blob as a caller of :func:`write_archive` gives it: written as it is."""

    def __init__(self, descriptor: Descriptor, open_blob: Callable[[Digest], BinaryIO]) -> None:
        self.descriptor = descriptor
        self._open_blob = open_blob

    def open(self) -> VerifyingReader:
        d = self.descriptor
        verifier = Verifier(d.digest, d.size, what=f"blob {d.digest.short}")

        def open_at(offset: int) -> BinaryIO:
            handle = self._open_blob(d.digest)
            if offset:
                handle.seek(offset)
            return handle

        return VerifyingReader(open_at, verifier, trusted=True)

    def path(self) -> Path | None:
        return None


def write_archive(
    out: BinaryIO,
    images: Sequence[ArchiveImage],
    open_blob: Callable[[Digest], BinaryIO],
    *,
    archive_format: ArchiveFormat = "docker",
) -> int:
    """Write a whole archive of ``images`` to ``out`` (a file or a pipe), their blobs
    from ``open_blob`` as they are; returns the bytes written."""
    sink = ArchiveSink(StreamOutput(out), archive_format=archive_format)
    sink.begin_images(images)
    for descriptor in sink.blob_order:
        sink.put_blob(_GivenContent(descriptor, open_blob), ())
    for image in merge(images):
        if image.index is not None:
            sink.put_manifest(image.index, None)
        for manifest in image.manifests:
            sink.put_manifest(manifest, None)
    sink.commit()
    return sink.size
