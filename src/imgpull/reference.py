"""Image references, parsed and normalised the way Docker does it.

The grammar and the normalisation follow ``github.com/distribution/reference`` (the
package docker, containerd and buildkit use), ``ParseNormalizedNamed`` in particular::

    reference   := name [":" tag] ["@" digest]
    name        := [domain "/"] path
    domain      := host [":" port]                 port := [0-9]+
    host        := domain-name | "[" ipv6 "]"      ipv6 := [a-fA-F0-9:]+
    domain-name := component ("." component)*
    component   := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
    path        := path-component ("/" path-component)*
    path-component := [a-z0-9]+ (([._] | "__" | "-"+) [a-z0-9]+)*
    tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex               (then validated by ``Digest.parse``)

Normalisation, as in ``splitDockerDomain``:

* The part before the first ``/`` is the registry only if it is ``localhost``, contains a
  ``.`` or a ``:``, or contains an uppercase letter (``Foo/bar`` is registry ``Foo``).
  Otherwise the whole name is a Docker Hub path: ``foo/bar`` is ``docker.io/foo/bar``
  and ``localhost:5000`` alone is ``docker.io/library/localhost`` with tag ``5000``.
* ``index.docker.io`` becomes ``docker.io``; a one-component path on ``docker.io`` gets
  ``library/`` (``nginx`` is ``docker.io/library/nginx``).
* Any uppercase letter in the path is an error ("repository name must be lowercase").
* The 255-character limit applies to the normalised path only (``library/`` counts, the
  registry does not), as in distribution/reference v0.6.
* A bare 64-digit lowercase hex string is refused: it is an image ID, not a name.
* The tag defaults to ``latest`` only when neither a tag nor a digest is given. A
  reference with both keeps both: the digest is what is pulled, the tag names the result.

Deliberate differences from Docker, each for input Docker parses but can never pull:

* A first component that Docker takes as a registry but that is not a valid host
  (``foo_bar.com/app``) is refused; Docker's parser silently yields an empty domain.
* Ports outside 1-65535 and bracketed IPv6 literals that are not IPv6 addresses
  (``[fd00123]:5000/x``) are refused here instead of failing later at connect time.
* Input longer than 4096 characters is refused before any matching (a valid reference
  is far shorter: path <= 255, tag <= 128, DNS names <= 253).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from imgpull.digest import Digest
from imgpull.errors import InvalidReferenceError, UnsupportedError
from imgpull.text import shown

__all__ = [
    "DEFAULT_TAG",
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "DOCKER_HUB_LEGACY",
    "MAX_PATH_LENGTH",
    "Reference",
    "is_loopback_host",
    "normalize_registry",
    "parse_reference",
    "parse_repository",
]

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
DOCKER_HUB_LEGACY: Final = "index.docker.io"
OFFICIAL_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
MAX_PATH_LENGTH: Final = 255
MAX_INPUT_LENGTH: Final = 4096

FORM_HINT: Final = "use the form [registry[:port]/]name[:tag][@sha256:digest], e.g. nginx:1.27"
_PATH_HINT: Final = (
    "repository path components are lowercase letters and digits separated by '.', "
    "'_', '__' or '-', joined by '/', e.g. library/nginx"
)
_TAG_HINT: Final = (
    "a tag is 1-128 letters, digits, '_', '.' or '-' and does not start with '.' or '-', "
    "e.g. nginx:1.27"
)
_DIGEST_HINT: Final = "a digest is algorithm:hex, e.g. nginx@sha256:<64 lowercase hex digits>"
_REGISTRY_HINT: Final = (
    "a registry is a host name or IPv4 address with an optional :port, or an IPv6 address "
    "in brackets, e.g. registry.example.com:5000/app or [::1]:5000/app"
)

# The regular expressions of distribution/reference, rebuilt piece by piece (ASCII only,
# always used with fullmatch so that "$" never accepts a trailing newline).
_ALNUM: Final = r"[a-z0-9]+"
_SEPARATOR: Final = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT: Final = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_PATH: Final = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME: Final = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6: Final = r"\[[a-fA-F0-9:]+\]"
_DOMAIN_AND_PORT: Final = rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?"
_TAG: Final = r"\w[\w.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE: Final = re.compile(
    rf"(?:(?P<domain>{_DOMAIN_AND_PORT})/)?(?P<path>{_PATH})"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_PATH_RE: Final = re.compile(_PATH, re.ASCII)
_PATH_COMPONENT_RE: Final = re.compile(_PATH_COMPONENT, re.ASCII)
_DOMAIN_AND_PORT_RE: Final = re.compile(_DOMAIN_AND_PORT, re.ASCII)
_TAG_RE: Final = re.compile(_TAG, re.ASCII)
_DIGEST_RE: Final = re.compile(_DIGEST, re.ASCII)
_IDENTIFIER_RE: Final = re.compile(r"[a-f0-9]{64}", re.ASCII)


def _shown(text: str) -> str:
    """The input as it appears between quotes in a one-line message."""
    return shown(text).replace('"', '\\"')


def _error(text: str, reason: str, hint: str = FORM_HINT) -> InvalidReferenceError:
    return InvalidReferenceError(f'invalid reference "{_shown(text)}": {reason}', hint)


def _split_host_port(registry: str) -> tuple[str, str | None]:
    """``[::1]:5000`` -> (``::1``, ``5000``); ``example.com`` -> (``example.com``, None)."""
    if registry.startswith("["):
        end = registry.find("]")
        if end < 0:
            return registry, None
        rest = registry[end + 1 :]
        return registry[1:end], (rest[1:] if rest.startswith(":") else None)
    host, sep, port = registry.partition(":")
    return host, (port if sep else None)


def _is_domain_like(component: str) -> bool:
    """Docker's test for whether the first path component names a registry."""
    return (
        component == "localhost"
        or "." in component
        or ":" in component
        or component.lower() != component
    )


def _registry_problem(registry: str, *, in_reference: bool = True) -> str | None:
    """Why ``registry`` cannot be a registry, or None if it can.

    ``in_reference``: also require what Docker needs to see a registry in a reference.
    """
    if not _DOMAIN_AND_PORT_RE.fullmatch(registry):
        return f'"{_shown(registry)}" is not a valid registry host'
    if in_reference and not _is_domain_like(registry):
        return (
            f'"{_shown(registry)}" would be read as part of the repository path, not as a registry '
            "(a registry needs a '.' or a ':port', or must be localhost)"
        )
    host, port = _split_host_port(registry)
    if registry.startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f'"[{host}]" is not a valid IPv6 address'
    if port is not None:
        digits = port.lstrip("0") or "0"
        if len(digits) > 5 or not 1 <= int(digits) <= 65535:
            return f"port {_shown(port)} is out of range (1-65535)"
    return None


def _parse_digest(text: str, digest: str) -> Digest:
    """Validate ``digest`` with ``Digest.parse``, reporting problems against ``text``."""
    try:
        return Digest.parse(digest)
    except UnsupportedError:
        algorithm = digest.partition(":")[0]
        raise _error(
            text,
            f'unsupported digest algorithm "{_shown(algorithm)}"',
            "use a sha256 or sha512 digest, e.g. nginx@sha256:<64 lowercase hex digits>",
        ) from None
    except ValueError:
        algorithm = digest.partition(":")[0]
        detail = " (64 lowercase hex digits)" if algorithm == "sha256" else ""
        raise _error(text, f'invalid digest "{_shown(digest)}"{detail}', _DIGEST_HINT) from None


def _split_docker_domain(text: str) -> tuple[str, str, str | None]:
    """(registry, path-and-suffix, registry component as typed or None) like Docker."""
    first, slash, rest = text.partition("/")
    if not slash:
        return DOCKER_HUB, OFFICIAL_PREFIX + text, None
    if _is_domain_like(first):
        domain = DOCKER_HUB if first == DOCKER_HUB_LEGACY else first
        remainder = rest
        typed: str | None = first
    else:
        domain, remainder, typed = DOCKER_HUB, text, None
    if domain == DOCKER_HUB and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder, typed


def _path_end(text: str) -> int:
    """Index of the first ':' or '@' in ``text`` (where the path ends), or its length."""
    ends = [i for i in (text.find(":"), text.find("@")) if i >= 0]
    return min(ends, default=len(text))


def _diagnose(text: str, typed_registry: str | None, rest: str) -> tuple[str, str]:
    """A precise reason and hint for input the reference grammar does not match."""
    if "://" in text:
        scheme = text.partition("://")[0]
        return f'a reference is not a URL; remove "{_shown(scheme)}://"', FORM_HINT
    if any(ch.isspace() for ch in text):
        return "it contains whitespace", "remove spaces, tabs and newlines; " + FORM_HINT
    if typed_registry is not None:
        problem = _registry_problem(typed_registry)
        if problem is not None:
            return problem, _REGISTRY_HINT
    elif rest.startswith("["):
        return "an IPv6 registry must be followed by /repository", _REGISTRY_HINT
    name, at, digest = rest.partition("@")
    path, colon, tag = name.partition(":")
    if not path:
        return "the repository name is missing", FORM_HINT
    for component in path.split("/"):
        if not component:
            return (
                "the repository path has an empty component (a leading, trailing or doubled '/')",
                _PATH_HINT,
            )
        if not _PATH_COMPONENT_RE.fullmatch(component):
            return f'invalid repository path component "{_shown(component)}"', _PATH_HINT
    if colon:
        if not tag:
            return "the tag after ':' is empty", _TAG_HINT
        if not _TAG_RE.fullmatch(tag):
            return f'invalid tag "{_shown(tag)}"', _TAG_HINT
    if at:
        if not digest:
            return "the digest after '@' is empty", _DIGEST_HINT
        if not _DIGEST_RE.fullmatch(digest):
            return f'invalid digest "{_shown(digest)}"', _DIGEST_HINT
    return "invalid reference format", FORM_HINT


def _lowercase_hint(text: str, typed_registry: str | None, rest: str) -> str:
    prefix = "" if typed_registry is None else typed_registry + "/"
    end = _path_end(rest)
    candidate = prefix + rest[:end].lower() + rest[end:]
    try:
        _parse(candidate)
    except InvalidReferenceError:
        return "repository names use only lowercase letters; " + FORM_HINT
    return f'repository names use only lowercase letters; did you mean "{_shown(candidate)}"?'


def _parse(text: str) -> Reference:
    if text == "":
        raise _error(text, "the reference is empty")
    if len(text) > MAX_INPUT_LENGTH:
        raise _error(text, f"it is too long ({len(text)} characters)")
    if _IDENTIFIER_RE.fullmatch(text):
        raise _error(
            text,
            "a 64-digit hex string is an image ID, not a repository name",
            f"to pull by digest use NAME@sha256:{text}",
        )
    domain, remainder, typed_registry = _split_docker_domain(text)
    rest = text if typed_registry is None else text[len(typed_registry) + 1 :]
    # Docker checks the path (everything before the first ':') for uppercase before it
    # matches the grammar; stopping at '@' too only changes which error a bad digest gets.
    remote = remainder[: _path_end(remainder)]
    if remote.lower() != remote:
        raise _error(
            text,
            "repository name must be lowercase",
            _lowercase_hint(text, typed_registry, rest),
        )
    match = _REFERENCE_RE.fullmatch(f"{domain}/{remainder}")
    if match is None or match["domain"] != domain:
        raise _error(text, *_diagnose(text, typed_registry, rest))
    path = match["path"]
    if len(path) > MAX_PATH_LENGTH:
        raise _error(
            text,
            f"repository name must not be more than {MAX_PATH_LENGTH} characters "
            f"({path[:20]}... has {len(path)})",
            "shorten the repository path",
        )
    digest = None if match["digest"] is None else _parse_digest(text, match["digest"])
    problem = _registry_problem(domain)
    if problem is not None:
        raise _error(text, problem, _REGISTRY_HINT)
    tag: str | None = match["tag"]
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference: ``registry/repository[:tag][@digest]``.

    Built by :meth:`parse`. Constructing one directly validates and normalises the same
    way (``index.docker.io`` -> ``docker.io``, ``docker.io`` + ``nginx`` ->
    ``library/nginx``) and raises :class:`InvalidReferenceError` for invalid parts.
    ``tag`` and ``digest`` may both be None only for a repository-only reference (see
    :func:`parse_repository`); :meth:`parse` always sets at least one of them.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __post_init__(self) -> None:
        registry = DOCKER_HUB if self.registry == DOCKER_HUB_LEGACY else self.registry
        problem = _registry_problem(registry)
        if problem is not None:
            raise InvalidReferenceError(f"invalid registry: {problem}", _REGISTRY_HINT)
        repository = self.repository
        if registry == DOCKER_HUB and "/" not in repository:
            repository = OFFICIAL_PREFIX + repository
        if not _PATH_RE.fullmatch(repository):
            raise InvalidReferenceError(f'invalid repository "{_shown(repository)}"', _PATH_HINT)
        if len(repository) > MAX_PATH_LENGTH:
            raise InvalidReferenceError(
                f"repository name must not be more than {MAX_PATH_LENGTH} characters",
                "shorten the repository path",
            )
        if self.tag is not None and not _TAG_RE.fullmatch(self.tag):
            raise InvalidReferenceError(f'invalid tag "{_shown(self.tag)}"', _TAG_HINT)
        if self.digest is not None and not isinstance(self.digest, Digest):
            raise TypeError(f"digest must be a Digest, not {type(self.digest).__name__}")
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse ``text`` as ``docker pull`` would; raise InvalidReferenceError if invalid."""
        return _parse(text)

    @property
    def api_host(self) -> str:
        """The host[:port] to send registry API requests to."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """Fully qualified name without tag or digest: ``docker.io/library/nginx``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar_name(self) -> str:
        """The name as docker shows it: ``nginx``, ``user/app``, ``quay.io/org/app``."""
        if self.registry != DOCKER_HUB:
            return self.name
        rest = self.repository.removeprefix(OFFICIAL_PREFIX)
        short = rest if rest != self.repository and "/" not in rest else self.repository
        # Docker would shorten docker.io/a.b/c to "a.b/c", which reads back as registry
        # "a.b"; keep the registry where the short form would change meaning.
        if "/" in short and _is_domain_like(short.split("/", 1)[0]):
            return self.name
        return short

    @property
    def familiar(self) -> str:
        """Familiar name with ``:tag``, or with ``@digest`` when there is no tag."""
        if self.tag is not None:
            return f"{self.familiar_name}:{self.tag}"
        if self.digest is not None:
            return f"{self.familiar_name}@{self.digest}"
        return self.familiar_name

    def docker_tag(self) -> str | None:
        """The ``RepoTags`` entry for ``docker load`` (``nginx:1.27``), None without a tag."""
        return None if self.tag is None else f"{self.familiar_name}:{self.tag}"

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag.

        A repository-only reference (no tag, no digest) asks for ``latest``, as Docker does.
        """
        if self.digest is not None:
            return str(self.digest)
        return DEFAULT_TAG if self.tag is None else self.tag

    def with_digest(self, digest: Digest | str) -> Reference:
        """The same reference pinned to ``digest`` (the tag, if any, is kept)."""
        if isinstance(digest, str):
            if not _DIGEST_RE.fullmatch(digest):
                raise InvalidReferenceError(f'invalid digest "{_shown(digest)}"', _DIGEST_HINT)
            digest = _parse_digest(f"{self}@{digest}", digest)
        return dataclasses.replace(self, digest=digest)

    def with_tag(self, tag: str) -> Reference:
        """The same reference with ``tag`` (a digest, if any, is kept and still wins)."""
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f'invalid tag "{_shown(tag)}"', _TAG_HINT)
        return dataclasses.replace(self, tag=tag)

    def scope(self, actions: str = "pull") -> str:
        """The token scope for this repository: ``repository:library/nginx:pull``."""
        return f"repository:{self.repository}:{actions}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def hostname(self) -> str:
        """The host part of :attr:`registry`, IPv6 without brackets (``::1``)."""
        return _split_host_port(self.registry)[0]

    @property
    def port(self) -> int | None:
        """The port of :attr:`registry`, None when it has none."""
        port = _split_host_port(self.registry)[1]
        return None if port is None else int(port.lstrip("0") or "0")

    @property
    def is_loopback(self) -> bool:
        """True for localhost, 127.0.0.0/8 and ::1 (with or without a port)."""
        return is_loopback_host(self.registry)


def is_loopback_host(registry: str) -> bool:
    """True if ``registry`` (``host[:port]``, IPv6 in brackets) is localhost,
    in 127.0.0.0/8 or ::1 (also as the IPv4-mapped ``::ffff:7f00:1``)."""
    host = _split_host_port(registry)[0]
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


_HUB_ALIASES: Final = frozenset({"", DOCKER_HUB, DOCKER_HUB_LEGACY, DOCKER_HUB_API})


def normalize_registry(server: str) -> str:
    """The registry name for ``imgpull login/logout SERVER``, as references spell it.

    Like ``docker login``: an optional ``http(s)://`` and any path are dropped
    (``https://index.docker.io/v1/`` -> ``index.docker.io``), and every Docker Hub
    spelling, including none at all, becomes ``docker.io``. A single-label host such as
    ``myregistry`` is accepted here even though a reference would need ``myregistry:port``.
    """
    host = server.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
            break
    host = host.partition("/")[0]
    if host.lower() in _HUB_ALIASES:
        return DOCKER_HUB
    problem = _registry_problem(host, in_reference=False)
    if problem is not None:
        raise InvalidReferenceError(
            f'invalid registry "{_shown(server)}": {problem}', _REGISTRY_HINT
        )
    return host


def parse_reference(text: str) -> Reference:
    """Same as :meth:`Reference.parse`."""
    return _parse(text)


def parse_repository(text: str) -> Reference:
    """Parse a repository for ``imgpull tags REPO``.

    A tag is accepted and dropped (``nginx:1.27`` lists the tags of ``nginx``); a digest is
    refused, because it pins content and says nothing about which repository's tags are
    meant more than the name already does. The result has ``tag`` and ``digest`` None.
    """
    ref = _parse(text)
    if ref.digest is not None:
        raise _error(
            text,
            "a repository to list tags of cannot have a digest",
            f'drop "@{ref.digest}", e.g. {ref.familiar_name}',
        )
    return dataclasses.replace(ref, tag=None)
