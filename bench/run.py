#!/usr/bin/env python3
"""Benchmark imgpull against skopeo and docker pull on local registries (issue 4).

    .venv/bin/python bench/run.py [--quick] [--rounds N] [--out bench/results/latest.md]

Starts Debian's ``docker-registry`` twice over one storage directory (plain HTTP and TLS
with a test CA) on 127.0.0.1, builds and pushes the test images offline (cached in
``bench/.work``), then runs every tool on every image and transport, ``--rounds`` times,
round-robin, and writes a Markdown table (plus the raw runs as JSON next to it).
See bench/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.images import (  # noqa: E402
    ALL_IMAGES,
    PreparedImage,
    ensure_image,
    push_image,
)

from tests.fixtures.certs import make_ca  # noqa: E402
from tests.fixtures.loaders import (  # noqa: E402
    DockerDaemon,
    LoaderError,
    make_workdir,
    remove_workdir,
)
from tests.fixtures.registry import RegistryServer, start_registry  # noqa: E402

BENCH_DIR = REPO_ROOT / "bench"
WORK_DIR = BENCH_DIR / ".work"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
DEFAULT_OUT = BENCH_DIR / "results" / "latest.md"
TRANSPORTS = ("http", "tls")
PERMISSIVE_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}
CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1_000_000


def log(msg: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Running one measured child


@dataclass
class Measurement:
    wall_s: float
    user_s: float
    sys_s: float
    maxrss_kb: int
    returncode: int
    timed_out: bool


_current_child: subprocess.Popen[bytes] | None = None


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


#: GNU time (Debian package ``time``): reports the peak RSS of the measured program alone.
TIME_BIN = shutil.which("time", path="/usr/bin:/bin") or None


def run_measured(
    argv: Sequence[str], env: dict[str, str], log_path: Path, timeout: float
) -> Measurement:
    """Run ``argv`` (its own session, output to ``log_path``) and measure it.

    Wall time is ``time.perf_counter`` around spawn..reap; user/sys CPU come from
    ``os.wait4``, so they cover the child and every descendant it waited for. Peak RSS
    comes from GNU ``time -f %M`` wrapped around the command: ``wait4``'s ``ru_maxrss`` is
    useless here because Linux starts a freshly exec'd child's peak at the RSS of the
    process that forked it (this script, ~45 MiB). Without GNU time, ``ru_maxrss`` is used
    (a floor of this script's own peak RSS).
    """
    global _current_child
    timed_out = threading.Event()
    rss_path = log_path.with_suffix(".rss")
    rss_path.unlink(missing_ok=True)
    full = [TIME_BIN, "-o", str(rss_path), "-f", "%M", *argv] if TIME_BIN else list(argv)
    with log_path.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    _current_child = proc

    def on_timeout() -> None:
        timed_out.set()
        _kill_group(proc)

    timer = threading.Timer(timeout, on_timeout)
    timer.daemon = True
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        _kill_group(proc)
        with contextlib.suppress(ChildProcessError):
            os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise
    finally:
        timer.cancel()
        _current_child = None
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss
    if TIME_BIN:
        try:
            maxrss = int(rss_path.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            maxrss = usage.ru_maxrss
        rss_path.unlink(missing_ok=True)
    return Measurement(
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        maxrss_kb=maxrss,
        returncode=proc.returncode,
        timed_out=timed_out.is_set(),
    )


def tail(path: Path, limit: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text if len(text) <= limit else "..." + text[-limit:]


def disk_bytes(path: Path) -> int:
    """Apparent size of a file or of every file below a directory."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def quiet_disk() -> None:
    """Flush dirty pages left by the previous run so they do not slow the next one."""
    os.sync()


# --------------------------------------------------------------------------------------
# The environment the tools run in


@dataclass
class Transport:
    name: str
    server: RegistryServer
    ca_cert: Path | None = None
    cert_dir: Path | None = None  # a directory holding only ca.crt (skopeo --src-cert-dir)


@dataclass
class Case:
    image: PreparedImage
    transport: Transport

    @property
    def ref(self) -> str:
        return self.transport.server.ref(self.image.spec.repo, self.image.spec.tag)

    @property
    def label(self) -> str:
        return f"{self.image.spec.name} over {self.transport.name}"


@dataclass
class RunContext:
    case: Case
    rundir: Path
    round: int


@dataclass
class Env:
    """Isolated configuration for every child: no user config, proxies or certs.d."""

    root: Path
    base: dict[str, str] = field(default_factory=dict)
    skopeo_policy: Path = Path()

    @classmethod
    def create(cls, root: Path) -> Env:
        for sub in ("xdg-config", "xdg-cache", "docker-config", "certs.d", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "registries.conf").write_text("# no search registries, no mirrors\n")
        (root / "imgpull.toml").write_text("# empty: defaults only\n")
        (root / "daemon.json").write_text("{}\n")
        (root / "docker-config" / "config.json").write_text("{}\n")
        policy = root / "policy.json"
        policy.write_text(json.dumps(PERMISSIVE_POLICY) + "\n")
        drop = {"IMGPULL_CACHE_DIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REGISTRY_AUTH_FILE"}
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in drop and not k.lower().endswith("_proxy") and not k.startswith("DOCKER_")
        }
        base.update(
            XDG_CONFIG_HOME=str(root / "xdg-config"),
            XDG_CACHE_HOME=str(root / "xdg-cache"),
            DOCKER_CONFIG=str(root / "docker-config"),
            CONTAINERS_REGISTRIES_CONF=str(root / "registries.conf"),
            IMGPULL_CONFIG=str(root / "imgpull.toml"),
            IMGPULL_DAEMON_JSON=str(root / "daemon.json"),
            IMGPULL_CERTS_DIR=str(root / "certs.d"),
            TMPDIR=str(root / "tmp"),
        )
        return cls(root=root, base=base, skopeo_policy=policy)


# --------------------------------------------------------------------------------------
# Tools


class Tool:
    key = ""
    label = ""

    def unavailable(self, case: Case) -> str | None:
        """Why this tool cannot run ``case`` (None: it can)."""
        return None

    def before(self, ctx: RunContext) -> None:
        """Untimed preparation."""

    def command(self, ctx: RunContext) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def output(self, ctx: RunContext) -> Path | None:
        return ctx.rundir / "out"

    def after(self, ctx: RunContext, m: Measurement) -> dict[str, Any]:
        """Untimed: extra figures for the record (and cleanup)."""
        return {}

    def prime(self, case: Case, env: Env, logdir: Path) -> None:
        """Untimed, once before the rounds."""


class Imgpull(Tool):
    def __init__(self, mode: str, env: Env, jobs: int | None) -> None:
        self.mode = mode  # cold | warm | nocache
        self.key = f"imgpull-{mode}"
        self.label = {
            "cold": "imgpull cold",
            "warm": "imgpull warm",
            "nocache": "imgpull --no-cache",
        }[mode]
        self.env = env
        self.jobs = jobs
        self.warm_caches: dict[str, Path] = {}

    def _argv(self, case: Case, out: Path, cache: Path | None) -> list[str]:
        argv = [str(VENV_PYTHON), "-m", "imgpull", "pull", case.ref, "-o", str(out), "-q"]
        argv += ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
        if case.transport.ca_cert is not None:
            argv += ["--ca-cert", str(case.transport.ca_cert)]
        if self.jobs is not None:
            argv += ["-j", str(self.jobs)]
        return argv

    def output(self, ctx: RunContext) -> Path:
        return ctx.rundir / "out.tar"

    def command(self, ctx: RunContext) -> tuple[list[str], dict[str, str]]:
        cache: Path | None
        if self.mode == "cold":
            cache = ctx.rundir / "cache"
        elif self.mode == "warm":
            cache = self.warm_caches[ctx.case.label]
        else:
            cache = None
        return self._argv(ctx.case, self.output(ctx), cache), self.env.base

    def prime(self, case: Case, env: Env, logdir: Path) -> None:
        if self.mode != "warm":
            return
        cache = env.root / "warm-caches" / f"{case.image.spec.key}-{case.transport.name}"
        cache.mkdir(parents=True, exist_ok=True)
        out = logdir / f"prime-{case.image.spec.key}-{case.transport.name}.tar"
        log_path = logdir / f"prime-{case.image.spec.key}-{case.transport.name}.log"
        m = run_measured(self._argv(case, out, cache), env.base, log_path, 3600)
        out.unlink(missing_ok=True)
        if m.returncode != 0:
            raise RuntimeError(f"priming the imgpull cache failed: {tail(log_path)}")
        self.warm_caches[case.label] = cache
        log(f"  primed warm cache for {case.label} in {m.wall_s:.1f}s")


class Skopeo(Tool):
    DESTS = {
        "docker-archive": "skopeo → docker-archive",
        "oci": "skopeo → oci dir",
        "oci-archive": "skopeo → oci-archive",
    }

    def __init__(self, dest: str, env: Env, binary: str) -> None:
        self.dest = dest
        self.key = f"skopeo-{dest}"
        self.label = self.DESTS[dest]
        self.env = env
        self.binary = binary

    def output(self, ctx: RunContext) -> Path:
        return ctx.rundir / ("oci" if self.dest == "oci" else "out.tar")

    def command(self, ctx: RunContext) -> tuple[list[str], dict[str, str]]:
        case = ctx.case
        spec = case.image.spec
        out = self.output(ctx)
        if self.dest == "docker-archive":
            dest = f"docker-archive:{out}:{spec.repo}:{spec.tag}"
        else:
            dest = f"{self.dest}:{out}:{spec.tag}"
        if case.transport.cert_dir is not None:
            src_flags = ["--src-cert-dir", str(case.transport.cert_dir)]
        else:
            src_flags = ["--src-tls-verify=false"]
        argv = [
            self.binary,
            "--policy",
            str(self.env.skopeo_policy),
            "copy",
            "--quiet",
            *src_flags,
            f"docker://{case.ref}",
            dest,
        ]
        return argv, self.env.base


def _proc_cpu_ticks(pid: int) -> int:
    """utime+stime+cutime+cstime of ``pid`` (its own work and its reaped children's)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def _proc_hwm_kb(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def _reset_hwm(pid: int) -> bool:
    """Reset the peak RSS (VmHWM) of ``pid`` (Linux 4.0+: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class DockerPull(Tool):
    key = "docker"
    label = "docker pull"

    def __init__(self, daemon: DockerDaemon | None, reason: str | None) -> None:
        self.daemon = daemon
        self.reason = reason
        self._cpu0 = 0
        self._hwm_reset = False

    def unavailable(self, case: Case) -> str | None:
        return self.reason if self.daemon is None else None

    @property
    def pid(self) -> int:
        assert self.daemon is not None and self.daemon.proc is not None
        return self.daemon.proc.pid

    def clean(self) -> None:
        assert self.daemon is not None
        d = self.daemon
        images = d.docker("images", "-aq").stdout.split()
        if images:
            d.docker("rmi", "-f", *sorted(set(images)), check=False)
        d.docker("image", "prune", "-af", check=False)
        left = d.docker("images", "-aq").stdout.split()
        if left:
            raise LoaderError(f"docker images left after cleaning: {left}")

    def before(self, ctx: RunContext) -> None:
        self.clean()
        quiet_disk()
        self._hwm_reset = _reset_hwm(self.pid)
        self._cpu0 = _proc_cpu_ticks(self.pid)

    def output(self, ctx: RunContext) -> None:
        return None

    def command(self, ctx: RunContext) -> tuple[list[str], dict[str, str]]:
        assert self.daemon is not None
        d = self.daemon
        return [d.docker_cli, "--host", d.host, "pull", "-q", ctx.case.ref], d.env

    def after(self, ctx: RunContext, m: Measurement) -> dict[str, Any]:
        assert self.daemon is not None
        daemon_cpu = (_proc_cpu_ticks(self.pid) - self._cpu0) / CLK_TCK
        hwm = _proc_hwm_kb(self.pid)
        extra: dict[str, Any] = {
            "cli_cpu_s": m.user_s + m.sys_s,
            "cli_maxrss_kb": m.maxrss_kb,
            "dockerd_cpu_s": daemon_cpu,
            "dockerd_peak_rss_kb": hwm,
            "dockerd_peak_rss_reset": self._hwm_reset,
        }
        if m.returncode == 0:
            res = self.daemon.docker(
                "image", "inspect", "--format", "{{.Size}}", ctx.case.ref, check=False
            )
            with contextlib.suppress(ValueError):
                extra["image_size"] = int(res.stdout.strip())
        self.clean()
        return extra


# --------------------------------------------------------------------------------------
# Records and statistics


@dataclass
class RunRecord:
    image: str
    transport: str
    tool: str
    round: int
    order: int
    started_at: str
    loadavg_1m: float
    ok: bool
    wall_s: float | None = None
    cpu_s: float | None = None
    user_s: float | None = None
    sys_s: float | None = None
    peak_rss_kb: int | None = None
    output_bytes: int | None = None
    returncode: int | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_one(tool: Tool, case: Case, rnd: int, order: int, tmp: Path, timeout: float) -> RunRecord:
    rundir = Path(tempfile.mkdtemp(prefix=f"{tool.key}-", dir=tmp))
    ctx = RunContext(case=case, rundir=rundir, round=rnd)
    record = RunRecord(
        image=case.image.spec.name,
        transport=case.transport.name,
        tool=tool.key,
        round=rnd,
        order=order,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        loadavg_1m=os.getloadavg()[0],
        ok=False,
    )
    log_path = tmp / f"{tool.key}-{case.image.spec.key}-{case.transport.name}-r{rnd}.log"
    try:
        tool.before(ctx)
        argv, env = tool.command(ctx)
        quiet_disk()
        m = run_measured(argv, env, log_path, timeout)
        record.returncode = m.returncode
        record.wall_s = m.wall_s
        record.user_s, record.sys_s = m.user_s, m.sys_s
        record.cpu_s = m.user_s + m.sys_s
        record.peak_rss_kb = m.maxrss_kb
        out = tool.output(ctx)
        if out is not None and out.exists():
            record.output_bytes = disk_bytes(out)
        record.extra = tool.after(ctx, m)
        if isinstance(tool, DockerPull):
            record.cpu_s = record.extra["cli_cpu_s"] + record.extra["dockerd_cpu_s"]
            hwm = record.extra.get("dockerd_peak_rss_kb")
            if hwm is not None and record.extra.get("dockerd_peak_rss_reset"):
                record.peak_rss_kb = hwm
            record.output_bytes = record.extra.get("image_size")
        if m.timed_out:
            record.error = f"timed out after {timeout:.0f}s"
        elif m.returncode != 0:
            record.error = f"exit {m.returncode}: {tail(log_path)}"
        elif out is not None and not out.exists():
            record.error = f"no output at {out}"
        else:
            record.ok = True
    except (LoaderError, OSError, RuntimeError, subprocess.SubprocessError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:2000]
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    return record


@dataclass
class Summary:
    runs: int
    ok: int
    wall_s: float | None
    cpu_s: float | None
    peak_rss_kb: int | None
    output_bytes: int | None
    first_error: str | None


def summarize(records: Sequence[RunRecord]) -> Summary:
    good = [r for r in records if r.ok and r.wall_s is not None]
    errors = [r.error for r in records if r.error]
    cpus = [r.cpu_s for r in good if r.cpu_s is not None]
    rss = [r.peak_rss_kb for r in good if r.peak_rss_kb is not None]
    outs = [r.output_bytes for r in good if r.output_bytes is not None]
    return Summary(
        runs=len(records),
        ok=len(good),
        wall_s=statistics.median(r.wall_s for r in good if r.wall_s is not None) if good else None,
        cpu_s=statistics.median(cpus) if cpus else None,
        peak_rss_kb=max(rss) if rss else None,
        output_bytes=max(outs) if outs else None,
        first_error=errors[0] if errors else None,
    )


# --------------------------------------------------------------------------------------
# Machine description


def _cmd_output(argv: Sequence[str]) -> str:
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"n/a ({exc})"
    return (res.stdout or res.stderr).strip().splitlines()[0] if (res.stdout or res.stderr) else ""


def machine_info(daemon: DockerDaemon | None, docker_note: str | None) -> dict[str, Any]:
    cpu_model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    commit = _cmd_output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _cmd_output(["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--", "src"])
    info: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "imgpull": f"git {commit}{' (src/ modified)' if dirty else ''}",
        "skopeo": _cmd_output(["skopeo", "--version"]),
        "registry": _cmd_output(["docker-registry", "--version"]),
        "filesystem": _cmd_output(["stat", "-f", "-c", "%T", tempfile.gettempdir()]),
    }
    if daemon is not None:
        try:
            dinfo = daemon.info()
            client = daemon.docker("version", "--format", "{{.Client.Version}}").stdout.strip()
            info["docker"] = (
                f"dockerd {dinfo.get('ServerVersion')} ({dinfo.get('Driver')} storage), "
                f"CLI {client}"
            )
        except LoaderError as exc:
            info["docker"] = f"n/a ({exc})"
    else:
        info["docker"] = f"n/a ({docker_note})"
    return info


# --------------------------------------------------------------------------------------
# Report


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}x"


def render_markdown(
    meta: dict[str, Any],
    images: Sequence[PreparedImage],
    tools: Sequence[Tool],
    records: Sequence[RunRecord],
    unavailable: dict[tuple[str, str, str], str],
) -> str:
    machine = meta["machine"]
    lines = [
        "# imgpull benchmark",
        "",
        f"- **Date**: {machine['date']}  (total runtime {meta['runtime_s'] / 60:.1f} min"
        + (", **interrupted**" if meta.get("interrupted") else "")
        + ")",
        f"- **Command**: `{meta['command']}`",
        f"- **Machine**: {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['ram_gib']} GiB RAM, Linux {machine['kernel']}, "
        f"temp filesystem {machine['filesystem']}",
        f"- **Load average (1 min)**: {meta['loadavg_start']:.2f} at start, "
        f"{meta['loadavg_end']:.2f} at end, median {meta['loadavg_runs_median']:.2f} at the "
        "start of the measured runs (this script's own runs count for about 1-2)",
        f"- **Versions**: imgpull {machine['imgpull']}, Python {machine['python']}, "
        f"{machine['skopeo']}, {machine['docker']}, registry: {machine['registry']}",
        f"- **Rounds**: {meta['rounds']} per case, tools round-robin (start rotated each round)"
        f"; peak RSS measured with {meta['rss_method']}",
        "",
        "Wall and CPU are medians over the successful rounds; peak RSS is the maximum; "
        "MB/s is the image's wire size (10^6 bytes) ÷ median wall; 'x cold' is the ratio of "
        "the row's median to imgpull cold's median on the same image and transport "
        "(below 1 is faster / cheaper than imgpull cold). docker pull: CPU is the CLI's "
        "plus dockerd's (which does the work), peak RSS is dockerd's, and its work "
        "includes unpacking layers into its store. See bench/README.md.",
        "",
    ]
    header = (
        "| transport | tool | wall s | CPU s | peak RSS MiB | MB/s | wall x cold | CPU x cold "
        "| output MB | ok |"
    )
    sep = "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    errors: list[str] = []
    for prepared in images:
        spec = prepared.spec
        lines.append(
            f"## {spec.name}: {prepared.wire_bytes / MB:,.0f} MB on the wire "
            f"({len(spec.layers)} layers, {prepared.uncompressed_bytes / MB:,.0f} MB unpacked)"
        )
        lines += ["", f"{spec.description}.", "", header, sep]
        for transport in TRANSPORTS:
            sums: dict[str, Summary] = {}
            for tool in tools:
                sums[tool.key] = summarize(
                    [
                        r
                        for r in records
                        if r.image == spec.name and r.transport == transport and r.tool == tool.key
                    ]
                )
            base = sums.get("imgpull-cold")
            for tool in tools:
                why = unavailable.get((spec.name, transport, tool.key))
                s = sums[tool.key]
                if why is not None or s.runs == 0:
                    lines.append(
                        f"| {transport} | {tool.label} | n/a | n/a | n/a | n/a | n/a | n/a "
                        f"| n/a | 0/0 |"
                    )
                    if why:
                        errors.append(f"{spec.name} {transport} {tool.label}: {why}")
                    continue
                mbps = prepared.wire_bytes / MB / s.wall_s if s.wall_s else None
                rss = s.peak_rss_kb / 1024 if s.peak_rss_kb is not None else None
                out_mb = s.output_bytes / MB if s.output_bytes is not None else None
                dagger = "†" if isinstance(tool, DockerPull) else ""
                lines.append(
                    f"| {transport} | {tool.label} | {_fmt(s.wall_s)} | {_fmt(s.cpu_s)}{dagger} "
                    f"| {_fmt(rss, 0)}{dagger} | {_fmt(mbps, 0)} "
                    f"| {_ratio(s.wall_s, base.wall_s if base else None)} "
                    f"| {_ratio(s.cpu_s, base.cpu_s if base else None)} "
                    f"| {_fmt(out_mb, 0)}{'‡' if isinstance(tool, DockerPull) else ''} "
                    f"| {s.ok}/{s.runs} |"
                )
                if s.first_error:
                    errors.append(f"{spec.name} {transport} {tool.label}: {s.first_error}")
        lines.append("")
    lines += [
        "† dockerd's CPU (plus the docker CLI's) and dockerd's peak RSS (reset before each "
        "pull), since the daemon does the pulling.  ‡ for docker pull: the unpacked image "
        "size docker reports (`docker image inspect .Size`), not an archive.",
        "",
        "Output MB: size of the archive (or OCI directory) the tool wrote. skopeo's "
        "docker-archive holds uncompressed layers (c/image decompresses for that format); "
        "imgpull and skopeo's OCI outputs keep the registry's compressed blobs.",
        "",
    ]
    if errors:
        lines += ["## Failures and unavailable tools", ""]
        for err in errors:
            one_line = " ".join(err.split())
            lines.append(f"- {one_line[:600]}")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark imgpull against skopeo and docker pull on local registries.",
    )
    parser.add_argument("--quick", action="store_true", help="1 round, only bench/mid:200m")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per case (default 5)")
    parser.add_argument(
        "--images",
        default=None,
        help=f"comma-separated subset of {','.join(ALL_IMAGES)} (default all; --quick: mid)",
    )
    tool_keys = [
        "imgpull-cold",
        "imgpull-warm",
        "imgpull-nocache",
        "skopeo-docker-archive",
        "skopeo-oci",
        "skopeo-oci-archive",
        "docker",
    ]
    default_tools = [k for k in tool_keys if k != "imgpull-nocache"]
    parser.add_argument(
        "--tools",
        default=",".join(default_tools),
        help=f"comma-separated tools from {','.join(tool_keys)} (default: all but imgpull-nocache)",
    )
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="http,tls")
    parser.add_argument("--jobs", type=int, default=None, help="imgpull -j (default: its own)")
    parser.add_argument("--no-docker", action="store_true", help="do not start dockerd")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before a run is killed"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report path")
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.images is None:
        args.images = "mid" if args.quick else "big,many,mid"
    args.image_keys = [k.strip() for k in args.images.split(",") if k.strip()]
    for key in args.image_keys:
        if key not in ALL_IMAGES:
            parser.error(f"unknown image {key!r} (choose from {', '.join(ALL_IMAGES)})")
    args.tool_keys = [k.strip() for k in args.tools.split(",") if k.strip()]
    for key in args.tool_keys:
        if key not in tool_keys:
            parser.error(f"unknown tool {key!r} (choose from {', '.join(tool_keys)})")
    args.transport_names = [t.strip() for t in args.transports.split(",") if t.strip()]
    for name in args.transport_names:
        if name not in TRANSPORTS:
            parser.error(f"unknown transport {name!r}")
    return args


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGHUP unless ignored, e.g. under nohup) stop the run like Ctrl-C."""
    old: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        current = signal.getsignal(sig)
        if current == signal.SIG_IGN:
            continue
        old[sig] = current
        signal.signal(sig, _raise_interrupt)
    try:
        yield
    finally:
        for restored, handler in old.items():
            signal.signal(restored, handler)


def write_reports(out: Path, markdown: str, raw: dict[str, Any]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(raw, indent=2) + "\n")
    return json_path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    loadavg_start = os.getloadavg()[0]
    if not VENV_PYTHON.exists():
        log(f"{VENV_PYTHON} not found: create the venv first (see README)")
        return 2
    skopeo_bin = shutil.which("skopeo")
    cleanups: list[Callable[[], None]] = []
    records: list[RunRecord] = []
    unavailable: dict[tuple[str, str, str], str] = {}
    prepared: list[PreparedImage] = []
    tools: list[Tool] = []
    daemon: DockerDaemon | None = None
    docker_note: str | None = "not requested" if args.no_docker else None
    interrupted = False
    machine: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="imgpull-bench-", dir="/tmp"))
    cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    try:
        with signals_as_interrupt():
            env = Env.create(tmp / "env")
            # 1. images, built offline and cached
            for key in args.image_keys:
                prepared.append(ensure_image(ALL_IMAGES[key], WORK_DIR / "layers", log=log))
            # 2. registries: plain HTTP and TLS over one storage
            ca = make_ca(tmp / "ca")
            cert_dir = tmp / "skopeo-certs"
            cert_dir.mkdir()
            shutil.copy(ca.ca_cert, cert_dir / "ca.crt")
            storage = WORK_DIR / "registry"
            http_server = start_registry(tmp / "reg-http", storage=storage, name="bench-http")
            cleanups.append(http_server.stop)
            tls_server = start_registry(tmp / "reg-tls", storage=storage, tls=ca, name="bench-tls")
            cleanups.append(tls_server.stop)
            transports = {
                "http": Transport("http", http_server),
                "tls": Transport("tls", tls_server, ca_cert=ca.ca_cert, cert_dir=cert_dir),
            }
            log(f"registries: {http_server.url} and {tls_server.url} on {storage}")
            for image in prepared:
                t0 = time.perf_counter()
                digest, sent = push_image(image, http_server.url, log=log)
                log(
                    f"{image.spec.name}: {digest[:19]}, {image.wire_bytes / MB:,.0f} MB wire, "
                    + (
                        f"pushed {sent / MB:,.0f} MB in {time.perf_counter() - t0:.1f}s"
                        if sent
                        else "already in the registry"
                    )
                )
            # 3. dockerd (optional)
            if "docker" in args.tool_keys and not args.no_docker:
                docker_dir = make_workdir("imgpull-bench-docker-")
                cleanups.append(lambda: remove_workdir(docker_dir))
                for driver in ("overlay2", "vfs"):
                    candidate = DockerDaemon(
                        docker_dir / driver, extra_args=[f"--storage-driver={driver}"]
                    )
                    try:
                        daemon = candidate.start()
                    except LoaderError as exc:
                        docker_note = f"dockerd did not start: {str(exc).splitlines()[0]}"
                        log(f"dockerd ({driver}) did not start: {exc}")
                        continue
                    cleanups.append(candidate.stop)
                    log(f"dockerd up ({driver}) in {candidate.startup_seconds:.1f}s")
                    break
            # 4. tools
            for key in args.tool_keys:
                if key.startswith("imgpull-"):
                    tools.append(Imgpull(key.removeprefix("imgpull-"), env, args.jobs))
                elif key.startswith("skopeo-"):
                    if skopeo_bin is None:
                        log("skopeo not found: skopeo rows are n/a")
                        continue
                    tools.append(Skopeo(key.removeprefix("skopeo-"), env, skopeo_bin))
                elif key == "docker":
                    tools.append(DockerPull(daemon, docker_note))
            machine = machine_info(daemon, docker_note)
            cases = [
                Case(image, transports[name]) for image in prepared for name in args.transport_names
            ]
            for case in cases:
                for tool in tools:
                    why = tool.unavailable(case)
                    if why is not None:
                        unavailable[(case.image.spec.name, case.transport.name, tool.key)] = why
            # 5. prime warm caches (also brings the registry's blobs into the page cache)
            log("priming warm caches ...")
            for case in cases:
                for tool in tools:
                    tool.prime(case, env, tmp)
            # 6. rounds
            total = args.rounds * sum(
                1
                for c in cases
                for t in tools
                if (c.image.spec.name, c.transport.name, t.key) not in unavailable
            )
            done = 0
            for rnd in range(1, args.rounds + 1):
                for case in cases:
                    shift = (rnd - 1) % len(tools) if tools else 0
                    order = tools[shift:] + tools[:shift]
                    for position, tool in enumerate(order):
                        if (case.image.spec.name, case.transport.name, tool.key) in unavailable:
                            continue
                        rec = run_one(tool, case, rnd, position, tmp, args.timeout)
                        records.append(rec)
                        done += 1
                        status = (
                            f"{rec.wall_s:.2f}s wall, {rec.cpu_s or 0:.2f}s CPU, "
                            f"{(rec.peak_rss_kb or 0) / 1024:.0f} MiB"
                            if rec.ok
                            else f"FAILED: {' '.join((rec.error or '').split())[:300]}"
                        )
                        log(
                            f"[{done}/{total}] round {rnd} {case.label:<28} "
                            f"{tool.label:<24} {status}"
                        )
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up and writing what was measured")
        if _current_child is not None:
            _kill_group(_current_child)
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep cleaning up
                log(f"cleanup step failed: {exc}")
    runtime = time.perf_counter() - started
    if not prepared or not machine:
        log("nothing measured")
        return 130 if interrupted else 1
    meta = {
        "command": " ".join([".venv/bin/python", "bench/run.py", *(argv or sys.argv[1:])]),
        "rounds": args.rounds,
        "runtime_s": runtime,
        "interrupted": interrupted,
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg()[0],
        "loadavg_runs_median": statistics.median(r.loadavg_1m for r in records) if records else 0.0,
        "rss_method": "GNU time %M" if TIME_BIN else "wait4 ru_maxrss (floor: runner RSS)",
        "machine": machine,
    }
    markdown = render_markdown(meta, prepared, tools, records, unavailable)
    raw = {
        "meta": meta,
        "images": {
            p.spec.name: {
                "description": p.spec.description,
                "manifest_digest": p.image.manifest_digest,
                "wire_bytes": p.wire_bytes,
                "uncompressed_bytes": p.uncompressed_bytes,
                "layers": [
                    {
                        "kind": ls.kind,
                        "digest": ly.digest,
                        "size": ly.size,
                        "uncompressed_size": ly.uncompressed_size,
                    }
                    for ls, ly in zip(p.spec.layers, p.image.layers, strict=True)
                ],
            }
            for p in prepared
        },
        "tools": {t.key: t.label for t in tools},
        "unavailable": [
            {"image": i, "transport": tr, "tool": to, "reason": why}
            for (i, tr, to), why in unavailable.items()
        ],
        "runs": [asdict(r) for r in records],
    }
    json_path = write_reports(args.out, markdown, raw)
    print(markdown)
    log(f"wrote {args.out} and {json_path} (total {runtime / 60:.1f} min)")
    failed = [r for r in records if not r.ok]
    if interrupted:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
