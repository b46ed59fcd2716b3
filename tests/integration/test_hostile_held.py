"""What held in the hostile world and must keep holding (issue 9, "What held"): gzip bombs
are never decompressed, archive members that are not files are refused, a full disk and
a read-only cache give clean errors.

Every test runs the CLI in a subprocess (watched: peak RSS from VmHWM, wall time)
against the session's real registry; archives are built here with :mod:`tarfile` and
:mod:`zlib`, never with imgpull; full and read-only file systems are real tmpfs mounts
(root, as here and in CI). A failure must be clean: the exit code of
:mod:`imgpull.errors`, exactly one ``imgpull: error:`` line, no traceback, nothing
published and nothing left at ``-o``.

The gzip bombs are made in a fraction of a second: a deflate stream flushed with
``Z_FULL_FLUSH`` starts afresh, so the compressed form of a repeated chunk is the same
bytes every time; it is written once per repeat, and the gzip trailer's CRC-32 is
combined arithmetically (zlib's ``crc32_combine``) instead of hashing gigabytes.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import os
import re
import stat
import struct
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgpull.errors import EXIT_ERROR, EXIT_OK
from tests.archive_view import ArchiveView
from tests.fixtures.images import (
    ALL_MANIFEST_MEDIA,
    CONFIG_MEDIA,
    INDEX_MEDIA,
    LAYER_MEDIA,
    MANIFEST_MEDIA,
    BuiltImage,
    StandardImages,
    build_layer,
    host_arch,
    push_random_image,
    sha256_digest,
)
from tests.fixtures.procwatch import MiB, Watched, watch_imgpull
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")

GiB = 1024 * MiB
MEMORY_CAP = 100 * MiB
#: The watcher kills a run past this: far above the cap, so a bomb that goes off ends fast.
RSS_KILL = 300 * MiB
ERROR_PREFIX = "imgpull: error:"


# == how a run must end ===================================================================


def assert_clean_error(watched: Watched, *, code: int, contains: Sequence[str] = ()) -> str:
    """Exit ``code``, one ``imgpull: error:`` line holding each of ``contains``
    (case-insensitive), no traceback or internal error, empty stdout; returns the line."""
    info = watched.describe()
    assert watched.killed is None, info
    assert watched.returncode == code, f"expected exit code {code}\n{info}"
    stderr = watched.stderr.decode("utf-8", errors="replace")
    assert "Traceback" not in stderr and "internal error" not in stderr.lower(), info
    assert watched.stdout == b"", f"standard output must stay empty\n{info}"
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on standard error\n{info}"
    assert lines[0].startswith(ERROR_PREFIX), info
    for part in contains:
        assert part.lower() in lines[0].lower(), f"expected {part!r} in the error\n{info}"
    return lines[0]


def assert_ok(watched: Watched) -> None:
    assert watched.killed is None and watched.returncode == EXIT_OK, watched.describe()


def assert_bounded_memory(watched: Watched) -> None:
    assert watched.peak_rss < MEMORY_CAP, (
        f"peak RSS {watched.peak_rss_mib:.0f} MiB >= 100 MiB\n{watched.describe()}"
    )


def assert_within(watched: Watched, seconds: float) -> None:
    assert watched.wall <= seconds, f"took {watched.wall:.1f} s > {seconds} s\n{watched.describe()}"


def push(archive: Path, destination: str, *, time_limit: float = 60) -> Watched:
    return watch_imgpull(
        "push", "-q", str(archive), destination, time_limit=time_limit, rss_limit=RSS_KILL
    )


def pull(ref: str, *args: str, time_limit: float = 60) -> Watched:
    return watch_imgpull("pull", "-q", ref, *args, time_limit=time_limit, rss_limit=RSS_KILL)


# == what the registry holds ==============================================================


def manifest_of(registry: RegistryServer, repo: str, tag: str) -> tuple[int, bytes]:
    """(status, body) of ``GET /v2/REPO/manifests/TAG`` on the registry itself."""
    pool = registry.pool()
    try:
        answer = pool.request(
            "GET",
            f"{registry.url}/v2/{repo}/manifests/{tag}",
            headers={"Accept": ", ".join(ALL_MANIFEST_MEDIA)},
        )
        return answer.status, answer.data
    finally:
        pool.clear()


def assert_nothing_pushed(registry: RegistryServer, repo: str, tag: str, mark: int) -> None:
    """No manifest under ``repo:tag``, and not one request for the repository since ``mark``
    (the refusal comes before any upload)."""
    touched = registry.requests(path_pattern=rf"/v2/{re.escape(repo)}/.*", since=mark)
    assert touched == [], [entry.line for entry in touched]
    status, _ = manifest_of(registry, repo, tag)
    assert status == 404, f"{repo}:{tag} exists ({status})"


def blob_digest_in_registry(registry: RegistryServer, repo: str, digest: str) -> tuple[str, int]:
    """(sha256 of the bytes the registry serves for ``digest``, their size)."""
    pool = registry.pool()
    try:
        answer = pool.request(
            "GET", f"{registry.url}/v2/{repo}/blobs/{digest}", preload_content=False
        )
        assert answer.status == 200, answer.status
        hasher, size = hashlib.sha256(), 0
        for chunk in answer.stream(MiB):
            hasher.update(chunk)
            size += len(chunk)
        answer.release_conn()
        return "sha256:" + hasher.hexdigest(), size
    finally:
        pool.clear()


# == gzip bombs, made in a blink ==========================================================


@dataclass(frozen=True)
class Repeat:
    """``chunk`` ``count`` times over, in the uncompressed stream."""

    chunk: bytes
    count: int


Piece = bytes | Repeat


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, row) for row in matrix]


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A + B from crc(A), crc(B) and len(B) (zlib's crc32_combine)."""
    if length2 <= 0:
        return crc1
    odd = [0xEDB88320] + [1 << n for n in range(31)]  # the operator for one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four
    while True:
        even = _gf2_square(odd)
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = _gf2_square(even)
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


def _repeated_crc(chunk: bytes, count: int) -> tuple[int, int]:
    """(CRC-32, length) of ``chunk * count``, by doubling."""
    crc, size = zlib.crc32(chunk), len(chunk)
    total_crc, total = 0, 0
    while count:
        if count & 1:
            total_crc = crc32_combine(total_crc, crc, size) if total else crc
            total += size
        count >>= 1
        if count:
            crc, size = crc32_combine(crc, crc, size), size * 2
    return total_crc, total


def _flushed_form(chunk: bytes) -> bytes:
    """The deflate bytes of ``chunk`` compressed from a fresh (fully flushed) state."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflate.compress(chunk)
    deflate.flush(zlib.Z_FULL_FLUSH)
    forms = [deflate.compress(chunk) + deflate.flush(zlib.Z_FULL_FLUSH) for _ in range(2)]
    assert forms[0] == forms[1], "a fully flushed deflate stream did not restart"
    return forms[0]


@dataclass(frozen=True)
class GzipBomb:
    path: Path
    digest: str  # of the compressed file
    size: int  # compressed
    expanded: int  # uncompressed


def write_gzip_bomb(path: Path, pieces: Iterable[Piece]) -> GzipBomb:
    """A valid gzip file of ``pieces``; ``Repeat`` pieces cost one compression each."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    hasher = hashlib.sha256()
    crc = total = written = 0
    with path.open("wb") as out:

        def emit(data: bytes) -> None:
            nonlocal written
            hasher.update(data)
            out.write(data)
            written += len(data)

        emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # no name, mtime 0, unix
        for piece in pieces:
            if isinstance(piece, bytes):
                emit(deflate.compress(piece) + deflate.flush(zlib.Z_FULL_FLUSH))
                crc, total = zlib.crc32(piece, crc), total + len(piece)
                continue
            form = _flushed_form(piece.chunk)
            for _ in range(piece.count):
                emit(form)
            part_crc, part_size = _repeated_crc(piece.chunk, piece.count)
            crc, total = crc32_combine(crc, part_crc, part_size), total + part_size
        emit(deflate.flush(zlib.Z_FINISH))
        emit(struct.pack("<II", crc, total & 0xFFFFFFFF))
    return GzipBomb(path, "sha256:" + hasher.hexdigest(), written, total)


def zeros(size: int) -> Repeat:
    assert size % MiB == 0
    return Repeat(bytes(MiB), size // MiB)


def ustar_header(name: str, size: int, kind: bytes = b"0") -> bytes:
    """A USTAR header written by hand, so its bytes (and the diffID below) never change."""
    header = bytearray(512)
    header[0 : len(name)] = name.encode()
    header[100:108] = b"0000644\0"
    header[108:116] = header[116:124] = b"0000000\0"
    header[124:136] = b"%011o\0" % size
    header[136:148] = b"00000000000\0"
    header[156:157] = kind
    header[257:265] = b"ustar\x0000"
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def test_the_bomb_maker_writes_exact_gzip(tmp_path: Path) -> None:
    """The trick the bombs rely on, checked on a few MiB: the file decompresses to
    exactly the pieces, CRC and length included (gzip.decompress checks both)."""
    pieces: list[Piece] = [b"head", zeros(3 * MiB), b"x" * 700, Repeat(b"ab\n", 5000), b"t"]
    bomb = write_gzip_bomb(tmp_path / "small.gz", pieces)
    expected = b"head" + bytes(3 * MiB) + b"x" * 700 + b"ab\n" * 5000 + b"t"
    data = bomb.path.read_bytes()
    assert gzip.decompress(data) == expected
    assert (bomb.size, bomb.digest, bomb.expanded) == (
        len(data),
        sha256_digest(data),
        len(expected),
    )


# == 1a. a layer that is a gzip bomb is pushed as it is =====================================

#: The bomb layer: a tar of two 5 GiB files of zeros (USTAR caps a member below 8 GiB).
BOMB_HALF = 5 * GiB
#: sha256 of its 10 GiB + 2 KiB uncompressed: computed once from these pieces (7 s) and
#: checked once with ``zcat layer.tar.gz | sha256sum`` (84 s); the headers are hand-made
#: bytes, so it cannot drift.
BOMB_DIFF_ID = "sha256:92cf7666ebbddc5d7929c64dda9c85f30129c6a4f975be05760b9340ba694bd9"


def bomb_layer_pieces() -> list[Piece]:
    return [
        ustar_header("zeros-1", BOMB_HALF),
        zeros(BOMB_HALF),
        ustar_header("zeros-2", BOMB_HALF),
        zeros(BOMB_HALF),
        bytes(1024),  # the end of the archive
    ]


#: A push that streams the 10 MB bomb takes a few seconds; expanding it would take more
#: than this alone (Python's zlib inflates about 1 GiB in 3 s here, zcat took 84 s).
BOMB_PUSH_SECONDS = 30


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> GzipBomb:
    """A gzip layer of about 10 MB that expands to 10 GiB (a tar of zeros)."""
    made = write_gzip_bomb(tmp_path_factory.mktemp("bomb") / "layer.tar.gz", bomb_layer_pieces())
    assert made.expanded == 2 * BOMB_HALF + 2048
    assert made.size < 12 * MiB
    return made


# -- archives, made with tarfile -------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes | Path | None]


def file_member(name: str, data: bytes | Path) -> Member:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    info.size = data.stat().st_size if isinstance(data, Path) else len(data)
    return info, data


def special_member(
    name: str, kind: bytes, *, link: str = "", device: tuple[int, int] = (0, 0)
) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o644
    info.linkname = link
    info.devmajor, info.devminor = device
    return info, None


def write_archive(path: Path, members: Iterable[Member], *, gzipped: bool = False) -> Path:
    with tarfile.open(path, "w:gz" if gzipped else "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if isinstance(data, Path):
                with data.open("rb") as stream:
                    tar.addfile(info, stream)
            else:
                tar.addfile(info, None if data is None else io.BytesIO(data))
    return path


def image_config(diff_ids: Sequence[str]) -> bytes:
    config = {
        "architecture": host_arch(),
        "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    return json.dumps(config).encode()


def docker_members(
    config: bytes,
    layers: Sequence[tuple[str, bytes | Path]],
    tags: Sequence[str],
    *,
    config_path: str | None = None,
    layer_paths: Sequence[str] | None = None,
) -> list[Member]:
    """A docker-archive as ``docker save`` (before 25) writes it: manifest.json, the
    config as ``<hex>.json``, each layer at its path. ``config_path``/``layer_paths``
    change only what manifest.json says."""
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    entry = {
        "Config": config_path or config_name,
        "RepoTags": list(tags),
        "Layers": list(layer_paths or [name for name, _ in layers]),
    }
    return [
        file_member("manifest.json", json.dumps([entry]).encode()),
        file_member(config_name, config),
        *(file_member(name, data) for name, data in layers),
    ]


def oci_members(
    config: bytes, layers: Sequence[tuple[str, int, bytes | Path]], tag: str
) -> tuple[list[Member], bytes]:
    """An OCI image layout (one image tagged ``tag``) and the manifest it holds."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA["oci"],
            "config": {
                "mediaType": CONFIG_MEDIA["oci"],
                "digest": sha256_digest(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": LAYER_MEDIA["oci"], "digest": digest, "size": size}
                for digest, size, _ in layers
            ],
        },
        indent=2,
    ).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA["oci"],
        "manifests": [
            {
                "mediaType": MANIFEST_MEDIA["oci"],
                "digest": sha256_digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }

    def blob(digest: str, data: bytes | Path) -> Member:
        return file_member(f"blobs/sha256/{digest.split(':', 1)[1]}", data)

    members = [
        file_member("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
        file_member("index.json", json.dumps(index).encode()),
        blob(sha256_digest(manifest), manifest),
        blob(sha256_digest(config), config),
        *(blob(digest, data) for digest, _, data in layers),
    ]
    return members, manifest


@pytest.mark.parametrize("shape", ["docker-archive", "oci-layout"])
def test_a_gzip_bomb_layer_is_pushed_as_it_is_never_expanded(
    registry: RegistryServer, bomb: GzipBomb, tmp_path: Path, shape: str
) -> None:
    """The designed behaviour: a compressed layer is pushed byte for byte, its digest that
    of the compressed bytes; imgpull never checks a compressed layer's diffID (only the
    registry's clients do, when they unpack it), so the 10 GiB are never expanded even
    though the config names the right diffID. Memory stays flat and the push takes the
    time of 10 MB, not of 10 GiB."""
    repo = f"held/bomb-{shape}"
    destination = registry.ref(repo, "1")
    config = image_config([BOMB_DIFF_ID])
    manifest: bytes | None = None
    if shape == "docker-archive":
        members = docker_members(config, [("5a1e/layer.tar", bomb.path)], [destination])
    else:
        members, manifest = oci_members(config, [(bomb.digest, bomb.size, bomb.path)], "1")
    archive = write_archive(tmp_path / "bomb.tar", members)

    watched = push(archive, destination, time_limit=120)

    assert_ok(watched)
    assert_bounded_memory(watched)
    assert_within(watched, BOMB_PUSH_SECONDS)
    status, raw = manifest_of(registry, repo, "1")
    assert status == 200, raw[:500]
    pushed = json.loads(raw)
    if manifest is not None:
        assert raw == manifest, "an OCI layout's manifest is pushed byte for byte"
    else:
        assert pushed["mediaType"] == MANIFEST_MEDIA["docker"]
        assert pushed["config"]["digest"] == sha256_digest(config)
    [layer] = pushed["layers"]
    assert (layer["digest"], layer["size"]) == (bomb.digest, bomb.size)
    assert "gzip" in layer["mediaType"]
    assert blob_digest_in_registry(registry, repo, bomb.digest) == (bomb.digest, bomb.size)

    # And back: pull writes the layer as it is too.
    out = tmp_path / "pulled.tar"
    pulled = pull(destination, "-o", str(out), time_limit=120)
    assert_ok(pulled)
    assert_bounded_memory(pulled)
    assert_within(pulled, BOMB_PUSH_SECONDS)
    assert sha256_digest(ArchiveView.read(out).blobs[bomb.digest]) == bomb.digest


# == 1b. a .tar.gz archive that is a bomb ===================================================


def _gnu_sparse_header(name: str) -> bytes:
    """An old-GNU sparse member header that says extension blocks follow."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    header = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    header[482] = 1  # isextended
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def _sparse_extension(more: bool) -> bytes:
    """A GNU sparse extension block: 21 (offset, size) pairs, then "more follow"."""
    block = bytearray(b"%011o\0%011o\0" % (1, 1) * 21 + bytes(8))
    block[504] = 1 if more else 0
    return bytes(block)


def _pax_sparse_10_header(name: str) -> bytes:
    info = tarfile.TarInfo(name)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": name,
        "GNU.sparse.realsize": "1",
    }
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _expanding_header(kind: bytes) -> list[Piece]:
    """A header of type ``kind`` whose 1 GiB of data (zeros) tarfile would read whole."""
    return [ustar_header("././@Header", GiB, kind), zeros(GiB), ustar_header("x", 0)]


#: .tar.gz archives of about 1 MB whose headers tarfile would read whole into memory.
HEADER_BOMBS: dict[str, tuple[Callable[[], list[Piece]], str]] = {
    "gnu-long-name": (lambda: _expanding_header(tarfile.GNUTYPE_LONGNAME), "extended header"),
    "gnu-long-link": (lambda: _expanding_header(tarfile.GNUTYPE_LONGLINK), "extended header"),
    "pax-header": (lambda: _expanding_header(tarfile.XHDTYPE), "extended header"),
    "pax-global-header": (lambda: _expanding_header(tarfile.XGLTYPE), "extended header"),
    "gnu-sparse-map": (
        lambda: [
            _gnu_sparse_header("sparse"),
            Repeat(_sparse_extension(True) * 2048, 256),  # 256 MiB of extension blocks
            _sparse_extension(False),
        ],
        "sparse file",
    ),
    "pax-sparse-1.0-map": (
        lambda: [
            _pax_sparse_10_header("sparse"),
            b"1000000000\n",  # map entries announced
            Repeat(b"1\n" * (MiB // 2), 256),  # and 256 MiB of them
        ],
        "sparse file",
    ),
}


@pytest.mark.parametrize("kind", sorted(HEADER_BOMBS))
def test_tar_gz_whose_headers_expand_is_refused_at_once(
    registry: RegistryServer, tmp_path: Path, kind: str
) -> None:
    """tarfile reads a PAX header, a GNU long name and a sparse map whole: a 1 MB
    .tar.gz could claim a gigabyte of it (it cost 1 GiB of memory, and a PAX 1.0 map ran
    for minutes). Such headers are refused before they are read: one line, flat memory."""
    pieces, message = HEADER_BOMBS[kind]
    archive = write_gzip_bomb(tmp_path / "headers.tar.gz", [*pieces(), bytes(1024)])
    assert archive.size < 2 * MiB < 200 * archive.size < archive.expanded
    repo = f"held/header-bomb-{kind}"
    mark = registry.log_mark()

    watched = push(archive.path, registry.ref(repo, "1"), time_limit=60)

    assert_clean_error(watched, code=EXIT_ERROR, contains=[str(archive.path), message])
    assert_bounded_memory(watched)
    assert_within(watched, 10)
    assert_nothing_pushed(registry, repo, "1", mark)


def test_tar_gz_whose_manifest_expands_to_gigabytes(
    registry: RegistryServer, tmp_path: Path
) -> None:
    """A 4 MB .tar.gz whose manifest.json expands to 4 GiB of zeros: a compressed archive
    is decompressed once, streaming, to find its members (the only way to read one), in
    flat memory; the oversized manifest.json is then refused by its size, never read.
    (The member count is bounded too: see test_hostile's 300k-member archive.)"""
    archive = write_gzip_bomb(
        tmp_path / "huge.tar.gz",
        [ustar_header("manifest.json", 4 * GiB), zeros(4 * GiB), bytes(1024)],
    )
    assert archive.size < 5 * MiB
    repo = "held/huge-member"
    mark = registry.log_mark()

    watched = push(archive.path, registry.ref(repo, "1"), time_limit=180)

    assert_clean_error(
        watched, code=EXIT_ERROR, contains=["manifest.json", f"{4 * GiB} bytes", "more than"]
    )
    assert_bounded_memory(watched)
    assert_within(watched, 90)
    assert_nothing_pushed(registry, repo, "1", mark)


# == 2. archive members that are not files, and paths that leave the archive ================
#
# tests/unit/archive/test_reader.py covers the reader alone for `..` and absolute paths in
# manifest.json and for symlinks and hard links with `..`; these go through `imgpull push`
# and check that nothing reaches the registry, and add what had no test: device and FIFO
# members, hard links to absolute paths, links to devices, and directories whose layer is
# a FIFO, a device node or a link to /dev/zero.

LAYER_PATH = "5a1e/layer.tar"
NOT_A_FILE = "not a regular file"
OUTSIDE = "outside the archive"


def small_layer_and_config() -> tuple[bytes, bytes]:
    layer = build_layer({"etc/held": b"a small layer\n"})
    return layer.compressed, image_config([layer.diff_id])


#: name -> (what stands at the layer's path, extra members, the member the error names,
#: what it says about it)
UNSAFE_MEMBERS: dict[str, tuple[Member, list[Member], str, str]] = {
    "character-device": (
        special_member(LAYER_PATH, tarfile.CHRTYPE, device=(1, 5)),
        [],
        LAYER_PATH,
        NOT_A_FILE,
    ),
    "block-device": (
        special_member(LAYER_PATH, tarfile.BLKTYPE, device=(7, 0)),
        [],
        LAYER_PATH,
        NOT_A_FILE,
    ),
    "fifo": (special_member(LAYER_PATH, tarfile.FIFOTYPE), [], LAYER_PATH, NOT_A_FILE),
    "hardlink-to-an-absolute-path": (
        special_member(LAYER_PATH, tarfile.LNKTYPE, link="/etc/passwd"),
        [],
        LAYER_PATH,
        OUTSIDE,
    ),
    "hardlink-climbing-out": (
        special_member(LAYER_PATH, tarfile.LNKTYPE, link="../../etc/shadow"),
        [],
        LAYER_PATH,
        OUTSIDE,
    ),
    "symlink-to-an-absolute-path": (
        special_member(LAYER_PATH, tarfile.SYMTYPE, link="/dev/zero"),
        [],
        LAYER_PATH,
        OUTSIDE,
    ),
    "symlink-to-a-device-member": (
        special_member(LAYER_PATH, tarfile.SYMTYPE, link="../dev/zero"),
        [special_member("dev/zero", tarfile.CHRTYPE, device=(1, 5))],
        "dev/zero",
        NOT_A_FILE,
    ),
    "hardlink-to-a-fifo-member": (
        special_member(LAYER_PATH, tarfile.LNKTYPE, link="dev/fifo"),
        [special_member("dev/fifo", tarfile.FIFOTYPE)],
        "dev/fifo",
        NOT_A_FILE,
    ),
}


@pytest.mark.parametrize("packing", ["tar", "tar.gz"])
@pytest.mark.parametrize("kind", sorted(UNSAFE_MEMBERS))
def test_layer_member_that_is_not_a_file_is_refused(
    registry: RegistryServer, tmp_path: Path, kind: str, packing: str
) -> None:
    replacement, extra, named, message = UNSAFE_MEMBERS[kind]
    layer, config = small_layer_and_config()
    repo = f"held/unsafe-{kind}-{packing.replace('.', '-')}"
    destination = registry.ref(repo, "1")
    members = [
        replacement if info.name == LAYER_PATH else (info, data)
        for info, data in docker_members(config, [(LAYER_PATH, layer)], [destination])
    ]
    archive = write_archive(
        tmp_path / f"unsafe.{packing}", [*extra, *members], gzipped=packing == "tar.gz"
    )
    mark = registry.log_mark()

    watched = push(archive, destination, time_limit=30)

    assert_clean_error(watched, code=EXIT_ERROR, contains=["layer 1 of image 1", named, message])
    assert_nothing_pushed(registry, repo, "1", mark)


@pytest.mark.parametrize(
    ("field", "path"),
    [("Layers", "../5a1e/layer.tar"), ("Layers", "/etc/passwd"), ("Config", "/etc/passwd")],
    ids=["layer-climbing-out", "layer-absolute", "config-absolute"],
)
def test_manifest_json_naming_a_path_outside_is_refused(
    registry: RegistryServer, tmp_path: Path, field: str, path: str
) -> None:
    layer, config = small_layer_and_config()
    repo = f"held/outside-{field.lower()}-{len(path)}"
    destination = registry.ref(repo, "1")
    members = docker_members(
        config,
        [(LAYER_PATH, layer)],
        [destination],
        config_path=path if field == "Config" else None,
        layer_paths=[path] if field == "Layers" else None,
    )
    archive = write_archive(tmp_path / "outside.tar", members)
    mark = registry.log_mark()

    watched = push(archive, destination, time_limit=30)

    assert_clean_error(watched, code=EXIT_ERROR, contains=[path, OUTSIDE])
    assert_nothing_pushed(registry, repo, "1", mark)


def test_oci_layer_blob_that_is_a_device_is_refused(
    registry: RegistryServer, tmp_path: Path
) -> None:
    layer, config = small_layer_and_config()
    digest = sha256_digest(layer)
    members, _ = oci_members(config, [(digest, len(layer), layer)], "1")
    blob = f"blobs/sha256/{digest.split(':', 1)[1]}"
    members = [
        special_member(blob, tarfile.CHRTYPE, device=(1, 5)) if info.name == blob else (info, d)
        for info, d in members
    ]
    repo = "held/unsafe-oci-blob"
    mark = registry.log_mark()

    watched = push(write_archive(tmp_path / "oci.tar", members), registry.ref(repo, "1"))

    assert_clean_error(watched, code=EXIT_ERROR, contains=[blob, NOT_A_FILE])
    assert_nothing_pushed(registry, repo, "1", mark)


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


def _make_zero_device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is


def _link_to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


#: A directory archive whose layer file is something that, read, would never end.
UNSAFE_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (_make_fifo, NOT_A_FILE),  # opening it would block for ever
    "zero-device-node": (_make_zero_device, NOT_A_FILE),  # reading it never ends
    "symlink-to-dev-zero": (_link_to_dev_zero, "outside the directory"),
}


@pytest.mark.parametrize("kind", sorted(UNSAFE_FILES))
def test_directory_whose_layer_is_not_a_file_is_refused(
    registry: RegistryServer, tmp_path: Path, kind: str
) -> None:
    make, message = UNSAFE_FILES[kind]
    layer, config = small_layer_and_config()
    repo = f"held/unsafe-dir-{kind}"
    destination = registry.ref(repo, "1")
    unpacked = tmp_path / "unpacked"
    for info, data in docker_members(config, [(LAYER_PATH, layer)], [destination]):
        target = unpacked / info.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if info.name == LAYER_PATH:
            make(target)
        else:
            assert isinstance(data, bytes)
            target.write_bytes(data)
    mark = registry.log_mark()

    watched = push(unpacked, destination, time_limit=30)

    assert_clean_error(watched, code=EXIT_ERROR, contains=[LAYER_PATH, message])
    assert_bounded_memory(watched)
    assert_within(watched, 10)
    assert_nothing_pushed(registry, repo, "1", mark)


def test_imgpull_archives_with_pax_headers_still_push(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    """The bound on extended headers leaves real ones alone: imgpull's own archives pad
    members with PAX headers, and a name past 100 bytes needs one; both push, as tar and
    as .tar.gz."""
    pulled = tmp_path / "hello.tar"
    assert_ok(pull(standard_images.hello.ref(registry.host), "-o", str(pulled)))
    with tarfile.open(pulled) as tar:
        assert any(m.pax_headers for m in tar.getmembers()), "expected PAX headers"
    long_name = "held/" + "x" * 120 + "/layer.tar"
    layer, config = small_layer_and_config()
    docker = docker_members(config, [(long_name, layer)], [registry.ref("held/long-names", "1")])
    for number, archive in enumerate(
        [
            pulled,
            write_archive(tmp_path / "long.tar", docker),
            write_archive(tmp_path / "long.tar.gz", docker, gzipped=True),
        ]
    ):
        repo = f"held/pax-{number}"
        assert_ok(push(archive, registry.ref(repo, "1")))
        assert manifest_of(registry, repo, "1")[0] == 200


# == 3 and 4. full disks and read-only caches ==============================================


class Mounts:
    """tmpfs mounts for one test (root only, as here and in CI), unmounted after it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mounted: list[Path] = []

    def tmpfs(self, name: str, size: str) -> Path:
        where = self.root / name
        where.mkdir(parents=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where))
        self.mounted.append(where)
        return where

    def read_only(self, where: Path) -> None:
        _run("mount", "-o", "remount,ro", str(where))

    def unmount_all(self) -> None:
        for where in reversed(self.mounted):
            if subprocess.run(["umount", str(where)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(where)], check=False)


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr.decode(errors='replace')}"


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    found = Mounts(tmp_path / "mounts")
    try:
        yield found
    finally:
        found.unmount_all()


@pytest.fixture(scope="module")
def five_mib_image(registry: RegistryServer) -> tuple[str, BuiltImage]:
    """An image of 5 MiB of random layers (3 + 2): more than a 2 MiB disk holds."""
    image = push_random_image(
        registry.url, "held/five-mib", "1", [3 * MiB, 2 * MiB], seed="held-disk"
    )
    return registry.ref("held/five-mib", "1"), image


def fill(disk: Path) -> None:
    """Write to ``disk`` until it has no byte left."""
    block = bytes(64 * 1024)
    with (disk / "filler").open("wb", buffering=0) as filler:
        try:
            while filler.write(block):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def temporary_files(root: Path) -> list[Path]:
    """Files a write-then-rename left behind: ``.NAME.<pid or thread id>``."""
    return sorted(p for p in root.rglob(".*") if re.fullmatch(r"\..+\.\d+", p.name))


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


@pytest.mark.parametrize("cache", ["cache", "no-cache"])
def test_a_full_disk_at_the_output_leaves_nothing_there(
    five_mib_image: tuple[str, BuiltImage], mounts: Mounts, cache: str
) -> None:
    """-o on a 2 MiB disk, the cache elsewhere (or --no-cache, where the blobs are
    written in their places in the archive): the generic clean error for a failed write,
    exit 1, one line naming the archive; the disk is as empty as before."""
    ref, _ = five_mib_image
    disk = mounts.tmpfs("disk", "2m")

    watched = pull(ref, "-o", str(disk / "out.tar"), *(["--no-cache"] if cache != "cache" else []))

    named = str(disk / "out.tar")
    assert_clean_error(watched, code=EXIT_ERROR, contains=["No space left on device", named])
    assert os.listdir(disk) == []


def test_a_full_disk_under_the_cache_fails_cleanly(
    five_mib_image: tuple[str, BuiltImage], mounts: Mounts, tmp_path: Path
) -> None:
    """The cache on a 2 MiB disk, -o elsewhere: exit 1, one line, nothing at -o or beside
    it, and no temporary file left in the cache (a partial download stays there by
    design, for the next run to resume)."""
    ref, _ = five_mib_image
    cache = mounts.tmpfs("cache-disk", "2m") / "cache"
    out = tmp_path / "out" / "out.tar"
    out.parent.mkdir()

    watched = pull(ref, "--cache-dir", str(cache), "-o", str(out))

    assert_clean_error(watched, code=EXIT_ERROR, contains=["No space left on device", str(cache)])
    assert os.listdir(out.parent) == []
    assert temporary_files(cache) == []


def test_a_full_disk_under_a_cache_that_holds_the_image_still_serves_it(
    five_mib_image: tuple[str, BuiltImage], mounts: Mounts, tmp_path: Path
) -> None:
    """A cache copied to a disk that is then filled (new inodes: every blob is hashed
    again, and its new stamp cannot be written): the pull still succeeds, slower, not
    wrong, with no temporary file left in the cache."""
    ref, image = five_mib_image
    first = tmp_path / "first.tar"
    assert_ok(pull(ref, "--cache-dir", str(tmp_path / "warm"), "-o", str(first)))
    disk = mounts.tmpfs("cache-disk", "16m")
    cache = disk / "cache"
    _run("cp", "-r", str(tmp_path / "warm"), str(cache))
    fill(disk)
    second = tmp_path / "second.tar"

    watched = pull(ref, "--cache-dir", str(cache), "-o", str(second))

    assert_ok(watched)
    assert second.read_bytes() == first.read_bytes()
    assert ArchiveView.read(second).index_digests == [image.manifest_digest]
    assert temporary_files(cache) == []


@pytest.mark.parametrize("state", ["not-created", "holding-another-image"])
def test_a_read_only_cache_without_the_image_is_a_clean_error(
    five_mib_image: tuple[str, BuiltImage],
    standard_images: StandardImages,
    registry: RegistryServer,
    mounts: Mounts,
    tmp_path: Path,
    state: str,
) -> None:
    """The designed behaviour (cache/store.py): a blob the cache cannot take is an error, not a
    pull that quietly goes on without the cache (--no-cache says that, and the message
    for a cache that cannot be created says so). Exit 1, one line naming the read-only
    file system and the cache, nothing at -o."""
    ref, _ = five_mib_image
    disk = mounts.tmpfs("ro-cache", "16m")
    cache = disk / "cache"
    if state == "holding-another-image":
        hello = standard_images.hello.ref(registry.host)
        assert_ok(pull(hello, "--cache-dir", str(cache), "-o", str(tmp_path / "hello.tar")))
    mounts.read_only(disk)
    out = tmp_path / "out" / "out.tar"
    out.parent.mkdir()

    watched = pull(ref, "--cache-dir", str(cache), "-o", str(out))

    line = assert_clean_error(
        watched, code=EXIT_ERROR, contains=["Read-only file system", str(cache)]
    )
    if state == "not-created":
        assert "--no-cache" in line, line
    assert os.listdir(out.parent) == []


def test_a_read_only_cache_that_holds_the_image_serves_it(
    five_mib_image: tuple[str, BuiltImage], mounts: Mounts, tmp_path: Path
) -> None:
    """A warm cache on a read-only mount: the pull reads from it (its bookkeeping writes
    fail quietly), exits 0 with the same archive, and the cache is untouched."""
    ref, _ = five_mib_image
    disk = mounts.tmpfs("ro-cache", "16m")
    cache = disk / "cache"
    first = tmp_path / "first.tar"
    assert_ok(pull(ref, "--cache-dir", str(cache), "-o", str(first)))
    mounts.read_only(disk)
    before = tree(cache)
    second = tmp_path / "second.tar"

    watched = pull(ref, "--cache-dir", str(cache), "-o", str(second))

    assert_ok(watched)
    assert second.read_bytes() == first.read_bytes()
    assert tree(cache) == before
