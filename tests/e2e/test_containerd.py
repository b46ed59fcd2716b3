"""containerd as a loader (issue 13): what a kubeadm or k3s node does with an imgpull archive.

A private containerd (``tests.fixtures.loaders.Containerd``: own root, state, socket and
config, no CRI plugin) imports each archive into the ``k8s.io`` namespace, where kubelet's
CRI plugin looks for images, with ``ctr -n k8s.io images import`` (``k3s ctr images
import`` is the same command), then ``ctr run`` runs it (a new network namespace without
CNI: no network, nothing to configure) and must print the image's line.

Names: kubelet asks the CRI for the normalized reference of a pod's ``image:`` field
(``nginx:1.27`` -> ``docker.io/library/nginx:1.27``), so containerd must list exactly
those full names (``ctr images ls``).  Docker Hub names are produced offline by pulling
through ``--mirror docker.io=http://<test registry>``, which keeps the original names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run_imgpull
from tests.fixtures.images import LAYERS_OUTPUT, Pusher, StandardImages
from tests.fixtures.loaders import Containerd
from tests.fixtures.registry import RegistryServer
from tests.fixtures.signing import Keys, signed_copy
from tests.fixtures.writers import normalize_name

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh_env")]


@pytest.fixture
def clean_containerd(containerd: Containerd) -> Containerd:
    containerd.remove_all_images()
    return containerd


@pytest.fixture(scope="module")
def docker_hub_names(registry: RegistryServer, standard_images: StandardImages) -> dict[str, str]:
    """Two images in the test registry under Docker Hub paths: reference -> its line."""
    pusher = Pusher(registry.url)
    try:
        pusher.push_image("library/hello", "1", standard_images.hello.built)
        pusher.push_image("team/app", "2", standard_images.dockertypes.built)
    finally:
        pusher.close()
    return {
        "hello:1": standard_images.hello.expected_output[0],
        "team/app:2": standard_images.dockertypes.expected_output[0],
    }


def _pull(*args: str) -> None:
    done = run_imgpull("pull", "-q", *args, timeout=300)
    assert done.returncode == 0, done.stderr.decode()


def _run_lines(containerd: Containerd, ref: str) -> list[str]:
    return [line.rstrip() for line in containerd.run(ref).splitlines()]


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_single_image_imports_and_runs(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_containerd: Containerd,
    tmp_path: Path,
    fmt: str,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    out = tmp_path / "hello.tar"
    _pull(ref, "--format", fmt, "-o", str(out))
    imported = clean_containerd.import_archive(out)
    assert f"unpacking {ref} ({standard_images.hello.manifest_digest})" in imported
    (image,) = clean_containerd.images()
    assert (image.name, image.digest) == (ref, standard_images.hello.manifest_digest)
    assert clean_containerd.run(ref).strip() == standard_images.hello.expected_output[0]


def test_docker_hub_images_get_the_names_kubelet_resolves(
    registry: RegistryServer,
    docker_hub_names: dict[str, str],
    clean_containerd: Containerd,
    tmp_path: Path,
) -> None:
    out = tmp_path / "hub.tar"
    _pull(*docker_hub_names, "--mirror", f"docker.io=http://{registry.host}", "-o", str(out))
    clean_containerd.import_archive(out)
    wanted = {normalize_name(ref) for ref in docker_hub_names}
    assert wanted == {"docker.io/library/hello:1", "docker.io/team/app:2"}
    assert clean_containerd.image_names() == wanted
    for ref, line in docker_hub_names.items():
        assert clean_containerd.run(normalize_name(ref)).strip() == line


def test_bundle_of_three_imports_and_all_three_run(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_containerd: Containerd,
    tmp_path: Path,
) -> None:
    images = (standard_images.hello, standard_images.dockertypes, standard_images.layers)
    refs = [image.ref(registry.host) for image in images]
    out = tmp_path / "bundle.tar"
    _pull(*refs, "-o", str(out))
    clean_containerd.import_archive(out)
    assert clean_containerd.image_names() == set(refs)
    for ref, image in zip(refs, images, strict=True):
        assert _run_lines(clean_containerd, ref) == list(image.expected_output), ref
    assert _run_lines(clean_containerd, refs[2]) == list(LAYERS_OUTPUT)


@pytest.mark.parametrize(
    ("which", "platforms"),
    [
        ("multi_oci", ["--all-platforms"]),
        ("multi_docker", ["--all-platforms"]),
        ("multi_oci", ["--platform", "linux/amd64,linux/arm64"]),
        ("multi_docker", ["--platform", "linux/arm64,linux/amd64"]),
    ],
)
@pytest.mark.parametrize("ctr_all_platforms", [False, True])
def test_multi_platform_archive_imports_and_runs_the_host_platform(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_containerd: Containerd,
    tmp_path: Path,
    which: str,
    platforms: list[str],
    ctr_all_platforms: bool,
) -> None:
    index = getattr(standard_images, which)
    ref = index.ref(registry.host)
    out = tmp_path / "multi.tar"
    _pull(ref, *platforms, "-o", str(out))
    clean_containerd.import_archive(out, all_platforms=ctr_all_platforms)
    (image,) = clean_containerd.images()
    assert image.name == ref
    if "--all-platforms" in platforms:
        assert image.digest == index.digest  # the registry's own index, kept
    assert {"linux/amd64", "linux/arm64/v8"} <= set(image.platforms)
    host = standard_images.host_platform
    assert clean_containerd.run(ref).strip() == index.markers[host]


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_archive_with_signatures_imports_the_image_alone(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_containerd: Containerd,
    tmp_path: Path,
    fmt: str,
) -> None:
    """Signatures and SBOMs carried with --referrers are index entries without an image
    name: containerd keeps them as content and lists, unpacks and runs only the image."""
    hello = standard_images.hello
    keys = Keys.make(tmp_path / "keys")
    subject = (hello.manifest_digest, len(hello.built.manifest))
    ref = signed_copy(registry.url, hello.ref(registry.host), f"signed-ctr-{fmt}/hello",
                      subject, keys)  # fmt: skip
    out = tmp_path / "signed.tar"
    _pull("--referrers", ref, "--format", fmt, "-o", str(out))
    clean_containerd.import_archive(out)
    assert [(i.name, i.digest) for i in clean_containerd.images()] == [(ref, hello.manifest_digest)]
    assert clean_containerd.run(ref).strip() == hello.expected_output[0]
