"""TLS options against real HTTPS registries: Docker's certs.d (CA files and client
certificates for mutual TLS), a wrong CA, and every way to mark a registry insecure;
plain HTTP to a non-loopback name (a registry only reachable through a proxy) needs one."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from imgpull.errors import EXIT_NETWORK, EXIT_OK, EXIT_USAGE
from tests.archive_view import ArchiveView
from tests.cli import assert_clean_failure, partial_files, run_imgpull
from tests.conftest import FreshEnv
from tests.fixtures.certs import TestCA
from tests.fixtures.images import StandardImages
from tests.fixtures.proxies import Isolated
from tests.fixtures.registry import RegistryServer, start_registry


@pytest.fixture
def out(fresh_env: FreshEnv, tmp_path: Path) -> Path:
    return tmp_path / "out.tar"


@pytest.fixture
def certs_d(fresh_env: FreshEnv) -> Path:
    """The certs.d root imgpull reads (IMGPULL_CERTS_DIR, set by fresh_env)."""
    root = Path(os.environ["IMGPULL_CERTS_DIR"])
    assert root.is_relative_to(fresh_env.root)
    return root


def host_dir(certs_d: Path, host: str) -> Path:
    directory = certs_d / host
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def mtls_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path, test_ca: TestCA
) -> Iterator[RegistryServer]:
    """HTTPS registry that requires a client certificate issued by ``test_ca``."""
    server = start_registry(
        tmp_path_factory.mktemp("registry-mtls"),
        storage=registry_storage,
        tls=test_ca,
        client_ca=test_ca,
    )
    try:
        yield server
    finally:
        server.stop()


def pull(ref: str, out: Path, *args: str, env: dict[str, str] | None = None) -> ArchiveView:
    result = run_imgpull("pull", ref, "-q", "-o", str(out), *args, env=env)
    assert result.returncode == EXIT_OK, result.stderr.decode(errors="replace")
    assert not partial_files(out)
    return ArchiveView.read(out)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imgpull.toml"
    path.write_text(text)
    return path


# -- certs.d ------------------------------------------------------------------------------


def test_untrusted_without_certs_d(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages
) -> None:
    result = run_imgpull("pull", standard_images.hello.ref(tls_registry.host), "-o", str(out))
    assert_clean_failure(result, code=EXIT_NETWORK, contains="not trusted", output=out)


def test_certs_d_ca_makes_the_registry_trusted(
    out: Path,
    certs_d: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    shutil.copy(test_ca.ca_cert, host_dir(certs_d, tls_registry.host) / "ca.crt")
    ref = standard_images.hello.ref(tls_registry.host)
    view = pull(ref, out)
    assert view.repo_tags == [ref]
    assert view.index_digests == [standard_images.hello.manifest_digest]


def test_certs_d_any_crt_name_counts(
    out: Path,
    certs_d: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
    other_ca: TestCA,
) -> None:
    directory = host_dir(certs_d, tls_registry.host)
    shutil.copy(other_ca.ca_cert, directory / "a-unrelated.crt")
    shutil.copy(test_ca.ca_cert, directory / "b-company-root.crt")
    pull(standard_images.hello.ref(tls_registry.host), out)


def test_certs_d_of_another_host_does_not_apply(
    out: Path,
    certs_d: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    # Docker keys certs.d by host:port; the same host on another port is another registry.
    shutil.copy(test_ca.ca_cert, host_dir(certs_d, "127.0.0.1:1") / "ca.crt")
    shutil.copy(test_ca.ca_cert, host_dir(certs_d, "127.0.0.1") / "ca.crt")
    result = run_imgpull("pull", standard_images.hello.ref(tls_registry.host), "-o", str(out))
    assert_clean_failure(result, code=EXIT_NETWORK, contains="not trusted", output=out)


def test_certs_dir_from_config_file(
    out: Path,
    fresh_env: FreshEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    monkeypatch.delenv("IMGPULL_CERTS_DIR")
    own = tmp_path / "my-certs.d"
    shutil.copy(test_ca.ca_cert, host_dir(own, tls_registry.host) / "ca.crt")
    config = write_config(tmp_path, f'certs_dir = "{own}"\n')
    pull(standard_images.hello.ref(tls_registry.host), out, "--config", str(config))


def test_per_registry_ca_cert_in_config_file(
    out: Path,
    tmp_path: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    config = write_config(
        tmp_path, f'[registries."{tls_registry.host}"]\nca_cert = "{test_ca.ca_cert}"\n'
    )
    pull(standard_images.hello.ref(tls_registry.host), out, "--config", str(config))


def test_certs_d_for_a_non_loopback_name_through_a_proxy(
    out: Path,
    certs_d: Path,
    isolated_tls_registry: Isolated,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    iso = isolated_tls_registry
    shutil.copy(test_ca.ca_cert, host_dir(certs_d, iso.registry_host_inside) / "ca.crt")
    view = pull(iso.ref("test/hello", "1"), out, "--proxy", iso.http_proxy.url)
    assert view.repo_tags == [iso.ref("test/hello", "1")]


# -- mutual TLS -------------------------------------------------------------------------------


def test_mutual_tls_without_client_certificate_fails_cleanly(
    out: Path,
    certs_d: Path,
    mtls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    shutil.copy(test_ca.ca_cert, host_dir(certs_d, mtls_registry.host) / "ca.crt")
    result = run_imgpull("pull", standard_images.hello.ref(mtls_registry.host), "-o", str(out))
    assert_clean_failure(result, code=EXIT_NETWORK, contains="certificate", output=out)
    assert mtls_registry.host in result.stderr.decode()


def test_mutual_tls_failure_says_a_client_certificate_is_needed(
    out: Path,
    certs_d: Path,
    mtls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    shutil.copy(test_ca.ca_cert, host_dir(certs_d, mtls_registry.host) / "ca.crt")
    result = run_imgpull("pull", standard_images.hello.ref(mtls_registry.host), "-o", str(out))
    line = assert_clean_failure(result, code=EXIT_NETWORK, contains="client", output=out)
    assert "not trusted" not in line
    assert "--ca-cert" not in line


def test_mutual_tls_with_certs_d_client_certificate(
    out: Path,
    certs_d: Path,
    mtls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    directory = host_dir(certs_d, mtls_registry.host)
    shutil.copy(test_ca.ca_cert, directory / "ca.crt")
    shutil.copy(test_ca.client_cert, directory / "client.cert")
    shutil.copy(test_ca.client_key, directory / "client.key")
    ref = standard_images.hello.ref(mtls_registry.host)
    view = pull(ref, out)
    assert view.repo_tags == [ref]
    assert {standard_images.hello.config_digest, *standard_images.hello.layer_digests} <= set(
        view.blobs
    )


def test_mutual_tls_client_certificate_with_ca_from_flag(
    out: Path,
    certs_d: Path,
    mtls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    directory = host_dir(certs_d, mtls_registry.host)
    shutil.copy(test_ca.client_cert, directory / "client.cert")
    shutil.copy(test_ca.client_key, directory / "client.key")
    pull(
        standard_images.hello.ref(mtls_registry.host),
        out,
        "--ca-cert",
        str(test_ca.ca_cert),
    )


def test_mutual_tls_mirror(
    out: Path,
    certs_d: Path,
    registry: RegistryServer,
    mtls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    """A mirror's certs.d entry (its own host) gives it CA and client certificate."""
    directory = host_dir(certs_d, mtls_registry.host)
    shutil.copy(test_ca.ca_cert, directory / "ca.crt")
    shutil.copy(test_ca.client_cert, directory / "client.cert")
    shutil.copy(test_ca.client_key, directory / "client.key")
    ref = standard_images.hello.ref(registry.host)
    mark = mtls_registry.log_mark()
    result = run_imgpull(
        "pull", ref, "-o", str(out), "--mirror", f"{registry.host}=https://{mtls_registry.host}"
    )
    assert result.returncode == EXIT_OK, result.stderr.decode()
    assert "warning" not in result.stderr.decode()
    assert mtls_registry.count_requests("GET", r"/v2/test/hello/manifests/1", since=mark) == 1
    assert ArchiveView.read(out).repo_tags == [ref]


def test_client_certificate_without_key_is_a_config_error(
    out: Path,
    certs_d: Path,
    mtls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    directory = host_dir(certs_d, mtls_registry.host)
    shutil.copy(test_ca.ca_cert, directory / "ca.crt")
    shutil.copy(test_ca.client_cert, directory / "client.cert")
    mark = mtls_registry.log_mark()
    result = run_imgpull("pull", standard_images.hello.ref(mtls_registry.host), "-o", str(out))
    line = assert_clean_failure(
        result, code=EXIT_USAGE, contains=str(directory / "client.cert"), output=out
    )
    assert "client.key" in line
    assert mtls_registry.count_requests(since=mark) == 0


def test_unreadable_client_key_fails_cleanly(
    out: Path,
    certs_d: Path,
    mtls_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    directory = host_dir(certs_d, mtls_registry.host)
    shutil.copy(test_ca.ca_cert, directory / "ca.crt")
    shutil.copy(test_ca.client_cert, directory / "client.cert")
    (directory / "client.key").write_text("not a key\n")
    result = run_imgpull("pull", standard_images.hello.ref(mtls_registry.host), "-o", str(out))
    assert result.returncode != EXIT_OK
    assert_clean_failure(result, code=result.returncode, contains="client certificate", output=out)


# -- wrong CA -------------------------------------------------------------------------------


def test_wrong_ca_flag(
    out: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    other_ca: TestCA,
) -> None:
    result = run_imgpull(
        "pull",
        standard_images.hello.ref(tls_registry.host),
        "-o",
        str(out),
        "--ca-cert",
        str(other_ca.ca_cert),
    )
    line = assert_clean_failure(result, code=EXIT_NETWORK, contains="not trusted", output=out)
    assert "--ca-cert" in line
    assert tls_registry.host in line


def test_wrong_ca_in_certs_d(
    out: Path,
    certs_d: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    other_ca: TestCA,
) -> None:
    shutil.copy(other_ca.ca_cert, host_dir(certs_d, tls_registry.host) / "ca.crt")
    result = run_imgpull("pull", standard_images.hello.ref(tls_registry.host), "-o", str(out))
    line = assert_clean_failure(result, code=EXIT_NETWORK, contains="not trusted", output=out)
    assert "--ca-cert" in line


# -- insecure ---------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["--insecure", "--insecure-registry", "config", "daemon.json"])
def test_insecure_skips_verification(
    out: Path,
    fresh_env: FreshEnv,
    tmp_path: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    how: str,
) -> None:
    args: list[str] = []
    if how == "--insecure":
        args = ["--insecure"]
    elif how == "--insecure-registry":
        args = ["--insecure-registry", tls_registry.host]
    elif how == "config":
        config = write_config(tmp_path, f'insecure_registries = ["{tls_registry.host}"]\n')
        args = ["--config", str(config)]
    else:
        (fresh_env.root / "daemon.json").write_text(
            json.dumps({"insecure-registries": [tls_registry.host]})
        )
    ref = standard_images.hello.ref(tls_registry.host)
    view = pull(ref, out, *args)
    assert view.repo_tags == [ref]


def test_insecure_pull_is_quiet_with_q(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages
) -> None:
    result = run_imgpull(
        "pull", "-q", standard_images.hello.ref(tls_registry.host), "-o", str(out), "--insecure"
    )
    assert result.returncode == EXIT_OK
    assert result.stderr.decode() == ""


def test_registries_conf_insecure(
    out: Path,
    fresh_env: FreshEnv,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    (fresh_env.root / "registries.conf").write_text(
        f'[[registry]]\nlocation = "{tls_registry.host}"\ninsecure = true\n'
    )
    pull(standard_images.hello.ref(tls_registry.host), out)


def test_insecure_registry_is_only_that_registry(
    out: Path,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    result = run_imgpull(
        "pull",
        standard_images.hello.ref(tls_registry.host),
        "-o",
        str(out),
        "--insecure-registry",
        "127.0.0.1:1",
    )
    assert_clean_failure(result, code=EXIT_NETWORK, contains="not trusted", output=out)


# -- plain HTTP to a non-loopback name -------------------------------------------------------


def test_plain_http_to_a_non_loopback_name_needs_insecure(
    out: Path, isolated_registry: Isolated, standard_images: StandardImages
) -> None:
    iso = isolated_registry
    mark = iso.registry.log_mark()
    result = run_imgpull(
        "pull", iso.ref("test/hello", "1"), "-o", str(out), "--proxy", iso.http_proxy.url
    )
    assert_clean_failure(result, code=EXIT_NETWORK, contains=iso.registry_host_inside, output=out)
    # Only a TLS handshake was tried: no plain-HTTP request reached the registry.
    assert iso.registry.count_requests("GET", since=mark) == 0


def test_plain_http_failure_hints_at_insecure_registry(
    out: Path, isolated_registry: Isolated, standard_images: StandardImages
) -> None:
    iso = isolated_registry
    result = run_imgpull(
        "pull", iso.ref("test/hello", "1"), "-o", str(out), "--proxy", iso.http_proxy.url
    )
    assert_clean_failure(result, code=EXIT_NETWORK, contains="--insecure-registry", output=out)


@pytest.mark.parametrize("how", ["--insecure-registry", "config"])
def test_plain_http_to_a_non_loopback_name_when_marked_insecure(
    out: Path,
    tmp_path: Path,
    isolated_registry: Isolated,
    standard_images: StandardImages,
    how: str,
) -> None:
    iso = isolated_registry
    if how == "config":
        config = write_config(tmp_path, f'insecure_registries = ["{iso.registry_host_inside}"]\n')
        args = ["--config", str(config)]
    else:
        args = ["--insecure-registry", iso.registry_host_inside]
    view = pull(iso.ref("test/hello", "1"), out, "--proxy", iso.http_proxy.url, *args)
    assert view.index_digests == [standard_images.hello.manifest_digest]


# -- TLS of mirrors ----------------------------------------------------------------------------


def test_untrusted_mirror_is_skipped_for_the_upstream(
    out: Path,
    registry: RegistryServer,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    result = run_imgpull(
        "pull", ref, "-o", str(out), "--mirror", f"{registry.host}=https://{tls_registry.host}"
    )
    assert result.returncode == EXIT_OK, result.stderr.decode()
    warnings = [w for w in result.stderr.decode().splitlines() if w.startswith("warning:")]
    assert len(warnings) == 1 and tls_registry.host in warnings[0], warnings
    assert "not trusted" in warnings[0]
    assert f"  from:     {registry.host}" in result.stderr.decode().splitlines()


def test_insecure_registry_flag_applies_to_a_mirror_host(
    out: Path,
    registry: RegistryServer,
    tls_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    mark = tls_registry.log_mark()
    result = run_imgpull(
        "pull",
        ref,
        "-o",
        str(out),
        "--mirror",
        f"{registry.host}=https://{tls_registry.host}",
        "--insecure-registry",
        tls_registry.host,
    )
    assert result.returncode == EXIT_OK, result.stderr.decode()
    lines = result.stderr.decode().splitlines()
    assert not [line for line in lines if line.startswith("warning:")], lines
    assert f"  from:     {tls_registry.host}" in lines
    assert tls_registry.count_requests("GET", r"/v2/test/hello/manifests/1", since=mark) == 1
