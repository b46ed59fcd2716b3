"""Several platforms in one archive: the OCI view holds an index of just those, the
Docker view loads the host's (or the first requested) platform under the image's name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.archive_view import ArchiveView
from tests.cli import run_imgpull
from tests.fixtures.images import StandardImages
from tests.fixtures.loaders import DockerDaemon, Podman, Skopeo
from tests.fixtures.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh_env")]


def _pull(*args: str) -> None:
    done = run_imgpull("pull", "-q", *args)
    assert done.returncode == 0, done.stderr.decode()


def test_all_platforms_keeps_the_index_digest(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    skopeo: Skopeo,
    tmp_path: Path,
) -> None:
    index = standard_images.multi_oci
    ref = index.ref(registry.host)
    out = tmp_path / "all.tar"
    _pull(ref, "--all-platforms", "-o", str(out))
    view = ArchiveView.read(out)
    assert view.index_digests == [index.digest]
    for digest in (*index.platforms.values(), *index.attestation_digests):
        assert digest in view.blobs
    # docker loads the host's platform under the image's name and runs it.
    clean_dockerd.load(out)
    host = standard_images.host_platform
    assert clean_dockerd.run(ref).strip() == index.markers[host]
    # skopeo reads the whole index from the OCI view, digests checked.
    skopeo.copy(f"oci-archive:{out}:oci", f"oci:{tmp_path / 'copy'}:t", "--all")
    copied = json.loads((tmp_path / "copy" / "index.json").read_text())
    assert copied["manifests"][0]["digest"] == index.digest


def test_platform_list_gives_an_index_of_just_those(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    clean_podman: Podman,
    tmp_path: Path,
) -> None:
    index = standard_images.multi_docker
    ref = index.ref(registry.host)
    out = tmp_path / "two.tar"
    _pull(ref, "--platform", "linux/arm64,linux/amd64", "-o", str(out))
    view = ArchiveView.read(out)
    top = view.index_json["manifests"][0]
    listed = json.loads(view.blobs[top["digest"]])
    assert {m["digest"] for m in listed["manifests"]} == set(index.platforms.values())
    # The Docker view holds the first requested platform.
    clean_dockerd.load(out)
    assert clean_dockerd.inspect_image(ref)["Architecture"] == "arm64"
    clean_podman.load(out)
    assert ref in clean_podman.image_names()
