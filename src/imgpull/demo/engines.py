"""Load and run the demo archive with each container engine found: docker, podman, ctr.

An engine is used when its command is installed and answers a harmless probe (``docker
info``, ``podman info``, ``ctr version``): a ``docker`` CLI without a daemon is reported
and skipped, not a failure. Each engine loads the archive, runs the image once (no
network, never pulling), and removes the image it loaded (ctr: and its namespace).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from imgpull.demo.image import DEMO_OUTPUT
from imgpull.demo.oci_runtime import choose_podman_runtime

ENGINES = ("docker", "podman", "ctr")
PROBE_SECONDS = 20.0
COMMAND_SECONDS = 180.0
#: Our own containerd namespace, so nothing kubelet or nerdctl see is touched.
CTR_NAMESPACE = "imgpull-demo"
#: podman lowers its own RLIMIT_NPROC to this, and asks the runtime for nofile=1048576;
#: without CAP_SYS_RESOURCE (containers, some CI machines) limits above the hard limit
#: make every container fail with "error setting rlimit".
_PODMAN_NPROC = 32768
_PODMAN_NOFILE = 1048576

Status = Literal["ran", "skipped", "failed"]
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class EngineOutcome:
    engine: str
    status: Status
    detail: str  # why it was skipped or failed, or what the container printed


@dataclass(frozen=True, slots=True)
class Recipe:
    """An engine's commands; ``{archive}``, ``{ref}`` and ``{name}`` tokens are filled in."""

    global_options: tuple[str, ...]
    probe: tuple[str, ...]
    load: tuple[str, ...]
    run: tuple[str, ...]
    remove: tuple[tuple[str, ...], ...]


def _podman_ulimits() -> tuple[str, ...]:
    if sys.platform == "win32":
        return ()
    import resource

    def capped(limit: int, cap: int) -> int:
        hard = resource.getrlimit(limit)[1]
        return cap if hard == resource.RLIM_INFINITY else min(hard, cap)

    nofile = capped(resource.RLIMIT_NOFILE, _PODMAN_NOFILE)
    nproc = capped(resource.RLIMIT_NPROC, _PODMAN_NPROC)
    return ("--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}")


def recipe(engine: str) -> Recipe:
    never_pull = ("--rm", "--network", "none", "--pull", "never")
    if engine == "docker":
        return Recipe(
            (),
            ("info", "--format", "{{.ServerVersion}}"),
            ("load", "-i", "{archive}"),
            ("run", *never_pull, "{ref}"),
            (("rmi", "{ref}"),),
        )
    if engine == "podman":
        runtime = choose_podman_runtime()  # what runs on this cgroup layout
        return Recipe(
            tuple(runtime.global_options()),
            ("info", "--format", "{{.Host.OCIRuntime.Name}}"),
            ("load", "-i", "{archive}"),
            ("run", *never_pull, *_podman_ulimits(), *runtime.run_options(), "{ref}"),
            (("rmi", "{ref}"),),
        )
    if engine == "ctr":
        return Recipe(
            ("--namespace", CTR_NAMESPACE),
            ("--connect-timeout", "5s", "version"),  # else it waits 10s for no containerd
            ("images", "import", "{archive}"),
            ("run", "--rm", "{ref}", "{name}"),
            (("images", "rm", "--sync", "{ref}"), ("namespaces", "rm", CTR_NAMESPACE)),
        )
    raise ValueError(f"unknown engine {engine!r}")


@dataclass(frozen=True, slots=True)
class _Result:
    ok: bool
    stdout: str
    why: str  # the last line of stderr, or what happened


def _call(argv: Sequence[str], timeout: float) -> _Result:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return _Result(False, "", f"no answer within {timeout:.0f}s")
    except OSError as exc:
        return _Result(False, "", exc.strerror or str(exc))
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    why = lines[-1] if lines else f"exit status {done.returncode}"
    return _Result(done.returncode == 0, done.stdout, why)


class _Session:
    """One engine's commands, each printed as the user would type it."""

    def __init__(self, engine: str, binary: str, steps: Recipe, say: Say) -> None:
        self.engine, self.binary, self.steps, self.say = engine, binary, steps, say

    def call(self, template: Sequence[str], values: Mapping[str, str], *, show: bool) -> _Result:
        args = [*self.steps.global_options, *(values.get(token, token) for token in template)]
        if show:
            self.say(f"    $ {shlex.join([self.engine, *args])}")
        timeout = COMMAND_SECONDS if show else PROBE_SECONDS
        result = _call([self.binary, *args], timeout)
        if show:
            for line in result.stdout.splitlines():
                self.say(f"      {line}")
        return result


def try_engine(engine: str, archive: Path, reference: str, say: Say) -> EngineOutcome:
    """Probe ``engine``; when it answers, load ``archive`` and run ``reference`` with it."""
    binary = shutil.which(engine)
    if binary is None:
        return EngineOutcome(engine, "skipped", "not installed")
    session = _Session(engine, binary, recipe(engine), say)
    values = {
        "{archive}": str(archive),
        "{ref}": reference,
        "{name}": f"imgpull-demo-{os.getpid()}",
    }
    probe = session.call(session.steps.probe, values, show=False)
    if not probe.ok:
        return EngineOutcome(engine, "skipped", f"installed, but it does not answer: {probe.why}")
    say(f"==> {engine}: loading the archive and running the image")
    loaded = session.call(session.steps.load, values, show=True)
    if not loaded.ok:
        return EngineOutcome(engine, "failed", f"load failed: {loaded.why}")
    try:
        ran = session.call(session.steps.run, values, show=True)
    finally:
        for command in session.steps.remove:  # take away what the demo loaded
            session.call(command, values, show=False)
    if not ran.ok:
        return EngineOutcome(engine, "failed", f"run failed: {ran.why}")
    if DEMO_OUTPUT not in ran.stdout:
        return EngineOutcome(engine, "failed", f"the container printed {ran.stdout.strip()!r}")
    return EngineOutcome(engine, "ran", DEMO_OUTPUT)
