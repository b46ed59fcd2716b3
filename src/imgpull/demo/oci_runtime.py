"""Which OCI runtime and cgroup option let ``podman run`` work on this host's cgroup layout.

crun and runc tell three layouts apart, by what is mounted on ``/sys/fs/cgroup``:

* ``unified`` (cgroup v2): a ``cgroup2`` file system;
* ``legacy`` (cgroup v1): a ``tmpfs`` holding one v1 hierarchy per controller;
* ``hybrid``: v1 hierarchies plus a ``cgroup2`` on ``/sys/fs/cgroup/unified`` (systemd's
  default on older distributions, and many CI virtual machines).

What works there, as root, with podman 4.3, crun 1.8 and runc 1.1 (each layout checked by
mounting it in a private mount namespace):

* crun with ``--cgroups=disabled`` creates no cgroup, so it also works where cgroups
  cannot be written (cgroup v2 without delegated controllers, nested containers), except
  in hybrid mode when the v2 hierarchy offers any controller: then crun refuses every
  container ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"),
  whatever ``--cgroups`` says, because it checks before looking at the cgroup manager.
* runc handles all three layouts, but podman refuses ``--cgroups=disabled`` with it
  ("not compatible with NoCgroups"), so with runc containers get cgroups (cgroupfs).

Hence: crun with cgroups disabled wherever crun can run, runc with cgroups elsewhere.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CgroupLayout = Literal["unified", "hybrid", "legacy", "none"]

CGROUP_ROOT = "/sys/fs/cgroup"
_UNIFIED_CONTROLLERS = Path(CGROUP_ROOT, "unified", "cgroup.controllers")


@dataclass(frozen=True, slots=True)
class PodmanRuntime:
    """The ``--runtime`` to give podman (None: its own default) and whether cgroups are off."""

    runtime: str | None
    cgroups_disabled: bool

    @property
    def name(self) -> str:
        return Path(self.runtime).name if self.runtime else "podman's default runtime"

    def global_options(self) -> list[str]:
        """Options for every podman command (``--runtime`` is a global option)."""
        return ["--runtime", self.runtime] if self.runtime else []

    def run_options(self) -> list[str]:
        """Options for ``podman run``."""
        return ["--cgroups=disabled"] if self.cgroups_disabled else []


def _mount_types(mountinfo: str) -> dict[str, str]:
    """Mount point -> file system type; a later line (mounted on top) wins."""
    types: dict[str, str] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        types[fields[4].replace("\\040", " ")] = right.split()[0]
    return types


def cgroup_layout(mountinfo: str | None = None) -> CgroupLayout:
    """The layout of ``/sys/fs/cgroup``, from ``/proc/self/mountinfo`` (or the text given)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:  # not Linux, or no /proc: nothing podman could use either
            return "none"
    types = _mount_types(mountinfo)
    root = types.get(CGROUP_ROOT)
    if root == "cgroup2":
        return "unified"
    if types.get(f"{CGROUP_ROOT}/unified") == "cgroup2":
        return "hybrid"
    v1 = any(t == "cgroup" and p.startswith(CGROUP_ROOT + "/") for p, t in types.items())
    return "legacy" if root == "cgroup" or v1 else "none"


def unified_controllers() -> str:
    """The controllers of the v2 hierarchy of a hybrid layout ('' when none or absent)."""
    try:
        return _UNIFIED_CONTROLLERS.read_text().strip()
    except OSError:
        return ""


def crun_can_run(layout: CgroupLayout, controllers: str) -> bool:
    """False only where crun refuses every container: hybrid with v2 controllers."""
    return not (layout == "hybrid" and controllers.strip())


def choose_podman_runtime(
    *,
    which: Callable[[str], str | None] = shutil.which,
    layout: CgroupLayout | None = None,
    controllers: str | None = None,
) -> PodmanRuntime:
    """crun with cgroups disabled where crun can run, else runc with cgroups, else podman's
    default (whose own error then says what is wrong)."""
    crun = which("crun")
    layout = cgroup_layout() if layout is None else layout
    controllers = unified_controllers() if controllers is None else controllers
    if crun and crun_can_run(layout, controllers):
        return PodmanRuntime(crun, cgroups_disabled=True)
    runc = which("runc")
    if runc:
        return PodmanRuntime(runc, cgroups_disabled=False)
    return PodmanRuntime(None, cgroups_disabled=False)


def runtime_from_name(name: str) -> PodmanRuntime:
    """An explicitly chosen runtime (a name on PATH or a path): crun runs without cgroups."""
    path = shutil.which(name) or name
    return PodmanRuntime(path, cgroups_disabled="crun" in Path(path).name)
