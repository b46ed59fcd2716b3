"""Tests for imgpull.model: platforms, index selection and manifest parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from imgpull.digest import Digest
from imgpull.errors import PlatformNotFoundError, RegistryError, UnsupportedError
from imgpull.model import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    parse_manifest,
)


def digest_of(label: str) -> Digest:
    return Digest.of(label.encode())


def raw(data: Any) -> bytes:
    return json.dumps(data).encode()


# -- Platform ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/x86-64", Platform("linux", "amd64")),
        ("Linux/X86_64", Platform("linux", "amd64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/aarch64/v8", Platform("linux", "arm64")),
        ("linux/arm/v7", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/i386", Platform("linux", "386")),
        ("windows/amd64", Platform("windows", "amd64")),
        (" linux/ppc64le ", Platform("linux", "ppc64le")),
    ],
)
def test_parse(text: str, expected: Platform) -> None:
    assert Platform.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "linux", "linux/", "/amd64", "linux/amd64/", "linux//v7", "a/b/c/d"]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid platform"):
        Platform.parse(text)


def test_str() -> None:
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64"
    assert str(Platform("linux", "amd64")) == "linux/amd64"


def test_normalized_is_idempotent() -> None:
    for p in (Platform("linux", "x86_64"), Platform("linux", "aarch64", "v8")):
        assert p.normalized() == p.normalized().normalized()
    assert Platform("linux", "arm64", "").normalized() == Platform("linux", "arm64")


def test_host_is_normalised_linux() -> None:
    host = Platform.host()
    assert host.os == "linux"
    assert host == host.normalized()
    assert host.architecture not in ("x86_64", "aarch64")


@pytest.mark.parametrize(
    ("request_", "entry", "expected"),
    [
        ("linux/amd64", Platform("linux", "amd64"), True),
        ("linux/amd64", Platform("linux", "x86_64"), True),
        ("linux/arm64", Platform("linux", "arm64", "v8"), True),
        ("linux/arm64/v8", Platform("linux", "arm64"), True),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8"), True),
        ("linux/aarch64", Platform("linux", "arm64", "v8"), True),
        ("linux/arm", Platform("linux", "arm", "v7"), True),
        ("linux/arm", Platform("linux", "arm", "v6"), True),
        ("linux/arm/v7", Platform("linux", "arm", "v7"), True),
        ("linux/arm/v7", Platform("linux", "arm", "v6"), False),
        ("linux/arm/v7", Platform("linux", "arm"), False),
        ("linux/amd64", Platform("linux", "arm64"), False),
        ("linux/amd64", Platform("windows", "amd64"), False),
        ("linux/arm64", Platform("linux", "arm", "v8"), False),
    ],
)
def test_matches(request_: str, entry: Platform, expected: bool) -> None:
    assert Platform.parse(request_).matches(entry) is expected


# -- Index.select --------------------------------------------------------------------------


def entry(
    label: str,
    platform: dict[str, str] | None,
    *,
    annotations: dict[str, str] | None = None,
    media_type: str = OCI_MANIFEST,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "mediaType": media_type,
        "digest": str(digest_of(label)),
        "size": 100 + len(label),
    }
    if platform is not None:
        data["platform"] = platform
    if annotations:
        data["annotations"] = annotations
    return data


ATTESTATION = entry(
    "attestation",
    {"architecture": "unknown", "os": "unknown"},
    annotations={
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": str(digest_of("amd64")),
    },
)


def make_index(*entries: dict[str, Any], media_type: str = OCI_INDEX) -> Index:
    body = raw({"schemaVersion": 2, "mediaType": media_type, "manifests": list(entries)})
    parsed = parse_manifest(body, media_type, Digest.of(body))
    assert isinstance(parsed, Index)
    return parsed


def test_select_skips_attestations() -> None:
    index = make_index(
        ATTESTATION,  # listed first on purpose
        entry("amd64", {"architecture": "amd64", "os": "linux"}),
        entry("arm64", {"architecture": "arm64", "os": "linux", "variant": "v8"}),
    )
    assert index.select(Platform.parse("linux/amd64")).digest == digest_of("amd64")
    assert index.select(Platform.parse("linux/arm64")).digest == digest_of("arm64")
    assert index.select(Platform.parse("linux/arm64/v8")).digest == digest_of("arm64")
    assert [str(p) for p in index.platforms] == ["linux/amd64", "linux/arm64/v8"]
    assert [d.digest for d in index.images()] == [digest_of("amd64"), digest_of("arm64")]


def test_unknown_unknown_is_never_selected() -> None:
    bare_unknown = entry("unknown", {"architecture": "unknown", "os": "unknown"})
    index = make_index(bare_unknown, ATTESTATION)
    with pytest.raises(PlatformNotFoundError) as caught:
        index.select(Platform("unknown", "unknown"))
    assert caught.value.available == ()
    assert "no platforms" in caught.value.message


def test_annotated_attestation_with_a_real_platform_is_skipped() -> None:
    sneaky = entry(
        "sneaky",
        {"architecture": "amd64", "os": "linux"},
        annotations={"vnd.docker.reference.type": "attestation-manifest"},
    )
    index = make_index(sneaky, entry("amd64", {"architecture": "amd64", "os": "linux"}))
    assert index.select(Platform.parse("linux/amd64")).digest == digest_of("amd64")


def test_platformless_entries_are_skipped() -> None:
    index = make_index(
        entry("nothing", None), entry("amd64", {"architecture": "amd64", "os": "linux"})
    )
    assert index.select(Platform.parse("linux/amd64")).digest == digest_of("amd64")


def test_select_prefers_exact_variant() -> None:
    index = make_index(
        entry("v6", {"architecture": "arm", "os": "linux", "variant": "v6"}),
        entry("v7", {"architecture": "arm", "os": "linux", "variant": "v7"}),
    )
    assert index.select(Platform.parse("linux/arm/v7")).digest == digest_of("v7")
    assert index.select(Platform.parse("linux/arm/v6")).digest == digest_of("v6")
    # Without a variant, the first listed that matches.
    assert index.select(Platform.parse("linux/arm")).digest == digest_of("v6")


def test_select_matches_unnormalised_entries() -> None:
    index = make_index(entry("x86", {"architecture": "x86_64", "os": "linux"}))
    assert index.select(Platform.parse("linux/amd64")).digest == digest_of("x86")


def test_platform_not_found_lists_available() -> None:
    index = make_index(
        entry("amd64", {"architecture": "amd64", "os": "linux"}),
        entry("arm64", {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        entry("armv7", {"architecture": "arm", "os": "linux", "variant": "v7"}),
        ATTESTATION,
        media_type=DOCKER_MANIFEST_LIST,
    )
    with pytest.raises(PlatformNotFoundError) as caught:
        index.select(Platform.parse("linux/s390x"))
    error = caught.value
    assert error.available == ("linux/amd64", "linux/arm/v7", "linux/arm64")
    assert "linux/s390x" in error.message
    for name in error.available:
        assert name in error.message
    assert "unknown" not in error.message
    assert "--platform" in error.hint


# -- parse_manifest ------------------------------------------------------------------------


def image_body(
    media_type: str | None,
    config_type: str = OCI_CONFIG,
    layer_type: str = OCI_LAYER_GZIP,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": config_type, "digest": str(digest_of("config")), "size": 7},
        "layers": [
            {"mediaType": layer_type, "digest": str(digest_of("l1")), "size": 11},
            {"mediaType": layer_type, "digest": str(digest_of("l2")), "size": 22},
        ],
        **extra,
    }
    if media_type is not None:
        body["mediaType"] = media_type
    return body


@pytest.mark.parametrize(
    ("media_type", "config_type", "layer_type"),
    [
        (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP),
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP),
    ],
)
def test_parse_image_manifest(media_type: str, config_type: str, layer_type: str) -> None:
    body = raw(image_body(media_type, config_type, layer_type, annotations={"a": "b"}))
    digest = Digest.of(body)
    manifest = parse_manifest(body, f"{media_type}; charset=utf-8", digest)
    assert isinstance(manifest, Manifest)
    assert manifest.media_type == media_type
    assert manifest.raw == body
    assert manifest.digest == digest
    assert manifest.config.digest == digest_of("config")
    assert manifest.config.media_type == config_type
    assert [layer.digest for layer in manifest.layers] == [digest_of("l1"), digest_of("l2")]
    assert [layer.size for layer in manifest.layers] == [11, 22]
    assert manifest.annotations == {"a": "b"}
    assert manifest.size == len(body) + 7 + 11 + 22
    assert manifest.descriptor == Descriptor(media_type, digest, len(body))
    assert manifest.blobs == (manifest.config, *manifest.layers)


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_parse_index(media_type: str) -> None:
    body = raw(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [entry("amd64", {"architecture": "amd64", "os": "linux"})],
        }
    )
    index = parse_manifest(body, media_type, Digest.of(body))
    assert isinstance(index, Index)
    assert index.media_type == media_type
    assert index.raw == body
    assert [str(p) for p in index.platforms] == ["linux/amd64"]


@pytest.mark.parametrize("content_type", ["", "application/json", "application/octet-stream"])
def test_media_type_absent_oci(content_type: str) -> None:
    manifest_body = raw(image_body(None))
    parsed = parse_manifest(manifest_body, content_type, Digest.of(manifest_body))
    assert isinstance(parsed, Manifest)
    assert parsed.media_type == OCI_MANIFEST

    index_body = raw({"schemaVersion": 2, "manifests": []})
    parsed_index = parse_manifest(index_body, content_type, Digest.of(index_body))
    assert isinstance(parsed_index, Index)
    assert parsed_index.media_type == OCI_INDEX


def test_declared_media_type_used_when_header_is_generic() -> None:
    body = raw(image_body(DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP))
    parsed = parse_manifest(body, "application/json", Digest.of(body))
    assert parsed.media_type == DOCKER_MANIFEST


SCHEMA1 = {
    "schemaVersion": 1,
    "name": "library/hello",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": str(digest_of("l1"))}],
    "history": [{"v1Compatibility": "{}"}],
}


@pytest.mark.parametrize(
    "content_type", [DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, "application/json", ""]
)
def test_schema1_is_unsupported(content_type: str) -> None:
    body = raw(SCHEMA1)
    with pytest.raises(UnsupportedError, match="schema 1") as caught:
        parse_manifest(body, content_type, Digest.of(body))
    assert caught.value.hint


def test_unknown_media_type_is_unsupported() -> None:
    body = raw(image_body("application/vnd.example.thing+json"))
    with pytest.raises(UnsupportedError, match=r"vnd\.example\.thing"):
        parse_manifest(body, "application/vnd.example.thing+json", Digest.of(body))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'"a string"',
        b"null",
    ],
)
def test_malformed_json(body: bytes) -> None:
    with pytest.raises(RegistryError):
        parse_manifest(body, OCI_MANIFEST, Digest.of(body))


@pytest.mark.parametrize(
    ("media_type", "data"),
    [
        (OCI_MANIFEST, {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}),
        (OCI_MANIFEST, image_body(OCI_MANIFEST, layers=None)),
        (OCI_MANIFEST, image_body(OCI_MANIFEST, config={"digest": "sha256:abc", "size": 1})),
        (OCI_MANIFEST, image_body(OCI_MANIFEST, config={"digest": str(digest_of("c"))})),
        (
            OCI_MANIFEST,
            image_body(OCI_MANIFEST, config={"digest": str(digest_of("c")), "size": -1}),
        ),
        (
            OCI_MANIFEST,
            image_body(OCI_MANIFEST, config={"digest": str(digest_of("c")), "size": "7"}),
        ),
        (OCI_MANIFEST, image_body(OCI_MANIFEST, layers=["not a descriptor"])),
        (OCI_INDEX, {"schemaVersion": 2, "mediaType": OCI_INDEX}),
        (OCI_INDEX, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": None}),
        (OCI_INDEX, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"size": 1}]}),
        (
            OCI_INDEX,
            {
                "schemaVersion": 2,
                "manifests": [{**entry("x", None), "platform": {"os": "linux"}}],
            },
        ),
    ],
)
def test_malformed_manifest_is_a_registry_error(media_type: str, data: dict[str, Any]) -> None:
    body = raw(data)
    with pytest.raises(RegistryError):
        parse_manifest(body, media_type, Digest.of(body))


def test_descriptor_round_trip() -> None:
    data = {
        "mediaType": OCI_MANIFEST,
        "digest": str(digest_of("x")),
        "size": 42,
        "urls": ["https://example.com/x"],
        "annotations": {"k": "v"},
        "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
    }
    descriptor = Descriptor.from_json(data)
    assert descriptor.platform == Platform("linux", "arm", "v7")
    assert descriptor.to_json() == data


def test_image_config_parse() -> None:
    body = raw(
        {
            "architecture": "arm64",
            "os": "linux",
            "variant": "v8",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"], "Env": ["A=1"], "Labels": {"x": "y"}},
            "rootfs": {"type": "layers", "diff_ids": [str(digest_of("d"))]},
        }
    )
    config = ImageConfig.parse(body, Digest.of(body))
    assert config.platform.normalized() == Platform("linux", "arm64")
    assert config.cmd == ("/bin/sh",)
    assert config.entrypoint == ()
    assert config.env == ("A=1",)
    assert config.labels == {"x": "y"}
    assert config.diff_ids == (str(digest_of("d")),)
    with pytest.raises(RegistryError):
        ImageConfig.parse(b"not json", Digest.of(b"not json"))
