"""Credentials and the registry authentication flow (Basic and Bearer tokens).

Credentials come, in order, from flags, Docker's ``config.json`` ``auths``, and its
credential helpers (``credHelpers`` per registry, then ``credsStore``). The token flow
follows the Docker Registry v2 token specification; the HTTP call is injected so this
module stays free of network code.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpull.errors import AuthError, ConfigError
from imgpull.reference import DOCKER_HUB

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"
DEFAULT_TOKEN_LIFETIME = 60.0
# Refresh a little early so a token never expires between our check and the request.
_EXPIRY_MARGIN = 10.0


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth2 refresh token, as `docker login` may store

    def __repr__(self) -> str:  # never print secrets, even in debug output
        return f"Credentials(username={self.username!r}, password=***)"

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lower case: "basic" or "bearer"
    params: dict[str, str]


_RFC7230_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM_RE = re.compile(
    rf'\s*({_RFC7230_TCHARS})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_RFC7230_TCHARS}))\s*,?'
)
_SCHEME_RE = re.compile(rf"\s*({_RFC7230_TCHARS})(?:\s+|$|(?=,))")


def parse_challenges(header: str) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 7235): several challenges, quoted params."""
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


# -- where credentials come from ---------------------------------------------------------


def config_path(config_dir: Path) -> Path:
    return config_dir / "config.json"


def read_docker_config(config_dir: Path) -> dict[str, Any]:
    path = config_path(config_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise ConfigError(
            f"{path} is not valid JSON: {exc}", "fix or remove the file (docker login writes it)"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return data


def auth_keys(registry: str) -> list[str]:
    """The keys under which Docker may have stored credentials for ``registry``."""
    if registry == DOCKER_HUB:
        return [DOCKER_HUB_AUTH_KEY, "index.docker.io", "docker.io", "registry-1.docker.io"]
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/"]


def store_key(registry: str) -> str:
    """The key `docker login` writes for ``registry``."""
    return DOCKER_HUB_AUTH_KEY if registry == DOCKER_HUB else registry


def _normalise_key(key: str) -> str:
    if "://" in key:
        key = urllib.parse.urlsplit(key).netloc or key
    return key.rstrip("/")


def credentials_from_config(config: dict[str, Any], registry: str) -> Credentials | None:
    auths = config.get("auths") or {}
    keys = auth_keys(registry)
    wanted = {_normalise_key(k) for k in keys}
    entry = next((auths[k] for k in keys if k in auths), None)
    if entry is None:
        entry = next((v for k, v in auths.items() if _normalise_key(k) in wanted), None)
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        user = _decode_auth(entry.get("auth", ""), registry)[0] if entry.get("auth") else ""
        return Credentials(username=user, identity_token=str(entry["identitytoken"]))
    if entry.get("auth"):
        user, password = _decode_auth(str(entry["auth"]), registry)
        return Credentials(user, password)
    if entry.get("username"):
        return Credentials(str(entry["username"]), str(entry.get("password", "")))
    return None


def _decode_auth(value: str, registry: str) -> tuple[str, str]:
    try:
        user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"the saved credentials for {registry} in config.json are not valid base64",
            f"run `imgpull login {registry}` again",
        ) from exc
    return user, password


def run_credential_helper(helper: str, action: str, payload: str) -> str:
    """Talk to ``docker-credential-<helper>``, Docker's credential helper protocol."""
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run(
            [program, action],
            input=payload,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError(
            f"credential helper {program} is not installed",
            "install it or remove credsStore/credHelpers from your Docker config.json",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(f"credential helper {program} did not answer within 60 s") from exc
    if done.returncode != 0:
        message = (done.stdout or done.stderr).strip()
        if "credentials not found" in message.lower():
            return ""
        raise ConfigError(f"credential helper {program} failed: {message or done.returncode}")
    return done.stdout


def credentials_from_helper(helper: str, registry: str) -> Credentials | None:
    for key in auth_keys(registry)[:2]:
        out = run_credential_helper(helper, "get", key)
        if not out.strip():
            continue
        try:
            data = json.loads(out)
        except ValueError as exc:
            raise ConfigError(f"docker-credential-{helper} returned invalid JSON") from exc
        user, secret = str(data.get("Username", "")), str(data.get("Secret", ""))
        if user == "<token>":
            return Credentials(identity_token=secret)
        return Credentials(user, secret)
    return None


def find_credentials(
    registry: str,
    *,
    config_dir: Path,
    username: str | None = None,
    password: str | None = None,
) -> Credentials | None:
    """Credentials for ``registry``: flags, then config.json auths, then helpers."""
    if username is not None:
        return Credentials(username, password or "")
    config = read_docker_config(config_dir)
    helper = (config.get("credHelpers") or {}).get(registry)
    if helper:
        return credentials_from_helper(str(helper), registry)
    found = credentials_from_config(config, registry)
    if found:
        return found
    if config.get("credsStore"):
        return credentials_from_helper(str(config["credsStore"]), registry)
    return None


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
                f"{header[:80]!r}"
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
            value = data.get("token") or data.get("access_token")
            lifetime = float(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError) as exc:
            raise AuthError(f"the token server {host} sent an unreadable answer") from exc
        if not value:
            raise AuthError(f"the token server {host} sent no token")
        lifetime = max(lifetime - _EXPIRY_MARGIN, lifetime / 2)
        return _Token(str(value), time.monotonic() + lifetime)


# -- saving credentials, as `docker login` does ----------------------------------------------


def save_credentials(config_dir: Path, registry: str, credentials: Credentials) -> str:
    """Store credentials where Docker would; returns where they went, for the user."""
    config = read_docker_config(config_dir)
    key = store_key(registry)
    helper = (config.get("credHelpers") or {}).get(registry) or config.get("credsStore")
    if helper:
        payload = json.dumps(
            {"ServerURL": key, "Username": credentials.username, "Secret": credentials.password}
        )
        run_credential_helper(str(helper), "store", payload)
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    auths[key] = {
        "auth": base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode(
            "ascii"
        )
    }
    _write_config(config_dir, config)
    return str(config_path(config_dir))


def remove_credentials(config_dir: Path, registry: str) -> bool:
    """Forget saved credentials for ``registry``; False when there were none."""
    config = read_docker_config(config_dir)
    removed = False
    helper = (config.get("credHelpers") or {}).get(registry) or config.get("credsStore")
    if helper:
        run_credential_helper(str(helper), "erase", store_key(registry))
        removed = True
    auths = config.get("auths") or {}
    stale = [key for key in auth_keys(registry) if key in auths]
    for key in stale:
        del auths[key]
    if stale:
        _write_config(config_dir, config)
    return removed or bool(stale)


def _write_config(config_dir: Path, config: dict[str, Any]) -> None:
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".config.json.", dir=config_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(config, out, indent="\t")
            out.write("\n")
        os.chmod(temp, 0o600)  # credentials: owner only, as docker does
        os.replace(temp, config_path(config_dir))
    except OSError as exc:
        raise ConfigError(f"cannot write {config_path(config_dir)}: {exc.strerror}") from exc
