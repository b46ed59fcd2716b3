"""Fixtures for the real loaders: ``dockerd``, ``containerd``, ``podman``, ``skopeo``, ``umoci``.

A loader that is missing or does not start FAILS the test (``pytest.fail``): a skipped
loader check would let broken archives through.  All state lives in one short temp dir
below /tmp that is removed at session end (dockerd and its containerd are stopped first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.fixtures.loaders import (
    Containerd,
    DockerDaemon,
    LoaderError,
    Podman,
    Skopeo,
    Umoci,
    make_workdir,
    remove_workdir,
)

T = TypeVar("T")

#: Filled by the fixtures, printed in the terminal summary.
LOADER_TIMINGS: dict[str, float] = {}


def _or_fail(make: Callable[[], T]) -> T:
    try:
        return make()
    except LoaderError as exc:
        error = str(exc)
    pytest.fail(f"loader unavailable: {error}", pytrace=False)


@pytest.fixture(scope="session")
def loaders_workdir() -> Iterator[Path]:
    path = make_workdir()
    yield path
    remove_workdir(path)


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    """A private containerd 1.6 for each module that asks (its images do not outlive
    the module); its own workdir, removed after."""
    workdir = make_workdir("imgpull-ctrd-")
    try:
        daemon = _or_fail(lambda: Containerd(workdir / "c").start())
    except BaseException:
        remove_workdir(workdir)
        raise
    try:
        yield daemon
    finally:
        daemon.stop()
        remove_workdir(workdir)


@pytest.fixture(scope="session")
def dockerd(loaders_workdir: Path) -> Iterator[DockerDaemon]:
    """A private dockerd 20.10 (vfs, no network, cgroupfs) for the whole session."""
    daemon = _or_fail(lambda: DockerDaemon(loaders_workdir / "docker").start())
    if daemon.startup_seconds is not None:
        LOADER_TIMINGS["dockerd startup"] = daemon.startup_seconds
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def clean_dockerd(dockerd: DockerDaemon) -> DockerDaemon:
    """``dockerd`` with no images or containers left over from earlier tests."""
    _or_fail(dockerd.remove_all_images)
    return dockerd


@pytest.fixture(scope="session")
def podman(loaders_workdir: Path) -> Iterator[Podman]:
    """podman 4.3 as root with private vfs storage, cgroupfs, file events, no network."""

    def make() -> Podman:
        p = Podman(loaders_workdir / "podman")
        p.version()  # fails here, not in the first test, if podman cannot run at all
        return p

    instance = _or_fail(make)
    try:
        yield instance
    finally:
        instance.cleanup()


@pytest.fixture
def clean_podman(podman: Podman) -> Podman:
    """``podman`` with no images or containers left over from earlier tests."""
    _or_fail(podman.reset)
    return podman


@pytest.fixture(scope="session")
def skopeo(loaders_workdir: Path) -> Skopeo:
    """skopeo with a permissive policy file (no /etc/containers/policy.json needed)."""

    def make() -> Skopeo:
        s = Skopeo(loaders_workdir / "skopeo")
        s.skopeo("--version", timeout=30)
        return s

    return _or_fail(make)


@pytest.fixture(scope="session")
def umoci() -> Umoci:
    def make() -> Umoci:
        u = Umoci()
        u.umoci("--version", timeout=30)
        return u

    return _or_fail(make)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, seconds in LOADER_TIMINGS.items():
        terminalreporter.write_line(f"loaders: {name} took {seconds:.2f}s")
