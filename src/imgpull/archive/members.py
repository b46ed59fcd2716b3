"""Where an archive's members are and how to read them, without extracting anything:
a plain tar (indexed once, members read at their offsets), a compressed tar (indexed in
one pass, read forward only), or a directory. Every path is kept inside the archive:
absolute paths, ``..`` and links that leave it are refused, never resolved.
"""

from __future__ import annotations

import json
import lzma
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from imgpull.archive.problems import NOT_AN_ARCHIVE, UNSAFE, Missing, Problem, about
from imgpull.archive.records import (
    SMALL_LIMIT,
    Compression,
    OuterCompression,
    sniff_compression,
)
from imgpull.digest import Digest
from imgpull.model import Descriptor
from imgpull.text import shown

MiB: Final = 1024 * 1024
CHUNK: Final = MiB
HEAD: Final = 16
_MAX_LINK_HOPS: Final = 16
# No image has this many files at its top level; a tar that does is an attack.
MAX_MEMBERS: Final = 100_000
# tarfile reads a PAX header or a GNU long name whole: a bigger one is an attack (a
# 1 MB .tar.gz can claim a 1 GiB header). Go's archive/tar has the same 1 MiB limit.
MAX_EXTENDED_HEADER: Final = MiB
_EXTENDED_TYPES: Final = frozenset(
    {
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
    }
)


def strip_dot(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def member_name(name: str) -> str | None:
    """A tar member's name, normalised; None when it is absolute or climbs out."""
    name = strip_dot(name)
    if not name or name.startswith("/") or "\x00" in name:
        return None
    if ".." in name.split("/"):
        return None
    normal = posixpath.normpath(name)
    if normal in (".", ""):
        return None
    # The name itself when it is already normal: an index of 100,000 members (what
    # MAX_MEMBERS allows) then holds one copy of each name, not three.
    return name if normal == name else normal


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # resolved member name
    size: int
    offset: int  # data offset in the tar (0 in a directory)


ReadAt = Callable[[int, int], bytes]  # (position inside the member, count) -> bytes


class Store:
    compression: OuterCompression = "none"
    seekable = True

    def locate(self, member: str) -> Entry:
        raise NotImplementedError

    def head(self, entry: Entry) -> bytes:
        raise NotImplementedError

    def reader(self, entry: Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        """(read_at, close, seekable) for one member."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class BoundedTarInfo(tarfile.TarInfo):
    """tarfile's headers with their memory bounded: an extended header larger than
    MAX_EXTENDED_HEADER, and sparse members (whose maps tarfile reads whole, however
    long; images never hold sparse files), are refused before tarfile reads them."""

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENDED_TYPES and self.size > MAX_EXTENDED_HEADER:
            raise Problem(
                f"the archive has a tar extended header of {self.size} bytes, more than "
                f"the {MAX_EXTENDED_HEADER} any archive needs",
                NOT_AN_ARCHIVE,
            )
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise _sparse(self.name)
        member: tarfile.TarInfo = super()._proc_member(tar)  # type: ignore[misc]
        return member

    # PAX sparse formats 0.0, 0.1 and 1.0 (tarfile calls these once the headers are read)
    def _proc_gnusparse_00(self, following: tarfile.TarInfo, *_: object) -> None:
        raise _sparse(following.name)

    def _proc_gnusparse_01(self, following: tarfile.TarInfo, *_: object) -> None:
        raise _sparse(following.name)

    def _proc_gnusparse_10(self, following: tarfile.TarInfo, *_: object) -> None:
        raise _sparse(following.name)


def _sparse(name: str) -> Problem:
    return Problem(f"{shown(name)} is a sparse file, which images never hold", NOT_AN_ARCHIVE)


class TarIndex:
    """Member name -> TarInfo, links resolved safely inside the archive."""

    def __init__(self) -> None:
        self.members: dict[str, tarfile.TarInfo] = {}
        self.count = 0

    def add(self, info: tarfile.TarInfo) -> None:
        self.count += 1
        if self.count > MAX_MEMBERS:
            raise Problem(
                f"the archive has more than {MAX_MEMBERS} members, more than any image has",
                NOT_AN_ARCHIVE,
            )
        name = member_name(info.name)
        if name is not None:
            self.members[name] = info  # the last one wins, as when extracting

    def resolve(self, member: str) -> tuple[str, tarfile.TarInfo]:
        name = member
        for _ in range(_MAX_LINK_HOPS):
            info = self.members.get(name)
            if info is None:
                if name != member:
                    raise Missing(f"{shown(member)} links to {shown(name)}, which is missing")
                raise Missing(f"{shown(member)} is missing")
            if info.isreg():
                if info.issparse():
                    raise Problem(f"{shown(name)} is a sparse file, which images never hold")
                return name, info
            if info.issym():
                target = info.linkname
                joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
                if target.startswith("/") or joined == ".." or joined.startswith("../"):
                    raise Problem(
                        f"{shown(name)} is a symlink to {shown(target)}, outside the archive",
                        UNSAFE,
                    )
                name = strip_dot(joined)
            elif info.islnk():
                target_name = member_name(info.linkname)
                if target_name is None:
                    raise Problem(
                        f"{shown(name)} is a hard link to {shown(info.linkname)}, "
                        "outside the archive",
                        UNSAFE,
                    )
                name = target_name
            else:
                raise Problem(f"{shown(name)} is not a regular file")
        raise Problem(f"{shown(member)}: too many links (a loop?)")


def index_errors() -> tuple[type[BaseException], ...]:
    return (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


class PlainTar(Store):
    """An uncompressed tar: indexed once (headers only), members read at their offsets.
    Each reader has its own file object, so several read at once from any thread, on
    every system (no pread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file_size = path.stat().st_size
        self.index = TarIndex()
        try:
            with tarfile.open(path, "r:", tarinfo=BoundedTarInfo) as tar:
                for info in tar:
                    self.index.add(info)
        except index_errors() as exc:
            raise tar_problem(exc) from exc

    def locate(self, member: str) -> Entry:
        name, info = self.index.resolve(member)
        if info.offset_data + info.size > self.file_size:
            raise Problem(f"the archive is truncated: {shown(name)} ends after the file")
        return Entry(name, info.size, info.offset_data)

    def head(self, entry: Entry) -> bytes:
        with self.path.open("rb") as handle:
            handle.seek(entry.offset)
            return handle.read(min(HEAD, entry.size))

    def reader(self, entry: Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        try:
            handle = self.path.open("rb")
        except OSError as exc:
            raise Problem(f"cannot read {shown(entry.name)}: {exc.strerror}") from None
        return _file_reader(handle, entry.offset), handle.close, True

    def close(self) -> None:
        pass


def _file_reader(handle: BinaryIO, base: int) -> ReadAt:
    def read_at(position: int, count: int) -> bytes:
        handle.seek(base + position)
        return handle.read(count)

    return read_at


def tar_problem(exc: BaseException) -> Problem:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "unexpected end" in text:
        return Problem(f"the archive is truncated ({shown(text, 60)})")
    return Problem(f"not a tar archive ({shown(text, 60)})", NOT_AN_ARCHIVE)


class Directory(Store):
    """An archive unpacked into a directory (or an ``oci:``/``dir:`` output)."""

    def __init__(self, path: Path) -> None:
        self.root = os.path.realpath(path)

    def _real(self, member: str) -> tuple[str, os.stat_result]:
        real = os.path.realpath(os.path.join(self.root, member))
        if real != self.root and not real.startswith(self.root.rstrip(os.sep) + os.sep):
            raise Problem(f"{shown(member)} resolves to a path outside the directory", UNSAFE)
        try:
            info = os.stat(real)
        except FileNotFoundError:
            raise Missing(f"{shown(member)} is missing") from None
        except OSError as exc:
            raise Problem(f"cannot read {shown(member)}: {exc.strerror}") from None
        if not stat.S_ISREG(info.st_mode):
            raise Problem(f"{shown(member)} is not a regular file")
        return real, info

    def locate(self, member: str) -> Entry:
        real, info = self._real(member)
        # The resolved path names the entry, so symlinked duplicates are one blob.
        name = "/".join(Path(os.path.relpath(real, self.root)).parts)
        return Entry(name, info.st_size, 0)

    def _open(self, entry: Entry) -> BinaryIO:
        real, _ = self._real(entry.name)
        try:
            return open(real, "rb")
        except OSError as exc:
            raise Problem(f"cannot read {shown(entry.name)}: {exc.strerror}") from None

    def head(self, entry: Entry) -> bytes:
        with self._open(entry) as handle:
            return handle.read(HEAD)

    def reader(self, entry: Entry) -> tuple[ReadAt, Callable[[], None], bool]:
        handle = self._open(entry)
        return _file_reader(handle, 0), handle.close, True

    def close(self) -> None:
        pass


class Members:
    """Member access for the format readers: paths checked, sizes bounded, problems
    raised as :class:`Problem`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.heads: dict[str, Compression] = {}

    def reference(self, path: Any, what: str) -> str:
        """A member path named inside the archive: relative, no ``..``, no NUL."""
        if not isinstance(path, str) or not path:
            raise Problem(f"{what} is not a member path")
        if path.startswith("/") or "\x00" in path or ".." in strip_dot(path).split("/"):
            raise Problem(f"{what} names {shown(path)}, a path outside the archive", UNSAFE)
        name = member_name(path)
        if name is None:
            raise Problem(f"{what} names {shown(path)}, which is not a file")
        return name

    def locate(self, member: str) -> Entry:
        try:
            return self.store.locate(member)
        except Problem:
            raise
        except OSError as exc:
            raise Problem(f"cannot read {shown(member)}: {exc.strerror}") from None

    def exists(self, member: str) -> bool:
        """False only when ``member`` is not there; a broken member still fails."""
        try:
            self.locate(member)
        except Missing:
            return False
        return True

    def read(self, member: str, limit: int = SMALL_LIMIT) -> bytes:
        entry = self.locate(member)
        if entry.size > limit:
            raise Problem(
                f"{shown(member)} is {entry.size} bytes, more than the {limit} bytes "
                "such a file can have"
            )
        read_at, on_close, _ = self.store.reader(entry)
        try:
            data = read_at(0, entry.size) if entry.size else b""
            while len(data) < entry.size:  # reads may return short counts
                more = read_at(len(data), entry.size - len(data))
                if not more:
                    raise Problem(f"the archive is truncated: {shown(member)} ends early")
                data += more
            return data
        except OSError as exc:
            raise Problem(f"cannot read {shown(member)}: {exc.strerror or exc}") from None
        finally:
            on_close()

    def json(self, member: str, what: str) -> Any:
        raw = self.read(member)
        try:
            return json.loads(raw)
        except RecursionError:
            raise Problem(f"{what} is nested too deeply to be real") from None
        except (ValueError, UnicodeDecodeError):
            where = what if what == member else f"{what} ({shown(member)})"
            raise Problem(f"{where} is not valid JSON") from None

    def compression(self, entry: Entry, what: str) -> Compression:
        found = self.heads.get(entry.name)
        if found is not None:
            return found
        kind = sniff_compression(self.store.head(entry))
        if kind in ("bzip2", "xz"):
            raise Problem(
                f"{what} is {kind}-compressed; registries take only gzip, zstd or "
                "uncompressed layers",
                "load the image (docker load, podman load) and save it again",
            )
        result: Compression = "gzip" if kind == "gzip" else "zstd" if kind == "zstd" else "none"
        self.heads[entry.name] = result
        return result

    def blob(self, descriptor: Descriptor, member: str, what: str, limit: int) -> bytes:
        """A small blob (manifest, config) read whole and checked against its descriptor."""
        if descriptor.size > limit:
            raise Problem(f"{what} is {descriptor.size} bytes, more than {limit} allowed")
        with about(what):
            raw = self.read(member, limit)
        if len(raw) != descriptor.size or Digest.of(raw, descriptor.digest.algorithm) != (
            descriptor.digest
        ):
            raise Problem(f"{what} ({shown(member)}) does not match its digest and size")
        return raw
