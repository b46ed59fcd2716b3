"""The shared blob cache: warm pulls, a pull killed with SIGKILL resumes, concurrent pulls
share downloads, and `imgpull cache` shows and prunes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.archive_view import ArchiveView
from tests.cli import run_imgpull
from tests.fixtures.faultproxy import FaultProxy, Rule, Throttle
from tests.fixtures.images import BuiltImage, push_random_image
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")

SIZE = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def random_image(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return push_random_image(
        registry.url, "test/random", "8m", [SIZE], seed=7, workdir=tmp_path_factory.mktemp("random")
    )


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "imgpull", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _wait_for_partial(cache: Path, at_least: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partials = [p for p in (cache / "partial").glob("sha256-*") if p.suffix != ".lock"]
        sizes = [p.stat().st_size for p in partials if p.exists()]
        if sizes and max(sizes) >= at_least:
            return max(sizes)
        time.sleep(0.02)
    raise AssertionError("no partial download appeared")


def test_sigkill_mid_blob_resumes_on_next_run(
    fault_proxy: FaultProxy,
    random_image: BuiltImage,
    fresh_env,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    layer = random_image.layers[0]
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.*/blobs/{layer.digest}", action=Throttle(4 * 1024 * 1024))
    )
    out = tmp_path / "x.tar"
    first = _spawn("pull", "-q", fault_proxy.ref("test/random", "8m"), "-o", str(out))
    have = _wait_for_partial(fresh_env.cache_dir, 1024 * 1024)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert not out.exists()
    done = run_imgpull("pull", "-q", fault_proxy.ref("test/random", "8m"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    gets = fault_proxy.requests_to("GET", f"/v2/.*/blobs/{layer.digest}")
    assert len(gets) == 2
    start = int(gets[1].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert start >= have
    assert gets[1].bytes_sent == layer.size - start
    assert layer.digest in ArchiveView.read(out).blobs


def test_concurrent_pulls_download_each_blob_once(
    fault_proxy: FaultProxy, random_image: BuiltImage, tmp_path: Path
) -> None:
    layer = random_image.layers[0]
    fault_proxy.add_rule(
        Rule(
            method="GET",
            path=f"/v2/.*/blobs/{layer.digest}",
            times=None,
            action=Throttle(16 * 1024 * 1024),
        )
    )
    ref = fault_proxy.ref("test/random", "8m")
    pulls = [_spawn("pull", "-q", ref, "-o", str(tmp_path / f"{n}.tar")) for n in range(2)]
    for process in pulls:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert (tmp_path / "0.tar").read_bytes() == (tmp_path / "1.tar").read_bytes()
    sent = sum(r.bytes_sent for r in fault_proxy.requests_to("GET", f"/v2/.*/blobs/{layer.digest}"))
    assert sent == layer.size  # one full transfer, shared through the cache


def test_cache_show_and_prune(
    registry: RegistryServer,
    random_image: BuiltImage,
    fresh_env,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    done = run_imgpull(
        "pull", "-q", f"{registry.host}/test/random:8m", "-o", str(tmp_path / "x.tar")
    )
    assert done.returncode == 0, done.stderr
    shown = run_imgpull("cache")
    assert shown.returncode == 0
    assert b"blobs:    2 " in shown.stdout  # the layer and the config
    pruned = run_imgpull("cache", "prune", "--max-size", "1M")
    assert pruned.returncode == 0, pruned.stderr
    assert not (
        fresh_env.cache_dir / "blobs" / "sha256" / random_image.layers[0].digest[7:]
    ).exists()
    assert run_imgpull("cache", "prune", "--all").returncode == 0
    assert b"blobs:    0 " in run_imgpull("cache").stdout
    bad = run_imgpull("cache", "prune")
    assert bad.returncode == 2 and bad.stderr.startswith(b"imgpull: error:")
