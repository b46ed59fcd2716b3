"""The HTTP layer: TLS trust, timeouts, retries with backoff, and safe redirects.

Built on urllib3, which streams a blob with sha256 faster than the other Python clients
measured on this kind of machine. Redirects are followed here, not by urllib3, so that
``Authorization`` is dropped whenever a redirect leaves the original host (registries
commonly redirect blob downloads to object storage). urllib3 exceptions are translated
into ``imgpull.errors`` here and nowhere else.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError

from imgpull.errors import NetworkError, ProxyError, TLSError
from imgpull.settings import Settings

log = logging.getLogger("imgpull.http")

RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS: Final = 10
MAX_BACKOFF: Final = 30.0

Response = urllib3.BaseHTTPResponse


def redact(url: str) -> str:
    """A URL safe to print: no user info, no query (signed blob URLs carry secrets)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if ":" in (parts.hostname or ""):
        host = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.rpartition("@")[2].lower()


def retry_after(response: Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (ValueError, TypeError):
            return None  # unreadable: fall back to our own backoff
        return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: 0.5 s, 1 s, 2 s ... capped, randomised."""
    return random.uniform(0, min(MAX_BACKOFF, 0.5 * 2**attempt))  # noqa: S311


class HttpClient:
    """Thread-safe; one per run. Connection pools are kept per TLS configuration."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pools: dict[tuple[bool, tuple[Path, ...]], urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self._timeout = urllib3.Timeout(
            connect=settings.connect_timeout, read=settings.read_timeout
        )

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.clear()
            self._pools.clear()

    def _pool(self, verify: bool, ca_certs: tuple[Path, ...]) -> urllib3.PoolManager:
        key = (verify, ca_certs)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                pool = urllib3.PoolManager(
                    num_pools=32,
                    maxsize=max(4, self.settings.jobs + 2),
                    block=False,
                    retries=False,
                    timeout=self._timeout,
                    ssl_context=ssl_context(verify, ca_certs),
                )
                self._pools[key] = pool
            return pool

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        verify: bool = True,
        ca_certs: tuple[Path, ...] = (),
        stream: bool = False,
        retries: int | None = None,
    ) -> Response:
        """Send a request, following redirects and retrying what is safe to retry.

        Returns the final response whatever its status; raises ``NetworkError`` (or a
        subclass) when no response could be had after the allowed attempts.
        """
        attempts = (self.settings.retries if retries is None else retries) + 1
        if method not in IDEMPOTENT:
            attempts = 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._follow(method, url, headers, body, verify, ca_certs, stream)
            except NetworkError as exc:
                if last or not exc.temporary:
                    raise
                delay = backoff(attempt)
                log.debug("%s %s failed (%s); retrying in %.1fs", method, redact(url), exc, delay)
                time.sleep(delay)
                continue
            if response.status in RETRY_STATUSES and not last:
                asked = retry_after(response)
                delay = backoff(attempt) if asked is None else min(asked, MAX_BACKOFF)
                log.debug(
                    "%s %s: HTTP %d; retrying in %.1fs", method, redact(url), response.status, delay
                )
                response.drain_conn()
                response.release_conn()
                time.sleep(delay)
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _follow(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: bytes | None,
        verify: bool,
        ca_certs: tuple[Path, ...],
        stream: bool,
    ) -> Response:
        current = url
        sent = dict(headers or {})
        sent.setdefault("User-Agent", self.settings.user_agent)
        start = origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            pool = self._pool(verify, ca_certs)
            log.debug("%s %s", method, redact(current))
            try:
                response = pool.request(
                    method,
                    current,
                    headers=sent,
                    body=body,
                    redirect=False,
                    preload_content=not stream,
                    decode_content=False,
                )
            except HTTPError as exc:
                raise translate(exc, current) from exc
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                return response
            response.drain_conn()
            response.release_conn()
            current = urllib.parse.urljoin(current, location)
            if origin(current) != start:
                # Blob storage must never see the registry's credentials.
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
            if response.status == 303:
                method, body = "GET", None
        raise NetworkError(f"too many redirects fetching {redact(url)}")


def ssl_context(verify: bool, ca_certs: tuple[Path, ...]) -> ssl.SSLContext:
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    # SSL_CERT_FILE makes OpenSSL skip the system bundle; we want it to add, not replace.
    system_bundle = ssl.get_default_verify_paths().openssl_cafile
    if system_bundle and Path(system_bundle).is_file():
        context.load_verify_locations(cafile=system_bundle)
    for path in ca_certs:
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(
                f"cannot load CA certificates from {path}: {exc}",
                "pass a PEM file with --ca-cert or fix SSL_CERT_FILE",
            ) from exc
    return context


def translate(exc: BaseException, url: str) -> NetworkError:
    """One clear error for a failed request, naming the host and what to check."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    if isinstance(exc, Urllib3ProxyError):
        return ProxyError(f"proxy failed while connecting to {host}: {_reason(exc)}")
    if isinstance(exc, SSLError):
        reason = _reason(exc)
        if "CERTIFICATE_VERIFY_FAILED" in reason or "certificate" in reason.lower():
            return TLSError(
                f"TLS certificate of {host} is not trusted: {reason}",
                "add its CA with --ca-cert FILE or SSL_CERT_FILE, or use --insecure if you "
                "trust the network",
            )
        return TLSError(
            f"TLS handshake with {host} failed: {reason}",
            "check that the registry speaks HTTPS on that port",
        )
    if isinstance(exc, NameResolutionError):
        return NetworkError(
            f"cannot resolve host {parts.hostname}", "check the registry name and your DNS"
        )
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test it first.
    if isinstance(exc, NewConnectionError) and "timed out" not in str(exc):
        return NetworkError(
            f"cannot connect to {host}: {_reason(exc)}",
            "check the registry address and port, and that it is running",
        )
    if isinstance(exc, ConnectTimeoutError):
        return NetworkError(
            f"timed out connecting to {host}", "check the network path or set a proxy"
        )
    if isinstance(exc, ReadTimeoutError):
        return NetworkError(f"timed out waiting for {host}")
    if isinstance(exc, ProtocolError):
        return NetworkError(f"connection to {host} was dropped: {_reason(exc)}")
    return NetworkError(f"request to {host} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The innermost readable cause of a urllib3 error, without its object reprs."""
    inner: BaseException = exc
    while True:
        nxt = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
        if not isinstance(nxt, BaseException) or nxt is inner:
            break
        inner = nxt
    if isinstance(inner, ssl.SSLError):
        return inner.reason or str(inner) if inner.reason else str(inner)
    if isinstance(inner, OSError) and inner.strerror:
        return inner.strerror.lower() if inner.strerror else str(inner)
    text = str(inner)
    return text.split(": ", 1)[-1] if "object at 0x" in text else text
