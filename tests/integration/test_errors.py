"""Every way ``imgpull pull`` can fail, against real registries: one clean line, the right
exit code, no traceback, nothing on stdout and no archive or temp file left behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imgpull.errors import (
    EXIT_AUTH,
    EXIT_INTEGRITY,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.cli import assert_clean_failure, partial_files, run_imgpull
from tests.conftest import (
    BASIC_PASSWORD,
    BASIC_USER,
    TOKEN_PASSWORD,
    TOKEN_USER,
    FreshEnv,
)
from tests.fixtures.certs import TestCA
from tests.fixtures.images import StandardImages, build_image, build_layer, push_image
from tests.fixtures.registry import RegistryServer, find_free_port, start_registry

#: Network failures must be reported well within this many seconds.
NETWORK_DEADLINE = 15.0
WRONG_PASSWORD = "not-the-right-password-42"
SENTINEL = b"sentinel bytes that a failed pull must not touch\n"


@pytest.fixture
def out(fresh_env: FreshEnv, tmp_path: Path) -> Path:
    return tmp_path / "out.tar"


def _assert_archive(result_code: int, stderr: bytes, path: Path) -> None:
    assert result_code == EXIT_OK, stderr.decode(errors="replace")
    assert path.is_file() and path.stat().st_size > 0
    assert not partial_files(path)


# -- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "contains"),
    [
        ("Nginx:1", "lowercase"),
        ("foo@sha256:short", "digest"),
        ("a:b:c", "invalid"),
        (":tag", "invalid reference"),
        ("", "empty"),
    ],
)
def test_malformed_reference(out: Path, reference: str, contains: str) -> None:
    result = run_imgpull("pull", reference, "-o", str(out))
    assert_clean_failure(result, code=EXIT_USAGE, contains=contains, output=out)


def test_pull_without_images(out: Path) -> None:
    result = run_imgpull("pull", "-o", str(out))
    assert_clean_failure(result, code=EXIT_USAGE, contains="no images", output=out)


def test_malformed_platform(
    out: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    ref = standard_images.hello.ref(registry.host)
    result = run_imgpull("pull", ref, "--platform", "linux", "-o", str(out))
    assert_clean_failure(result, code=EXIT_USAGE, contains="platform", output=out)


# -- not found -----------------------------------------------------------------------------


def test_missing_tag(out: Path, registry: RegistryServer, standard_images: StandardImages) -> None:
    result = run_imgpull("pull", registry.ref("test/hello", "no-such-tag"), "-o", str(out))
    line = assert_clean_failure(result, code=EXIT_NOT_FOUND, contains="not found", output=out)
    assert "no-such-tag" in line


def test_missing_repository(
    out: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    result = run_imgpull("pull", registry.ref("test/no-such-repo", "1"), "-o", str(out))
    line = assert_clean_failure(result, code=EXIT_NOT_FOUND, contains="not found", output=out)
    assert "test/no-such-repo" in line


@pytest.mark.parametrize("tag", ["oci", "docker"])
def test_unknown_platform(
    out: Path, registry: RegistryServer, standard_images: StandardImages, tag: str
) -> None:
    ref = registry.ref("test/multi", tag)
    result = run_imgpull("pull", ref, "--platform", "linux/s390x", "-o", str(out))
    line = assert_clean_failure(result, code=EXIT_NOT_FOUND, contains="linux/s390x", output=out)
    # imgpull lists the platforms normalised the containerd way: the index entry
    # linux/arm64/v8 is shown as "linux/arm64" (which --platform accepts as well).
    assert "linux/amd64" in line
    assert "linux/arm64" in line
    assert "unknown" not in line  # the attestation manifest of the OCI index is not offered


# -- credentials ---------------------------------------------------------------------------


def _auth_args(server: RegistryServer, test_ca: TestCA, user: str | None) -> list[str]:
    args = ["--ca-cert", str(test_ca.ca_cert)]
    if user is not None:
        args += ["-u", user, "--password-stdin"]
    return args


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_wrong_password_basic(
    out: Path,
    basic_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
    debug: bool,
) -> None:
    ref = standard_images.hello.ref(basic_registry.host)
    args = ["pull", ref, "-o", str(out), *_auth_args(basic_registry, test_ca, BASIC_USER)]
    result = run_imgpull(*args, *(["--debug"] if debug else []), input=WRONG_PASSWORD.encode())
    assert WRONG_PASSWORD.encode() not in result.stderr
    assert WRONG_PASSWORD.encode() not in result.stdout
    if debug:
        assert result.returncode == EXIT_AUTH, result.stderr.decode(errors="replace")
        last = result.stderr.decode().splitlines()[-1]
        assert last.startswith("imgpull: error:")
    else:
        assert_clean_failure(result, code=EXIT_AUTH, contains="credentials", output=out)


def test_wrong_password_token(
    out: Path,
    token_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    ref = standard_images.hello.ref(token_registry.host)
    args = ["pull", ref, "-o", str(out), *_auth_args(token_registry, test_ca, TOKEN_USER)]
    result = run_imgpull(*args, input=f"{WRONG_PASSWORD}\n".encode())
    line = assert_clean_failure(result, code=EXIT_AUTH, contains="refused", output=out)
    assert TOKEN_USER in line
    assert WRONG_PASSWORD.encode() not in result.stderr


def test_no_credentials_basic(
    out: Path, basic_registry: RegistryServer, standard_images: StandardImages, test_ca: TestCA
) -> None:
    ref = standard_images.hello.ref(basic_registry.host)
    result = run_imgpull("pull", ref, "-o", str(out), *_auth_args(basic_registry, test_ca, None))
    assert_clean_failure(result, code=EXIT_AUTH, contains="username and password", output=out)


def test_no_credentials_token_private_repository(
    out: Path, token_registry: RegistryServer, standard_images: StandardImages, test_ca: TestCA
) -> None:
    # Anonymous clients only get public/*; test/hello answers 401 after the empty grant.
    ref = standard_images.hello.ref(token_registry.host)
    result = run_imgpull("pull", ref, "-o", str(out), *_auth_args(token_registry, test_ca, None))
    assert_clean_failure(result, code=EXIT_AUTH, contains="authentication required", output=out)


def test_right_password_basic(
    out: Path, basic_registry: RegistryServer, standard_images: StandardImages, test_ca: TestCA
) -> None:
    ref = standard_images.hello.ref(basic_registry.host)
    args = ["pull", ref, "-q", "-o", str(out), *_auth_args(basic_registry, test_ca, BASIC_USER)]
    result = run_imgpull(*args, input=f"{BASIC_PASSWORD}\n".encode())
    _assert_archive(result.returncode, result.stderr, out)


def test_saved_credentials_basic(
    fresh_env: FreshEnv,
    out: Path,
    basic_registry: RegistryServer,
    standard_images: StandardImages,
    test_ca: TestCA,
) -> None:
    fresh_env.docker_login(basic_registry.host, BASIC_USER, BASIC_PASSWORD)
    ref = standard_images.hello.ref(basic_registry.host)
    result = run_imgpull("pull", ref, "-q", "-o", str(out), "--ca-cert", str(test_ca.ca_cert))
    _assert_archive(result.returncode, result.stderr, out)


def test_right_password_token(
    out: Path, token_registry: RegistryServer, standard_images: StandardImages, test_ca: TestCA
) -> None:
    ref = standard_images.hello.ref(token_registry.host)
    args = ["pull", ref, "-q", "-o", str(out), *_auth_args(token_registry, test_ca, TOKEN_USER)]
    result = run_imgpull(*args, input=f"{TOKEN_PASSWORD}\n".encode())
    _assert_archive(result.returncode, result.stderr, out)


def test_anonymous_token_public_repository(
    out: Path, token_registry: RegistryServer, standard_images: StandardImages, test_ca: TestCA
) -> None:
    ref = standard_images.public_hello.ref(token_registry.host)
    result = run_imgpull("pull", ref, "-q", "-o", str(out), "--ca-cert", str(test_ca.ca_cert))
    _assert_archive(result.returncode, result.stderr, out)


# -- TLS -----------------------------------------------------------------------------------


def test_tls_without_ca(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages
) -> None:
    result = run_imgpull("pull", standard_images.hello.ref(tls_registry.host), "-o", str(out))
    line = assert_clean_failure(result, code=EXIT_NETWORK, contains="certificate", output=out)
    assert "not trusted" in line
    hint = line.rsplit("(", 1)[-1]
    assert "--ca-cert" in hint


def test_tls_with_unrelated_ca(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages, other_ca: TestCA
) -> None:
    ref = standard_images.hello.ref(tls_registry.host)
    result = run_imgpull("pull", ref, "-o", str(out), "--ca-cert", str(other_ca.ca_cert))
    assert_clean_failure(result, code=EXIT_NETWORK, contains="not trusted", output=out)


def test_tls_with_unrelated_ca_in_ssl_cert_file(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages, other_ca: TestCA
) -> None:
    ref = standard_images.hello.ref(tls_registry.host)
    env = {"SSL_CERT_FILE": str(other_ca.ca_cert)}
    result = run_imgpull("pull", ref, "-o", str(out), env=env)
    assert_clean_failure(result, code=EXIT_NETWORK, contains="not trusted", output=out)


def test_tls_with_ca_flag(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages, test_ca: TestCA
) -> None:
    ref = standard_images.hello.ref(tls_registry.host)
    result = run_imgpull("pull", ref, "-q", "-o", str(out), "--ca-cert", str(test_ca.ca_cert))
    _assert_archive(result.returncode, result.stderr, out)


def test_tls_with_ssl_cert_file(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages, test_ca: TestCA
) -> None:
    ref = standard_images.hello.ref(tls_registry.host)
    result = run_imgpull(
        "pull", ref, "-q", "-o", str(out), env={"SSL_CERT_FILE": str(test_ca.ca_cert)}
    )
    _assert_archive(result.returncode, result.stderr, out)


def test_missing_ca_file(
    out: Path, tls_registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    ref = standard_images.hello.ref(tls_registry.host)
    missing = tmp_path / "no-such-ca.pem"
    result = run_imgpull("pull", ref, "-o", str(out), "--ca-cert", str(missing))
    assert_clean_failure(result, code=EXIT_USAGE, contains="does not exist", output=out)


# -- the network ---------------------------------------------------------------------------


@pytest.mark.parametrize("retries", [None, "1", "0"], ids=["default", "retries1", "retries0"])
def test_connection_refused(out: Path, retries: str | None) -> None:
    port = find_free_port()  # nothing listens there
    args = ["pull", f"127.0.0.1:{port}/test/x:1", "-o", str(out)]
    if retries is not None:
        args += ["--retries", retries]
    start = time.monotonic()
    result = run_imgpull(*args)
    elapsed = time.monotonic() - start
    print(f"connection refused, retries={retries or 'default'}: {elapsed:.2f} s")
    assert_clean_failure(result, code=EXIT_NETWORK, contains=f"127.0.0.1:{port}", output=out)
    assert elapsed < NETWORK_DEADLINE


def test_connection_refused_says_refused(out: Path) -> None:
    port = find_free_port()
    result = run_imgpull("pull", f"127.0.0.1:{port}/test/x:1", "-o", str(out), "--retries", "0")
    line = assert_clean_failure(result, code=EXIT_NETWORK, contains="cannot connect", output=out)
    assert "refused" in line
    assert "timed out" not in line


def test_unresolvable_host(out: Path) -> None:
    start = time.monotonic()
    result = run_imgpull("pull", "registry.invalid:5000/x:1", "-o", str(out))
    elapsed = time.monotonic() - start
    print(f"unresolvable host: {elapsed:.2f} s")
    line = assert_clean_failure(result, code=EXIT_NETWORK, contains="resolve", output=out)
    assert "registry.invalid" in line
    assert elapsed < NETWORK_DEADLINE


# -- corrupted data ------------------------------------------------------------------------


@dataclass(frozen=True)
class CorruptRegistry:
    server: RegistryServer
    ref: str
    layer_digest: str
    config_digest: str


@pytest.fixture(scope="module")
def corrupt_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorruptRegistry]:
    """A registry of its own whose only layer blob has flipped bytes (same size)."""
    root = tmp_path_factory.mktemp("corrupt-registry")
    storage = root / "storage"
    server = start_registry(root / "server", storage=storage)
    try:
        payload = hashlib.sha256(b"imgpull corrupt blob test").hexdigest().encode() * 512
        layer = build_layer({"data/payload": payload, "etc/marker": b"corrupt me\n"})
        image = build_image([layer], cmd=["/bin/true"], media="oci")
        push_image(server.url, "test/corrupt", "1", image)
        hex_digest = layer.digest.split(":", 1)[1]
        data = storage / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"
        original = data.read_bytes()
        assert len(original) == layer.size
        middle = len(original) // 2
        flipped = bytes(b ^ 0xFF for b in original[middle : middle + 16])
        data.write_bytes(original[:middle] + flipped + original[middle + 16 :])
        assert data.stat().st_size == layer.size
        yield CorruptRegistry(
            server, server.ref("test/corrupt", "1"), layer.digest, image.config_digest
        )
    finally:
        server.stop()


def _cached(fresh_env: FreshEnv, digest: str) -> list[Path]:
    hex_digest = digest.split(":", 1)[1]
    candidates = [
        fresh_env.cache_dir / "blobs" / "sha256" / hex_digest,
        fresh_env.cache_dir / "partial" / f"sha256-{hex_digest}",
    ]
    return [p for p in candidates if p.exists()]


def test_corrupted_blob(fresh_env: FreshEnv, out: Path, corrupt_registry: CorruptRegistry) -> None:
    for _attempt in range(2):  # the second pull must not find a poisoned cache either
        result = run_imgpull("pull", corrupt_registry.ref, "-q", "-o", str(out))
        line = assert_clean_failure(result, code=EXIT_INTEGRITY, contains="digest", output=out)
        assert corrupt_registry.layer_digest in line
        assert _cached(fresh_env, corrupt_registry.layer_digest) == []
    # The intact config blob may be cached; only the bad layer must not be.
    assert _cached(fresh_env, corrupt_registry.config_digest)


def test_corrupted_blob_with_progress(
    fresh_env: FreshEnv, out: Path, corrupt_registry: CorruptRegistry
) -> None:
    """Without -q, progress lines come first but the error is the last line."""
    result = run_imgpull("pull", corrupt_registry.ref, "-o", str(out))
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == EXIT_INTEGRITY, stderr
    assert "Traceback" not in stderr
    assert result.stdout == b""
    errors = [line for line in stderr.splitlines() if line.startswith("imgpull:")]
    assert errors == [stderr.splitlines()[-1]], stderr
    assert "digest" in errors[0]
    assert not out.exists()
    assert not partial_files(out)


def test_corrupted_blob_keeps_existing_output(
    fresh_env: FreshEnv, out: Path, corrupt_registry: CorruptRegistry
) -> None:
    out.write_bytes(SENTINEL)
    result = run_imgpull("pull", corrupt_registry.ref, "-q", "-o", str(out))
    assert_clean_failure(result, code=EXIT_INTEGRITY, contains="digest")
    assert out.read_bytes() == SENTINEL
    assert not partial_files(out)


# -- the output file -----------------------------------------------------------------------


def test_output_in_missing_directory(
    fresh_env: FreshEnv, tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    target = tmp_path / "no-such-dir" / "out.tar"
    ref = standard_images.hello.ref(registry.host)
    mark = registry.log_mark()
    result = run_imgpull("pull", ref, "-q", "-o", str(target))
    assert_clean_failure(result, code=EXIT_USAGE, contains="does not exist", output=target)
    assert not target.parent.exists()
    # Checked before any download starts.
    assert registry.count_requests("GET", r"/v2/.*", since=mark) == 0


def test_output_is_a_directory(
    fresh_env: FreshEnv, tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    ref = standard_images.hello.ref(registry.host)
    result = run_imgpull("pull", ref, "-o", str(tmp_path))
    assert_clean_failure(result, code=EXIT_USAGE, contains="is a directory")
    assert not list(tmp_path.glob(".*.partial"))


def test_archive_to_a_terminal_is_refused(
    fresh_env: FreshEnv, registry: RegistryServer, standard_images: StandardImages
) -> None:
    ref = standard_images.hello.ref(registry.host)
    master, slave = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "imgpull", "pull", ref, "-o", "-"],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(slave)
    try:
        os.set_blocking(master, False)
        try:
            on_terminal = os.read(master, 65536)
        except (BlockingIOError, OSError):
            on_terminal = b""
    finally:
        os.close(master)
    assert on_terminal == b""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == EXIT_USAGE, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("imgpull: error:")
    assert "terminal" in lines[0]


def test_failed_pull_keeps_existing_output(
    out: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    out.write_bytes(SENTINEL)
    result = run_imgpull("pull", registry.ref("test/hello", "no-such-tag"), "-o", str(out))
    assert_clean_failure(result, code=EXIT_NOT_FOUND, contains="not found")
    assert out.read_bytes() == SENTINEL
    assert not partial_files(out)


def test_several_images_one_failing_writes_nothing(
    out: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    good = standard_images.hello.ref(registry.host)
    bad = registry.ref("test/hello", "no-such-tag")
    result = run_imgpull("pull", good, bad, "-q", "-o", str(out))
    assert_clean_failure(result, code=EXIT_NOT_FOUND, contains="no-such-tag", output=out)


# -- --debug -------------------------------------------------------------------------------


def test_debug_keeps_exit_code(
    out: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    ref = registry.ref("test/hello", "no-such-tag")
    result = run_imgpull("pull", ref, "-o", str(out), "--debug")
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == EXIT_NOT_FOUND, stderr
    assert result.stdout == b""
    lines = stderr.splitlines()
    assert len(lines) > 1  # the log and the traceback
    assert "Traceback" in stderr
    assert lines[-1].startswith("imgpull: error:")
    assert "no-such-tag" in lines[-1]
    assert not out.exists()
    assert not partial_files(out)


def test_debug_keeps_exit_code_for_bad_reference(out: Path) -> None:
    result = run_imgpull("pull", "Nginx:1", "-o", str(out), "--debug")
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == EXIT_USAGE, stderr
    assert stderr.splitlines()[-1].startswith("imgpull: error:")


def test_debug_keeps_exit_code_for_bad_platform(
    out: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    ref = standard_images.hello.ref(registry.host)
    result = run_imgpull("pull", ref, "--platform", "linux", "-o", str(out), "--debug")
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == EXIT_USAGE, stderr
    assert stderr.splitlines()[-1].startswith("imgpull: error:")
