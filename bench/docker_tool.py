"""``docker pull`` against a private dockerd, which does the pulling (and is measured).

The daemon is ``tests/fixtures/loaders.py``'s DockerDaemon (overlay2, falling back to vfs).
Registries on 127.0.0.0/8 are insecure for docker by default, so both the registry and a
slow link's proxy in front of it need no daemon configuration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from bench.cases import Case, RunContext
from bench.measure import Command, Measurement
from bench.procfs import CLK_TCK, cpu_ticks, peak_rss_kb, reset_peak_rss
from bench.tools import Figures, Tool

from tests.fixtures.loaders import DockerDaemon, LoaderError, make_workdir, remove_workdir

__all__ = ["DockerPull", "start_dockerd"]


def start_dockerd(
    cleanups: list[Callable[[], None]], log: Callable[[str], None]
) -> tuple[DockerDaemon | None, str | None]:
    """A started daemon (its stop registered in ``cleanups``), or None and why not."""
    docker_dir = make_workdir("imgpull-bench-docker-")
    cleanups.append(lambda: remove_workdir(docker_dir))
    note = None
    for driver in ("overlay2", "vfs"):
        candidate = DockerDaemon(docker_dir / driver, extra_args=[f"--storage-driver={driver}"])
        try:
            daemon = candidate.start()
        except LoaderError as exc:
            note = f"dockerd did not start: {str(exc).splitlines()[0]}"
            log(f"dockerd ({driver}) did not start: {exc}")
            continue
        cleanups.append(candidate.stop)
        log(f"dockerd up ({driver}) in {candidate.startup_seconds:.1f}s")
        return daemon, None
    return None, note


class DockerPull(Tool):
    key = "docker"
    label = "docker pull"
    mark = "†"

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
        # Every pull is cold: no layer of any image is left in the daemon's store.
        self.clean()
        self._hwm_reset = reset_peak_rss(self.pid)
        self._cpu0 = cpu_ticks(self.pid)

    def output(self, ctx: RunContext) -> Path | None:
        return None

    def phases(self, ctx: RunContext) -> list[list[Command]]:
        assert self.daemon is not None
        d = self.daemon
        return [[Command([d.docker_cli, "--host", d.host, "pull", "-q", ctx.case.ref], d.env)]]

    def after(self, ctx: RunContext, m: Measurement) -> Figures:
        assert self.daemon is not None
        # The daemon does the pulling: its CPU (with its reaped children, such as unpigz)
        # counts, plus the CLI's; its peak RSS (reset before the pull) is the row's.
        daemon_cpu = (cpu_ticks(self.pid) - self._cpu0) / CLK_TCK
        hwm = peak_rss_kb(self.pid)
        figures = Figures(
            extra={
                "cli_cpu_s": m.cpu_s,
                "cli_peak_rss_kb": m.peak_rss_kb,
                "dockerd_cpu_s": daemon_cpu,
                "dockerd_peak_rss_kb": hwm,
                "dockerd_peak_rss_reset": self._hwm_reset,
            },
            replace=True,
            cpu_s=m.cpu_s + daemon_cpu,
            peak_rss_kb=hwm if self._hwm_reset else None,
        )
        if m.returncode == 0:
            res = self.daemon.docker(
                "image", "inspect", "--format", "{{.Size}}", ctx.case.ref, check=False
            )
            with contextlib.suppress(ValueError):
                figures.output_bytes = int(res.stdout.strip())
        self.clean()
        return figures
