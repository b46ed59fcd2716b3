"""A throwaway registry: Debian's ``docker-registry`` (CNCF distribution) on 127.0.0.1.

Its configuration, storage and log live in a directory the caller removes; the process
runs in its own session, so a Ctrl-C in the terminal reaches only the demo, which then
stops the registry itself (``__exit__``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from imgpull.demo.image import DemoError

STARTUP_SECONDS = 15.0
STOP_SECONDS = 5.0
_ATTEMPTS = 3  # another process may take the free port between our probe and its bind


def find_registry_binary() -> str:
    found = shutil.which("docker-registry")
    if found is None:
        raise DemoError(
            "docker-registry is not installed",
            "install it: apt-get install docker-registry",
        )
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(storage: Path, port: int) -> dict[str, object]:
    return {
        "version": "0.1",
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }


# Loopback only: never through a proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _answers(url: str) -> bool:
    try:
        with _DIRECT.open(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()


class ThrowawayRegistry:
    """``with ThrowawayRegistry(workdir, binary) as registry: registry.host``."""

    def __init__(self, workdir: Path, binary: str) -> None:
        self.workdir = workdir
        self.binary = binary
        self.host = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = ""
        for attempt in range(_ATTEMPTS):
            log = self._start(_free_port(), attempt)
            if not log:
                return self
            if "address already in use" not in log:
                break
        last = log.strip().splitlines()[-1] if log.strip() else "no log"
        raise DemoError(
            f"docker-registry did not start: {last}",
            "check that `docker-registry --version` runs (CNCF distribution 2.x)",
        )

    def _start(self, port: int, attempt: int) -> str:
        """Start on ``port``; '' when it answers, else its log."""
        config = self.workdir / "config.yml"  # JSON is YAML: no YAML writer needed
        config.write_text(json.dumps(_config(self.workdir / "storage", port), indent=2))
        log_path = self.workdir / f"registry-{attempt}.log"
        # REGISTRY_* variables would override the config file.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [self.binary, "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        self.host = f"127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and self._process.poll() is None:
            if _answers(f"http://{self.host}/v2/"):
                return ""
            time.sleep(0.05)
        self.stop()
        return log_path.read_text(errors="replace") or "no answer and no log"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        try:
            process.terminate()
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            _kill(process)
        except KeyboardInterrupt:  # Ctrl-C again while it stops: no orphan, then go on
            _kill(process)
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
