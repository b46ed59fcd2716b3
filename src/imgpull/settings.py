"""Immutable settings for a run, and the per-registry view of them.

Flags, environment and (later) config files are merged once into ``Settings``; every
other module reads from it and nothing reads the environment behind its back, except
``from_environment`` here.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from imgpull import __version__
from imgpull.reference import DOCKER_HUB, DOCKER_HUB_API, is_loopback_host

USER_AGENT = f"imgpull/{__version__} (+python {sys.version_info.major}.{sys.version_info.minor})"


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """How to reach one registry: which schemes, which TLS trust."""

    name: str  # the registry as written in references, e.g. "docker.io"
    api_host: str  # the host:port to talk to, e.g. "registry-1.docker.io"
    schemes: tuple[str, ...]  # tried in order; "http" only when allowed
    verify_tls: bool
    ca_certs: tuple[Path, ...]

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://{self.api_host}{path}"


@dataclass(frozen=True, slots=True)
class Settings:
    insecure: bool = False
    insecure_registries: frozenset[str] = frozenset()
    ca_certs: tuple[Path, ...] = ()
    username: str | None = None
    password: str | None = None
    docker_config_dir: Path | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 3
    jobs: int = 4
    cache_dir: Path | None = None
    use_cache: bool = True
    user_agent: str = USER_AGENT
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, **overrides: object) -> Settings:
        """Defaults completed from the environment (SSL_CERT_FILE, DOCKER_CONFIG, cache)."""
        env = os.environ
        settings = cls()
        ca: list[Path] = []
        if env.get("SSL_CERT_FILE"):
            ca.append(Path(env["SSL_CERT_FILE"]))
        docker_config = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else None
        settings = replace(
            settings,
            ca_certs=tuple(ca),
            docker_config_dir=docker_config,
            cache_dir=default_cache_dir(),
        )
        extra_ca = overrides.pop("ca_certs", ())
        settings = replace(settings, **overrides)  # type: ignore[arg-type]
        if extra_ca:
            settings = replace(settings, ca_certs=(*settings.ca_certs, *extra_ca))  # type: ignore[misc]
        return settings

    def registry_host(self, registry: str) -> RegistryHost:
        insecure = self.insecure or registry in self.insecure_registries
        loopback = is_loopback_host(registry)
        schemes = ("https", "http") if insecure or loopback else ("https",)
        api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        return RegistryHost(registry, api_host, schemes, not insecure, self.ca_certs)


def default_cache_dir() -> Path:
    """The user cache directory: IMGPULL_CACHE_DIR, else the platform's convention."""
    env = os.environ
    if env.get("IMGPULL_CACHE_DIR"):
        return Path(env["IMGPULL_CACHE_DIR"])
    if sys.platform == "win32":
        base = Path(env.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "imgpull" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "imgpull"
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imgpull"


def default_docker_config_dir(settings: Settings) -> Path:
    return settings.docker_config_dir or Path.home() / ".docker"
