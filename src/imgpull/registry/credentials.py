"""Where credentials come from, and where ``login`` saves them, as Docker does.

In order: flags, Docker's ``config.json`` ``auths``, and its credential helpers
(``credHelpers`` per registry, then ``credsStore``).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgpull.errors import ConfigError
from imgpull.reference import DOCKER_HUB

DOCKER_HUB_AUTH_KEY = "https://index.docker.io/v1/"


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
