"""The HTTP layer: pools, proxies, safe redirects, the retry policy and the deadline.

Built on urllib3, which streams a blob with sha256 faster than the other Python clients
measured on this kind of machine. Redirects are followed here, not by urllib3, so that
``Authorization`` is dropped whenever a redirect leaves the original host (registries
commonly redirect blob downloads to object storage). Every body is read through
:class:`Response`, which bounds what it reads and reports progress to the request's
watchdog guard; urllib3's exceptions are translated into ``imgpull.errors`` here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from typing import BinaryIO, Final

import urllib3
from urllib3.exceptions import HTTPError

from imgpull.config.settings import Settings, TLSConfig, redact_proxy
from imgpull.errors import NetworkError, ProxyError
from imgpull.registry.neterrors import translate
from imgpull.registry.policy import Deadline, RetryPolicy, SpeedRule
from imgpull.registry.policy import retry_after as _retry_after
from imgpull.registry.response import Response
from imgpull.registry.tls import ssl_context
from imgpull.registry.urls import checked_url, origin, redact
from imgpull.registry.watchdog import Guard, Watchdog, watched_pool_classes
from imgpull.source import PIECE_CONNECTIONS
from imgpull.workers import Cancelled

log = logging.getLogger("imgpull.http")
# --insecure is the user's explicit choice; one warning per request would bury the output.
warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS: Final = 10
CANCELLED: Final = "cancelled"
BACKSTOP_MARGIN: Final = 1.0  # seconds the socket timeout leaves the watchdog

Body = bytes | BinaryIO | None


def retry_after(response: urllib3.BaseHTTPResponse | Response) -> float | None:
    return _retry_after(response.headers.get("Retry-After"))


class HttpClient:
    """Thread-safe; one per run. Connection pools are kept per proxy and TLS setup.

    ``deadline`` is the whole operation's (``--timeout``); every request, read and
    pause between retries is held to it.
    """

    def __init__(self, settings: Settings, deadline: Deadline | None = None) -> None:
        self.settings = settings
        self.overall = deadline or Deadline(settings.timeout)
        self._local = threading.local()
        self.policy = RetryPolicy(retries=settings.retries)
        self.speed = SpeedRule(settings.speed_limit, settings.speed_time)
        self.watchdog = Watchdog()
        self._pools: dict[tuple[str | None, TLSConfig | None], urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.watchdog.close()
        with self._lock:
            for pool in self._pools.values():
                pool.clear()
            self._pools.clear()

    @property
    def deadline(self) -> Deadline:
        """The deadline of what this thread is doing: the whole operation's, or a share
        of it given to one endpoint (:meth:`bounded`)."""
        stack: list[Deadline] = getattr(self._local, "deadlines", [])
        return stack[-1] if stack else self.overall

    @contextlib.contextmanager
    def bounded(self, deadline: Deadline | None) -> Iterator[None]:
        """Requests of this thread inside the block end by ``deadline`` too."""
        if deadline is None:
            yield
            return
        stack: list[Deadline] = getattr(self._local, "deadlines", [])
        self._local.deadlines = [*stack, deadline]
        try:
            yield
        finally:
            self._local.deadlines = stack

    @contextlib.contextmanager
    def grouped(self, group: object) -> Iterator[None]:
        """Requests of this thread inside the block can be cancelled together."""
        previous = getattr(self._local, "group", None)
        self._local.group = group
        try:
            yield
        finally:
            self._local.group = previous

    def cancel_group(self, group: object) -> None:
        self.watchdog.fire_where(lambda guard: guard.group is group, CANCELLED)

    def drop_idle(self, host: str) -> None:
        """Close the idle pooled connections to ``host`` (an endpoint no longer used)."""
        with self._lock:
            managers = list(self._pools.values())
        for manager in managers:
            for key in list(manager.pools.keys()):
                if f"{key.key_host}:{key.key_port}" == host or key.key_host == host:
                    pool = manager.pools.get(key)
                    if pool is not None:
                        pool.close()

    def cancel_all(self) -> None:
        """End every request in flight (the run is being cancelled)."""
        self.watchdog.fire_all(CANCELLED)

    def remaining(self) -> float | None:
        """Seconds left before the overall --timeout, or None; raises once it passed."""
        self.deadline.check()
        return self.deadline.remaining()

    def fired_error(self, guard: Guard, url: str) -> NetworkError:
        if guard.fired == CANCELLED:
            raise Cancelled  # the run is being cancelled: nothing to report or retry
        if guard.fired == "deadline" or guard.deadline.expired:
            return guard.deadline.error()
        error = NetworkError(f"{origin(url)[1]}: {guard.fired}", "check the network path")
        error.stalled = True
        return error

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        tls: TLSConfig | None = None,
        retries: int | None = None,
        first_byte: float | None = None,
    ) -> Response:
        """Send a request, following redirects and retrying what is safe to retry.

        Returns the final response whatever its status; raises ``NetworkError`` (or a
        subclass) when no response could be had after the allowed attempts. A streamed
        ``body`` is sent once. ``first_byte``: how long the answer may take to begin.
        """
        policy = self.policy if retries is None else RetryPolicy(retries=retries)
        attempts = policy.retries + 1 if body is None or isinstance(body, bytes) else 1
        tls = tls or self.settings.default_tls()
        for attempt in range(attempts):
            last = attempt == attempts - 1
            self.deadline.check()
            try:
                response = self._follow(method, url, headers, body, tls, first_byte)
            except NetworkError as exc:
                # An endpoint that stalls is not asked again: the caller has others to try.
                if last or exc.stalled or not policy.retries_error(method, exc):
                    raise
                self._pause(policy.backoff(attempt), f"{method} {redact(url)} failed ({exc})")
                continue
            if last or not policy.retries_status(method, response.status):
                return response
            delay = policy.delay(attempt, retry_after(response))
            if delay is None or (self.deadline.remaining() or delay) < delay:
                return response  # a long pause asked for: report it, do not hang
            response.discard()
            self._pause(delay, f"{method} {redact(url)}: HTTP {response.status}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, delay: float, why: str) -> None:
        log.debug("%s; retrying in %.1fs", why, delay)
        self.deadline.sleep(delay)

    def _pool(self, proxy: str | None, tls: TLSConfig | None) -> urllib3.PoolManager:
        """Pools per proxy and TLS setup; ``tls`` None for plain HTTP, which then never
        pays for loading CA bundles (a tenth of a second each)."""
        key = (proxy, tls)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = _make_pool(proxy, tls, self.settings.jobs)
                self._pools[key] = pool
            return pool

    def _timeout(self, first_byte: float) -> urllib3.Timeout:
        # Socket timeouts are the backstop; the watchdog enforces the real limits. The
        # backstop comes a second later: a socket timing out together with the low-speed
        # window would be an ordinary error, and the stalled endpoint asked again.
        connect = self.deadline.cap(self.settings.connect_timeout)
        read = self.deadline.cap(max(first_byte, self.speed.window) + BACKSTOP_MARGIN)
        return urllib3.Timeout(connect=max(connect, 0.001), read=max(read, 0.001))

    def _follow(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: Body,
        tls: TLSConfig,
        first_byte: float | None,
    ) -> Response:
        current = checked_url(url, "the request URL")
        sent = dict(headers or {})
        sent.setdefault("User-Agent", self.settings.user_agent)
        start = origin(url)
        wait = first_byte if first_byte is not None else self.settings.read_timeout
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(method, current, sent, body, tls, wait)
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                return response
            response.discard()
            try:
                target = urllib.parse.urljoin(current, location)
            except ValueError:
                target = location
            current = checked_url(target, f"the redirect from {response.host}")
            if origin(current) != start:
                # Blob storage must never see the registry's credentials, nor its
                # client certificate.
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
                tls = self.settings.default_tls()
            if response.status == 303:
                method, body = "GET", None
        raise NetworkError(f"too many redirects fetching {redact(url)}")

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body,
        tls: TLSConfig,
        first_byte: float,
    ) -> Response:
        proxy = self.settings.proxy_for(url)
        # TLS matters for https URLs, and for any URL through an https proxy.
        needs_tls = url.startswith("https:") or (proxy or "").startswith("https:")
        pool = self._pool(proxy, tls if needs_tls else None)
        log.debug("%s %s%s", method, redact(url), f" via {redact_proxy(proxy)}" if proxy else "")
        guard = Guard(self.deadline, first_byte=first_byte, speed=self.speed)
        guard.group = getattr(self._local, "group", None)
        try:
            with self.watchdog.watching(guard):
                raw = pool.request(
                    method,
                    url,
                    headers=dict(headers),
                    body=body,
                    redirect=False,
                    preload_content=False,
                    decode_content=False,
                    timeout=self._timeout(first_byte),
                )
        except (HTTPError, OSError) as exc:
            self.watchdog.release(guard)
            if guard.fired is not None:
                raise self.fired_error(guard, url) from None
            raise translate(exc, url, proxy) from exc
        except BaseException:
            self.watchdog.release(guard)
            raise
        response = Response(raw, url, guard, self, proxy)
        if response.status == 407 and proxy:
            response.close()
            raise ProxyError(
                f"proxy {redact_proxy(proxy)} requires authentication (HTTP 407)",
                "put user:password@ in the proxy URL, e.g. http://user:pass@proxy:3128",
                temporary=False,
            )
        return response


def _make_pool(proxy: str | None, tls: TLSConfig | None, jobs: int) -> urllib3.PoolManager:
    options: dict[str, object] = {
        "num_pools": 32,
        # Every connection a run holds at once can go back to the pool: -j streams, each
        # cut into PIECE_CONNECTIONS pieces when slow, plus manifests and pings.
        "maxsize": max(4, jobs * (PIECE_CONNECTIONS + 1) + 2),
        "block": False,
        "retries": False,
        "blocksize": 1024 * 1024,  # streamed uploads: large writes, not 16 KiB ones
    }
    if tls is not None:
        options["ssl_context"] = ssl_context(tls)
    manager: urllib3.PoolManager
    socks = False
    if proxy is None:
        manager = urllib3.PoolManager(**options)  # type: ignore[arg-type]
    elif urllib.parse.urlsplit(proxy).scheme.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager

        # socks5h: the proxy resolves names, which is what works where DNS is poisoned.
        manager = SOCKSProxyManager(proxy, **options)  # type: ignore[arg-type]
        socks = True
    else:
        manager = _http_proxy(proxy, options)
    manager.pool_classes_by_scheme = watched_pool_classes(socks)
    return manager


def _http_proxy(proxy: str, options: dict[str, object]) -> urllib3.ProxyManager:
    parts = urllib.parse.urlsplit(proxy)
    headers = {}
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}")
        proxy = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return urllib3.ProxyManager(
        proxy,
        proxy_headers=headers,
        proxy_ssl_context=ssl_context(TLSConfig()) if parts.scheme == "https" else None,
        **options,  # type: ignore[arg-type]
    )
