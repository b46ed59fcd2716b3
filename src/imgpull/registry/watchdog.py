"""A watchdog that ends requests which wait too long, however the server stalls.

Socket timeouts bound each ``recv``, not a whole request: a server that trickles one
byte a second, in its headers or its body, would keep a socket timeout happy forever.
So every request in flight gets a :class:`Guard` holding its limits (the operation's
deadline, the time allowed for the first byte of the answer, the low-speed rule), and
one watchdog thread per client checks the guards a few times a second. When a limit is
passed it shuts the request's socket down, which wakes the blocked thread with an error
that the transport then reports as the limit that was hit.

The connection is found through urllib3's connection classes: subclasses here attach
themselves to the guard of the thread that sends the request (urllib3 sends and reads
in the calling thread), so connects, proxy tunnels, TLS handshakes, uploads and
downloads are all covered.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Final, Literal

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from imgpull.registry.policy import Clock, Deadline, SpeedRule

Phase = Literal["idle", "sending", "waiting", "receiving"]
TICK: Final = 0.1

_local = threading.local()


class Guard:
    """The limits of one request and what it has done so far. Thread-safe."""

    def __init__(
        self,
        deadline: Deadline,
        *,
        first_byte: float,
        speed: SpeedRule | None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.deadline = deadline
        self.first_byte = first_byte
        self.speed = speed
        self._clock = clock
        self._lock = threading.Lock()
        self._connection: Any = None
        self.phase: Phase = "idle"
        self._since = clock()
        self._window_start = self._since
        self._window_bytes = 0
        self.moved = 0
        self.fired: str | None = None
        self.group: object = None  # requests cancelled together (a lost race)

    def attach(self, connection: Any) -> None:
        with self._lock:
            self._connection = connection

    def detach(self) -> None:
        with self._lock:
            self._connection = None
            self.phase = "idle"

    def enter(self, phase: Phase) -> None:
        with self._lock:
            self.phase = phase
            self._since = self._window_start = self._clock()
            self._window_bytes = self.moved

    def progress(self, count: int) -> None:
        self.moved += count  # one writer (the request's thread); read under the GIL

    def verdict(self) -> str | None:
        """Why this request must end now, or None."""
        if self.deadline.expired:
            return "deadline"
        now = self._clock()
        with self._lock:
            phase, since = self.phase, self._since
            if phase == "waiting" and now - since > self.first_byte:
                return f"timed out waiting for an answer ({self.first_byte:g} s)"
            if phase in ("sending", "receiving") and self.speed is not None:
                elapsed = now - self._window_start
                if elapsed >= self.speed.window:
                    moved = self.moved - self._window_bytes
                    if self.speed.too_slow(moved, elapsed):
                        return self.speed.describe()
                    self._window_start, self._window_bytes = now, self.moved
        return None

    def fire(self, reason: str) -> None:
        with self._lock:
            if self.fired is None:
                self.fired = reason
            connection = self._connection
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown: wakes a thread blocked in recv or send,
                # without touching the TLS state that thread is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class Watchdog:
    """One thread checking every guard in flight; started with the first guard."""

    def __init__(self, tick: float = TICK) -> None:
        self._tick = tick
        self._guards: set[Guard] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, guard: Guard) -> Iterator[Guard]:
        """Watch ``guard`` and make it the current thread's guard for the block."""
        with self._lock:
            self._guards.add(guard)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="imgpull-watchdog", daemon=True
                )
                self._thread.start()
        previous = getattr(_local, "guard", None)
        _local.guard = guard
        try:
            yield guard
        finally:
            _local.guard = previous

    def release(self, guard: Guard) -> None:
        guard.detach()
        with self._lock:
            self._guards.discard(guard)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            with self._lock:
                guards = list(self._guards)
            for guard in guards:
                if guard.fired is None and (reason := guard.verdict()) is not None:
                    guard.fire(reason)

    def fire_all(self, reason: str) -> None:
        self.fire_where(lambda guard: True, reason)

    def fire_where(self, chosen: Callable[[Guard], bool], reason: str) -> None:
        with self._lock:
            guards = [guard for guard in self._guards if chosen(guard)]
        for guard in guards:
            guard.fire(reason)

    def close(self) -> None:
        self._stop.set()


def current_guard() -> Guard | None:
    guard: Guard | None = getattr(_local, "guard", None)
    return guard


def note_progress(count: int) -> None:
    """Count bytes sent or received by the current thread's request."""
    guard = current_guard()
    if guard is not None:
        guard.progress(count)


if TYPE_CHECKING:
    _Base = HTTPConnection
else:
    _Base = object


class _Watched(_Base):
    """Attaches the connection to the sending thread's guard and reports its phases."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        guard = current_guard()
        if guard is not None:
            guard.attach(self)
            guard.enter("sending")
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        guard = current_guard()
        if guard is not None:
            guard.enter("waiting")
        response = super().getresponse()
        if guard is not None:
            guard.enter("receiving")
        return response


class WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


def watched_pool_classes(socks: bool) -> dict[str, type[HTTPConnectionPool]]:
    """Pool classes for a PoolManager whose connections report to their guard."""
    if not socks:
        return {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}
    from urllib3.contrib.socks import (
        SOCKSConnection,
        SOCKSHTTPConnectionPool,
        SOCKSHTTPSConnection,
        SOCKSHTTPSConnectionPool,
    )

    class WatchedSOCKSConnection(_Watched, SOCKSConnection):
        pass

    class WatchedSOCKSHTTPSConnection(_Watched, SOCKSHTTPSConnection):
        pass

    class WatchedSOCKSPool(SOCKSHTTPConnectionPool):
        ConnectionCls = WatchedSOCKSConnection

    class WatchedSOCKSHTTPSPool(SOCKSHTTPSConnectionPool):
        ConnectionCls = WatchedSOCKSHTTPSConnection

    return {"http": WatchedSOCKSPool, "https": WatchedSOCKSHTTPSPool}
