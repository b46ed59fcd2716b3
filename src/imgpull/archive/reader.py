"""Reading image archives back: every image of a tar (or directory), in constant memory.

Formats, told apart by content, never by file name:

``docker``      ``manifest.json`` is a list of ``{"Config", "RepoTags", "Layers"}`` entries
                pointing at members: ``docker save`` before Docker 25 (``<id>/layer.tar``,
                ``<id>.json``, duplicate layers as tar symlinks ``<id>/layer.tar ->
                ../<other>/layer.tar``), ``podman save`` and skopeo ``docker-archive:``
                (``<diff_id>.tar`` layers, ``<hex>.json`` config, ``<id>/layer.tar``
                symlinks to them). Layers are usually uncompressed tars.
``oci``         an OCI image layout (``index.json``, ``blobs/<alg>/<hex>``): ``podman save
                --format oci-archive``, skopeo ``oci-archive:``/``oci:``, ``imgpull pull
                --format oci``. The original manifests are kept byte for byte.
``docker+oci``  both views of the same blobs: imgpull's default and ``docker save`` from
                Docker 25 on. Images come from the OCI view (exact manifests); names from
                both (``RepoTags`` and the index annotations).
``dir``         the containers/image ``dir:`` transport: ``manifest.json`` is a registry
                manifest, blobs are files named by their hex digest (``podman save
                --format docker-dir``, skopeo ``dir:``). Unnamed.

The archive may be a plain tar, a compressed tar (``docker save | gzip``; also bzip2
and xz; zstd is refused with a hint), or a directory holding one of the layouts above
(``oci-dir``/``docker-dir`` output, or an unpacked archive).

Nothing is extracted. A plain tar is indexed once with :mod:`tarfile` (headers only),
then members are read at their data offset, each reader with its own file handle, so
several blobs can be streamed at once. A compressed tar cannot be read at random:
opening a member decompresses from the start (or from where the last closed reader
stopped, so reading blobs in :meth:`ImageArchive.in_archive_order` costs one pass).

Every path named by ``manifest.json`` (or followed through a tar symlink or hard link)
must stay inside the archive: absolute paths and ``..`` are refused, never resolved.
Every problem is one :class:`ArchiveError` naming the archive and what is wrong.

Names are kept as recorded (``RepoTags`` such as ``nginx:1.27`` or
``127.0.0.1:5000/x:1``; ``io.containerd.image.name``; an
``org.opencontainers.image.ref.name`` that is a full reference), deduplicated by exact
spelling. A ``ref.name`` that is only a tag (``1.27``, as imgpull and Docker 25 write
beside the full name, or what skopeo was given) goes to ``tags`` instead.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Self

from imgpull.archive.blobreader import BlobReader
from imgpull.archive.compressed import CompressedTar
from imgpull.archive.formats import load
from imgpull.archive.members import HEAD, Directory, Members, PlainTar, Store
from imgpull.archive.problems import DAMAGED, NOT_AN_ARCHIVE, Problem
from imgpull.archive.records import (
    DOCKER_LAYER,
    DOCKER_LAYER_ZSTD,
    SMALL_LIMIT,
    ArchivedAttached,
    ArchivedBlob,
    ArchivedImage,
    ArchivedIndex,
    ArchiveKind,
    Compression,
    OuterCompression,
    sniff_compression,
)
from imgpull.errors import ArchiveError
from imgpull.model import Index
from imgpull.text import shown

__all__ = [
    "DOCKER_LAYER",
    "DOCKER_LAYER_ZSTD",
    "SMALL_LIMIT",
    "ArchiveKind",
    "ArchivedAttached",
    "ArchivedBlob",
    "ArchivedImage",
    "ArchivedIndex",
    "BlobReader",
    "Compression",
    "ImageArchive",
    "sniff_compression",
]


_OUTER_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


def open_store(path: Path) -> Store:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise Problem("no such file or directory", NOT_AN_ARCHIVE) from None
    except OSError as exc:
        raise Problem(f"cannot read it: {exc.strerror or exc}", NOT_AN_ARCHIVE) from None
    if stat.S_ISDIR(info.st_mode):
        return Directory(path)
    if not stat.S_ISREG(info.st_mode):
        raise Problem(
            "not a regular file or directory (a pipe?)",
            "an archive is read more than once: save it to a file first",
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(HEAD)
    except OSError as exc:
        raise Problem(f"cannot read it: {exc.strerror or exc}", NOT_AN_ARCHIVE) from None
    if not head:
        raise Problem("the file is empty", NOT_AN_ARCHIVE)
    kind = next((k for magic, k in _OUTER_MAGIC if head.startswith(magic)), "none")
    try:
        if kind == "zstd":
            raise Problem(
                "the archive is zstd-compressed, which imgpull cannot read",
                f"decompress it first: zstd -d {path}",
            )
        if kind == "bzip2" and not re.match(rb"BZh[1-9]1AY&SY", head):
            kind = "none"  # a tar whose first member's name starts with "BZh"
        if kind == "none":
            return PlainTar(path)
        if kind == "gzip":
            return CompressedTar(path, "gzip")
        if kind == "bzip2":
            return CompressedTar(path, "bzip2")
        return CompressedTar(path, "xz")
    except Problem:
        raise
    except OSError as exc:
        raise Problem(f"cannot read it: {exc.strerror or exc}", NOT_AN_ARCHIVE) from None


class ImageArchive:
    """Every image of an archive file or directory; see the module docstring.

    ::

        with ImageArchive(Path("nginx.tar")) as archive:
            for image in archive.images:
                for layer in image.layers:
                    with archive.open(layer) as stream: ...

    Attributes: ``format`` (``oci``, ``docker``, ``docker+oci``, ``dir``), ``images``
    (one per distinct image named at the top level: ``manifest.json`` entries, or
    ``index.json`` entries that are image manifests), ``indexes`` (``index.json``
    entries that are multi-platform indexes, with their children), ``index`` (the
    parsed ``index.json``, exact bytes), ``compression`` (of the archive file itself),
    ``seekable`` (False for compressed archives: members stream forward only).
    """

    format: ArchiveKind
    images: tuple[ArchivedImage, ...]
    indexes: tuple[ArchivedIndex, ...]
    index: Index | None

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._closed = False
        try:
            self._store = open_store(self.path)
        except Problem as problem:
            raise self._error(problem.what, problem.hint) from None
        self._members = Members(self._store)
        try:
            contents = load(self._members)
        except Problem as problem:
            self._store.close()
            raise self._error(problem.what, problem.hint) from None
        except OSError as exc:
            self._store.close()
            raise self._error(f"cannot read it: {exc.strerror or exc}", DAMAGED) from None
        except BaseException:
            self._store.close()
            raise
        self.format = contents.format
        self.images = contents.images
        self.indexes = contents.indexes
        self.index = contents.index
        self.attached = contents.attached

    # -- public API

    @property
    def compression(self) -> OuterCompression:
        return self._store.compression

    @property
    def seekable(self) -> bool:
        return self._store.seekable

    @property
    def is_directory(self) -> bool:
        return isinstance(self._store, Directory)

    def open(self, blob: ArchivedBlob | str, *, verify: bool = True) -> BinaryIO:
        """Stream a blob (or any member, by path) without reading it whole.

        The result is a :class:`BlobReader`. Readers are independent: several may be
        open at once, also from several threads.
        """
        if self._closed:
            raise ValueError("the archive is closed")
        try:
            if isinstance(blob, ArchivedBlob):
                entry = self._members.locate(blob.member)
                if entry.size != blob.size:
                    raise Problem(
                        f"{shown(blob.member)} is {entry.size} bytes, not {blob.size} "
                        "(did the archive change?)"
                    )
                expected = blob.digest if verify else None
            else:
                entry = self._members.locate(self._members.reference(blob, "the requested member"))
                expected = None
            read_at, on_close, seekable = self._store.reader(entry)
        except Problem as problem:
            raise self._error(problem.what, problem.hint) from None
        return BlobReader(
            entry.size,
            read_at,
            on_close,
            seekable=seekable,
            expected=expected,
            describe=lambda what: self._error(what, DAMAGED),
            name=entry.name,
        )

    def read_small(self, member: str, limit: int = SMALL_LIMIT) -> bytes:
        """The whole content of a small member (JSON); ArchiveError above ``limit``."""
        try:
            return self._members.read(
                self._members.reference(member, "the requested member"), limit
            )
        except Problem as problem:
            raise self._error(problem.what, problem.hint) from None

    def in_archive_order(self, blobs: Iterable[ArchivedBlob]) -> list[ArchivedBlob]:
        """``blobs`` (deduplicated) in the order they are stored: reading them so from a
        compressed archive decompresses it only once."""
        unique = {(b.member, b.offset): b for b in blobs}
        return sorted(unique.values(), key=lambda b: (b.offset, b.member))

    def blobs(self) -> Iterator[ArchivedBlob]:
        """Every layer of every image and index child, once each."""
        seen: set[tuple[str, int]] = set()
        images = [*self.images, *(i for index in self.indexes for i in index.images)]
        for image in images:
            for layer in image.layers:
                if (layer.member, layer.offset) not in seen:
                    seen.add((layer.member, layer.offset))
                    yield layer

    def close(self) -> None:
        """Release the archive; readers still open keep working until closed."""
        self._closed = True
        self._store.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ImageArchive({str(self.path)!r}, format={self.format!r})"

    # -- opening

    def _error(self, what: str, hint: str = DAMAGED) -> ArchiveError:
        return ArchiveError(f"{shown(str(self.path), 200)}: {what}", hint)
