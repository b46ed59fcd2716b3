"""Tests for imgpull.registry.urls: URLs printed without secrets, compared by origin."""

from __future__ import annotations

import pytest

from imgpull.registry.urls import origin, redact


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://registry.example/v2/", "https://registry.example/v2/"),
        ("https://user:pass@registry.example/v2/x", "https://registry.example/v2/x"),
        ("https://user@registry.example:5000/v2/x", "https://registry.example:5000/v2/x"),
        (
            "https://bucket.s3.example/blob?X-Amz-Signature=abc&X-Amz-Credential=key",
            "https://bucket.s3.example/blob",
        ),
        ("https://t.example/token?account=bob&scope=x#frag", "https://t.example/token"),
        ("http://u:p@[::1]:5000/v2/?q=secret", "http://[::1]:5000/v2/"),
        ("https://[2001:db8::1]/v2/", "https://[2001:db8::1]/v2/"),
        (
            "http://127.0.0.1:5000/v2/a/b/blobs/sha256:00",
            "http://127.0.0.1:5000/v2/a/b/blobs/sha256:00",
        ),
    ],
)
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected
    for secret in ("pass", "secret", "abc", "key", "bob", "u:p"):
        if secret not in expected:
            assert secret not in redact(url)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://registry.example/v2/a", "https://registry.example/v2/b?x=1"),
        ("https://Registry.Example:5000/v2/", "https://registry.example:5000/blobs"),
        ("https://user:pw@registry.example/v2/", "https://registry.example/other"),
        ("HTTPS://registry.example/", "https://registry.example/"),
    ],
)
def test_same_origin(a: str, b: str) -> None:
    assert origin(a) == origin(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://registry.example/v2/", "http://registry.example/v2/"),
        ("https://registry.example/v2/", "https://registry.example:5000/v2/"),
        ("https://registry.example/v2/", "https://storage.example/v2/"),
        ("https://registry.example/v2/", "https://registry.example.evil.com/v2/"),
        ("http://127.0.0.1:5000/", "http://localhost:5000/"),
        ("https://registry.example/", "https://sub.registry.example/"),
    ],
)
def test_different_origin(a: str, b: str) -> None:
    assert origin(a) != origin(b)


def test_origin_value() -> None:
    assert origin("https://u:p@Host.Example:443/x?y") == ("https", "host.example:443")
