"""Running measured commands: wall time, CPU time and peak RSS of their process trees.

A run is one or more *phases* run one after the other; a phase is one or more commands
started together and run concurrently (the limit row fetches in one phase and hashes in
the next; every other tool is one phase of one command). For each run:

* wall: ``time.perf_counter`` from the first spawn to the last reap of each phase, summed
  over the phases (the time between phases, spent here, is not counted);
* CPU: user + system time from ``os.wait4`` of each command, which covers the command and
  every descendant it waited for;
* peak RSS: the process tree's peak, sampled every ``SAMPLE_INTERVAL`` from
  ``/proc/PID/status`` (VmHWM). At each sample the VmHWM of every live process in the phase's
  trees is summed; the run's figure is the largest sum. For a tool that is one process
  (imgpull, skopeo, curl) that is exactly its VmHWM as last seen before it exited; for a phase
  of concurrent processes (two openssl) it is the sum of their peaks, an upper bound of what
  they held at once. Growth in the last interval before a process exits is missed.
  (``wait4``'s ``ru_maxrss`` is not used: Linux starts an exec'd child's peak at the RSS of
  the process that forked it, this runner's ~45 MiB.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.procfs import descendants, peak_rss_kb

__all__ = [
    "SAMPLE_INTERVAL",
    "Command",
    "Measurement",
    "kill_running",
    "run_phases",
    "tail",
]

SAMPLE_INTERVAL = 0.01


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str]


@dataclass
class Measurement:
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_kb: int | None
    returncode: int
    timed_out: bool
    phase_wall_s: list[float] = field(default_factory=list)
    logs: list[list[Path]] = field(default_factory=list)

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


_running: set[subprocess.Popen[bytes]] = set()
_running_lock = threading.Lock()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def kill_running() -> None:
    """Kill every measured command still running (on Ctrl-C), by its process group."""
    with _running_lock:
        procs = list(_running)
    for proc in procs:
        _kill_group(proc)


class _TreePeak:
    """Samples the summed VmHWM of the process trees below ``roots`` in a thread."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        values = [peak_rss_kb(pid) for pid in descendants(self.roots)]
        alive = [v for v in values if v is not None]
        if alive:
            total = sum(alive)
            self.peak = total if self.peak is None else max(self.peak, total)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_INTERVAL)

    def __enter__(self) -> _TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """Wait for ``proc``; return its exit code and the user/system CPU of its tree."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime, usage.ru_stime


def _run_phase(
    phase: Sequence[Command], logs: list[Path], deadline: float, timed_out: threading.Event
) -> tuple[float, int, float, float, int | None]:
    procs: list[subprocess.Popen[bytes]] = []
    started = time.perf_counter()
    try:
        for command, log_path in zip(phase, logs, strict=True):
            with log_path.open("wb") as out:
                proc = subprocess.Popen(
                    command.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=command.env,
                    start_new_session=True,  # its own group: a timeout kills the whole tree
                )
            procs.append(proc)
            with _running_lock:
                _running.add(proc)

        def on_timeout() -> None:
            timed_out.set()
            for p in procs:
                _kill_group(p)

        timer = threading.Timer(max(0.0, deadline - time.monotonic()), on_timeout)
        timer.daemon = True
        timer.start()
        rc, user, system = 0, 0.0, 0.0
        try:
            with _TreePeak([p.pid for p in procs]) as sampler:
                for proc in procs:
                    code, u, s = _reap(proc)
                    rc = rc or code
                    user += u
                    system += s
        finally:
            timer.cancel()
        return time.perf_counter() - started, rc, user, system, sampler.peak
    except BaseException:
        for proc in procs:
            _kill_group(proc)
            if proc.returncode is None:
                with contextlib.suppress(ChildProcessError):
                    os.wait4(proc.pid, 0)
                proc.returncode = -9
        raise
    finally:
        with _running_lock:
            for proc in procs:
                _running.discard(proc)


def run_phases(phases: Sequence[Sequence[Command]], log_stem: Path, timeout: float) -> Measurement:
    """Run ``phases`` one after the other (stopping at the first that fails) and measure.

    Output of command J of phase I goes to ``{log_stem}-pI-J.log``. ``timeout`` bounds the
    whole run; when it passes every running command's process group is killed.
    """
    deadline = time.monotonic() + timeout
    timed_out = threading.Event()
    m = Measurement(
        wall_s=0.0, user_s=0.0, sys_s=0.0, peak_rss_kb=None, returncode=0, timed_out=False
    )
    for i, phase in enumerate(phases):
        logs = [log_stem.with_name(f"{log_stem.name}-p{i}-{j}.log") for j in range(len(phase))]
        m.logs.append(logs)
        wall, rc, user, system, peak = _run_phase(phase, logs, deadline, timed_out)
        m.phase_wall_s.append(wall)
        m.wall_s += wall
        m.user_s += user
        m.sys_s += system
        if peak is not None:
            m.peak_rss_kb = peak if m.peak_rss_kb is None else max(m.peak_rss_kb, peak)
        m.returncode = rc
        if rc != 0 or timed_out.is_set():
            break
    m.timed_out = timed_out.is_set()
    return m


def tail(paths: Sequence[Path], limit: int = 1500) -> str:
    """The last ``limit`` characters of the logs (a failed run's explanation)."""
    parts = []
    for path in paths:
        with contextlib.suppress(OSError):
            parts.append(path.read_text(errors="replace"))
    text = "\n".join(p for p in parts if p)
    return text if len(text) <= limit else "..." + text[-limit:]
