"""The benchmark's test images: specifications, offline builds cached on disk, pushes.

Four images, built offline and deterministically (same bytes, same digests every time):

* ``bench/big:1g``   8 layers, about 1 GiB on the wire: 4 x 128 MiB of incompressible
  (pseudo-random) data alternating with 4 layers of log-like text, 576 MiB each
  uncompressed, that gzip (level 6) shrinks about 4.7x to ~122 MiB each. So the wire
  size is ~1 GiB and the unpacked size ~2.8 GiB.
* ``bench/many:60``  60 small layers of 100-500 KB on the wire each (random and text
  layers alternating).
* ``bench/mid:200m`` 4 layers, about 200 MiB on the wire: 2 x 48 MiB random and 2 text
  layers of 240 MiB (~51 MiB compressed).
* ``bench/medium:1`` 4 layers, about 202 MB on the wire, the largest 86 MB: the image of
  issue 11's slow-link figures, where one big layer over one capped connection decides the
  time. Two of its layers are ``bench/mid:200m``'s (same specs, so the same cached files).

Layer files are cached under ``bench/.work/layers`` (a JSON file with the digests beside
each), so a second run neither rebuilds nor, since :class:`~tests.fixtures.images.Pusher`
asks the registry (``HEAD``) first, re-uploads them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, Literal, cast

from tests.fixtures.images import (
    BuiltImage,
    Layer,
    MiB,
    Pusher,
    build_image,
    build_random_layer,
    host_arch,
)

__all__ = [
    "ALL_IMAGES",
    "BIG",
    "MANY",
    "MEDIUM",
    "MID",
    "ImageSpec",
    "LayerSpec",
    "PreparedImage",
    "ensure_image",
    "push_image",
]

#: Bump when the generators change, so cached layers are rebuilt.
GENERATOR_VERSION = 1
TEXT_FILE_SIZE = 16 * MiB
TEXT_GZIP_LEVEL = 6  # gzip's and Docker's default

LayerKind = Literal["random", "text"]


@dataclass(frozen=True)
class LayerSpec:
    """One layer: ``size`` bytes of uncompressed payload of ``kind``, from ``seed``."""

    kind: LayerKind
    size: int
    seed: str

    @property
    def key(self) -> str:
        """File-name stem of the cached layer (changes with anything that changes bytes)."""
        ident = json.dumps([GENERATOR_VERSION, self.kind, self.size, self.seed, TEXT_FILE_SIZE])
        return f"{self.kind}-{self.size}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class ImageSpec:
    key: str  # short name used on the command line: big, many, mid, medium
    repo: str
    tag: str
    description: str
    layers: tuple[LayerSpec, ...]

    @property
    def name(self) -> str:
        return f"{self.repo}:{self.tag}"


def _big() -> ImageSpec:
    layers: list[LayerSpec] = []
    for i in range(4):
        layers.append(LayerSpec("random", 128 * MiB, f"big-random-{i}"))
        layers.append(LayerSpec("text", 576 * MiB, f"big-text-{i}"))
    return ImageSpec(
        "big",
        "bench/big",
        "1g",
        "8 layers: 4 x 128 MiB random + 4 x 576 MiB log text (gzip ~4.7x)",
        tuple(layers),
    )


def _many() -> ImageSpec:
    rng = random.Random("many-sizes")
    layers: list[LayerSpec] = []
    for i in range(60):
        wire = rng.randrange(100_000, 500_001)
        if i % 2 == 0:
            layers.append(LayerSpec("random", wire, f"many-random-{i}"))
        else:  # text compresses ~4.7x: aim at the same wire size
            layers.append(LayerSpec("text", int(wire * 4.7), f"many-text-{i}"))
    return ImageSpec(
        "many",
        "bench/many",
        "60",
        "60 layers of 100-500 KB on the wire (random and log text alternating)",
        tuple(layers),
    )


def _mid() -> ImageSpec:
    layers = (
        LayerSpec("random", 48 * MiB, "mid-random-0"),
        LayerSpec("text", 240 * MiB, "mid-text-0"),
        LayerSpec("random", 48 * MiB, "mid-random-1"),
        LayerSpec("text", 240 * MiB, "mid-text-1"),
    )
    return ImageSpec(
        "mid",
        "bench/mid",
        "200m",
        "4 layers: 2 x 48 MiB random + 2 x 240 MiB log text (gzip ~4.7x)",
        layers,
    )


def _medium() -> ImageSpec:
    # 82 MiB of random data is 86 MB on the wire: at 8 MB/s per connection that layer alone
    # takes ~11 s over one stream, the figure issue 11 starts from.
    layers = (
        LayerSpec("random", 82 * MiB, "medium-random-0"),
        LayerSpec("text", 240 * MiB, "mid-text-0"),
        LayerSpec("random", 48 * MiB, "mid-random-0"),
        LayerSpec("random", 14 * MiB, "medium-random-1"),
    )
    return ImageSpec(
        "medium",
        "bench/medium",
        "1",
        "4 layers: 82 + 48 + 14 MiB random + 240 MiB log text (gzip ~4.7x)",
        layers,
    )


BIG = _big()
MANY = _many()
MID = _mid()
MEDIUM = _medium()
ALL_IMAGES: dict[str, ImageSpec] = {spec.key: spec for spec in (BIG, MANY, MID, MEDIUM)}


# --------------------------------------------------------------------------------------
# Log-like text


_LEVELS = ("INFO",) * 12 + ("DEBUG",) * 6 + ("WARN",) * 2 + ("ERROR",)
_COMPONENTS = (
    "api.handler",
    "db.pool",
    "cache.lru",
    "auth.session",
    "worker.queue",
    "http.client",
    "scheduler",
    "metrics",
)
_PATHS = (
    "/api/v1/items",
    "/api/v1/users",
    "/api/v2/orders",
    "/healthz",
    "/static/app.js",
    "/api/v1/search",
    "/login",
)
_MESSAGES = (
    "request completed",
    "cache miss, loading from backend",
    "retrying after transient error",
    "connection returned to pool",
    "slow query detected",
    "token refreshed",
    "job finished",
)
_METHODS = ("GET",) * 6 + ("POST",) * 2 + ("PUT", "DELETE")
_STATUSES = (200, 200, 200, 201, 204, 304, 404, 500)


@functools.cache
def _line_pool() -> tuple[bytes, ...]:
    """50,000 distinct log lines (~150 bytes each); layers pick from them at random."""
    rng = random.Random("bench-log-lines")
    lines = []
    for i in range(50_000):
        h, m, s, ms = rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(1000)
        lines.append(
            (
                f"2024-03-{1 + i % 28:02d}T{h:02d}:{m:02d}:{s:02d}.{ms:03d}Z "
                f"{rng.choice(_LEVELS)} [{rng.choice(_COMPONENTS)}] {rng.choice(_MESSAGES)} "
                f"method={rng.choice(_METHODS)} path={rng.choice(_PATHS)}/{rng.randrange(100000)} "
                f"status={rng.choice(_STATUSES)} bytes={rng.randrange(50000)} "
                f"dur_ms={rng.random() * 250:.1f} req={rng.getrandbits(32):08x}\n"
            ).encode()
        )
    return tuple(lines)


def _text(rng: random.Random, size: int) -> bytes:
    """``size`` bytes of log lines (the last one cut)."""
    pool = _line_pool()
    parts: list[bytes] = []
    have = 0
    while have < size:
        chunk = b"".join(rng.choices(pool, k=max(64, (size - have) // 140 + 1)))
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)[:size]


class _HashingWriter:
    """Counts and hashes what passes through to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


def _tarinfo(name: str, kind: bytes, *, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_text_layer(path: Path, spec: LayerSpec) -> Layer:
    """Stream a layer of log files (``TEXT_FILE_SIZE`` each) to ``path``, gzip level 6."""
    rng = random.Random(spec.seed)
    top = f"var/log/{spec.seed}"
    members = ["var", "var/log", top]
    with path.open("wb") as raw:
        compressed = _HashingWriter(raw)
        with gzip.GzipFile(
            filename="",
            mode="wb",
            fileobj=cast(BinaryIO, compressed),
            mtime=0,
            compresslevel=TEXT_GZIP_LEVEL,
        ) as gz:
            uncompressed = _HashingWriter(cast(IO[bytes], gz))
            with tarfile.open(
                fileobj=cast(IO[bytes], uncompressed),
                mode="w|",
                format=tarfile.PAX_FORMAT,
                bufsize=MiB,
            ) as tar:
                for name in members:
                    tar.addfile(_tarinfo(name, tarfile.DIRTYPE, mode=0o755))
                left, index = spec.size, 0
                while left > 0:
                    size = min(left, TEXT_FILE_SIZE)
                    name = f"{top}/app-{index:03d}.log"
                    data = _text(rng, size)
                    tar.addfile(
                        _tarinfo(name, tarfile.REGTYPE, mode=0o644, size=size), io.BytesIO(data)
                    )
                    members.append(name)
                    left -= size
                    index += 1
    return Layer(
        digest="sha256:" + compressed.hash.hexdigest(),
        diff_id="sha256:" + uncompressed.hash.hexdigest(),
        size=compressed.size,
        uncompressed_size=uncompressed.size,
        path=path,
        members=tuple(members),
    )


# --------------------------------------------------------------------------------------
# Cached builds


def _meta_path(layer_path: Path) -> Path:
    return layer_path.with_suffix(".json")


def _load_cached(layer_path: Path) -> Layer | None:
    try:
        meta = json.loads(_meta_path(layer_path).read_text())
        if layer_path.stat().st_size != meta["size"]:
            return None
        return Layer(
            digest=meta["digest"],
            diff_id=meta["diff_id"],
            size=meta["size"],
            uncompressed_size=meta["uncompressed_size"],
            path=layer_path,
        )
    except (OSError, ValueError, KeyError):
        return None


def _build_and_cache(spec: LayerSpec, layer_path: Path) -> Layer:
    """Build into a temporary file, rename, then write the metadata (the commit point)."""
    tmp = layer_path.with_name(f".{layer_path.name}.{os.getpid()}.partial")
    try:
        if spec.kind == "random":
            layer = build_random_layer(tmp, spec.size, seed=spec.seed)
        else:
            layer = build_text_layer(tmp, spec)
        tmp.replace(layer_path)
    finally:
        tmp.unlink(missing_ok=True)
    meta = {
        "spec": [spec.kind, spec.size, spec.seed, GENERATOR_VERSION],
        "digest": layer.digest,
        "diff_id": layer.diff_id,
        "size": layer.size,
        "uncompressed_size": layer.uncompressed_size,
    }
    _meta_path(layer_path).write_text(json.dumps(meta, indent=2) + "\n")
    return Layer(
        digest=layer.digest,
        diff_id=layer.diff_id,
        size=layer.size,
        uncompressed_size=layer.uncompressed_size,
        path=layer_path,
    )


@dataclass(frozen=True)
class PreparedImage:
    spec: ImageSpec
    image: BuiltImage

    @property
    def wire_bytes(self) -> int:
        """Manifest + config + compressed layers: what a pull transfers."""
        return self.image.total_size + len(self.image.config) + len(self.image.manifest)

    @property
    def uncompressed_bytes(self) -> int:
        return sum(layer.uncompressed_size for layer in self.image.layers)


def ensure_image(
    spec: ImageSpec,
    layer_dir: Path,
    *,
    jobs: int | None = None,
    log: Callable[[str], None] = print,
) -> PreparedImage:
    """Build (or take from ``layer_dir``) every layer of ``spec``; build config+manifest."""
    layer_dir.mkdir(parents=True, exist_ok=True)
    paths = [layer_dir / f"{ls.key}.tar.gz" for ls in spec.layers]
    layers: list[Layer | None] = [_load_cached(p) for p in paths]
    missing = [i for i, layer in enumerate(layers) if layer is None]
    if missing:
        total = sum(spec.layers[i].size for i in missing)
        log(
            f"building {len(missing)} of {len(spec.layers)} layers of {spec.name} "
            f"({total / MiB:.0f} MiB uncompressed) into {layer_dir} ..."
        )
        workers = max(1, min(jobs or os.cpu_count() or 1, len(missing)))
        if workers == 1:
            for i in missing:
                layers[i] = _build_and_cache(spec.layers[i], paths[i])
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {
                    i: pool.submit(_build_and_cache, spec.layers[i], paths[i]) for i in missing
                }
                for i, future in futures.items():
                    layers[i] = future.result()
    built = [layer for layer in layers if layer is not None]
    assert len(built) == len(spec.layers)
    image = build_image(
        built,
        cmd=["/bin/sh"],
        arch=host_arch(),
        media="oci",
        labels={"org.imgpull.bench.image": spec.name},
    )
    return PreparedImage(spec, image)


def push_image(
    prepared: PreparedImage,
    registry_url: str,
    *,
    ca_cert: Path | None = None,
    log: Callable[[str], None] = print,
) -> tuple[str, int]:
    """Push blobs the registry lacks (HEAD first), then the manifest.

    Returns the manifest digest and how many blob bytes were uploaded (0 when the
    registry storage already had everything).
    """
    pusher = Pusher(registry_url, ca_cert=ca_cert)
    image = prepared.image
    sent = 0
    try:
        missing = [ly for ly in image.layers if not pusher.has_blob(prepared.spec.repo, ly.digest)]
        if missing:
            log(
                f"pushing {len(missing)} layers of {prepared.spec.name} "
                f"({sum(ly.size for ly in missing) / MiB:.0f} MiB) ..."
            )
        for layer in missing:
            with layer.open() as fh:
                if pusher.push_blob(prepared.spec.repo, layer.digest, layer.size, fh):
                    sent += layer.size
        if pusher.push_blob(
            prepared.spec.repo, image.config_digest, len(image.config), image.config
        ):
            sent += len(image.config)
        digest = pusher.push_manifest(
            prepared.spec.repo, prepared.spec.tag, image.manifest, image.media_type
        )
    finally:
        pusher.close()
    return digest, sent
