"""``imgpull config`` and the configuration sources behind it: flags, the environment,
imgpull's TOML file, containers' registries.conf and Docker's daemon.json. Each
effective setting is shown with its origin, secrets redacted; a bad file or flag is one
clean line with exit code 2. No registry traffic is needed, except to show that a bad
configuration stops ``pull`` before any request."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imgpull.cli.main import main
from imgpull.errors import EXIT_OK, EXIT_USAGE
from tests.cli import assert_clean_failure, run_imgpull
from tests.conftest import FreshEnv
from tests.fixtures.images import StandardImages
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")

SECRET = "s3cret-Pa55"
BAD_NAME_BUG = (
    "BUG: config.py calls normalize_registry() on registry names from files (lines 193, "
    "208, 251, 312) without catching InvalidReferenceError, so the error line says "
    "'invalid registry \"Bad Name!\"' but never names the file it is in"
)


class ConfigRunner:
    """``imgpull config ARGS`` run in this process (the command starts no thread and
    touches no network), much faster than a subprocess per call."""

    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def run(
        self, *args: str, env: dict[str, str] | None = None, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        self.capsys.readouterr()
        with self.monkeypatch.context() as patch:
            for name, value in (env or {}).items():
                patch.setenv(name, value)
            patch.setattr(sys, "stdin", io.StringIO((input or b"").decode()))
            code = main(["config", *args])
        captured = self.capsys.readouterr()
        return subprocess.CompletedProcess(
            ["imgpull", "config", *args], code, captured.out.encode(), captured.err.encode()
        )

    def text(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.run(*args, env=env)
        assert result.returncode == EXIT_OK, result.stderr.decode(errors="replace")
        assert result.stderr == b""
        return result.stdout.decode()

    def json(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.text("--json", *args, env=env))
        return loaded


@pytest.fixture
def cfg(
    fresh_env: FreshEnv, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> ConfigRunner:
    return ConfigRunner(capsys, monkeypatch)


def setting_line(text: str, key: str) -> tuple[str, str]:
    """(value, origin) of a top-level ``key: value   [origin]`` line."""
    match = re.search(rf"^{re.escape(key)}: (.*?)   \[(.*)\]$", text, re.MULTILINE)
    assert match, f"no {key!r} line in:\n{text}"
    return match[1], match[2]


def registry_block(text: str, name: str) -> list[str]:
    """The indented lines under ``  NAME:`` in the registries section."""
    lines = text.splitlines()
    start = lines.index(f"  {name}:")
    block = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        block.append(line.strip())
    return block


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- proxies -------------------------------------------------------------------------------


def test_proxy_flag_is_shown_redacted(cfg: ConfigRunner) -> None:
    args = ("--proxy", f"socks5h://user:{SECRET}@127.0.0.1:1080")
    text = cfg.text(*args)
    assert setting_line(text, "proxy") == ("socks5h://user:***@127.0.0.1:1080", "--proxy")
    assert SECRET not in text
    data = cfg.json(*args)
    assert data["proxy"] == {"value": "socks5h://user:***@127.0.0.1:1080", "from": "--proxy"}
    assert SECRET not in json.dumps(data)


def test_no_proxy_settings_by_default(cfg: ConfigRunner) -> None:
    text = cfg.text()
    for key in ("proxy", "https_proxy", "http_proxy", "all_proxy", "no_proxy"):
        assert setting_line(text, key) == ("(none)", "default")


@pytest.mark.parametrize(
    ("variable", "key"),
    [("HTTPS_PROXY", "https_proxy"), ("HTTP_PROXY", "http_proxy"), ("ALL_PROXY", "all_proxy")],
)
def test_environment_proxy_origin(cfg: ConfigRunner, variable: str, key: str) -> None:
    env = {variable: f"http://proxyuser:{SECRET}@proxy.example:3128"}
    text = cfg.text(env=env)
    assert setting_line(text, key) == ("http://proxyuser:***@proxy.example:3128", variable)
    assert setting_line(text, "proxy") == ("(none)", "default")
    assert SECRET not in text
    assert cfg.json(env=env)[key]["from"] == variable


def test_no_proxy_origin(cfg: ConfigRunner) -> None:
    text = cfg.text(env={"NO_PROXY": "internal.example,10.0.0.0/8"})
    assert setting_line(text, "no_proxy") == ("internal.example,10.0.0.0/8", "NO_PROXY")


def test_config_file_proxy_is_shown_redacted_with_its_file(
    cfg: ConfigRunner, tmp_path: Path
) -> None:
    config = write(
        tmp_path / "imgpull.toml",
        f'proxy = "http://u:{SECRET}@proxy.example:3128"\nno_proxy = ["a.example", "b.example"]\n',
    )
    text = cfg.text("--config", str(config))
    assert setting_line(text, "proxy") == ("http://u:***@proxy.example:3128", str(config))
    assert setting_line(text, "no_proxy") == ("a.example,b.example", str(config))
    assert SECRET not in text
    # --proxy wins over the file.
    text = cfg.text("--config", str(config), "--proxy", "http://flag.example:3128")
    assert setting_line(text, "proxy") == ("http://flag.example:3128", "--proxy")


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://x",
        "notaurl",
        "http://",
        "socks4://127.0.0.1:1080",
        pytest.param(
            "http://127.0.0.1:abc",
        ),
    ],
)
def test_invalid_proxy_flag(cfg: ConfigRunner, bad: str) -> None:
    result = cfg.run("--proxy", bad)
    assert_clean_failure(result, code=EXIT_USAGE, contains="invalid proxy")


def test_invalid_proxy_flag_hides_its_password(cfg: ConfigRunner) -> None:
    result = cfg.run("--proxy", f"ftp://user:{SECRET}@proxy.example")
    line = assert_clean_failure(result, code=EXIT_USAGE, contains="--proxy")
    assert SECRET not in line


def test_invalid_proxy_variable_names_it(cfg: ConfigRunner) -> None:
    result = cfg.run(env={"HTTPS_PROXY": "ftp://proxy.example"})
    assert_clean_failure(result, code=EXIT_USAGE, contains="HTTPS_PROXY")


def test_invalid_proxy_stops_a_pull_before_any_request(
    tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    out = tmp_path / "out.tar"
    mark = registry.log_mark()
    result = run_imgpull(
        "pull", standard_images.hello.ref(registry.host), "-o", str(out), "--proxy", "notaurl"
    )
    assert_clean_failure(result, code=EXIT_USAGE, contains="invalid proxy", output=out)
    assert registry.count_requests(since=mark) == 0


# -- mirrors and registries -----------------------------------------------------------------


def test_mirror_flag_origin(cfg: ConfigRunner) -> None:
    args = (
        "--mirror",
        "docker.io=https://m.daocloud.io/docker.io/",
        "--mirror",
        "docker.io=mirror.example:5000",
    )
    text = cfg.text(*args)
    assert registry_block(text, "docker.io")[:2] == [
        "mirror: https://m.daocloud.io/docker.io   [--mirror]",
        "mirror: https://mirror.example:5000   [--mirror]",
    ]
    data = cfg.json(*args)
    assert data["registries"]["docker.io"]["mirrors"] == [
        {"url": "https://m.daocloud.io/docker.io", "from": "--mirror"},
        {"url": "https://mirror.example:5000", "from": "--mirror"},
    ]


def test_config_file_mirrors_and_mirror_only(cfg: ConfigRunner, tmp_path: Path) -> None:
    config = write(
        tmp_path / "imgpull.toml",
        '[registries."ghcr.io"]\nmirrors = ["https://ghcr-mirror.example/ghcr.io"]\n'
        "mirror_only = true\n",
    )
    text = cfg.text("--config", str(config))
    assert f"  {config}: read" in text.splitlines()
    assert registry_block(text, "ghcr.io") == [
        f"mirror: https://ghcr-mirror.example/ghcr.io   [{config}]",
        f"mirror_only: true   [{config}]",
        "insecure: false   [default]",
        "blocked: false   [default]",
    ]
    # A flag mirror replaces the file's mirrors of that registry.
    text = cfg.text("--config", str(config), "--mirror", "ghcr.io=https://flag.example")
    assert registry_block(text, "ghcr.io")[0] == "mirror: https://flag.example   [--mirror]"
    assert "ghcr-mirror.example" not in text


def test_registries_conf_and_daemon_json_are_read(cfg: ConfigRunner, fresh_env: FreshEnv) -> None:
    conf = write(
        fresh_env.root / "registries.conf",
        'unqualified-search-registries = ["docker.io"]\n\n'
        '[[registry]]\nprefix = "quay.io"\nlocation = "quay.io"\n'
        '[[registry.mirror]]\nlocation = "quay-mirror.example:5000"\ninsecure = true\n\n'
        '[[registry]]\nlocation = "blocked.example"\nblocked = true\n',
    )
    daemon = write(
        fresh_env.root / "daemon.json",
        json.dumps(
            {
                "registry-mirrors": ["https://hub-mirror.example"],
                "insecure-registries": ["registry.lan:5000"],
            }
        ),
    )
    text = cfg.text()
    files = text.split("\n", 1)[1].split("proxy:", 1)[0]
    assert f"  {conf}: read" in files.splitlines()
    assert f"  {daemon}: read" in files.splitlines()
    assert registry_block(text, "quay.io")[:2] == [
        f"mirror: https://quay-mirror.example:5000   [{conf}]",
        "mirror_only: false   [default]",
    ]
    assert f"blocked: true   [{conf}]" in registry_block(text, "blocked.example")
    assert (
        registry_block(text, "docker.io")[0] == f"mirror: https://hub-mirror.example   [{daemon}]"
    )
    assert f"insecure: true   [{daemon}]" in registry_block(text, "registry.lan:5000")
    data = cfg.json()
    assert {"path": str(conf), "status": "read"} in data["files"]
    assert {"path": str(daemon), "status": "read"} in data["files"]
    assert data["registries"]["blocked.example"]["blocked"] == {"value": True, "from": str(conf)}


def test_missing_default_config_file_is_listed_as_not_found(
    cfg: ConfigRunner, fresh_env: FreshEnv
) -> None:
    data = cfg.json()
    default = fresh_env.xdg_config_home / "imgpull" / "config.toml"
    assert data["files"] == [{"path": str(default), "status": "not found"}]


def test_default_config_file_and_imgpull_config_variable(
    cfg: ConfigRunner, fresh_env: FreshEnv, tmp_path: Path
) -> None:
    default = write(
        fresh_env.xdg_config_home / "imgpull" / "config.toml",
        'insecure_registries = ["default-file.example"]\n',
    )
    data = cfg.json()
    assert data["files"][0] == {"path": str(default), "status": "read"}
    assert data["registries"]["default-file.example"]["insecure"] == {
        "value": True,
        "from": str(default),
    }
    chosen = write(tmp_path / "chosen.toml", 'insecure_registries = ["chosen.example"]\n')
    data = cfg.json(env={"IMGPULL_CONFIG": str(chosen)})
    assert data["files"][0] == {"path": str(chosen), "status": "read"}
    assert "chosen.example" in data["registries"]
    assert "default-file.example" not in data["registries"]


def test_insecure_origins(cfg: ConfigRunner, tmp_path: Path) -> None:
    config = write(tmp_path / "imgpull.toml", 'insecure_registries = ["file.example:5000"]\n')
    text = cfg.text("--config", str(config), "--insecure-registry", "flag.example")
    assert "insecure: true   [--insecure-registry]" in registry_block(text, "flag.example")
    assert f"insecure: true   [{config}]" in registry_block(text, "file.example:5000")
    assert setting_line(text, "insecure")[1] == "default"
    assert setting_line(cfg.text("--insecure"), "insecure")[1] == "--insecure"


def test_ca_and_certs_dir_origins(cfg: ConfigRunner, fresh_env: FreshEnv, tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", "not parsed by imgpull config\n")
    text = cfg.text("--ca-cert", str(ca))
    assert setting_line(text, "ca_certs") == (str(ca), "--ca-cert")
    assert setting_line(text, "certs_dirs")[1] == "IMGPULL_CERTS_DIR"
    text = cfg.text(env={"SSL_CERT_FILE": str(ca)})
    assert setting_line(text, "ca_certs") == (str(ca), "SSL_CERT_FILE")


def test_json_has_the_same_data_as_the_text(
    cfg: ConfigRunner, fresh_env: FreshEnv, tmp_path: Path
) -> None:
    config = write(
        tmp_path / "imgpull.toml",
        'no_proxy = "internal.example"\n'
        '[registries."ghcr.io"]\nmirrors = ["https://ghcr-mirror.example"]\n',
    )
    write(fresh_env.root / "daemon.json", '{"registry-mirrors": ["https://hub.example"]}')
    args = (
        "--config",
        str(config),
        "--proxy",
        f"http://u:{SECRET}@proxy.example:3128",
        "--mirror",
        "quay.io=https://quay-mirror.example/quay.io",
        "--insecure-registry",
        "lan.example",
    )
    env = {"HTTP_PROXY": "http://plain-proxy.example:3128"}
    text = cfg.text(*args, env=env)
    data = cfg.json(*args, env=env)
    assert SECRET not in json.dumps(data)
    assert [f"  {f['path']}: {f['status']}" for f in data["files"]] == [
        line for line in text.splitlines() if line.endswith((": read", ": not found"))
    ]
    for key, item in data.items():
        if key in ("files", "registries", "endpoint_memory"):  # sections of their own
            continue
        value, origin = setting_line(text, key)
        assert origin == item["from"], key
        expected = item["value"]
        if isinstance(expected, list):
            expected = ", ".join(expected)
        if expected in (None, "", []):
            expected = "(none)"
        assert value == str(expected), key
    assert sorted(data["registries"]) == sorted(
        re.findall(r"^  (\S+):$", text.split("registries:", 1)[1], re.MULTILINE)
    )
    for name, item in data["registries"].items():
        block = registry_block(text, name)
        assert [f"mirror: {m['url']}   [{m['from']}]" for m in item["mirrors"]] == [
            line for line in block if line.startswith("mirror:")
        ]
        for key in ("mirror_only", "insecure", "blocked"):
            assert f"{key}: {str(item[key]['value']).lower()}   [{item[key]['from']}]" in block


def test_config_never_prints_the_password(cfg: ConfigRunner) -> None:
    result = cfg.run("-u", "alice", "--password-stdin", input=SECRET.encode())
    assert result.returncode == EXIT_OK, result.stderr.decode()
    assert SECRET.encode() not in result.stdout + result.stderr


# -- bad configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "contains"),
    [
        ("proxy = \n", "not valid TOML"),
        ("[registries\n", "not valid TOML"),
        ('colour = "blue"\n', "colour"),
        ('[registries."docker.io"]\nmirors = ["https://m.example"]\n', "mirors"),
        ('[registries."docker.io"]\nmirrors = ["ftp://x"]\n', "ftp://x"),
        ('[registries."docker.io"]\nmirrors = ["https://u:p@m.example"]\n', "invalid mirror"),
        ('[registries."docker.io"]\nmirrors = [1, 2]\n', "mirrors"),
        ('insecure_registries = "ok.example"\n[registries]\nx = 1\n', "must be a table"),
        ('registries = "docker.io"\n', "registries"),
        pytest.param(
            '[registries."Bad Name!"]\nmirror_only = true\n',
            "Bad Name!",
        ),
        pytest.param(
            'insecure_registries = ["Bad Name!"]\n',
            "Bad Name!",
        ),
        ('proxy = "ftp://proxy.example"\n', "invalid proxy"),
    ],
)
def test_bad_config_file(cfg: ConfigRunner, tmp_path: Path, content: str, contains: str) -> None:
    config = write(tmp_path / "bad.toml", content)
    result = cfg.run("--config", str(config))
    line = assert_clean_failure(result, code=EXIT_USAGE, contains=contains)
    assert str(config) in line


def test_bad_config_file_stops_a_pull_before_any_request(
    tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    config = write(tmp_path / "bad.toml", '[registries."docker.io"]\nmirrors = ["ftp://x"]\n')
    out = tmp_path / "out.tar"
    mark = registry.log_mark()
    result = run_imgpull(
        "pull", standard_images.hello.ref(registry.host), "-o", str(out), "--config", str(config)
    )
    assert_clean_failure(result, code=EXIT_USAGE, contains=str(config), output=out)
    assert registry.count_requests(since=mark) == 0


def test_bad_default_config_file(cfg: ConfigRunner, fresh_env: FreshEnv) -> None:
    config = write(fresh_env.xdg_config_home / "imgpull" / "config.toml", "= broken\n")
    result = cfg.run()
    assert_clean_failure(result, code=EXIT_USAGE, contains=str(config))


def test_missing_config_file(cfg: ConfigRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "imgpull.toml"
    result = cfg.run("--config", str(missing))
    assert_clean_failure(result, code=EXIT_USAGE, contains=str(missing))


def test_missing_config_file_stops_a_pull(
    tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    missing = tmp_path / "imgpull.toml"
    out = tmp_path / "out.tar"
    result = run_imgpull(
        "pull", standard_images.hello.ref(registry.host), "-o", str(out), "--config", str(missing)
    )
    assert_clean_failure(result, code=EXIT_USAGE, contains="does not exist", output=out)


@pytest.mark.parametrize(
    ("name", "content", "contains"),
    [
        ("daemon.json", "{not json", "not valid JSON"),
        ("daemon.json", '{"registry-mirrors": "ftp://x"}', "ftp://x"),
        ("daemon.json", '{"registry-mirrors": [1]}', "registry-mirrors"),
        ("registries.conf", "[[registry]\n", "not valid TOML"),
        (
            "registries.conf",
            '[[registry]]\nprefix = "quay.io"\n[[registry.mirror]]\nlocation = "ftp://x"\n',
            "ftp://x",
        ),
    ],
)
def test_bad_system_files(
    cfg: ConfigRunner, fresh_env: FreshEnv, name: str, content: str, contains: str
) -> None:
    path = write(fresh_env.root / name, content)
    result = cfg.run()
    line = assert_clean_failure(result, code=EXIT_USAGE, contains=contains)
    assert str(path) in line


@pytest.mark.parametrize(
    ("value", "contains"),
    [
        ("docker.io", "REGISTRY=URL"),
        ("=https://m.example", "REGISTRY=URL"),
        ("docker.io=", "REGISTRY=URL"),
        ("docker.io=ftp://x", "ftp://x"),
        ("docker.io=https://u:p@m.example", "invalid mirror"),
        ("Bad Registry!=https://m.example", "invalid registry"),
    ],
)
def test_bad_mirror_flag(cfg: ConfigRunner, value: str, contains: str) -> None:
    result = cfg.run("--mirror", value)
    assert_clean_failure(result, code=EXIT_USAGE, contains=contains)


def test_unreadable_config_file(cfg: ConfigRunner, tmp_path: Path) -> None:
    directory = tmp_path / "a-directory.toml"
    directory.mkdir()
    result = cfg.run("--config", str(directory))
    assert_clean_failure(result, code=EXIT_USAGE, contains=str(directory))


def test_config_command_as_a_program(fresh_env: FreshEnv) -> None:
    """The same through ``python -m imgpull`` (the rest runs ``main`` in-process)."""
    result = run_imgpull(
        "config",
        "--json",
        "--proxy",
        f"socks5h://user:{SECRET}@127.0.0.1:1080",
        "--mirror",
        "docker.io=https://mirror.example",
        env={"HTTPS_PROXY": "http://proxy.example:3128"},
    )
    assert result.returncode == EXIT_OK, result.stderr.decode()
    assert SECRET.encode() not in result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["proxy"] == {"value": "socks5h://user:***@127.0.0.1:1080", "from": "--proxy"}
    assert data["https_proxy"] == {"value": "http://proxy.example:3128", "from": "HTTPS_PROXY"}
    assert data["registries"]["docker.io"]["mirrors"] == [
        {"url": "https://mirror.example", "from": "--mirror"}
    ]


@pytest.mark.parametrize(
    "spelling", ["index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/"]
)
def test_mirror_flag_docker_hub_spellings(cfg: ConfigRunner, spelling: str) -> None:
    data = cfg.json("--mirror", f"{spelling}=https://mirror.example")
    assert list(data["registries"]) == ["docker.io"]
