"""Configuration files: imgpull's own TOML file, and the files of existing setups that
imgpull honours so they work unchanged: Docker's ``daemon.json`` (``registry-mirrors``,
``insecure-registries``) and containers' ``registries.conf`` (v2).

Each loader returns plain records tagged with where they came from, so ``imgpull config``
can show the origin of every effective setting.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imgpull.errors import ConfigError, InvalidReferenceError
from imgpull.naming import Mirror
from imgpull.reference import DOCKER_HUB
from imgpull.reference import normalize_registry as _normalize


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    """What the configuration says about one registry."""

    mirrors: tuple[Mirror, ...] = ()
    mirror_only: bool = False
    insecure: bool = False
    blocked: bool = False
    ca_certs: tuple[Path, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)  # setting -> origin


@dataclass(frozen=True, slots=True)
class FileConfig:
    """Settings read from files, each with its origin."""

    proxy: tuple[str, str] | None = None  # (url, origin)
    no_proxy: tuple[str, str] | None = None
    certs_dir: tuple[Path, str] | None = None
    registries: Mapping[str, RegistryConfig] = field(default_factory=dict)
    files: tuple[tuple[str, str], ...] = ()  # (path, "read" | "not found" | ...)


def user_config_dir() -> Path:
    env = os.environ
    if sys.platform == "win32":
        return Path(env.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "imgpull"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "imgpull"
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "imgpull"


def default_config_file() -> Path:
    return (
        Path(os.environ["IMGPULL_CONFIG"])
        if os.environ.get("IMGPULL_CONFIG")
        else (user_config_dir() / "config.toml")
    )


def daemon_json_paths() -> list[Path]:
    if os.environ.get("IMGPULL_DAEMON_JSON"):
        return [Path(os.environ["IMGPULL_DAEMON_JSON"])]
    if sys.platform == "win32":
        return [
            Path(os.environ.get("PROGRAMDATA", "C:\\ProgramData"))
            / "docker"
            / "config"
            / "daemon.json"
        ]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [
        Path("/etc/docker/daemon.json"),
        config_home / "docker" / "daemon.json",
        Path.home() / ".docker" / "daemon.json",
    ]


def registries_conf_paths() -> list[Path]:
    if os.environ.get("CONTAINERS_REGISTRIES_CONF"):
        return [Path(os.environ["CONTAINERS_REGISTRIES_CONF"])]
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path("/etc/containers/registries.conf"), config_home / "containers" / "registries.conf"]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc


def normalize_registry(name: str, source: str = "configuration") -> str:
    """A registry name from a file; a bad one is reported with the file it came from."""
    try:
        return _normalize(name)
    except InvalidReferenceError as exc:
        raise ConfigError(f"{source}: {exc.message}", exc.hint) from exc


def _read_toml(path: Path) -> dict[str, Any] | None:
    text = _read(path)
    if text is None:
        return None
    import tomllib  # a few ms of start-up, paid only where a file is there to parse

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", "fix the file") from exc


def _strings(value: Any, what: str, source: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{what} in {source} must be a string or a list of strings")


def _merge(into: dict[str, RegistryConfig], registry: str, update: RegistryConfig) -> None:
    """Settings already present (from a file read earlier, which wins) are kept."""
    have = into.get(registry)
    if have is None:
        into[registry] = update
        return
    sources = {**update.sources, **have.sources}
    into[registry] = RegistryConfig(
        mirrors=have.mirrors or update.mirrors,
        mirror_only=have.mirror_only if "mirror_only" in have.sources else update.mirror_only,
        insecure=have.insecure or update.insecure,
        blocked=have.blocked or update.blocked,
        ca_certs=(*have.ca_certs, *update.ca_certs),
        sources=sources,
    )


def load_imgpull_toml(path: Path) -> FileConfig | None:
    data = _read_toml(path)
    if data is None:
        return None
    source = str(path)
    known = {"proxy", "no_proxy", "certs_dir", "insecure_registries", "registries"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in {path}",
            f"known settings: {', '.join(sorted(known))}",
        )
    registries: dict[str, RegistryConfig] = {}
    for name in _strings(data.get("insecure_registries", []), "insecure_registries", source):
        _merge(
            registries,
            normalize_registry(name, source),
            RegistryConfig(insecure=True, sources={"insecure": source}),
        )
    tables = data.get("registries", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"[registries] in {path} must be a table of registries")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(f"[registries.{name!r}] in {path} must be a table")
        extra = sorted(set(table) - {"mirrors", "mirror_only", "insecure", "ca_cert"})
        if extra:
            raise ConfigError(f"unknown setting {extra[0]!r} for registry {name} in {path}")
        sources = {key: source for key in table}
        _merge(
            registries,
            normalize_registry(name, source),
            RegistryConfig(
                mirrors=tuple(
                    Mirror.parse(m, source)
                    for m in _strings(table.get("mirrors", []), "mirrors", source)
                ),
                mirror_only=bool(table.get("mirror_only", False)),
                insecure=bool(table.get("insecure", False)),
                ca_certs=tuple(
                    Path(p) for p in _strings(table.get("ca_cert", []), "ca_cert", source)
                ),
                sources={("ca_certs" if k == "ca_cert" else k): v for k, v in sources.items()},
            ),
        )
    proxy = data.get("proxy")
    no_proxy = data.get("no_proxy")
    certs_dir = data.get("certs_dir")
    return FileConfig(
        proxy=(str(proxy), source) if proxy else None,
        no_proxy=(",".join(_strings(no_proxy, "no_proxy", source)), source) if no_proxy else None,
        certs_dir=(Path(str(certs_dir)), source) if certs_dir else None,
        registries=registries,
    )


def load_daemon_json(path: Path) -> dict[str, RegistryConfig] | None:
    """Docker's ``registry-mirrors`` (they serve docker.io) and ``insecure-registries``."""
    text = _read(path)
    if text is None:
        return None
    source = str(path)
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    registries: dict[str, RegistryConfig] = {}
    mirrors = _strings(data.get("registry-mirrors", []), "registry-mirrors", source)
    if mirrors:
        registries[DOCKER_HUB] = RegistryConfig(
            mirrors=tuple(Mirror.parse(m, source) for m in mirrors),
            sources={"mirrors": source},
        )
    for entry in _strings(data.get("insecure-registries", []), "insecure-registries", source):
        key = (
            f"cidr:{entry}"
            if "/" in entry and _is_cidr(entry)
            else normalize_registry(entry, source)
        )
        _merge(registries, key, RegistryConfig(insecure=True, sources={"insecure": source}))
    return registries


def _is_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def load_registries_conf(path: Path) -> dict[str, RegistryConfig] | None:
    """containers-registries.conf(5) v2: ``[[registry]]`` with ``[[registry.mirror]]``.

    Host-wide entries are honoured; entries whose prefix names a namespace inside a
    registry (``docker.io/library``) are not (imgpull configures whole registries).
    """
    data = _read_toml(path)
    if data is None:
        return None
    source = str(path)
    registries: dict[str, RegistryConfig] = {}
    for entry in data.get("registry", []) or []:
        if not isinstance(entry, dict):
            continue
        prefix = str(entry.get("prefix") or entry.get("location") or "")
        if not prefix or "/" in prefix or prefix.startswith("*"):
            continue
        location = str(entry.get("location") or prefix)
        mirrors: list[Mirror] = []
        digest_only = False
        for mirror in entry.get("mirror", []) or []:
            where = str(mirror.get("location", ""))
            if not where:
                continue
            if mirror.get("pull-from-mirror", "all") == "digest-only":
                digest_only = True
                continue  # such mirrors are only trusted for digests; we resolve tags
            mirrors.append(Mirror.parse(where, source, insecure=bool(mirror.get("insecure"))))
        if location != prefix:
            # The registry itself lives elsewhere: treat it as a mirror that must serve.
            mirrors.append(Mirror.parse(location, source, insecure=bool(entry.get("insecure"))))
        sources: dict[str, str] = {}
        if mirrors:
            sources["mirrors"] = source
        if entry.get("insecure"):
            sources["insecure"] = source
        if entry.get("blocked"):
            sources["blocked"] = source
        if digest_only:
            sources["digest_only_mirrors_skipped"] = source
        if location != prefix:
            sources["mirror_only"] = source
        _merge(
            registries,
            normalize_registry(prefix, source),
            RegistryConfig(
                mirrors=tuple(mirrors),
                mirror_only=location != prefix,
                insecure=bool(entry.get("insecure", False)),
                blocked=bool(entry.get("blocked", False)),
                sources=sources,
            ),
        )
    return registries


def load_files(config_file: Path | None) -> FileConfig:
    """Everything from files, merged: imgpull's file wins over registries.conf, which
    wins over daemon.json."""
    files: list[tuple[str, str]] = []
    explicit = config_file is not None
    path = config_file or default_config_file()
    own = load_imgpull_toml(path)
    if own is None and explicit:
        raise ConfigError(f"config file {path} does not exist", "check the --config path")
    files.append((str(path), "read" if own else "not found"))
    own = own or FileConfig()
    registries = dict(own.registries)
    for conf in registries_conf_paths():
        found = load_registries_conf(conf)
        if found is not None:
            files.append((str(conf), "read"))
            for name, reg in found.items():
                _merge(registries, name, reg)
    for daemon in daemon_json_paths():
        found = load_daemon_json(daemon)
        if found is not None:
            files.append((str(daemon), "read"))
            for name, reg in found.items():
                _merge(registries, name, reg)
    return FileConfig(own.proxy, own.no_proxy, own.certs_dir, registries, tuple(files))
