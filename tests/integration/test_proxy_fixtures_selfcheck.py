"""Self-checks for the proxy, isolation and fault-injection fixtures.

They talk urllib3 / PySocks directly -- never imgpull -- so a failure here means the
fixtures are broken, not the product.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
from urllib3.contrib.socks import SOCKSProxyManager

from tests.fixtures.certs import TestCA
from tests.fixtures.faultproxy import (
    BlobStore,
    Corrupt,
    CutAfter,
    Delay,
    DropConnection,
    FaultProxy,
    RedirectTo,
    Refuse404,
    Rule,
    Status,
    start_blob_server,
)
from tests.fixtures.images import ALL_MANIFEST_MEDIA, StandardImages, sha256_digest
from tests.fixtures.netns import NETNS_PREFIX, cleanup_stale_namespaces, create_netns
from tests.fixtures.proxies import (
    ISOLATED_REGISTRY_NAME,
    Isolated,
    MicroSocks,
    TinyProxy,
    start_isolated,
    start_tinyproxy,
)
from tests.fixtures.proxy_fixtures import PROXY_PASSWORD, PROXY_USER
from tests.fixtures.registry import RegistryServer

ACCEPT = {"Accept": ", ".join(ALL_MANIFEST_MEDIA)}
BLOB = r"/v2/.+/blobs/sha256:[0-9a-f]{64}"


def _netns_names() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _read_partial(resp: urllib3.BaseHTTPResponse) -> tuple[bytes, Exception | None]:
    """Read until the body ends or the connection breaks; (bytes read, error)."""
    data = bytearray()
    try:
        while chunk := resp.read1(4096):  # read() would drop the partial data
            data += chunk
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return bytes(data), exc
    return bytes(data), None


def _layer(images: StandardImages) -> tuple[str, str, int]:
    """(repo, digest, size) of the hello image's (busybox, ~1 MB) layer."""
    layer = images.hello.built.layers[0]
    return images.hello.repo, layer.digest, layer.size


# -- isolation --------------------------------------------------------------------------


def test_isolated_registry_unreachable_directly(isolated_registry: Isolated) -> None:
    iso = isolated_registry
    assert iso.registry_host_inside == f"{ISOLATED_REGISTRY_NAME}:5000"
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(ISOLATED_REGISTRY_NAME, 5000)
    mark = iso.registry.log_mark()
    pool = urllib3.PoolManager(retries=False, timeout=3)
    with pytest.raises(urllib3.exceptions.NameResolutionError):
        pool.request("GET", f"{iso.registry_url}/v2/")
    # The namespace's veth address is reachable, but the registry is not bound there.
    assert iso.netns.ns_addr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((iso.netns.ns_addr, 5000), timeout=3).close()
    assert iso.registry.count_requests(since=mark, settle=False) == 0


def test_isolated_registry_via_tinyproxy(
    isolated_registry: Isolated, standard_images: StandardImages
) -> None:
    iso = isolated_registry
    mark, pmark = iso.registry.log_mark(), iso.http_proxy.log_mark()
    pool = iso.http_proxy.pool()
    resp = pool.request("GET", f"{iso.registry_url}/v2/")
    assert resp.status == 200
    hello = standard_images.hello
    resp = pool.request("GET", f"{iso.registry_url}/v2/{hello.repo}/manifests/1", headers=ACCEPT)
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == hello.manifest_digest
    assert sha256_digest(resp.data) == hello.manifest_digest
    assert iso.http_proxy.requests_seen(since=pmark) == [
        f"http://{ISOLATED_REGISTRY_NAME}:5000/v2/",
        f"http://{ISOLATED_REGISTRY_NAME}:5000/v2/{hello.repo}/manifests/1",
    ]
    assert iso.registry.count_requests("GET", rf"/v2/{hello.repo}/manifests/1", since=mark) == 1


def test_isolated_tls_registry_via_connect(
    isolated_tls_registry: Isolated, standard_images: StandardImages, test_ca: TestCA
) -> None:
    iso = isolated_tls_registry
    assert iso.registry_url.startswith("https://")
    pmark = iso.http_proxy.log_mark()
    pool = iso.http_proxy.pool(ca_certs=str(test_ca.ca_cert))
    repo, digest, size = _layer(standard_images)
    resp = pool.request("GET", f"{iso.registry_url}/v2/{repo}/blobs/{digest}")
    assert resp.status == 200
    assert len(resp.data) == size
    assert sha256_digest(resp.data) == digest
    assert iso.http_proxy.requests(since=pmark)[0].method == "CONNECT"
    assert iso.http_proxy.requests_seen(since=pmark) == [f"{ISOLATED_REGISTRY_NAME}:5000"]
    # Directly: the name does not resolve.
    with pytest.raises(urllib3.exceptions.NameResolutionError):
        urllib3.PoolManager(retries=False, ca_certs=str(test_ca.ca_cert)).request(
            "GET", f"{iso.registry_url}/v2/"
        )


def test_isolated_registry_via_microsocks(isolated_registry: Isolated) -> None:
    iso = isolated_registry
    assert iso.socks_proxy.url_h.startswith("socks5h://169.254.")
    # socks5h: the proxy resolves the .test name inside the namespace.
    resp = iso.socks_proxy.pool(remote_dns=True).request("GET", f"{iso.registry_url}/v2/")
    assert resp.status == 200
    # socks5: the client resolves the name itself -- and cannot.
    with pytest.raises(urllib3.exceptions.NewConnectionError):
        iso.socks_proxy.pool(remote_dns=False).request("GET", f"{iso.registry_url}/v2/")
    # By address, 127.0.0.1:5000 through the proxy is the namespace's own loopback.
    resp = iso.socks_proxy.pool(remote_dns=False).request(
        "GET", f"http://{iso.registry_addr_inside}/v2/"
    )
    assert resp.status == 200
    assert f"{ISOLATED_REGISTRY_NAME}:5000" in iso.socks_proxy.targets_seen()


def test_isolated_proxies_require_auth(isolated_auth_registry: Isolated) -> None:
    iso = isolated_auth_registry
    assert iso.proxy_auth == (PROXY_USER, PROXY_PASSWORD)
    assert iso.http_proxy.url.startswith(f"http://{PROXY_USER}:{PROXY_PASSWORD}@169.254.")
    url = f"{iso.registry_url}/v2/"
    assert iso.http_proxy.pool(auth=False).request("GET", url).status == 407
    assert iso.http_proxy.pool().request("GET", url).status == 200
    with pytest.raises(urllib3.exceptions.HTTPError):
        iso.socks_proxy.pool(auth=False).request("GET", url)
    assert iso.socks_proxy.pool().request("GET", url).status == 200
    bad = SOCKSProxyManager(
        iso.socks_proxy.url_h.replace(PROXY_PASSWORD, "wrong"), retries=False, timeout=3
    )
    with pytest.raises(urllib3.exceptions.HTTPError):
        bad.request("GET", url)


def test_isolated_lifecycle_leaves_nothing(tmp_path: Path, registry_storage: Path) -> None:
    iso = start_isolated(tmp_path / "iso", storage=registry_storage)
    name, host_if = iso.netns.name, iso.netns.host_if
    pids = [
        iso.registry.process.pid,
        iso.http_proxy.process.pid,
        iso.socks_proxy.process.pid,
    ]
    assert name in _netns_names()
    assert sorted(iso.netns.pids()) == sorted(pids)
    assert Path(f"/etc/netns/{name}/hosts").read_text().count(ISOLATED_REGISTRY_NAME) == 1
    iso.stop()
    assert name not in _netns_names()
    assert not Path(f"/etc/netns/{name}").exists()
    assert not any(_alive(pid) for pid in pids)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"{host_if}:" not in links and f"{host_if}@" not in links


def test_stale_namespaces_are_removed() -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{NETNS_PREFIX}{dead.pid}-abcdef"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    Path(f"/etc/netns/{stale}").mkdir(parents=True, exist_ok=True)
    try:
        assert stale in cleanup_stale_namespaces()
        assert stale not in _netns_names()
        assert not Path(f"/etc/netns/{stale}").exists()
        # Namespaces of live owners (this process) survive a cleanup.
        ns = create_netns(link=False)
        try:
            cleanup_stale_namespaces()
            assert ns.name in _netns_names()
        finally:
            ns.destroy()
        assert ns.name not in _netns_names()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)


# -- loopback proxies -------------------------------------------------------------------


def test_tinyproxy_auth_on_loopback(
    tinyproxy_auth: TinyProxy, registry: RegistryServer, tls_registry: RegistryServer
) -> None:
    proxy = tinyproxy_auth
    assert proxy.url == f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}"
    resp = proxy.pool(auth=False).request("GET", f"{registry.url}/v2/")
    assert resp.status == 407
    assert "proxy-authenticate" in {k.lower() for k in resp.headers}
    assert proxy.pool().request("GET", f"{registry.url}/v2/").status == 200
    ca = str(tls_registry.ca_cert)
    with pytest.raises(urllib3.exceptions.ProxyError):
        proxy.pool(auth=False, ca_certs=ca).request("GET", f"{tls_registry.url}/v2/")
    assert proxy.pool(ca_certs=ca).request("GET", f"{tls_registry.url}/v2/").status == 200
    assert proxy.requests_seen()[-1] == tls_registry.host  # CONNECT to a non-443 port


def test_microsocks_on_loopback(microsocks_auth: MicroSocks, registry: RegistryServer) -> None:
    assert microsocks_auth.url.startswith(f"socks5://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:")
    assert microsocks_auth.pool().request("GET", f"{registry.url}/v2/").status == 200
    with pytest.raises(urllib3.exceptions.HTTPError):
        microsocks_auth.pool(auth=False).request("GET", f"{registry.url}/v2/")


def test_tinyproxy_chained_to_microsocks(
    tmp_path: Path, microsocks: MicroSocks, registry: RegistryServer
) -> None:
    chained = start_tinyproxy(tmp_path / "chained", upstream_hosts={"": microsocks.url})
    try:
        assert f"Upstream socks5 {microsocks.address}" in chained.config_path.read_text()
        assert chained.pool().request("GET", f"{registry.url}/v2/").status == 200
        assert registry.host in microsocks.targets_seen()
    finally:
        chained.stop()


def test_dead_proxy(dead_proxy_url: str, registry: RegistryServer) -> None:
    pool = urllib3.ProxyManager(dead_proxy_url, retries=False, timeout=3)
    with pytest.raises(urllib3.exceptions.ProxyError):
        pool.request("GET", f"{registry.url}/v2/")


# -- fault proxy ------------------------------------------------------------------------


def _pool(**kwargs: Any) -> urllib3.PoolManager:
    kwargs.setdefault("retries", False)
    kwargs.setdefault("timeout", urllib3.Timeout(connect=3, read=10))
    return urllib3.PoolManager(**kwargs)


def test_fault_proxy_forwards(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    hello = standard_images.hello
    resp = _pool().request(
        "GET", f"{fault_proxy.url}/v2/{hello.repo}/manifests/{hello.tag}", headers=ACCEPT
    )
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == hello.manifest_digest
    assert sha256_digest(resp.data) == hello.manifest_digest
    resp = _pool().request("HEAD", f"{fault_proxy.url}/v2/{hello.repo}/manifests/nope")
    assert resp.status == 404
    assert fault_proxy.wait_idle()
    (first, second) = fault_proxy.requests
    assert (first.method, first.status, first.action) == ("GET", 200, None)
    assert first.bytes_sent == len(resp.data) or first.bytes_sent > 0
    assert first.headers["accept"] == ACCEPT["Accept"]
    assert (second.method, second.status) == ("HEAD", 404)


def test_fault_proxy_cut_then_range_resume(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    repo, digest, size = _layer(standard_images)
    assert size > 5000
    fault_proxy.add_rule(
        Rule(method="GET", path=BLOB, headers={"range": None}, times=None, action=CutAfter(1000))
    )
    url = f"{fault_proxy.url}/v2/{repo}/blobs/{digest}"
    pool = _pool()
    resp = pool.request("GET", url, preload_content=False)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(size)
    head, error = _read_partial(resp)
    assert len(head) == 1000
    assert error is not None
    resp = pool.request("GET", url, headers={"Range": f"bytes={len(head)}-"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 1000-{size - 1}/{size}"
    assert sha256_digest(head + resp.data) == digest
    assert fault_proxy.wait_idle()
    cut, resumed = fault_proxy.requests
    assert (cut.action, cut.bytes_sent, "range" in cut.headers) == ("CutAfter", 1000, False)
    assert (resumed.status, resumed.headers["range"]) == (206, "bytes=1000-")


def test_fault_proxy_cut_with_reset(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    repo, digest, _ = _layer(standard_images)
    fault_proxy.add_rule(Rule(path=BLOB, action=CutAfter(10, reset=True)))
    resp = _pool().request(
        "GET", f"{fault_proxy.url}/v2/{repo}/blobs/{digest}", preload_content=False
    )
    data, error = _read_partial(resp)
    assert len(data) <= 10
    assert error is not None


def test_fault_proxy_status_rules(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    hello = standard_images.hello
    url = f"{fault_proxy.url}/v2/{hello.repo}/manifests/{hello.tag}"
    fault_proxy.add_rule(Rule(path=r"/v2/.*/manifests/.*", action=Status.service_unavailable()))
    fault_proxy.add_rule(
        Rule(path=r"/v2/.*/manifests/.*", action=Status.too_many_requests(retry_after=2))
    )
    pool = _pool()
    resp = pool.request("GET", url, headers=ACCEPT)
    assert (resp.status, resp.headers["Retry-After"]) == (503, "1")
    resp = pool.request("GET", url, headers=ACCEPT)
    assert resp.status == 429
    assert resp.headers["RateLimit-Remaining"] == "0;w=21600"
    assert resp.headers["Retry-After"] == "2"
    assert resp.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    resp = pool.request("GET", url, headers=ACCEPT)  # both rules used up
    assert resp.status == 200
    assert [r.status for r in fault_proxy.requests] == [503, 429, 200]
    assert [rule.fired for rule in fault_proxy.rules] == [1, 1]


def test_fault_proxy_corrupt(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    repo, digest, size = _layer(standard_images)
    fault_proxy.add_rule(Rule(path=BLOB, action=Corrupt(offset=70_000)))  # past 1st chunk
    url = f"{fault_proxy.url}/v2/{repo}/blobs/{digest}"
    bad = _pool().request("GET", url).data
    good = _pool().request("GET", url).data
    assert len(bad) == len(good) == size
    assert sha256_digest(good) == digest
    diff = [i for i, (a, b) in enumerate(zip(bad, good, strict=True)) if a != b]
    assert diff == [70_000]


def test_fault_proxy_redirect_to_blob_store(
    fault_proxy: FaultProxy, blob_store: BlobStore, standard_images: StandardImages
) -> None:
    repo, digest, size = _layer(standard_images)
    fault_proxy.add_rule(Rule(method="GET", path=BLOB, times=2, action=RedirectTo(blob_store.url)))
    url = f"{fault_proxy.url}/v2/{repo}/blobs/{digest}"
    auth = {"Authorization": "Bearer registry-token-must-not-leak"}
    resp = _pool().request("GET", url, headers=auth, redirect=False)
    assert resp.status == 307
    location = resp.headers["Location"]
    assert location == f"{blob_store.url}/v2/{repo}/blobs/{digest}?X-Amz-Signature=secret"
    # A client that follows the redirect across hosts drops Authorization (urllib3 does).
    resp = _pool(retries=urllib3.Retry(total=3, redirect=2)).request("GET", url, headers=auth)
    assert resp.status == 200
    assert sha256_digest(resp.data) == digest and len(resp.data) == size
    assert fault_proxy.requests[-1].headers["authorization"] == auth["Authorization"]
    (seen,) = blob_store.requests
    assert seen.query == "X-Amz-Signature=secret"
    assert "authorization" not in seen.headers
    assert not blob_store.saw_authorization()
    # Non-blob paths are not served.
    assert _pool().request("GET", f"{blob_store.url}/v2/").status == 404


def test_blob_store_never_forwards_authorization(
    basic_http_registry: RegistryServer, standard_images: StandardImages
) -> None:
    repo, digest, _ = _layer(standard_images)
    store = start_blob_server(basic_http_registry.url)
    try:
        headers = urllib3.make_headers(
            basic_auth=f"{basic_http_registry.username}:{basic_http_registry.password}"
        )
        url = f"{store.url}/v2/{repo}/blobs/{digest}"
        # Forwarded with credentials this would be 200; stripped, the upstream says 401.
        assert _pool().request("GET", url, headers=headers).status == 401
        assert store.saw_authorization()
        direct = f"{basic_http_registry.url}/v2/{repo}/blobs/{digest}"
        assert _pool().request("GET", direct, headers=headers).status == 200
    finally:
        store.stop()


def test_fault_proxy_delay_drop_404(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    repo, digest, _ = _layer(standard_images)
    url = f"{fault_proxy.url}/v2/{repo}/blobs/{digest}"
    fault_proxy.add_rule(Rule(path=BLOB, action=Delay(0.3)))
    fault_proxy.add_rule(Rule(path=BLOB, action=DropConnection()))
    fault_proxy.add_rule(Rule(path=BLOB, action=Delay(0.1, then=Refuse404())))
    pool = _pool()
    start = time.monotonic()
    assert pool.request("GET", url).status == 200
    assert time.monotonic() - start >= 0.3
    with pytest.raises(urllib3.exceptions.ProtocolError):
        pool.request("GET", url)
    resp = pool.request("GET", url)
    assert resp.status == 404
    assert resp.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert fault_proxy.wait_idle()
    assert [r.status for r in fault_proxy.requests] == [200, None, 404]


def test_fault_proxy_tls_both_sides(
    fault_proxy_factory: Any,
    tls_registry: RegistryServer,
    test_ca: TestCA,
    standard_images: StandardImages,
) -> None:
    proxy = fault_proxy_factory(tls_registry, tls=test_ca)
    assert proxy.url.startswith("https://127.0.0.1:")
    hello = standard_images.hello
    resp = _pool(ca_certs=str(test_ca.ca_cert)).request(
        "GET", f"{proxy.url}/v2/{hello.repo}/manifests/{hello.tag}", headers=ACCEPT
    )
    assert resp.status == 200
    assert hashlib.sha256(resp.data).hexdigest() == hello.manifest_digest.split(":", 1)[1]
