"""The renaming rules applied to image values as written (kube.mapping)."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgpull.digest import Digest
from imgpull.errors import ConfigError
from imgpull.kube import (
    find_images,
    make_mapper,
    map_image,
    map_reference,
    parse_mirror,
    parse_mirrors,
    rewrite,
    rewrite_text,
)
from imgpull.reference import Reference, parse_reference
from tests.unit.kube.helpers import DATA, SHA, TO, src, to_rewrite


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
        # A mirror rule wins over --to; a mirror keeps every path.
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
        # The scheme is optional everywhere, and ignored (issue 10).
        ("quay.io/a/b:1", {"quay.io": "https://mirror.local"}, None, "mirror.local/a/b:1"),
        ("quay.io/a/b:1", {}, "http://registry.local:5000/m/", "registry.local:5000/m/a/b:1"),
    ],
)  # fmt: skip
def test_map_image(
    image: str, mirrors: dict[str, str], to: str | None, expected: str | None
) -> None:
    assert map_image(image, mirrors=mirrors, to=to) == expected


REPO = "registry.aliyuncs.com/google_containers"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.k8s.io/kube-apiserver:v1.31.0", f"{REPO}/kube-apiserver:v1.31.0"),
        ("registry.k8s.io/coredns/coredns:v1.11.3", f"{REPO}/coredns:v1.11.3"),
        ("k8s.gcr.io/coredns/coredns:v1.8.0", f"{REPO}/coredns:v1.8.0"),
        ("registry.k8s.io/ingress-nginx/controller:v1.11.1",
         f"{REPO}/ingress-nginx/controller:v1.11.1"),
        ("registry.k8s.io/pause", f"{REPO}/pause"),
        # Other registries: only a mirror rule moves them.
        ("quay.io/a/b:1", "quay.mirrors.ustc.edu.cn/a/b:1"),
        ("nginx:1.27", None),
        (f"{REPO}/coredns:v1.11.3", None),
    ],
)  # fmt: skip
def test_image_repository_combines_with_mirrors(image: str, expected: str | None) -> None:
    mapped = map_image(
        image, mirrors={"quay.io": "quay.mirrors.ustc.edu.cn"}, to=None, image_repository=REPO
    )
    assert mapped == expected


def test_the_three_rules_on_kube_system() -> None:
    text = (DATA / "manifests" / "cluster" / "kube-system.yaml").read_text()
    expected = {
        "mirror": [
            "k8s.m.daocloud.io/kube-proxy:v1.30.2",
            "k8s.m.daocloud.io/coredns/coredns:v1.11.1",
        ],
        "image_repository": [f"{REPO}/kube-proxy:v1.30.2", f"{REPO}/coredns:v1.11.1"],
        "to": [f"{REPO}/kube-proxy:v1.30.2", f"{REPO}/coredns:v1.11.1"],
    }
    mappers = {
        "mirror": make_mapper({"registry.k8s.io": "k8s.m.daocloud.io"}),
        "image_repository": make_mapper(image_repository=REPO),
        "to": make_mapper(to=REPO),
    }
    for rule, mapper in mappers.items():
        new = rewrite_text(src(text), mapper)
        assert [u.reference for u in find_images(src(new))][:2] == expected[rule], rule
    # Outside kubeadm: the paths are kept by all three.
    metrics = "registry.k8s.io/metrics-server/metrics-server:v0.7.1"
    assert map_image(metrics, mirrors={}, to=None, image_repository=REPO) == (
        f"{REPO}/metrics-server/metrics-server:v0.7.1"
    )


def test_image_repository_and_a_kubernetes_mirror_are_ambiguous() -> None:
    with pytest.raises(ConfigError, match="both rename Kubernetes"):
        make_mapper({"k8s.gcr.io": "m.local"}, image_repository=REPO)
    with pytest.raises(ConfigError, match="nothing to rewrite"):
        rewrite(["-"], io.StringIO(""))


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
        ("quay.io=ftp://mirror.local", "only http:// and https://"),
        ("quay.io=mirror", '"mirror" is not a registry host'),
        ("quay.io=https://mirror", '"mirror" is not a registry host'),
        ("quay.io=mirror.local/Bad", "invalid"),
        ("quay.io=mirror.local?x=1", "invalid"),
        ("bad_host!=mirror.local", "invalid registry"),
    ],
)
def test_bad_mirror_rules(rule: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_mirror(rule)


def test_mirror_destination_takes_a_scheme_as_pull_does() -> None:
    # Changed on purpose (issue 10): one grammar for every mirror, the scheme optional.
    assert parse_mirror("quay.io=https://mirror.local") == ("quay.io", "mirror.local")
    assert parse_mirror("docker.io=https://m.daocloud.io/docker.io/") == (
        "docker.io",
        "m.daocloud.io/docker.io",
    )


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


def test_kubeadm_coredns_rule_in_manifest() -> None:
    text = (DATA / "manifests" / "cluster" / "kube-system.yaml").read_text()
    new = to_rewrite(text, "registry.aliyuncs.com/google_containers")
    images = [u.reference for u in find_images(src(new))]
    assert "registry.aliyuncs.com/google_containers/coredns:v1.11.1" in images
    assert "registry.aliyuncs.com/google_containers/kube-proxy:v1.30.2" in images
    assert "registry.aliyuncs.com/google_containers/pause:3.9" in images
    assert not [i for i in images if "coredns/coredns" in i]


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
