"""The corpus and its golden files, compared byte for byte:

* ``expected-images.txt``           ``list_images`` over ``manifests`` (as written)
* ``expected-rewrite-mirror.diff``  ``rewrite`` with the ``MIRRORS`` rules
* ``expected-rewrite-to.diff``      ``rewrite`` with ``--to registry.local:5000/mirror``

To regenerate them after an intended change::

    IMGPULL_REGEN_GOLDEN=1 .venv/bin/pytest tests/unit/kube/test_golden.py

and review the change to the golden files with ``git diff`` before committing it.
"""

from __future__ import annotations

import pytest

from imgpull.kube import find_images, list_images, rewrite
from tests.unit.kube.helpers import (
    DATA,
    MIRRORS,
    TO,
    check_golden,
    corpus_sources,
    no_stdin,
)

#: Every image of the corpus, in order of first appearance, written by hand.
CORPUS_IMAGES = [
    # cluster/kube-system.yaml
    "registry.k8s.io/kube-proxy:v1.30.2",
    "registry.k8s.io/coredns/coredns:v1.11.1",
    "registry.k8s.io/kube-apiserver:v1.30.2",
    "k8s.gcr.io/pause:3.9",
    "registry.k8s.io/metrics-server/metrics-server:v0.7.1",
    # cluster/rollout.yaml
    "argoproj/rollouts-demo:blue",
    # cronjob.yaml
    "bitnami/kubectl:1.30",
    "alpine:3.20",
    # daemonset-anchors.yaml
    "quay.io/cilium/cilium:v1.15.6",
    "quay.io/cilium/hubble-relay:v1.15.6",
    # debug-pod.yaml
    "redis:7.2.5",
    "docker.io/nicolaka/netshoot:v0.13",
    # helm/webapp-rendered.yaml
    "busybox:1.36",
    "ghcr.io/acme/webapp-migrations:2.4.1",
    "ghcr.io/acme/webapp:2.4.1",
    # env values named *IMAGE* with a registry host are images (issue 10): these two were
    # decoys when only container "image" fields counted.
    "quay.io/fake/env-value:v1",
    "docker.io/library/not-an-image-either:1",
    "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
    "docker.io/fluent/fluent-bit:3.0.7",
    # kustomize/build-output.yaml
    "nginx:1.27",
    "gcr.io/distroless/static-debian12:nonroot",
    "docker.io/bitnami/postgresql:16.3.0@sha256:"
    "4a9b8a6e7f1c2d3b5a6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2",
    "quay.io/prometheuscommunity/postgres-exporter@sha256:"
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
    # list.yaml
    "quay.io/coreos/etcd:v3.5.13",
    "ghcr.io/acme/nested:1.0.0",
    "localhost:5000/x:dev",
]


def test_images_golden(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    images = list_images(corpus_sources(monkeypatch))
    check_golden("expected-images.txt", "".join(f"{image}\n" for image in images))


def test_rewrite_mirror_golden(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    result = rewrite(["manifests"], no_stdin(), mirrors=MIRRORS, to=None)
    check_golden("expected-rewrite-mirror.diff", result.diff)
    assert "manifests/cluster/rollout.yaml" in result.changed  # implicit docker.io
    assert result.text_for_stdin is None


def test_rewrite_to_golden(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    result = rewrite(["manifests"], no_stdin(), mirrors={}, to=TO)
    check_golden("expected-rewrite-to.diff", result.diff)
    assert len(result.changed) == 8


def test_mirror_golden_leaves_unmatched_registries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    diff = rewrite(["manifests"], no_stdin(), mirrors=MIRRORS, to=None).diff
    removed = [line for line in diff.splitlines() if line.startswith("-  ")]
    assert not any("gcr.io/distroless" in line for line in removed)
    assert not any("localhost:5000" in line for line in removed)
    assert not any("k8s.gcr.io" in line for line in removed)
    assert "+        image: k8s.m.daocloud.io/coredns/coredns:v1.11.1" in diff
    assert "+        image: m.daocloud.io/docker.io/argoproj/rollouts-demo:blue" in diff


def test_images_finds_every_image_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = corpus_sources(monkeypatch)
    assert list_images(sources) == CORPUS_IMAGES
    every = [use for source in sources for use in find_images(source)]
    # repeats included: busybox x2, redis x2, cilium x3 (aliases); two env values
    assert len(every) == 30
    assert [use.kind for use in every].count("env") == 2
    decoys = ("fake", "not-", "image: *agent", "# upstream image:")
    found_decoys = [use.reference for use in every if any(d in use.reference for d in decoys)]
    assert found_decoys == ["quay.io/fake/env-value:v1", "docker.io/library/not-an-image-either:1"]
    # Every line that mentions "image:" and is not a reported image is a decoy.
    unreported = [
        line
        for source in sources
        for number, line in enumerate(source.text.splitlines(), 1)
        if "image:" in line and number not in {u.line for u in every if u.path == source.name}
    ]
    assert len(unreported) == 6
    assert all(any(d in line for d in decoys) for line in unreported), unreported
    assert sum(source.text.count("quay.io/fake") for source in sources) == 6


def test_images_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    images = list_images(corpus_sources(monkeypatch), normalized=True)
    assert images[5:8] == [
        "docker.io/argoproj/rollouts-demo:blue",
        "docker.io/bitnami/kubectl:1.30",
        "docker.io/library/alpine:3.20",
    ]
    assert "docker.io/library/nginx:1.27" in images
    assert "docker.io/argoproj/rollouts-demo:blue" in images
    assert len(images) == len(CORPUS_IMAGES)


def test_positions_are_one_based_and_skip_anchors(
    loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = {s.name: s for s in corpus_sources(monkeypatch)}
    uses = find_images(sources["manifests/daemonset-anchors.yaml"])
    assert [(u.line, u.column) for u in uses] == [(18, 25), (18, 25), (18, 25), (27, 18)]
    line = sources["manifests/daemonset-anchors.yaml"].text.splitlines()[17]
    assert line[24:].startswith("quay.io/cilium/cilium:v1.15.6")
    nginx = find_images(sources["manifests/kustomize/build-output.yaml"])[0]
    assert (nginx.reference, nginx.location) == (
        "nginx:1.27",
        "manifests/kustomize/build-output.yaml:53:16",
    )
