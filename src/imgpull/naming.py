"""Where an image goes: mirror locations, the renaming rules of ``rewrite``, ``push`` and
``copy`` (mirrors, a target prefix, kubeadm's ``imageRepository`` rule), destination names,
and safe file names for archives.

One grammar for every mirror, whoever gives it (``pull --mirror``, config files,
``rewrite --mirror``): ``[http(s)://]host[:port][/path-prefix]``.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from imgpull.errors import ConfigError, InvalidReferenceError
from imgpull.reference import (
    DOCKER_HUB,
    DOCKER_HUB_LEGACY,
    Reference,
    normalize_registry,
    parse_reference,
)

#: Registries whose images map to ``PREFIX/<last path component>`` under ``--to``.
KUBERNETES_REGISTRIES: Final = frozenset({"registry.k8s.io", "k8s.gcr.io"})
# The one kubeadm image whose default repository is nested (GetDNSImage).
COREDNS_NESTED: Final = "coredns/coredns"


@dataclass(frozen=True, slots=True)
class Mirror:
    """A registry that serves another registry's repositories.

    ``https://m.daocloud.io/docker.io`` is a prefix mirror: repository ``library/nginx``
    is fetched as ``docker.io/library/nginx`` from ``m.daocloud.io``.
    """

    host: str  # host[:port] to talk to
    prefix: str  # repository path prefix on the mirror, "" or "docker.io/"
    scheme: str | None  # "https" or "http" when written explicitly
    source: str  # where it was configured
    insecure: bool = False  # plain HTTP or unverified TLS allowed (registries.conf)

    @classmethod
    def parse(cls, text: str, source: str, *, insecure: bool = False) -> Mirror:
        raw = text.strip()
        if not raw:
            raise ConfigError(f"empty mirror URL in {source}")
        parts = urllib.parse.urlsplit(raw if "://" in raw else f"//{raw}")
        if parts.scheme not in ("", "http", "https"):
            raise ConfigError(
                f"mirror {raw!r} in {source}: only http:// and https:// are supported"
            )
        try:
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        host_ok = bool(parts.hostname) and all(c.isalnum() or c in ".-:[]" for c in parts.netloc)
        if (
            not (parts.netloc and port_ok and host_ok)
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            raise ConfigError(
                f"invalid mirror {raw!r} in {source}",
                "use https://HOST[:PORT][/PATH-PREFIX], e.g. https://m.daocloud.io/docker.io",
            )
        prefix = parts.path.strip("/")
        prefix = prefix.removeprefix("v2/").removesuffix("/v2")
        if prefix == "v2":
            prefix = ""
        return cls(
            parts.netloc.lower(),
            f"{prefix}/" if prefix else "",
            parts.scheme or None,
            source,
            insecure,
        )

    def __str__(self) -> str:
        scheme = self.scheme or "https"
        return f"{scheme}://{self.host}" + (f"/{self.prefix.rstrip('/')}" if self.prefix else "")


def parse_location(text: str, what: str) -> tuple[str, str]:
    """Validate ``host[:port][/prefix]`` -> (registry, prefix), prefix may be ''."""
    value = text.strip()
    example = "e.g. registry.local:5000 or m.daocloud.io/docker.io"
    if "://" in value:
        raise ConfigError(
            f'invalid {what} "{text}": give host[:port][/prefix] without a scheme',
            example,
        )
    value = value.rstrip("/")
    if not value:
        raise ConfigError(f"invalid {what}: it is empty", example)
    host, _, prefix = value.partition("/")
    try:
        probe = parse_reference(f"{value}/probe")
    except InvalidReferenceError as exc:
        raise ConfigError(f'invalid {what} "{text}": {exc.message}', example) from None
    registry = DOCKER_HUB if host == DOCKER_HUB_LEGACY else host
    if probe.registry != registry:
        raise ConfigError(
            f'invalid {what} "{text}": "{host}" is not a registry host '
            "(it needs a '.' or a ':port', or must be localhost)",
            example,
        )
    return registry, prefix


def source_registry(text: str) -> str:
    value = text.strip()
    for scheme in ("https://", "http://"):
        if value.lower().startswith(scheme):
            value = value[len(scheme) :]
            break
    value = value.rstrip("/")
    if not value:
        raise ConfigError("invalid mirror source: it is empty", "e.g. --mirror docker.io=HOST")
    if "/" in value:
        raise ConfigError(
            f'invalid mirror source "{text}": it is a registry, without a path',
            "e.g. --mirror quay.io=quay.mirrors.ustc.edu.cn",
        )
    try:
        return normalize_registry(value)
    except InvalidReferenceError as exc:
        raise ConfigError(exc.message, exc.hint) from None


def parse_mirror(text: str) -> tuple[str, str]:
    """``SRC=DST`` -> (normalised source registry, destination ``host[:port][/prefix]``)."""
    src, eq, dst = text.partition("=")
    if not eq:
        raise ConfigError(
            f'invalid mirror rule "{text}": expected SRC=DST',
            "e.g. --mirror quay.io=quay.mirrors.ustc.edu.cn",
        )
    registry, prefix = parse_location(dst, "mirror destination")
    return source_registry(src), f"{registry}/{prefix}" if prefix else registry


def parse_mirrors(rules: Sequence[str]) -> dict[str, str]:
    """Repeated ``--mirror SRC=DST`` options -> {source registry: destination}.

    ConfigError for a malformed rule or a source registry given twice (``docker.io`` and
    ``index.docker.io`` are the same).
    """
    mirrors: dict[str, str] = {}
    for text in rules:
        src, dst = parse_mirror(text)
        if src in mirrors:
            raise ConfigError(f"mirror source {src} is given more than once")
        mirrors[src] = dst
    return mirrors


def _map(ref: Reference, mirrors: Mapping[str, str], to: str | None) -> Reference | None:
    """The mapped reference; ``ref`` itself when it is already at its destination."""
    repository = ref.repository
    for src, dst in mirrors.items():
        if source_registry(src) == ref.registry:
            registry, prefix = parse_location(dst, "mirror destination")
            break
    else:
        if to is None:
            return None
        registry, prefix = parse_location(to, "target prefix")
        if ref.registry in KUBERNETES_REGISTRIES and repository == COREDNS_NESTED:
            repository = "coredns"
    if ref.name.startswith(f"{registry}/{prefix}/" if prefix else f"{registry}/"):
        return ref  # already there: rewriting twice changes nothing
    return Reference(
        registry, f"{prefix}/{repository}" if prefix else repository, ref.tag, ref.digest
    )


def map_reference(
    ref: Reference, *, mirrors: Mapping[str, str], to: str | None
) -> Reference | None:
    """Where ``ref`` goes under the rules; None if no rule applies or it is already there.

    ``mirrors``: {source registry: ``host[:port][/prefix]``} (keys are normalised here,
    so ``index.docker.io`` works too); ``to``: ``registry[/namespace]`` for every image no
    mirror rule matches, with kubeadm's flat layout for ``registry.k8s.io`` and
    ``k8s.gcr.io`` (see the module docstring). Tag and digest are kept. ``imgpull push``
    names its destination ``map_reference(ref, mirrors={}, to=PREFIX) or ref``.

    ConfigError for an invalid rule; InvalidReferenceError if the result is not a valid
    reference (a repository path over 255 characters).
    """
    mapped = _map(ref, mirrors, to)
    return None if mapped is None or mapped == ref else mapped


def destination_for(source: Reference, destination: str, *, several: bool) -> Reference:
    """A full reference (with a tag or digest) names the one destination; anything else is
    a registry[/namespace] prefix under which each image keeps its path (Kubernetes' own
    images following kubeadm's imageRepository rule)."""
    text = destination.rstrip("/")
    last = text.rsplit("/", 1)[-1]
    explicit = "@" in text or ("/" in text and ":" in last)
    if explicit and not destination.endswith("/"):
        if several:
            raise ConfigError(
                f"destination {destination} names one image, but there are several",
                "give a registry[/namespace] prefix instead, e.g. registry.local:5000/mirror",
            )
        return parse_reference(text)
    # None: the image already lives under that prefix.
    return map_reference(source, mirrors={}, to=text) or source


_UNSAFE_RE: Final = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED: Final = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"COM{i}" for i in range(10)} | {f"LPT{i}" for i in range(10)}
)
_MAX_STEM: Final = 200


def safe_filename(ref: Reference) -> str:
    """A default archive file name for ``ref``, safe on Linux, macOS and Windows.

    ``nginx:1.27`` -> ``nginx_1.27.tar``; ``quay.io/org/app:v1`` -> ``quay.io_org_app_v1.tar``;
    ``nginx@sha256:abc...`` -> ``nginx_sha256-abc123456789.tar``. Only ``[A-Za-z0-9._-]``,
    starting with a letter or digit, never a Windows device name, at most 204 characters
    (long names are cut and get a hash of the full reference to stay distinct).
    """
    stem = ref.familiar_name
    if ref.tag is not None:
        stem += f"_{ref.tag}"
    elif ref.digest is not None:
        stem += f"_{ref.digest.algorithm}-{ref.digest.short}"
    stem = _UNSAFE_RE.sub("_", stem).lstrip("._-") or "image"
    if len(stem) > _MAX_STEM:
        suffix = hashlib.sha256(str(ref).encode()).hexdigest()[:12]
        stem = stem[: _MAX_STEM - len(suffix) - 1] + "-" + suffix
    first, dot, rest = stem.partition(".")
    if first.upper() in _WINDOWS_RESERVED:
        stem = f"{first}_{dot}{rest}"
    return f"{stem}.tar"
