"""Tests for imgpull.naming: the one location grammar, the renaming rules, destinations
and safe archive file names."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgpull.errors import ConfigError
from imgpull.naming import (
    Location,
    Mirror,
    Renamer,
    destination_for,
    has_registry_host,
    safe_filename,
)
from imgpull.reference import Reference, parse_reference, parse_repository

SHA_DB = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
REPO = "registry.aliyuncs.com/google_containers"


# --------------------------------------------------------------------------- one grammar


@pytest.mark.parametrize(
    ("text", "host", "prefix", "scheme"),
    [
        ("m.daocloud.io/docker.io", "m.daocloud.io", "docker.io", None),
        ("https://m.daocloud.io/docker.io/", "m.daocloud.io", "docker.io", "https"),
        ("http://Registry.Local:5000", "registry.local:5000", "", "http"),
        ("registry.local:5000/v2/", "registry.local:5000", "", None),
        ("https://mirror.example/docker.io/v2", "mirror.example", "docker.io", "https"),
        ("[::1]:5000/a/b", "[::1]:5000", "a/b", None),
        ("  quay.mirrors.ustc.edu.cn  ", "quay.mirrors.ustc.edu.cn", "", None),
    ],
)
def test_location_grammar(text: str, host: str, prefix: str, scheme: str | None) -> None:
    location = Location.parse(text, "mirror")
    assert (location.host, location.prefix, location.scheme) == (host, prefix, scheme)
    # The same text means the same place for a pull mirror and for renaming.
    mirror = Mirror.parse(text, "--mirror")
    assert (mirror.host, mirror.prefix.rstrip("/"), mirror.scheme) == (host, prefix, scheme)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("ftp://m.example", "only http:// and https://"),
        ("https://user@m.example", "invalid"),
        ("m.example/x?y=1", "invalid"),
        ("m.example:99999", "invalid"),
        ("m .example", "invalid"),
    ],
)
def test_location_grammar_refuses(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Location.parse(text, "mirror")


def test_renaming_locations_must_read_as_registries() -> None:
    # A pull mirror may be any host; a renamed reference needs a registry Docker sees.
    assert Mirror.parse("https://mirror", "x").host == "mirror"
    with pytest.raises(ConfigError, match='"mirror" is not a registry host'):
        Location.parse("https://mirror/x", "target prefix", for_reference=True)
    with pytest.raises(ConfigError, match="invalid target prefix"):
        Location.parse("registry.local/Upper", "target prefix", for_reference=True)
    assert Location.parse("index.docker.io/hub", "x", for_reference=True).name == "docker.io/hub"


def test_mirror_errors_name_their_source() -> None:
    with pytest.raises(ConfigError, match=r"in config\.toml$"):
        Mirror.parse("ftp://m.example", "config.toml")
    with pytest.raises(ConfigError, match=r"empty mirror URL in config\.toml"):
        Mirror.parse(" ", "config.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("quay.io/a/b:1", True),
        ("localhost/a", True),
        ("registry:5000/a", True),
        ("[::1]:5000/a", True),
        ("nginx:1.27", False),
        ("library/nginx", False),
        ("quay.io", False),
    ],
)
def test_has_registry_host(text: str, expected: bool) -> None:
    assert has_registry_host(text) is expected


# --------------------------------------------------------------------------- the three rules


def mapped(renamer: Renamer, text: str) -> str | None:
    result = renamer.map(parse_reference(text))
    return None if result is None else str(result)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # A mirror keeps every repository path.
        ("registry.k8s.io/coredns/coredns:v1.11.3", "k8s.m.daocloud.io/coredns/coredns:v1.11.3"),
        ("registry.k8s.io/kube-apiserver:v1.31.0", "k8s.m.daocloud.io/kube-apiserver:v1.31.0"),
        ("registry.k8s.io/ingress-nginx/controller:v1.11.1",
         "k8s.m.daocloud.io/ingress-nginx/controller:v1.11.1"),
        ("nginx:1.27", "m.daocloud.io/docker.io/library/nginx:1.27"),
        ("quay.io/a/b:1", None),
    ],
)  # fmt: skip
def test_mirror_rule(image: str, expected: str | None) -> None:
    renamer = Renamer(
        mirrors=["registry.k8s.io=k8s.m.daocloud.io", "docker.io=https://m.daocloud.io/docker.io"]
    )
    assert mapped(renamer, image) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.k8s.io/kube-apiserver:v1.31.0", f"{REPO}/kube-apiserver:v1.31.0"),
        ("registry.k8s.io/coredns/coredns:v1.11.3", f"{REPO}/coredns:v1.11.3"),
        ("k8s.gcr.io/coredns/coredns:v1.8.6", f"{REPO}/coredns:v1.8.6"),
        ("registry.k8s.io/etcd:3.5.15-0", f"{REPO}/etcd:3.5.15-0"),
        ("registry.k8s.io/pause:3.10", f"{REPO}/pause:3.10"),
        ("registry.k8s.io/ingress-nginx/controller:v1.11.1",
         f"{REPO}/ingress-nginx/controller:v1.11.1"),
        # Other registries: the mirror rules, if any.
        ("quay.io/a/b:1", "quay.mirrors.ustc.edu.cn/a/b:1"),
        ("nginx:1.27", None),
        (f"{REPO}/coredns:v1.11.3", None),
    ],
)  # fmt: skip
def test_image_repository_rule(image: str, expected: str | None) -> None:
    renamer = Renamer(mirrors={"quay.io": "quay.mirrors.ustc.edu.cn"}, image_repository=REPO)
    assert mapped(renamer, image) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.k8s.io/kube-apiserver:v1.31.0",
         "registry.local:5000/mirror/kube-apiserver:v1.31.0"),
        ("registry.k8s.io/coredns/coredns:v1.11.3", "registry.local:5000/mirror/coredns:v1.11.3"),
        ("registry.k8s.io/ingress-nginx/controller:v1.11.1",
         "registry.local:5000/mirror/ingress-nginx/controller:v1.11.1"),
        ("nginx:1.27", "registry.local:5000/mirror/library/nginx:1.27"),
        ("quay.io/org/app:v1", "registry.local:5000/mirror/org/app:v1"),
        (f"quay.io/org/app@{SHA_DB}", f"registry.local:5000/mirror/org/app@{SHA_DB}"),
        ("registry.local:5000/mirror/org/app:v1", None),
    ],
)  # fmt: skip
def test_to_rule(image: str, expected: str | None) -> None:
    assert mapped(Renamer(to="registry.local:5000/mirror"), image) == expected


def test_rules_combine_in_order() -> None:
    renamer = Renamer(
        mirrors={"quay.io": "q.local"}, image_repository=REPO, to="registry.local:5000/all"
    )
    assert mapped(renamer, "quay.io/a/b:1") == "q.local/a/b:1"
    assert mapped(renamer, "registry.k8s.io/coredns/coredns:v1") == f"{REPO}/coredns:v1"
    assert mapped(renamer, "ghcr.io/a/b:1") == "registry.local:5000/all/a/b:1"
    assert renamer.source_registries == {"quay.io", "registry.k8s.io", "k8s.gcr.io"}
    assert not Renamer()
    assert Renamer(to="r.local")


def test_ambiguous_or_repeated_rules_are_refused() -> None:
    with pytest.raises(ConfigError, match="both rename Kubernetes"):
        Renamer(mirrors={"registry.k8s.io": "m.local"}, image_repository=REPO)
    with pytest.raises(ConfigError, match="more than once"):
        Renamer(mirrors={"docker.io": "a.local", "index.docker.io": "b.local"})
    with pytest.raises(ConfigError, match="invalid image repository"):
        Renamer(image_repository="google_containers")


# --------------------------------------------------------------------------- destinations


def test_destination_for_push_and_copy() -> None:
    coredns = parse_reference("registry.k8s.io/coredns/coredns:v1.11.3")
    assert str(destination_for(coredns, "registry.local:5000/mirror", several=True)) == (
        "registry.local:5000/mirror/coredns:v1.11.3"
    )
    assert (
        str(
            destination_for(
                coredns, "registry.local:5000/mirror", several=True, image_repository=REPO
            )
        )
        == f"{REPO}/coredns:v1.11.3"
    )
    nginx = parse_reference("nginx:1.27")
    assert str(destination_for(nginx, "r.local/team/app:v2", several=False)) == (
        "r.local/team/app:v2"
    )
    with pytest.raises(ConfigError, match="names one image"):
        destination_for(nginx, "r.local/team/app:v2", several=True)
    there = parse_reference("r.local/m/library/nginx:1.27")
    assert destination_for(there, "r.local/m", several=True) == there


# --------------------------------------------------------------------------- file names


@pytest.mark.parametrize(
    ("text", "filename"),
    [
        ("nginx:1.27", "nginx_1.27.tar"),
        ("nginx", "nginx_latest.tar"),
        ("quay.io/org/app:v1", "quay.io_org_app_v1.tar"),
        ("nginx@" + SHA_DB, "nginx_sha256-dbcc1c35ac38.tar"),
        ("nginx:1.27@" + SHA_DB, "nginx_1.27.tar"),
        ("127.0.0.1:5000/team/app:1", "127.0.0.1_5000_team_app_1.tar"),
        ("[::1]:5000/foo:bar", "1_5000_foo_bar.tar"),
        ("Foo/bar", "Foo_bar_latest.tar"),
        ("user/app:_x", "user_app__x.tar"),
    ],
)
def test_safe_filename(text: str, filename: str) -> None:
    assert safe_filename(parse_reference(text)) == filename


def test_safe_filename_avoids_windows_devices_and_long_names() -> None:
    assert safe_filename(parse_repository("con")) == "con_.tar"
    assert safe_filename(parse_repository("nul.x")) == "nul_.x.tar"
    assert safe_filename(parse_repository("lpt1")) == "lpt1_.tar"
    assert safe_filename(parse_reference("con")) == "con_latest.tar"
    long_a = safe_filename(parse_reference("example.com/" + "a" * 255 + ":tag"))
    long_b = safe_filename(parse_reference("example.com/" + "a" * 255 + ":tag2"))
    assert len(long_a) <= 204 and len(long_b) <= 204
    assert long_a != long_b


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.tar")
COMPONENT = st.from_regex(r"[a-z0-9]{1,8}(?:(?:[._]|__|-+)[a-z0-9]{1,8}){0,2}", fullmatch=True)


@st.composite
def references(draw: st.DrawFn) -> Reference:
    registry = draw(
        st.sampled_from(["docker.io", "quay.io", "localhost:5000", "[::1]:5000", "Con", "NUL.io"])
    )
    path = "/".join(draw(st.lists(COMPONENT, min_size=1, max_size=40)))[:255].strip("._-/")
    tag = draw(st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True))
    return Reference(registry, path or "x", tag)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(references())
def test_safe_filename_is_always_safe(ref: Reference) -> None:
    for candidate in (ref, dataclasses.replace(ref, tag=None)):
        name = safe_filename(candidate)
        assert SAFE_NAME.fullmatch(name), name
        assert "/" not in name and "\\" not in name and not name.startswith("..")
        assert len(name) <= 204
        assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}
