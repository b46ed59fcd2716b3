"""``pull --no-cache`` into a regular file writes each blob once, in its place in the
archive (issue 12): the same bytes as a pull through the cache, nothing written
anywhere else, and the cut, corrupted and slow blobs of a real network handled there
as they are in the cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from imgpull.errors import EXIT_INTEGRITY
from tests.archive_view import ArchiveView
from tests.cli import assert_clean_failure, run_imgpull
from tests.conftest import FreshEnv
from tests.fixtures.faultproxy import ConnectionThrottle, Corrupt, CutAfter, FaultProxy, Rule
from tests.fixtures.images import BuiltImage, MiB, StandardImages, push_random_image
from tests.fixtures.procwatch import watch_imgpull
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")


def _empty_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "out"  # beside fresh_env's own directory
    directory.mkdir()
    return directory


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_the_archive_is_the_same_bytes_and_nothing_else_is_written(
    registry: RegistryServer, standard_images: StandardImages, fresh_env: FreshEnv, tmp_path: Path
) -> None:
    ref = f"{registry.host}/test/layers:1"
    cached, direct = tmp_path / "cached" / "out.tar", tmp_path / "direct" / "out.tar"
    cached.parent.mkdir()
    direct.parent.mkdir()
    assert run_imgpull("pull", "-q", ref, "-o", str(cached)).returncode == 0
    cache_before = _files_under(fresh_env.cache_dir)

    done = run_imgpull("pull", "-q", "--no-cache", ref, "-o", str(direct))

    assert done.returncode == 0, done.stderr
    assert direct.read_bytes() == cached.read_bytes()
    assert os.listdir(direct.parent) == ["out.tar"]  # no throwaway store beside it
    assert _files_under(fresh_env.cache_dir) == cache_before
    blobs = ArchiveView.read(direct).blobs  # each checked against its digest
    assert set(standard_images.layers.layer_digests) <= set(blobs)


def test_a_blob_cut_in_half_goes_on_in_place_with_one_range_request(
    fault_proxy: FaultProxy, standard_images: StandardImages, tmp_path: Path
) -> None:
    layer = standard_images.hello.layer_digests[0]
    size = len(ArchiveView.read(_pulled(fault_proxy, tmp_path / "first.tar")).blobs[layer])
    fault_proxy.reset()
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.*/blobs/{layer}", action=CutAfter(size // 2))
    )
    out = tmp_path / "x.tar"

    _pulled(fault_proxy, out)

    gets = fault_proxy.requests_to("GET", f"/v2/.*/blobs/{layer}")
    assert [g.headers.get("range") for g in gets] == [None, f"bytes={size // 2}-"]
    assert layer in ArchiveView.read(out).blobs


def _pulled(proxy: FaultProxy, out: Path) -> Path:
    done = run_imgpull("pull", "-q", "--no-cache", proxy.ref("test/hello", "1"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_a_blob_that_never_matches_leaves_nothing(
    fault_proxy: FaultProxy, standard_images: StandardImages, tmp_path: Path
) -> None:
    layer = standard_images.hello.layer_digests[0]
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.*/blobs/{layer}", times=None, action=Corrupt(offset=7))
    )
    out = _empty_dir(tmp_path) / "x.tar"

    done = run_imgpull(
        "pull", "-q", "--no-cache", fault_proxy.ref("test/hello", "1"), "-o", str(out)
    )

    assert_clean_failure(done, code=EXIT_INTEGRITY, contains=layer.removeprefix("sha256:")[:12])
    assert os.listdir(out.parent) == []


def test_wrong_bytes_from_a_mirror_are_written_over_by_the_registrys(
    registry: RegistryServer,
    standard_images: StandardImages,
    fault_proxy: FaultProxy,
    tmp_path: Path,
) -> None:
    layer = standard_images.hello.layer_digests[0]
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.*/blobs/{layer}", times=None, action=Corrupt(offset=100))
    )
    out = tmp_path / "x.tar"
    ref = f"{registry.host}/test/hello:1"
    mirror = ["--mirror", f"{registry.host}={fault_proxy.url}"]
    mark = registry.log_mark()

    done = run_imgpull("pull", "-q", "--no-cache", ref, "-o", str(out), *mirror)

    assert done.returncode == 0, done.stderr
    assert fault_proxy.requests_to("GET", f"/v2/.*/blobs/{layer}")  # the mirror's bytes first
    # then the registry's own, written over them (the proxy's come through the registry
    # too, so it serves the layer at least twice)
    assert len(registry.requests("GET", rf"/v2/test/hello/blobs/{layer}", since=mark)) >= 2
    assert layer in ArchiveView.read(out).blobs


@pytest.fixture(scope="module")
def big_image(registry: RegistryServer) -> BuiltImage:
    return push_random_image(registry.url, "inplace/big", "1", [48 * MiB], seed="in-place")


def test_a_slow_big_blob_lands_in_pieces_in_its_place(
    registry: RegistryServer,
    big_image: BuiltImage,
    fault_proxy_factory: Callable[..., FaultProxy],
    tmp_path: Path,
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.set_link(ConnectionThrottle(8_000_000))  # worth several pieces
    out = _empty_dir(tmp_path) / "x.tar"

    watched = watch_imgpull(
        "pull", "-q", "--no-cache", proxy.ref("inplace/big", "1"), "-o", str(out), time_limit=60
    )

    assert watched.returncode == 0, watched.describe()
    assert watched.stderr == b"", watched.describe()
    digest = big_image.layers[0].digest
    ranged = [r for r in proxy.requests_to("GET", f"/v2/.+/blobs/{digest}") if "range" in r.headers]
    assert len(ranged) >= 2, [r.headers for r in proxy.requests_to("GET", "/v2/.+/blobs/.+")]
    assert digest in ArchiveView.read(out).blobs
    assert os.listdir(out.parent) == ["x.tar"]
