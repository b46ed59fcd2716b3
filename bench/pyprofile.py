#!/usr/bin/env python3
"""Run ``python -m imgpull ARGS`` under cProfile, in every thread, and write the results.

    .venv/bin/python bench/pyprofile.py OUT_STEM -- pull REF -o out.tar ...

``python -m cProfile`` sees only the main thread, while imgpull downloads in worker
threads; so each thread gets its own profiler when it starts (``threading.setprofile``),
and at exit, after the interpreter has joined the worker threads, every thread's profile is
merged into ``OUT_STEM.pstats`` (open with ``python -m pstats`` or snakeviz) and
``OUT_STEM.txt`` (the top 25 by cumulative and by own time). Times are wall-clock: a
worker waiting in ``recv`` shows there, which is the point on a network-bound pull.
Standard library only. Exits with imgpull's exit code.
"""

from __future__ import annotations

import atexit
import cProfile
import io
import pstats
import runpy
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

TOP = 25


class AllThreads:
    def __init__(self, stem: Path, args: list[str]) -> None:
        self.stem = stem
        self.args = args
        self.profiles: list[cProfile.Profile] = []
        self.started = time.perf_counter()

    def _start_in_thread(self, frame: FrameType, event: str, arg: Any) -> None:
        # The first profile event of a new thread: swap this Python-level hook for a C
        # profiler of the thread's own (enable() replaces the thread's profile function).
        prof = cProfile.Profile()
        self.profiles.append(prof)
        prof.enable()

    def run(self) -> int | str | None:
        threading.setprofile(self._start_in_thread)
        main = cProfile.Profile()
        self.profiles.insert(0, main)
        atexit.register(self.dump)  # runs after the interpreter joined the worker threads
        sys.argv = ["imgpull", *self.args]
        main.enable()
        try:
            runpy.run_module("imgpull", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            return exc.code
        finally:
            main.disable()
        return 0

    def dump(self) -> None:
        wall = time.perf_counter() - self.started
        stats = pstats.Stats(self.profiles[0])
        for prof in self.profiles[1:]:
            stats.add(prof)
        self.stem.parent.mkdir(parents=True, exist_ok=True)
        stats.dump_stats(str(self.stem.with_suffix(".pstats")))
        text = io.StringIO()
        text.write(
            f"imgpull {' '.join(self.args)}\n"
            f"{len(self.profiles)} threads profiled, {wall:.2f} s wall under the profiler\n"
            "(times are wall-clock and summed over threads; see bench/README.md)\n\n"
        )
        shown = pstats.Stats(str(self.stem.with_suffix(".pstats")), stream=text)
        shown.strip_dirs()
        text.write(f"=== top {TOP} by cumulative time ===\n")
        shown.sort_stats("cumulative").print_stats(TOP)
        text.write(f"=== top {TOP} by own time ===\n")
        shown.sort_stats("tottime").print_stats(TOP)
        self.stem.with_suffix(".txt").write_text(text.getvalue())


def main() -> int | str | None:
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return AllThreads(Path(sys.argv[1]), sys.argv[3:]).run()


if __name__ == "__main__":
    sys.exit(main())
