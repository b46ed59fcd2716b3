"""Tests for imgpull.registry.auth: challenge parsing, where credentials come from, saving them."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from imgpull.errors import ConfigError
from imgpull.registry.auth import Challenge, parse_challenges
from imgpull.registry.credentials import (
    DOCKER_HUB_AUTH_KEY,
    Credentials,
    credentials_from_config,
    find_credentials,
    read_docker_config,
    remove_credentials,
    save_credentials,
)

REGISTRY = "registry.example.com:5000"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- WWW-Authenticate ----------------------------------------------------------------------


def test_docker_hub_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull,push"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:library/nginx:pull,push",
            },
        )
    ]


def test_quoted_values_with_commas_and_escaped_quotes() -> None:
    header = r'Bearer realm="https://a.example/token?x=1,2",error="say \"hi\", then \\ go"'
    (challenge,) = parse_challenges(header)
    assert challenge.params == {
        "realm": "https://a.example/token?x=1,2",
        "error": 'say "hi", then \\ go',
    }


@pytest.mark.parametrize(
    "header",
    [
        'Bearer realm="r",service="s",scope="repository:a:pull"',
        'Bearer scope="repository:a:pull",realm="r",service="s"',
        'Bearer service="s", scope="repository:a:pull" , realm="r"',
        'Bearer  SERVICE = "s" ,Realm="r",scope="repository:a:pull"',
    ],
)
def test_params_in_any_order(header: str) -> None:
    assert parse_challenges(header) == [
        Challenge("bearer", {"realm": "r", "service": "s", "scope": "repository:a:pull"})
    ]


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
def test_scheme_is_case_insensitive(scheme: str) -> None:
    assert parse_challenges(f'{scheme} realm="x"') == [Challenge("basic", {"realm": "x"})]


def test_basic_and_bearer_in_one_header() -> None:
    header = 'Basic realm="registry", Bearer realm="https://t.example/token",service="reg"'
    assert parse_challenges(header) == [
        Challenge("basic", {"realm": "registry"}),
        Challenge("bearer", {"realm": "https://t.example/token", "service": "reg"}),
    ]


def test_rfc7235_example() -> None:
    header = r'Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"'
    assert parse_challenges(header) == [
        Challenge("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        Challenge("basic", {"realm": "simple"}),
    ]


def test_bearer_error_params_after_realm() -> None:
    header = (
        'Bearer realm="https://t.example/token",service="reg",'
        'scope="repository:a/b:pull",error="insufficient_scope"'
    )
    (challenge,) = parse_challenges(header)
    assert challenge.params["error"] == "insufficient_scope"
    assert challenge.params["scope"] == "repository:a/b:pull"


def test_scheme_without_params() -> None:
    assert parse_challenges("Basic") == [Challenge("basic", {})]
    assert parse_challenges("") == []


def test_parameterless_challenge_before_another() -> None:
    assert parse_challenges('Negotiate, Basic realm="r"') == [
        Challenge("negotiate", {}),
        Challenge("basic", {"realm": "r"}),
    ]


# -- config.json ---------------------------------------------------------------------------


def test_auths_with_auth_base64() -> None:
    config = {"auths": {REGISTRY: {"auth": b64("alice:s3cret:with:colons")}}}
    assert credentials_from_config(config, REGISTRY) == Credentials("alice", "s3cret:with:colons")


def test_auths_with_username_and_password_fields() -> None:
    config = {"auths": {REGISTRY: {"username": "alice", "password": "pw"}}}
    assert credentials_from_config(config, REGISTRY) == Credentials("alice", "pw")


def test_auths_with_identity_token() -> None:
    config = {"auths": {REGISTRY: {"auth": b64("alice:"), "identitytoken": "refresh-me"}}}
    found = credentials_from_config(config, REGISTRY)
    assert found == Credentials(username="alice", identity_token="refresh-me")


def test_auths_with_identity_token_only() -> None:
    config = {"auths": {REGISTRY: {"identitytoken": "refresh-me"}}}
    assert credentials_from_config(config, REGISTRY) == Credentials(identity_token="refresh-me")


@pytest.mark.parametrize(
    "key",
    [DOCKER_HUB_AUTH_KEY, "index.docker.io", "docker.io", "https://index.docker.io/v1"],
)
def test_docker_hub_keys(key: str) -> None:
    config = {"auths": {key: {"auth": b64("hubuser:hubpass")}}}
    assert credentials_from_config(config, "docker.io") == Credentials("hubuser", "hubpass")


@pytest.mark.parametrize(
    "key",
    [
        REGISTRY,
        f"https://{REGISTRY}",
        f"http://{REGISTRY}",
        f"https://{REGISTRY}/",
        f"https://{REGISTRY}/v1/",
        f"https://{REGISTRY}/v2/",
    ],
)
def test_registry_keys_with_scheme(key: str) -> None:
    config = {"auths": {key: {"auth": b64("alice:pw")}}}
    assert credentials_from_config(config, REGISTRY) == Credentials("alice", "pw")


def test_other_registries_do_not_match() -> None:
    config = {
        "auths": {
            "registry.example.com": {"auth": b64("wrong:port")},
            "https://registry.example.com:5001": {"auth": b64("wrong:port2")},
            "other.example.com:5000": {"auth": b64("wrong:host")},
        }
    }
    assert credentials_from_config(config, REGISTRY) is None
    assert credentials_from_config({}, REGISTRY) is None
    assert credentials_from_config({"auths": {REGISTRY: {}}}, REGISTRY) is None


def test_exact_key_wins_over_normalised_key() -> None:
    config = {
        "auths": {
            f"https://{REGISTRY}/v1/": {"auth": b64("loose:1")},
            REGISTRY: {"auth": b64("exact:2")},
        }
    }
    assert credentials_from_config(config, REGISTRY) == Credentials("exact", "2")


def test_bad_base64_is_a_config_error() -> None:
    config = {"auths": {REGISTRY: {"auth": "!!!not base64!!!"}}}
    with pytest.raises(ConfigError, match="base64"):
        credentials_from_config(config, REGISTRY)


def write_config(directory: Path, config: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_find_credentials_from_config_dir(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {REGISTRY: {"auth": b64("alice:pw")}}})
    assert find_credentials(REGISTRY, config_dir=tmp_path) == Credentials("alice", "pw")
    assert find_credentials("elsewhere.example", config_dir=tmp_path) is None


def test_find_credentials_without_config(tmp_path: Path) -> None:
    assert find_credentials(REGISTRY, config_dir=tmp_path / "missing") is None


def test_flags_override_config(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        {"auths": {REGISTRY: {"auth": b64("alice:pw")}}, "credsStore": "does-not-exist"},
    )
    found = find_credentials(REGISTRY, config_dir=tmp_path, username="bob", password="flag")
    assert found == Credentials("bob", "flag")
    # A username alone means an empty password, not the saved one.
    assert find_credentials(REGISTRY, config_dir=tmp_path, username="bob") == Credentials("bob", "")


def test_invalid_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        find_credentials(REGISTRY, config_dir=tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not a JSON object"):
        find_credentials(REGISTRY, config_dir=tmp_path)
    (tmp_path / "config.json").write_text("   \n")
    assert find_credentials(REGISTRY, config_dir=tmp_path) is None


# -- credential helpers --------------------------------------------------------------------

HELPER_SCRIPT = """\
#!{python}
import json, sys
from pathlib import Path

state = Path({state!r})
action = sys.argv[1]
data = sys.stdin.read()
with (state / "calls.jsonl").open("a") as log:
    log.write(json.dumps({{"action": action, "input": data}}) + "\\n")
store_path = state / "store.json"
store = json.loads(store_path.read_text()) if store_path.exists() else {{}}
if action == "get":
    entry = store.get(data.strip())
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": data.strip(), **entry}}))
elif action == "store":
    payload = json.loads(data)
    store[payload["ServerURL"]] = {{"Username": payload["Username"], "Secret": payload["Secret"]}}
    store_path.write_text(json.dumps(store))
elif action == "erase":
    store.pop(data.strip(), None)
    store_path.write_text(json.dumps(store))
else:
    print("unknown action", file=sys.stderr)
    sys.exit(2)
"""


class FakeHelper:
    """``docker-credential-<name>`` on PATH, backed by a JSON file; records every call."""

    def __init__(self, directory: Path, name: str = "fake") -> None:
        self.name = name
        self.state = directory / f"{name}-state"
        self.state.mkdir(parents=True)
        bin_dir = directory / "bin"
        bin_dir.mkdir(exist_ok=True)
        script = bin_dir / f"docker-credential-{name}"
        script.write_text(HELPER_SCRIPT.format(python=sys.executable, state=str(self.state)))
        script.chmod(0o755)
        self.bin_dir = bin_dir

    def set(self, server: str, username: str, secret: str) -> None:
        store = self.store()
        store[server] = {"Username": username, "Secret": secret}
        (self.state / "store.json").write_text(json.dumps(store))

    def store(self) -> dict[str, Any]:
        path = self.state / "store.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def calls(self) -> list[dict[str, str]]:
        path = self.state / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeHelper]:
    made = {name: FakeHelper(tmp_path / "helpers", name) for name in ("fake", "other")}
    bin_dir = made["fake"].bin_dir
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return made


def test_cred_helpers_per_registry(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    helpers["fake"].set(REGISTRY, "helped", "helper-secret")
    config_dir = tmp_path / "docker"
    write_config(
        config_dir,
        {
            "credHelpers": {REGISTRY: "fake"},
            "auths": {REGISTRY: {"auth": b64("stale:file")}},
        },
    )
    assert find_credentials(REGISTRY, config_dir=config_dir) == Credentials(
        "helped", "helper-secret"
    )
    assert helpers["fake"].calls() == [{"action": "get", "input": REGISTRY}]


def test_creds_store(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    helpers["fake"].set(f"https://{REGISTRY}", "stored", "store-secret")
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"credsStore": "fake", "auths": {REGISTRY: {}}})
    assert find_credentials(REGISTRY, config_dir=config_dir) == Credentials(
        "stored", "store-secret"
    )
    # The bare host name first, then the https:// form.
    assert [c["input"] for c in helpers["fake"].calls()] == [REGISTRY, f"https://{REGISTRY}"]


def test_cred_helper_wins_over_creds_store(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    helpers["fake"].set(REGISTRY, "from-store", "1")
    helpers["other"].set(REGISTRY, "from-helper", "2")
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"credsStore": "fake", "credHelpers": {REGISTRY: "other"}})
    assert find_credentials(REGISTRY, config_dir=config_dir) == Credentials("from-helper", "2")
    assert helpers["fake"].calls() == []


def test_helper_identity_token(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    helpers["fake"].set(DOCKER_HUB_AUTH_KEY, "<token>", "refresh-token")
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"credsStore": "fake"})
    assert find_credentials("docker.io", config_dir=config_dir) == Credentials(
        identity_token="refresh-token"
    )


def test_helper_without_credentials(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"credsStore": "fake"})
    assert find_credentials(REGISTRY, config_dir=config_dir) is None


def test_missing_helper_is_a_config_error(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"credsStore": "not-installed-anywhere"})
    with pytest.raises(ConfigError, match="docker-credential-not-installed-anywhere"):
        find_credentials(REGISTRY, config_dir=config_dir)


def test_flags_skip_helpers(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"credsStore": "fake", "credHelpers": {REGISTRY: "fake"}})
    found = find_credentials(REGISTRY, config_dir=config_dir, username="u", password="p")
    assert found == Credentials("u", "p")
    assert helpers["fake"].calls() == []


def test_save_and_remove_through_helper(tmp_path: Path, helpers: dict[str, FakeHelper]) -> None:
    config_dir = tmp_path / "docker"
    write_config(config_dir, {"credsStore": "fake"})
    where = save_credentials(config_dir, REGISTRY, Credentials("alice", "pw"))
    assert where == "docker-credential-fake"
    store_call = helpers["fake"].calls()[-1]
    assert store_call["action"] == "store"
    assert json.loads(store_call["input"]) == {
        "ServerURL": REGISTRY,
        "Username": "alice",
        "Secret": "pw",
    }
    # The secret went to the helper, not into config.json.
    assert "pw" not in (config_dir / "config.json").read_text()
    assert find_credentials(REGISTRY, config_dir=config_dir) == Credentials("alice", "pw")

    assert remove_credentials(config_dir, REGISTRY) is True
    assert helpers["fake"].calls()[-1] == {"action": "erase", "input": REGISTRY}
    assert helpers["fake"].store() == {}
    assert find_credentials(REGISTRY, config_dir=config_dir) is None


def test_logout_with_helper_also_removes_file_entry(
    tmp_path: Path, helpers: dict[str, FakeHelper]
) -> None:
    config_dir = tmp_path / "docker"
    write_config(
        config_dir, {"credsStore": "fake", "auths": {REGISTRY: {"auth": b64("old:secret")}}}
    )
    assert remove_credentials(config_dir, REGISTRY) is True
    assert REGISTRY not in read_docker_config(config_dir).get("auths", {})
    assert find_credentials(REGISTRY, config_dir=config_dir) is None


# -- saving, as docker login does ----------------------------------------------------------


def test_save_remove_round_trip(tmp_path: Path) -> None:
    config_dir = tmp_path / "new" / "docker"
    write_config(config_dir, {"psFormat": "table {{.ID}}", "auths": {"keep.example": {}}})
    where = save_credentials(config_dir, REGISTRY, Credentials("alice", "p:w"))
    path = config_dir / "config.json"
    assert where == str(path)
    data = json.loads(path.read_text())
    assert data["auths"][REGISTRY] == {"auth": b64("alice:p:w")}
    assert data["auths"]["keep.example"] == {}
    assert data["psFormat"] == "table {{.ID}}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert find_credentials(REGISTRY, config_dir=config_dir) == Credentials("alice", "p:w")
    assert [p.name for p in config_dir.iterdir()] == ["config.json"]  # no temp files left

    assert remove_credentials(config_dir, REGISTRY) is True
    data = json.loads(path.read_text())
    assert REGISTRY not in data["auths"]
    assert data["auths"]["keep.example"] == {}
    assert data["psFormat"] == "table {{.ID}}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert find_credentials(REGISTRY, config_dir=config_dir) is None
    assert remove_credentials(config_dir, REGISTRY) is False


def test_save_creates_config_dir(tmp_path: Path) -> None:
    config_dir = tmp_path / "does" / "not" / "exist"
    save_credentials(config_dir, REGISTRY, Credentials("alice", "pw"))
    path = config_dir / "config.json"
    assert json.loads(path.read_text()) == {"auths": {REGISTRY: {"auth": b64("alice:pw")}}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_docker_hub_uses_legacy_key(tmp_path: Path) -> None:
    save_credentials(tmp_path, "docker.io", Credentials("hubuser", "hubpass"))
    data = json.loads((tmp_path / "config.json").read_text())
    assert list(data["auths"]) == [DOCKER_HUB_AUTH_KEY]
    assert find_credentials("docker.io", config_dir=tmp_path) == Credentials("hubuser", "hubpass")
    assert remove_credentials(tmp_path, "docker.io") is True
    assert json.loads((tmp_path / "config.json").read_text())["auths"] == {}


def test_save_replaces_previous_entry(tmp_path: Path) -> None:
    save_credentials(tmp_path, REGISTRY, Credentials("alice", "one"))
    save_credentials(tmp_path, REGISTRY, Credentials("alice", "two"))
    assert find_credentials(REGISTRY, config_dir=tmp_path) == Credentials("alice", "two")


def test_remove_also_forgets_https_keys(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {f"https://{REGISTRY}": {"auth": b64("a:b")}}})
    assert remove_credentials(tmp_path, REGISTRY) is True
    assert find_credentials(REGISTRY, config_dir=tmp_path) is None


# -- Credentials ---------------------------------------------------------------------------


def test_repr_hides_secrets() -> None:
    creds = Credentials("alice", "super-secret-pw", identity_token="secret-refresh-token")
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"c": creds})):
        assert "alice" in text
        assert "super-secret-pw" not in text
        assert "secret-refresh-token" not in text


def test_basic_header() -> None:
    assert Credentials("alice", "pw").basic_header() == "Basic " + b64("alice:pw")
    assert Credentials("ü", "ß").basic_header() == "Basic " + base64.b64encode(
        "ü:ß".encode()
    ).decode("ascii")
