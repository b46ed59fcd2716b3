"""Tests for imgpull.registry.transport: Retry-After, and -- against tiny
loopback HTTP servers -- redirects that must not leak credentials, retries and errors."""

from __future__ import annotations

import contextlib
import email.utils
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import urllib3

from imgpull.config.settings import Settings
from imgpull.errors import NetworkError, TLSError
from imgpull.registry.transport import HttpClient, retry_after

# -- pure functions ------------------------------------------------------------------------


def response(headers: dict[str, str]) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(body=b"", headers=headers, status=503, preload_content=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), ("120", 120.0), ("1.5", 1.5), ("-3", 0.0), (" 7 ", 7.0)],
)
def test_retry_after_seconds(value: str, expected: float) -> None:
    assert retry_after(response({"Retry-After": value})) == expected


def test_retry_after_absent() -> None:
    assert retry_after(response({})) is None
    assert retry_after(response({"Retry-After": ""})) is None


def test_retry_after_http_date() -> None:
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = retry_after(response({"Retry-After": future}))
    assert waited is not None
    assert 25 <= waited <= 31
    past = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert retry_after(response({"Retry-After": past})) == 0.0
    assert retry_after(response({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0


@pytest.mark.parametrize("value", ["soon", "tomorrow at noon", "12 seconds"])
def test_retry_after_garbage(value: str) -> None:
    assert retry_after(response({"Retry-After": value})) is None


# -- tiny loopback servers -----------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Route = Callable[["Handler"], None]


@dataclass
class Server:
    httpd: ThreadingHTTPServer
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


class Handler(BaseHTTPRequestHandler):
    server_state: Server  # set per server class

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.server_state
        state.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
        route = state.routes.get(self.path.split("?", 1)[0])
        if route is None:
            self.reply(404, b"not found")
        else:
            route(self)

    do_GET = do_HEAD = do_POST = _handle

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(body)  # the client may have given up (timeout tests)


@pytest.fixture
def make_server() -> Iterator[Callable[[], Server]]:
    started: list[tuple[Server, threading.Thread]] = []

    def make() -> Server:
        class BoundHandler(Handler):
            pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), BoundHandler)
        httpd.daemon_threads = True
        state = Server(httpd)
        BoundHandler.server_state = state
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        thread.start()
        started.append((state, thread))
        return state

    yield make
    for state, thread in started:
        state.httpd.shutdown()
        state.httpd.server_close()
        thread.join(timeout=5)


def redirect(location: str, status: int = 307) -> Route:
    return lambda h: h.reply(status, headers={"Location": location})


def ok(body: bytes) -> Route:
    return lambda h: h.reply(200, body)


SECRET = "Bearer registry-token-must-not-leak"


@pytest.fixture
def client() -> Iterator[HttpClient]:
    http = HttpClient(Settings())
    yield http
    http.close()


def authorization(seen: Seen) -> str | None:
    return next((v for k, v in seen.headers.items() if k.lower() == "authorization"), None)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_cross_origin_redirect_drops_authorization(
    make_server: Callable[[], Server], client: HttpClient, status: int
) -> None:
    registry, storage = make_server(), make_server()
    registry.routes["/blob"] = redirect(storage.url("/data?signature=xyz"), status)
    storage.routes["/data"] = ok(b"blob bytes")

    got = client.request("GET", registry.url("/blob"), headers={"Authorization": SECRET})

    assert got.status == 200
    assert got.data == b"blob bytes"
    assert registry.paths() == ["/blob"]
    assert authorization(registry.seen[0]) == SECRET
    assert storage.paths() == ["/data?signature=xyz"]
    assert authorization(storage.seen[0]) is None
    assert all(SECRET not in str(s.headers) for s in storage.seen)


def test_same_origin_redirect_keeps_authorization(
    make_server: Callable[[], Server], client: HttpClient
) -> None:
    registry = make_server()
    registry.routes["/blob"] = redirect("/moved")  # relative, as registries often send
    registry.routes["/moved"] = ok(b"here")
    got = client.request("GET", registry.url("/blob"), headers={"Authorization": SECRET})
    assert got.data == b"here"
    assert [authorization(s) for s in registry.seen] == [SECRET, SECRET]


def test_credentials_stay_dropped_after_leaving_origin(
    make_server: Callable[[], Server], client: HttpClient
) -> None:
    registry, storage = make_server(), make_server()
    registry.routes["/blob"] = redirect("/hop")
    registry.routes["/hop"] = redirect(storage.url("/data"))
    storage.routes["/data"] = redirect(registry.url("/final"))  # and back again
    registry.routes["/final"] = ok(b"done")
    got = client.request("GET", registry.url("/blob"), headers={"authorization": SECRET})
    assert got.data == b"done"
    assert registry.paths() == ["/blob", "/hop", "/final"]
    assert [authorization(s) for s in registry.seen] == [SECRET, SECRET, None]
    assert [authorization(s) for s in storage.seen] == [None]


def test_other_host_name_same_port_is_another_origin(
    make_server: Callable[[], Server], client: HttpClient
) -> None:
    server = make_server()
    server.routes["/blob"] = redirect(server.url("/data", host="localhost"))
    server.routes["/data"] = ok(b"x")
    got = client.request("GET", server.url("/blob"), headers={"Authorization": SECRET})
    assert got.data == b"x"
    assert [authorization(s) for s in server.seen] == [SECRET, None]


def test_303_becomes_get_without_body(
    make_server: Callable[[], Server], client: HttpClient
) -> None:
    server = make_server()
    server.routes["/token"] = redirect("/landing", 303)
    server.routes["/landing"] = ok(b"landed")
    got = client.request("POST", server.url("/token"), body=b"grant_type=x")
    assert got.data == b"landed"
    assert [(s.method, s.body) for s in server.seen] == [
        ("POST", b"grant_type=x"),
        ("GET", b""),
    ]


def test_redirect_loop_gives_up(make_server: Callable[[], Server], client: HttpClient) -> None:
    server = make_server()
    server.routes["/loop"] = redirect("/loop")
    with pytest.raises(NetworkError, match="too many redirects"):
        client.request("GET", server.url("/loop?sig=secret"), retries=0)
    assert 2 <= len(server.seen) <= 20


def test_user_agent_is_sent(make_server: Callable[[], Server], client: HttpClient) -> None:
    server = make_server()
    server.routes["/"] = ok(b"")
    client.request("GET", server.url("/"))
    assert server.seen[0].headers["User-Agent"].startswith("imgpull/")


# -- retries and failures ------------------------------------------------------------------


def flaky(failures: int, headers: dict[str, str], status: int = 503) -> Route:
    count = {"n": 0}

    def route(h: Handler) -> None:
        count["n"] += 1
        if count["n"] <= failures:
            h.reply(status, b"busy", headers)
        else:
            h.reply(200, b"finally")

    return route


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retries_temporary_statuses(
    make_server: Callable[[], Server], client: HttpClient, status: int
) -> None:
    server = make_server()
    server.routes["/x"] = flaky(2, {"Retry-After": "0"}, status)
    got = client.request("GET", server.url("/x"))
    assert (got.status, got.data) == (200, b"finally")
    assert len(server.seen) == 3


def test_gives_up_and_returns_last_response(
    make_server: Callable[[], Server], client: HttpClient
) -> None:
    server = make_server()
    server.routes["/x"] = flaky(10, {"Retry-After": "0"})
    got = client.request("GET", server.url("/x"), retries=2)
    assert got.status == 503
    assert len(server.seen) == 3


def test_post_is_not_retried(make_server: Callable[[], Server], client: HttpClient) -> None:
    server = make_server()
    server.routes["/x"] = flaky(1, {"Retry-After": "0"})
    assert client.request("POST", server.url("/x"), body=b"b").status == 503
    assert len(server.seen) == 1


def test_garbage_retry_after_is_ignored(
    make_server: Callable[[], Server], client: HttpClient
) -> None:
    server = make_server()
    server.routes["/x"] = flaky(1, {"Retry-After": "soon"})
    got = client.request("GET", server.url("/x"))
    assert (got.status, got.data) == (200, b"finally")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_refused_is_a_network_error() -> None:
    http = HttpClient(Settings(retries=0))
    port = free_port()
    try:
        start = time.monotonic()
        with pytest.raises(NetworkError) as caught:
            http.request("GET", f"http://127.0.0.1:{port}/v2/")
        assert time.monotonic() - start < 5
    finally:
        http.close()
    assert f"127.0.0.1:{port}" in caught.value.message
    assert caught.value.temporary


def test_connection_refused_message() -> None:
    http = HttpClient(Settings(retries=0))
    try:
        with pytest.raises(NetworkError) as caught:
            http.request("GET", f"http://127.0.0.1:{free_port()}/v2/")
    finally:
        http.close()
    assert "cannot connect" in caught.value.message
    assert "refused" in caught.value.message


def test_read_timeout(make_server: Callable[[], Server]) -> None:
    server = make_server()

    def slow(h: Handler) -> None:
        time.sleep(1.5)
        h.reply(200, b"late")

    server.routes["/slow"] = slow
    http = HttpClient(Settings(retries=0, read_timeout=0.3))
    try:
        with pytest.raises(NetworkError, match="timed out waiting"):
            http.request("GET", server.url("/slow"))
    finally:
        http.close()


def test_https_to_plain_http_server_is_a_tls_error(make_server: Callable[[], Server]) -> None:
    server = make_server()
    http = HttpClient(Settings(retries=2))
    try:
        with pytest.raises(TLSError) as caught:
            http.request("GET", f"https://127.0.0.1:{server.port}/v2/")
    finally:
        http.close()
    assert not caught.value.temporary
    assert "TLS" in caught.value.message
    assert len(server.seen) == 0  # the handshake garbage is not a request
