"""Proxy / mirror / fault-injection fixtures, meant for ``tests/conftest.py``.

Register them with ``from tests.integration.proxy_conftest_snippet import *`` in a
conftest (or paste the functions). They build on the session fixtures of
``tests/conftest.py`` (``registry``, ``registry_storage``, ``test_ca``, ``tls_registry``).

Isolated registries (network namespace; reachable ONLY through their proxies):

* ``isolated_registry``       plain HTTP ``registry.imgpull.test:5000``, proxies w/o auth
* ``isolated_tls_registry``   same over HTTPS (trust ``test_ca.ca_cert``)
* ``isolated_auth_registry``  plain HTTP; BOTH proxies require ``PROXY_USER``/``PROXY_PASSWORD``

Each is an :class:`~tests.fixtures.proxies.Isolated` (``.registry_host_inside``,
``.registry_url``, ``.ref()``, ``.http_proxy`` (tinyproxy), ``.socks_proxy`` (microsocks),
``.registry`` (access log)); all serve the shared storage, so ``standard_images`` are
visible (request ``standard_images`` too, to have them pushed).

Loopback proxies (function scope, fresh logs) in front of the ordinary registries:
``tinyproxy``, ``tinyproxy_auth``, ``microsocks``, ``microsocks_auth``, and
``dead_proxy_url`` (nothing listens there).

In-process fault injection (function scope): ``fault_proxy`` (in front of ``registry``),
``fault_proxy_factory(upstream, upstream_ca=None, tls=None)``, ``blob_store`` (redirect
target reading from ``registry``, never forwarding Authorization).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.certs import TestCA
from tests.fixtures.faultproxy import BlobStore, FaultProxy, start_blob_server
from tests.fixtures.proxies import (
    Isolated,
    MicroSocks,
    TinyProxy,
    dead_port_url,
    start_isolated,
    start_microsocks,
    start_tinyproxy,
)
from tests.fixtures.registry import RegistryServer

__all__ = [
    "PROXY_PASSWORD",
    "PROXY_USER",
    "blob_store",
    "dead_proxy_url",
    "fault_proxy",
    "fault_proxy_factory",
    "isolated_auth_registry",
    "isolated_registry",
    "isolated_tls_registry",
    "microsocks",
    "microsocks_auth",
    "tinyproxy",
    "tinyproxy_auth",
]

PROXY_USER = "proxyuser"
PROXY_PASSWORD = "proxy-secret"


# -- isolated registries (session) ------------------------------------------------------


@pytest.fixture(scope="session")
def isolated_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path
) -> Iterator[Isolated]:
    """Plain-HTTP registry reachable only via ``.http_proxy`` / ``.socks_proxy``."""
    iso = start_isolated(tmp_path_factory.mktemp("isolated"), storage=registry_storage)
    try:
        yield iso
    finally:
        iso.stop()


@pytest.fixture(scope="session")
def isolated_tls_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path, test_ca: TestCA
) -> Iterator[Isolated]:
    """HTTPS variant of ``isolated_registry`` (certificate from ``test_ca``)."""
    iso = start_isolated(
        tmp_path_factory.mktemp("isolated-tls"), storage=registry_storage, tls=test_ca
    )
    try:
        yield iso
    finally:
        iso.stop()


@pytest.fixture(scope="session")
def isolated_auth_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path
) -> Iterator[Isolated]:
    """Like ``isolated_registry`` but both proxies require PROXY_USER / PROXY_PASSWORD."""
    iso = start_isolated(
        tmp_path_factory.mktemp("isolated-auth"),
        storage=registry_storage,
        proxy_auth=(PROXY_USER, PROXY_PASSWORD),
    )
    try:
        yield iso
    finally:
        iso.stop()


# -- loopback proxies (function) --------------------------------------------------------


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[TinyProxy]:
    """tinyproxy on 127.0.0.1 without auth (CONNECT allowed to every port)."""
    proxy = start_tinyproxy(tmp_path / "tinyproxy")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def tinyproxy_auth(tmp_path: Path) -> Iterator[TinyProxy]:
    """tinyproxy on 127.0.0.1 requiring PROXY_USER / PROXY_PASSWORD (else 407)."""
    proxy = start_tinyproxy(tmp_path / "tinyproxy-auth", auth=(PROXY_USER, PROXY_PASSWORD))
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def microsocks(tmp_path: Path) -> Iterator[MicroSocks]:
    """microsocks (SOCKS5) on 127.0.0.1 without auth."""
    proxy = start_microsocks(tmp_path / "microsocks")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def microsocks_auth(tmp_path: Path) -> Iterator[MicroSocks]:
    """microsocks on 127.0.0.1 requiring PROXY_USER / PROXY_PASSWORD."""
    proxy = start_microsocks(tmp_path / "microsocks-auth", auth=(PROXY_USER, PROXY_PASSWORD))
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def dead_proxy_url() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (a proxy that is down)."""
    return dead_port_url("http")


# -- fault injection (function) ---------------------------------------------------------


@pytest.fixture
def fault_proxy_factory() -> Iterator[Callable[..., FaultProxy]]:
    """``make(upstream, upstream_ca=None, *, tls=None) -> FaultProxy`` (started).

    ``upstream`` is a URL or a RegistryServer (its CA is then used automatically).
    """
    started: list[FaultProxy] = []

    def make(
        upstream: str | RegistryServer,
        upstream_ca: Path | str | None = None,
        *,
        tls: TestCA | None = None,
    ) -> FaultProxy:
        if isinstance(upstream, RegistryServer):
            upstream_ca = upstream_ca or upstream.ca_cert
            upstream = upstream.url
        proxy = FaultProxy(upstream, upstream_ca, tls=tls).start()
        started.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in started:
            proxy.stop()


@pytest.fixture
def fault_proxy(registry: RegistryServer) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the plain ``registry`` (no rules yet)."""
    proxy = FaultProxy(registry.url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def blob_store(registry: RegistryServer) -> Iterator[BlobStore]:
    """Redirect target for ``RedirectTo(blob_store.url)``; reads blobs from ``registry``."""
    store = start_blob_server(registry.url)
    try:
        yield store
    finally:
        store.stop()
