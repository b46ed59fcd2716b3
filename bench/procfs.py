"""Reading processes from /proc: CPU ticks, peak RSS (VmHWM), children.

Linux only, like the rest of the benchmark. Every reader tolerates a process that is gone
(it returns None or nothing): the processes measured here come and go while we look.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["CLK_TCK", "cpu_ticks", "descendants", "peak_rss_kb", "reset_peak_rss"]

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    """utime+stime+cutime+cstime of ``pid``: its own work and its reaped children's."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def peak_rss_kb(pid: int) -> int | None:
    """VmHWM of ``pid`` in KiB; None when it is gone or a zombie (its memory is freed)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def reset_peak_rss(pid: int) -> bool:
    """Reset the VmHWM of ``pid`` to its current RSS (Linux 4.0+: write 5 to clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _children(pid: int) -> list[int]:
    # /proc/PID/task/TID/children lists the children each thread forked (CONFIG_PROC_CHILDREN,
    # on in every distribution kernel); a process's children are the union over its threads.
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                text = Path(task.path, "children").read_text()
                out.extend(int(c) for c in text.split())
    return out


def descendants(roots: list[int]) -> list[int]:
    """``roots`` and every process below them (breadth first, each pid once)."""
    seen: list[int] = []
    queue = list(roots)
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.append(pid)
        queue.extend(_children(pid))
    return seen
