"""Regressions for defects found in review: credentials and redirect hosts, tags that
look like digests, credentials scoped to one registry, prune beside a running pull."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from filelock import FileLock

from imgpull.cache import BlobStore as BlobCache
from imgpull.digest import Digest
from imgpull.errors import EXIT_USAGE
from imgpull.model import Descriptor
from tests.cli import assert_clean_failure, run_imgpull
from tests.fixtures.faultproxy import FaultProxy, RedirectTo, Rule
from tests.fixtures.images import Pusher, StandardImages
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")


class _Challenger(http.server.BaseHTTPRequestHandler):
    """A redirect target that answers 401 with a Bearer challenge of its own."""

    seen: ClassVar[list[tuple[str, str | None]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        port = self.server.server_address[1]
        self.send_response(401)
        self.send_header(
            "WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{port}/token",service="evil"'
        )
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def challenger() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Challenger)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Challenger.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_redirect_target_challenge_never_gets_credentials(
    fault_proxy_factory,  # type: ignore[no-untyped-def]
    basic_registry: RegistryServer,
    standard_images: StandardImages,
    challenger: str,
    tmp_path: Path,
) -> None:
    proxy: FaultProxy = fault_proxy_factory(basic_registry)
    proxy.add_rule(
        Rule(
            method="GET", path=r"/v2/.*/blobs/sha256:.*", times=None, action=RedirectTo(challenger)
        )
    )
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
        "--retries",
        "0",
        input=b"wonderland-secret\n",
    )
    assert done.returncode != 0 and not out.exists()
    assert _Challenger.seen, "the blob request was redirected to the challenger"
    assert all(auth is None for _, auth in _Challenger.seen)
    assert not any(path.startswith("/token") for path, _ in _Challenger.seen)


def test_tags_that_start_with_sha(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    Pusher(registry.url).push_image("test/shatag", "sha-860c190", standard_images.hello.built)
    done = run_imgpull(
        "pull", "-q", f"{registry.host}/test/shatag:sha-860c190", "-o", str(tmp_path / "x.tar")
    )
    assert done.returncode == 0, done.stderr
    raw = run_imgpull("inspect", "--raw", f"{registry.host}/test/shatag:sha-860c190")
    assert raw.returncode == 0 and raw.stdout == standard_images.hello.built.manifest


def test_flag_credentials_refuse_two_registries(
    registry: RegistryServer, tls_registry: RegistryServer, tmp_path: Path
) -> None:
    out = tmp_path / "x.tar"
    done = run_imgpull(
        "pull",
        f"{registry.host}/test/hello:1",
        f"{tls_registry.host}/test/hello:1",
        "-o",
        str(out),
        "-u",
        "alice",
        "-p",
        "secret",
    )
    assert_clean_failure(done, code=EXIT_USAGE, contains="one registry", output=out)
    assert b"secret" not in done.stderr


def test_prune_leaves_a_partial_that_a_pull_is_writing(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "cache")
    digest = Digest.of(b"x" * 10)
    with cache.partial(Descriptor("", digest, 10), what="test") as partial:
        partial.write(b"xxxx")
        removed, _ = cache.prune(everything=True)
        assert removed == 0 and partial.path.exists()
    assert cache.prune(everything=True)[0] == 1
    # Free lock files stay (removing one that somebody waits on would let two writers in).
    assert FileLock(str(partial.path) + ".lock").acquire(timeout=0)
