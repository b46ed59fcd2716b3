"""Where images are found: the generic container rule, merges, aliases, order."""

from __future__ import annotations

import time

import pytest

from imgpull.errors import ConfigError
from imgpull.kube import find_images, list_images, make_mapper, rewrite_text
from tests.unit.kube.helpers import TO, pod, src


@pytest.mark.parametrize(
    "text",
    [
        # Kinds and nesting the generic rule must reach.
        "kind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n"
        "          containers: [{name: a, image: x:1}]\n",
        "kind: List\nitems:\n- kind: List\n  items:\n  - kind: Pod\n    spec:\n"
        "      initContainers: [{image: x:1}]\n",
        "kind: Pod\nspec:\n  ephemeralContainers:\n  - image: x:1\n",
        "kind: Anything\nspec:\n  deeply:\n  - nested:\n      containers:\n      - image: x:1\n",
    ],
)
def test_generic_rule_reaches_nested_specs(text: str) -> None:
    assert [u.reference for u in find_images(src(text))] == ["x:1"]


@pytest.mark.parametrize(
    "text",
    [
        "kind: ConfigMap\ndata:\n  pod: |\n    containers:\n    - image: x:1\n",
        "kind: Pod\nmetadata:\n  annotations:\n    image: x:1\n",
        # An env value named image counts only when it names its registry.
        "kind: Pod\nspec:\n  containers:\n  - env:\n    - name: image\n      value: x:1\n",
        "kind: Pod\nspec:\n  containers:\n  - image: 1.27\n  - image: null\n  - image: ''\n",
        "kind: Pod\nspec:\n  containers: x:1\n",
        "kind: Pod\nspec:\n  image: x:1\n  containers: []\n",
        "kind: Pod\nspec:\n  containers:\n  - image: !custom x:1\n",
        "",
        "---\n---\n",
        "just a scalar\n",
    ],
)
def test_only_container_image_fields_count(text: str) -> None:
    assert find_images(src(text)) == []


def test_merge_keys_and_duplicate_anchor_uses() -> None:
    text = (
        "base: &base {name: a, image: 'x:1'}\n"
        "spec:\n  containers:\n  - <<: *base\n    name: b\n  - <<: [*base]\n"
        "  - <<: *base\n    image: y:2\n"
    )
    assert [u.reference for u in find_images(src(text))] == ["x:1", "x:1", "y:2"]
    assert list_images([src(text)]) == ["x:1", "y:2"]


def test_merge_order_and_nested_merges() -> None:
    text = (
        "a: &a {image: 'a:1'}\nb: &b {<<: *a}\nc: &c {image: 'c:1'}\n"
        "spec:\n  containers:\n  - <<: [*b, *c]\n  - <<: [*c, *b]\n"
    )
    assert [u.reference for u in find_images(src(text))] == ["a:1", "c:1"]


def test_merge_alias_loops_terminate() -> None:
    text = "a: &a\n  <<: [*a]\nspec:\n  containers:\n  - <<: [*a, *a]\n"
    assert find_images(src(text)) == []
    bomb = ["m0: &m0 {image: 'x:1'}"]
    bomb += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}, *m{i - 1}]}}" for i in range(1, 40)]
    bomb.append("spec: {containers: [{<<: *m39}]}")
    assert [u.reference for u in find_images(src("\n".join(bomb) + "\n"))] == ["x:1"]


def test_document_order_across_nesting_levels() -> None:
    text = (
        "spec:\n  template: {spec: {containers: [{image: 'a:1'}]}}\n"
        "  initContainers: [{image: 'b:1'}]\n  containers: &c [{image: 'c:1'}]\n"
        "more: {containers: *c}\n"
    )
    assert [u.reference for u in find_images(src(text))] == ["a:1", "b:1", "c:1", "c:1"]


def test_alias_bomb_is_cheap() -> None:
    lines = ["a0: &a0 {containers: [{image: 'x:1'}]}"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    uses = find_images(src("\n".join(lines) + "\n"))
    assert [u.reference for u in uses] == ["x:1"]


def test_recursive_aliases_terminate() -> None:
    text = "a: &a\n  self: *a\n  containers:\n  - image: x:1\n"
    assert [u.reference for u in find_images(src(text))] == ["x:1"]


def test_anchors_may_be_redefined_as_kubectl_allows() -> None:
    text = "a: &i 'x:1'\nb: &i 'y:2'\nspec:\n  containers:\n  - image: *i\n"
    assert [u.reference for u in find_images(src(text))] == ["y:2"]


def test_duplicate_image_keys_are_all_images() -> None:
    text = "spec:\n  containers:\n  - image: a:1\n    image: b:2\n"
    assert [u.reference for u in find_images(src(text))] == ["a:1", "b:2"]


def test_invalid_reference_names_file_line_column() -> None:
    source = src(pod("image: Nginx:1.27"), "dir/pod.yaml")
    assert [u.reference for u in find_images(source)] == ["Nginx:1.27"]
    with pytest.raises(ConfigError) as info:
        list_images([source])
    assert info.value.message.startswith('dir/pod.yaml:6:12: invalid reference "Nginx:1.27"')
    assert "lowercase" in info.value.message
    with pytest.raises(ConfigError, match=r"^dir/pod\.yaml:6:12: invalid reference"):
        rewrite_text(source, make_mapper({}, TO))


def test_kinds_and_positions_of_every_rule() -> None:
    text = (
        "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n"
        "      containers:\n"
        "      - name: op\n"
        "        args: ['--log=info', '--config-reloader-image=quay.io/a/reloader:v1']\n"
        "        image: quay.io/a/op:v1\n"
        "        env:\n        - {name: RELATED_IMAGE_DB, value: 'registry.local:5000/db:1'}\n"
    )
    uses = find_images(src(text))
    assert [(u.kind, u.reference, u.line, u.column) for u in uses] == [
        ("arg", "quay.io/a/reloader:v1", 8, 55),  # the reference itself
        ("container", "quay.io/a/op:v1", 9, 16),
        ("env", "registry.local:5000/db:1", 11, 43),  # a whole value: at its quote
    ]


def test_aliases_cannot_multiply_uses_without_bound() -> None:
    # One container with 1,000 (duplicate) image keys, its list used 1,000 times.
    keys = "".join(f"  image: quay.io/a/b{i}:1\n" for i in range(1000))
    uses = "".join(f"p{i}: {{containers: *c}}\n" for i in range(1000))
    text = "c: &c\n-\n" + keys + uses
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"^t\.yaml: more than 200000 image uses"):
        find_images(src(text))
    assert time.monotonic() - started < 20
