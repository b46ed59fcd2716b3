"""Settings: NO_PROXY matching, which proxy a request uses, mirror URLs, the endpoints of
a registry (mirrors, mirror_only, blocked) and proxy redaction. Pure functions and
``Settings`` built from a controlled environment; no traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgpull.config.settings import Settings, bypasses_proxy, redact_proxy
from imgpull.errors import ConfigError
from imgpull.naming import Mirror
from imgpull.reference import DOCKER_HUB, DOCKER_HUB_API
from imgpull.registry.session import Registries as Session
from tests.conftest import FreshEnv

# -- bypasses_proxy ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "no_proxy", "expected"),
    [
        # "*" bypasses everything
        ("example.com", None, "*", True),
        ("10.1.2.3", 443, "*", True),
        ("example.com", None, "other.org, *", True),
        # nothing configured
        ("example.com", None, "", False),
        ("example.com", None, " , ,", False),
        # a name matches itself and its subdomains, never a longer name
        ("example.com", None, "example.com", True),
        ("a.example.com", None, "example.com", True),
        ("a.b.example.com", None, "example.com", True),
        ("badexample.com", None, "example.com", False),
        ("example.com.evil.org", None, "example.com", False),
        ("example.org", None, "example.com", False),
        # case does not matter; spaces around entries do not either
        ("A.Example.COM".lower(), None, " EXAMPLE.com ", True),
        # ".domain" and "*.domain" match subdomains (and, as curl and Python's urllib do,
        # the domain itself)
        ("a.example.com", None, ".example.com", True),
        ("badexample.com", None, ".example.com", False),
        ("a.example.com", None, "*.example.com", True),
        ("badexample.com", None, "*.example.com", False),
        # several entries
        ("registry.corp", None, "example.com,registry.corp", True),
        ("registry.corp", None, "example.com, registry.corp ,", True),
        # IP addresses
        ("10.1.2.3", None, "10.1.2.3", True),
        ("10.1.2.4", None, "10.1.2.3", False),
        # CIDR ranges (pure arithmetic, no resolution)
        ("10.200.3.4", None, "10.0.0.0/8", True),
        ("11.0.0.1", None, "10.0.0.0/8", False),
        ("192.168.1.77", None, "192.168.1.0/24", True),
        ("192.168.2.1", None, "192.168.1.0/24", False),
        ("10.0.0.1", None, "10.0.0.0/8:5000", False),
        ("10.0.0.1", 5000, "10.0.0.0/8:5000", True),
        # a CIDR entry never matches a host name, a name never matches an IP
        ("example.com", None, "10.0.0.0/8", False),
        ("10.0.0.1", None, "example.com", False),
        # IPv6, written with or without brackets
        ("::1", None, "[::1]", True),
        ("[::1]", 5000, "[::1]", True),
        ("2001:db8::5", None, "2001:db8::/32", True),
        ("2001:db9::5", None, "2001:db8::/32", False),
        ("2001:db8::5", None, "2001:db8::5", True),
        ("2001:db8::5", 5000, "[2001:db8::5]:5000", True),
        ("2001:db8::5", 5001, "[2001:db8::5]:5000", False),
        # host:port entries match only that port
        ("example.com", 5000, "example.com:5000", True),
        ("example.com", 5001, "example.com:5000", False),
        ("example.com", None, "example.com:5000", False),
        ("a.example.com", 5000, "example.com:5000", True),
        ("10.1.2.3", 5000, "10.1.2.3:5000", True),
        ("10.1.2.3", 443, "10.1.2.3:5000", False),
        # an entry without a port matches every port
        ("example.com", 8443, "example.com", True),
    ],
)
def test_bypasses_proxy(host: str, port: int | None, no_proxy: str, expected: bool) -> None:
    assert bypasses_proxy(host, port, no_proxy) is expected


# -- Settings.proxy_for --------------------------------------------------------------------

PROXY_VARS = tuple(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    for name in (base, base.lower())
)


@pytest.fixture
def env(fresh_env: FreshEnv, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``fresh_env`` (no proxy variables, no machine config files), for setting variables."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_proxy_configured_connects_directly(env: pytest.MonkeyPatch) -> None:
    settings = Settings.from_environment()
    assert settings.proxy_for("https://registry.example/v2/") is None
    assert settings.proxy_for("http://registry.example/v2/") is None


def test_env_proxy_by_scheme(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTPS_PROXY", "http://secure-proxy:3128")
    env.setenv("HTTP_PROXY", "http://plain-proxy:3128")
    settings = Settings.from_environment()
    assert settings.proxy_for("https://registry.example/v2/") == "http://secure-proxy:3128"
    assert settings.proxy_for("http://registry.example/v2/") == "http://plain-proxy:3128"
    assert settings.origins["https_proxy"] == "HTTPS_PROXY"
    assert settings.origins["http_proxy"] == "HTTP_PROXY"


def test_https_proxy_is_not_used_for_http(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTPS_PROXY", "http://secure-proxy:3128")
    settings = Settings.from_environment()
    assert settings.proxy_for("https://registry.example/v2/") == "http://secure-proxy:3128"
    assert settings.proxy_for("http://registry.example/v2/") is None


def test_all_proxy_is_the_fallback(env: pytest.MonkeyPatch) -> None:
    env.setenv("ALL_PROXY", "socks5h://socks:1080")
    env.setenv("HTTP_PROXY", "http://plain-proxy:3128")
    settings = Settings.from_environment()
    assert settings.proxy_for("https://registry.example/v2/") == "socks5h://socks:1080"
    assert settings.proxy_for("http://registry.example/v2/") == "http://plain-proxy:3128"


def test_lowercase_variable_wins_over_uppercase(env: pytest.MonkeyPatch) -> None:
    env.setenv("https_proxy", "http://lower:3128")
    env.setenv("HTTPS_PROXY", "http://upper:3128")
    env.setenv("no_proxy", "lower.example")
    env.setenv("NO_PROXY", "upper.example")
    settings = Settings.from_environment()
    assert settings.proxy_for("https://registry.example/v2/") == "http://lower:3128"
    assert settings.proxy_for("https://lower.example/v2/") is None
    assert settings.proxy_for("https://upper.example/v2/") == "http://lower:3128"


def test_explicit_proxy_wins_over_environment(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    env.setenv("HTTP_PROXY", "http://env-proxy:3128")
    env.setenv("ALL_PROXY", "http://env-proxy:3128")
    settings = Settings.from_environment(proxy="socks5h://flag-proxy:1080")
    assert settings.proxy_for("https://registry.example/v2/") == "socks5h://flag-proxy:1080"
    assert settings.proxy_for("http://registry.example/v2/") == "socks5h://flag-proxy:1080"
    assert settings.origins["proxy"] == "--proxy"


def test_config_file_proxy(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "imgpull.toml"
    config.write_text('proxy = "http://file-proxy:3128"\n')
    settings = Settings.from_environment(config_file=config)
    assert settings.proxy_for("https://registry.example/v2/") == "http://file-proxy:3128"
    assert settings.proxy_for("http://registry.example/v2/") == "http://file-proxy:3128"
    assert settings.origins["proxy"] == str(config)
    flagged = Settings.from_environment(config_file=config, proxy="http://flag:1")
    assert flagged.proxy_for("https://registry.example/v2/") == "http://flag:1"
    assert flagged.origins["proxy"] == "--proxy"


def test_environment_proxy_wins_over_config_file(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "imgpull.toml"
    config.write_text('proxy = "http://file-proxy:3128"\n')
    env.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    settings = Settings.from_environment(config_file=config)
    assert settings.proxy_for("https://registry.example/v2/") == "http://env-proxy:3128"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5000/v2/",
        "https://127.0.0.1:5000/v2/",
        "http://127.9.8.7/v2/",
        "http://localhost:5000/v2/",
        "https://LOCALHOST/v2/",
        pytest.param(
            "http://[::1]:5000/v2/",
        ),
    ],
)
def test_loopback_is_never_proxied(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    env.setenv("HTTP_PROXY", "http://env-proxy:3128")
    env.setenv("ALL_PROXY", "http://env-proxy:3128")
    assert Settings.from_environment().proxy_for(url) is None
    assert Settings.from_environment(proxy="http://flag-proxy:3128").proxy_for(url) is None


def test_no_proxy_applies_to_explicit_proxy_too(env: pytest.MonkeyPatch) -> None:
    env.setenv("NO_PROXY", "internal.corp,10.0.0.0/8")
    settings = Settings.from_environment(proxy="http://flag-proxy:3128")
    assert settings.proxy_for("https://registry.internal.corp/v2/") is None
    assert settings.proxy_for("https://10.4.5.6:5000/v2/") is None
    assert settings.proxy_for("https://registry.example/v2/") == "http://flag-proxy:3128"


def test_no_proxy_port_entry(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    env.setenv("NO_PROXY", "registry.corp:5000")
    settings = Settings.from_environment()
    assert settings.proxy_for("https://registry.corp:5000/v2/") is None
    assert settings.proxy_for("https://registry.corp:5001/v2/") == "http://env-proxy:3128"


def test_no_proxy_port_entry_matches_default_port(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTPS_PROXY", "http://env-proxy:3128")
    env.setenv("NO_PROXY", "registry.corp:443")
    settings = Settings.from_environment()
    assert settings.proxy_for("https://registry.corp/v2/") is None


def test_no_proxy_from_config_file_and_environment(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "imgpull.toml"
    config.write_text('proxy = "http://file-proxy:3128"\nno_proxy = ["a.corp", "b.corp"]\n')
    settings = Settings.from_environment(config_file=config)
    assert settings.proxy_for("https://x.a.corp/v2/") is None
    assert settings.proxy_for("https://b.corp/v2/") is None
    assert settings.proxy_for("https://c.corp/v2/") == "http://file-proxy:3128"
    assert settings.origins["no_proxy"] == str(config)
    # NO_PROXY in the environment replaces the file's list.
    env.setenv("NO_PROXY", "c.corp")
    settings = Settings.from_environment(config_file=config)
    assert settings.proxy_for("https://a.corp/v2/") == "http://file-proxy:3128"
    assert settings.proxy_for("https://c.corp/v2/") is None
    assert settings.origins["no_proxy"] == "NO_PROXY"


@pytest.mark.parametrize("bad", ["ftp://proxy:21", "notaurl", "http://", "socks4://proxy:1080"])
def test_invalid_proxy_is_a_config_error(env: pytest.MonkeyPatch, bad: str) -> None:
    with pytest.raises(ConfigError, match="invalid proxy"):
        Settings.from_environment(proxy=bad)


def test_invalid_env_proxy_is_a_config_error_naming_the_variable(
    env: pytest.MonkeyPatch,
) -> None:
    env.setenv("HTTPS_PROXY", "ftp://user:secret@proxy:21")
    with pytest.raises(ConfigError) as caught:
        Settings.from_environment()
    assert "HTTPS_PROXY" in caught.value.message
    assert "secret" not in caught.value.message


# -- redact_proxy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://proxy:3128", "http://proxy:3128"),
        ("socks5h://127.0.0.1:1080", "socks5h://127.0.0.1:1080"),
        ("http://user:secret@proxy:3128", "http://user:***@proxy:3128"),
        ("socks5h://user:secret@127.0.0.1:1080", "socks5h://user:***@127.0.0.1:1080"),
        ("http://user@proxy:3128", "http://user@proxy:3128"),  # no password to hide
        ("http://user:@proxy:3128", "http://user:***@proxy:3128"),
        ("http://user:p%40ss@proxy:3128/", "http://user:***@proxy:3128/"),
        ("https://user:secret@[::1]:3128", "https://user:***@[::1]:3128"),
    ],
)
def test_redact_proxy(url: str, expected: str) -> None:
    assert redact_proxy(url) == expected


# -- Mirror.parse ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "prefix", "scheme"),
    [
        ("https://m.daocloud.io/docker.io", "m.daocloud.io", "docker.io/", "https"),
        ("https://m.daocloud.io/docker.io/", "m.daocloud.io", "docker.io/", "https"),
        ("https://m.daocloud.io/docker.io//", "m.daocloud.io", "docker.io/", "https"),
        ("mirror.example:5000", "mirror.example:5000", "", None),
        ("mirror.example", "mirror.example", "", None),
        ("mirror.example/", "mirror.example", "", None),
        ("http://127.0.0.1:5000", "127.0.0.1:5000", "", "http"),
        ("https://mirror.example/", "mirror.example", "", "https"),
        ("https://mirror.example//", "mirror.example", "", "https"),
        ("https://mirror.example/v2", "mirror.example", "", "https"),
        ("https://mirror.example/v2/", "mirror.example", "", "https"),
        ("https://mirror.example/docker.io/v2/", "mirror.example", "docker.io/", "https"),
        ("https://mirror.example/a/b/c", "mirror.example", "a/b/c/", "https"),
        ("https://Mirror.EXAMPLE:443", "mirror.example:443", "", "https"),
        ("  https://mirror.example  ", "mirror.example", "", "https"),
        ("https://[::1]:5000/pfx", "[::1]:5000", "pfx/", "https"),
    ],
)
def test_mirror_parse(text: str, host: str, prefix: str, scheme: str | None) -> None:
    mirror = Mirror.parse(text, "test")
    assert (mirror.host, mirror.prefix, mirror.scheme) == (host, prefix, scheme)
    assert mirror.source == "test"
    assert not mirror.insecure


def test_mirror_str_round_trips() -> None:
    assert str(Mirror.parse("https://m.daocloud.io/docker.io/", "x")) == (
        "https://m.daocloud.io/docker.io"
    )
    assert str(Mirror.parse("mirror.example:5000", "x")) == "https://mirror.example:5000"
    assert str(Mirror.parse("http://127.0.0.1:5000/", "x")) == "http://127.0.0.1:5000"


def test_mirror_parse_insecure_flag() -> None:
    assert Mirror.parse("mirror.example", "x", insecure=True).insecure


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "ftp://mirror.example",
        "socks5://mirror.example",
        "https://",
        "https:///docker.io",
        "https://user:pw@mirror.example",
        "https://user@mirror.example",
        "https://mirror.example/path?x=1",
        "https://mirror.example/#frag",
    ],
)
def test_mirror_parse_rejects(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Mirror.parse(bad, "the-source")
    assert "the-source" in caught.value.message


@pytest.mark.parametrize("bad", ["https://mirror.example:abc", "https://mirror .example"])
def test_mirror_parse_rejects_malformed_host(bad: str) -> None:
    with pytest.raises(ConfigError):
        Mirror.parse(bad, "the-source")


# -- Settings.endpoints -------------------------------------------------------------------------


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imgpull.toml"
    path.write_text(text)
    return path


def test_endpoints_without_mirrors(fresh_env: FreshEnv) -> None:
    settings = Settings.from_environment()
    [hub] = settings.endpoints(DOCKER_HUB)
    assert (hub.name, hub.api_host, hub.schemes, hub.mirror_of) == (
        DOCKER_HUB,
        DOCKER_HUB_API,
        ("https",),
        None,
    )
    assert hub.label == DOCKER_HUB
    [local] = settings.endpoints("127.0.0.1:5000")
    assert local.schemes == ("http", "https")  # loopback may be plain HTTP (asked first)
    [remote] = settings.endpoints("registry.example:5000")
    assert remote.schemes == ("https",)


def test_endpoints_mirrors_then_upstream(fresh_env: FreshEnv) -> None:
    mirrors = (
        Mirror.parse("https://m1.example", "--mirror"),
        Mirror.parse("http://127.0.0.1:5001/docker.io", "--mirror"),
        Mirror.parse("m3.example:5000", "--mirror"),
    )
    settings = Settings.from_environment(mirrors={DOCKER_HUB: mirrors})
    hosts = settings.endpoints(DOCKER_HUB)
    assert [h.api_host for h in hosts] == [
        "m1.example",
        "127.0.0.1:5001",
        "m3.example:5000",
        DOCKER_HUB_API,
    ]
    assert [h.mirror_of for h in hosts] == [DOCKER_HUB, DOCKER_HUB, DOCKER_HUB, None]
    assert [h.schemes for h in hosts] == [("https",), ("http",), ("https",), ("https",)]
    assert hosts[1].prefix == "docker.io/"
    assert hosts[1].repository("library/hello") == "docker.io/library/hello"
    assert hosts[0].repository("library/hello") == "library/hello"
    assert [h.label for h in hosts] == [
        "m1.example",
        "127.0.0.1:5001/docker.io",
        "m3.example:5000",
        DOCKER_HUB,
    ]
    # Other registries are untouched.
    assert [h.api_host for h in settings.endpoints("quay.io")] == ["quay.io"]


def test_endpoints_mirror_only(fresh_env: FreshEnv, tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        '[registries."docker.io"]\nmirrors = ["https://m1.example", "https://m2.example"]\n'
        "mirror_only = true\n",
    )
    settings = Settings.from_environment(config_file=config)
    assert [h.api_host for h in settings.endpoints(DOCKER_HUB)] == ["m1.example", "m2.example"]
    assert settings.mirrors_for(DOCKER_HUB)[0].source == str(config)


def test_mirror_only_without_mirrors_keeps_the_registry(
    fresh_env: FreshEnv, tmp_path: Path
) -> None:
    config = _config(tmp_path, '[registries."quay.io"]\nmirror_only = true\n')
    settings = Settings.from_environment(config_file=config)
    assert [h.api_host for h in settings.endpoints("quay.io")] == ["quay.io"]


def test_blocked_registry_raises(fresh_env: FreshEnv) -> None:
    conf = fresh_env.root / "registries.conf"
    conf.write_text('[[registry]]\nprefix = "quay.io"\nlocation = "quay.io"\nblocked = true\n')
    settings = Settings.from_environment()
    with pytest.raises(ConfigError) as caught:
        settings.endpoints("quay.io")
    assert "quay.io" in caught.value.message
    assert str(conf) in caught.value.message
    assert [h.api_host for h in settings.endpoints("ghcr.io")] == ["ghcr.io"]


def test_flag_mirrors_replace_config_mirrors(fresh_env: FreshEnv, tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        '[registries."docker.io"]\nmirrors = ["https://from-file.example"]\n'
        '[registries."quay.io"]\nmirrors = ["https://quay-mirror.example"]\n',
    )
    flag = Mirror.parse("https://from-flag.example", "--mirror")
    settings = Settings.from_environment(config_file=config, mirrors={DOCKER_HUB: (flag,)})
    assert [h.api_host for h in settings.endpoints(DOCKER_HUB)] == [
        "from-flag.example",
        DOCKER_HUB_API,
    ]
    # Only for that registry: the file's mirrors of other registries stay.
    assert [h.api_host for h in settings.endpoints("quay.io")] == [
        "quay-mirror.example",
        "quay.io",
    ]


def test_flag_mirrors_obey_config_mirror_only(fresh_env: FreshEnv, tmp_path: Path) -> None:
    config = _config(tmp_path, '[registries."docker.io"]\nmirror_only = true\n')
    flag = Mirror.parse("https://from-flag.example", "--mirror")
    settings = Settings.from_environment(config_file=config, mirrors={DOCKER_HUB: (flag,)})
    assert [h.api_host for h in settings.endpoints(DOCKER_HUB)] == ["from-flag.example"]


def test_config_file_mirror_wins_over_registries_conf_and_daemon_json(
    fresh_env: FreshEnv, tmp_path: Path
) -> None:
    (fresh_env.root / "daemon.json").write_text(
        '{"registry-mirrors": ["https://daemon-mirror.example"]}'
    )
    assert [h.api_host for h in Settings.from_environment().endpoints(DOCKER_HUB)] == [
        "daemon-mirror.example",
        DOCKER_HUB_API,
    ]
    (fresh_env.root / "registries.conf").write_text(
        '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
        '[[registry.mirror]]\nlocation = "conf-mirror.example"\n'
    )
    assert [h.api_host for h in Settings.from_environment().endpoints(DOCKER_HUB)] == [
        "conf-mirror.example",
        DOCKER_HUB_API,
    ]
    config = _config(tmp_path, '[registries."docker.io"]\nmirrors = ["https://own.example"]\n')
    settings = Settings.from_environment(config_file=config)
    assert [h.api_host for h in settings.endpoints(DOCKER_HUB)] == [
        "own.example",
        DOCKER_HUB_API,
    ]
    assert [status for _, status in settings.files] == ["read", "read", "read"]


def test_registries_conf_location_makes_the_registry_a_required_mirror(
    fresh_env: FreshEnv,
) -> None:
    (fresh_env.root / "registries.conf").write_text(
        '[[registry]]\nprefix = "docker.io"\nlocation = "internal.example/hub"\n'
    )
    hosts = Settings.from_environment().endpoints(DOCKER_HUB)
    assert [(h.api_host, h.prefix) for h in hosts] == [("internal.example", "hub/")]


def test_mirror_insecure_allows_plain_http(fresh_env: FreshEnv) -> None:
    settings = Settings.from_environment(
        mirrors={
            DOCKER_HUB: (
                Mirror.parse("mirror.example:5000", "x", insecure=True),
                Mirror.parse("https://other.example", "x"),
            )
        },
        insecure_registries=frozenset({"other.example"}),
    )
    first, second, _ = settings.endpoints(DOCKER_HUB)
    assert first.schemes == ("https", "http")
    assert not first.tls.verify
    assert second.schemes == ("https", "http")  # --insecure-registry names the mirror host
    assert not second.tls.verify


def test_mirror_uses_certs_d_of_its_own_host(fresh_env: FreshEnv) -> None:
    certs = fresh_env.root / "certs.d"
    (certs / "mirror.example:5000").mkdir(parents=True)
    ca = certs / "mirror.example:5000" / "ca.crt"
    ca.write_text("not parsed here\n")
    settings = Settings.from_environment(
        mirrors={DOCKER_HUB: (Mirror.parse("https://mirror.example:5000", "--mirror"),)}
    )
    mirror, hub = settings.endpoints(DOCKER_HUB)
    assert ca in mirror.tls.ca_certs
    assert ca not in hub.tls.ca_certs


def test_flag_credentials_are_never_sent_to_mirrors(fresh_env: FreshEnv) -> None:
    settings = Settings.from_environment(
        username="alice",
        password="wonderland-secret",
        mirrors={DOCKER_HUB: (Mirror.parse("https://mirror.example", "--mirror"),)},
    )
    session = Session(settings)
    try:
        mirror, hub = settings.endpoints(DOCKER_HUB)
        assert session.client_for(mirror).auth.credentials is None
        upstream = session.client_for(hub).auth.credentials
        assert upstream is not None
        assert (upstream.username, upstream.password) == ("alice", "wonderland-secret")
    finally:
        session.close()


def test_mirror_gets_config_json_credentials_of_its_own_host(fresh_env: FreshEnv) -> None:
    fresh_env.docker_login("mirror.example", "mirror-user", "mirror-pass")
    settings = Settings.from_environment(
        username="alice",
        password="wonderland-secret",
        mirrors={DOCKER_HUB: (Mirror.parse("https://mirror.example", "--mirror"),)},
    )
    session = Session(settings)
    try:
        mirror, _ = settings.endpoints(DOCKER_HUB)
        found = session.client_for(mirror).auth.credentials
        assert found is not None
        assert (found.username, found.password) == ("mirror-user", "mirror-pass")
    finally:
        session.close()


# -- TLS per registry ---------------------------------------------------------------------------


def test_certs_d_client_certificate_needs_its_key(fresh_env: FreshEnv) -> None:
    directory = fresh_env.root / "certs.d" / "registry.example"
    directory.mkdir(parents=True)
    (directory / "client.cert").write_text("x")
    with pytest.raises(ConfigError, match=r"client\.key"):
        Settings.from_environment().tls_for_registry("registry.example")
    (directory / "client.key").write_text("x")
    tls = Settings.from_environment().tls_for_registry("registry.example")
    assert tls.client_cert == (directory / "client.cert", directory / "client.key")


def test_insecure_registries_by_cidr_from_daemon_json(fresh_env: FreshEnv) -> None:
    (fresh_env.root / "daemon.json").write_text(
        '{"insecure-registries": ["10.0.0.0/8", "registry.corp:5000"]}'
    )
    settings = Settings.from_environment()
    assert settings.is_insecure("10.1.2.3:5000")
    assert settings.is_insecure("10.1.2.3")
    assert not settings.is_insecure("11.1.2.3:5000")
    assert settings.is_insecure("registry.corp:5000")
    assert not settings.is_insecure("registry.corp")
    assert settings.registry_host("10.1.2.3:5000").schemes == ("https", "http")


def test_registries_conf_insecure_applies_to_the_location(fresh_env: FreshEnv) -> None:
    (fresh_env.root / "registries.conf").write_text(
        '[[registry]]\nprefix = "docker.io"\nlocation = "internal.example:5000"\ninsecure = true\n'
    )
    [host] = Settings.from_environment().endpoints(DOCKER_HUB)
    assert host.api_host == "internal.example:5000"
    assert host.schemes == ("https", "http")
    assert not host.tls.verify
