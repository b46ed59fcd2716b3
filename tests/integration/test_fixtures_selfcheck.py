"""Self-checks for the test infrastructure itself (registries, token server, test images).

These talk to the registries with urllib3/ssl directly -- never through imgpull -- so a
failure here means the fixtures are broken, not the product.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import socket
import ssl
import subprocess
import tarfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.fixtures.certs import TestCA
from tests.fixtures.images import (
    ALL_MANIFEST_MEDIA,
    IN_TOTO_MEDIA,
    LAYERS_OUTPUT,
    BuiltImage,
    StandardImage,
    StandardImages,
    build_image,
    build_layer,
    push_image,
    push_random_image,
)
from tests.fixtures.registry import RegistryServer, RegistryStartError, start_registry
from tests.fixtures.tokenserver import ResourceScope, TokenServer

ACCEPT = {"Accept": ", ".join(ALL_MANIFEST_MEDIA)}
REGISTRY_FIXTURES = ["registry", "tls_registry", "basic_registry", "token_registry"]


# -- a tiny challenge-following client ----------------------------------------------------


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


def fetch_token(
    token_server: TokenServer,
    scopes: list[str],
    *,
    auth: tuple[str, str] | None = None,
) -> urllib3.BaseHTTPResponse:
    query = urllib.parse.urlencode(
        [("service", token_server.service), *(("scope", s) for s in scopes)]
    )
    headers = urllib3.make_headers(basic_auth=":".join(auth)) if auth else {}
    pool = urllib3.PoolManager(ca_certs=str(token_server.ca_cert), retries=False)
    return pool.request("GET", f"{token_server.realm}?{query}", headers=headers)


def registry_get(
    server: RegistryServer,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    creds: tuple[str, str] | None = None,
) -> urllib3.BaseHTTPResponse:
    """GET with Accept headers, answering one Basic or Bearer challenge with ``creds``."""
    pool = server.pool()
    url = f"{server.url}{path}"
    hdrs = dict(headers or {})
    resp = pool.request("GET", url, headers=hdrs, redirect=False)
    if resp.status != 401:
        return resp
    scheme, params = parse_challenge(resp.headers["WWW-Authenticate"])
    if scheme == "basic":
        if creds is None:
            return resp
        hdrs.update(urllib3.make_headers(basic_auth=":".join(creds)))
    else:
        assert scheme == "bearer", resp.headers["WWW-Authenticate"]
        query = {"service": params["service"]}
        if "scope" in params:
            query["scope"] = params["scope"]
        token_headers = urllib3.make_headers(basic_auth=":".join(creds)) if creds else {}
        token_resp = pool.request(
            "GET",
            params["realm"] + "?" + urllib.parse.urlencode(query),
            headers=token_headers,
        )
        if token_resp.status != 200:
            return token_resp
        hdrs["Authorization"] = "Bearer " + token_resp.json()["token"]
    return pool.request("GET", url, headers=hdrs, redirect=False)


def creds_for(server: RegistryServer) -> tuple[str, str] | None:
    if server.username is None or server.password is None:
        return None
    return server.username, server.password


def apply_layers(layers: list[bytes]) -> dict[str, tuple[str, bytes]]:
    """Apply gzip layer tars like an overlay snapshotter: path -> (kind, content)."""
    tree: dict[str, tuple[str, bytes]] = {}
    for blob in layers:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
            members = tar.getmembers()
            for m in members:
                head, _, base = m.name.rpartition("/")
                if base == ".wh..wh..opq":
                    for path in [p for p in tree if p.startswith(head + "/")]:
                        del tree[path]
                elif base.startswith(".wh."):
                    victim = f"{head}/{base[4:]}" if head else base[4:]
                    for path in [p for p in tree if p == victim or p.startswith(victim + "/")]:
                        del tree[path]
            for m in members:
                base = m.name.rpartition("/")[2]
                if base.startswith(".wh."):
                    continue
                if m.isdir():
                    tree[m.name] = ("dir", b"")
                elif m.issym():
                    tree[m.name] = ("symlink", m.linkname.encode())
                else:
                    fh = tar.extractfile(m)
                    assert fh is not None
                    tree[m.name] = ("file", fh.read())
    return tree


# -- standard images are served everywhere ------------------------------------------------


@pytest.mark.parametrize("registry_fixture", REGISTRY_FIXTURES)
def test_standard_images_from_every_registry(
    request: pytest.FixtureRequest, standard_images: StandardImages, registry_fixture: str
) -> None:
    server: RegistryServer = request.getfixturevalue(registry_fixture)
    creds = creds_for(server)
    for img in standard_images.all_images():
        resp = registry_get(
            server, f"/v2/{img.repo}/manifests/{img.tag}", headers=ACCEPT, creds=creds
        )
        assert resp.status == 200, (img.reference, resp.status, resp.data[:300])
        assert resp.headers["Docker-Content-Digest"] == img.manifest_digest
        assert resp.headers["Content-Type"] == img.media_type
        assert "sha256:" + hashlib.sha256(resp.data).hexdigest() == img.manifest_digest
        manifest = resp.json()
        assert manifest["config"]["digest"] == img.config_digest
        assert tuple(layer["digest"] for layer in manifest["layers"]) == img.layer_digests
        blob = registry_get(server, f"/v2/{img.repo}/blobs/{img.config_digest}", creds=creds)
        assert blob.status == 200
        assert "sha256:" + hashlib.sha256(blob.data).hexdigest() == img.config_digest
    for idx in standard_images.all_indexes():
        resp = registry_get(
            server, f"/v2/{idx.repo}/manifests/{idx.tag}", headers=ACCEPT, creds=creds
        )
        assert resp.status == 200, (idx.reference, resp.status, resp.data[:300])
        assert resp.headers["Docker-Content-Digest"] == idx.digest
        assert resp.headers["Content-Type"] == idx.media_type
        for platform, digest in idx.platforms.items():
            child = registry_get(
                server, f"/v2/{idx.repo}/manifests/{digest}", headers=ACCEPT, creds=creds
            )
            assert child.status == 200, platform
            assert child.headers["Docker-Content-Digest"] == digest


def test_standard_image_shapes(standard_images: StandardImages) -> None:
    std = standard_images
    assert std.hello.manifest_digest == std.public_hello.manifest_digest
    assert std.hello.manifest_digest == std.hello_latest.manifest_digest
    assert std.hello.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert std.dockertypes.media_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert std.dockertypes.built.layer_media_type == (
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    assert std.hello.platform == std.host_platform
    assert set(std.multi_oci.platforms) == {"linux/amd64", "linux/arm64/v8"}
    assert set(std.multi_docker.platforms) == {"linux/amd64", "linux/arm64/v8"}
    assert std.multi_docker.attestation_digests == ()
    assert std.multi_oci.markers == {"linux/amd64": "amd64", "linux/arm64/v8": "arm64"}

    index = std.multi_oci.built.manifest_json()
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    (att,) = [m for m in index["manifests"] if m["platform"]["os"] == "unknown"]
    assert att["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert att["annotations"] == {
        "vnd.docker.reference.digest": std.multi_oci.platforms["linux/amd64"],
        "vnd.docker.reference.type": "attestation-manifest",
    }
    (att_image,) = std.multi_oci.built.attestations
    assert att_image.manifest_json()["layers"][0]["mediaType"] == IN_TOTO_MEDIA
    docker_list = std.multi_docker.built.manifest_json()
    assert docker_list["mediaType"] == ("application/vnd.docker.distribution.manifest.list.v2+json")
    arm = [m for m in docker_list["manifests"] if m["platform"]["architecture"] == "arm64"]
    assert arm[0]["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert std.multi_docker.images["linux/arm64/v8"].built.config_json()["variant"] == "v8"


def test_layer_tars_apply_as_documented(standard_images: StandardImages) -> None:
    layers_img = standard_images.layers
    assert len(layers_img.layer_digests) == 3
    tree = apply_layers([layer.compressed for layer in layers_img.built.layers])
    for path, content in layers_img.expected_files.items():
        assert tree[path] == ("file", content), path
    for path in layers_img.absent_files:
        assert path not in tree, path
    data = sorted(p.split("/", 1)[1] for p in tree if p.startswith("data/"))
    assert data == ["b", "c", "dir", "dir/y"]
    assert layers_img.expected_output == LAYERS_OUTPUT
    assert layers_img.built.cmd == ("/bin/busybox", "ls", "/data", "/data/dir")

    hello = apply_layers([layer.compressed for layer in standard_images.hello.built.layers])
    assert hello["bin/sh"] == ("symlink", b"busybox")
    assert hello["bin/echo"] == ("symlink", b"busybox")
    with tarfile.open(
        fileobj=io.BytesIO(standard_images.hello.built.layers[0].uncompressed())
    ) as tar:
        busybox = tar.getmember("bin/busybox")
        assert busybox.mode == 0o755
        assert (busybox.mtime, busybox.uid, busybox.gid) == (0, 0, 0)


def _run_cmd_outside_container(img: StandardImage, tmp_path: Path) -> list[str]:
    """Run the image's busybox with its Cmd args (works for Cmds with no absolute paths)."""
    root = tmp_path / img.repo.replace("/", "_")
    tree = apply_layers([layer.compressed for layer in img.built.layers])
    busybox = root / "busybox"
    root.mkdir(parents=True)
    busybox.write_bytes(tree["bin/busybox"][1])
    busybox.chmod(0o755)
    cmd = img.built.config_json()["config"]["Cmd"]
    assert cmd[0] == "/bin/busybox"
    out = subprocess.run([str(busybox), *cmd[1:]], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_runnable_images_print_expected_output(
    standard_images: StandardImages, tmp_path: Path
) -> None:
    for img in (standard_images.hello, standard_images.dockertypes):
        assert _run_cmd_outside_container(img, tmp_path) == list(img.expected_output)


def test_builds_are_deterministic() -> None:
    files = {"etc/x": b"x\n", "bin/tool": b"#!/bin/sh\n"}
    assert build_layer(files).digest == build_layer(dict(reversed(files.items()))).digest
    layer = build_layer(files)
    a = build_image([layer], cmd=["/bin/tool"], arch="arm64", variant="v8", media="docker")
    b = build_image([layer], cmd=["/bin/tool"], arch="arm64", variant="v8", media="docker")
    assert a.manifest_digest == b.manifest_digest
    assert a.platform_string == "linux/arm64/v8"


# -- shared storage ---------------------------------------------------------------------


def test_shared_storage_sees_pushes_and_retags_immediately(
    registry: RegistryServer, tls_registry: RegistryServer, token_registry: RegistryServer
) -> None:
    first = build_image([build_layer({"etc/v": b"1\n"})], cmd=["/x"])
    second = build_image([build_layer({"etc/v": b"2\n"})], cmd=["/x"])
    for built in (first, second):
        push_image(registry.url, "test/shared", "moving", built)
        for server in (tls_registry, token_registry):
            resp = registry_get(
                server,
                "/v2/test/shared/manifests/moving",
                headers=ACCEPT,
                creds=creds_for(server),
            )
            assert resp.status == 200
            assert resp.headers["Docker-Content-Digest"] == built.manifest_digest


# -- basic auth -------------------------------------------------------------------------


@pytest.mark.parametrize("registry_fixture", ["basic_registry", "basic_http_registry"])
def test_basic_auth(
    request: pytest.FixtureRequest, standard_images: StandardImages, registry_fixture: str
) -> None:
    server: RegistryServer = request.getfixturevalue(registry_fixture)
    assert (server.username, server.password) == ("alice", "wonderland-secret")
    path = f"/v2/test/hello/manifests/{standard_images.hello.manifest_digest}"
    anonymous = registry_get(server, path, headers=ACCEPT)
    assert anonymous.status == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    wrong = registry_get(server, path, headers=ACCEPT, creds=("alice", "wrong"))
    assert wrong.status == 401
    right = registry_get(server, path, headers=ACCEPT, creds=("alice", "wonderland-secret"))
    assert right.status == 200
    assert right.headers["Docker-Content-Digest"] == standard_images.hello.manifest_digest


# -- token auth -------------------------------------------------------------------------


def test_token_registry_challenge(token_registry: RegistryServer) -> None:
    resp = token_registry.pool().request("GET", f"{token_registry.url}/v2/")
    assert resp.status == 401
    scheme, params = parse_challenge(resp.headers["WWW-Authenticate"])
    assert scheme == "bearer"
    assert token_registry.token_server is not None
    assert params == {
        "realm": token_registry.token_server.realm,
        "service": token_registry.token_server.service,
    }


def test_anonymous_token_only_pulls_public(
    token_registry: RegistryServer, token_server: TokenServer, standard_images: StandardImages
) -> None:
    token_server.clear_requests()
    public = registry_get(token_registry, "/v2/public/hello/manifests/1", headers=ACCEPT)
    assert public.status == 200
    assert public.headers["Docker-Content-Digest"] == standard_images.public_hello.manifest_digest
    (seen,) = token_server.requests
    assert seen.authorization is False
    assert seen.username is None
    assert seen.scopes == ("repository:public/hello:pull",)
    assert seen.service == token_server.service

    private = registry_get(token_registry, "/v2/test/hello/manifests/1", headers=ACCEPT)
    assert private.status in (401, 403)
    assert 'error="insufficient_scope"' in private.headers["WWW-Authenticate"]
    # The token server still answered 200 with an empty grant (like Docker Hub).
    last = token_server.requests[-1]
    assert last.status == 200
    assert [g.actions for g in last.granted] == [()]


def test_credentialed_token_pulls_private(
    token_registry: RegistryServer, token_server: TokenServer, standard_images: StandardImages
) -> None:
    token_server.clear_requests()
    resp = registry_get(
        token_registry,
        "/v2/test/hello/manifests/1",
        headers=ACCEPT,
        creds=("bob", "builder-secret"),
    )
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == standard_images.hello.manifest_digest
    (seen,) = token_server.requests
    assert (seen.authorization, seen.auth_scheme, seen.username) == (True, "Basic", "bob")
    assert seen.granted[0].actions == ("pull",)
    assert token_server.errors == []


def test_token_server_rejects_wrong_password(token_server: TokenServer) -> None:
    resp = fetch_token(
        token_server, ["repository:test/hello:pull"], auth=("bob", "not-the-password")
    )
    assert resp.status == 401
    body = resp.json()
    assert body["errors"][0]["code"] == "UNAUTHORIZED"
    assert token_server.requests[-1].username == "bob"
    assert token_server.requests[-1].status == 401


def test_token_contents_and_multiple_scopes(token_server: TokenServer) -> None:
    resp = fetch_token(
        token_server,
        ["repository:test/a:pull,push", "repository:public/b:pull"],
        auth=("bob", "builder-secret"),
    )
    assert resp.status == 200
    body = resp.json()
    assert body["expires_in"] == 300
    assert "issued_at" in body
    header_b64, claims_b64, _ = body["token"].split(".")

    def decode(part: str) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return loaded

    header, claims = decode(header_b64), decode(claims_b64)
    assert header["alg"] == "ES256"
    assert len(header["x5c"]) == 1
    assert claims["iss"] == token_server.issuer
    assert claims["aud"] == token_server.service
    assert claims["sub"] == "bob"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["access"] == [
        {"type": "repository", "name": "test/a", "actions": ["pull", "push"]},
        {"type": "repository", "name": "public/b", "actions": ["pull"]},
    ]
    anon = fetch_token(token_server, ["repository:public/b:pull,push"]).json()
    claims = decode(anon["token"].split(".")[1])
    assert claims["sub"] == ""
    assert claims["access"] == [{"type": "repository", "name": "public/b", "actions": ["pull"]}]


def test_expired_and_foreign_tokens_are_refused(
    token_registry: RegistryServer, token_server: TokenServer, standard_images: StandardImages
) -> None:
    access = [ResourceScope("repository", "test/hello", ("pull",))]
    url = f"{token_registry.url}/v2/test/hello/manifests/1"
    pool = token_registry.pool()

    def status(token: str) -> int:
        headers = {**ACCEPT, "Authorization": f"Bearer {token}"}
        return pool.request("GET", url, headers=headers).status

    assert status(token_server.issue_token("bob", access)) == 200
    # distribution allows 60 s leeway on exp.
    assert status(token_server.issue_token("bob", access, now=time.time() - 400)) == 401
    assert status(token_server.issue_token("bob", access, audience="other")) == 401
    assert status(token_server.issue_token("bob", access, issuer="other")) == 401


@pytest.mark.parametrize("token_key", ["access_token", "both"])
def test_token_key_variants(tmp_path: Path, test_ca: TestCA, token_key: str) -> None:
    with TokenServer(
        tmp_path / "ts",
        username="u",
        password="p",
        tls=test_ca,
        token_key=token_key,  # type: ignore[arg-type]
        expires_in=60,
    ) as server:
        body = fetch_token(server, ["repository:x:pull"]).json()
    assert "access_token" in body
    assert ("token" in body) == (token_key == "both")
    assert body["expires_in"] == 60


def test_rs256_tokens_and_plain_http_token_server(
    tmp_path: Path, registry_storage: Path, standard_images: StandardImages
) -> None:
    with TokenServer(tmp_path / "ts", username="u", password="p", alg="RS256") as server:
        assert server.realm.startswith("http://")
        reg = start_registry(
            tmp_path / "reg", storage=registry_storage, auth="token", token_server=server
        )
        try:
            resp = registry_get(reg, "/v2/test/hello/manifests/1", headers=ACCEPT, creds=("u", "p"))
            assert resp.status == 200
            assert resp.headers["Docker-Content-Digest"] == standard_images.hello.manifest_digest
        finally:
            reg.stop()


# -- TLS --------------------------------------------------------------------------------


def test_tls_registry_verification(
    tls_registry: RegistryServer, test_ca: TestCA, other_ca: TestCA
) -> None:
    url = f"{tls_registry.url}/v2/"
    with pytest.raises(urllib3.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib3.PoolManager(retries=False).request("GET", url)
    with pytest.raises(urllib3.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib3.PoolManager(ca_certs=str(other_ca.ca_cert), retries=False).request("GET", url)
    good = urllib3.PoolManager(ca_certs=str(test_ca.ca_cert), retries=False)
    assert good.request("GET", url).status == 200
    # The server certificate is valid for "localhost" too.
    assert good.request("GET", f"https://localhost:{tls_registry.port}/v2/").status == 200
    # And the plain ssl module agrees.
    ctx = tls_registry.ssl_context()
    assert ctx is not None
    with (
        socket.create_connection(("127.0.0.1", tls_registry.port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_mutual_tls(tmp_path: Path, registry_storage: Path, test_ca: TestCA) -> None:
    server = start_registry(
        tmp_path / "mtls", storage=registry_storage, tls=test_ca, client_ca=test_ca
    )
    try:
        url = f"{server.url}/v2/"
        with pytest.raises(urllib3.exceptions.HTTPError):
            urllib3.PoolManager(ca_certs=str(test_ca.ca_cert), retries=False).request("GET", url)
        with_cert = urllib3.PoolManager(
            ca_certs=str(test_ca.ca_cert),
            cert_file=str(test_ca.client_cert),
            key_file=str(test_ca.client_key),
            retries=False,
        )
        assert with_cert.request("GET", url).status == 200
    finally:
        server.stop()


def test_registry_start_failure_is_loud(tmp_path: Path) -> None:
    with pytest.raises(RegistryStartError, match="failed to start"):
        start_registry(
            tmp_path / "bad",
            storage=tmp_path / "storage",
            extra_config={"storage": {"filesystem": None, "nosuchdriver": {}}},
        )


# -- access log -------------------------------------------------------------------------


def test_access_log_counts_requests(
    registry: RegistryServer, standard_images: StandardImages
) -> None:
    img = standard_images.hello
    mark = registry.log_mark()
    pool = registry.pool()
    for digest in img.layer_digests:
        assert pool.request("GET", f"{registry.url}/v2/{img.repo}/blobs/{digest}").status == 200
    blob_path = rf"/v2/{re.escape(img.repo)}/blobs/sha256:[0-9a-f]{{64}}"
    assert registry.count_requests("GET", blob_path, since=mark) == len(img.layer_digests)
    assert registry.count_requests("GET", blob_path, since=mark, status=200) == len(
        img.layer_digests
    )
    assert registry.count_requests("HEAD", since=mark) == 0


# -- random images ----------------------------------------------------------------------


def test_push_random_image(
    registry: RegistryServer, tls_registry: RegistryServer, tmp_path: Path
) -> None:
    sizes = [0, 1000, 300_000]
    built: BuiltImage = push_random_image(registry.url, "test/random", "small", sizes, seed=42)
    again = push_random_image(
        registry.url, "test/random", "again", sizes, seed=42, workdir=tmp_path / "layers"
    )
    assert again.manifest_digest == built.manifest_digest
    other = push_random_image(registry.url, "test/random", "other", sizes[1:], seed=43)
    assert set(other.layer_digests).isdisjoint(built.layer_digests[1:])

    pool = tls_registry.pool()
    resp = pool.request("GET", f"{tls_registry.url}/v2/test/random/manifests/small", headers=ACCEPT)
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == built.manifest_digest
    for size, layer in zip(sizes, again.layers, strict=True):
        blob = pool.request("GET", f"{tls_registry.url}/v2/test/random/blobs/{layer.digest}")
        assert blob.status == 200
        assert blob.data == layer.compressed
        assert len(blob.data) == layer.size
        raw = gzip.decompress(blob.data)
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == layer.diff_id
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            member = tar.getmember("random/blob.bin")
            assert member.size == size
            content = tar.extractfile(member)
            assert content is not None
            data = content.read()
        if size >= 1000:  # incompressible
            assert len(gzip.compress(data)) > size


def test_ssl_module_default_context_rejects_test_ca() -> None:
    """Guard: the system trust store must not already contain a test CA."""
    ctx = ssl.create_default_context()
    assert not any("imgpull" in str(c.get("subject")) for c in ctx.get_ca_certs())
