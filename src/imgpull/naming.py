"""Where an image goes: mirror locations, the renaming rules of ``rewrite``, ``push`` and
``copy``, destination names, and safe file names for archives.

One grammar for every place a mirror or destination is written (``pull --mirror``,
config files, ``rewrite --mirror SRC=DST``, ``--to``, ``--image-repository``)::

    [http(s)://]host[:port][/path-prefix]

parsed by :meth:`Location.parse` alone. The scheme is optional everywhere; renaming
ignores it (a reference carries none). A trailing ``/v2`` (the API root) is not part of
the prefix. Where the location becomes the registry of a reference (renaming), the host
must read as one (a ``.``, a ``:port``, or ``localhost``), or Docker would take it as a
Docker Hub namespace, and the prefix must be a valid repository path.

The renaming rules (:class:`Renamer`), in the order they are tried:

``mirrors`` (``--mirror SRC=DST``)
    A mirror mirrors: an image of registry ``SRC`` keeps its whole repository path under
    ``DST``. ``registry.k8s.io=k8s.m.daocloud.io`` maps
    ``registry.k8s.io/coredns/coredns:v1.11.3`` to
    ``k8s.m.daocloud.io/coredns/coredns:v1.11.3``; ``docker.io=m.daocloud.io/docker.io``
    maps ``nginx`` to ``m.daocloud.io/docker.io/library/nginx``.

``image_repository`` (``--image-repository REPO``)
    Only images of ``registry.k8s.io`` and ``k8s.gcr.io``, named as kubeadm names them
    for a custom ``imageRepository``. kubeadm (``cmd/kubeadm/app/images/images.go``)
    pulls ``REPO/kube-apiserver:v1.31.0`` (and the other control-plane images, etcd and
    pause, all top-level already), and for CoreDNS appends ``/coredns`` to the repository
    only when it is the default registry, so a custom one gets ``REPO/coredns``:
    ``registry.k8s.io/coredns/coredns:v1.11.3`` -> ``REPO/coredns:v1.11.3``. Every other
    registry.k8s.io image keeps its path (``registry.k8s.io/ingress-nginx/controller`` ->
    ``REPO/ingress-nginx/controller``): kubeadm defines names for its own images only,
    flattening would make different repositories collide (``ingress-nginx/controller``,
    ``sig-storage/...``), and keeping the path is where ``imgpull push ARCHIVE REPO``
    puts those images. Combined with ``mirrors`` for other registries; a mirror rule for
    registry.k8s.io or k8s.gcr.io together with it is refused as ambiguous.

``to`` (``--to PREFIX``)
    Every image no rule above matched moves under one registry keeping its path, as
    ``imgpull push ARCHIVE PREFIX`` stores it, with the same kubeadm rule for
    registry.k8s.io and k8s.gcr.io: ``nginx:1.27`` -> ``PREFIX/library/nginx:1.27``,
    ``registry.k8s.io/coredns/coredns:v1.11.3`` -> ``PREFIX/coredns:v1.11.3``.

Tags and digests are kept. An image already under its destination is left alone
(:meth:`Renamer.map` gives None), so renaming twice changes nothing the second time.
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

__all__ = [
    "COREDNS_NESTED",
    "KUBERNETES_REGISTRIES",
    "Location",
    "Mirror",
    "Renamer",
    "destination_for",
    "has_registry_host",
    "map_reference",
    "parse_location",
    "parse_mirror",
    "parse_mirrors",
    "safe_filename",
    "source_registry",
]

#: Registries whose images follow kubeadm's ``imageRepository`` naming.
KUBERNETES_REGISTRIES: Final = frozenset({"registry.k8s.io", "k8s.gcr.io"})
#: The one kubeadm image whose default repository is nested (``GetDNSImage``).
COREDNS_NESTED: Final = "coredns/coredns"

_EXAMPLE: Final = "e.g. registry.local:5000 or m.daocloud.io/docker.io"
_HOST_CHARS_RE: Final = re.compile(r"[A-Za-z0-9.\-:\[\]]+", re.ASCII)


@dataclass(frozen=True, slots=True)
class Location:
    """``[http(s)://]host[:port][/path-prefix]``, parsed: ``host`` lowercased,
    ``prefix`` without slashes at either end ("" for none), ``scheme`` if written."""

    host: str
    prefix: str
    scheme: str | None

    @classmethod
    def parse(cls, text: str, what: str, *, for_reference: bool = False) -> Location:
        """Parse ``text``; ConfigError naming ``what`` if it is not a location.

        ``for_reference``: the location becomes the registry (and namespace) of image
        references, so the host must read as a registry and the prefix as a path.
        """
        raw = text.strip()
        if not raw:
            raise ConfigError(f"invalid {what}: it is empty", _EXAMPLE)
        parts = urllib.parse.urlsplit(raw if "://" in raw else f"//{raw}")
        if parts.scheme not in ("", "http", "https"):
            raise ConfigError(
                f'invalid {what} "{raw}": only http:// and https:// are supported', _EXAMPLE
            )
        if not _host_ok(parts) or parts.query or parts.fragment or "@" in parts.netloc:
            raise ConfigError(
                f'invalid {what} "{raw}"', f"use [https://]HOST[:PORT][/PATH], {_EXAMPLE}"
            )
        prefix = parts.path.strip("/").removeprefix("v2/").removesuffix("/v2")
        location = cls(parts.netloc.lower(), "" if prefix == "v2" else prefix, parts.scheme or None)
        if for_reference:
            location._check_as_registry(raw, what)
        return location

    def _check_as_registry(self, raw: str, what: str) -> None:
        probe_text = "/".join(part for part in (self.host, self.prefix, "probe") if part)
        try:
            probe = parse_reference(probe_text)
        except InvalidReferenceError as exc:
            raise ConfigError(f'invalid {what} "{raw}": {exc.message}', _EXAMPLE) from None
        if probe.registry != self.registry:
            raise ConfigError(
                f'invalid {what} "{raw}": "{self.host}" is not a registry host '
                "(it needs a '.' or a ':port', or must be localhost)",
                _EXAMPLE,
            )

    @property
    def registry(self) -> str:
        """The host as references spell it (``index.docker.io`` is ``docker.io``)."""
        return DOCKER_HUB if self.host == DOCKER_HUB_LEGACY else self.host

    @property
    def name(self) -> str:
        """``registry[/prefix]``, the start of every reference renamed to here."""
        return f"{self.registry}/{self.prefix}" if self.prefix else self.registry

    def holds(self, ref: Reference) -> bool:
        """Whether ``ref`` already lives under this location."""
        return ref.name.startswith(self.name + "/")

    def place(self, ref: Reference, repository: str) -> Reference:
        path = f"{self.prefix}/{repository}" if self.prefix else repository
        return Reference(self.registry, path, ref.tag, ref.digest)


def _host_ok(parts: urllib.parse.SplitResult) -> bool:
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        return False
    return bool(parts.hostname) and port_ok and bool(_HOST_CHARS_RE.fullmatch(parts.netloc))


@dataclass(frozen=True, slots=True)
class Mirror:
    """A registry that serves another registry's repositories (for pulls).

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
        if not text.strip():
            raise ConfigError(f"empty mirror URL in {source}")
        try:
            location = Location.parse(text, "mirror")
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} in {source}", exc.hint) from None
        prefix = f"{location.prefix}/" if location.prefix else ""
        return cls(location.host, prefix, location.scheme, source, insecure)

    def __str__(self) -> str:
        scheme = self.scheme or "https"
        return f"{scheme}://{self.host}" + (f"/{self.prefix.rstrip('/')}" if self.prefix else "")


def parse_location(text: str, what: str) -> tuple[str, str]:
    """A renaming destination -> (registry, prefix); the prefix may be ''."""
    location = Location.parse(text, what, for_reference=True)
    return location.registry, location.prefix


def source_registry(text: str) -> str:
    """The ``SRC`` of ``--mirror SRC=DST``, normalised (``index.docker.io`` is ``docker.io``)."""
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
    """``SRC=DST`` -> (normalised source registry, destination ``registry[/prefix]``)."""
    src, eq, dst = text.partition("=")
    if not eq:
        raise ConfigError(
            f'invalid mirror rule "{text}": expected SRC=DST',
            "e.g. --mirror quay.io=quay.mirrors.ustc.edu.cn",
        )
    destination = Location.parse(dst, "mirror destination", for_reference=True)
    return source_registry(src), destination.name


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


def has_registry_host(text: str) -> bool:
    """Whether ``text`` names its registry explicitly, as Docker reads it: the part
    before the first ``/`` has a ``.`` or a ``:``, or is ``localhost``."""
    first, slash, _ = text.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _kubeadm_repository(repository: str) -> str:
    return "coredns" if repository == COREDNS_NESTED else repository


class Renamer:
    """The renaming rules of ``rewrite``, ``push`` and ``copy``, validated once.

    ``mirrors``: ``{SRC: DST}`` or ``["SRC=DST", ...]``; ``to`` and ``image_repository``:
    locations (see the module docstring for what each does). ConfigError for an invalid
    or ambiguous rule.
    """

    __slots__ = ("image_repository", "mirrors", "to")

    def __init__(
        self,
        *,
        mirrors: Mapping[str, str] | Sequence[str] = (),
        to: str | None = None,
        image_repository: str | None = None,
    ) -> None:
        rules = parse_mirrors(mirrors) if not isinstance(mirrors, Mapping) else mirrors
        self.mirrors: dict[str, Location] = {}
        for src, dst in rules.items():
            registry = source_registry(src)
            if registry in self.mirrors:
                raise ConfigError(f"mirror source {registry} is given more than once")
            self.mirrors[registry] = Location.parse(dst, "mirror destination", for_reference=True)
        self.to = None if to is None else Location.parse(to, "target prefix", for_reference=True)
        self.image_repository = (
            None
            if image_repository is None
            else Location.parse(image_repository, "image repository", for_reference=True)
        )
        if self.image_repository is not None and KUBERNETES_REGISTRIES & self.mirrors.keys():
            raise ConfigError(
                "--image-repository and a --mirror rule for "
                f"{' and '.join(sorted(KUBERNETES_REGISTRIES & self.mirrors.keys()))} "
                "both rename Kubernetes' images",
                "give one of them",
            )

    def __bool__(self) -> bool:
        return bool(self.mirrors) or self.to is not None or self.image_repository is not None

    @property
    def source_registries(self) -> frozenset[str]:
        """The registries a mirror or ``image_repository`` rule names (``to``, which
        takes every registry, adds none)."""
        named = set(self.mirrors)
        if self.image_repository is not None:
            named |= KUBERNETES_REGISTRIES
        return frozenset(named)

    def map(self, ref: Reference) -> Reference | None:
        """Where ``ref`` goes; None if no rule applies or it is already there.

        InvalidReferenceError if the result is not a valid reference (a repository path
        over 255 characters).
        """
        mapped = self._destination(ref)
        return None if mapped is None or mapped == ref else mapped

    def _destination(self, ref: Reference) -> Reference | None:
        kubernetes = ref.registry in KUBERNETES_REGISTRIES
        repository = ref.repository
        if ref.registry in self.mirrors:
            location = self.mirrors[ref.registry]
        elif kubernetes and self.image_repository is not None:
            location, repository = self.image_repository, _kubeadm_repository(repository)
        elif self.to is not None:
            location = self.to
            repository = _kubeadm_repository(repository) if kubernetes else repository
        else:
            return None
        if location.holds(ref):
            return None  # already there: renaming twice changes nothing
        return location.place(ref, repository)


def map_reference(
    ref: Reference,
    *,
    mirrors: Mapping[str, str],
    to: str | None,
    image_repository: str | None = None,
) -> Reference | None:
    """Where ``ref`` goes under the rules (see :class:`Renamer`); None if no rule
    applies or it is already there. ConfigError for an invalid rule."""
    return Renamer(mirrors=mirrors, to=to, image_repository=image_repository).map(ref)


def destination_for(
    source: Reference, destination: str, *, several: bool, image_repository: str | None = None
) -> Reference:
    """A full reference (with a tag or digest) names the one destination; anything else is
    a registry[/namespace] prefix under which each image keeps its path (Kubernetes' own
    images following kubeadm's imageRepository rule, or going to ``image_repository``)."""
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
    renamer = Renamer(to=text, image_repository=image_repository)
    return renamer.map(source) or source  # None: the image already lives there


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
    first, dot, rest = stem.partition(".")
    if first.upper() in _WINDOWS_RESERVED:
        stem = f"{first}_{dot}{rest}"
    if len(stem) > _MAX_STEM:  # after the device-name fix, which may add a character
        suffix = hashlib.sha256(str(ref).encode()).hexdigest()[:12]
        stem = stem[: _MAX_STEM - len(suffix) - 1] + "-" + suffix
    return f"{stem}.tar"
