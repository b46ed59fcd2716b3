"""The demo image, built offline: Debian's static busybox and a command that prints one line.

Written as an OCI image layout directory (``oci-layout``, ``index.json``,
``blobs/sha256/...``), which ``imgpull push`` reads like any other archive. The layer tar
is deterministic (sorted entries, mtime 0, root-owned, gzip without a name or time), so
the image has the same digest on every machine of the same architecture.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpull.errors import ImgpullError
from imgpull.model import Platform

BUSYBOX = Path("/bin/busybox")
DEMO_REPOSITORY = "demo/hello"
DEMO_TAG = "1"
#: What the demo container prints.
DEMO_OUTPUT = "hello from the imgpull demo"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_CREATED = "2024-01-01T00:00:00Z"
_PT_INTERP = 3  # an ELF program header naming the dynamic loader


class DemoError(ImgpullError):
    """Something the demo needs is missing; ``hint`` says what to install."""


@dataclass(frozen=True, slots=True)
class DemoImage:
    manifest_digest: str
    platform: Platform


def is_static_elf(data: bytes) -> bool:
    """True for an ELF executable without a PT_INTERP header (so no libc is needed)."""
    if data[:4] != b"\x7fELF" or data[4] not in (1, 2) or data[5] not in (1, 2):
        return False
    order = "<" if data[5] == 1 else ">"
    if data[4] == 2:  # 64-bit
        (phoff,) = struct.unpack_from(order + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x36)
    else:
        (phoff,) = struct.unpack_from(order + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(order + "HH", data, 0x2A)
    types = (struct.unpack_from(order + "I", data, phoff + i * phentsize)[0] for i in range(phnum))
    return _PT_INTERP not in types


def read_static_busybox(path: Path = BUSYBOX) -> bytes:
    """The busybox binary, which must be static: the image holds nothing else."""
    install = "apt-get install busybox-static"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DemoError(f"{path} is missing", f"install it: {install}") from None
    except OSError as exc:
        raise DemoError(f"cannot read {path}: {exc.strerror}", f"install it: {install}") from exc
    try:
        static = is_static_elf(data)
    except struct.error:  # a truncated header
        static = False
    if not static:
        raise DemoError(
            f"{path} is not a static executable (Debian's busybox package is dynamic)",
            f"the demo image holds busybox alone: {install}",
        )
    return data


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _entry(name: str, kind: bytes, mode: int, *, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _layer_tar(busybox: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_entry("bin", tarfile.DIRTYPE, 0o755))
        tar.addfile(
            _entry("bin/busybox", tarfile.REGTYPE, 0o755, size=len(busybox)), io.BytesIO(busybox)
        )
        tar.addfile(_entry("bin/sh", tarfile.SYMTYPE, 0o777, link="busybox"))
    return raw.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as stream:
        stream.write(data)
    return out.getvalue()


def _config(diff_id: str, platform: Platform) -> dict[str, Any]:
    cmd = ["/bin/busybox", "echo", DEMO_OUTPUT]
    config: dict[str, Any] = {"architecture": platform.architecture, "os": platform.os}
    if platform.variant:
        config["variant"] = platform.variant
    config.update(
        created=_CREATED,
        config={"Env": ["PATH=/bin"], "Cmd": cmd, "WorkingDir": "/"},
        rootfs={"type": "layers", "diff_ids": [diff_id]},
        history=[
            {"created": _CREATED, "created_by": "imgpull demo: /bin/busybox from busybox-static"}
        ],
    )
    return config


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _sha256(data), "size": len(data)}


def write_layout(directory: Path, busybox: bytes, platform: Platform) -> DemoImage:
    """Write the demo image as an OCI image layout in ``directory`` (created)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    uncompressed = _layer_tar(busybox)
    layer = _gzip(uncompressed)
    config = json.dumps(_config(_sha256(uncompressed), platform), indent=2).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor(OCI_CONFIG, config),
            "layers": [_descriptor(OCI_LAYER, layer)],
        },
        indent=2,
    ).encode()
    for blob in (layer, config, manifest):
        (blobs / _sha256(blob).removeprefix("sha256:")).write_bytes(blob)
    index = {"schemaVersion": 2, "manifests": [_descriptor(OCI_MANIFEST, manifest)]}
    (directory / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}\n')
    return DemoImage(_sha256(manifest), platform)
