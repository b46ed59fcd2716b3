"""Tests for imgpull.reference: Docker's own test tables, API details and properties.

Most table rows come from distribution/reference (reference_test.go, normalize_test.go,
regexp_test.go), which is what docker, containerd and buildkit use to parse references.
The property tests also compare against ``docker_parse_normalized`` below, a line-by-line
transcription of that Go code, so behaviour differences other than the documented
deviations show up as failures.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from imgpull.digest import Digest
from imgpull.errors import InvalidReferenceError
from imgpull.naming import safe_filename
from imgpull.reference import (
    DOCKER_HUB,
    DOCKER_HUB_API,
    Reference,
    is_loopback_host,
    normalize_registry,
    parse_reference,
    parse_repository,
)

SHA_F = "sha256:" + "f" * 64
SHA_DB = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHA512_F = "sha512:" + "f" * 128
FORM = "[registry[:port]/]name[:tag][@sha256:digest]"

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fields(ref: Reference) -> tuple[str, str, str | None, str | None]:
    return ref.registry, ref.repository, ref.tag, None if ref.digest is None else str(ref.digest)


# --------------------------------------------------------------------------------------
# Docker's tables: valid references
# --------------------------------------------------------------------------------------

# input, registry, repository, tag, digest
VALID = [
    # the brief's cases
    ("nginx", "docker.io", "library/nginx", "latest", None),
    ("nginx:1.27", "docker.io", "library/nginx", "1.27", None),
    ("localhost:5000/foo", "localhost:5000", "foo", "latest", None),
    ("localhost/foo", "localhost", "foo", "latest", None),
    ("[::1]:5000/foo:bar", "[::1]:5000", "foo", "bar", None),
    ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
    ("index.docker.io/library/nginx", "docker.io", "library/nginx", "latest", None),
    ("index.docker.io/nginx", "docker.io", "library/nginx", "latest", None),
    ("Foo/bar", "Foo", "bar", "latest", None),  # uppercase first component = registry
    ("FOO/bar", "FOO", "bar", "latest", None),
    ("127.0.0.1:5000/team/app:1", "127.0.0.1:5000", "team/app", "1", None),
    ("quay.io/org/app:v1", "quay.io", "org/app", "v1", None),
    (
        "registry.k8s.io/coredns/coredns:v1.11.1",
        "registry.k8s.io",
        "coredns/coredns",
        "v1.11.1",
        None,
    ),
    # TestValidateReferenceName
    ("docker/docker", "docker.io", "docker/docker", "latest", None),
    ("library/debian", "docker.io", "library/debian", "latest", None),
    ("debian", "docker.io", "library/debian", "latest", None),
    ("docker.io/docker/docker", "docker.io", "docker/docker", "latest", None),
    ("docker.io/library/debian", "docker.io", "library/debian", "latest", None),
    ("index.docker.io/docker/docker", "docker.io", "docker/docker", "latest", None),
    ("127.0.0.1:5000/docker/docker", "127.0.0.1:5000", "docker/docker", "latest", None),
    ("127.0.0.1:5000/library/debian", "127.0.0.1:5000", "library/debian", "latest", None),
    ("127.0.0.1:5000/debian", "127.0.0.1:5000", "debian", "latest", None),
    ("192.168.0.1", "docker.io", "library/192.168.0.1", "latest", None),
    ("192.168.0.1:80", "docker.io", "library/192.168.0.1", "80", None),
    ("192.168.0.1:8/debian", "192.168.0.1:8", "debian", "latest", None),
    ("192.168.0.2:25000/debian", "192.168.0.2:25000", "debian", "latest", None),
    (
        "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "docker.io",
        "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        "latest",
        None,
    ),
    ("[fc00::1]:5000/docker", "[fc00::1]:5000", "docker", "latest", None),
    ("[fc00::1]:5000/docker/docker", "[fc00::1]:5000", "docker/docker", "latest", None),
    (
        "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
        "[fc00:1:2:3:4:5:6:7]:5000",
        "library/debian",
        "latest",
        None,
    ),
    (
        "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "docker.io",
        "library/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
        "latest",
        None,
    ),
    ("Docker/docker", "Docker", "docker", "latest", None),
    ("DOCKER/docker", "DOCKER", "docker", "latest", None),
    # TestValidateRemoteName
    ("docker-rules/docker", "docker.io", "docker-rules/docker", "latest", None),
    ("docker---rules/docker", "docker.io", "docker---rules/docker", "latest", None),
    ("doc/docker", "docker.io", "doc/docker", "latest", None),
    ("d/docker", "docker.io", "d/docker", "latest", None),
    ("jess/t", "docker.io", "jess/t", "latest", None),
    ("dock__er/docker", "docker.io", "dock__er/docker", "latest", None),
    # TestReferenceParse (normalised)
    ("test_com", "docker.io", "library/test_com", "latest", None),
    ("test.com:tag", "docker.io", "library/test.com", "tag", None),
    ("test.com:5000", "docker.io", "library/test.com", "5000", None),
    ("test.com/repo:tag", "test.com", "repo", "tag", None),
    ("test:5000/repo", "test:5000", "repo", "latest", None),
    ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
    ("test:5000/repo@" + SHA_F, "test:5000", "repo", None, SHA_F),
    ("test:5000/repo:tag@" + SHA_F, "test:5000", "repo", "tag", SHA_F),
    ("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", None),
    ("sub-dom1.foo.com/bar/baz/quux", "sub-dom1.foo.com", "bar/baz/quux", "latest", None),
    (
        "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "some-long-tag",
        None,
    ),
    (
        "b.gcr.io/test.example.com/my-app:test.example.com",
        "b.gcr.io",
        "test.example.com/my-app",
        "test.example.com",
        None,
    ),
    ("xn--n3h.com/myimage:xn--n3h.com", "xn--n3h.com", "myimage", "xn--n3h.com", None),
    (
        "xn--7o8h.com/myimage:xn--7o8h.com@" + SHA512_F,
        "xn--7o8h.com",
        "myimage",
        "xn--7o8h.com",
        SHA512_F,
    ),
    ("foo_bar.com:8080", "docker.io", "library/foo_bar.com", "8080", None),
    ("foo/foo_bar.com:8080", "docker.io", "foo/foo_bar.com", "8080", None),
    ("192.168.1.1:tag", "docker.io", "library/192.168.1.1", "tag", None),
    ("192.168.1.1/repo", "192.168.1.1", "repo", "latest", None),
    ("192.168.1.1:5000/repo", "192.168.1.1:5000", "repo", "latest", None),
    ("192.168.1.1:5000/repo:5050", "192.168.1.1:5000", "repo", "5050", None),
    ("[2001:db8::1]/repo", "[2001:db8::1]", "repo", "latest", None),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", "[2001:db8:1:2:3:4:5:6]", "repo", "tag", None),
    ("[2001:db8::1]:5000/repo", "[2001:db8::1]:5000", "repo", "latest", None),
    ("[2001:db8::1]:5000/repo:tag", "[2001:db8::1]:5000", "repo", "tag", None),
    ("[2001:db8::1]:5000/repo@" + SHA_F, "[2001:db8::1]:5000", "repo", None, SHA_F),
    ("[2001:db8::1]:5000/repo:tag@" + SHA_F, "[2001:db8::1]:5000", "repo", "tag", SHA_F),
    ("[2001:db8::]:5000/repo", "[2001:db8::]:5000", "repo", "latest", None),
    ("[::1]:5000/repo", "[::1]:5000", "repo", "latest", None),
    # TestNormalizedSplitHostname / TestParseAnyReference
    ("test_com/foo", "docker.io", "test_com/foo", "latest", None),
    ("docker/migrator", "docker.io", "docker/migrator", "latest", None),
    ("test.com:8080/foo", "test.com:8080", "foo", "latest", None),
    ("test-com:8080/foo", "test-com:8080", "foo", "latest", None),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "latest", None),
    ("docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", None),
    ("redis@" + SHA_DB, "docker.io", "library/redis", None, SHA_DB),
    ("dmcgowan/myapp@" + SHA_DB, "docker.io", "dmcgowan/myapp", None, SHA_DB),
    (
        "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
        "docker.io",
        "library/dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9",
        "latest",
        None,
    ),
    ("dbcc1", "docker.io", "library/dbcc1", "latest", None),
    # TestParseReferenceWithTagAndDigest
    ("busybox:latest@" + SHA_DB, "docker.io", "library/busybox", "latest", SHA_DB),
    # regexp_test.go name and reference tables
    (
        "registry.io/foo/project--id.module--name.ver---sion--name",
        "registry.io",
        "foo/project--id.module--name.ver---sion--name",
        "latest",
        None,
    ),
    (
        "example.com/some_separator__underscore/myimage",
        "example.com",
        "some_separator__underscore/myimage",
        "latest",
        None,
    ),
    ("Asdf.com/foo/bar", "Asdf.com", "foo/bar", "latest", None),
    ("localhost:8080@" + SHA_DB, "docker.io", "library/localhost", "8080", SHA_DB),
    ("localhost@" + SHA_DB, "docker.io", "library/localhost", None, SHA_DB),
    ("localhost:8080/name@" + SHA_DB, "localhost:8080", "name", None, SHA_DB),
    ("localhost:5000", "docker.io", "library/localhost", "5000", None),
    ("registry-1.docker.io/foo", "registry-1.docker.io", "foo", "latest", None),
    (
        "a" + "/a" * 127 + ":tag-puts-this-over-max",
        "docker.io",
        "a" + "/a" * 127,
        "tag-puts-this-over-max",
        None,
    ),
    ("example.com/" + "a" * 255 + ":tag", "example.com", "a" * 255, "tag", None),
    ("x" * 247, "docker.io", "library/" + "x" * 247, "latest", None),  # path is exactly 255
    ("nginx:" + "t" * 128, "docker.io", "library/nginx", "t" * 128, None),
    ("nginx:_under", "docker.io", "library/nginx", "_under", None),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), VALID)
def test_valid(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert fields(ref) == (registry, repository, tag, digest)
    assert Reference.parse(str(ref)) == ref
    assert docker_expectation(text) == (registry, repository, tag, digest)


# --------------------------------------------------------------------------------------
# Docker's tables: invalid references, with the reason we give
# --------------------------------------------------------------------------------------

INVALID = [
    ("", "empty"),
    ("Nginx", "repository name must be lowercase"),
    ("foo/Bar", "repository name must be lowercase"),
    ("Foo/Bar", "repository name must be lowercase"),
    ("a:b:c", 'invalid tag "b:c"'),
    ("foo@sha256:short", 'invalid digest "sha256:short"'),
    (":tag", "repository name is missing"),
    (":justtag", "repository name is missing"),
    ("@" + SHA_F, "repository name is missing"),
    ("repo@sha256:" + "f" * 34, "invalid digest"),
    ("repo@sha256:" + "f" * 40, "invalid digest"),  # matches the grammar, wrong length
    ("repo@sha256:" + "F" * 64, "invalid digest"),  # uppercase hex
    ("validname@invaliddigest:" + "f" * 64, 'unsupported digest algorithm "invaliddigest"'),
    ("Uppercase:tag", "repository name must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "repository name must be lowercase"),
    ("docker.io/docker/Docker", "repository name must be lowercase"),
    ("docker/Docker", "repository name must be lowercase"),
    ("https://github.com/docker/docker", 'remove "https://"'),
    ("-docker", 'invalid repository path component "-docker"'),
    ("-docker/docker", 'invalid repository path component "-docker"'),
    ("-docker.io/docker/docker", '"-docker.io" is not a valid registry host'),
    ("docker///docker", "empty component"),
    ("docker.io/docker///docker", "empty component"),
    ("docker/", "empty component"),
    ("docker-/docker", 'invalid repository path component "docker-"'),
    ("-docker-/docker", "invalid repository path component"),
    ("____/____", "invalid repository path component"),
    ("_docker/_docker", "invalid repository path component"),
    # a first component with a "." is a registry to Docker, so these fail as hosts
    ("dock..er/docker", '"dock..er" is not a valid registry host'),
    ("dock_.er/docker", '"dock_.er" is not a valid registry host'),
    ("dock-.er/docker", '"dock-.er" is not a valid registry host'),
    ("docker/dock..er", 'invalid repository path component "dock..er"'),
    ("[fc00::1]", "IPv6 registry must be followed by /repository"),
    ("[fc00::1]:5000", "IPv6 registry must be followed by /repository"),
    ("[2001:db8::1]:tag", "IPv6 registry must be followed by /repository"),
    ("fc00::1:5000/debian", "not a valid registry host"),
    ("[fe80::1%eth0]:5000/debian", "not a valid registry host"),
    ("[fe80::1%@invalidzone]:5000/repo", "not a valid registry host"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "not a valid registry host"),
    ("1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a", "image ID"),
    ("aa/asdf$$^/aa", 'invalid repository path component "asdf$$^"'),
    ("registry.com:8080/myapp:invalid~tag", 'invalid tag "invalid~tag"'),
    ("bad_hostname.com:8080/myapp:tag", '"bad_hostname.com:8080" is not a valid registry host'),
    ("localhost:http/name@" + SHA_DB, '"localhost:http" is not a valid registry host'),
    ("registry.com:8080/myapp@bad", 'invalid digest "bad"'),
    ("registry.com:8080/myapp@2bad", 'invalid digest "2bad"'),
    ("test.com:http/bar", "not a valid registry host"),
    ("foo.com/", "repository name is missing"),
    ("a/a/a/a/", "empty component"),
    ("a//a/a", "empty component"),
    ("a^a", "invalid repository path component"),
    ("foo/-bar", "invalid repository path component"),
    ("example.com/__underscore/myimage", "invalid repository path component"),
    ("example.com/.dots/myimage", "invalid repository path component"),
    ("docker./docker", '"docker." is not a valid registry host'),
    (".docker/docker", '".docker" is not a valid registry host'),
    ("nginx:", "tag after ':' is empty"),
    ("nginx@", "digest after '@' is empty"),
    ("nginx:-bad", 'invalid tag "-bad"'),
    ("nginx:.bad", 'invalid tag ".bad"'),
    ("nginx:" + "t" * 129, "invalid tag"),
    ("nginx:1.27 ", "whitespace"),
    (" nginx", "whitespace"),
    ("nginx\n", "whitespace"),
    ("nginx@md5:" + "f" * 32, 'unsupported digest algorithm "md5"'),
    ("nginx@SHA256:" + "f" * 64, "invalid digest"),
    ("nginx:1@" + SHA_F + "@" + SHA_F, "invalid digest"),
    # lengths: Docker counts the normalised path, not the registry
    ("x" * 248, "must not be more than 255 characters"),  # library/ + 248 = 256
    ("domain/" + "a" * 256 + ":tag", "must not be more than 255 characters"),
    ("a/" * 128 + "a", "must not be more than 255 characters"),
    ("example.com/" + "a" * 256, "must not be more than 255 characters"),
    # deliberate deviations (Docker parses these but can never pull them)
    ("foo_bar.com/app", '"foo_bar.com" is not a valid registry host'),
    ("x.io:70000/a", "port 70000 is out of range"),
    ("x.io:0/a", "port 0 is out of range"),
    ("192.168.1.1:750050/a", "out of range"),
    ("[fd00123123123]:5000/a", "not a valid IPv6 address"),
    ("a" * 5000, "too long"),
]


@pytest.mark.parametrize(("text", "reason"), INVALID)
def test_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    error = caught.value
    assert reason in error.message
    assert error.message.startswith('invalid reference "')
    assert "\n" not in error.message
    assert "\n" not in error.hint
    assert error.hint
    assert str(error) == error.message


def test_invalid_rows_that_docker_also_rejects() -> None:
    deviations = {
        "foo_bar.com/app",
        "x.io:70000/a",
        "x.io:0/a",
        "192.168.1.1:750050/a",
        "[fd00123123123]:5000/a",
        "a" * 5000,
    }
    for text, _ in INVALID:
        if text not in deviations:
            assert docker_parse_normalized(text) is None, text
    # ... and Docker itself accepts the deviations, which we refuse on purpose
    assert docker_parse_normalized("foo_bar.com/app") == ("", "foo_bar.com/app", None, None)
    assert docker_parse_normalized("x.io:70000/a") == ("x.io:70000", "a", None, None)


def test_error_names_the_input_and_shows_the_form() -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference("foo@sha256:short")
    assert (
        caught.value.message
        == 'invalid reference "foo@sha256:short": invalid digest "sha256:short"'
    )
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(":tag")
    assert FORM in caught.value.hint and "nginx:1.27" in caught.value.hint


def test_lowercase_error_suggests_the_fix() -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference("Nginx")
    assert caught.value.message == 'invalid reference "Nginx": repository name must be lowercase'
    assert '"nginx"' in caught.value.hint
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference("quay.io/Org/App:V1")
    assert '"quay.io/org/app:V1"' in caught.value.hint  # tags may be uppercase


def test_error_message_stays_one_short_line() -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference("a\u2028b\x00c\rd" + "x" * 1000)
    message = caught.value.message
    assert message.isprintable()
    assert len(message) < 300


# --------------------------------------------------------------------------------------
# Names: TestParseRepositoryInfo (familiar, full and ambiguous spellings)
# --------------------------------------------------------------------------------------

# remote name, familiar name, full name, ambiguous spelling, domain
REPOSITORY_INFO = [
    ("fooo/bar", "fooo/bar", "docker.io/fooo/bar", "index.docker.io/fooo/bar", "docker.io"),
    ("library/ubuntu", "ubuntu", "docker.io/library/ubuntu", "library/ubuntu", "docker.io"),
    ("nonlibrary/ubuntu", "nonlibrary/ubuntu", "docker.io/nonlibrary/ubuntu", "", "docker.io"),
    ("other/library", "other/library", "docker.io/other/library", "", "docker.io"),
    (
        "private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        "127.0.0.1:8000/private/moonbase",
        "",
        "127.0.0.1:8000",
    ),
    (
        "privatebase",
        "127.0.0.1:8000/privatebase",
        "127.0.0.1:8000/privatebase",
        "",
        "127.0.0.1:8000",
    ),
    (
        "private/moonbase",
        "example.com/private/moonbase",
        "example.com/private/moonbase",
        "",
        "example.com",
    ),
    ("privatebase", "example.com/privatebase", "example.com/privatebase", "", "example.com"),
    (
        "private/moonbase",
        "example.com:8000/private/moonbase",
        "example.com:8000/private/moonbase",
        "",
        "example.com:8000",
    ),
    (
        "privatebasee",
        "example.com:8000/privatebasee",
        "example.com:8000/privatebasee",
        "",
        "example.com:8000",
    ),
    (
        "library/ubuntu-12.04-base",
        "ubuntu-12.04-base",
        "docker.io/library/ubuntu-12.04-base",
        "index.docker.io/library/ubuntu-12.04-base",
        "docker.io",
    ),
    ("library/foo", "foo", "docker.io/library/foo", "docker.io/foo", "docker.io"),
    ("library/foo/bar", "library/foo/bar", "docker.io/library/foo/bar", "", "docker.io"),
    ("store/foo/bar", "store/foo/bar", "docker.io/store/foo/bar", "", "docker.io"),
    ("bar", "Foo/bar", "Foo/bar", "", "Foo"),
    ("bar", "FOO/bar", "FOO/bar", "", "FOO"),
]


@pytest.mark.parametrize(("remote", "familiar", "full", "ambiguous", "domain"), REPOSITORY_INFO)
def test_repository_info(
    remote: str, familiar: str, full: str, ambiguous: str, domain: str
) -> None:
    for text in filter(None, (familiar, full, ambiguous)):
        ref = parse_reference(text)
        assert ref.repository == remote
        assert ref.registry == domain
        assert ref.name == full
        assert ref.familiar_name == familiar
        assert ref.familiar == familiar + ":latest"


# --------------------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "familiar", "docker_tag", "identifier", "canonical"),
    [
        ("nginx", "nginx:latest", "nginx:latest", "latest", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "nginx:1.27", "nginx:1.27", "1.27", "docker.io/library/nginx:1.27"),
        ("user/app:2", "user/app:2", "user/app:2", "2", "docker.io/user/app:2"),
        (
            "quay.io/org/app:v1",
            "quay.io/org/app:v1",
            "quay.io/org/app:v1",
            "v1",
            "quay.io/org/app:v1",
        ),
        (
            "127.0.0.1:5000/team/app:1",
            "127.0.0.1:5000/team/app:1",
            "127.0.0.1:5000/team/app:1",
            "1",
            "127.0.0.1:5000/team/app:1",
        ),
        ("nginx@" + SHA_F, "nginx@" + SHA_F, None, SHA_F, "docker.io/library/nginx@" + SHA_F),
        (
            "nginx:1.27@" + SHA_F,
            "nginx:1.27",
            "nginx:1.27",
            SHA_F,
            "docker.io/library/nginx:1.27@" + SHA_F,
        ),
        (
            "docker.io/library/foo/bar:x",
            "library/foo/bar:x",
            "library/foo/bar:x",
            "x",
            "docker.io/library/foo/bar:x",
        ),
    ],
)
def test_display_forms(
    text: str, familiar: str, docker_tag: str | None, identifier: str, canonical: str
) -> None:
    ref = parse_reference(text)
    assert ref.familiar == familiar
    assert ref.docker_tag() == docker_tag
    assert ref.identifier == identifier
    assert str(ref) == canonical


def test_api_host_name_and_scope() -> None:
    hub = parse_reference("nginx")
    assert (hub.registry, hub.api_host, hub.name) == (
        DOCKER_HUB,
        DOCKER_HUB_API,
        "docker.io/library/nginx",
    )
    assert hub.scope() == "repository:library/nginx:pull"
    assert hub.scope("pull,push") == "repository:library/nginx:pull,push"
    quay = parse_reference("quay.io/org/app:v1")
    assert quay.api_host == "quay.io"
    assert quay.scope() == "repository:org/app:pull"
    assert parse_reference("registry-1.docker.io/foo").api_host == "registry-1.docker.io"


@pytest.mark.parametrize(
    ("text", "hostname", "port", "loopback"),
    [
        ("nginx", "docker.io", None, False),
        ("localhost/x", "localhost", None, True),
        ("localhost:5000/x", "localhost", 5000, True),
        ("LOCALHOST:5000/x", "LOCALHOST", 5000, True),
        ("127.0.0.1/x", "127.0.0.1", None, True),
        ("127.0.0.1:5000/x", "127.0.0.1", 5000, True),
        ("127.1.2.3:80/x", "127.1.2.3", 80, True),
        ("[::1]/x", "::1", None, True),
        ("[::1]:5000/x", "::1", 5000, True),
        ("[::ffff:7f00:1]:5000/x", "::ffff:7f00:1", 5000, True),
        ("[2001:db8::1]/x", "2001:db8::1", None, False),
        ("[2001:db8::1]:443/x", "2001:db8::1", 443, False),
        ("128.0.0.1:5000/x", "128.0.0.1", 5000, False),
        ("localhost.example.com/x", "localhost.example.com", None, False),
        ("myhost:5000/x", "myhost", 5000, False),
        ("registry.example.com:00443/x", "registry.example.com", 443, False),
    ],
)
def test_host_port_loopback(text: str, hostname: str, port: int | None, loopback: bool) -> None:
    ref = parse_reference(text)
    assert ref.hostname == hostname
    assert ref.port == port
    assert ref.is_loopback is loopback


@pytest.mark.parametrize(
    ("registry", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.255.0.9:80", True),
        ("[::1]", True),
        ("[::1]:5000", True),
        ("docker.io", False),
        ("10.0.0.1:5000", False),
        ("[2001:db8::1]:5000", False),
        ("notlocalhost", False),
    ],
)
def test_is_loopback_host(registry: str, loopback: bool) -> None:
    assert is_loopback_host(registry) is loopback


@pytest.mark.parametrize(
    ("server", "registry"),
    [
        ("", "docker.io"),
        ("docker.io", "docker.io"),
        ("index.docker.io", "docker.io"),
        ("https://index.docker.io/v1/", "docker.io"),
        ("registry-1.docker.io", "docker.io"),
        ("quay.io", "quay.io"),
        ("https://quay.io", "quay.io"),
        ("http://localhost:5000/", "localhost:5000"),
        ("[::1]:5000", "[::1]:5000"),
        ("myregistry", "myregistry"),
        ("ghcr.io/some/path", "ghcr.io"),
    ],
)
def test_normalize_registry(server: str, registry: str) -> None:
    assert normalize_registry(server) == registry


@pytest.mark.parametrize("server", ["bad_host.io", "x.io:99999", "ftp://x", "[zz]:5000", "a b"])
def test_normalize_registry_rejects(server: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid registry"):
        normalize_registry(server)


def test_with_digest_and_with_tag() -> None:
    ref = parse_reference("nginx:1.27")
    pinned = ref.with_digest(SHA_F)
    assert str(pinned) == "docker.io/library/nginx:1.27@" + SHA_F
    assert pinned.identifier == SHA_F
    assert pinned.docker_tag() == "nginx:1.27"
    assert ref.with_digest(Digest.parse(SHA_F)) == pinned
    assert pinned.with_tag("1.28").identifier == SHA_F  # a digest still wins, as in Docker
    assert str(pinned.with_tag("1.28")) == "docker.io/library/nginx:1.28@" + SHA_F
    assert ref.with_tag("TAG5").familiar == "nginx:TAG5"
    assert ref.tag == "1.27"  # frozen, unchanged
    for bad_tag in ("", "-x", ".x", "a:b", "a/b", "t" * 129, "é"):
        with pytest.raises(InvalidReferenceError):
            ref.with_tag(bad_tag)
    for bad_digest in ("", "sha256:abc", "foo", "sha256:" + "F" * 64, "md5:" + "f" * 32):
        with pytest.raises(InvalidReferenceError):
            ref.with_digest(bad_digest)


def test_reference_is_frozen_and_hashable() -> None:
    ref = parse_reference("nginx:1.27")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, parse_reference("docker.io/library/nginx:1.27")} == {ref}


def test_direct_construction_normalises_and_validates() -> None:
    assert str(Reference("index.docker.io", "nginx", "1")) == "docker.io/library/nginx:1"
    assert str(Reference("quay.io", "app")) == "quay.io/app"
    ref = Reference("docker.io", "library/nginx", None, Digest.parse(SHA_F))
    assert ref == parse_reference("nginx@" + SHA_F)
    for registry, repository, tag in [
        ("foo", "bar", None),  # Docker would read "foo" as part of the path
        ("", "bar", None),
        ("quay.io", "Bar", None),
        ("quay.io", "bar/", None),
        ("quay.io", "a" * 256, None),
        ("quay.io", "bar", "-x"),
        ("x.io:99999", "bar", None),
    ]:
        with pytest.raises(InvalidReferenceError):
            Reference(registry, repository, tag)


def test_parse_repository() -> None:
    ref = parse_repository("nginx")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        "docker.io",
        "library/nginx",
        None,
        None,
    )
    assert parse_repository("quay.io/org/app:v1") == parse_repository("quay.io/org/app")
    assert ref.familiar == "nginx"
    assert ref.docker_tag() is None
    assert ref.identifier == "latest"
    assert str(ref) == "docker.io/library/nginx"
    with pytest.raises(InvalidReferenceError, match="digest"):
        parse_repository("nginx@" + SHA_F)
    with pytest.raises(InvalidReferenceError):
        parse_repository("Nginx")


# --------------------------------------------------------------------------------------
# A literal transcription of distribution/reference, used as the oracle
# --------------------------------------------------------------------------------------


def _optional(*res: str) -> str:
    return "(?:" + "".join(res) + ")?"


def _any_times(*res: str) -> str:
    return "(?:" + "".join(res) + ")*"


def _capture(*res: str) -> str:
    return "(" + "".join(res) + ")"


_alphanumeric = "[a-z0-9]+"
_separator = "(?:[._]|__|[-]+)"
_domain_name_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_optional_port = "(?::[0-9]+)?"
_tag = r"[\w][\w.-]{0,127}"
_digest_pat = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_ipv6address = r"\[(?:[a-fA-F0-9:]+)\]"
_domain_name = _domain_name_component + r"(?:\." + _domain_name_component + ")*"
_host = "(?:" + _domain_name + "|" + _ipv6address + ")"
_domain_and_port = _host + _optional_port
_path_component = _alphanumeric + _any_times(_separator + _alphanumeric)
_remote_name = _path_component + _any_times("/" + _path_component)
_name_pat = _optional(_domain_and_port + "/") + _remote_name
GO_NAME = re.compile(_optional(_capture(_domain_and_port), "/") + _capture(_remote_name), re.ASCII)
GO_REFERENCE = re.compile(
    _capture(_name_pat) + _optional(":", _capture(_tag)) + _optional("@", _capture(_digest_pat)),
    re.ASCII,
)
GO_DIGEST_LENGTHS = {"sha256": 64, "sha512": 128}  # what imgpull's Digest supports


def docker_split(name: str) -> tuple[str, str]:
    maybe_domain, found, maybe_remote = name.partition("/")
    if not found:
        return "docker.io", "library/" + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == "index.docker.io":
        domain, remote = "docker.io", maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = "docker.io", name
    if domain == "docker.io" and "/" not in remote:
        remote = "library/" + remote
    return domain, remote


def docker_parse(s: str) -> tuple[str, str, str | None, str | None] | None:
    if s == "":
        return None
    matches = GO_REFERENCE.fullmatch(s)
    if matches is None:
        return None
    name_match = GO_NAME.fullmatch(matches[1])
    assert name_match is not None
    domain, path = name_match[1] or "", name_match[2]
    if len(path) > 255:
        return None
    digest = matches[3]
    if digest:
        algorithm, _, encoded = digest.partition(":")
        length = GO_DIGEST_LENGTHS.get(algorithm)
        if length is None or not re.fullmatch(f"[a-f0-9]{{{length}}}", encoded):
            return None
    return domain, path, matches[2] or None, digest or None


def docker_parse_normalized(s: str) -> tuple[str, str, str | None, str | None] | None:
    if re.fullmatch("[a-f0-9]{64}", s):
        return None
    domain, remainder = docker_split(s)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        return None
    return docker_parse(domain + "/" + remainder)


def docker_expectation(s: str) -> tuple[str, str, str | None, str | None] | None:
    """What imgpull should return: Docker's answer minus the documented deviations."""
    parsed = docker_parse_normalized(s)
    if parsed is None or len(s) > 4096:
        return None
    domain, path, tag, digest = parsed
    if domain == "":
        return None
    if domain.startswith("["):
        host, _, port = domain[1:].partition("]")
        port = port[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        port = domain.partition(":")[2]
    if port and not 1 <= int(port) <= 65535:
        return None
    if tag is None and digest is None:
        tag = "latest"
    return domain, path, tag, digest


def ours(s: str) -> tuple[str, str, str | None, str | None] | None:
    try:
        return fields(parse_reference(s))
    except InvalidReferenceError:
        return None


# --------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------

alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=5)
separators = st.sampled_from([".", "_", "__", "-", "---"])


@st.composite
def path_components(draw: st.DrawFn) -> str:
    parts = [draw(alnum)]
    for _ in range(draw(st.integers(0, 2))):
        parts += [draw(separators), draw(alnum)]
    return "".join(parts)


paths = st.lists(path_components(), min_size=1, max_size=4).map("/".join)
labels = st.from_regex(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,5}[a-zA-Z0-9])?", fullmatch=True)
ports = st.integers(1, 65535).map(lambda port: f":{port}")
registries = st.one_of(
    st.none(),
    st.sampled_from(["docker.io", "index.docker.io", "localhost", "quay.io", "ghcr.io"]),
    st.lists(labels, min_size=2, max_size=3).map(".".join),
    st.tuples(labels, ports).map("".join),
    st.tuples(st.just("localhost"), ports).map("".join),
    st.ip_addresses(v=4).map(str),
    st.tuples(st.ip_addresses(v=4).map(str), ports).map("".join),
    st.ip_addresses(v=6).map(lambda a: f"[{a.compressed}]").filter(lambda s: "." not in s),
    st.tuples(st.ip_addresses(v=6).map(lambda a: f"[{a.compressed}]"), ports)
    .map("".join)
    .filter(lambda s: "." not in s),
)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True)
digests = st.one_of(
    st.binary(max_size=8).map(Digest.of),
    st.binary(max_size=8).map(lambda data: Digest.of(data, "sha512")),
)


@st.composite
def valid_parts(draw: st.DrawFn) -> tuple[str | None, str, str | None, Digest | None]:
    return draw(registries), draw(paths), draw(st.none() | tags), draw(st.none() | digests)


def join(registry: str | None, path: str, tag: str | None, digest: Digest | str | None) -> str:
    text = path if registry is None else f"{registry}/{path}"
    if tag is not None:
        text += f":{tag}"
    if digest is not None:
        text += f"@{digest}"
    return text


@PROPERTY
@given(valid_parts())
def test_generated_references_round_trip(
    parts: tuple[str | None, str, str | None, Digest | None],
) -> None:
    registry, path, tag, digest = parts
    text = join(*parts)
    # "a_b.c/d": Docker takes "a_b.c" as a registry yet yields an empty one; we refuse it
    assume(registry is not None or docker_expectation(text) is not None)
    ref = parse_reference(text)
    assert fields(ref) == docker_expectation(text)
    if registry is not None:
        expected_registry = "docker.io" if registry == "index.docker.io" else registry
        assert ref.registry == expected_registry
        if expected_registry == "docker.io" and "/" not in path:
            assert ref.repository == "library/" + path
        else:
            assert ref.repository == path
    assert ref.tag == (tag if tag is not None or digest is not None else "latest")
    assert ref.digest == digest
    # canonical form round trips, and is stable
    again = parse_reference(str(ref))
    assert again == ref
    assert str(again) == str(ref)
    # the familiar forms name the same thing
    assert parse_reference(ref.familiar_name).name == ref.name
    familiar = parse_reference(ref.familiar)
    assert (familiar.name, familiar.tag) == (ref.name, ref.tag)
    if ref.tag is None:
        assert familiar.digest == ref.digest
    assert ref.name.endswith("/" + ref.repository)
    assert ref.familiar_name == ref.name or ref.registry == "docker.io"
    docker_tag = ref.docker_tag()
    if docker_tag is not None:
        assert parse_reference(docker_tag).name == ref.name
    assert ref.identifier == (str(ref.digest) if ref.digest else ref.tag)


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.tar")


def check_filename(ref: Reference) -> None:
    """Also used by test_any_text_parses_or_raises_invalid_reference; the safe_filename
    tests themselves are in test_naming.py."""
    name = safe_filename(ref)
    assert SAFE_NAME.fullmatch(name), name
    assert "/" not in name and "\\" not in name and not name.startswith("..")
    assert len(name) <= 204
    assert name.split(".")[0].upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT1"}


BAD_TAGS = ["", "-x", ".x", "a:b", "a/b", "t" * 129, "a b", "é"]
BAD_DIGESTS = [
    "",
    "sha256:",
    "sha256:abc",
    "sha256:" + "F" * 64,
    "sha256:" + "f" * 63,
    "md5:" + "f" * 32,
    "SHA256:" + "f" * 64,
    "sha256" + "f" * 64,
    "sha512:" + "f" * 64,
]
BAD_COMPONENTS = [
    "",
    "-x",
    "x-",
    "_x",
    "x_",
    "x___y",
    "x..y",
    "x._y",
    "X",
    "xY",
    "x!",
    "x y",
    "é",
    ".x",
]


@PROPERTY
@given(
    valid_parts(),
    st.sampled_from(["tag", "digest", "component"]),
    st.sampled_from(BAD_TAGS),
    st.sampled_from(BAD_DIGESTS),
    st.sampled_from(BAD_COMPONENTS),
)
def test_broken_references_are_rejected(
    parts: tuple[str | None, str, str | None, Digest | None],
    what: str,
    bad_tag: str,
    bad_digest: str,
    bad_component: str,
) -> None:
    registry, path, tag, digest = parts
    bad_digest_or_none: Digest | str | None = digest
    if what == "tag":
        tag = bad_tag
    elif what == "digest":
        bad_digest_or_none = bad_digest
    else:
        path = f"{path}/{bad_component}"  # the last component: never mistaken for a registry
    text = join(registry, path, tag, bad_digest_or_none)
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)
    assert docker_parse_normalized(text) is None


GRAMMAR_ALPHABET = "abz09AZ:/@._-[]% "


@PROPERTY
@given(st.one_of(st.text(max_size=40), st.text(GRAMMAR_ALPHABET, max_size=30)))
def test_any_text_parses_or_raises_invalid_reference(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as error:
        assert error.message.startswith("invalid reference")
        assert error.message.isprintable() and error.hint.isprintable()
        return
    assert parse_reference(str(ref)) == ref
    check_filename(ref)


@PROPERTY
@given(
    st.one_of(
        st.text(GRAMMAR_ALPHABET, max_size=30),
        st.builds(
            lambda parts, noise, where: (lambda s: s[:where] + noise + s[where:])(join(*parts)),
            valid_parts(),
            st.text(GRAMMAR_ALPHABET, max_size=3),
            st.integers(0, 40),
        ),
        st.builds(lambda parts: join(*parts), valid_parts()),
    )
)
def test_agrees_with_docker(text: str) -> None:
    assert ours(text) == docker_expectation(text)


@PROPERTY
@given(st.text(max_size=20))
def test_with_tag_and_with_digest_raise_only_invalid_reference(text: str) -> None:
    ref = parse_reference("nginx")
    for method in (ref.with_tag, ref.with_digest, parse_repository):
        try:
            result = method(text)
        except InvalidReferenceError:
            continue
        assert isinstance(result, Reference)
