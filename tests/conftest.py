"""Session-wide test infrastructure: a test CA, real registries and the standard images.

Registries (all real ``docker-registry`` 2.8 processes on 127.0.0.1, started lazily, the
first time a test asks for them, and stopped at session end) share ONE storage directory:

* ``registry``            plain HTTP, no auth -- the one images are pushed to
* ``tls_registry``        HTTPS (server cert from ``test_ca``), no auth
* ``basic_registry``      HTTPS + Basic auth (``alice`` / ``wonderland-secret``)
* ``basic_http_registry`` plain HTTP + Basic auth (same user; distribution 2.8 allows it)
* ``token_registry``      HTTPS + token auth via ``token_server`` (HTTPS too, ``bob`` /
  ``builder-secret``; anonymous clients may pull ``public/*`` only)

``standard_images`` pushes the standard images once (see ``tests.fixtures.images``); they
are then visible through every registry above. Missing binaries make fixtures ERROR, never
skip.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.certs import TestCA, make_ca
from tests.fixtures.hostile_fixtures import *  # noqa: F403
from tests.fixtures.images import StandardImages, push_standard_images
from tests.fixtures.proxy_fixtures import *  # noqa: F403  (proxy, mirror and fault fixtures)
from tests.fixtures.registry import RegistryServer, start_registry
from tests.fixtures.tokenserver import TokenServer

BASIC_USER = "alice"
BASIC_PASSWORD = "wonderland-secret"
TOKEN_USER = "bob"
TOKEN_PASSWORD = "builder-secret"

#: Environment variables removed by ``fresh_env`` (both cases of the proxy ones).
_UNSET = (
    *(
        name
        for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
        for name in (base, base.lower())
    ),
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "REGISTRY_AUTH_FILE",
    "DOCKER_AUTH_CONFIG",
    "CONTAINERS_REGISTRIES_CONF",
)


# -- certificates -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """The CA that signed every test server certificate (127.0.0.1, ::1, localhost)."""
    return make_ca(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    """An unrelated CA, for "wrong CA" tests."""
    return make_ca(tmp_path_factory.mktemp("other-ca"), name="unrelated test CA")


# -- registries -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry_storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The filesystem storage shared by every session registry."""
    return tmp_path_factory.mktemp("registry-storage")


def _serve(server: RegistryServer) -> Iterator[RegistryServer]:
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path
) -> Iterator[RegistryServer]:
    """Plain-HTTP registry without auth; the one test images are pushed to."""
    yield from _serve(
        start_registry(tmp_path_factory.mktemp("registry-plain"), storage=registry_storage)
    )


@pytest.fixture(scope="session")
def tls_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path, test_ca: TestCA
) -> Iterator[RegistryServer]:
    """HTTPS registry without auth (trust ``test_ca.ca_cert``)."""
    yield from _serve(
        start_registry(
            tmp_path_factory.mktemp("registry-tls"), storage=registry_storage, tls=test_ca
        )
    )


@pytest.fixture(scope="session")
def basic_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path, test_ca: TestCA
) -> Iterator[RegistryServer]:
    """HTTPS registry with Basic auth: ``alice`` / ``wonderland-secret``."""
    yield from _serve(
        start_registry(
            tmp_path_factory.mktemp("registry-basic"),
            storage=registry_storage,
            tls=test_ca,
            auth="basic",
            username=BASIC_USER,
            password=BASIC_PASSWORD,
        )
    )


@pytest.fixture(scope="session")
def basic_http_registry(
    tmp_path_factory: pytest.TempPathFactory, registry_storage: Path
) -> Iterator[RegistryServer]:
    """Plain-HTTP registry with Basic auth (``alice`` / ``wonderland-secret``)."""
    yield from _serve(
        start_registry(
            tmp_path_factory.mktemp("registry-basic-http"),
            storage=registry_storage,
            auth="basic",
            username=BASIC_USER,
            password=BASIC_PASSWORD,
        )
    )


@pytest.fixture(scope="session")
def token_server(
    tmp_path_factory: pytest.TempPathFactory, test_ca: TestCA
) -> Iterator[TokenServer]:
    """HTTPS token server (``bob`` / ``builder-secret``); records ``.requests``."""
    server = TokenServer(
        tmp_path_factory.mktemp("token-server"),
        username=TOKEN_USER,
        password=TOKEN_PASSWORD,
        tls=test_ca,
    ).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def token_registry(
    tmp_path_factory: pytest.TempPathFactory,
    registry_storage: Path,
    test_ca: TestCA,
    token_server: TokenServer,
) -> Iterator[RegistryServer]:
    """HTTPS registry with token auth through ``token_server``."""
    yield from _serve(
        start_registry(
            tmp_path_factory.mktemp("registry-token"),
            storage=registry_storage,
            tls=test_ca,
            auth="token",
            token_server=token_server,
        )
    )


@pytest.fixture(scope="session")
def standard_images(registry: RegistryServer) -> StandardImages:
    """The standard test images, pushed once to ``registry`` (visible on all registries)."""
    return push_standard_images(registry.url)


# -- per-test environment ---------------------------------------------------------------


@dataclass(frozen=True)
class FreshEnv:
    """Paths ``fresh_env`` put into the environment (all inside the test's tmp dir)."""

    root: Path
    home: Path  # HOME
    docker_config: Path  # DOCKER_CONFIG (= HOME/.docker, created, empty)
    cache_dir: Path  # IMGPULL_CACHE_DIR (NOT created, so tests can see imgpull create it)
    xdg_cache_home: Path  # XDG_CACHE_HOME (= HOME/.cache, created)
    xdg_config_home: Path  # XDG_CONFIG_HOME (= HOME/.config, created)

    @property
    def docker_config_file(self) -> Path:
        return self.docker_config / "config.json"

    def write_docker_config(self, config: Mapping[str, Any]) -> Path:
        self.docker_config.mkdir(parents=True, exist_ok=True)
        self.docker_config_file.write_text(json.dumps(config, indent=2))
        return self.docker_config_file

    def docker_login(self, host: str, username: str, password: str) -> Path:
        """Add ``auths[host].auth`` (base64 user:password) like ``docker login`` does."""
        config: dict[str, Any] = {}
        if self.docker_config_file.exists():
            config = json.loads(self.docker_config_file.read_text())
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        config.setdefault("auths", {})[host] = {"auth": token}
        return self.write_docker_config(config)


@pytest.fixture
def fresh_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FreshEnv:
    """Point HOME, DOCKER_CONFIG, IMGPULL_CACHE_DIR, XDG_* at tmp dirs; drop proxies/CA env.

    Also removes every other ``IMGPULL_*`` variable, so the real user's settings, files
    and credentials are never used.
    """
    root = tmp_path / "env"
    home = root / "home"
    env = FreshEnv(
        root=root,
        home=home,
        docker_config=home / ".docker",
        cache_dir=root / "imgpull-cache",
        xdg_cache_home=home / ".cache",
        xdg_config_home=home / ".config",
    )
    for path in (env.home, env.docker_config, env.xdg_cache_home, env.xdg_config_home):
        path.mkdir(parents=True, exist_ok=True)
    for name in list(os.environ):
        if name.startswith("IMGPULL_"):
            monkeypatch.delenv(name)
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(env.home))
    monkeypatch.setenv("DOCKER_CONFIG", str(env.docker_config))
    monkeypatch.setenv("IMGPULL_CACHE_DIR", str(env.cache_dir))
    monkeypatch.setenv("XDG_CACHE_HOME", str(env.xdg_cache_home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(env.xdg_config_home))
    # The machine's own mirror, insecure-registry and certs.d settings stay out of tests.
    monkeypatch.setenv("CONTAINERS_REGISTRIES_CONF", str(root / "registries.conf"))
    monkeypatch.setenv("IMGPULL_DAEMON_JSON", str(root / "daemon.json"))
    monkeypatch.setenv("IMGPULL_CERTS_DIR", str(root / "certs.d"))
    return env


# -- nothing may be skipped in CI ----------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a failure: every component must be installed there."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; failing the run", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
