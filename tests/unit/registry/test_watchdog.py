"""The watchdog's guard: which limit a request in flight has passed, on a fake clock;
and that firing wakes a thread blocked in a socket read."""

from __future__ import annotations

import socket
import threading
import time

from imgpull.registry.policy import Deadline, SpeedRule
from imgpull.registry.watchdog import Guard, Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def guard(clock: Clock, *, timeout: float | None = None) -> Guard:
    limit = Deadline(timeout, clock=clock)
    return Guard(limit, first_byte=10, speed=SpeedRule(1000, 30), clock=clock)


def test_waiting_too_long_for_an_answer() -> None:
    clock = Clock()
    g = guard(clock)
    g.enter("waiting")
    clock.now = 9.9
    assert g.verdict() is None
    clock.now = 10.1
    assert g.verdict() == "timed out waiting for an answer (10 s)"


def test_a_trickle_is_too_slow_and_a_steady_stream_is_not() -> None:
    clock = Clock()
    g = guard(clock)
    g.enter("receiving")
    for _ in range(30):  # one byte a second
        clock.now += 1
        g.progress(1)
    assert g.verdict() == "slower than 1 kB/s for 30 s"
    steady = guard(clock)
    steady.enter("receiving")
    for _ in range(60):
        clock.now += 1
        steady.progress(5000)
        assert steady.verdict() is None


def test_the_deadline_ends_any_phase() -> None:
    clock = Clock()
    g = guard(clock, timeout=5)
    g.enter("sending")
    clock.now = 6
    assert g.verdict() == "deadline"


def test_idle_guards_are_never_judged_slow() -> None:
    clock = Clock()
    g = guard(clock)
    clock.now = 1000
    assert g.verdict() is None


def test_firing_wakes_a_blocked_reader() -> None:
    server, client = socket.socketpair()
    try:

        class Connection:
            sock = client

        g = Guard(Deadline(None), first_byte=0.2, speed=None)
        g.attach(Connection())
        g.enter("waiting")
        watchdog = Watchdog(tick=0.05)
        got: list[bytes] = []
        with watchdog.watching(g):
            reader = threading.Thread(target=lambda: got.append(client.recv(10)))
            start = time.monotonic()
            reader.start()
            reader.join(timeout=5)
        watchdog.close()
        assert not reader.is_alive()
        assert got == [b""] and g.fired is not None
        assert time.monotonic() - start < 2
    finally:
        server.close()
        client.close()
