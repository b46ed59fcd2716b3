"""The offline demo as a newcomer meets it: a plain ``pip install .`` of a copy of this
checkout, then ``scripts/demo``; its clean failures; its cleanup on Ctrl-C and SIGTERM; and
the podman runtime choice for each cgroup layout.

The demo's podman is the machine's own, given a private storage (CONTAINERS_STORAGE_CONF)
so the test leaves nothing in /var/lib/containers; docker and containerd are pointed at
sockets nobody serves, so "installed but no daemon" is what the demo meets for both.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from imgpull.cli.completion import subcommands_of
from imgpull.cli.parser import build_parser
from imgpull.demo import DEMO_OUTPUT
from imgpull.demo.cli import add_demo, cmd_demo
from imgpull.demo.image import is_static_elf
from imgpull.demo.oci_runtime import (
    CgroupLayout,
    PodmanRuntime,
    cgroup_layout,
    choose_podman_runtime,
)
from imgpull.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
NOT_COPIED = (".venv", ".git", "__pycache__", "*.egg-info", ".*_cache", "build", "dist")

# /proc/self/mountinfo lines for the three layouts (and a machine without cgroups).
_V1 = "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
_TMPFS = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
_UNIFIED_V2 = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
_V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
_PROC = "22 1 0:20 / /proc rw - proc proc rw\n"


def _demo_env(tmp: Path, path_prefix: Path | None = None) -> dict[str, str]:
    """The caller's environment with a private TMPDIR, podman storage, and no daemons."""
    storage = tmp / "podman-storage"
    storage.mkdir(parents=True)
    conf = tmp / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{storage / "root"}"\n'
        f'runroot = "{storage / "run"}"\n'
    )
    (tmp / "tmp").mkdir()
    env = dict(os.environ)
    env.update(
        TMPDIR=str(tmp / "tmp"),
        CONTAINERS_STORAGE_CONF=str(conf),
        DOCKER_HOST=f"unix://{tmp / 'no-dockerd.sock'}",
        CONTAINERD_ADDRESS=str(tmp / "no-containerd.sock"),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    if path_prefix is not None:
        env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    return env


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline:
                found.append(cmdline)
    return found


def _assert_nothing_left(tmp: Path) -> None:
    assert list((tmp / "tmp").iterdir()) == []  # the demo's temporary directory is gone
    assert _processes_mentioning(str(tmp / "tmp")) == []  # so is its registry


def _podman_images(env: dict[str, str]) -> str:
    done = subprocess.run(
        ["podman", "images", "-q"], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_fresh_install_pulls_loads_and_runs_the_demo(tmp_path: Path) -> None:
    """README: ``python3 -m venv v && v/bin/pip install . && PATH=$PWD/v/bin:$PATH
    scripts/demo`` in a copy of the checkout (uncommitted files included)."""
    python3 = shutil.which("python3")
    assert python3, "python3 is needed on PATH"
    assert shutil.which("podman"), "podman is needed (apt-get install podman)"
    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(*NOT_COPIED))
    env = _demo_env(tmp_path, path_prefix=checkout / "v" / "bin")
    for step in ([python3, "-m", "venv", "v"], ["v/bin/pip", "install", "-q", "."]):
        done = subprocess.run(step, cwd=checkout, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{step}: {done.stdout}\n{done.stderr}"

    demo = subprocess.run(
        [str(checkout / "scripts" / "demo")],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = demo.stdout + demo.stderr
    assert demo.returncode == 0, said
    assert "Traceback" not in said
    assert f"      {DEMO_OUTPUT}\n" in said  # the container's own line
    assert "ran with podman" in said
    docker = "installed, but it does not answer" if shutil.which("docker") else "not installed"
    assert f"==> docker: skipped ({docker}" in said
    _assert_nothing_left(tmp_path)
    assert _podman_images(env) == ""  # the demo removed the image it loaded


def _demo_module(
    tmp: Path, *args: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = _demo_env(tmp)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [sys.executable, "-m", "imgpull.demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_docker_registry_one_line_names_the_package(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    done = _demo_module(tmp_path, path=str(empty))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "imgpull demo: error: docker-registry is not installed "
        "(install it: apt-get install docker-registry)"
    ]


@pytest.mark.parametrize(
    ("busybox", "says"),
    [
        ("missing", "is missing (install it: apt-get install busybox-static)"),
        ("/bin/ls", "is not a static executable"),
    ],
)
def test_without_static_busybox_one_line_names_the_package(
    tmp_path: Path, busybox: str, says: str
) -> None:
    path = str(tmp_path / busybox) if busybox == "missing" else busybox
    done = _demo_module(tmp_path, "--busybox", path)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("imgpull demo: error: "), done.stderr
    assert says in lines[0] and "busybox-static" in lines[0]
    _assert_nothing_left(tmp_path)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_demo_stops_the_registry_and_removes_its_files(
    tmp_path: Path, signum: signal.Signals
) -> None:
    env = _demo_env(tmp_path)
    demo = subprocess.Popen(
        [sys.executable, "-m", "imgpull.demo", "--engine", "podman"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stderr is not None
    seen = []
    for line in demo.stderr:
        seen.append(line)
        if "started a throwaway registry" in line:
            demo.send_signal(signum)
            break
    rest = demo.stderr.read()
    assert demo.wait(timeout=60) == 130, "".join(seen) + rest
    assert "imgpull demo: interrupted" in rest and "Traceback" not in rest
    _assert_nothing_left(tmp_path)


# -- which podman runtime for which cgroup layout ------------------------------------------


@pytest.mark.parametrize(
    ("mountinfo", "layout"),
    [
        (_PROC + _V2, "unified"),
        (_PROC + _TMPFS + _V1 + _UNIFIED_V2, "hybrid"),
        (_PROC + _TMPFS + _V1, "legacy"),
        (_PROC, "none"),
    ],
)
def test_cgroup_layout_is_read_from_mountinfo(mountinfo: str, layout: str) -> None:
    assert cgroup_layout(mountinfo) == layout


def test_a_later_mount_on_the_same_point_wins() -> None:
    assert cgroup_layout(_PROC + _TMPFS + _V1 + _V2) == "unified"


def _which(*present: str) -> Callable[[str], str | None]:
    return lambda name: f"/usr/bin/{name}" if name in present else None


@pytest.mark.parametrize(
    ("present", "layout", "controllers", "expected"),
    [
        (("crun", "runc"), "unified", "cpu memory pids", PodmanRuntime("/usr/bin/crun", True)),
        (("crun", "runc"), "legacy", "", PodmanRuntime("/usr/bin/crun", True)),
        # crun refuses every container here, whatever --cgroups says: runc, with cgroups.
        (("crun", "runc"), "hybrid", "hugetlb", PodmanRuntime("/usr/bin/runc", False)),
        (("crun", "runc"), "hybrid", "", PodmanRuntime("/usr/bin/crun", True)),
        (("runc",), "unified", "", PodmanRuntime("/usr/bin/runc", False)),
        (("crun",), "hybrid", "hugetlb", PodmanRuntime(None, False)),
    ],
)
def test_podman_runtime_for_each_layout(
    present: tuple[str, ...], layout: CgroupLayout, controllers: str, expected: PodmanRuntime
) -> None:
    chosen = choose_podman_runtime(which=_which(*present), layout=layout, controllers=controllers)
    assert chosen == expected
    assert ("--cgroups=disabled" in chosen.run_options()) is expected.cgroups_disabled


def test_only_a_static_busybox_is_accepted() -> None:
    assert is_static_elf(Path("/bin/busybox").read_bytes())
    assert not is_static_elf(Path("/bin/ls").read_bytes())
    assert not is_static_elf(b"#!/bin/sh\n")


def test_demo_command_plugs_into_the_main_parser() -> None:
    parser = build_parser()
    if "demo" not in subcommands_of(parser).choices:  # until build_parser adds it itself
        add_demo(subcommands_of(parser))
    args = parser.parse_args(["demo", "--engine", "podman", "-o", "kept.tar"])
    assert (args.run, args.engine, args.output) == (cmd_demo, ["podman"], Path("kept.tar"))
    with pytest.raises(UsageError):
        parser.parse_args(["demo", "--engine", "lxc"])
