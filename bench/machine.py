"""The machine line: what the figures were measured on.

CPU model and cores, whether the CPU hashes SHA-256 in hardware (x86 ``sha_ni``, ARM
``sha2`` in /proc/cpuinfo), how fast OpenSSL hashes here (``openssl speed -bytes 1048576
-seconds 1 sha256``, one core), RAM, kernel, the file systems the tools write to and the
registry reads from, and every tool's version.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["describe", "machine_line", "openssl_sha256_speed", "sha256_hardware"]

MB = 1_000_000


def _first_line(argv: Sequence[str], env: dict[str, str] | None = None) -> str:
    try:
        res = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=60, check=False, env=env
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"n/a ({exc})"
    text = (res.stdout or res.stderr).strip()
    return text.splitlines()[0] if text else ""


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields (x86: model name, flags; ARM: Features, CPU part)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                if fields:
                    break
                continue
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model(info: dict[str, str]) -> str:
    for key in ("model name", "Model", "Hardware", "cpu model"):
        if info.get(key):
            return info[key]
    return platform.processor() or platform.machine()


def sha256_hardware(info: dict[str, str]) -> str | None:
    """The cpuinfo flag that says SHA-256 runs in hardware, or None."""
    flags = set((info.get("flags", "") + " " + info.get("Features", "")).split())
    for flag in ("sha_ni", "sha2"):  # x86 SHA extensions; ARMv8 crypto extension
        if flag in flags:
            return flag
    return None


def openssl_sha256_speed(openssl: str = "openssl") -> float | None:
    """Bytes per second OpenSSL hashes SHA-256 in 1 MiB blocks on one core (1 s)."""
    out = subprocess.run(
        [openssl, "speed", "-bytes", "1048576", "-seconds", "1", "-mr", "sha256"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    # machine-readable result: "+F:<n>:sha256:<bytes per second>"
    match = re.search(r"^\+F:\d+:sha256:([0-9.]+)", out, re.MULTILINE)
    return float(match[1]) if match else None


def filesystem(path: Path) -> str:
    """File system type of the mount holding ``path`` (ext4, xfs, btrfs, tmpfs, ...)."""
    fs = _first_line(["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)])
    return fs or _first_line(["stat", "-f", "-c", "%T", str(path)])


def _git(repo: Path, *args: str) -> str:
    # GIT_OPTIONAL_LOCKS=0: `git status` must not refresh (write) the shared index.
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    return _first_line(["git", "-C", str(repo), *args], env=env)


def describe(
    repo: Path,
    work_dir: Path,
    storage: Path,
    docker: str,
    python: Path,
    imgpull_src: Path | None = None,
) -> dict[str, Any]:
    """Everything the machine line shows, as a dict (it also goes into the JSON)."""
    info = _cpuinfo()
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = _git(repo, "rev-parse", "--short", "HEAD")
    dirty = _git(repo, "status", "--porcelain", "--", "src")
    speed = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        speed = openssl_sha256_speed()
    curl = _first_line(["curl", "--version"]).split()
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(info),
        "cores": len(os.sched_getaffinity(0)),
        "sha256_hw_flag": sha256_hardware(info),
        "openssl_sha256_bytes_per_s": speed,
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "work_dir": str(work_dir),
        "work_fs": filesystem(work_dir),
        "storage_fs": filesystem(storage),
        "imgpull": f"from {imgpull_src}"
        if imgpull_src
        else f"git {commit}{' (src/ modified)' if dirty else ''}",
        "python": _first_line([str(python), "--version"]).removeprefix("Python "),
        "skopeo": _first_line(["skopeo", "--version"]).removeprefix("skopeo version "),
        "docker": docker,
        "registry": _first_line(["docker-registry", "--version"]).split()[-1],
        "curl": curl[1] if len(curl) > 1 else "n/a",
        "openssl": " ".join(_first_line(["openssl", "version"]).split()[:2]),
    }


def machine_line(m: dict[str, Any]) -> str:
    """One line of Markdown: the report's first fact."""
    hw = (
        f"SHA-256 in hardware (`{m['sha256_hw_flag']}`)"
        if m["sha256_hw_flag"]
        else "no SHA-256 instructions"
    )
    speed = m["openssl_sha256_bytes_per_s"]
    speed_text = f"OpenSSL SHA-256 {speed / MB:,.0f} MB/s on one core" if speed else "n/a"
    return (
        f"**Machine**: {m['cpu_model']}, {m['cores']} cores, {hw}, {speed_text} "
        f"(`openssl speed -bytes 1048576 -seconds 1 sha256`), {m['ram_gib']} GiB RAM, "
        f"Linux {m['kernel']}, outputs on {m['work_fs']} ({m['work_dir']}), registry "
        f"storage on {m['storage_fs']}; imgpull {m['imgpull']}, Python {m['python']}, "
        f"skopeo {m['skopeo']}, {m['docker']}, distribution {m['registry']}, "
        f"curl {m['curl']}, {m['openssl']}"
    )
