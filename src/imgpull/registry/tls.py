"""TLS contexts: the system CAs plus the ones configured, client certificates, built once
per setup and process (loading CA bundles is slow)."""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

from imgpull.config.settings import TLSConfig
from imgpull.errors import TLSError


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
