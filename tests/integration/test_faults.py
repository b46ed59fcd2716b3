"""Flaky links, between imgpull and the real registry: an in-process fault-injecting proxy
cuts blobs, answers 503/429, corrupts bytes and redirects blobs to another host."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imgpull.errors import EXIT_INTEGRITY, EXIT_NETWORK
from tests.archive_view import ArchiveView
from tests.cli import assert_clean_failure, run_imgpull
from tests.fixtures.faultproxy import (
    BlobStore,
    Corrupt,
    CutAfter,
    DropConnection,
    FaultProxy,
    RedirectTo,
    Rule,
    Status,
)
from tests.fixtures.images import StandardImages
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")

BLOBS = r"/v2/.*/blobs/sha256:.*"


def _layer(images: StandardImages) -> tuple[str, int]:
    built = images.hello.built
    layer = built.layers[0]
    return layer.digest, layer.size


def test_blob_cut_in_half_resumes_with_one_range_request(
    fault_proxy: FaultProxy,
    registry: RegistryServer,
    standard_images: StandardImages,
    tmp_path: Path,
) -> None:
    digest, size = _layer(standard_images)
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.*/blobs/{digest}", action=CutAfter(size // 2))
    )
    out = tmp_path / "x.tar"
    mark = registry.log_mark()
    done = run_imgpull("pull", "-q", fault_proxy.ref("test/hello", "1"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert digest in ArchiveView.read(out).blobs
    gets = fault_proxy.requests_to("GET", f"/v2/.*/blobs/{digest}")
    assert len(gets) == 2
    assert "range" not in gets[0].headers
    assert gets[1].headers["range"] == f"bytes={size // 2}-"
    assert gets[1].status == 206
    # The registry served the second request as a partial one: no full re-download.
    served = registry.requests("GET", rf"/v2/test/hello/blobs/{digest}", since=mark)
    assert [r.status for r in served] == [200, 206]


def test_503_with_retry_after_is_waited_out(
    fault_proxy: FaultProxy, standard_images: StandardImages, tmp_path: Path
) -> None:
    fault_proxy.add_rule(
        Rule(
            method="GET",
            path=r"/v2/.*/manifests/.*",
            action=Status.service_unavailable(retry_after=1),
        )
    )
    started = time.monotonic()
    done = run_imgpull(
        "pull", "-q", fault_proxy.ref("test/hello", "1"), "-o", str(tmp_path / "x.tar")
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 1.0
    statuses = [r.status for r in fault_proxy.requests_to("GET", r"/v2/.*/manifests/.*")]
    assert statuses[:2] == [503, 200]


def test_docker_hub_rate_limit_gives_one_clear_line(
    fault_proxy: FaultProxy, standard_images: StandardImages, tmp_path: Path
) -> None:
    fault_proxy.add_rule(
        Rule(
            method="GET", path=r"/v2/.*/manifests/.*", times=None, action=Status.too_many_requests()
        )
    )
    out = tmp_path / "x.tar"
    done = run_imgpull("pull", fault_proxy.ref("test/hello", "1"), "-o", str(out), "--retries", "1")
    line = assert_clean_failure(done, code=1, contains="rate limit", output=out)
    assert "ratelimit-remaining=0" in line.lower()
    assert "log in" in line and "mirror" in line


def test_corrupted_blob_fails_cleanly_and_is_not_cached(
    fault_proxy: FaultProxy,
    standard_images: StandardImages,
    fresh_env,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    digest, _ = _layer(standard_images)
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.*/blobs/{digest}", times=None, action=Corrupt(offset=1000))
    )
    out = tmp_path / "x.tar"
    done = run_imgpull("pull", "-q", fault_proxy.ref("test/hello", "1"), "-o", str(out))
    assert_clean_failure(done, code=EXIT_INTEGRITY, contains="digest", output=out)
    assert not (fresh_env.cache_dir / "blobs" / "sha256" / digest.split(":")[1]).exists()


def test_dropped_connection_is_retried(
    fault_proxy: FaultProxy, standard_images: StandardImages, tmp_path: Path
) -> None:
    fault_proxy.add_rule(Rule(method="GET", path=r"/v2/.*/manifests/.*", action=DropConnection()))
    done = run_imgpull(
        "pull", "-q", fault_proxy.ref("test/hello", "1"), "-o", str(tmp_path / "x.tar")
    )
    assert done.returncode == 0, done.stderr


def test_blob_cut_every_time_reports_what_was_left(
    fault_proxy: FaultProxy, standard_images: StandardImages, tmp_path: Path
) -> None:
    digest, size = _layer(standard_images)
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.*/blobs/{digest}", times=None, action=CutAfter(1000))
    )
    out = tmp_path / "x.tar"
    done = run_imgpull(
        "pull", "-q", fault_proxy.ref("test/hello", "1"), "-o", str(out), "--retries", "2"
    )
    line = assert_clean_failure(done, code=EXIT_NETWORK, contains="left", output=out)
    assert digest.split(":")[1][:12] in line
    # Each attempt resumed from where the previous one stopped.
    ranges = [
        r.headers.get("range") for r in fault_proxy.requests_to("GET", f"/v2/.*/blobs/{digest}")
    ]
    assert ranges == [None, "bytes=1000-", "bytes=2000-"]
    assert str(size - 3000) in line


def test_blob_redirect_to_another_host_never_carries_credentials(
    fault_proxy_factory,  # type: ignore[no-untyped-def]
    basic_registry: RegistryServer,
    blob_store: BlobStore,
    standard_images: StandardImages,
    tmp_path: Path,
) -> None:
    proxy: FaultProxy = fault_proxy_factory(basic_registry)
    proxy.add_rule(Rule(method="GET", path=BLOBS, times=None, action=RedirectTo(blob_store.url)))
    out = tmp_path / "x.tar"
    done = run_imgpull(
        "pull",
        "-q",
        proxy.ref("test/hello", "1"),
        "-o",
        str(out),
        "-u",
        "alice",
        "--password-stdin",
        input=b"wonderland-secret\n",
    )
    assert done.returncode == 0, done.stderr
    assert proxy.requests_to("GET", r"/v2/.*/manifests/.*")[-1].headers.get("authorization")
    assert blob_store.requests, "the blobs came from the redirect target"
    assert not blob_store.saw_authorization()
    assert set(standard_images.hello.layer_digests) <= set(ArchiveView.read(out).blobs)


def test_overall_timeout_gives_up(
    fault_proxy: FaultProxy, standard_images: StandardImages, tmp_path: Path
) -> None:
    fault_proxy.add_rule(
        Rule(
            method="GET",
            path=r"/v2/.*/manifests/.*",
            times=None,
            action=Status.service_unavailable(retry_after=2),
        )
    )
    out = tmp_path / "x.tar"
    started = time.monotonic()
    done = run_imgpull(
        "pull",
        fault_proxy.ref("test/hello", "1"),
        "-o",
        str(out),
        "--retries",
        "10",
        "--timeout",
        "3",
    )
    assert time.monotonic() - started < 10
    assert done.returncode != 0
    assert b"Traceback" not in done.stderr
    assert not out.exists()
