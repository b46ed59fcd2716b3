"""Pulls through real proxies (tinyproxy for HTTP/CONNECT, microsocks for SOCKS5) to a
registry in a network namespace that only the proxies can reach, so no test can pass by
going around the proxy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from imgpull.errors import EXIT_NETWORK
from tests.archive_view import ArchiveView
from tests.cli import assert_clean_failure, run_imgpull
from tests.fixtures.certs import TestCA
from tests.fixtures.images import StandardImages
from tests.fixtures.proxies import Isolated
from tests.fixtures.proxy_fixtures import PROXY_PASSWORD, PROXY_USER
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")


def _pull(iso: Isolated, out: Path, *args: str, env: dict[str, str] | None = None) -> None:
    done = run_imgpull("pull", "-q", iso.ref("test/hello", "1"), "-o", str(out), *args, env=env)
    assert done.returncode == 0, done.stderr.decode()


def _check(out: Path, images: StandardImages) -> None:
    assert ArchiveView.read(out).index_digests == [images.hello.manifest_digest]


def test_registry_is_unreachable_without_a_proxy(
    isolated_registry: Isolated, standard_images: StandardImages, tmp_path: Path
) -> None:
    out = tmp_path / "x.tar"
    done = run_imgpull(
        "pull",
        isolated_registry.ref("test/hello", "1"),
        "-o",
        str(out),
        "--insecure",
        "--retries",
        "0",
    )
    assert_clean_failure(done, code=EXIT_NETWORK, contains="resolve", output=out)


@pytest.mark.parametrize("how", ["env", "flag"])
def test_http_proxy(
    isolated_registry: Isolated, standard_images: StandardImages, tmp_path: Path, how: str
) -> None:
    iso = isolated_registry
    out = tmp_path / "x.tar"
    mark = iso.http_proxy.log_mark()
    if how == "env":
        _pull(
            iso,
            out,
            "--insecure",
            env={"HTTP_PROXY": iso.http_proxy.url, "HTTPS_PROXY": iso.http_proxy.url},
        )
    else:
        _pull(iso, out, "--insecure", "--proxy", iso.http_proxy.url)
    _check(out, standard_images)
    seen = iso.http_proxy.requests_seen(since=mark)
    assert any(iso.registry_host_inside in target for target in seen), seen


@pytest.mark.parametrize("how", ["env", "flag"])
def test_https_registry_through_connect(
    isolated_tls_registry: Isolated,
    standard_images: StandardImages,
    test_ca: TestCA,
    tmp_path: Path,
    how: str,
) -> None:
    iso = isolated_tls_registry
    out = tmp_path / "x.tar"
    mark = iso.http_proxy.log_mark()
    ca = ["--ca-cert", str(test_ca.ca_cert)]
    if how == "env":
        _pull(iso, out, *ca, env={"https_proxy": iso.http_proxy.url})
    else:
        _pull(iso, out, *ca, "--proxy", iso.http_proxy.url)
    _check(out, standard_images)
    assert f"{iso.registry_host_inside}" in iso.http_proxy.requests_seen(since=mark)


@pytest.mark.parametrize("how", ["env", "flag"])
def test_socks5h_resolves_names_through_the_proxy(
    isolated_tls_registry: Isolated,
    standard_images: StandardImages,
    test_ca: TestCA,
    tmp_path: Path,
    how: str,
) -> None:
    iso = isolated_tls_registry
    out = tmp_path / "x.tar"
    ca = ["--ca-cert", str(test_ca.ca_cert)]
    if how == "env":
        _pull(iso, out, *ca, env={"ALL_PROXY": iso.socks_proxy.url_h})
    else:
        _pull(iso, out, *ca, "--proxy", iso.socks_proxy.url_h)
    _check(out, standard_images)


def test_socks5_without_h_cannot_resolve_the_private_name(
    isolated_registry: Isolated, standard_images: StandardImages, tmp_path: Path
) -> None:
    out = tmp_path / "x.tar"
    done = run_imgpull(
        "pull",
        isolated_registry.ref("test/hello", "1"),
        "-o",
        str(out),
        "--insecure",
        "--retries",
        "0",
        "--proxy",
        isolated_registry.socks_proxy.url,
    )
    assert done.returncode != 0
    assert b"Traceback" not in done.stderr
    assert not out.exists()


def test_flag_wins_over_environment(
    isolated_registry: Isolated,
    standard_images: StandardImages,
    dead_proxy_url: str,
    tmp_path: Path,
) -> None:
    out = tmp_path / "x.tar"
    _pull(
        isolated_registry,
        out,
        "--insecure",
        "--proxy",
        isolated_registry.http_proxy.url,
        env={"HTTP_PROXY": dead_proxy_url, "HTTPS_PROXY": dead_proxy_url},
    )
    _check(out, standard_images)


@pytest.mark.parametrize("kind", ["http", "socks"])
def test_proxy_credentials(
    isolated_auth_registry: Isolated, standard_images: StandardImages, tmp_path: Path, kind: str
) -> None:
    iso = isolated_auth_registry
    proxy = iso.http_proxy.url if kind == "http" else iso.socks_proxy.url_h
    assert f"{PROXY_USER}:{PROXY_PASSWORD}@" in proxy
    out = tmp_path / "x.tar"
    _pull(iso, out, "--insecure", "--proxy", proxy)
    _check(out, standard_images)
    wrong = proxy.replace(PROXY_PASSWORD, "wrong-password")
    bad = tmp_path / "bad.tar"
    done = run_imgpull(
        "pull",
        iso.ref("test/hello", "1"),
        "-o",
        str(bad),
        "--insecure",
        "--retries",
        "0",
        "--proxy",
        wrong,
    )
    line = assert_clean_failure(done, code=EXIT_NETWORK, contains="proxy", output=bad)
    assert "wrong-password" not in line


def test_proxy_down_fails_fast_naming_the_proxy(
    isolated_registry: Isolated, dead_proxy_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "x.tar"
    started = time.monotonic()
    done = run_imgpull(
        "pull",
        isolated_registry.ref("test/hello", "1"),
        "-o",
        str(out),
        "--insecure",
        "--proxy",
        dead_proxy_url,
    )
    line = assert_clean_failure(done, code=EXIT_NETWORK, contains="proxy", output=out)
    assert dead_proxy_url.split("//")[1] in line
    assert time.monotonic() - started < 15


def test_no_proxy_and_loopback_go_direct(
    registry: RegistryServer,
    standard_images: StandardImages,
    isolated_registry: Isolated,
    dead_proxy_url: str,
    tmp_path: Path,
) -> None:
    # Loopback registries are never proxied, as with Go's net/http (and so docker).
    out = tmp_path / "x.tar"
    done = run_imgpull(
        "pull",
        "-q",
        f"{registry.host}/test/hello:1",
        "-o",
        str(out),
        env={"HTTP_PROXY": dead_proxy_url, "HTTPS_PROXY": dead_proxy_url},
    )
    assert done.returncode == 0, done.stderr
    # NO_PROXY sends the isolated registry's name direct, where it does not resolve.
    blocked = tmp_path / "blocked.tar"
    done = run_imgpull(
        "pull",
        isolated_registry.ref("test/hello", "1"),
        "-o",
        str(blocked),
        "--insecure",
        "--retries",
        "0",
        "--proxy",
        isolated_registry.http_proxy.url,
        env={"NO_PROXY": ".imgpull.test"},
    )
    assert_clean_failure(done, code=EXIT_NETWORK, contains="resolve", output=blocked)
