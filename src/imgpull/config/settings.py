"""Immutable settings for a run, and the per-registry view of them.

Flags, environment and configuration files are merged once into ``Settings``;
precedence is flags, then environment, then imgpull's config file, then containers'
``registries.conf``, then Docker's ``daemon.json``. Every other module reads from
``Settings`` and nothing reads the environment behind its back.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from imgpull._version import __version__
from imgpull.config.files import FileConfig, RegistryConfig, load_files
from imgpull.errors import ConfigError, UsageError
from imgpull.naming import Mirror
from imgpull.reference import DOCKER_HUB, DOCKER_HUB_API, is_loopback_host

USER_AGENT = f"imgpull/{__version__} (+python {sys.version_info.major}.{sys.version_info.minor})"
DEFAULT_CERTS_DIRS = (Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


@dataclass(frozen=True, slots=True)
class TLSConfig:
    verify: bool = True
    ca_certs: tuple[Path, ...] = ()
    client_cert: tuple[Path, Path] | None = None  # (certificate, key) for mutual TLS


@dataclass(frozen=True, slots=True)
class RegistryHost:
    """One endpoint serving a registry's repositories: the registry or a mirror."""

    name: str  # the registry as written in references, e.g. "docker.io"
    api_host: str  # the host:port to talk to, e.g. "registry-1.docker.io"
    schemes: tuple[str, ...]  # tried in order; "http" only when allowed
    tls: TLSConfig
    prefix: str = ""  # repository path prefix on a prefix mirror, e.g. "docker.io/"
    mirror_of: str | None = None  # the registry this endpoint mirrors

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://{self.api_host}{path}"

    def repository(self, repository: str) -> str:
        return self.prefix + repository

    @property
    def label(self) -> str:
        """How the end-of-pull summary names this endpoint."""
        if self.mirror_of is None:
            return self.name
        return f"{self.api_host}/{self.prefix.rstrip('/')}" if self.prefix else self.api_host


@dataclass(frozen=True, slots=True)
class Settings:
    insecure: bool = False
    insecure_registries: frozenset[str] = frozenset()
    ca_certs: tuple[Path, ...] = ()
    username: str | None = None
    password: str | None = None
    credential_registry: str | None = None  # the registry -u/-p are for (None: any)
    docker_config_dir: Path | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 10.0  # time for an answer to begin (headers), per request
    speed_limit: float = 1024.0  # bytes/s; slower than this for speed_time: abandoned
    speed_time: float = 30.0
    retries: int = 3
    timeout: float | None = None  # overall limit for one operation, in seconds
    jobs: int = 4
    cache_dir: Path | None = None
    use_cache: bool = True
    user_agent: str = USER_AGENT
    proxy: str | None = None  # --proxy or config file; wins over the environment
    env_proxies: Mapping[str, str] = field(default_factory=dict)  # "http"/"https"/"all"
    no_proxy: str = ""
    certs_dirs: tuple[Path, ...] = DEFAULT_CERTS_DIRS
    mirrors: Mapping[str, tuple[Mirror, ...]] = field(default_factory=dict)  # from flags
    registries: Mapping[str, RegistryConfig] = field(default_factory=dict)  # from files
    origins: Mapping[str, str] = field(default_factory=dict)  # setting -> where from
    files: tuple[tuple[str, str], ...] = ()
    manifest_limit: int = 4 * 1024 * 1024  # manifests and image configs, in bytes

    @classmethod
    def from_environment(cls, *, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Settings from files and the environment, with ``overrides`` (flags) on top."""
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(
                f"unknown setting {unknown[0]!r}",
                "known settings: " + ", ".join(sorted(f.name for f in fields(cls))),
            )
        env = os.environ
        origins: dict[str, str] = {}
        files = load_files(config_file)
        values: dict[str, Any] = {
            "cache_dir": default_cache_dir(),
            "registries": files.registries,
            "files": files.files,
        }
        ca: list[Path] = []
        if env.get("SSL_CERT_FILE"):
            ca.append(Path(env["SSL_CERT_FILE"]))
            origins["ca_certs"] = "SSL_CERT_FILE"
        if env.get("DOCKER_CONFIG"):
            values["docker_config_dir"] = Path(env["DOCKER_CONFIG"])
        values.update(_proxy_environment(files, origins))
        certs = _certs_dirs(files, origins)
        if certs is not None:
            values["certs_dirs"] = certs
        extra_ca = tuple(overrides.pop("ca_certs", ()))
        values["ca_certs"] = (*ca, *extra_ca)
        if extra_ca:
            origins["ca_certs"] = "--ca-cert" + (" and SSL_CERT_FILE" if ca else "")
        if overrides.get("proxy"):
            origins["proxy"] = "--proxy"
        for name, value in overrides.items():
            if value is None:
                continue
            values[name] = value
        values["origins"] = {**origins, **dict(values.get("origins", {}))}
        settings = cls(**values)
        if settings.proxy:
            check_proxy_url(settings.proxy, origins.get("proxy", "the proxy setting"))
        return settings

    # -- registries ------------------------------------------------------------------------

    def registry_config(self, registry: str) -> RegistryConfig:
        return self.registries.get(registry, RegistryConfig())

    def is_insecure(self, registry: str) -> bool:
        if self.insecure or registry in self.insecure_registries:
            return True
        if self.registry_config(registry).insecure:
            return True
        host = (
            registry.rsplit(":", 1)[0].strip("[]")
            if registry.count(":") <= 1 or registry.startswith("[")
            else registry
        )
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(
            address in ipaddress.ip_network(key[5:], strict=False)
            for key in self.registries
            if key.startswith("cidr:") and self.registries[key].insecure
        )

    def tls_for_registry(self, registry: str, *, insecure: bool = False) -> TLSConfig:
        """TLS for a registry host: global CAs, per-registry CAs, certs.d, client cert."""
        if insecure or self.is_insecure(registry):
            return TLSConfig(verify=False)
        ca = [*self.ca_certs, *self.registry_config(registry).ca_certs]
        client: tuple[Path, Path] | None = None
        for root in self.certs_dirs:
            directory = root / registry
            if not directory.is_dir():
                continue
            ca.extend(sorted(directory.glob("*.crt")))
            for cert in sorted(directory.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.is_file():
                    raise ConfigError(
                        f"client certificate {cert} has no matching key {key.name}",
                        "put the key beside it, as Docker expects",
                    )
                client = client or (cert, key)
        return TLSConfig(True, tuple(ca), client)

    def default_tls(self) -> TLSConfig:
        """TLS for hosts that are not registries (token servers, blob storage)."""
        return TLSConfig(verify=not self.insecure, ca_certs=self.ca_certs)

    def registry_host(self, registry: str) -> RegistryHost:
        insecure = self.is_insecure(registry)
        if insecure:
            schemes: tuple[str, ...] = ("https", "http")
        elif is_loopback_host(registry):
            # Local registries mostly speak plain HTTP: asking that first spares loading
            # CA bundles; a TLS one answers 400 to it and is asked over HTTPS next.
            schemes = ("http", "https")
        else:
            schemes = ("https",)
        api_host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        return RegistryHost(registry, api_host, schemes, self.tls_for_registry(registry))

    def mirror_host(self, registry: str, mirror: Mirror) -> RegistryHost:
        insecure = mirror.insecure or self.is_insecure(mirror.host)
        if mirror.scheme == "http":
            schemes: tuple[str, ...] = ("http",)
        elif mirror.scheme == "https" and not insecure:
            schemes = ("https",)
        else:
            plain = insecure or is_loopback_host(mirror.host)
            schemes = ("https", "http") if plain else ("https",)
        tls = self.tls_for_registry(mirror.host, insecure=insecure)
        return RegistryHost(mirror.host, mirror.host, schemes, tls, mirror.prefix, registry)

    def mirrors_for(self, registry: str) -> tuple[Mirror, ...]:
        return self.mirrors.get(registry) or self.registry_config(registry).mirrors

    def endpoints(self, registry: str) -> list[RegistryHost]:
        """Where to look for ``registry``'s repositories: mirrors in order, then itself."""
        config = self.registry_config(registry)
        if config.blocked:
            raise ConfigError(
                f"registry {registry} is blocked by {config.sources.get('blocked', 'config')}",
                "remove the block or pull from another registry",
            )
        hosts = [self.mirror_host(registry, m) for m in self.mirrors_for(registry)]
        if not (config.mirror_only and hosts):
            hosts.append(self.registry_host(registry))
        return hosts

    # -- proxies -----------------------------------------------------------------------------

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for a request to ``url``, or None to connect directly.

        As Go's net/http does, loopback hosts are never proxied.
        """
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        scheme = parts.scheme.lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
        bracketed = f"[{host}]" if ":" in host else host
        if not host or is_loopback_host(bracketed) or bypasses_proxy(host, port, self.no_proxy):
            return None
        # Flags, then the environment, then the config file.
        if self.proxy and self.origins.get("proxy") == "--proxy":
            return self.proxy
        from_env = self.env_proxies.get(scheme) or self.env_proxies.get("all")
        return from_env or self.proxy


def _env(name: str) -> tuple[str, str] | None:
    """(value, variable): lower case first, as curl and requests read proxy variables."""
    for variable in (name.lower(), name.upper()):
        if os.environ.get(variable):
            return os.environ[variable], variable
    return None


def _proxy_environment(files: FileConfig, origins: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    proxies: dict[str, str] = {}
    for scheme, name in (("https", "https_proxy"), ("http", "http_proxy"), ("all", "all_proxy")):
        found = _env(name)
        if found:
            value, variable = found
            check_proxy_url(value, variable)
            proxies[scheme] = value
            origins[f"{scheme}_proxy"] = variable
    values["env_proxies"] = proxies
    if files.proxy:
        values["proxy"] = files.proxy[0]
        origins["proxy"] = files.proxy[1]
    no_proxy = _env("no_proxy")
    if no_proxy is not None:
        values["no_proxy"], origins["no_proxy"] = no_proxy
    elif files.no_proxy:
        values["no_proxy"] = files.no_proxy[0]
        origins["no_proxy"] = files.no_proxy[1]
    return values


def _certs_dirs(files: FileConfig, origins: dict[str, str]) -> tuple[Path, ...] | None:
    if os.environ.get("IMGPULL_CERTS_DIR"):
        origins["certs_dirs"] = "IMGPULL_CERTS_DIR"
        return (Path(os.environ["IMGPULL_CERTS_DIR"]),)
    if files.certs_dir:
        origins["certs_dirs"] = files.certs_dir[1]
        return (files.certs_dir[0],)
    return None


def check_proxy_url(url: str, origin: str) -> None:
    parts = urllib.parse.urlsplit(url)
    try:
        valid_port = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        valid_port = False
    if parts.scheme.lower() not in PROXY_SCHEMES or not parts.hostname or not valid_port:
        raise ConfigError(
            f"invalid proxy {redact_proxy(url)!r} from {origin}",
            "use http://, https://, socks5:// or socks5h:// with a host, e.g. "
            "socks5h://127.0.0.1:1080",
        )


def redact_proxy(url: str) -> str:
    """A proxy URL without its password, for messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@" + parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def bypasses_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """NO_PROXY matching: ``*``, host names and ``.domain`` suffixes, IPs, CIDR ranges,
    each optionally with ``:port``."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.startswith("["):
            inner, _, rest = entry[1:].partition("]")
            entry, entry_port = (
                inner,
                int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None,
            )
        elif entry.count(":") == 1:
            name, _, port_text = entry.partition(":")
            if port_text.isdigit():
                entry, entry_port = name, int(port_text)
        if entry_port is not None and entry_port != port:
            continue
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        domain = entry.lstrip("*").lstrip(".")
        if host == domain or host.endswith("." + domain):
            return True
    return False


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
