"""Image flags in container args/command and *IMAGE* env values."""

from __future__ import annotations

import pytest

from imgpull.kube import find_images, make_mapper, rewrite_text, scan
from tests.unit.kube.helpers import src


def container(body: str) -> str:
    return "spec:\n  containers:\n  - name: c\n" + "".join(
        f"    {line}\n" for line in body.splitlines()
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # --FLAG=REF where FLAG names an image (or is a known image flag) and REF names
        # its registry.
        ("args: ['--prometheus-config-reloader=quay.io/p/reloader:v0.75.0']",
         ["quay.io/p/reloader:v0.75.0"]),
        ("args: ['-queue-sidecar-image=gcr.io/knative/queue:v1']", ["gcr.io/knative/queue:v1"]),
        ("command: ['/op', '--proxyImage=registry.local:5000/proxy@sha256:" + "a" * 64 + "']",
         ["registry.local:5000/proxy@sha256:" + "a" * 64]),
        ("args: ['--prometheus-default-base-image=quay.io/prometheus/prometheus']",
         ["quay.io/prometheus/prometheus"]),
        ("args: ['--default-image=localhost/x:1']", ["localhost/x:1"]),
        # A lone REF after a bare image flag.
        ("args: ['--config-reloader-image', 'quay.io/p/r:v1', 'quay.io/not/this:v1']",
         ["quay.io/p/r:v1"]),
        # Not an image flag, or no registry host, or not a flag at all.
        ("args: ['--upstream=http://127.0.0.1:8080/', '--kubelet-service=kube-system/kubelet']",
         []),
        ("args: ['--image-pull-policy=Always', '--image-gc-high-threshold=85']", []),
        ("args: ['--image=nginx:1.27', '--log-image=ubuntu']", []),
        ("args: ['--some-flag=quay.io/a/b:v1', 'quay.io/a/b:v1']", []),
        ("args: ['--image', '--other=quay.io/a/b:v1']", []),
        ("args: [--image, 5, 'quay.io/a/b:v1']", []),
        ("args: 'quay.io/a/b:v1'", []),
        # env: names containing IMAGE (any case), values naming their registry.
        ("env:\n- name: RELATED_IMAGE_OPERAND\n  value: quay.io/org/operand:v2",
         ["quay.io/org/operand:v2"]),
        ("env:\n- {value: 'ghcr.io/a/b:1', name: sidecarImage}", ["ghcr.io/a/b:1"]),
        ("env:\n- name: IMAGE_PULL_POLICY\n  value: Always", []),
        ("env:\n- name: BASE_IMAGE\n  value: nginx:1.27", []),
        ("env:\n- name: OTHER\n  value: quay.io/a/b:1", []),
        ("env:\n- name: IMAGE\n  valueFrom: {configMapKeyRef: {name: x, key: image}}", []),
    ],
)  # fmt: skip
def test_argument_and_env_rules(body: str, expected: list[str]) -> None:
    uses = [u for u in find_images(src(container(body))) if u.kind != "container"]
    assert [u.reference for u in uses] == expected


def test_invalid_image_values_are_skipped_with_a_reason() -> None:
    text = container(
        "args: ['--sidecar-image=quay.io/Org/App:v1']\n"
        "env:\n- name: X_IMAGE\n  value: 'registry.local:5000/a/b:'"
    )
    found = scan(src(text))
    assert found.uses == []
    assert [(s.text, s.line) for s in found.skipped] == [
        ("quay.io/Org/App:v1", 4),
        ("registry.local:5000/a/b:", 7),
    ]
    assert all(s.reason.startswith("not a valid reference") for s in found.skipped)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("args: [--image-x=quay.io/a/b:v1]", "args: [--image-x=q.local/a/b:v1]"),
        ("args: ['--image-x=quay.io/a/b:v1']", "args: ['--image-x=q.local/a/b:v1']"),
        ('args: ["--image-x=quay.io/a/b:v1"]  # c', 'args: ["--image-x=q.local/a/b:v1"]  # c'),
        ("args:\n- --image-x\n- quay.io/a/b:v1", "args:\n- --image-x\n- q.local/a/b:v1"),
        # Not written as it reads: the whole scalar is written again, double-quoted.
        ('args: ["--image-x=\\\n  quay.io/a/b:v1"]', 'args: ["--image-x=q.local/a/b:v1"]'),
        ('args: ["--image-x=quay.io/a/b:\\x76\\x31"]', 'args: ["--image-x=q.local/a/b:v1"]'),
    ],
)
def test_only_the_reference_of_an_argument_is_spliced(line: str, expected: str) -> None:
    text = container(line)
    new = rewrite_text(src(text), make_mapper({"quay.io": "q.local"}))
    assert new == container(expected)


def test_new_reference_that_is_not_plain_safe_gets_quoted() -> None:
    text = container("args: [--image-x=quay.io/a/b:v1]\nimage: quay.io/c/d:v1")
    new = rewrite_text(src(text), make_mapper({"quay.io": "[fd00::1]:5000"}))
    assert new == container(
        'args: ["--image-x=[fd00::1]:5000/a/b:v1"]\nimage: "[fd00::1]:5000/c/d:v1"'
    )
