"""Self-checks for the hostile servers, the new fault-proxy actions and the process watcher.

They talk plain sockets and urllib3 -- never imgpull -- so a failure here means a fixture
does not misbehave the way it is documented to, not that the product is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.fixtures.faultproxy import (
    ConnectionThrottle,
    ConnectLatency,
    EndlessBody,
    FaultProxy,
    Hang,
    IgnoreRange,
    Replace,
    Rule,
    SlowRequestBody,
    Status,
    Trickle,
)
from tests.fixtures.hostile import (
    BearerFront,
    CraftedImage,
    RecordingServer,
    Reply,
    SilentServer,
    ThreeHostLeak,
    assert_one_line_error,
    nested_json,
    secret_forms,
    write_tar,
)
from tests.fixtures.hostile_fixtures import HOSTILE_CONFIGS, HUGE_CONFIG_SIZE, MANY_MEMBERS
from tests.fixtures.images import ALL_MANIFEST_MEDIA, StandardImages, sha256_digest
from tests.fixtures.procwatch import MiB, run_watched, start_watched
from tests.fixtures.registry import RegistryServer

ACCEPT = {"Accept": ", ".join(ALL_MANIFEST_MEDIA)}
BLOB = r"/v2/.+/blobs/sha256:[0-9a-f]{64}"
MANIFEST = r"/v2/.+/manifests/.+"


def _pool(**kwargs: Any) -> urllib3.PoolManager:
    kwargs.setdefault("retries", False)
    kwargs.setdefault("timeout", urllib3.Timeout(connect=3, read=10))
    return urllib3.PoolManager(**kwargs)


def _layer(images: StandardImages) -> tuple[str, str, int]:
    layer = images.hello.built.layers[0]
    return images.hello.repo, layer.digest, layer.size


def _manifest_url(proxy: FaultProxy, images: StandardImages) -> str:
    return f"{proxy.url}/v2/{images.hello.repo}/manifests/{images.hello.tag}"


def _raw_request(host_port: str, request: bytes, timeout: float = 5.0) -> socket.socket:
    host, port = host_port.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.sendall(request)
    return sock


def _get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def _eventually(check: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# -- Hang -------------------------------------------------------------------------------


def test_hang_never_answers_and_holds_the_connection(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    fault_proxy.add_rule(Rule(path=MANIFEST, action=Hang()))
    pool = _pool(timeout=urllib3.Timeout(connect=3, read=1))
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        pool.request("GET", _manifest_url(fault_proxy, standard_images), headers=ACCEPT)
    assert time.monotonic() - started >= 0.9
    (rec,) = fault_proxy.requests
    assert (rec.action, rec.status, rec.bytes_sent) == ("Hang", None, 0)
    assert fault_proxy.connections.accepted == 1
    pool.clear()  # the client leaves: the held connection ends
    assert _eventually(lambda: fault_proxy.open_connections() == 0)
    assert fault_proxy.wait_idle()


def test_hang_before_the_body_reads_none_of_it(fault_proxy: FaultProxy) -> None:
    fault_proxy.add_rule(Rule(method="PUT", path=r"/v2/.*", action=Hang(read_body=False)))
    head = f"PUT /v2/x/blobs/uploads/1 HTTP/1.1\r\nHost: {fault_proxy.host}\r\n"
    sock = _raw_request(fault_proxy.host, (head + "Content-Length: 4000\r\n\r\n").encode())
    try:
        sock.sendall(b"x" * 4000)
        assert _eventually(lambda: len(fault_proxy.requests) == 1)
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert fault_proxy.requests[0].received == 0
        assert fault_proxy.open_connections() == 1
    finally:
        sock.close()
    assert _eventually(lambda: fault_proxy.open_connections() == 0)


def test_hang_after_headers_sends_status_and_headers_only(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    fault_proxy.add_rule(Rule(path=MANIFEST, action=Hang(after_headers=True)))
    pool = _pool(timeout=urllib3.Timeout(connect=3, read=1))
    url = _manifest_url(fault_proxy, standard_images)
    resp = pool.request("GET", url, headers=ACCEPT, preload_content=False)
    assert resp.status == 200
    assert resp.headers["Docker-Content-Digest"] == standard_images.hello.manifest_digest
    assert int(resp.headers["Content-Length"]) > 0
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        resp.read(1)
    assert fault_proxy.requests[0].bytes_sent == 0


def test_stop_releases_held_connections(
    fault_proxy_factory: Callable[..., FaultProxy], registry: RegistryServer
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.add_rule(Rule(path=r".*", action=Hang()))
    sock = _raw_request(proxy.host, _get("/v2/", proxy.host))
    try:
        assert _eventually(lambda: len(proxy.requests) == 1)
        started = time.monotonic()
        proxy.stop()
        sock.settimeout(3)
        assert sock.recv(1) == b""  # closed by the proxy, promptly
        assert time.monotonic() - started < 2
    finally:
        sock.close()


# -- Trickle ----------------------------------------------------------------------------


def test_trickle_paces_the_body(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    size = standard_images.hello.built.manifest_size
    rate = size / 1.5  # the whole manifest in about 1.5 s
    fault_proxy.add_rule(Rule(path=MANIFEST, action=Trickle(bytes_per_second=rate, chunk=20)))
    started = time.monotonic()
    resp = _pool().request(
        "GET", _manifest_url(fault_proxy, standard_images), headers=ACCEPT, preload_content=False
    )
    headers_after = time.monotonic() - started
    body = resp.read()
    total = time.monotonic() - started
    assert headers_after < 0.5
    assert 1.2 < total < 4
    assert sha256_digest(body) == standard_images.hello.manifest_digest


def test_trickle_after_sends_the_head_of_the_body_at_full_speed(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    repo, digest, size = _layer(standard_images)
    fault_proxy.add_rule(
        Rule(path=BLOB, action=Trickle(bytes_per_second=10, chunk=1, after=size - 10))
    )
    started = time.monotonic()
    resp = _pool().request(
        "GET", f"{fault_proxy.url}/v2/{repo}/blobs/{digest}", preload_content=False
    )
    head = resp.read(size - 10)
    fast = time.monotonic() - started
    rest = resp.read()
    assert fast < 1.0
    assert time.monotonic() - started >= 0.9  # ten bytes at ten a second
    assert sha256_digest(head + rest) == digest


def test_trickle_in_headers_paces_the_status_line_too(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    fault_proxy.add_rule(
        Rule(path=MANIFEST, action=Trickle(bytes_per_second=400, chunk=10, in_headers=True))
    )
    hello = standard_images.hello
    path = f"/v2/{hello.repo}/manifests/{hello.tag}"
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {ACCEPT['Accept']}\r\n\r\n"
    sock = _raw_request(fault_proxy.host, request.encode())
    try:
        started, received = time.monotonic(), b""
        first: float | None = None
        while b"\r\n\r\n" not in received:
            data = sock.recv(4096)
            assert data, "closed before the end of the headers"
            first = first if first is not None else time.monotonic() - started
            received += data
        headers_done = time.monotonic() - started
    finally:
        sock.close()
    header_bytes = received.index(b"\r\n\r\n") + 4
    assert received.startswith(b"HTTP/1.1 200")
    assert first is not None and first < 0.3
    assert headers_done >= 0.8 * header_bytes / 400


# -- EndlessBody ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "framing"),
    [
        (EndlessBody(pattern=b'{"a":'), "chunked"),
        (EndlessBody(pattern=b"zz", chunked=False), "close"),
        (EndlessBody(pattern=b"[1,", content_length=10**12), "length"),
    ],
    ids=["chunked", "close-delimited", "lying-length"],
)
def test_endless_body_never_ends(
    fault_proxy: FaultProxy, action: EndlessBody, framing: str
) -> None:
    fault_proxy.add_rule(Rule(path=MANIFEST, action=action))
    pool = _pool()
    resp = pool.request("GET", f"{fault_proxy.url}/v2/x/manifests/1", preload_content=False)
    assert resp.status == 200
    if framing == "chunked":
        assert resp.headers["Transfer-Encoding"] == "chunked"
    elif framing == "close":
        assert "Content-Length" not in resp.headers
        assert resp.headers["Connection"] == "close"
    else:
        assert resp.headers["Content-Length"] == str(10**12)
    received = 0
    for chunk in resp.stream(256 * 1024):
        if received == 0:
            assert chunk.startswith(action.pattern * 3)
        received += len(chunk)
        if received >= 8 * MiB:
            break
    assert received >= 8 * MiB  # still going
    resp.close()
    pool.clear()
    assert _eventually(lambda: fault_proxy.open_connections() == 0)
    assert fault_proxy.wait_idle()


def test_endless_body_error_status_and_prefix(fault_proxy: FaultProxy) -> None:
    fault_proxy.add_rule(
        Rule(path=r".*", action=EndlessBody(status=404, prefix=b'{"errors":[', pattern=b"{},"))
    )
    resp = _pool().request("GET", f"{fault_proxy.url}/v2/x/manifests/1", preload_content=False)
    assert resp.status == 404
    assert resp.read(30) == b'{"errors":[' + b"{}," * 6 + b"{"
    resp.close()


def test_endless_body_answers_head_with_headers_only(fault_proxy: FaultProxy) -> None:
    fault_proxy.add_rule(Rule(path=r".*", action=EndlessBody(content_length=10**9)))
    resp = _pool().request("HEAD", f"{fault_proxy.url}/v2/x/manifests/1")
    assert (resp.status, resp.headers["Content-Length"], resp.data) == (200, str(10**9), b"")


# -- IgnoreRange, Replace, query rules --------------------------------------------------


def test_ignore_range_gets_the_whole_body(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    repo, digest, size = _layer(standard_images)
    url = f"{fault_proxy.url}/v2/{repo}/blobs/{digest}"
    fault_proxy.add_rule(Rule(path=BLOB, action=IgnoreRange()))
    ignored = _pool().request("GET", url, headers={"Range": "bytes=1000-"})
    honoured = _pool().request("GET", url, headers={"Range": "bytes=1000-"})
    assert (ignored.status, len(ignored.data)) == (200, size)
    assert sha256_digest(ignored.data) == digest
    assert (honoured.status, len(honoured.data)) == (206, size - 1000)
    assert [r.headers["range"] for r in fault_proxy.requests] == ["bytes=1000-"] * 2


def test_replace_keeps_headers_and_swaps_the_body(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    body = b'{"schemaVersion": 2, "config": "x"}'
    url = _manifest_url(fault_proxy, standard_images)
    fault_proxy.add_rule(Rule(path=MANIFEST, action=Replace(body)))
    fault_proxy.add_rule(Rule(path=MANIFEST, action=Replace(body, fix_digest=False)))
    fault_proxy.add_rule(
        Rule(path=MANIFEST, action=Replace(b"gone", status=410, headers={"X-Extra": "1"}))
    )
    fixed, kept, other, plain = (_pool().request("GET", url, headers=ACCEPT) for _ in range(4))
    assert fixed.data == body and fixed.status == 200
    assert fixed.headers["Content-Length"] == str(len(body))
    assert fixed.headers["Content-Type"] == plain.headers["Content-Type"]
    assert fixed.headers["Docker-Content-Digest"] == sha256_digest(body)
    assert kept.data == body
    assert kept.headers["Docker-Content-Digest"] == standard_images.hello.manifest_digest
    assert (other.status, other.data, other.headers["X-Extra"]) == (410, b"gone", "1")
    assert sha256_digest(plain.data) == standard_images.hello.manifest_digest


def test_rules_can_match_the_query(fault_proxy: FaultProxy) -> None:
    fault_proxy.add_rule(
        Rule(path=r"/v2/.*", query=r"(^|&)last=b\b", times=None, action=Status(299))
    )
    fault_proxy.add_rule(Rule(path=r"/v2/.*", times=None, action=Status(298)))
    pool = _pool()
    base = f"{fault_proxy.url}/v2/x/tags/list"
    assert pool.request("GET", f"{base}?n=5&last=b").status == 299
    assert pool.request("GET", f"{base}?last=bb").status == 298
    assert pool.request("GET", base).status == 298


# -- SlowRequestBody --------------------------------------------------------------------


def test_slow_request_body_drains_at_the_given_pace(
    fault_proxy_factory: Callable[..., FaultProxy],
    recording_server_factory: Callable[[str], RecordingServer],
) -> None:
    upstream = recording_server_factory("upload target")
    upstream.route(r"/upload", Reply(201))
    proxy = fault_proxy_factory(upstream.url)
    proxy.add_rule(Rule(method="PUT", path=r"/upload", action=SlowRequestBody(20, chunk=4)))
    body = bytes(range(40))
    result: dict[str, Any] = {}

    def upload() -> None:
        started = time.monotonic()
        result["status"] = _pool().request("PUT", f"{proxy.url}/upload", body=body).status
        result["took"] = time.monotonic() - started

    thread = threading.Thread(target=upload)
    thread.start()
    time.sleep(1.0)
    midway = proxy.requests[0].received
    thread.join(10)
    assert 4 <= midway <= 32  # about 20 bytes after a second
    assert result["status"] == 201
    assert result["took"] >= 1.8
    assert upstream.requests[0].body == body
    assert proxy.requests[0].received == len(body)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_request_body_cut_short_is_never_forwarded(
    fault_proxy_factory: Callable[..., FaultProxy],
    recording_server_factory: Callable[[str], RecordingServer],
    framing: str,
) -> None:
    upstream = recording_server_factory("upload target")
    upstream.route(r".*", Reply(201))
    proxy = fault_proxy_factory(upstream.url)
    head = f"PUT /upload?digest=sha256:abc HTTP/1.1\r\nHost: {proxy.host}\r\n"
    if framing == "length":
        request = head + "Content-Length: 100\r\n\r\n" + "x" * 40
    else:
        request = head + "Transfer-Encoding: chunked\r\n\r\n" + "28\r\n" + "x" * 40 + "\r\n"
    sock = _raw_request(proxy.host, request.encode())
    assert _eventually(lambda: len(proxy.requests) == 1)
    time.sleep(0.2)  # the proxy is reading the body now
    sock.close()  # before the end of the body
    assert proxy.wait_idle()
    (rec,) = proxy.requests
    assert not rec.body_complete
    assert rec.error is not None and "cut short" in rec.error
    assert rec.received == 40 if framing == "length" else rec.received > 40
    assert upstream.requests == []
    complete = _pool().request("PUT", f"{proxy.url}/upload", body=b"y" * 10)
    assert complete.status == 201 and proxy.requests[1].body_complete


# -- link conditions --------------------------------------------------------------------


def _ranged_get(url: str, count: int) -> float:
    started = time.monotonic()
    resp = _pool().request("GET", url, headers={"Range": f"bytes=0-{count - 1}"})
    assert resp.status == 206 and len(resp.data) == count
    return time.monotonic() - started


def test_connection_throttle_caps_each_connection(
    fault_proxy_factory: Callable[..., FaultProxy],
    registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    repo, digest, size = _layer(standard_images)
    count = 500_000
    assert size > count
    proxy = fault_proxy_factory(registry)
    proxy.set_link(ConnectionThrottle(count))  # one range per second per connection
    url = f"{proxy.url}/v2/{repo}/blobs/{digest}"
    assert _ranged_get(url, count) >= 0.85
    took: list[float] = []
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: took.append(_ranged_get(url, count))) for _ in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    both = time.monotonic() - started
    assert len(took) == 2 and min(took) >= 0.85
    assert both < 1.7  # two connections, twice the rate: a per-connection cap
    first, second = proxy.requests[-2:]
    assert first.overlaps(second) and not proxy.requests[0].overlaps(second)


def test_connect_latency_delays_each_new_connection_once(
    fault_proxy_factory: Callable[..., FaultProxy], registry: RegistryServer
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.set_link(ConnectLatency(0.5))
    pool = _pool()
    started = time.monotonic()
    assert pool.request("GET", f"{proxy.url}/v2/").status == 200
    first = time.monotonic() - started
    started = time.monotonic()
    assert pool.request("GET", f"{proxy.url}/v2/").status == 200  # same connection
    again = time.monotonic() - started
    assert first >= 0.5
    assert again < 0.3
    assert proxy.connections.accepted == 1


# -- RecordingServer, SilentServer ------------------------------------------------------


def test_recording_server_answers_by_route_and_records_everything(
    recording_server_factory: Callable[[str], RecordingServer],
) -> None:
    server = recording_server_factory("rec")
    server.route(r"/a/.*", Reply(418, {"X-Kind": "teapot"}, b"short and stout"))
    server.route(r"/b", lambda seen: Reply(200, body=seen.body[::-1]), method="POST")
    pool = _pool()
    resp = pool.request("GET", f"{server.url}/a/1?q=2", headers={"X-Test": "yes"})
    assert (resp.status, resp.headers["X-Kind"], resp.data) == (418, "teapot", b"short and stout")
    assert pool.request("POST", f"{server.url}/b", body=b"abc").data == b"cba"
    assert pool.request("GET", f"{server.url}/nowhere").status == 404
    first, second, third = server.requests
    assert (first.method, first.path, first.query, first.headers["x-test"]) == (
        "GET",
        "/a/1",
        "q=2",
        "yes",
    )
    assert (second.method, second.body) == ("POST", b"abc")
    assert third.path == "/nowhere"


def test_recording_server_finds_secrets_in_every_spelling(
    recording_server_factory: Callable[[str], RecordingServer],
) -> None:
    server = recording_server_factory("leaky")
    server.route(r".*", Reply(200))
    pool = _pool()
    secrets = secret_forms("alice", "p@ss word")
    assert not server.leaks(secrets)
    pool.request("GET", f"{server.url}/clean")
    assert not server.leaks(secrets)
    pool.request(
        "GET", f"{server.url}/x", headers=urllib3.make_headers(basic_auth="alice:p@ss word")
    )
    pool.request("GET", f"{server.url}/token?password=p%40ss%20word")
    pool.request("POST", f"{server.url}/form", body=b"password=p%40ss+word")
    found = server.leaks(secrets)
    assert any("Authorization: Basic" in f for f in found)
    assert any("GET /token" in f for f in found)
    assert any("POST /form" in f and "body" in f for f in found)


def test_silent_server_accepts_and_never_answers(silent_server: SilentServer) -> None:
    sock = _raw_request(silent_server.host, _get("/v2/", silent_server.host), timeout=1.0)
    try:
        with pytest.raises(TimeoutError):
            sock.recv(1)
        assert silent_server.accepted == 1
        assert silent_server.open_connections() == 1
        assert _eventually(lambda: silent_server.received > 0)
    finally:
        sock.close()
    assert _eventually(lambda: silent_server.open_connections() == 0)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        _pool(timeout=urllib3.Timeout(connect=2, read=0.5)).request(
            "GET", f"{silent_server.url}/v2/"
        )
    assert silent_server.accepted == 2


def test_silent_server_that_never_reads_fills_the_buffers(
    silent_server_factory: Callable[..., SilentServer],
) -> None:
    server = silent_server_factory(read=False)
    sock = _raw_request(server.host, b"", timeout=1.0)
    try:
        with pytest.raises(TimeoutError):
            sock.sendall(b"x" * (64 * MiB))  # nobody reads: the kernel buffers fill
        assert server.received == 0
    finally:
        sock.close()


# -- three hosts, Bearer front ----------------------------------------------------------


def test_three_host_leak_redirects_challenges_and_records(
    three_host_leak: ThreeHostLeak, standard_images: StandardImages
) -> None:
    setup = three_host_leak
    pool = _pool()
    ping = pool.request("GET", f"{setup.a.url}/v2/", redirect=False)
    assert (ping.status, ping.headers["Location"]) == (302, f"{setup.b.url}/v2/")
    at_b = pool.request("GET", f"{setup.b.url}/v2/")
    assert at_b.status == 401
    assert f'realm="{setup.c.url}/token"' in at_b.headers["WWW-Authenticate"]
    token = pool.request("GET", f"{setup.c.url}/token?service=host-b")
    assert token.json()["token"] == ThreeHostLeak.TOKEN
    assert setup.leaks("alice", "wonderland-secret") == []
    # Other paths of A are the real Basic-auth registry.
    hello = standard_images.hello
    manifest = f"{setup.a.url}/v2/{hello.repo}/manifests/{hello.tag}"
    assert pool.request("GET", manifest, headers=ACCEPT).status == 401
    authorized = {**ACCEPT, **urllib3.make_headers(basic_auth="alice:wonderland-secret")}
    assert pool.request("GET", manifest, headers=authorized).status == 200
    # A careless client: the recording shows it.
    pool.request("GET", f"{setup.c.url}/token", headers=authorized)
    (leak,) = [f for f in setup.leaks("alice", "wonderland-secret") if "Authorization" in f]
    assert leak.startswith("host C: GET /token")


def test_bearer_front_hands_out_tokens_through_a_proxy(
    bearer_front_factory: Callable[..., BearerFront], standard_images: StandardImages
) -> None:
    front = bearer_front_factory()
    pool = _pool()
    hello = standard_images.hello
    manifest = f"{front.front.url}/v2/{hello.repo}/manifests/{hello.tag}"
    denied = pool.request("GET", manifest, headers=ACCEPT)
    assert denied.status == 401
    challenge = denied.headers["WWW-Authenticate"]
    assert challenge == f'Bearer realm="{front.realm}",service="hostile-front"'
    assert front.token_proxy is not None
    assert front.realm == f"{front.token_proxy.url}/token"
    front.token_rule(Rule(path=r"/token", action=Trickle(bytes_per_second=40, chunk=8)))
    started = time.monotonic()
    token = pool.request("GET", f"{front.realm}?service=hostile-front").json()["token"]
    assert time.monotonic() - started >= 0.8  # a token server that trickles
    assert token == BearerFront.TOKEN
    granted = pool.request("GET", manifest, headers={**ACCEPT, "Authorization": f"Bearer {token}"})
    assert granted.status == 200
    assert sha256_digest(granted.data) == hello.manifest_digest
    assert front.issuer.requests[0].query == "service=hostile-front"


def test_bearer_front_can_name_any_realm(bearer_front_factory: Callable[..., BearerFront]) -> None:
    front = bearer_front_factory(realm="http://[::1/token")
    denied = _pool().request("GET", f"{front.front.url}/v2/")
    assert 'realm="http://[::1/token"' in denied.headers["WWW-Authenticate"]


# -- content ----------------------------------------------------------------------------


def test_nested_json_is_too_deep_for_a_naive_parser() -> None:
    for kind in ("object", "array"):
        raw = nested_json(100_000, kind=kind)
        assert len(raw) < 700_000
        with pytest.raises(RecursionError):
            json.loads(raw)
    assert json.loads(nested_json(3)) == {"a": {"a": {"a": 1}}}


def test_hostile_configs_are_served_with_correct_digests(
    hostile_configs: dict[str, CraftedImage], registry: RegistryServer
) -> None:
    assert set(hostile_configs) == set(HOSTILE_CONFIGS)
    pool = _pool()
    for image in hostile_configs.values():
        url = f"{registry.url}/v2/{image.repo}/manifests/{image.tag}"
        manifest = pool.request("GET", url, headers=ACCEPT)
        assert sha256_digest(manifest.data) == image.manifest_digest
        config = pool.request("GET", f"{registry.url}/v2/{image.repo}/blobs/{image.config_digest}")
        assert sha256_digest(config.data) == image.config_digest

    def config_of(image: CraftedImage) -> Any:
        url = f"{registry.url}/v2/{image.repo}/blobs/{image.config_digest}"
        return json.loads(pool.request("GET", url).data)

    shapes = {n: config_of(i) for n, i in hostile_configs.items() if n != "nested-100000-deep"}
    assert shapes["config-is-a-string"]["config"] == "x"
    assert shapes["rootfs-is-a-string"]["rootfs"] == "x"
    assert shapes["entrypoint-is-a-number"]["config"]["Entrypoint"] == 5
    assert shapes["labels-is-a-list"]["config"]["Labels"] == ["a"]
    assert shapes["variant-is-a-number"]["variant"] == 7


def test_huge_config_is_in_the_registry(
    huge_config_image: CraftedImage, registry: RegistryServer
) -> None:
    image = huge_config_image
    head = _pool().request("HEAD", f"{registry.url}/v2/{image.repo}/blobs/{image.config_digest}")
    assert head.status == 200
    assert int(head.headers["Content-Length"]) == HUGE_CONFIG_SIZE
    manifest = json.loads(image.manifest)
    assert manifest["config"] == {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": image.config_digest,
        "size": HUGE_CONFIG_SIZE,
    }


def test_many_members_archive_is_small_and_has_them_all(many_members_archive: Path) -> None:
    size = many_members_archive.stat().st_size
    assert size < 3 * MiB
    raw = gzip.decompress(many_members_archive.read_bytes())
    assert len(raw) == MANY_MEMBERS * 512 + 1024
    # Spot-check headers: valid ustar, names in order, checksums right.
    for number in (0, 1, MANY_MEMBERS - 1):
        header = raw[number * 512 : (number + 1) * 512]
        assert header[:13] == f"empty/{number:07d}".encode()
        stored = int(header[148:154], 8)
        assert stored == sum(header[:148]) + 8 * 32 + sum(header[156:])


def test_write_tar_round_trips(tmp_path: Path) -> None:
    members = {"manifest.json": b"[]", "blobs/sha256/ab": b"x"}
    for gzipped in (False, True):
        path = write_tar(tmp_path / f"t{gzipped}.tar", members, gzipped=gzipped)
        with tarfile.open(path) as tar:
            assert {m.name: tar.extractfile(m).read() for m in tar} == members  # type: ignore[union-attr]


# -- the failure shape ------------------------------------------------------------------


def _result(code: int, stderr: bytes, stdout: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.CompletedProcess(["imgpull"], code, stdout, stderr)


def test_assert_one_line_error_accepts_only_clean_failures(tmp_path: Path) -> None:
    line = assert_one_line_error(_result(5, b"imgpull: error: timed out (try again)\n"), code=5)
    assert line == "imgpull: error: timed out (try again)"
    bad = [
        _result(0, b""),
        _result(1, b"imgpull: error: internal error, report it\n"),
        _result(1, b"Traceback (most recent call last):\nimgpull: error: x\n"),
        _result(5, b"warning\nimgpull: error: x\n"),
        _result(5, b"imgpull: error: x\n", b"data"),
        _result(4, b"imgpull: error: x\n"),  # wrong code below
    ]
    for result in bad:
        with pytest.raises(AssertionError):
            assert_one_line_error(result, code=5)
    out = tmp_path / "out.tar"
    (tmp_path / ".out.tar.1234.partial").write_bytes(b"")
    with pytest.raises(AssertionError):
        assert_one_line_error(_result(5, b"imgpull: error: x\n"), output=out)


# -- procwatch --------------------------------------------------------------------------


def test_procwatch_reports_peak_rss_from_vmhwm() -> None:
    script = "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); del b"
    big = run_watched([sys.executable, "-c", script + "; import time; time.sleep(0.3)"])
    small = run_watched([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert big.returncode == 0 and big.killed is None
    assert 200 * MiB <= big.peak_rss < 260 * MiB
    assert small.peak_rss < 40 * MiB


def test_procwatch_enforces_limits_and_keeps_output() -> None:
    slow = run_watched([sys.executable, "-c", "import time; time.sleep(30)"], time_limit=1)
    assert slow.killed == "time limit 1 s" and slow.returncode == -9
    assert 1 <= slow.wall < 3
    greedy = run_watched(
        [sys.executable, "-c", "x = []\nwhile True: x.append(bytearray(10**7))"],
        rss_limit=200 * MiB,
    )
    assert greedy.killed == "memory limit 200 MiB"
    assert 200 * MiB < greedy.peak_rss < 300 * MiB
    echo = run_watched(
        [
            sys.executable,
            "-c",
            "import sys; sys.stdout.write(sys.stdin.read()); "
            "sys.stderr.write('e' * 5_000_000); sys.exit(3)",
        ],
        input=b"hello",
    )
    assert (echo.returncode, echo.stdout, echo.stderr_size) == (3, b"hello", 5_000_000)
    assert len(echo.stderr) == 4 * MiB
    assert echo.completed().returncode == 3


def test_procwatch_signals_midway() -> None:
    watcher = start_watched(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(42))\n"
            "print('ready', flush=True)\ntime.sleep(30)",
        ],
        time_limit=20,
    )
    time.sleep(0.5)
    assert watcher.alive
    watcher.send_signal(signal.SIGTERM)
    watched = watcher.wait(10)
    assert watched.returncode == 42
    assert watched.stdout == b"ready\n"
    assert watched.wall < 5
    assert hashlib.sha256(watched.stdout).hexdigest()


def test_procwatch_wait_with_a_timeout_kills_what_is_left() -> None:
    watcher = start_watched([sys.executable, "-c", "import time; time.sleep(30)"], time_limit=60)
    watched = watcher.wait(0.5)
    assert watched.killed == "still running 0.5 s after wait()"
    assert watched.returncode == -9 and watched.wall < 3
