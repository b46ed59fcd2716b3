#!/usr/bin/env python3
"""Benchmark imgpull against the machine's limit, skopeo and docker pull (issues 4, 11, 12).

    .venv/bin/python bench/run.py [--quick] [--rounds N] [--links ...] [--images ...]
        [--tools ...] [--transports ...] [--out bench/results/latest.md] [--profile]

Starts Debian's ``docker-registry`` twice over one storage directory (plain HTTP and TLS
with a test CA) on 127.0.0.1, builds and pushes the test images offline (cached in
``bench/.work``), puts the slow links (``bench/slowlink.py``) in front of them, then runs
every tool on every case (image x link x transport), ``--rounds`` times, round-robin, and
writes a Markdown report (plus the raw runs as JSON next to it). ``--profile`` instead runs
imgpull's cold and warm pull once under a profiler. See bench/README.md.

The modules: options (command line), stage (registries, images, links, dockerd), tools /
limit / docker_tool (what runs), measure + procfs (wall, CPU, peak RSS), records (one run,
medians), machine (the machine line), report (Markdown), profiling + pyprofile (--profile),
slowlink + links (the slow links).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.cases import Case  # noqa: E402
from bench.docker_tool import DockerPull  # noqa: E402
from bench.limit import Limit  # noqa: E402
from bench.machine import describe, machine_line  # noqa: E402
from bench.measure import kill_running  # noqa: E402
from bench.options import Options, parse_args  # noqa: E402
from bench.profiling import run_profile  # noqa: E402
from bench.records import RunRecord, run_one  # noqa: E402
from bench.report import Table, render_markdown  # noqa: E402
from bench.stage import Stage, build_stage  # noqa: E402
from bench.tools import Imgpull, Skopeo, Tool  # noqa: E402

from tests.fixtures.loaders import LoaderError  # noqa: E402

WORK_DIR = REPO_ROOT / "bench" / ".work"
VENV_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


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


def make_tools(opts: Options, stage: Stage) -> dict[str, Tool]:
    tools: dict[str, Tool] = {}
    skopeo = shutil.which("skopeo")
    for key in opts.tool_keys:
        if key == "limit":
            tools[key] = Limit(stage.env, shutil.which("curl"), shutil.which("openssl"))
        elif key.startswith("imgpull-"):
            mode = key.removeprefix("imgpull-")
            tools[key] = Imgpull(mode, stage.env, VENV_PYTHON, opts.jobs, opts.imgpull_src)
        elif key.startswith("skopeo-"):
            if skopeo is None:
                log("skopeo not found: skopeo rows are n/a")
                continue
            tools[key] = Skopeo(key.removeprefix("skopeo-"), stage.env, skopeo)
        elif key == "docker":
            tools[key] = DockerPull(stage.daemon, stage.docker_note)
    return tools


def docker_version(stage: Stage) -> str:
    if stage.daemon is None:
        return f"docker n/a ({stage.docker_note})"
    try:
        info = stage.daemon.info()
        client = stage.daemon.docker("version", "--format", "{{.Client.Version}}").stdout.strip()
    except LoaderError as exc:
        return f"docker n/a ({exc})"
    return f"dockerd {info.get('ServerVersion')} ({info.get('Driver')} storage), CLI {client}"


class Rounds:
    """Every case gets every tool once per round, the tool order rotated each round."""

    def __init__(self, opts: Options, cases: list[Case], tools: dict[str, Tool], tmp: Path):
        self.opts = opts
        self.tmp = tmp
        self.records: list[RunRecord] = []
        self.unavailable: dict[tuple[str, str, str, str], str] = {}
        self.work: list[tuple[Case, list[Tool]]] = []
        for plan in opts.plans:
            for case in cases:
                if case.link.key != plan.link.key:
                    continue
                chosen = [tools[k] for k in plan.tools if k in tools]
                for tool in chosen:
                    why = tool.unavailable(case)
                    if why is not None:
                        self.unavailable[(*case.key, tool.key)] = why
                self.work.append((case, chosen))

    def runnable(self, case: Case, tools: list[Tool]) -> list[Tool]:
        return [t for t in tools if (*case.key, t.key) not in self.unavailable]

    def prime(self) -> None:
        log("priming warm caches ...")
        for case, tools in self.work:
            for tool in self.runnable(case, tools):
                try:
                    tool.prime(case, self.tmp)
                except (OSError, RuntimeError) as exc:
                    self.unavailable[(*case.key, tool.key)] = " ".join(str(exc).split())[:600]
                    log(f"{tool.label} unavailable for {case.label}: {exc}")

    def run(self) -> None:
        total = self.opts.rounds * sum(len(self.runnable(c, t)) for c, t in self.work)
        done = 0
        for rnd in range(1, self.opts.rounds + 1):
            for case, tools in self.work:
                shift = (rnd - 1) % len(tools) if tools else 0
                for position, tool in enumerate(tools[shift:] + tools[:shift]):
                    if (*case.key, tool.key) in self.unavailable:
                        continue
                    rec = run_one(tool, case, rnd, position, self.tmp, self.opts.timeout)
                    self.records.append(rec)
                    done += 1
                    log(
                        f"[{done}/{total}] round {rnd} {case.label:<36} {tool.label:<24} "
                        + _status(rec)
                    )


def _status(rec: RunRecord) -> str:
    if not rec.ok:
        return f"FAILED: {' '.join((rec.error or '').split())[:300]}"
    conns = f", {rec.connections} conns" if rec.connections is not None else ""
    return (
        f"{rec.wall_s or 0:.2f}s wall, {rec.cpu_s or 0:.2f}s CPU, "
        f"{(rec.peak_rss_kb or 0) / 1024:.0f} MiB{conns}"
    )


def write_reports(out: Path, markdown: str, raw: dict[str, Any]) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    json_path = out.with_suffix(".json")
    json_path.write_text(json.dumps(raw, indent=2) + "\n")
    return json_path


def raw_json(
    meta: dict[str, Any], stage: Stage, tools: dict[str, Tool], rounds: Rounds
) -> dict[str, Any]:
    return {
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
            for p in stage.images.values()
        },
        "links": {p.link.key: asdict(p.link) for p in rounds.opts.plans},
        "tools": {t.key: t.label for t in tools.values()},
        "unavailable": [
            {"image": i, "link": li, "transport": tr, "tool": to, "reason": why}
            for (i, li, tr, to), why in rounds.unavailable.items()
        ],
        "runs": [asdict(r) for r in rounds.records],
    }


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(list(sys.argv[1:] if argv is None else argv))
    started = time.perf_counter()
    loadavg_start = os.getloadavg()[0]
    if not VENV_PYTHON.exists():
        log(f"{VENV_PYTHON} not found: create the venv first (see README)")
        return 2
    cleanups: list[Callable[[], None]] = []
    interrupted = False
    stage: Stage | None = None
    rounds: Rounds | None = None
    tools: dict[str, Tool] = {}
    machine: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="imgpull-bench-", dir=opts.workdir))
    cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
    try:
        with signals_as_interrupt():
            stage = build_stage(opts, tmp, WORK_DIR, cleanups, log)
            # measured before any tool runs, on a machine only the registries idle on
            machine = describe(
                REPO_ROOT, tmp, stage.storage, docker_version(stage), VENV_PYTHON, opts.imgpull_src
            )
            log(machine_line(machine))
            if opts.profile:
                return run_profile(stage, opts, VENV_PYTHON, log)
            tools = make_tools(opts, stage)
            rounds = Rounds(opts, stage.cases(opts), tools, tmp)
            rounds.prime()
            rounds.run()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: cleaning up and writing what was measured")
        kill_running()
    finally:
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep cleaning up
                log(f"cleanup step failed: {exc}")
    if stage is None or rounds is None or not machine:
        log("nothing measured")
        return 130 if interrupted else 1
    records = rounds.records
    runtime = time.perf_counter() - started
    meta = {
        "command": " ".join([".venv/bin/python", "bench/run.py", *opts.argv]),
        "rounds": opts.rounds,
        "runtime_s": runtime,
        "interrupted": interrupted,
        "loadavg_start": loadavg_start,
        "loadavg_end": os.getloadavg()[0],
        "loadavg_runs_median": statistics.median(r.loadavg_1m for r in records) if records else 0.0,
        "rss_method": "VmHWM of the process tree, sampled from /proc every 10 ms",
        "machine": machine,
    }
    tables = [
        Table(
            plan.link,
            stage.images[key],
            plan.transports,
            tuple(tools[k] for k in plan.tools if k in tools),
        )
        for plan in opts.plans
        for key in plan.images
    ]
    markdown = render_markdown(meta, tables, records, rounds.unavailable)
    json_path = write_reports(opts.out, markdown, raw_json(meta, stage, tools, rounds))
    print(markdown)
    log(f"wrote {opts.out} and {json_path} (total {runtime / 60:.1f} min)")
    if interrupted:
        return 130
    return 1 if any(not r.ok for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
