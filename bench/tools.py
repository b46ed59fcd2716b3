"""The measured tools: what each runs, and the base class the others (limit, docker) share."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cases import Case, RunContext
from bench.environment import Env
from bench.measure import Command, Measurement, run_phases, tail

__all__ = ["Figures", "Imgpull", "Skopeo", "Tool"]

PRIME_TIMEOUT = 3600.0
CHECKOUT_SRC = Path(__file__).resolve().parent.parent / "src"


@dataclass
class Figures:
    """What a tool adds to a run's record after it ran (untimed)."""

    extra: dict[str, Any] = field(default_factory=dict)
    # With ``replace`` these stand for the measured figures, None meaning unknown
    # (docker pull: the daemon's CPU and RSS, not the CLI's; the image size docker reports).
    replace: bool = False
    cpu_s: float | None = None
    peak_rss_kb: int | None = None
    output_bytes: int | None = None
    error: str | None = None  # the run succeeded but its result is wrong


class Tool:
    key = ""
    label = ""
    #: Footnote mark after this tool's CPU and RSS figures in the report ("" for none).
    mark = ""

    def unavailable(self, case: Case) -> str | None:
        """Why this tool cannot run ``case`` (None: it can)."""
        return None

    def prime(self, case: Case, logdir: Path) -> None:
        """Untimed, once per case before the rounds."""

    def before(self, ctx: RunContext) -> None:
        """Untimed preparation of one run."""

    def phases(self, ctx: RunContext) -> list[list[Command]]:
        raise NotImplementedError

    def output(self, ctx: RunContext) -> Path | None:
        """What the tool writes (its size is the output MB column); None: nothing."""
        return ctx.rundir / "out"

    def after(self, ctx: RunContext, m: Measurement) -> Figures:
        """Untimed: checks and extra figures for the record (and cleanup)."""
        return Figures()


class Imgpull(Tool):
    LABELS = {"cold": "imgpull cold", "warm": "imgpull warm", "nocache": "imgpull --no-cache"}

    def __init__(
        self, mode: str, env: Env, python: Path, jobs: int | None, src: Path | None = None
    ) -> None:
        self.mode = mode  # cold | warm | nocache
        self.key = f"imgpull-{mode}"
        self.label = self.LABELS[mode]
        self.env = env
        self.python = python
        self.jobs = jobs
        # --imgpull-src: another checkout's src/ (e.g. `git archive` of a commit, to compare
        # before and after) goes first on the path, ahead of the venv's editable install.
        child = dict(env.base, PYTHONPATH=str(src)) if src else dict(env.base)
        # Measured as installed: pip byte-compiles a package when it installs it, while
        # PYTHONDONTWRITEBYTECODE (set on some machines) would leave an editable checkout to
        # be compiled from source on every run, some 50 ms of start-up no user pays.
        child.pop("PYTHONDONTWRITEBYTECODE", None)
        byte_compile(python, src or CHECKOUT_SRC, child)
        self.child_env = child
        self.warm_caches: dict[tuple[str, str], Path] = {}

    def argv(self, case: Case, out: Path, cache: Path | None, *, host: str = "") -> list[str]:
        ref = f"{host}/{case.image.spec.repo}:{case.image.spec.tag}" if host else case.ref
        argv = [str(self.python), "-m", "imgpull", "pull", ref, "-o", str(out), "-q"]
        argv += ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
        if case.transport.ca_cert is not None:
            argv += ["--ca-cert", str(case.transport.ca_cert)]
        if self.jobs is not None:
            argv += ["-j", str(self.jobs)]
        return argv

    def output(self, ctx: RunContext) -> Path:
        return ctx.rundir / "out.tar"

    def phases(self, ctx: RunContext) -> list[list[Command]]:
        cache: Path | None
        if self.mode == "cold":
            cache = ctx.rundir / "cache"
        elif self.mode == "warm":
            cache = self.warm_caches[(ctx.case.image.spec.name, ctx.case.transport.name)]
        else:
            cache = None
        return [[Command(self.argv(ctx.case, self.output(ctx), cache), self.child_env)]]

    def prime(self, case: Case, logdir: Path) -> None:
        # The cache is content-addressed, so one per image and transport serves every link;
        # it is filled straight from the registry, not through a slow link.
        key = (case.image.spec.name, case.transport.name)
        if self.mode != "warm" or key in self.warm_caches:
            return
        slug = f"{case.image.spec.key}-{case.transport.name}"
        cache = self.env.root / "warm-caches" / slug
        cache.mkdir(parents=True, exist_ok=True)
        out = logdir / f"prime-{slug}.tar"
        argv = self.argv(case, out, cache, host=case.transport.server.host)
        m = run_phases([[Command(argv, self.child_env)]], logdir / f"prime-{slug}", PRIME_TIMEOUT)
        out.unlink(missing_ok=True)
        if m.returncode != 0:
            raise RuntimeError(f"priming the imgpull cache failed: {tail(m.logs[0])}")
        self.warm_caches[key] = cache


def byte_compile(python: Path, src: Path, env: dict[str, str]) -> None:
    """Compile the measured imgpull package the way an install does (up-to-date files
    are skipped, so measuring twice costs nothing)."""
    subprocess.run(
        [str(python), "-m", "compileall", "-q", str(src / "imgpull")],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


class Skopeo(Tool):
    DESTS = {
        "docker-archive": "skopeo → docker-archive",
        "oci": "skopeo → oci dir",
        "oci-archive": "skopeo → oci-archive",
    }

    def __init__(self, dest: str, env: Env, binary: str) -> None:
        self.dest = dest
        self.key = f"skopeo-{dest}"
        self.label = self.DESTS[dest]
        self.env = env
        self.binary = binary

    def output(self, ctx: RunContext) -> Path:
        return ctx.rundir / ("oci" if self.dest == "oci" else "out.tar")

    def phases(self, ctx: RunContext) -> list[list[Command]]:
        case = ctx.case
        spec = case.image.spec
        out = self.output(ctx)
        if self.dest == "docker-archive":
            dest = f"docker-archive:{out}:{spec.repo}:{spec.tag}"
        else:
            dest = f"{self.dest}:{out}:{spec.tag}"
        if case.transport.cert_dir is not None:
            src_flags = ["--src-cert-dir", str(case.transport.cert_dir)]
        else:
            src_flags = ["--src-tls-verify=false"]
        argv = [
            self.binary,
            "--policy",
            str(self.env.skopeo_policy),
            "copy",
            "--quiet",
            *src_flags,
            f"docker://{case.ref}",
            dest,
        ]
        return [[Command(argv, self.env.base)]]
