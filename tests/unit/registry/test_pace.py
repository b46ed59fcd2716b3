"""Tests for imgpull.registry.pace and ``Response.readinto``: a fast body is read in
whole buffers, a slow one in small steps, and a body cut, reset or stalled while being read
in whole buffers fails exactly as one read in small steps does.

The server is a raw socket on loopback, so a test decides to the byte where the body ends
and how (FIN, RST, silence)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from imgpull.config.settings import Settings
from imgpull.errors import NetworkError
from imgpull.registry.pace import FAST_RATE, PROBE, Pace
from imgpull.registry.response import Response
from imgpull.registry.transport import HttpClient

MiB = 1024 * 1024
BODY = os.urandom(6 * MiB)

Behaviour = Callable[[socket.socket], None]


@dataclass
class RawServer:
    """Answers every connection with ``behaviour`` after reading the request head."""

    behaviour: Behaviour
    port: int = 0

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/blob"


@contextlib.contextmanager
def raw_server(behaviour: Behaviour) -> Iterator[RawServer]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = RawServer(behaviour, listener.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    def one(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if read_request_head(conn):
                server.behaviour(conn)
        with contextlib.suppress(OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        listener.close()


def read_request_head(conn: socket.socket) -> bool:
    """Read one request's head; False when the client closed the connection instead."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = conn.recv(65536)
        if not data:
            return False
        received += data
    return True


def head(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode()


def whole(conn: socket.socket) -> None:
    conn.sendall(head(len(BODY)) + BODY)


def cut_at(offset: int, *, reset: bool = False) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        conn.sendall(head(len(BODY)) + BODY[:offset])
        if reset:  # RST instead of FIN, once the client has had time to read what came
            threading.Event().wait(0.3)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return behaviour


def silent_after(offset: int, seconds: float) -> Behaviour:
    def behaviour(conn: socket.socket) -> None:
        conn.sendall(head(len(BODY)) + BODY[:offset])
        threading.Event().wait(seconds)

    return behaviour


@pytest.fixture
def http() -> Iterator[HttpClient]:
    client = HttpClient(Settings(retries=0, read_timeout=2.0))
    yield client
    client.close()


def read_all(response: Response, sizes: list[int]) -> bytes:
    buffer = memoryview(bytearray(MiB))
    got = bytearray()
    while count := response.readinto(buffer):
        sizes.append(count)
        got += buffer[:count]
    return bytes(got)


# -- the rate rule -------------------------------------------------------------------------


def test_pace_starts_in_small_steps_and_turns_fast_on_a_fast_body() -> None:
    pace = Pace()
    assert not pace.fast
    pace.note(PROBE // 2, 0.0001)
    assert not pace.fast  # too little seen to trust a rate
    pace.note(PROBE // 2, 0.0001)
    assert pace.fast


def test_pace_stays_and_goes_back_to_small_steps_when_slow() -> None:
    pace = Pace()
    pace.note(PROBE, PROBE / (FAST_RATE / 2))
    assert not pace.fast
    pace.note(PROBE, PROBE / (FAST_RATE * 4))
    assert pace.fast
    pace.note(MiB, 1.0)  # the link slowed down: one buffer took a second
    assert not pace.fast


# -- whole bodies --------------------------------------------------------------------------


def test_a_fast_body_arrives_whole_in_full_buffers(http: HttpClient) -> None:
    with raw_server(whole) as server:
        response = http.request("GET", server.url())
        sizes: list[int] = []
        assert hashlib.sha256(read_all(response, sizes)).digest() == hashlib.sha256(BODY).digest()
        assert response.pace.fast
    # After the probe the buffer is filled whole (the last one holds what is left).
    assert MiB in sizes
    assert sum(sizes) == len(BODY)


def test_the_connection_is_reused_after_a_body_read_in_whole_buffers(http: HttpClient) -> None:
    connections: list[int] = []

    def counted(conn: socket.socket) -> None:
        connections.append(1)
        whole(conn)
        while read_request_head(conn):  # the next request on this connection
            whole(conn)

    with raw_server(counted) as server:
        for _ in range(3):
            assert read_all(http.request("GET", server.url()), []) == BODY
    assert len(connections) == 1


# -- bodies that end early or stall --------------------------------------------------------


@pytest.mark.parametrize("offset", [100, PROBE + 10, 3 * MiB + 12345])
def test_a_body_cut_short_keeps_what_came_and_then_fails(http: HttpClient, offset: int) -> None:
    with raw_server(cut_at(offset)) as server:
        response = http.request("GET", server.url())
        buffer = memoryview(bytearray(MiB))
        got = 0
        with pytest.raises(NetworkError, match="dropped") as failure:
            while count := response.readinto(buffer):
                assert buffer[:count] == BODY[got : got + count]
                got += count
    assert response.pace.fast == (offset > PROBE)
    # Every byte that arrived was handed out before the failure: a resume starts there.
    assert got == offset
    assert failure.value.temporary


def test_a_reset_mid_body_fails_as_a_dropped_connection(http: HttpClient) -> None:
    with raw_server(cut_at(3 * MiB + 5, reset=True)) as server:
        response = http.request("GET", server.url())
        buffer = memoryview(bytearray(MiB))
        got = 0
        with pytest.raises(NetworkError, match=r"dropped|reset") as failure:
            while count := response.readinto(buffer):
                assert buffer[:count] == BODY[got : got + count]
                got += count
    assert response.pace.fast
    assert got <= 3 * MiB + 5  # what came before the reset, at most
    assert failure.value.temporary


def test_a_body_that_stalls_mid_buffer_is_ended_by_the_speed_rule() -> None:
    # The socket timeout is only a backstop; the watchdog must wake a read blocked in C.
    http = HttpClient(Settings(retries=0, speed_limit=1024, speed_time=1.0))
    try:
        with raw_server(silent_after(2 * MiB + 7, seconds=20)) as server:
            response = http.request("GET", server.url())
            buffer = memoryview(bytearray(MiB))
            got = 0
            started = time.monotonic()
            with pytest.raises(NetworkError, match=r"slower than|no data") as failure:
                while count := response.readinto(buffer):
                    got += count
            waited = time.monotonic() - started
            assert response.pace.fast
    finally:
        http.close()
    assert failure.value.stalled
    assert waited < 10  # the server holds the connection for 20 s
    assert got <= 2 * MiB + 7


def test_a_chunked_body_is_read_in_small_steps(http: HttpClient) -> None:
    def chunked(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(BODY), 256 * 1024):
            part = BODY[start : start + 256 * 1024]
            conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    with raw_server(chunked) as server:
        assert read_all(http.request("GET", server.url()), []) == BODY
