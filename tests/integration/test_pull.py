"""Pulls against the real distribution registry: by tag, digest, platform; auth; bundles."""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path
from typing import ClassVar

import pytest

from imgpull.config.settings import Settings
from imgpull.ops.inspect import inspect, raw_manifest
from imgpull.ops.inspect import tags as list_tags
from imgpull.ops.pull import pull
from imgpull.reference import parse_reference
from imgpull.registry.session import Registries as Session
from tests.archive_view import ArchiveView
from tests.cli import run_imgpull
from tests.fixtures.images import StandardImages
from tests.fixtures.registry import RegistryServer
from tests.fixtures.tokenserver import TokenServer

pytestmark = pytest.mark.usefixtures("fresh_env")


def _settings(**kwargs: object) -> Settings:
    return Settings.from_environment(**kwargs)


def test_pull_by_tag_writes_docker_and_oci_views(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    hello = standard_images.hello
    out = tmp_path / "hello.tar"
    result = pull([f"{registry.host}/{hello.reference}"], out, settings=_settings())
    view = ArchiveView.read(out)
    assert view.repo_tags == [f"{registry.host}/test/hello:1"]
    assert view.index_digests == [hello.manifest_digest]
    annotations = view.index_json["manifests"][0]["annotations"]
    assert annotations["io.containerd.image.name"] == f"{registry.host}/test/hello:1"
    assert annotations["org.opencontainers.image.ref.name"] == "1"
    entry = view.manifest_json[0]  # type: ignore[index]
    assert entry["Config"] == "blobs/sha256/" + hello.config_digest.split(":")[1]
    assert entry["Layers"] == ["blobs/sha256/" + d.split(":")[1] for d in hello.layer_digests]
    assert set(view.blobs) == {hello.manifest_digest, hello.config_digest, *hello.layer_digests}
    assert result.images[0].digest.__str__() == hello.manifest_digest
    assert result.archive_size == out.stat().st_size


def test_pull_by_digest_has_no_tag(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    hello = standard_images.hello
    out = tmp_path / "d.tar"
    pull([hello.ref(registry.host, by_digest=True)], out, settings=_settings())
    view = ArchiveView.read(out)
    assert view.repo_tags == []  # never a digest in a tag
    name = view.index_json["manifests"][0]["annotations"]["io.containerd.image.name"]
    assert name == f"{registry.host}/test/hello@{hello.manifest_digest}"


def test_pull_by_tag_and_digest_keeps_tag(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    hello = standard_images.hello
    out = tmp_path / "td.tar"
    # The tag names the result; the digest decides what is pulled (latest has same digest).
    pull([f"{registry.host}/test/hello:pinned@{hello.manifest_digest}"], out, settings=_settings())
    view = ArchiveView.read(out)
    assert view.repo_tags == [f"{registry.host}/test/hello:pinned"]
    assert view.index_digests == [hello.manifest_digest]


@pytest.mark.parametrize("which", ["multi_oci", "multi_docker"])
@pytest.mark.parametrize("platform", ["linux/arm64", "linux/arm64/v8", "linux/amd64"])
def test_pull_platform_from_index(
    registry: RegistryServer,
    standard_images: StandardImages,
    tmp_path: Path,
    which: str,
    platform: str,
) -> None:
    index = getattr(standard_images, which)
    out = tmp_path / "m.tar"
    result = pull([index.ref(registry.host)], out, platform=platform, settings=_settings())
    key = "linux/amd64" if platform.endswith("amd64") else "linux/arm64/v8"
    view = ArchiveView.read(out)
    assert view.index_digests == [index.platforms[key]]
    config = view.config(index.platforms[key])
    assert config["architecture"] == key.split("/")[1]
    assert str(result.images[0].digest) == index.digest  # the digest the tag points at
    assert index.attestation_digests == () or not set(index.attestation_digests) & set(view.blobs)


def test_default_platform_is_the_host(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    index = standard_images.multi_oci
    out = tmp_path / "m.tar"
    pull([index.ref(registry.host)], out, settings=_settings())
    host = standard_images.host_platform
    assert ArchiveView.read(out).index_digests == [index.platforms[host]]


def test_bundle_stores_shared_layers_once(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    imgs = standard_images
    refs = [
        f"{registry.host}/{imgs.hello.reference}",
        f"{registry.host}/{imgs.dockertypes.reference}",
        f"{registry.host}/{imgs.layers.reference}",
        f"{registry.host}/{imgs.hello_latest.reference}",  # same manifest as hello:1
    ]
    out = tmp_path / "bundle.tar"
    pull(refs, out, settings=_settings())
    view = ArchiveView.read(out)
    assert sorted(view.repo_tags) == sorted(
        f"{registry.host}/{r}"
        for r in ("test/hello:1", "test/dockertypes:1", "test/layers:1", "test/hello:latest")
    )
    assert len(view.manifest_json or []) == 3  # hello:1 and hello:latest share an entry
    blob_members = [n for n in view.names if n.startswith("blobs/sha256/")]
    assert len(blob_members) == len(set(blob_members))


def test_cli_bundle_from_list_file_and_stdin_stream(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    listing = tmp_path / "images.txt"
    listing.write_text(
        f"# a comment\n{registry.host}/test/hello:1\n\n{registry.host}/test/layers:1\n"
    )
    to_file = tmp_path / "b.tar"
    done = run_imgpull("pull", "-f", str(listing), "-o", str(to_file), "-q")
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    streamed = run_imgpull("pull", "-f", "-", "-o", "-", "-q", input=listing.read_bytes())
    assert streamed.returncode == 0, streamed.stderr
    # Deterministic archives: the stream and the file are byte for byte the same.
    assert streamed.stdout == to_file.read_bytes()


def test_cli_default_output_name_and_plain_progress(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "imgpull", "pull", f"{registry.host}/test/hello:1"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = tmp_path / f"127.0.0.1_{registry.port}_test_hello_1.tar"
    assert expected.is_file()
    text = done.stderr.decode()
    assert "resolved to" in text
    assert "\x1b[" not in text  # no terminal escapes when not a terminal
    assert f"docker load -i {expected.name}" in text
    assert standard_images.hello.manifest_digest in text


def test_oci_format_has_no_docker_manifest(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    out = tmp_path / "o.tar"
    pull([f"{registry.host}/test/hello:1"], out, archive_format="oci", settings=_settings())
    view = ArchiveView.read(out)
    assert view.manifest_json is None
    assert "oci-layout" in view.names


def test_warm_cache_transfers_no_blobs(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    ref = f"{registry.host}/test/layers:1"
    pull([ref], tmp_path / "1.tar", settings=_settings())
    mark = registry.log_mark()
    pull([ref], tmp_path / "2.tar", settings=_settings())
    assert registry.count_requests("GET", r"/v2/.*/blobs/", since=mark) == 0
    assert (tmp_path / "1.tar").read_bytes() == (tmp_path / "2.tar").read_bytes()


def test_no_cache_leaves_no_cache(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    settings = _settings(use_cache=False)
    pull([f"{registry.host}/test/hello:1"], tmp_path / "n.tar", settings=settings)
    assert settings.cache_dir is not None and not settings.cache_dir.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["n.tar"] or not any(
        p.name.startswith(".imgpull-") for p in tmp_path.iterdir()
    )


def test_basic_auth_with_flags(
    basic_registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    out = tmp_path / "b.tar"
    settings = _settings(
        username="alice", password="wonderland-secret", ca_certs=(basic_registry.ca_cert,)
    )
    pull([f"{basic_registry.host}/test/hello:1"], out, settings=settings)
    assert ArchiveView.read(out).index_digests == [standard_images.hello.manifest_digest]


def test_token_auth_tls_with_config_json(
    token_registry: RegistryServer,
    token_server: TokenServer,
    standard_images: StandardImages,
    fresh_env,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    fresh_env.docker_login(token_registry.host, "bob", "builder-secret")
    out = tmp_path / "t.tar"
    done = run_imgpull(
        "pull",
        f"{token_registry.host}/test/hello:1",
        "-o",
        str(out),
        "--ca-cert",
        str(token_registry.ca_cert),
    )
    assert done.returncode == 0, done.stderr
    assert ArchiveView.read(out).index_digests == [standard_images.hello.manifest_digest]
    scopes = [s for r in token_server.requests for s in r.scopes]
    assert "repository:test/hello:pull" in scopes
    assert all(r.username in ("bob", None) for r in token_server.requests)
    assert b"builder-secret" not in done.stderr


def test_anonymous_token_for_public_repository(
    token_registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    out = tmp_path / "p.tar"
    settings = _settings(ca_certs=(token_registry.ca_cert,))
    pull([f"{token_registry.host}/public/hello:1"], out, settings=settings)
    assert ArchiveView.read(out).index_digests == [standard_images.public_hello.manifest_digest]


def test_ssl_cert_file_adds_trust(
    tls_registry: RegistryServer,
    standard_images: StandardImages,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_registry.ca_cert))
    out = tmp_path / "s.tar"
    pull([f"{tls_registry.host}/test/hello:1"], out, settings=_settings())
    assert out.is_file()


def test_expired_token_is_refreshed_mid_pull(
    token_registry: RegistryServer, standard_images: StandardImages
) -> None:
    settings = _settings(
        username="bob", password="builder-secret", ca_certs=(token_registry.ca_cert,)
    )
    session = Session(settings)
    ref = parse_reference(f"{token_registry.host}/test/hello:1")
    client = session.client(ref)
    client.get_manifest(ref.repository, "1")
    # Make every cached token stale, as a long pull outliving its token would see.
    for token in client.auth._tokens.values():
        token.value = "expired-or-revoked"
    manifest = client.get_manifest(ref.repository, "1")
    assert str(manifest.digest) == standard_images.hello.manifest_digest
    session.close()


def test_inspect_index_and_image(registry: RegistryServer, standard_images: StandardImages) -> None:
    index = standard_images.multi_oci
    found = inspect(index.ref(registry.host), settings=_settings())
    assert found["digest"] == index.digest
    assert {p["platform"] for p in found["platforms"]} == {"linux/amd64", "linux/arm64/v8"}
    one = inspect(f"{registry.host}/test/layers:1", settings=_settings())
    assert one["digest"] == standard_images.layers.manifest_digest
    assert [layer["digest"] for layer in one["layers"]] == list(
        standard_images.layers.layer_digests
    )
    assert one["config"]["cmd"] == list(standard_images.layers.built.cmd)
    raw = raw_manifest(index.ref(registry.host), settings=_settings())
    assert raw == index.built.manifest


def test_cli_inspect_prints_json(registry: RegistryServer, standard_images: StandardImages) -> None:
    done = run_imgpull("inspect", f"{registry.host}/test/multi:docker", "--platform", "linux/arm64")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["image"]["platform"] == "linux/arm64"


def test_tags_lists_every_tag(registry: RegistryServer, standard_images: StandardImages) -> None:
    tags = list_tags(f"{registry.host}/test/hello", settings=_settings())
    assert set(tags) >= {"1", "latest"}
    done = run_imgpull("tags", f"{registry.host}/test/multi")
    assert sorted(done.stdout.decode().split()) == ["docker", "oci"]


class _PagedTags(http.server.BaseHTTPRequestHandler):
    """Distribution 2.8 ignores ?n= for tag lists, so pagination (Link headers, as Docker
    Hub and distribution 3 send them) is served by this stand-in."""

    pages: ClassVar[dict[str, tuple[list[str], str | None]]] = {
        "": (["a", "b"], "/v2/x/tags/list?n=2&last=b"),
        "b": (["c", "d"], "/v2/x/tags/list?n=2&last=d"),
        "d": (["e"], None),
    }

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        tags, link = self.pages[query.get("last", [""])[0]]
        body = json.dumps({"name": "x", "tags": tags}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if link:
            self.send_header("Link", f'<{link}>; rel="next"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_tags_follow_link_pagination() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _PagedTags)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        assert list_tags(f"{host}/x", settings=_settings()) == ["a", "b", "c", "d", "e"]
    finally:
        server.shutdown()


def test_login_then_pull_then_logout(
    basic_registry: RegistryServer,
    standard_images: StandardImages,
    fresh_env,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    ca = str(basic_registry.ca_cert)
    bad = run_imgpull(
        "login",
        basic_registry.host,
        "-u",
        "alice",
        "--password-stdin",
        "--ca-cert",
        ca,
        input=b"wrong\n",
    )
    assert bad.returncode == 3, bad.stderr
    assert not fresh_env.docker_config_file.exists()
    good = run_imgpull(
        "login",
        basic_registry.host,
        "-u",
        "alice",
        "--password-stdin",
        "--ca-cert",
        ca,
        input=b"wonderland-secret\n",
    )
    assert good.returncode == 0, good.stderr
    saved = json.loads(fresh_env.docker_config_file.read_text())
    assert basic_registry.host in saved["auths"]
    pulled = run_imgpull(
        "pull",
        f"{basic_registry.host}/test/hello:1",
        "-o",
        str(tmp_path / "x.tar"),
        "--ca-cert",
        ca,
    )
    assert pulled.returncode == 0, pulled.stderr
    out = run_imgpull("logout", basic_registry.host)
    assert out.returncode == 0
    assert basic_registry.host not in json.loads(fresh_env.docker_config_file.read_text())["auths"]
