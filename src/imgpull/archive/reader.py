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
then members are read with ``os.pread`` at their data offset, so several blobs can be
streamed at once from one file descriptor. A compressed tar cannot be read at random:
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

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import stat
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Final, Literal, Self, cast

from imgpull.archive.writer import blob_path
from imgpull.digest import Digest
from imgpull.errors import ArchiveError, ImgpullError
from imgpull.model import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    parse_manifest,
)

__all__ = [
    "DOCKER_LAYER",
    "DOCKER_LAYER_ZSTD",
    "SMALL_LIMIT",
    "ArchiveKind",
    "ArchivedBlob",
    "ArchivedImage",
    "ArchivedIndex",
    "BlobReader",
    "Compression",
    "ImageArchive",
    "sniff_compression",
]

Compression = Literal["gzip", "zstd", "none"]
ArchiveKind = Literal["oci", "docker", "docker+oci", "dir"]
OuterCompression = Literal["none", "gzip", "bzip2", "xz"]

#: Uncompressed Docker layer (what ``docker save`` stores); containerd's zstd variant.
DOCKER_LAYER: Final = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_ZSTD: Final = "application/vnd.docker.image.rootfs.diff.tar.zstd"
OCI_ND_LAYER: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"

MiB: Final = 1024 * 1024
SMALL_LIMIT: Final = 8 * MiB
_CHUNK: Final = MiB
_MAX_LINK_HOPS: Final = 16
_MAX_INDEX_DEPTH: Final = 4
# Compressed archives: small members are kept from the one indexing pass.
_CACHE_MEMBER: Final = MiB
_CACHE_TOTAL: Final = 32 * MiB
_HEAD: Final = 16

_TAG_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

_LAYER_TYPES: Final[dict[str, tuple[str, Compression]]] = {
    DOCKER_LAYER: ("docker", "none"),
    DOCKER_LAYER_GZIP: ("docker", "gzip"),
    DOCKER_LAYER_ZSTD: ("docker", "zstd"),
    OCI_LAYER: ("oci", "none"),
    OCI_LAYER_GZIP: ("oci", "gzip"),
    OCI_LAYER_ZSTD: ("oci", "zstd"),
    OCI_ND_LAYER: ("oci-nd", "none"),
    OCI_ND_LAYER + "+gzip": ("oci-nd", "gzip"),
    OCI_ND_LAYER + "+zstd": ("oci-nd", "zstd"),
}
_BY_FAMILY: Final[dict[tuple[str, Compression], str]] = {v: k for k, v in _LAYER_TYPES.items()}

_DAMAGED: Final = (
    "the archive is incomplete or damaged; create it again "
    "(imgpull pull, docker save, podman save or skopeo copy)"
)
_NOT_AN_ARCHIVE: Final = (
    "give a tar written by imgpull pull, docker save, podman save or skopeo copy "
    "(docker-archive: or oci-archive:), or such an archive unpacked into a directory"
)
_UNSAFE: Final = (
    "imgpull never follows paths outside an archive; this archive was not written by a "
    "container tool, do not load it anywhere"
)


# -- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArchivedBlob:
    """One layer as stored in the archive.

    ``digest`` is what the archive states for the stored bytes, not yet verified: the
    OCI descriptor (and ``blobs/`` file name), or, for an uncompressed layer of a
    docker-archive, the config's diff_id (an uncompressed layer's digest *is* its
    diff_id). None when nothing states it (a compressed layer in a docker-archive):
    hash while reading (:attr:`BlobReader.digest`). :meth:`ImageArchive.open` verifies a
    stated digest when the blob is read through.

    ``media_type`` matches the stored bytes: the declared type when it agrees with the
    sniffed ``compression``, else the same family's type for what is really stored
    (podman's ``docker-dir`` labels uncompressed layers ``tar.gzip``); ``declared`` is
    what the manifest said (None in docker-archives, which declare nothing).
    """

    member: str  # resolved member path (relative, also for directories)
    size: int
    digest: Digest | None
    media_type: str
    compression: Compression
    diff_id: str | None
    declared: str | None = None
    offset: int = field(default=0, compare=False)  # data offset in the (uncompressed) tar

    @property
    def mislabeled(self) -> bool:
        """True when the declared media type names another compression than stored."""
        return self.declared is not None and self.declared != self.media_type


@dataclass(frozen=True, slots=True)
class ArchivedImage:
    """One image of the archive: enough to push it.

    ``manifest`` is the archive's own manifest, exact bytes (OCI layouts, ``dir``):
    pushing those keeps every digest. It is None for docker-archives, which have none;
    build one from ``config_media_type``, the config and ``layers`` then.
    """

    names: tuple[str, ...]
    tags: tuple[str, ...]
    config: bytes = field(repr=False)
    config_digest: Digest
    config_media_type: str
    layers: tuple[ArchivedBlob, ...]
    manifest: Manifest | None
    platform: Platform

    @property
    def diff_ids(self) -> tuple[str | None, ...]:
        return tuple(layer.diff_id for layer in self.layers)

    @property
    def label(self) -> str:
        """How to call the image in messages: its first name, else its short config id."""
        return self.names[0] if self.names else f"image {self.config_digest.short}"

    @property
    def is_attestation(self) -> bool:
        return (self.platform.os, self.platform.architecture) == ("unknown", "unknown")

    @property
    def size(self) -> int:
        return len(self.config) + sum(layer.size for layer in self.layers)


@dataclass(frozen=True, slots=True)
class ArchivedIndex:
    """A multi-platform image (an index blob named by ``index.json``): its exact bytes,
    the children the archive holds and the ones it does not (Docker 25 saves only the
    platforms it has)."""

    names: tuple[str, ...]
    tags: tuple[str, ...]
    index: Index
    images: tuple[ArchivedImage, ...]
    missing: tuple[Descriptor, ...]


# -- helpers ------------------------------------------------------------------------------


def _shown(text: str, limit: int = 120) -> str:
    """``text`` safe for a one-line message: escaped if needed, shortened."""
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sniff_compression(head: bytes) -> Compression | Literal["bzip2", "xz"]:
    """Compression by magic bytes; an uncompressed tar has none."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if re.match(rb"BZh[1-9]1AY&SY", head):
        return "bzip2"
    return "none"


def _layer_media_type(declared: str | None, compression: Compression, family: str) -> str:
    """The media type for what is stored; the declared one when it is right."""
    known = _LAYER_TYPES.get(declared or "")
    if declared is not None and known is None:
        return declared  # not a standard layer type (in-toto, foreign, artifacts): as is
    if declared is not None and known is not None:
        if known[1] == compression:
            return declared
        family = known[0]
    return _BY_FAMILY[(family, compression)]


def _strip_dot(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _member_name(name: str) -> str | None:
    """A tar member's name, normalised; None when it is absolute or climbs out."""
    name = _strip_dot(name)
    if not name or name.startswith("/") or "\x00" in name:
        return None
    if ".." in name.split("/"):
        return None
    normal = posixpath.normpath(name)
    return None if normal in (".", "") else normal


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _split_names(annotations: Iterable[dict[str, str]]) -> tuple[list[str], list[str]]:
    """(full names, bare tags) from index.json annotations."""
    names: list[str] = []
    tags: list[str] = []
    for ann in annotations:
        full = ann.get(ANNOTATION_CONTAINERD_NAME)
        if isinstance(full, str) and full:
            names.append(full)
        ref = ann.get(ANNOTATION_REF_NAME)
        if isinstance(ref, str) and ref:
            (tags if _TAG_RE.fullmatch(ref) else names).append(ref)
    return names, tags


class _Problem(Exception):
    """Internal: what is wrong (turned into one ArchiveError with the archive's name)."""

    def __init__(self, what: str, hint: str = _DAMAGED) -> None:
        super().__init__(what)
        self.what = what
        self.hint = hint


class _Missing(_Problem):
    """A member that is not there at all (as opposed to one that is there but unusable)."""


@contextlib.contextmanager
def _about(what: str) -> Iterator[None]:
    """Prefix problems raised inside with what was being read: ``layer 2 of image 1``."""
    try:
        yield
    except _Problem as problem:
        problem.what = f"{what}: {problem.what}"
        raise


# -- storage: plain tar, compressed tar, directory --------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str  # resolved member name
    size: int
    offset: int  # data offset in the tar (0 in a directory)


ReadAt = Callable[[int, int], bytes]  # (position inside the member, count) -> bytes


class _Store:
    compression: OuterCompression = "none"
    seekable = True

    def locate(self, member: str) -> _Entry:
        raise NotImplementedError

    def head(self, entry: _Entry) -> bytes:
        raise NotImplementedError

    def reader(self, entry: _Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        """(read_at, close, seekable) for one member."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _TarIndex:
    """Member name -> TarInfo, links resolved safely inside the archive."""

    def __init__(self) -> None:
        self.members: dict[str, tarfile.TarInfo] = {}

    def add(self, info: tarfile.TarInfo) -> None:
        name = _member_name(info.name)
        if name is not None:
            self.members[name] = info  # the last one wins, as when extracting

    def resolve(self, member: str) -> tuple[str, tarfile.TarInfo]:
        name = member
        for _ in range(_MAX_LINK_HOPS):
            info = self.members.get(name)
            if info is None:
                if name != member:
                    raise _Missing(f"{_shown(member)} links to {_shown(name)}, which is missing")
                raise _Missing(f"{_shown(member)} is missing")
            if info.isreg():
                if info.issparse():
                    raise _Problem(f"{_shown(name)} is a sparse file, which images never hold")
                return name, info
            if info.issym():
                target = info.linkname
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
                if target.startswith("/") or joined == ".." or joined.startswith("../"):
                    raise _Problem(
                        f"{_shown(name)} is a symlink to {_shown(target)}, outside the archive",
                        _UNSAFE,
                    )
                name = _strip_dot(joined)
            elif info.islnk():
                target_name = _member_name(info.linkname)
                if target_name is None:
                    raise _Problem(
                        f"{_shown(name)} is a hard link to {_shown(info.linkname)}, "
                        "outside the archive",
                        _UNSAFE,
                    )
                name = target_name
            else:
                raise _Problem(f"{_shown(name)} is not a regular file")
        raise _Problem(f"{_shown(member)}: too many links (a loop?)")


def _index_errors() -> tuple[type[BaseException], ...]:
    return (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


class _PlainTar(_Store):
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self.file_size = os.fstat(self.fd).st_size
            self.index = _TarIndex()
            try:
                with tarfile.open(path, "r:") as tar:
                    for info in tar:
                        self.index.add(info)
            except _index_errors() as exc:
                raise _tar_problem(exc) from exc
        except BaseException:
            os.close(self.fd)
            raise

    def locate(self, member: str) -> _Entry:
        name, info = self.index.resolve(member)
        if info.offset_data + info.size > self.file_size:
            raise _Problem(f"the archive is truncated: {_shown(name)} ends after the file")
        return _Entry(name, info.size, info.offset_data)

    def head(self, entry: _Entry) -> bytes:
        return os.pread(self.fd, min(_HEAD, entry.size), entry.offset)

    def reader(self, entry: _Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        # Each reader owns a duplicate: one left open after the archive is closed reads
        # the archive still, never whatever file later gets the same descriptor number.
        try:
            fd = os.dup(self.fd)
        except OSError as exc:
            raise _Problem(f"cannot read {_shown(entry.name)}: {exc.strerror}") from None
        base = entry.offset

        def read_at(position: int, count: int) -> bytes:
            return os.pread(fd, count, base + position)

        def close() -> None:
            with contextlib.suppress(OSError):
                os.close(fd)

        return read_at, close, True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _tar_problem(exc: BaseException) -> _Problem:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in text:
        return _Problem(f"the archive is truncated ({_shown(text, 60)})")
    return _Problem(f"not a tar archive ({_shown(text, 60)})", _NOT_AN_ARCHIVE)


class _Cursor:
    """A decompressing stream of the whole tar and where it is."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.position = 0

    def skip_to(self, offset: int) -> None:
        while self.position < offset:
            data = self.stream.read(min(_CHUNK, offset - self.position))
            if not data:
                raise _Problem("the archive is truncated")
            self.position += len(data)

    def read(self, count: int) -> bytes:
        parts: list[bytes] = []
        while count > 0:
            data = self.stream.read(count)
            if not data:
                break
            parts.append(data)
            count -= len(data)
            self.position += len(data)
        return b"".join(parts)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()


class _CompressedTar(_Store):
    """A gzip/bzip2/xz-compressed tar: indexed in one pass, read forward only."""

    seekable = False

    def __init__(self, path: Path, compression: OuterCompression) -> None:
        self.path = path
        self.compression = compression
        self.index = _TarIndex()
        self.cache: dict[str, bytes] = {}
        self.heads: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.spare: _Cursor | None = None
        cached = 0
        stream = self._decompressor()
        try:
            with tarfile.open(fileobj=stream, mode="r:") as tar:
                for info in tar:
                    self.index.add(info)
                    name = _member_name(info.name)
                    if name is None or not info.isreg() or info.issparse():
                        continue
                    want = _HEAD
                    if info.size <= _CACHE_MEMBER and cached + info.size <= _CACHE_TOTAL:
                        want = info.size
                    stream.seek(info.offset_data)
                    data = stream.read(min(want, info.size))
                    self.heads[name] = data[:_HEAD]
                    if want == info.size:
                        if len(data) != info.size:
                            raise _Problem(f"the archive is truncated in {_shown(name)}")
                        self.cache[name] = data
                        cached += info.size
        except _Problem:
            raise
        except _index_errors() as exc:
            raise _tar_problem(exc) from exc
        finally:
            stream.close()

    def _decompressor(self) -> BinaryIO:
        stream: io.BufferedIOBase
        if self.compression == "gzip":
            stream = gzip.GzipFile(filename=self.path, mode="rb")
        elif self.compression == "bzip2":
            stream = bz2.BZ2File(self.path, "rb")
        else:
            stream = lzma.LZMAFile(self.path, "rb")  # noqa: SIM115 (the caller closes it)
        return cast(BinaryIO, stream)

    def locate(self, member: str) -> _Entry:
        name, info = self.index.resolve(member)
        return _Entry(name, info.size, info.offset_data)

    def head(self, entry: _Entry) -> bytes:
        return self.heads.get(entry.name, b"")

    def _acquire(self, offset: int) -> _Cursor:
        with self.lock:
            spare, self.spare = self.spare, None
        if spare is not None and spare.position <= offset:
            cursor = spare
        else:
            if spare is not None:
                spare.close()
            cursor = _Cursor(self._decompressor())
        try:
            cursor.skip_to(offset)
        except BaseException:
            cursor.close()
            raise
        return cursor

    def _release(self, cursor: _Cursor) -> None:
        with self.lock:
            old, self.spare = self.spare, cursor
        if old is not None:
            old.close()

    def reader(self, entry: _Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        cached = self.cache.get(entry.name)
        if cached is not None:
            data = cached

            def read_cached(position: int, count: int) -> bytes:
                return data[position : position + count]

            return read_cached, lambda: None, True
        cursor: _Cursor | None = None
        base = entry.offset

        def read_at(position: int, count: int) -> bytes:
            nonlocal cursor
            try:
                if cursor is None:
                    cursor = self._acquire(base)
                if cursor.position != base + position:
                    raise io.UnsupportedOperation(
                        "a member of a compressed archive reads forward only"
                    )
                return cursor.read(count)
            except (OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
                if isinstance(exc, io.UnsupportedOperation):
                    raise
                text = _shown(str(exc) or type(exc).__name__, 60)
                raise _Problem(f"the archive is truncated or corrupt ({text})") from None

        def close() -> None:
            if cursor is not None:
                self._release(cursor)

        return read_at, close, False

    def close(self) -> None:
        with self.lock:
            spare, self.spare = self.spare, None
        if spare is not None:
            spare.close()


class _Directory(_Store):
    """An archive unpacked into a directory (or an ``oci:``/``dir:`` output)."""

    def __init__(self, path: Path) -> None:
        self.root = os.path.realpath(path)

    def _real(self, member: str) -> tuple[str, os.stat_result]:
        real = os.path.realpath(os.path.join(self.root, member))
        if real != self.root and not real.startswith(self.root.rstrip(os.sep) + os.sep):
            raise _Problem(f"{_shown(member)} resolves to a path outside the directory", _UNSAFE)
        try:
            info = os.stat(real)
        except FileNotFoundError:
            raise _Missing(f"{_shown(member)} is missing") from None
        except OSError as exc:
            raise _Problem(f"cannot read {_shown(member)}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise _Problem(f"{_shown(member)} is not a regular file")
        return real, info

    def locate(self, member: str) -> _Entry:
        real, info = self._real(member)
        # The resolved path names the entry, so symlinked duplicates are one blob.
        name = "/".join(Path(os.path.relpath(real, self.root)).parts)
        return _Entry(name, info.st_size, 0)

    def _open(self, entry: _Entry) -> int:
        real, _ = self._real(entry.name)
        try:
            return os.open(real, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise _Problem(f"cannot read {_shown(entry.name)}: {exc.strerror}") from None

    def head(self, entry: _Entry) -> bytes:
        fd = self._open(entry)
        try:
            return os.pread(fd, _HEAD, 0)
        finally:
            os.close(fd)

    def reader(self, entry: _Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        fd = self._open(entry)

        def read_at(position: int, count: int) -> bytes:
            return os.pread(fd, count, position)

        def close() -> None:
            with contextlib.suppress(OSError):
                os.close(fd)

        return read_at, close, True

    def close(self) -> None:
        pass


# -- reading members ----------------------------------------------------------------------


class BlobReader(io.RawIOBase, BinaryIO):
    """A read-only stream over one archive member (no copy, no extraction).

    Hashes what it reads in order; after reading to the end, :attr:`digest` is the
    member's digest, and a stated digest that does not match raises ArchiveError (when
    opened with ``verify``). Seekable for plain tars and directories; a member of a
    compressed archive reads forward only (``seek`` raises io.UnsupportedOperation).
    """

    def __init__(
        self,
        size: int,
        read_at: ReadAt,
        on_close: Callable[[], None],
        *,
        seekable: bool,
        expected: Digest | None,
        describe: Callable[[str], ArchiveError],
        name: str,
    ) -> None:
        super().__init__()
        self._size = size
        self._read_at = read_at
        self._on_close = on_close
        self._seekable = seekable
        self._expected = expected
        self._describe = describe
        self._name = name
        self._position = 0
        self._hash = expected.hasher() if expected is not None else hashlib.sha256()
        self._hashed = 0  # bytes hashed from the start; reads elsewhere are not hashed
        self._digest: Digest | None = None

    @property
    def size(self) -> int:
        return self._size

    @property
    def digest(self) -> Digest | None:
        """The digest of the member, once it was read through in order."""
        return self._digest

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("a member of a compressed archive reads forward")
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        target = base + offset
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        self._position = target
        return target

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = min(len(view), self._size - self._position)
        if count <= 0:
            self._finish()
            return 0
        try:
            data = self._read_at(self._position, count)
        except _Problem as problem:
            raise self._describe(problem.what) from None
        except io.UnsupportedOperation:
            raise
        except OSError as exc:
            text = exc.strerror or str(exc)
            raise self._describe(f"cannot read {_shown(self._name)}: {text}") from None
        if not data:
            raise self._describe(
                f"the archive is truncated: {_shown(self._name)} ends "
                f"{self._size - self._position} bytes early"
            )
        got = len(data)
        view[:got] = data
        if self._hashed == self._position:
            self._hash.update(data)
            self._hashed += got
        self._position += got
        if self._position >= self._size:
            self._finish()
        return got

    def _finish(self) -> None:
        if self._digest is not None or self._hashed != self._size:
            return
        self._digest = Digest(self._hash.name, self._hash.hexdigest())
        if self._expected is not None and self._digest != self._expected:
            raise self._describe(
                f"{_shown(self._name)} is corrupt: its content hashes to {self._digest}, "
                f"not {self._expected}"
            )

    def close(self) -> None:
        if not self.closed:
            try:
                self._on_close()
            finally:
                super().close()

    # typing.IO declares these; RawIOBase's are the real ones.
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- the archive --------------------------------------------------------------------------


_OUTER_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


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
        self._store = self._open_store()
        try:
            self._heads: dict[str, Compression] = {}
            self._load()
        except _Problem as problem:
            self._store.close()
            raise self._error(problem.what, problem.hint) from None
        except OSError as exc:
            self._store.close()
            raise self._error(f"cannot read it: {exc.strerror or exc}", _DAMAGED) from None
        except BaseException:
            self._store.close()
            raise

    # -- public API

    @property
    def compression(self) -> OuterCompression:
        return self._store.compression

    @property
    def seekable(self) -> bool:
        return self._store.seekable

    @property
    def is_directory(self) -> bool:
        return isinstance(self._store, _Directory)

    def open(self, blob: ArchivedBlob | str, *, verify: bool = True) -> BinaryIO:
        """Stream a blob (or any member, by path) without reading it whole.

        The result is a :class:`BlobReader`. Readers are independent: several may be
        open at once, also from several threads.
        """
        if self._closed:
            raise ValueError("the archive is closed")
        try:
            if isinstance(blob, ArchivedBlob):
                entry = self._locate(blob.member)
                if entry.size != blob.size:
                    raise _Problem(
                        f"{_shown(blob.member)} is {entry.size} bytes, not {blob.size} "
                        "(did the archive change?)"
                    )
                expected = blob.digest if verify else None
            else:
                entry = self._locate(self._reference(blob, "the requested member"))
                expected = None
            read_at, on_close, seekable = self._store.reader(entry)
        except _Problem as problem:
            raise self._error(problem.what, problem.hint) from None
        return BlobReader(
            entry.size,
            read_at,
            on_close,
            seekable=seekable,
            expected=expected,
            describe=lambda what: self._error(what, _DAMAGED),
            name=entry.name,
        )

    def read_small(self, member: str, limit: int = SMALL_LIMIT) -> bytes:
        """The whole content of a small member (JSON); ArchiveError above ``limit``."""
        try:
            return self._read(self._reference(member, "the requested member"), limit)
        except _Problem as problem:
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

    def _error(self, what: str, hint: str = _DAMAGED) -> ArchiveError:
        return ArchiveError(f"{_shown(str(self.path), 200)}: {what}", hint)

    def _open_store(self) -> _Store:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise self._error("no such file or directory", _NOT_AN_ARCHIVE) from None
        except OSError as exc:
            raise self._error(f"cannot read it: {exc.strerror or exc}", _NOT_AN_ARCHIVE) from None
        if stat.S_ISDIR(info.st_mode):
            return _Directory(self.path)
        if not stat.S_ISREG(info.st_mode):
            raise self._error(
                "not a regular file or directory (a pipe?)",
                "an archive is read more than once: save it to a file first",
            )
        try:
            with self.path.open("rb") as fh:
                head = fh.read(_HEAD)
        except OSError as exc:
            raise self._error(f"cannot read it: {exc.strerror or exc}", _NOT_AN_ARCHIVE) from None
        if not head:
            raise self._error("the file is empty", _NOT_AN_ARCHIVE)
        kind = next((k for magic, k in _OUTER_MAGIC if head.startswith(magic)), "none")
        try:
            if kind == "zstd":
                raise _Problem(
                    "the archive is zstd-compressed, which imgpull cannot read",
                    f"decompress it first: zstd -d {self.path}",
                )
            if kind == "bzip2" and not re.match(rb"BZh[1-9]1AY&SY", head):
                kind = "none"  # a tar whose first member's name starts with "BZh"
            if kind == "none":
                return _PlainTar(self.path)
            if kind == "gzip":
                return _CompressedTar(self.path, "gzip")
            if kind == "bzip2":
                return _CompressedTar(self.path, "bzip2")
            return _CompressedTar(self.path, "xz")
        except _Problem as problem:
            raise self._error(problem.what, problem.hint) from None
        except OSError as exc:
            raise self._error(f"cannot read it: {exc.strerror or exc}", _NOT_AN_ARCHIVE) from None

    # -- members

    def _reference(self, path: Any, what: str) -> str:
        """A member path named inside the archive: relative, no ``..``, no NUL."""
        if not isinstance(path, str) or not path:
            raise _Problem(f"{what} is not a member path")
        if path.startswith("/") or "\x00" in path or ".." in _strip_dot(path).split("/"):
            raise _Problem(f"{what} names {_shown(path)}, a path outside the archive", _UNSAFE)
        name = _member_name(path)
        if name is None:
            raise _Problem(f"{what} names {_shown(path)}, which is not a file")
        return name

    def _locate(self, member: str) -> _Entry:
        try:
            return self._store.locate(member)
        except _Problem:
            raise
        except OSError as exc:
            raise _Problem(f"cannot read {_shown(member)}: {exc.strerror}") from None

    def _exists(self, member: str) -> bool:
        """False only when ``member`` is not there; a broken member still fails."""
        try:
            self._locate(member)
        except _Missing:
            return False
        return True

    def _read(self, member: str, limit: int = SMALL_LIMIT) -> bytes:
        entry = self._locate(member)
        if entry.size > limit:
            raise _Problem(
                f"{_shown(member)} is {entry.size} bytes, more than the {limit} bytes "
                "such a file can have"
            )
        read_at, on_close, _ = self._store.reader(entry)
        try:
            data = read_at(0, entry.size) if entry.size else b""
            while len(data) < entry.size:  # pread may return short counts
                more = read_at(len(data), entry.size - len(data))
                if not more:
                    raise _Problem(f"the archive is truncated: {_shown(member)} ends early")
                data += more
            return data
        except OSError as exc:
            raise _Problem(f"cannot read {_shown(member)}: {exc.strerror or exc}") from None
        finally:
            on_close()

    def _json(self, member: str, what: str) -> Any:
        raw = self._read(member)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            where = what if what == member else f"{what} ({_shown(member)})"
            raise _Problem(f"{where} is not valid JSON") from None

    def _compression(self, entry: _Entry, what: str) -> Compression:
        found = self._heads.get(entry.name)
        if found is not None:
            return found
        kind = sniff_compression(self._store.head(entry))
        if kind in ("bzip2", "xz"):
            raise _Problem(
                f"{what} is {kind}-compressed; registries take only gzip, zstd or "
                "uncompressed layers",
                "load the image (docker load, podman load) and save it again",
            )
        result: Compression = "gzip" if kind == "gzip" else "zstd" if kind == "zstd" else "none"
        self._heads[entry.name] = result
        return result

    # -- formats

    def _load(self) -> None:
        docker_entries: list[Any] | None = None
        dir_manifest: bytes | None = None
        if self._exists("manifest.json"):
            raw = self._read("manifest.json")
            try:
                data = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                raise _Problem("manifest.json is not valid JSON") from None
            if isinstance(data, list):
                docker_entries = data
            elif isinstance(data, dict) and "schemaVersion" in data:
                dir_manifest = raw
            else:
                raise _Problem(
                    "manifest.json is neither a docker-archive image list nor an image manifest"
                )
        has_index = self._exists("index.json")
        self.index = None
        self.indexes = ()
        if has_index:
            oci_images, self.indexes = self._load_oci()
            if docker_entries is not None:
                self.format = "docker+oci"
                self.images = self._merge(oci_images, self._load_docker(docker_entries))
            else:
                self.format = "oci"
                self.images = tuple(oci_images)
        elif docker_entries is not None:
            self.format = "docker"
            self.images = tuple(self._load_docker(docker_entries))
        elif dir_manifest is not None:
            self.format = "dir"
            self.images, self.indexes = self._load_dir(dir_manifest)
        else:
            raise _Problem(
                "not an image archive: it has neither manifest.json nor index.json",
                _NOT_AN_ARCHIVE,
            )

    # docker-archive

    def _load_docker(self, entries: list[Any]) -> list[ArchivedImage]:
        images: list[ArchivedImage] = []
        for number, entry in enumerate(entries, 1):
            where = f"image {number} of manifest.json"
            if not isinstance(entry, dict):
                raise _Problem(f"{where} is not a JSON object")
            tags = entry.get("RepoTags") or []
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise _Problem(f"{where} has RepoTags that are not a list of names")
            layers = entry.get("Layers")
            if not isinstance(layers, list):
                raise _Problem(f"{where} has no Layers list")
            config_member = self._reference(entry.get("Config"), f"{where}: its Config")
            with _about(f"the config of {where}"):
                config_raw = self._read(config_member)
            config_digest = Digest.of(config_raw)
            config = self._parse_config(config_raw, config_digest, f"the config of {where}")
            if len(layers) != len(config.diff_ids):
                raise _Problem(
                    f"{where} lists {len(layers)} layers, but its config has "
                    f"{len(config.diff_ids)} diff_ids"
                )
            located: list[tuple[_Entry, Compression]] = []
            for position, path in enumerate(layers, 1):
                what = f"layer {position} of {where}"
                with _about(what):
                    found = self._locate(self._reference(path, "its path"))
                located.append((found, self._compression(found, what)))
            family = "oci" if any(c == "zstd" for _, c in located) else "docker"
            blobs = tuple(
                ArchivedBlob(
                    member=found.name,
                    size=found.size,
                    digest=Digest.parse(diff_id) if kind == "none" else None,
                    media_type=_layer_media_type(None, kind, family),
                    compression=kind,
                    diff_id=diff_id,
                    offset=found.offset,
                )
                for (found, kind), diff_id in zip(located, config.diff_ids, strict=True)
            )
            images.append(
                ArchivedImage(
                    names=_unique(tags),
                    tags=(),
                    config=config_raw,
                    config_digest=config_digest,
                    config_media_type=OCI_CONFIG if family == "oci" else DOCKER_CONFIG,
                    layers=blobs,
                    manifest=None,
                    platform=config.platform,
                )
            )
        return images

    def _parse_config(self, raw: bytes, digest: Digest, what: str) -> ImageConfig:
        try:
            json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _Problem(f"{what} is not valid JSON") from None
        try:
            config = ImageConfig.parse(raw, digest)
        except ImgpullError as exc:
            raise _Problem(f"{what} is not an image config: {exc.message}") from None
        except (AttributeError, TypeError, ValueError):
            raise _Problem(f"{what} is not an image config: wrong JSON types") from None
        for diff_id in config.diff_ids:
            try:
                Digest.parse(diff_id)
            except (ValueError, TypeError, ImgpullError):
                raise _Problem(f"{what} has an invalid diff_id {_shown(repr(diff_id))}") from None
        return config

    # OCI layout

    def _blob(self, descriptor: Descriptor, member: str, what: str, limit: int) -> bytes:
        if descriptor.size > limit:
            raise _Problem(f"{what} is {descriptor.size} bytes, more than {limit} allowed")
        with _about(what):
            raw = self._read(member, limit)
        if len(raw) != descriptor.size or Digest.of(raw, descriptor.digest.algorithm) != (
            descriptor.digest
        ):
            raise _Problem(f"{what} ({_shown(member)}) does not match its digest and size")
        return raw

    def _load_oci(self) -> tuple[list[ArchivedImage], tuple[ArchivedIndex, ...]]:
        raw = self._read("index.json")
        self._json("index.json", "index.json")
        try:
            parsed = parse_manifest(raw, "", Digest.of(raw))
        except ImgpullError as exc:
            raise _Problem(f"index.json is not an image index: {exc.message}") from None
        if not isinstance(parsed, Index):
            raise _Problem("index.json is not an image index (it has no manifests list)")
        self.index = parsed
        grouped: dict[Digest, list[Descriptor]] = {}
        for descriptor in parsed.manifests:
            grouped.setdefault(descriptor.digest, []).append(descriptor)
        images: list[ArchivedImage] = []
        indexes: list[ArchivedIndex] = []
        for number, descriptors in enumerate(grouped.values(), 1):
            names, tags = _split_names(dict(d.annotations) for d in descriptors)
            what = f"manifest {number} of index.json"
            found = self._manifest(descriptors[0], what, blob_path)
            if isinstance(found, Manifest):
                images.append(self._oci_image(found, descriptors[0], names, tags, what, blob_path))
            else:
                indexes.append(self._oci_index(found, names, tags, what, blob_path, depth=1))
        return images, tuple(indexes)

    def _manifest(
        self, descriptor: Descriptor, what: str, member_of: Callable[[Digest], str]
    ) -> Manifest | Index:
        raw = self._blob(descriptor, member_of(descriptor.digest), what, SMALL_LIMIT)
        try:
            return parse_manifest(raw, descriptor.media_type, descriptor.digest)
        except ImgpullError as exc:
            raise _Problem(f"{what} is not usable: {exc.message}") from None

    def _oci_image(
        self,
        manifest: Manifest,
        descriptor: Descriptor | None,
        names: Sequence[str],
        tags: Sequence[str],
        what: str,
        member_of: Callable[[Digest], str],
    ) -> ArchivedImage:
        config_raw = self._blob(
            manifest.config, member_of(manifest.config.digest), f"the config of {what}", SMALL_LIMIT
        )
        is_image = manifest.config.media_type in (DOCKER_CONFIG, OCI_CONFIG)
        diff_ids: tuple[str | None, ...] = (None,) * len(manifest.layers)
        fallback = (descriptor.platform if descriptor else None) or Platform("unknown", "unknown")
        platform = fallback
        if is_image:
            config = self._parse_config(config_raw, manifest.config.digest, f"the config of {what}")
            if len(config.diff_ids) != len(manifest.layers):
                raise _Problem(
                    f"{what} has {len(manifest.layers)} layers, but its config has "
                    f"{len(config.diff_ids)} diff_ids"
                )
            diff_ids = config.diff_ids
            if config.platform.os or config.platform.architecture:
                platform = config.platform
        layers: list[ArchivedBlob] = []
        for position, (layer, diff_id) in enumerate(zip(manifest.layers, diff_ids, strict=True), 1):
            where = f"layer {position} of {what}"
            member = member_of(layer.digest)
            with _about(where):
                found = self._locate(member)
            if found.size != layer.size:
                raise _Problem(
                    f"{where} ({_shown(member)}) is {found.size} bytes, its manifest says "
                    f"{layer.size}"
                )
            kind = self._compression(found, where)
            layers.append(
                ArchivedBlob(
                    member=found.name,
                    size=found.size,
                    digest=layer.digest,
                    media_type=_layer_media_type(layer.media_type, kind, "oci"),
                    compression=kind,
                    diff_id=diff_id,
                    declared=layer.media_type,
                    offset=found.offset,
                )
            )
        return ArchivedImage(
            names=_unique(names),
            tags=_unique(tags),
            config=config_raw,
            config_digest=manifest.config.digest,
            config_media_type=manifest.config.media_type,
            layers=tuple(layers),
            manifest=manifest,
            platform=platform,
        )

    def _oci_index(
        self,
        index: Index,
        names: Sequence[str],
        tags: Sequence[str],
        what: str,
        member_of: Callable[[Digest], str],
        *,
        depth: int,
    ) -> ArchivedIndex:
        if depth > _MAX_INDEX_DEPTH:
            raise _Problem(f"{what}: indexes nested too deep")
        children: list[ArchivedImage] = []
        missing: list[Descriptor] = []
        for number, child in enumerate(index.manifests, 1):
            where = f"entry {number} of the index in {what}"
            if not self._exists(member_of(child.digest)):
                missing.append(child)
                continue
            found = self._manifest(child, where, member_of)
            if isinstance(found, Index):
                nested = self._oci_index(found, (), (), where, member_of, depth=depth + 1)
                children.extend(nested.images)
                missing.extend(nested.missing)
            else:
                children.append(self._oci_image(found, child, (), (), where, member_of))
        return ArchivedIndex(
            names=_unique(names),
            tags=_unique(tags),
            index=index,
            images=tuple(children),
            missing=tuple(missing),
        )

    def _merge(
        self, oci: list[ArchivedImage], docker: list[ArchivedImage]
    ) -> tuple[ArchivedImage, ...]:
        """One image per OCI manifest, named also by the manifest.json entries that show
        the same config and layer members; entries that match none stay docker images."""
        children = [image for index in self.indexes for image in index.images]

        def key(image: ArchivedImage) -> tuple[Digest, tuple[str, ...]]:
            return image.config_digest, tuple(layer.member for layer in image.layers)

        merged: dict[tuple[Digest, tuple[str, ...]], ArchivedImage] = {}
        for image in oci:
            merged.setdefault(key(image), image)
        by_key_child = {key(image): image for image in children}
        extra: list[ArchivedImage] = []
        for image in docker:
            k = key(image)
            if k in merged:
                seen = merged[k]
                merged[k] = _renamed(seen, (*image.names, *seen.names), seen.tags)
            elif k in by_key_child:
                child = by_key_child[k]
                merged[k] = _renamed(child, image.names, child.tags)
            else:
                extra.append(image)
        return (*merged.values(), *extra)

    # containers/image dir:

    def _load_dir(self, raw: bytes) -> tuple[tuple[ArchivedImage, ...], tuple[ArchivedIndex, ...]]:
        def member_of(digest: Digest) -> str:
            return digest.hex

        def child_manifest(digest: Digest) -> str:
            return f"{digest.hex}.manifest.json"

        try:
            parsed = parse_manifest(raw, "", Digest.of(raw))
        except ImgpullError as exc:
            raise _Problem(f"manifest.json is not usable: {exc.message}") from None
        if isinstance(parsed, Manifest):
            return (self._oci_image(parsed, None, (), (), "manifest.json", member_of),), ()
        children: list[ArchivedImage] = []
        missing: list[Descriptor] = []
        for number, child in enumerate(parsed.manifests, 1):
            where = f"entry {number} of manifest.json"
            if not self._exists(child_manifest(child.digest)):
                missing.append(child)
                continue
            found = self._manifest(child, where, child_manifest)
            if isinstance(found, Index):
                raise _Problem(f"{where} is a nested index, which the dir: layout never has")
            children.append(self._oci_image(found, child, (), (), where, member_of))
        return (), (ArchivedIndex((), (), parsed, tuple(children), tuple(missing)),)


def _renamed(image: ArchivedImage, names: Sequence[str], tags: Sequence[str]) -> ArchivedImage:
    return ArchivedImage(
        names=_unique(names),
        tags=_unique(tags),
        config=image.config,
        config_digest=image.config_digest,
        config_media_type=image.config_media_type,
        layers=image.layers,
        manifest=image.manifest,
        platform=image.platform,
    )
