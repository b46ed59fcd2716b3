"""The registry authentication flow: challenges (RFC 7235), Basic, and Bearer tokens
following the Docker Registry v2 token specification.

The HTTP call is injected, so this module stays free of network code. Credentials go to
the registry and to the token realm the registry's own challenge names, nowhere else:
the caller only hands over challenges that the registry host itself sent.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from imgpull.errors import AuthError
from imgpull.registry.credentials import Credentials
from imgpull.text import shown

DEFAULT_TOKEN_LIFETIME: Final = 60.0
# Refresh a little early so a token never expires between our check and the request.
_EXPIRY_MARGIN: Final = 10.0
TOKEN_ANSWER_LIMIT: Final = 1024 * 1024
MAX_CHALLENGE_LENGTH: Final = 8192
# What may appear in a header value we send back: visible ASCII (RFC 7230 field-vchar).
_TOKEN_RE: Final = re.compile(r"[\x21-\x7e]{1,16384}")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


_RFC7230_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(
    rf'\s*({_RFC7230_TCHARS})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_RFC7230_TCHARS}))\s*,?'
)
_SCHEME_RE = re.compile(rf"\s*({_RFC7230_TCHARS})(?:\s+|$|(?=,))")


def _usable_realm(realm: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(realm)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and realm.isprintable()


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235): several challenges, quoted params.
    An overlong value is cut (a challenge is a few hundred bytes)."""
    header = header[:MAX_CHALLENGE_LENGTH]
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        scheme = _SCHEME_RE.match(header, pos)
        if not scheme:
            break
        pos = scheme.end()
        params: dict[str, str] = {}
        while True:
            param = _PARAM_RE.match(header, pos)
            if not param:
                break
            quoted, plain = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
            params[param.group(1).lower()] = value or ""
            pos = param.end()
        challenges.append(Challenge(scheme.group(1).lower(), params))
    return challenges


# -- the token flow ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenResponse:
    status: int
    body: bytes


# (method, url, headers, body) -> TokenResponse; provided by the registry client.
TokenFetcher = Callable[[str, str, dict[str, str], bytes | None], TokenResponse]


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


class Authenticator:
    """Turns a registry's challenge into an ``Authorization`` header, caching tokens."""

    def __init__(self, registry: str, credentials: Credentials | None, fetch: TokenFetcher) -> None:
        self.registry = registry
        self.credentials = credentials
        self._fetch = fetch
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    def learn(self, header: str) -> None:
        """Remember the registry's preferred challenge (Bearer over Basic)."""
        challenges = parse_challenges(header)
        chosen = next((c for c in challenges if c.scheme == "bearer"), None) or next(
            (c for c in challenges if c.scheme == "basic"), None
        )
        if chosen is None:
            raise AuthError(
                f"{self.registry} asks for an authentication scheme imgpull does not support: "
                f"{shown(header, 80)}"
            )
        with self._lock:
            self._challenge = chosen

    @property
    def needs_auth(self) -> bool:
        return self._challenge is not None

    def header(self, scope: str, *, challenge_header: str | None = None) -> str | None:
        """The Authorization value for ``scope``, or None where the registry needs none."""
        with self._lock:
            challenge = self._challenge
        if challenge_header:
            fresh = parse_challenges(challenge_header)
            challenge = next((c for c in fresh if c.scheme == "bearer"), challenge)
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if not self.credentials or not self.credentials.username:
                raise AuthError(
                    f"{self.registry} requires a username and password",
                    f"run `imgpull login {self.registry}` or pass -u/--password-stdin",
                )
            return self.credentials.basic_header()
        scope = challenge.params.get("scope") or scope
        key = f"{challenge.params.get('realm')}|{challenge.params.get('service')}|{scope}"
        with self._lock:
            token = self._tokens.get(key)
            if token and token.expires_at > time.monotonic():
                return f"Bearer {token.value}"
        token = self._request_token(challenge, scope)
        with self._lock:
            self._tokens[key] = token
        return f"Bearer {token.value}"

    def invalidate(self, header_value: str) -> None:
        """Forget a token the registry rejected, so the next call fetches a new one."""
        with self._lock:
            for key, token in list(self._tokens.items()):
                if f"Bearer {token.value}" == header_value:
                    del self._tokens[key]

    def _request_token(self, challenge: Challenge, scope: str) -> _Token:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthError(f"{self.registry} sent a Bearer challenge without a realm")
        if not _usable_realm(realm):
            raise AuthError(
                f"{self.registry} names a token realm that is not an http(s) URL: "
                f"{shown(realm, 80)}",
                "the registry or a proxy is misbehaving",
            )
        service = challenge.params.get("service", "")
        creds = self.credentials
        if creds and creds.identity_token:
            form = {
                "grant_type": "refresh_token",
                "refresh_token": creds.identity_token,
                "service": service,
                "scope": scope,
                "client_id": "imgpull",
            }
            body = urllib.parse.urlencode(form).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            response = self._fetch("POST", realm, headers, body)
        else:
            # Several scopes (a push that mounts from another repository) are separate
            # parameters, as the token specification has them.
            query = [("service", service)] + [("scope", one) for one in scope.split()]
            if creds and creds.username:
                query.append(("account", creds.username))
            sep = "&" if "?" in realm else "?"
            url = realm + sep + urllib.parse.urlencode([(k, v) for k, v in query if v])
            headers = {"Authorization": creds.basic_header()} if creds and creds.username else {}
            response = self._fetch("GET", url, headers, None)
        return self._parse_token(response, realm)

    def _parse_token(self, response: TokenResponse, realm: str) -> _Token:
        host = urllib.parse.urlsplit(realm).netloc
        if response.status in (401, 403):
            who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
            raise AuthError(
                f"the token server {host} for {self.registry} refused {who} "
                f"(HTTP {response.status})",
                f"check the username and password; `imgpull login {self.registry}` saves them",
            )
        if response.status != 200:
            raise AuthError(f"the token server {host} answered HTTP {response.status}")
        try:
            data = json.loads(response.body)
        except (ValueError, RecursionError):
            raise AuthError(f"the token server {host} sent an unreadable answer") from None
        if not isinstance(data, dict):
            raise AuthError(f"the token server {host} sent an unreadable answer")
        value = data.get("token") or data.get("access_token")
        if not value:
            raise AuthError(f"the token server {host} sent no token")
        if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
            raise AuthError(
                f"the token server {host} sent a token that is not a valid header value "
                "(control characters, spaces or non-ASCII)",
                "the token server is misbehaving; imgpull will not send such a token",
            )
        lifetime = _lifetime(data.get("expires_in"))
        lifetime = max(lifetime - _EXPIRY_MARGIN, lifetime / 2)
        return _Token(value, time.monotonic() + lifetime)


def _lifetime(value: object) -> float:
    """``expires_in`` in seconds; the default when absent or not a sane number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DEFAULT_TOKEN_LIFETIME
    return float(value) if 0 < value < 10**9 else DEFAULT_TOKEN_LIFETIME
