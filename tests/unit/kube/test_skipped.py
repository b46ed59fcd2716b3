"""Image-like strings no rule finds are listed as skipped, with their position."""

from __future__ import annotations

from imgpull.kube import collect_images, read_sources, rewrite, scan
from imgpull.kube.composer import MAX_CANDIDATES
from tests.unit.kube.helpers import DATA, no_stdin, pod, src

WEBAPP = DATA / "manifests" / "helm" / "webapp-rendered.yaml"


def test_images_lists_what_sed_would_change_and_why_not() -> None:
    listing = collect_images(read_sources([str(WEBAPP)], no_stdin()))
    assert [(s.text, s.line, s.column, s.reason) for s in listing.skipped] == [
        ("quay.io/fake/thing:v1", 25, 15, "not in an image field"),  # a text block
        ("quay.io/fake/inside-configmap:v1", 30, 16, "not in an image field"),
        ("quay.io/fake/configmap-key:v1", 31, 10, "not in an image field"),  # ConfigMap data
        ("docker.io/library/not-this:1", 59, 39, "not in an image field"),  # an annotation
    ]
    line = WEBAPP.read_text().splitlines()[24]
    assert line[14:].startswith("quay.io/fake/thing:v1")


def test_rewrite_also_lists_strings_of_the_rules_registries_without_a_tag() -> None:
    result = rewrite([str(WEBAPP)], no_stdin(), mirrors={"quay.io": "q.local"})
    assert [s.text for s in result.skipped] == [
        "quay.io/fake/thing:v1",
        "quay.io/fake",
        "quay.io/fake/inside-configmap:v1",
        "quay.io/fake/configmap-key:v1",
        "quay.io/fake/service-annotation",
        "docker.io/library/not-this:1",
    ]


def test_images_are_not_skipped_and_api_groups_labels_urls_are_not_images() -> None:
    text = pod("image: quay.io/a/b:1") + (
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n"
        "  labels: {app.kubernetes.io/name: x}\n"
        "  annotations:\n    url: 'https://quay.io/repository/a/b?tab=tags'\n"
        "    key: node.kubernetes.io/x\n"
    )
    assert scan(src(text)).skipped == []


def test_the_number_of_strings_looked_at_is_capped() -> None:
    values = "".join(f"  k{i}: quay.io/a/b{i}:1\n" for i in range(MAX_CANDIDATES + 5))
    found = scan(src("data:\n" + values))
    assert len(found.skipped) == MAX_CANDIDATES + 1
    assert found.skipped[-1].reason == "5 more strings with a host and a path were not looked at"
