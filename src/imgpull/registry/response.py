"""An answer's body, read in bounded pieces: never more than a limit, progress reported
to the request's watchdog guard, failures translated into imgpull's errors, and the
connection pooled again only when the body was read to its end."""

from __future__ import annotations

import http.client
import select
import time
from typing import Final, Protocol

import urllib3
from urllib3.exceptions import HTTPError

from imgpull.errors import ImgpullError, NetworkError, RegistryError
from imgpull.registry.neterrors import translate
from imgpull.registry.pace import Pace, direct_body, read_into
from imgpull.registry.urls import origin
from imgpull.registry.watchdog import Guard, Watchdog

DEFAULT_BODY_LIMIT: Final = 4 * 1024 * 1024
DRAIN_LIMIT: Final = 64 * 1024
READ_SIZE: Final = 1024 * 1024


class Owner(Protocol):
    """The client a response came from (the transport's ``HttpClient``)."""

    watchdog: Watchdog

    def fired_error(self, guard: Guard, url: str) -> NetworkError: ...


class Response:
    """An answer whose body is read in bounded pieces, never whole by surprise.

    ``read(limit)`` reads it all but fails past ``limit``; ``read1``/``readinto`` stream
    it; ``discard()`` drops it (keeping the connection when the rest is short).
    """

    def __init__(
        self,
        raw: urllib3.BaseHTTPResponse,
        url: str,
        guard: Guard,
        client: Owner,
        proxy: str | None,
    ) -> None:
        self._raw = raw
        self.url = url
        self.status = raw.status
        self.headers = raw.headers
        self._guard = guard
        self._client = client
        self._proxy = proxy
        self._done = False
        self._failure: ImgpullError | None = None
        self.pace = Pace()

    @property
    def host(self) -> str:
        return origin(self.url)[1]

    def read1(self, size: int = READ_SIZE) -> bytes:
        """At most ``size`` bytes as soon as some arrive; b"" at the end."""
        if self._failure is not None:
            raise self._failure
        if self._done:
            return b""
        parts: list[bytes] = []
        total = 0
        while True:
            failure: ImgpullError | None = None
            try:
                data = self._raw.read1(size - total)
            except (HTTPError, OSError) as exc:
                self.close()
                failure = self._error(exc)
            if failure is None and self._guard.fired is not None:
                self.close()
                failure = self._fired()
            if failure is not None:
                if not parts:
                    raise failure from None
                self._failure = failure  # raised by the next call: what came is kept
                break
            if not data:
                break
            self._guard.progress(len(data))
            parts.append(data)
            total += len(data)
            # TLS hands out one 16 KiB record per read: gathering what has already
            # arrived into one chunk spares the layers above 60 calls per MiB.
            if total >= size or not self._more_waiting():
                break
        if not parts:
            self.release()
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, buffer: memoryview) -> int:
        """``read1`` into ``buffer``; a body arriving fast fills it whole in one call
        (see :mod:`imgpull.registry.pace`)."""
        body = direct_body(self._raw) if self.pace.fast else None
        started = time.monotonic()
        if body is None or self._failure is not None or self._done:
            data = self.read1(len(buffer))
            count = len(data)
            buffer[:count] = data
        else:
            count = self._read_direct(body, buffer)
        self.pace.note(count, time.monotonic() - started)
        return count

    def _read_direct(self, body: http.client.HTTPResponse, buffer: memoryview) -> int:
        try:
            count = read_into(body, buffer, self.url)
        except HTTPError as exc:
            self.close()
            raise self._error(exc) from None
        if self._guard.fired is not None:
            self.close()
            if not count:
                raise self._fired()
            self._failure = self._fired()  # raised by the next call: what came is kept
            return count
        if not count:
            self.release()
        self._guard.progress(count)
        return count

    def _more_waiting(self) -> bool:
        """More of the body can be read without waiting for the network."""
        sock = getattr(getattr(self._raw, "connection", None), "sock", None)
        if sock is None:
            return False
        try:
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    def read(self, limit: int = DEFAULT_BODY_LIMIT, what: str = "the answer") -> bytes:
        """The whole body, or RegistryError as soon as it passes ``limit`` bytes."""
        parts: list[bytes] = []
        total = 0
        while chunk := self.read1(min(READ_SIZE, limit + 1 - total) or 1):
            total += len(chunk)
            if total > limit:
                self.close()
                raise RegistryError(
                    f"{what} from {self.host} is larger than {limit} bytes",
                    "the registry or a proxy is misbehaving; try again or another mirror",
                )
            parts.append(chunk)
        return b"".join(parts)

    @property
    def data(self) -> bytes:
        return self.read()

    def discard(self) -> None:
        """Drop the body; a short rest is read so the connection can be reused."""
        if self._done:
            return
        try:
            self.read(DRAIN_LIMIT)
        except ImgpullError:
            self.close()

    def release(self) -> None:
        if not self._done:
            self._done = True
            self._raw.release_conn()
            self._client.watchdog.release(self._guard)

    def close(self) -> None:
        """Abandon the body: the connection is closed, never pooled half-read."""
        if not self._done:
            self._done = True
            self._raw.close()
            self._client.watchdog.release(self._guard)

    def _fired(self) -> NetworkError:
        return self._client.fired_error(self._guard, self.url)

    def _error(self, exc: BaseException) -> NetworkError:
        if self._guard.fired is not None:
            return self._fired()
        return translate(exc, self.url, self._proxy)
