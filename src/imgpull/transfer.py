"""The one routine that moves images from a source to a sink.

``pull`` is registry -> archive, ``push`` archive -> registry, ``copy`` registry ->
registry; each builds a source and a sink and calls :func:`transfer`, which stores each
unique blob once through a bounded pool, then the manifests bottom-up, then commits.
With a blob store (pulls), blobs are downloaded into it first (resumable across runs,
shared between runs) and the sink takes them from there; without one, a blob streams
from the source straight into the sink. Progress events come from here, once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Final

from imgpull.cache import BlobStore, PartialBlob, StoredBlob
from imgpull.digest import Digest
from imgpull.errors import DigestMismatchError
from imgpull.model import Descriptor, Index, Manifest
from imgpull.progress import Reporter
from imgpull.reference import Reference
from imgpull.source import (
    BlobContent,
    ImageSink,
    ImageSource,
    PieceSource,
    PiecesRefused,
    Placement,
    StreamedContent,
)
from imgpull.workers import Cancelled, run_parallel

_READ: Final = 1024 * 1024
MIB: Final = 1024 * 1024
# Blobs from this size come over several connections at once (a big layer otherwise
# waits on one connection, which a throttling proxy or a long path keeps slow).
PIECES_FROM: Final = 32 * MIB
PIECE_CONNECTIONS: Final = 4
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

        run_parallel(jobs, blobs, one, on_cancel=on_cancel)
        digests = [_put_manifests(sink, placement, reporter) for placement in placements]
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return digests


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
            if store is not None:
                content = _from_store(source, store, descriptor, reporter, progress)
            else:
                reporter.started(descriptor, action)
                content = StreamedContent(source, descriptor)
            how = sink.put_blob(content, placements, progress if store is None else None)
            break
        except DigestMismatchError:
            if attempt == _MAX_BAD_COPIES - 1 or not source.retry_blob(descriptor):
                raise
            reporter.restarted(descriptor)
    if how.startswith("mounted"):
        reporter.skipped(descriptor, how)
    reporter.finished(descriptor)


def piece_size(size: int, jobs: int) -> int:
    """Pieces for ``jobs`` connections, in whole MiB, never smaller than 8 MiB."""
    per = -(-size // max(1, jobs))
    return max(8 * MIB, -(-per // MIB) * MIB)


def _in_pieces(source: ImageSource, descriptor: Descriptor) -> bool:
    return (
        descriptor.size >= PIECES_FROM and not descriptor.urls and isinstance(source, PieceSource)
    )


def _download_pieces(
    source: ImageSource,
    descriptor: Descriptor,
    partial: PartialBlob,
    progress: Callable[[int], None],
) -> StoredBlob:
    """A big blob over several connections: only the pieces an earlier run did not
    finish are fetched; the whole is verified before it enters the store."""
    assert isinstance(source, PieceSource)
    missing = partial.pieces(piece_size(descriptor.size, PIECE_CONNECTIONS))
    if partial.pieces_done_bytes:
        progress(partial.pieces_done_bytes)
    source.fetch_pieces(descriptor, missing, partial.write_at, partial.piece_done, progress)
    try:
        partial.verify_file()
    except DigestMismatchError:
        partial.discard()
        raise
    return partial.commit()


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
) -> StoredBlob:
    """The blob from the store, downloading it there first; a download cut off in an
    earlier run goes on from where it stopped."""
    found = store.lookup(descriptor)
    if found is not None:
        reporter.skipped(descriptor, "cached")
        return found
    with store.partial(descriptor, what=f"blob {descriptor.digest}") as partial:
        if partial.complete:  # another process finished it while we waited
            reporter.skipped(descriptor, "cached")
            stored = store.lookup(descriptor)
            assert stored is not None
            return stored
        reporter.started(descriptor, "downloading")
        if _in_pieces(source, descriptor):
            try:
                return _download_pieces(source, descriptor, partial, progress)
            except PiecesRefused:
                partial.restart()  # then in one stream, from the start
                reporter.restarted(descriptor)
        elif partial.in_pieces:
            partial.restart()  # an earlier run fetched pieces; this one reads a stream
        if partial.offset:
            progress(partial.offset)
        reader = source.open_blob(descriptor, resume=partial.verifier)
        try:
            while chunk := reader.read(_READ):
                partial.write(chunk)
                progress(len(chunk))
        except DigestMismatchError:
            partial.discard()  # bytes from a lying server must not seed another try
            raise
        finally:
            reader.close()
        return partial.commit()
