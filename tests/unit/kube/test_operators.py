"""Images in Prometheus Operator custom resources (fixtures in tests/data/k8s/operators)."""

from __future__ import annotations

from imgpull.kube import find_images, list_images, make_mapper, read_sources, rewrite_text
from tests.unit.kube.helpers import DATA, no_stdin, src

OPERATORS = DATA / "operators"
SHA = "4a9b8a6e7f1c2d3b5a6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2"


def uses(name: str) -> list[tuple[str, str, int]]:
    source = read_sources([str(OPERATORS / name)], no_stdin())[0]
    return [(use.kind, use.reference, use.line) for use in find_images(source)]


def test_image_fields_thanos_overrides_ruler_and_agent() -> None:
    assert uses("prometheus-thanos-and-overrides.yaml") == [
        ("cr-field", "quay.io/prometheus/prometheus:v2.53.0", 9),
        ("cr-field", "quay.io/thanos/thanos:v0.35.1", 14),
        ("container", "quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0", 21),
        ("container", "quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0", 24),
        ("cr-field", "quay.io/thanos/thanos:v0.35.1", 32),
        ("cr-field", "quay.io/prometheus/prometheus:v2.53.0", 45),
    ]


def test_legacy_base_image_is_listed_as_the_operator_composes_it() -> None:
    assert uses("legacy-base-image.yaml") == [
        # Prometheus: "v" + the semantic version.
        ("cr-base", "quay.io/prometheus/prometheus:v2.45.0", 9),
        ("cr-base", "quay.io/thanos/thanos:v0.32.5", 11),
        # sha wins over tag and version.
        ("cr-base", f"quay.io/prometheus/alertmanager@sha256:{SHA}", 19),
        # a baseImage with a tag is used as it is.
        ("cr-base", "quay.io/prometheus/alertmanager:v0.25.0", 29),
        # spec.image wins; baseImage is then ignored by the operator, and here.
        ("cr-field", "quay.io/prometheus/alertmanager:v0.27.0", 37),
    ]
    source = read_sources([str(OPERATORS / "legacy-base-image.yaml")], no_stdin())
    assert "quay.io/ignored/alertmanager" not in list_images(source)
    assert "quay.io/other/prometheus:v1" not in list_images(source)


def test_legacy_form_is_rewritten_in_base_image_only() -> None:
    source = read_sources([str(OPERATORS / "legacy-base-image.yaml")], no_stdin())[0]
    new = rewrite_text(source, make_mapper({"quay.io": "q.local"}))
    changed = [
        (old, line)
        for old, line in zip(source.text.splitlines(), new.splitlines(), strict=True)
        if old != line
    ]
    assert changed == [
        (
            "  baseImage: quay.io/prometheus/prometheus",
            "  baseImage: q.local/prometheus/prometheus",
        ),
        ("    baseImage: quay.io/thanos/thanos", "    baseImage: q.local/thanos/thanos"),
        (
            "  baseImage: quay.io/prometheus/alertmanager",
            "  baseImage: q.local/prometheus/alertmanager",
        ),
        (
            "  baseImage: quay.io/prometheus/alertmanager:v0.25.0",
            "  baseImage: q.local/prometheus/alertmanager:v0.25.0",
        ),
        (
            "  image: quay.io/prometheus/alertmanager:v0.27.0",
            "  image: q.local/prometheus/alertmanager:v0.27.0",
        ),
    ]
    assert "version: 2.45.0" in new and f"sha: {SHA}" in new


def test_kind_must_match_group_and_non_strings_are_ignored() -> None:
    text = (
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\n"
        "spec:\n  image: quay.io/a/b:1\n"
        "---\napiVersion: monitoring.coreos.com/v1\nkind: Prometheus\nspec:\n  image: 5\n"
        "  baseImage: [x]\n---\nkind: Prometheus\nspec:\n  image: quay.io/a/b:1\n"
        "---\napiVersion: monitoring.coreos.com/v1\nkind: Prometheus\nspec: [image]\n"
    )
    assert find_images(src(text)) == []


def test_custom_resources_inside_lists() -> None:
    text = (
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: monitoring.coreos.com/v1\n"
        "  kind: Alertmanager\n  spec: {image: 'quay.io/prometheus/alertmanager:v0.27.0'}\n"
    )
    assert [(u.kind, u.reference) for u in find_images(src(text))] == [
        ("cr-field", "quay.io/prometheus/alertmanager:v0.27.0")
    ]
