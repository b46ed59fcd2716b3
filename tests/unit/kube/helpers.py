"""Shared data and helpers of the kube tests.

The corpus is ``tests/data/k8s/manifests/`` (hand-written, real-world-shaped manifests:
Helm output, kustomize output, CronJob, nested Lists, anchors, a CRD, kube-system images);
``tests/data/k8s/broken/bad.yaml`` has a YAML syntax error; ``kube-prometheus/`` and
``operators/`` hold manifests of the shapes those projects ship.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import yaml

from imgpull.kube import Source, make_mapper, read_sources, rewrite_text

DATA = Path(__file__).resolve().parents[2] / "data" / "k8s"
REGEN = os.environ.get("IMGPULL_REGEN_GOLDEN") == "1"
TO = "registry.local:5000/mirror"
MIRRORS = {
    "quay.io": "quay.mirrors.ustc.edu.cn",
    "docker.io": "m.daocloud.io/docker.io",
    "ghcr.io": "ghcr.nju.edu.cn",
    "registry.k8s.io": "k8s.m.daocloud.io",
}
SHA = "sha256:" + "ab" * 32
FAST = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def no_stdin() -> io.StringIO:
    return io.StringIO("")


def corpus_sources(monkeypatch: pytest.MonkeyPatch) -> list[Source]:
    monkeypatch.chdir(DATA)
    return read_sources(["manifests"], no_stdin())


def check_golden(name: str, actual: str) -> None:
    """Compare with ``tests/data/k8s/NAME``; ``IMGPULL_REGEN_GOLDEN=1`` rewrites it (review
    the change with ``git diff`` before committing it)."""
    path = DATA / name
    if REGEN:
        path.write_text(actual, encoding="utf-8", newline="")
    assert path.read_text(encoding="utf-8") == actual, f"{name} differs; see helpers.py"


def src(text: str, name: str = "t.yaml") -> Source:
    return Source(name, text, name)


def pod(image_line: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    {image_line}\n"


def to_rewrite(text: str, to: str = TO) -> str:
    return rewrite_text(src(text), make_mapper({}, to))
