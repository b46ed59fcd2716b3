"""``bench/run.py --profile``: imgpull's cold and warm pull, once each, under a profiler.

cProfile always (``bench/pyprofile.py``: every thread, merged into ``.pstats`` plus a
top-25 text); py-spy as well when it is installed (``pip install py-spy``: on PATH or in
the venv), as a flame graph (``.svg``) of a separate cold and warm pull, since py-spy
samples from outside and adds almost nothing to the run. Profilers slow Python down, so
these runs' times are no benchmark figures.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from bench.cases import Case
from bench.measure import Command, run_phases, tail
from bench.options import Options
from bench.stage import Stage
from bench.tools import Imgpull

__all__ = ["run_profile"]

PYPROFILE = Path(__file__).resolve().parent / "pyprofile.py"
TIMEOUT = 3600.0


def _py_spy(python: Path) -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(python.parent))


def _profile_case(
    case: Case, stage: Stage, opts: Options, python: Path, log: Callable[[str], None]
) -> list[Path]:
    imgpull = Imgpull("cold", stage.env, python, opts.jobs, opts.imgpull_src)
    written: list[Path] = []
    spy = _py_spy(python)
    runs = [("cprofile", mode) for mode in ("cold", "warm")]
    runs += [("py-spy", mode) for mode in ("cold", "warm") if spy]
    for profiler, mode in runs:
        cache = stage.tmp / "profile-caches" / f"{case.slug}-{profiler}"
        if mode == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        out = stage.tmp / f"profile-{case.slug}.tar"
        pull = imgpull.argv(case, out, cache)[3:]  # ["pull", REF, ...] without "python -m imgpull"
        stem = opts.profile_dir / f"{case.slug}-{mode}"
        if profiler == "cprofile":
            argv = [str(python), str(PYPROFILE), str(stem), "--", *pull]
            files = [stem.with_suffix(".pstats"), stem.with_suffix(".txt")]
        else:
            assert spy is not None
            svg = stem.with_suffix(".svg")
            argv = [spy, "record", "--threads", "--rate", "250", "--format", "flamegraph"]
            argv += ["-o", str(svg), "--", str(python), "-m", "imgpull", *pull]
            files = [svg]
        m = run_phases(
            [[Command(argv, imgpull.child_env)]], stage.tmp / f"{stem.name}-{profiler}", TIMEOUT
        )
        out.unlink(missing_ok=True)
        if m.returncode != 0:
            log(f"{profiler} {mode} {case.label} FAILED: {tail(m.logs[0])}")
            continue
        log(f"{profiler} {mode} {case.label}: {m.wall_s:.2f}s wall under the profiler")
        written += [f for f in files if f.exists()]
    return written


def run_profile(stage: Stage, opts: Options, python: Path, log: Callable[[str], None]) -> int:
    """Profile every selected case; print where the output is. 0 when all worked."""
    opts.profile_dir.mkdir(parents=True, exist_ok=True)
    cases = stage.cases(opts)
    written: list[Path] = []
    for case in cases:
        written += _profile_case(case, stage, opts, python, log)
    print(f"Profiles in {opts.profile_dir}:")
    for path in written:
        print(f"  {path}")
    texts = [p for p in written if p.suffix == ".txt"]
    if texts:
        print(
            f"Read the .txt files first (e.g. `less {texts[0]}`); open a .pstats with "
            f"`{python} -m pstats FILE` or snakeviz."
        )
    if not _py_spy(python):
        print("py-spy not installed: no flame graphs (`.venv/bin/pip install py-spy` adds them).")
    expected = len(cases) * 2 * (2 if _py_spy(python) else 1)
    produced = sum(1 for p in written if p.suffix in (".txt", ".svg"))
    return 0 if produced == expected else 1
