"""urllib3's exceptions translated, once, into imgpull's: one clear error naming the host
and what to check."""

from __future__ import annotations

import ssl
import urllib.parse

from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError

from imgpull.config.settings import redact_proxy
from imgpull.errors import NetworkError, ProxyError, TLSError


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
        return _proxy_error(exc, host, proxy)
    if isinstance(exc, SSLError):
        return _tls_error(exc, host)
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


def _proxy_error(exc: BaseException, host: str, proxy: str | None) -> ProxyError:
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
        "check --proxy or HTTPS_PROXY/ALL_PROXY, that the proxy is running, and its credentials",
    )


def _tls_error(exc: BaseException, host: str) -> TLSError:
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
        hint = f"the registry may speak plain HTTP; if so, allow it with --insecure-registry {host}"
    else:
        hint = "check that the registry speaks HTTPS on that port"
    failed = TLSError(f"TLS handshake with {host} failed: {reason}", hint)
    failed.maybe_plain_http = True
    return failed


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
