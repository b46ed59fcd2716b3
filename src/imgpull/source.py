"""Where images come from and where they go: the two protocols every transfer is made of.

    reference -> ImageSource --(resolve: SourceImage)--> transfer() --> ImageSink
                 registry, archive                                      archive, registry

A source resolves what it was asked for into :class:`SourceImage` records (every
manifest already fetched and verified, configs included) and opens blobs as
:class:`~imgpull.digest.VerifyingReader` streams, so no sink ever sees unverified
bytes. A sink takes blobs, then manifests bottom-up, and publishes only at ``commit``.
``imgpull.transfer.transfer`` is the one routine between them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Protocol, Self, runtime_checkable

from imgpull.digest import Digest, Verifier, VerifyingReader
from imgpull.errors import ImgpullError
from imgpull.model import Descriptor, ImageConfig, Index, Manifest, Platform, PlatformSelection
from imgpull.reference import Reference


@dataclass(frozen=True, slots=True)
class Attached:
    """What refers to an image: a signature, an attestation, an SBOM.

    ``subject`` is the digest it is about. ``tag`` is the tag it lives under where tools
    find it by tag (cosign's ``sha256-<hex>.sig``, ``.att``, ``.sbom``); None for an OCI
    1.1 referrer, found through the ``subject`` in its manifest (the referrers API, or
    the ``sha256-<hex>`` fallback tag's index where a registry has no such API).
    """

    manifest: Manifest
    subject: Digest
    tag: str | None = None


@dataclass(frozen=True, slots=True)
class SourceImage:
    """One image as a source offers it: what its name points at (``top``: a manifest, or
    an index of the platforms taken), every manifest in it, and their configs."""

    label: str  # how messages call it: the reference as given, or an archive's name
    top: Manifest | Index
    manifests: tuple[Manifest, ...]  # image (or artifact) manifests, ``primary`` first
    configs: Mapping[Digest, ImageConfig]  # parsed configs of the image manifests
    resolved: Digest  # what the name resolved to at the source (an index's digest)
    endpoint: str  # where it came from: a registry or mirror, or an archive
    names: tuple[Reference, ...] = ()  # the names the source records for it
    tags: tuple[str, ...] = ()  # bare tags recorded for it (OCI ref.name annotations)
    nested: tuple[Index, ...] = ()  # indexes inside ``top``, stored before it
    # Where the blobs live at a registry source (api host, repository): a destination on
    # the same registry can mount them from there instead of receiving them.
    origin: tuple[str, str] | None = None
    attached: tuple[Attached, ...] = ()  # signatures, attestations, SBOMs (--referrers)

    @property
    def primary(self) -> Manifest:
        """The image docker loads from an archive."""
        return self.manifests[0]

    @property
    def platform(self) -> Platform | None:
        config = self.configs.get(self.primary.config.digest)
        return None if config is None else config.platform.normalized()

    @property
    def size(self) -> int:
        return sum(m.size for m in self.manifests)

    def blobs(self) -> Iterator[Descriptor]:
        """Every blob of every manifest, what is attached included, in order (repeats
        included)."""
        for manifest in self.manifests:
            yield from manifest.blobs
        for attached in self.attached:
            yield from attached.manifest.blobs

    @property
    def digests(self) -> set[Digest]:
        """What may be a subject here: the top and every manifest in it."""
        return {self.top.digest, self.resolved, *(m.digest for m in self.manifests)}


@dataclass(frozen=True, slots=True)
class Placement:
    """An image and the names it is stored under in a sink (none: by digest only)."""

    image: SourceImage
    names: tuple[Reference, ...]


class BlobContent(Protocol):
    """A blob's bytes, ready to be put into a sink."""

    @property
    def descriptor(self) -> Descriptor: ...

    def open(self) -> VerifyingReader:
        """The bytes from the start, verified while read."""
        ...

    def path(self) -> Path | None:
        """A local file holding exactly these verified bytes, when there is one (the
        sink may copy it with the system's fastest call)."""
        ...


class Landing(Protocol):
    """Where a blob's bytes land while they arrive: a partial file in the blob store, or
    the blob's own place in an archive being written. ``verifier`` holds the state of
    the bytes written so far; ``commit`` checks the whole and gives the blob."""

    verifier: Verifier

    def __enter__(self) -> Self: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    @property
    def offset(self) -> int: ...

    def write(self, chunk: bytes | memoryview) -> None: ...

    def writer(self) -> BinaryIO:
        """A handle of its own (a piece's thread writes through it; the pieces are read
        back through one to be hashed), blob offsets from 0."""
        ...

    def split(self, start: int, piece_size: int) -> list[tuple[int, int, int]]:
        """The rest from ``start`` as (index, start, end) pieces."""
        ...

    def piece_done(self, index: int) -> None: ...

    def restart(self) -> None:
        """From the first byte again."""
        ...

    def discard(self) -> None:
        """Forget the bytes: they came from a source that lied."""
        ...

    def commit(self) -> BlobContent: ...


@runtime_checkable
class PlacingSink(Protocol):
    """A sink that gives each blob a place to be downloaded into (an archive written in
    place), so its bytes are written once."""

    def landing(self, descriptor: Descriptor) -> Landing | None: ...


class PiecesRefused(ImgpullError):
    """The source cannot serve this blob in parts: take it in one stream."""


# Connections a source keeps for pieces of slow blobs, per parallel blob (-j): a slow
# blob is cut into 2 to 8 pieces, and all of them share these.
PIECE_CONNECTIONS: Final = 4


@runtime_checkable
class PieceSource(Protocol):
    """A source that can serve parts of a blob at once (a registry: ``Range``)."""

    def fetch_pieces(
        self,
        descriptor: Descriptor,
        pieces: Sequence[tuple[int, int, int]],
        writer: Callable[[], BinaryIO],
        piece_done: Callable[[int], None],
        progress: Callable[[int], None],
    ) -> None:
        """Fetch each (index, start, end) piece, written at its offsets through a handle
        of its own from ``writer()``, each reported done; PiecesRefused where parts are
        not served."""
        ...


class ImageSource(Protocol):
    """A registry (with its mirrors) or an archive."""

    def resolve(self, selection: PlatformSelection) -> Sequence[SourceImage]:
        """Everything the source was asked for, manifests and configs verified."""
        ...

    def open_blob(self, descriptor: Descriptor, resume: Verifier | None = None) -> VerifyingReader:
        """A blob's bytes (after those ``resume`` already verified), verified to the end."""
        ...

    def retry_blob(self, descriptor: Descriptor) -> bool:
        """After a stream of this blob failed its check: whether another attempt may get
        other bytes (another endpoint)."""
        ...

    def close(self) -> None: ...


class ImageSink(Protocol):
    """An archive being written, or a registry being pushed to."""

    def begin(self, placements: Sequence[Placement]) -> None:
        """What will be stored, before any blob comes."""
        ...

    def has_blob(self, descriptor: Descriptor, placements: Sequence[Placement]) -> bool:
        """True when the blob need not be sent (every destination holds it)."""
        ...

    def put_blob(
        self,
        content: BlobContent,
        placements: Sequence[Placement],
        progress: Callable[[int], None] | None = None,
    ) -> str:
        """Store a blob; says how ("uploaded", "mounted from REPO", "written").
        ``progress`` is told of bytes sent, where the sink reads the content itself."""
        ...

    def put_manifest(
        self, manifest: Manifest | Index, name: Reference | None, *, by_digest: bool = False
    ) -> Digest:
        """Store a manifest, its blobs already in: under ``name``'s tag (or digest), or by
        its own digest in ``name``'s repository with ``by_digest`` (an index's children)."""
        ...

    def put_attached(self, attached: Attached, name: Reference | None) -> None:
        """Store a signature, attestation or SBOM beside an image already stored under
        ``name``: under its tag, or as a referrer of its subject."""
        ...

    def commit(self) -> None:
        """Publish what was stored (an archive appears at its path)."""
        ...

    def abort(self) -> None:
        """Leave nothing behind that is not complete."""
        ...


@dataclass(frozen=True, slots=True)
class StreamedContent:
    """A blob read from its source as the sink takes it (registry to registry)."""

    source: ImageSource
    descriptor: Descriptor

    def open(self) -> VerifyingReader:
        return self.source.open_blob(self.descriptor)

    def path(self) -> Path | None:
        return None
