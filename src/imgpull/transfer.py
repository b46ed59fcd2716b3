"""The one routine that moves images from a source to a sink.

``pull`` is registry -> archive, ``push`` archive -> registry, ``copy`` registry ->
registry; each builds a source and a sink and calls :func:`transfer`, which stores each
unique blob once through a bounded pool, then the manifests bottom-up, then commits.
With a blob store (pulls), blobs are downloaded into it first (resumable across runs,
shared between runs) and the sink takes them from there; a sink that gives each blob a
place of its own (an archive written in place, ``pull --no-cache``) has it downloaded
there; otherwise a blob streams from the source straight into the sink (push, copy).
Progress events come from here, once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from imgpull.cache import SMALL_BLOB, BlobStore, StoredBlob
from imgpull.digest import Digest, Verifier
from imgpull.errors import DigestMismatchError
from imgpull.model import Descriptor, Index, Manifest
from imgpull.progress import Reporter
from imgpull.reference import Reference
from imgpull.source import (
    BlobContent,
    ImageSink,
    ImageSource,
    Landing,
    PieceSource,
    PiecesRefused,
    Placement,
    PlacingSink,
    StreamedContent,
)
from imgpull.workers import Cancelled, run_parallel

_READ: Final = 1024 * 1024
MIB: Final = 1024 * 1024
# A blob whose single stream would take longer than this for what is left is fetched in
# pieces over several connections (a throttling proxy or a long path keeps each one
# slow); a fast link finishes big blobs before the question comes up.
SPLIT_IF_LONGER: Final = 2.0
SPLIT_AFTER: Final = 0.5  # seconds of one stream before its rate is judged
MIN_SPLIT: Final = 16 * MIB
MAX_PIECES: Final = 8
# Wrong bytes from one endpoint are worth another endpoint's try, a few times at most.
_MAX_BAD_COPIES: Final = 4


def unique_blobs(
    placements: Sequence[Placement],
) -> list[tuple[Descriptor, list[Placement]]]:
    """Every blob once, in the order the images list them (the archive's order), with
    every placement that needs it."""
    seen: dict[Digest, tuple[Descriptor, list[Placement]]] = {}
    for placement in placements:
        for blob in placement.image.blobs():
            _, users = seen.setdefault(blob.digest, (blob, []))
            if not any(user is placement for user in users):
                users.append(placement)
    return list(seen.values())


def transfer(
    source: ImageSource,
    sink: ImageSink,
    placements: Sequence[Placement],
    *,
    jobs: int,
    reporter: Reporter,
    store: BlobStore | None = None,
    action: str = "copying",
    on_cancel: Callable[[], None] | None = None,
) -> list[Digest]:
    """Store every placement's image in ``sink``; returns the digest each name points at.

    On any failure the sink is aborted (nothing half-written stays) and the first
    failure is raised; the other workers are cancelled.
    """
    try:
        sink.begin(placements)
        blobs = unique_blobs(placements)

        def one(item: tuple[Descriptor, list[Placement]], cancelled: threading.Event) -> None:
            descriptor, users = item
            transfer_blob(source, sink, descriptor, users, store, reporter, action, cancelled)

        run_parallel(jobs, blobs, one, on_cancel=on_cancel, light=_latency_bound)
        digests = [_put_manifests(sink, placement, reporter) for placement in placements]
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return digests


def _latency_bound(item: tuple[Descriptor, list[Placement]]) -> bool:
    """A blob small enough that its round trips, not its bytes, take the time: such
    blobs may run on -j more workers."""
    return item[0].size <= SMALL_BLOB


def _put_manifests(sink: ImageSink, placement: Placement, reporter: Reporter) -> Digest:
    """Children before what refers to them, for each name; the top under the name."""
    image = placement.image
    top = image.top
    names: Sequence[Reference | None] = placement.names or (None,)
    digest = top.digest
    for name in names:
        if isinstance(top, Index):
            children: list[Manifest | Index] = [*image.manifests, *image.nested]
            for child in children:
                sink.put_manifest(child, name, by_digest=True)
        digest = sink.put_manifest(top, name)
        if name is not None:
            reporter.stored(name.familiar, str(digest))
        for attached in image.attached:
            sink.put_attached(attached, name)
    return digest


def transfer_blob(
    source: ImageSource,
    sink: ImageSink,
    descriptor: Descriptor,
    placements: Sequence[Placement],
    store: BlobStore | None,
    reporter: Reporter,
    action: str,
    cancelled: threading.Event,
) -> None:
    """Get one blob into the sink: skipped when the sink holds it, taken from the store
    when it is there (downloaded into it first otherwise), else streamed from the
    source. Wrong bytes from an endpoint are tried again from another one."""
    if sink.has_blob(descriptor, placements):
        reporter.skipped(descriptor, "exists")
        return
    progress = _progress(reporter, descriptor, cancelled)
    content: BlobContent
    for attempt in range(_MAX_BAD_COPIES):
        try:
            streamed: Callable[[int], None] | None = None
            if store is not None:
                content = _from_store(source, store, descriptor, reporter, progress)
            elif (
                isinstance(sink, PlacingSink) and (landing := sink.landing(descriptor)) is not None
            ):
                reporter.started(descriptor, "downloading")
                with landing:
                    content = _download(source, descriptor, landing, reporter, progress)
            else:
                reporter.started(descriptor, action)
                content, streamed = StreamedContent(source, descriptor), progress
            how = sink.put_blob(content, placements, streamed)
            break
        except DigestMismatchError:
            if attempt == _MAX_BAD_COPIES - 1 or not source.retry_blob(descriptor):
                raise
            reporter.restarted(descriptor)
    if how.startswith("mounted"):
        reporter.skipped(descriptor, how)
    reporter.finished(descriptor)


def piece_size(size: int, pieces: int) -> int:
    """``size`` bytes cut in ``pieces``, in whole MiB, never smaller than 8 MiB."""
    per = -(-size // max(1, pieces))
    return max(8 * MIB, -(-per // MIB) * MIB)


class _Split(Exception):
    """Internal: the stream is too slow for what is left of the blob; fetch the rest in
    ``pieces`` pieces over several connections."""

    def __init__(self, position: int, pieces: int) -> None:
        super().__init__(position, pieces)
        self.position = position
        self.pieces = pieces


def _pieces_worth(descriptor: Descriptor, started: float, start: int, position: int) -> int:
    """How many pieces the rest of a blob is worth cutting into: none while the single
    stream is young or the rest would take under SPLIT_IF_LONGER at its rate (a fast
    link finishes big blobs in a moment); else about a second of that rate each, from 2
    to MAX_PIECES (a throttled or far link moves each connection at that rate)."""
    elapsed = time.monotonic() - started
    left = descriptor.size - position
    if elapsed < SPLIT_AFTER or left < MIN_SPLIT or descriptor.urls:
        return 0
    rate = (position - start) / elapsed
    seconds = left / rate if rate > 0 else math.inf
    if seconds <= SPLIT_IF_LONGER:
        return 0
    return max(2, min(MAX_PIECES, math.ceil(seconds)))


def _pieces(
    source: ImageSource,
    descriptor: Descriptor,
    partial: Landing,
    missing: list[tuple[int, int, int]],
    progress: Callable[[int], None],
    verified: Verifier | None,
) -> BlobContent:
    """Fetch the missing pieces, verify the whole, store it."""
    assert isinstance(source, PieceSource)
    source.fetch_pieces(descriptor, missing, partial.writer, partial.piece_done, progress)
    try:
        partial.verifier = _hash_landed(partial, descriptor, verified)
    except DigestMismatchError:
        partial.discard()
        raise
    return partial.commit()


def _hash_landed(landing: Landing, descriptor: Descriptor, verified: Verifier | None) -> Verifier:
    """Hash what the pieces wrote: on from ``verified`` where this run split a stream
    (its bytes are checked already), else the whole blob (an earlier run's pieces)."""
    if verified is None:
        verifier = Verifier(descriptor.digest, descriptor.size, what=f"blob {descriptor.digest}")
        offset = 0
    else:
        verifier, offset = verified, verified.received
    with landing.writer() as handle:
        handle.seek(offset)
        left = descriptor.size - offset
        while left and (chunk := handle.read(min(_READ, left))):
            verifier.update(chunk)
            left -= len(chunk)
    verifier.verify()
    return verifier


def _progress(
    reporter: Reporter, descriptor: Descriptor, cancelled: threading.Event
) -> Callable[[int], None]:
    def progress(count: int) -> None:
        if cancelled.is_set():
            raise Cancelled
        reporter.progress(descriptor, count)

    return progress


def _from_store(
    source: ImageSource,
    store: BlobStore,
    descriptor: Descriptor,
    reporter: Reporter,
    progress: Callable[[int], None],
) -> BlobContent:
    """The blob from the store, downloading it there first; a download cut off in an
    earlier run goes on from where it stopped."""
    found = store.lookup(descriptor)
    if found is not None:
        reporter.skipped(descriptor, "cached")
        return found
    if descriptor.size <= SMALL_BLOB:
        reporter.started(descriptor, "downloading")
        return _small(source, store, descriptor, progress)
    with store.partial(descriptor, what=f"blob {descriptor.digest}") as partial:
        if partial.complete:  # another process finished it while we waited
            reporter.skipped(descriptor, "cached")
            stored = store.lookup(descriptor)
            assert stored is not None
            return stored
        reporter.started(descriptor, "downloading")
        if partial.in_pieces:
            missing = partial.resume_pieces() if isinstance(source, PieceSource) else None
            if missing is not None:
                progress(partial.pieces_done_bytes)
                return _pieces(source, descriptor, partial, missing, progress, None)
            partial.restart()  # an earlier run's pieces this run cannot use: from the start
        return _download(source, descriptor, partial, reporter, progress)


def _download(
    source: ImageSource,
    descriptor: Descriptor,
    landing: Landing,
    reporter: Reporter,
    progress: Callable[[int], None],
) -> BlobContent:
    """The blob into ``landing``: in one stream, or the rest in pieces when the stream
    turns out too slow for what is left."""
    try:
        return _stream(source, descriptor, landing, progress)
    except _Split as split:
        left = descriptor.size - split.position
        pieces = landing.split(split.position, piece_size(left, split.pieces))
        try:
            return _pieces(source, descriptor, landing, pieces, progress, landing.verifier)
        except PiecesRefused:
            landing.restart()  # then in one stream after all, from the start
            reporter.restarted(descriptor)
            return _stream(source, descriptor, landing, progress, split=False)


def _small(
    source: ImageSource,
    store: BlobStore,
    descriptor: Descriptor,
    progress: Callable[[int], None],
) -> StoredBlob:
    """A small blob read whole into memory (verified there), then stored in one write."""
    data = bytearray(descriptor.size)
    view = memoryview(data)
    filled = 0
    reader = source.open_blob(descriptor)
    try:
        while count := reader.readinto(view[filled:]):
            filled += count
            progress(count)
    finally:
        reader.close()
    return store.put_verified(descriptor, data)


def _stream(
    source: ImageSource,
    descriptor: Descriptor,
    partial: Landing,
    progress: Callable[[int], None],
    *,
    split: bool = True,
) -> BlobContent:
    """The blob in one stream, after what the partial holds; _Split when the rest is
    better fetched in pieces."""
    if partial.offset:
        progress(partial.offset)
    start, started = partial.offset, time.monotonic()
    # Asked once per blob, not per chunk: an isinstance against a Protocol walks its
    # members every time.
    split = split and isinstance(source, PieceSource)
    reader = source.open_blob(descriptor, resume=partial.verifier)
    buffer = memoryview(bytearray(_READ))  # one for the whole blob: read, hashed, written
    try:
        while count := reader.readinto(buffer):
            partial.write(buffer[:count])
            progress(count)
            position = partial.offset
            pieces = _pieces_worth(descriptor, started, start, position) if split else 0
            if pieces:
                raise _Split(position, pieces)
    except DigestMismatchError:
        partial.discard()  # bytes from a lying server must not seed another try
        raise
    finally:
        reader.close()
    return partial.commit()
