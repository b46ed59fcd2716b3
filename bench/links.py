"""The links the tools reach the registry over: loopback, or a slow link (bench/slowlink.py).

Each slow link is a ``bench/slowlink.py`` process per transport, in front of that
transport's registry; the tools are pointed at the proxy's port instead of the registry's
(still 127.0.0.1, so docker treats it as an insecure registry and imgpull may use plain
HTTP, exactly as on loopback).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.procfs import CLK_TCK, cpu_ticks

__all__ = ["ALL_LINKS", "LOOPBACK", "LinkSpec", "SlowLinkProcess"]

SLOWLINK = Path(__file__).resolve().parent / "slowlink.py"
STARTUP_TIMEOUT = 10.0
MB = 1_000_000


@dataclass(frozen=True)
class LinkSpec:
    key: str
    title: str  # "over {title}" in a table's heading
    description: str
    rate: float  # bytes per second per connection and direction; 0: unlimited
    connect_delay: float  # seconds added to every connect
    rtt: float  # seconds per round trip (half each way); 0: none
    default_images: tuple[str, ...]
    default_tools: tuple[str, ...]

    @property
    def is_loopback(self) -> bool:
        return self.rate <= 0 and self.connect_delay <= 0 and self.rtt <= 0


_LOOPBACK_TOOLS = (
    "limit",
    "imgpull-cold",
    "imgpull-warm",
    "imgpull-nocache",
    "skopeo-docker-archive",
    "skopeo-oci",
    "skopeo-oci-archive",
    "docker",
)
_SLOW_TOOLS = ("limit", "imgpull-cold", "skopeo-oci", "docker")

LOOPBACK = LinkSpec(
    "loopback",
    "loopback",
    "the registry on 127.0.0.1, no limit but the machine's",
    rate=0.0,
    connect_delay=0.0,
    rtt=0.0,
    default_images=("big", "many", "mid"),
    default_tools=_LOOPBACK_TOOLS,
)
THROTTLED = LinkSpec(
    "throttled",
    "the throttled link",
    "8 MB/s per TCP connection, +50 ms per connect",
    rate=8 * MB,
    connect_delay=0.05,
    rtt=0.0,
    default_images=("medium",),
    default_tools=_SLOW_TOOLS,
)
LATENCY = LinkSpec(
    "latency",
    "the high-latency link",
    "+150 ms per connect and per request round trip, bandwidth unlimited",
    rate=0.0,
    connect_delay=0.15,
    rtt=0.15,
    default_images=("many",),
    default_tools=_SLOW_TOOLS,
)
ALL_LINKS: dict[str, LinkSpec] = {spec.key: spec for spec in (LOOPBACK, THROTTLED, LATENCY)}


class SlowLinkProcess:
    """One running ``bench/slowlink.py`` in front of ``upstream`` (``HOST:PORT``)."""

    def __init__(self, spec: LinkSpec, upstream: str, workdir: Path, python: str = "") -> None:
        self.spec = spec
        self.upstream = upstream
        self.log_path = workdir / f"slowlink-{spec.key}-{upstream.replace(':', '_')}.log"
        self.python = python or sys.executable
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = ""

    def start(self) -> SlowLinkProcess:
        argv = [
            self.python,
            str(SLOWLINK),
            "--upstream",
            self.upstream,
            "--rate",
            str(self.spec.rate),
            "--connect-delay",
            str(self.spec.connect_delay),
            "--rtt",
            str(self.spec.rtt),
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            first = self.log_path.read_text(errors="replace").partition("\n")
            if first[1] and first[0].startswith("listening "):
                self.host = first[0].split()[1]
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slowlink did not start: {self.log_path.read_text(errors='replace')}")

    def mark(self) -> int:
        """Position in the log; pass to :meth:`connections_since`."""
        return self.log_path.stat().st_size

    def connections_since(self, mark: int) -> int:
        with self.log_path.open("rb") as fh:
            fh.seek(mark)
            return sum(1 for line in fh if line.startswith(b"open "))

    def cpu_s(self) -> float:
        """CPU the proxy has used so far (counted for no tool, like the registry's)."""
        assert self.proc is not None
        return cpu_ticks(self.proc.pid) / CLK_TCK

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)
