"""Archives from `docker save` (uncompressed layers) and imgpull itself, pushed into a
registry, pulled back and run by docker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import run_imgpull
from tests.fixtures.images import StandardImages
from tests.fixtures.loaders import DockerDaemon, Podman
from tests.fixtures.registry import RegistryServer, start_registry

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh_env")]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path / "target", storage=tmp_path / "target-storage")
    yield server
    server.stop()


def _ok(*args: str) -> None:
    done = run_imgpull(*args)
    assert done.returncode == 0, done.stderr.decode()


def test_docker_save_archive_pushes_and_runs(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
) -> None:
    ref = f"{registry.host}/test/layers:1"
    pulled = tmp_path / "pulled.tar"
    _ok("pull", "-q", ref, "-o", str(pulled))
    clean_dockerd.load(pulled)
    saved = tmp_path / "saved.tar"
    clean_dockerd.docker("save", "-o", str(saved), ref)  # Docker 20.10: uncompressed layers
    _ok("push", "-q", str(saved), f"{target.host}/from-docker")
    back = f"{target.host}/from-docker/test/layers:1"
    again = tmp_path / "again.tar"
    _ok("pull", "-q", back, "-o", str(again))
    clean_dockerd.remove_all_images()
    clean_dockerd.load(again)
    # Same config, so the same image ID: the diffIDs survived compression on the way.
    assert clean_dockerd.inspect_image(back)["Id"] == standard_images.layers.config_digest
    lines = [line.rstrip() for line in clean_dockerd.run(back).splitlines()]
    assert lines == ["/data:", "b", "c", "dir", "", "/data/dir:", "y"]


def test_podman_save_archive_pushes_and_runs(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    clean_podman: Podman,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
) -> None:
    ref = f"{registry.host}/test/hello:1"
    pulled = tmp_path / "pulled.tar"
    _ok("pull", "-q", ref, "-o", str(pulled))
    clean_podman.load(pulled)
    saved = tmp_path / "podman.tar"
    clean_podman.podman("save", "-o", str(saved), ref)
    _ok("push", "-q", str(saved), f"{target.host}/from-podman/hello:1")
    again = tmp_path / "again.tar"
    _ok("pull", "-q", f"{target.host}/from-podman/hello:1", "-o", str(again))
    clean_dockerd.load(again)
    out = clean_dockerd.run(f"{target.host}/from-podman/hello:1").strip()
    assert out == standard_images.hello.expected_output[0]
