"""One measured run as a record, and the medians a table row shows."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cases import Case, RunContext
from bench.measure import run_phases, tail
from bench.tools import Tool

from tests.fixtures.loaders import LoaderError

__all__ = ["RunRecord", "Summary", "disk_bytes", "run_one", "summarize"]


@dataclass
class RunRecord:
    image: str
    link: str
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
    phase_wall_s: list[float] = field(default_factory=list)
    connections: int | None = None  # TCP connections the slow link accepted during the run
    link_cpu_s: float | None = None  # the slow link proxy's CPU during the run
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.image, self.link, self.transport)


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


def run_one(tool: Tool, case: Case, rnd: int, order: int, tmp: Path, timeout: float) -> RunRecord:
    """Prepare (untimed), run and measure, check (untimed), clean up: one record."""
    rundir = Path(tempfile.mkdtemp(prefix=f"{tool.key}-", dir=tmp))
    logdir = tmp / "logs"
    logdir.mkdir(exist_ok=True)
    ctx = RunContext(case, rundir, rnd, logdir / f"{tool.key}-{case.slug}-r{rnd}")
    record = RunRecord(
        image=case.image.spec.name,
        link=case.link.key,
        transport=case.transport.name,
        tool=tool.key,
        round=rnd,
        order=order,
        started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        loadavg_1m=os.getloadavg()[0],
        ok=False,
    )
    try:
        tool.before(ctx)
        phases = tool.phases(ctx)
        # Flush the previous run's dirty pages so that no tool pays for another's writes.
        os.sync()
        mark = case.proxy.mark() if case.proxy else 0
        link_cpu0 = case.proxy.cpu_s() if case.proxy else 0.0
        m = run_phases(phases, ctx.log_stem, timeout)
        if case.proxy is not None:
            record.connections = case.proxy.connections_since(mark)
            record.link_cpu_s = case.proxy.cpu_s() - link_cpu0
        record.returncode = m.returncode
        record.wall_s = m.wall_s
        record.phase_wall_s = m.phase_wall_s
        record.user_s, record.sys_s = m.user_s, m.sys_s
        record.cpu_s = m.cpu_s
        record.peak_rss_kb = m.peak_rss_kb
        out = tool.output(ctx)
        if out is not None and out.exists():
            record.output_bytes = disk_bytes(out)
        figures = tool.after(ctx, m)
        record.extra = figures.extra
        if figures.replace:
            record.cpu_s = figures.cpu_s
            record.peak_rss_kb = figures.peak_rss_kb
            record.output_bytes = figures.output_bytes
        logs = [p for phase in m.logs for p in phase]
        if m.timed_out:
            record.error = f"timed out after {timeout:.0f}s"
        elif m.returncode != 0:
            record.error = f"exit {m.returncode}: {tail(logs)}"
        elif out is not None and not out.exists():
            record.error = f"no output at {out}"
        elif figures.error:
            record.error = figures.error
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
    connections: int | None
    phase_wall_s: list[float]
    first_error: str | None


def _median(values: Sequence[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(records: Sequence[RunRecord]) -> Summary:
    """Medians of the successful runs; peak RSS and output: the largest seen."""
    good = [r for r in records if r.ok and r.wall_s is not None]
    errors = [r.error for r in records if r.error]
    rss = [r.peak_rss_kb for r in good if r.peak_rss_kb is not None]
    outs = [r.output_bytes for r in good if r.output_bytes is not None]
    conns = _median([r.connections for r in good])
    phases = max((len(r.phase_wall_s) for r in good), default=0)
    return Summary(
        runs=len(records),
        ok=len(good),
        wall_s=_median([r.wall_s for r in good]),
        cpu_s=_median([r.cpu_s for r in good]),
        peak_rss_kb=max(rss) if rss else None,
        output_bytes=max(outs) if outs else None,
        connections=round(conns) if conns is not None else None,
        phase_wall_s=[
            _median([r.phase_wall_s[i] for r in good if len(r.phase_wall_s) > i]) or 0.0
            for i in range(phases)
        ],
        first_error=errors[0] if errors else None,
    )
