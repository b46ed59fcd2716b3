"""Tests for imgpull.kube: finding and rewriting image references in Kubernetes YAML.

The corpus is ``tests/data/k8s/manifests/`` (hand-written, real-world-shaped manifests:
Helm output, kustomize output, CronJob, nested Lists, anchors, a CRD, kube-system images);
``tests/data/k8s/broken/bad.yaml`` has a YAML syntax error. The golden files beside them
are compared byte for byte:

* ``expected-images.txt``           ``list_images`` over ``manifests`` (as written)
* ``expected-rewrite-mirror.diff``  ``rewrite`` with the ``MIRRORS`` rules below
* ``expected-rewrite-to.diff``      ``rewrite`` with ``--to registry.local:5000/mirror``

To regenerate them after an intended change, run with ``IMGPULL_REGEN_GOLDEN=1``::

    IMGPULL_REGEN_GOLDEN=1 .venv/bin/pytest tests/unit/test_kube.py

and review the change to the golden files with ``git diff`` before committing it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgpull import kube
from imgpull.digest import Digest
from imgpull.errors import ConfigError, InvalidReferenceError
from imgpull.kube import (
    Source,
    find_images,
    list_images,
    make_mapper,
    map_image,
    map_reference,
    parse_mirror,
    parse_mirrors,
    read_sources,
    rewrite,
    rewrite_text,
    unified_diff,
)
from imgpull.reference import Reference, parse_reference

DATA = Path(__file__).resolve().parents[1] / "data" / "k8s"
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


@pytest.fixture(params=["libyaml", "python"])
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with libyaml's loader (when PyYAML has it) and with the pure-Python one."""
    if request.param == "python":
        monkeypatch.setattr(kube, "_FAST_LOADER", None)
    elif kube._FAST_LOADER is None:
        pytest.skip("PyYAML was built without libyaml")
    return str(request.param)


def no_stdin() -> io.StringIO:
    return io.StringIO("")


def corpus_sources(monkeypatch: pytest.MonkeyPatch) -> list[Source]:
    monkeypatch.chdir(DATA)
    return read_sources(["manifests"], no_stdin())


def check_golden(name: str, actual: str) -> None:
    path = DATA / name
    if REGEN:
        path.write_text(actual, encoding="utf-8", newline="")
    assert path.read_text(encoding="utf-8") == actual, f"{name} differs; see module docstring"


def src(text: str, name: str = "t.yaml") -> Source:
    return Source(name, text, name)


def pod(image_line: str) -> str:
    return f"apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    {image_line}\n"


def to_rewrite(text: str, to: str = TO) -> str:
    return rewrite_text(src(text), make_mapper({}, to))


# --------------------------------------------------------------------------- golden files


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


# --------------------------------------------------------------------------- finding


def test_images_finds_every_image_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    sources = corpus_sources(monkeypatch)
    assert list_images(sources) == CORPUS_IMAGES
    every = [use for source in sources for use in find_images(source)]
    assert len(every) == 28  # repeats included: busybox x2, redis x2, cilium x3 (aliases)
    decoys = ("fake", "not-", "image: *agent", "# upstream image:")
    assert not [use for use in every if any(d in use.reference for d in decoys)]
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


def test_invalid_reference_names_file_line_column() -> None:
    source = src(pod("image: Nginx:1.27"), "dir/pod.yaml")
    assert [u.reference for u in find_images(source)] == ["Nginx:1.27"]
    with pytest.raises(ConfigError) as info:
        list_images([source])
    assert info.value.message.startswith('dir/pod.yaml:6:12: invalid reference "Nginx:1.27"')
    assert "lowercase" in info.value.message
    with pytest.raises(ConfigError, match=r"^dir/pod\.yaml:6:12: invalid reference"):
        rewrite_text(source, make_mapper({}, TO))


# --------------------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("image", "mirrors", "to", "expected"),
    [
        ("quay.io/org/app:v1", {"quay.io": "quay.mirrors.ustc.edu.cn"}, None,
         "quay.mirrors.ustc.edu.cn/org/app:v1"),
        ("nginx:1.27", {"docker.io": "m.daocloud.io/docker.io"}, None,
         "m.daocloud.io/docker.io/library/nginx:1.27"),
        ("docker.io/library/nginx:1.27", {"index.docker.io": "mirror.local"}, None,
         "mirror.local/library/nginx:1.27"),
        ("user/app", {"https://docker.io/": "mirror.local:5000/"}, None,
         "mirror.local:5000/user/app"),
        ("ghcr.io/a/b:1", {"quay.io": "q.example"}, None, None),
        ("nginx:1.27", {}, TO, f"{TO}/library/nginx:1.27"),
        ("nginx", {}, TO, f"{TO}/library/nginx"),
        ("quay.io/org/app:v1", {}, TO, f"{TO}/org/app:v1"),
        ("registry.k8s.io/coredns/coredns:v1.11.1", {}, TO, f"{TO}/coredns:v1.11.1"),
        ("registry.k8s.io/kube-apiserver:v1.30.0", {}, TO, f"{TO}/kube-apiserver:v1.30.0"),
        ("registry.k8s.io/pause:3.9", {}, TO, f"{TO}/pause:3.9"),
        ("k8s.gcr.io/coredns/coredns:v1.8.0", {}, TO, f"{TO}/coredns:v1.8.0"),
        ("k8s.gcr.io/etcd:3.5.12-0", {}, "registry.local", "registry.local/etcd:3.5.12-0"),
        (f"nginx@{SHA}", {}, TO, f"{TO}/library/nginx@{SHA}"),
        (f"quay.io/a/b:v1@{SHA}", {}, TO, f"{TO}/a/b:v1@{SHA}"),
        (f"registry.k8s.io/pause:3.9@{SHA}", {}, TO, f"{TO}/pause:3.9@{SHA}"),
        # A mirror rule wins over --to; the kubeadm rule is for --to only.
        ("registry.k8s.io/coredns/coredns:v1", {"registry.k8s.io": "k8s.m.daocloud.io"}, TO,
         "k8s.m.daocloud.io/coredns/coredns:v1"),
        ("ghcr.io/a/b:1", {"quay.io": "q.example"}, TO, f"{TO}/a/b:1"),
        # Already under the prefix: unchanged, so rewriting twice is a no-op.
        (f"{TO}/library/nginx:1.27", {}, TO, None),
        ("registry.local:5000/other/x:1", {}, TO, f"{TO}/other/x:1"),
        ("quay.io/a/b:1", {"quay.io": "quay.io"}, None, None),
        ("nginx:1", {"docker.io": "docker.io/hub"}, None, "docker.io/hub/library/nginx:1"),
        ("docker.io/hub/library/nginx:1", {"docker.io": "docker.io/hub"}, None, None),
        ("localhost:5000/x", {}, "[::1]:5000", "[::1]:5000/x"),
    ],
)  # fmt: skip
def test_map_image(
    image: str, mirrors: dict[str, str], to: str | None, expected: str | None
) -> None:
    assert map_image(image, mirrors=mirrors, to=to) == expected


def test_map_reference_for_push() -> None:
    ref = parse_reference("registry.k8s.io/coredns/coredns:v1.11.1")
    mapped = map_reference(ref, mirrors={}, to=TO)
    assert mapped == Reference("registry.local:5000", "mirror/coredns", "v1.11.1")
    assert map_reference(parse_reference("nginx"), mirrors={}, to=TO) == Reference(
        "registry.local:5000", "mirror/library/nginx", "latest"
    )
    assert map_reference(parse_reference("gcr.io/a/b:1"), mirrors={}, to=None) is None
    # Already under the prefix: None, and push keeps the image where it is.
    there = parse_reference(f"{TO}/library/nginx:1")
    assert map_reference(there, mirrors={}, to=TO) is None


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("quay.io", "expected SRC=DST"),
        ("docker.io/library=mirror.local", "without a path"),
        ("=mirror.local", "empty"),
        ("quay.io=", "empty"),
        ("quay.io=https://mirror.local", "without a scheme"),
        ("quay.io=mirror", '"mirror" is not a registry host'),
        ("quay.io=mirror.local/Bad", "invalid"),
        ("bad_host!=mirror.local", "invalid registry"),
    ],
)
def test_bad_mirror_rules(rule: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mirror(rule)


def test_parse_mirrors() -> None:
    assert parse_mirrors(["https://quay.io=q.local/", "docker.io=m.io/docker.io"]) == {
        "quay.io": "q.local",
        "docker.io": "m.io/docker.io",
    }
    with pytest.raises(ConfigError, match="more than once"):
        parse_mirrors(["docker.io=a.io", "index.docker.io=b.io"])


def test_bad_target_prefix() -> None:
    with pytest.raises(ConfigError, match="not a registry host"):
        make_mapper({}, "mirror/library")
    with pytest.raises(ConfigError, match="nothing to rewrite"):
        rewrite(["-"], io.StringIO(""), mirrors={}, to=None)


ALNUM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
PATH_COMPONENT = st.builds(
    lambda a, sep, b: a if sep is None else f"{a}{sep}{b}",
    ALNUM,
    st.none() | st.sampled_from([".", "_", "__", "-", "--"]),
    ALNUM,
)
TAG = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("aZ9_"),
    st.text("abcXYZ0189_.-", max_size=12),
)


@st.composite
def references(draw: st.DrawFn) -> Reference:
    registry = draw(
        st.sampled_from(
            ["docker.io", "quay.io", "ghcr.io", "registry.k8s.io", "k8s.gcr.io",
             "localhost:5000", "[::1]:5000", "10.0.0.1:443", "Example.COM"]
        )
    )  # fmt: skip
    path = "/".join(draw(st.lists(PATH_COMPONENT, min_size=1, max_size=4)))
    tag = draw(st.none() | TAG)
    digest = draw(st.none() | st.binary(min_size=32, max_size=32).map(lambda b: b.hex()))
    if tag is None and digest is None:
        tag = "latest"
    return Reference(
        registry, path, tag, None if digest is None else Digest.parse(f"sha256:{digest}")
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ref=references(),
    prefix=st.sampled_from(["registry.local:5000/mirror", "harbor.example.com", "[fd00::1]/a/b"]),
)
def test_to_prefix_yields_valid_reference_with_same_tag_and_digest(
    ref: Reference, prefix: str
) -> None:
    result = map_reference(ref, mirrors={}, to=prefix)
    assert result is not None
    mapped = str(result)
    reparsed = parse_reference(mapped)
    assert reparsed == result
    assert mapped.startswith(prefix + "/")
    assert (reparsed.tag, reparsed.digest) == (ref.tag, ref.digest)
    suffix = "" if ref.tag is None else f":{ref.tag}"
    suffix += "" if ref.digest is None else f"@{ref.digest}"
    assert mapped.endswith(suffix)
    if ref.registry in ("registry.k8s.io", "k8s.gcr.io"):
        assert reparsed.repository.rsplit("/", 1)[-1] == ref.repository.rsplit("/", 1)[-1]
    else:
        assert reparsed.name.endswith("/" + ref.repository)
    # The rewrite of the written form agrees with the mapping.
    assert map_image(str(ref), mirrors={}, to=prefix) == mapped


# --------------------------------------------------------------------------- rewriting


def test_rewrite_changes_only_image_lines(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for source in corpus_sources(monkeypatch):
        images_by_line = {u.line: u.reference for u in find_images(source)}
        for mapper in (make_mapper(MIRRORS, None), make_mapper({}, TO)):
            new = rewrite_text(source, mapper)
            old_lines, new_lines = source.text.split("\n"), new.split("\n")
            assert len(old_lines) == len(new_lines)
            for number, (old, line) in enumerate(zip(old_lines, new_lines, strict=True), 1):
                if old == line:
                    continue
                image = images_by_line[number]
                mapped = mapper(image)
                assert mapped is not None
                # Same line with only the value swapped: comments, quotes, indent intact.
                assert old.replace(image, mapped, 1) == line, (source.name, number)


def test_round_trip_parses_to_mapped_images(monkeypatch: pytest.MonkeyPatch) -> None:
    mapper = make_mapper(MIRRORS, TO)
    for source in corpus_sources(monkeypatch):
        new = rewrite_text(source, mapper)
        expected = [mapper(u.reference) or u.reference for u in find_images(source)]
        assert [u.reference for u in find_images(src(new))] == expected
        # Everything but the images loads to the same data.
        old_docs = list(yaml.load_all(source.text, Loader=FAST))
        new_docs = list(yaml.load_all(new, Loader=FAST))
        assert len(old_docs) == len(new_docs)
        assert str(old_docs).count("quay.io/fake") == str(new_docs).count("quay.io/fake")


def test_rewrite_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    mapper = make_mapper({}, TO)
    for source in corpus_sources(monkeypatch):
        once = rewrite_text(source, mapper)
        assert rewrite_text(src(once), mapper) == once


def test_kubeadm_coredns_rule_in_manifest() -> None:
    text = (DATA / "manifests" / "cluster" / "kube-system.yaml").read_text()
    new = to_rewrite(text, "registry.aliyuncs.com/google_containers")
    images = [u.reference for u in find_images(src(new))]
    assert "registry.aliyuncs.com/google_containers/coredns:v1.11.1" in images
    assert "registry.aliyuncs.com/google_containers/kube-proxy:v1.30.2" in images
    assert "registry.aliyuncs.com/google_containers/pause:3.9" in images
    assert not [i for i in images if "coredns/coredns" in i]


def test_anchor_rewritten_once_alias_untouched() -> None:
    text = (DATA / "manifests" / "daemonset-anchors.yaml").read_text()
    new = to_rewrite(text)
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert changed == [
        (
            "          image: &agent quay.io/cilium/cilium:v1.15.6   # one tag for every container",
            f"          image: &agent {TO}/cilium/cilium:v1.15.6   # one tag for every container",
        ),
        (
            "          image: quay.io/cilium/hubble-relay:v1.15.6",
            f"          image: {TO}/cilium/hubble-relay:v1.15.6",
        ),
    ]
    assert "image: *agent" in new
    assert [u.reference for u in find_images(src(new))].count(f"{TO}/cilium/cilium:v1.15.6") == 3


def test_anchor_with_tag_and_quotes(loader: str) -> None:
    new = to_rewrite(pod('image: &i !!str "nginx:1"  # c'))
    assert new == pod(f'image: &i !!str "{TO}/library/nginx:1"  # c')


@pytest.mark.parametrize(
    ("line", "to", "expected"),
    [
        ("image: nginx:1", TO, f"image: {TO}/library/nginx:1"),
        ("image: 'nginx:1'", TO, f"image: '{TO}/library/nginx:1'"),
        ('image: "nginx:1"', TO, f'image: "{TO}/library/nginx:1"'),
        # "[" cannot start a plain scalar: double quotes.
        ("image: nginx:1", "[::1]:5000", 'image: "[::1]:5000/library/nginx:1"'),
        ("image: 'nginx:1'", "[::1]:5000", "image: '[::1]:5000/library/nginx:1'"),
        ("image: nginx:1 # keep", TO, f"image: {TO}/library/nginx:1 # keep"),
        ("image:    nginx:1", TO, f"image:    {TO}/library/nginx:1"),
        ("image: |-\n      nginx:1", TO, f"image: |-\n      {TO}/library/nginx:1"),
        ('image: "nginx\\\n      :1"', TO, f'image: "{TO}/library/nginx:1"'),
    ],
)
def test_quoting_styles(loader: str, line: str, to: str, expected: str) -> None:
    assert to_rewrite(pod(line), to) == pod(expected)


def test_flow_collections_quote_a_new_colon_only() -> None:
    text = "spec:\n  containers: [{name: a, image: nginx}, {image: nginx:1}]\n"
    assert to_rewrite(text, "mirror.local") == (
        "spec:\n  containers: [{name: a, image: mirror.local/library/nginx},"
        " {image: mirror.local/library/nginx:1}]\n"
    )
    assert to_rewrite(text) == (
        f'spec:\n  containers: [{{name: a, image: "{TO}/library/nginx"}},'
        f" {{image: {TO}/library/nginx:1}}]\n"
    )


def test_block_scalars() -> None:
    text = pod("image: |\n      nginx:1\n      more")
    with pytest.raises(ConfigError, match="invalid reference"):
        to_rewrite(text)
    folded = pod("image: >-\n      nginx:1\n\n")
    assert to_rewrite(folded) == pod(f"image: >-\n      {TO}/library/nginx:1\n\n")


def test_crlf_bom_and_missing_final_newline_are_kept() -> None:
    text = "\ufeffspec:\r\n  containers:\r\n  - image: nginx:1\r\n    name: a"
    new = to_rewrite(text)
    assert new == f"\ufeffspec:\r\n  containers:\r\n  - image: {TO}/library/nginx:1\r\n    name: a"
    diff = unified_diff("x.yaml", "a\nb", "a\nc")
    assert diff.endswith("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
    assert unified_diff("x.yaml", "same", "same") == ""


def test_unchanged_text_is_returned_as_is() -> None:
    text = pod("image: gcr.io/a/b:1  # x")
    assert rewrite_text(src(text), make_mapper({"quay.io": "q.local"}, None)) is text


# --------------------------------------------------------------------------- inputs


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (DATA / "manifests" / "helm" / "webapp-rendered.yaml").read_text()
    sources = read_sources(["-"], io.StringIO(text))
    assert sources == [Source("-", text, None)]
    assert list_images(sources)[0] == "busybox:1.36"
    result = rewrite(["-"], io.StringIO(text), mirrors=MIRRORS, to=None)
    assert result.diff == ""
    assert result.changed == ["-"]
    assert result.text_for_stdin is not None
    assert "image: m.daocloud.io/docker.io/library/busybox:1.36" in result.text_for_stdin
    assert ("busybox:1.36", "m.daocloud.io/docker.io/library/busybox:1.36") in result.replacements
    unchanged = rewrite(["-"], io.StringIO("a: 1\n"), mirrors=MIRRORS, to=None)
    assert (unchanged.text_for_stdin, unchanged.changed) == ("a: 1\n", [])
    with pytest.raises(ConfigError, match="in place"):
        rewrite(["-"], io.StringIO(text), mirrors=MIRRORS, to=None, in_place=True)
    with pytest.raises(ConfigError, match="more than once"):
        read_sources(["-", "-"], io.StringIO(text))


def test_directories_sorted_recursive_and_deduplicated(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b-c").mkdir()
    files = ("b/z.yml", "a.yaml", "b/a.yaml", "c.yaml", "b-c/x.yaml", "notes.txt", ".git/x.yaml",
             ".hidden.yaml")  # fmt: skip
    for name in files:
        (tmp_path / name).write_text("a: 1\n")
    (tmp_path / "linked").symlink_to(tmp_path / "b")
    names = [s.name for s in read_sources([str(tmp_path), str(tmp_path / "a.yaml")], no_stdin())]
    # filepath.Walk order, as kubectl: "b" sorts before "b-c", and its files come first.
    expected = ("a.yaml", "b/a.yaml", "b/z.yml", "b-c/x.yaml", "c.yaml")
    assert names == [str(tmp_path / n) for n in expected]
    # A file given by name is read whatever its extension.
    assert [s.name for s in read_sources([str(tmp_path / "notes.txt")], no_stdin())] == [
        str(tmp_path / "notes.txt")
    ]


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_sources([str(tmp_path / "missing.yaml")], no_stdin())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \*\.yaml or \*\.yml files"):
        read_sources([str(tmp_path / "empty")], no_stdin())
    (tmp_path / "latin1.yaml").write_bytes(b"a: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_sources([str(tmp_path / "latin1.yaml")], no_stdin())
    with pytest.raises(ConfigError, match="no input"):
        read_sources([], no_stdin())


# --------------------------------------------------------------------------- in place, errors


def test_in_place_atomic_keeps_mode_follows_links(tmp_path: Path) -> None:
    tree = tmp_path / "manifests"
    shutil.copytree(DATA / "manifests", tree)
    target = tree / "cluster" / "kube-system.yaml"
    target.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    inode = target.stat().st_ino
    preview = rewrite([str(tree)], no_stdin(), mirrors=MIRRORS, to=None)

    result = rewrite([str(link), str(tree)], no_stdin(), mirrors=MIRRORS, to=None, in_place=True)

    # The file reached twice (link and directory) is rewritten once, under its first name.
    assert result.changed[0] == str(link)
    assert str(target) not in result.changed
    assert len(result.changed) == len(preview.changed)
    assert link.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # replaced by os.replace, not written over
    assert "image: k8s.m.daocloud.io/kube-proxy:v1.30.2" in target.read_text()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary files left
    # What was written is what the preview showed.
    for name in preview.changed:
        original = (DATA / Path(name).relative_to(tmp_path)).read_text()
        assert unified_diff(name, original, Path(name).read_text()) in preview.diff
    # A second run changes nothing and writes nothing.
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tree.rglob("*.yaml")}
    again = rewrite([str(tree)], no_stdin(), mirrors=MIRRORS, to=None, in_place=True)
    assert (again.diff, again.changed) == ("", [])
    assert stamps == {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tree.rglob("*.yaml")}


def test_in_place_touches_only_changed_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod("image: quay.io/a/b:1"))
    (tmp_path / "b.yaml").write_text(pod("image: gcr.io/a/b:1"))
    stamp = (tmp_path / "b.yaml").stat()
    result = rewrite([str(tmp_path)], no_stdin(), mirrors={"quay.io": "q.local"}, to=None,
                     in_place=True)  # fmt: skip
    assert result.changed == [str(tmp_path / "a.yaml")]
    assert (tmp_path / "a.yaml").read_text() == pod("image: q.local/a/b:1")
    after = (tmp_path / "b.yaml").stat()
    assert (after.st_ino, after.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)


def test_syntax_error_names_file_line_column(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    with pytest.raises(ConfigError) as info:
        list_images(read_sources(["broken"], no_stdin()))
    message = info.value.message
    # libyaml: "did not find expected '-' indicator"; PyYAML: "expected <block end>, ..."
    assert re.fullmatch(
        r"broken/bad\.yaml:9:6: invalid YAML: [^\n]+ "
        r"\(while parsing a block collection at line 7, column 5\)",
        message,
    ), message
    with pytest.raises(ConfigError, match=r"^broken/bad\.yaml:9:6: invalid YAML"):
        rewrite(["broken/bad.yaml"], no_stdin(), mirrors={}, to=TO)


def test_reader_error_has_position(loader: str) -> None:
    with pytest.raises(
        ConfigError, match=r"^t\.yaml:2:4: invalid YAML: \w+ characters are not allowed$"
    ):
        find_images(src("a: 1\nb: \x01\n"))


def test_nothing_written_when_any_input_is_bad(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(pod("image: quay.io/a/b:1"))
    bad = tmp_path / "zz-bad.yaml"
    shutil.copy(DATA / "broken" / "bad.yaml", bad)
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(pod('image: "quay.io/a/b:"'))
    stamp = good.stat().st_mtime_ns
    for inputs in ([good, bad], [good, invalid], [good, tmp_path / "missing.yaml"]):
        with pytest.raises(ConfigError):
            rewrite([str(p) for p in inputs], no_stdin(), mirrors={"quay.io": "q.local"},
                    to=None, in_place=True)  # fmt: skip
        assert good.read_text() == pod("image: quay.io/a/b:1")
        assert good.stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"invalid\.yaml:6:12: invalid reference"):
        rewrite([str(invalid)], no_stdin(), mirrors={}, to=TO)


def test_mapper_errors_are_located() -> None:
    def boom(text: str) -> str | None:
        raise InvalidReferenceError(f"bad {text}")

    with pytest.raises(ConfigError, match=r"^t\.yaml:6:12: bad x:1$"):
        rewrite_text(src(pod("image: x:1")), boom)
