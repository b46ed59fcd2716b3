"""The HTTP layer: TLS trust, timeouts, retries with backoff, and safe redirects.

Built on urllib3, which streams a blob with sha256 faster than the other Python clients
measured on this kind of machine. Redirects are followed here, not by urllib3, so that
``Authorization`` is dropped whenever a redirect leaves the original host (registries
commonly redirect blob downloads to object storage). urllib3 exceptions are translated
into ``imgpull.errors`` here and nowhere else.
"""

from __future__ import annotations

import email.utils
import functools
import logging
import os
import random
import ssl
import threading
import time
import urllib.parse
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Final

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

from imgpull.config.settings import Settings, TLSConfig, redact_proxy
from imgpull.errors import NetworkError, ProxyError, TLSError

log = logging.getLogger("imgpull.http")
# --insecure is the user's explicit choice; one warning per request would bury the output.
warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT: Final = frozenset({"GET", "HEAD"})
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
    """Thread-safe; one per run. Connection pools are kept per proxy and TLS setup."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pools: dict[tuple[str | None, TLSConfig | None], urllib3.PoolManager] = {}
        self._lock = threading.Lock()
        self._deadline = time.monotonic() + settings.timeout if settings.timeout else None

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.clear()
            self._pools.clear()

    def remaining(self) -> float | None:
        """Seconds left before the overall --timeout, or None without one."""
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise NetworkError(
                f"gave up: the operation took longer than --timeout {self.settings.timeout:g} s",
                "raise --timeout, or check the network path",
            )
        return left

    def _timeout(self) -> urllib3.Timeout:
        left = self.remaining()
        connect, read = self.settings.connect_timeout, self.settings.read_timeout
        if left is not None:
            connect, read = min(connect, left), min(read, left)
        return urllib3.Timeout(connect=connect, read=read)

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

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | BinaryIO | None = None,
        tls: TLSConfig | None = None,
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
        tls = tls or self.settings.default_tls()
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._follow(method, url, headers, body, tls, stream)
            except NetworkError as exc:
                if last or not exc.temporary:
                    raise
                self._sleep(backoff(attempt), f"{method} {redact(url)} failed ({exc})")
                continue
            if response.status in RETRY_STATUSES and not last:
                asked = retry_after(response)
                if asked is not None and asked > MAX_BACKOFF:
                    return response  # the server wants a long pause: report, don't hang
                delay = backoff(attempt) if asked is None else asked
                response.drain_conn()
                response.release_conn()
                self._sleep(delay, f"{method} {redact(url)}: HTTP {response.status}")
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep(self, delay: float, why: str) -> None:
        left = self.remaining()
        if left is not None:
            delay = min(delay, left)
        log.debug("%s; retrying in %.1fs", why, delay)
        time.sleep(delay)

    def _follow(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        body: bytes | BinaryIO | None,
        tls: TLSConfig,
        stream: bool,
    ) -> Response:
        current = url
        sent = dict(headers or {})
        sent.setdefault("User-Agent", self.settings.user_agent)
        start = origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            proxy = self.settings.proxy_for(current)
            # TLS matters for https URLs, and for any URL through an https proxy.
            needs_tls = current.startswith("https:") or (proxy or "").startswith("https:")
            pool = self._pool(proxy, tls if needs_tls else None)
            log.debug(
                "%s %s%s", method, redact(current), f" via {redact_proxy(proxy)}" if proxy else ""
            )
            try:
                response = pool.request(
                    method,
                    current,
                    headers=sent,
                    body=body,
                    redirect=False,
                    preload_content=not stream,
                    decode_content=False,
                    timeout=self._timeout(),
                )
            except HTTPError as exc:
                raise translate(exc, current, proxy) from exc
            if response.status == 407 and proxy:
                raise ProxyError(
                    f"proxy {redact_proxy(proxy)} requires authentication (HTTP 407)",
                    "put user:password@ in the proxy URL, e.g. http://user:pass@proxy:3128",
                    temporary=False,
                )
            location = response.headers.get("Location")
            if response.status not in REDIRECTS or not location:
                response.url = current  # where the answer really came from
                return response
            response.drain_conn()
            response.release_conn()
            current = urllib.parse.urljoin(current, location)
            if origin(current) != start:
                # Blob storage must never see the registry's credentials, nor its
                # client certificate.
                sent = {k: v for k, v in sent.items() if k.lower() != "authorization"}
                tls = self.settings.default_tls()
            if response.status == 303:
                method, body = "GET", None
        raise NetworkError(f"too many redirects fetching {redact(url)}")


def _make_pool(proxy: str | None, tls: TLSConfig | None, jobs: int) -> urllib3.PoolManager:
    options: dict[str, object] = {
        "num_pools": 32,
        "maxsize": max(4, jobs + 2),
        "block": False,
        "retries": False,
        "blocksize": 1024 * 1024,  # streamed uploads: large writes, not 16 KiB ones
    }
    if tls is not None:
        options["ssl_context"] = ssl_context(tls)
    if proxy is None:
        return urllib3.PoolManager(**options)  # type: ignore[arg-type]
    parts = urllib.parse.urlsplit(proxy)
    if parts.scheme.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager

        # socks5h: the proxy resolves names, which is what works where DNS is poisoned.
        return SOCKSProxyManager(proxy, **options)  # type: ignore[arg-type]
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


@functools.lru_cache(maxsize=32)
def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """One context per TLS setup and process: loading CA bundles is slow."""
    if not tls.verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    paths = ssl.get_default_verify_paths()
    loaded = {_real(paths.cafile)}  # what OpenSSL's defaults just loaded
    # SSL_CERT_FILE makes OpenSSL skip the system bundle; we want it to add, not replace.
    system_bundle = paths.openssl_cafile
    if system_bundle and Path(system_bundle).is_file() and _real(system_bundle) not in loaded:
        context.load_verify_locations(cafile=system_bundle)
        loaded.add(_real(system_bundle))
    for path in tls.ca_certs:
        if _real(str(path)) in loaded:
            continue
        loaded.add(_real(str(path)))
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(
                f"cannot load CA certificates from {path}: {exc}",
                "pass a PEM file with --ca-cert or fix SSL_CERT_FILE",
            ) from exc
    if tls.client_cert:
        cert, key = tls.client_cert
        try:
            context.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            raise TLSError(f"cannot load client certificate {cert}: {exc}") from exc
    return context


def _real(path: str | None) -> str:
    return os.path.realpath(path) if path else ""


def translate(exc: BaseException, url: str, proxy: str | None = None) -> NetworkError:
    """One clear error for a failed request, naming the host and what to check."""
    if isinstance(exc, MaxRetryError) and exc.reason is not None:
        exc = exc.reason
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    proxied = proxy is not None and not isinstance(exc, (SSLError, ReadTimeoutError))
    if isinstance(exc, Urllib3ProxyError) or (
        proxied and isinstance(exc, (NewConnectionError, ConnectTimeoutError))
    ):
        where = redact_proxy(proxy) if proxy else "the proxy"
        reason = _reason(exc)
        if "407" in reason:
            return ProxyError(
                f"proxy {where} refused the credentials for {host} (HTTP 407)",
                "check user:password in the proxy URL",
                temporary=False,
            )
        return ProxyError(
            f"proxy {where} failed while connecting to {host}: {reason}",
            "check --proxy or HTTPS_PROXY/ALL_PROXY, that the proxy is running, and its "
            "credentials",
        )
    if isinstance(exc, SSLError):
        reason = _reason(exc)
        upper = reason.upper()
        if "CERTIFICATE_VERIFY_FAILED" in upper or "CERTIFICATE VERIFY FAILED" in upper:
            return TLSError(
                f"TLS certificate of {host} is not trusted: {reason}",
                "add its CA with --ca-cert FILE, SSL_CERT_FILE or certs.d/HOST/ca.crt, or use "
                "--insecure-registry HOST if you trust the network",
            )
        if "ALERT" in upper and "CERTIFICATE" in upper:
            return TLSError(
                f"{host} refused the TLS client certificate: {reason}",
                f"it wants a client certificate: put client.cert and client.key in "
                f"/etc/docker/certs.d/{host}/ (or IMGPULL_CERTS_DIR)",
            )
        if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER" in upper or "HTTP_REQUEST" in upper:
            plain = TLSError(
                f"TLS handshake with {host} failed: {reason}",
                f"the registry may speak plain HTTP; if so, allow it with "
                f"--insecure-registry {host}",
            )
            plain.maybe_plain_http = True
            return plain
        other = TLSError(
            f"TLS handshake with {host} failed: {reason}",
            "check that the registry speaks HTTPS on that port",
        )
        other.maybe_plain_http = True
        return other
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
