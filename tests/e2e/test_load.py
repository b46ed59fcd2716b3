"""Archives written by imgpull, loaded and run by the real loaders: docker, podman, skopeo."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.archive_view import ArchiveView
from tests.cli import run_imgpull
from tests.fixtures.images import LAYERS_OUTPUT, StandardImages
from tests.fixtures.loaders import DockerDaemon, Podman, Skopeo, Umoci
from tests.fixtures.registry import RegistryServer
from tests.fixtures.signing import Keys, signed_copy

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh_env")]


def _pull(*args: str) -> None:
    done = run_imgpull("pull", "-q", *args)
    assert done.returncode == 0, done.stderr.decode()


def test_token_tls_config_json_pull_loads_and_runs_in_docker(
    token_registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    fresh_env,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The issue's acceptance line: token auth over TLS with a custom CA, credentials
    from config.json, docker load, docker run prints the image's line."""
    fresh_env.docker_login(token_registry.host, "bob", "builder-secret")
    ref = f"{token_registry.host}/test/hello:1"
    out = tmp_path / "x.tar"
    _pull(ref, "-o", str(out), "--ca-cert", str(token_registry.ca_cert))
    loaded = clean_dockerd.load(out)
    assert f"Loaded image: {ref}" in loaded
    assert clean_dockerd.run(ref).strip() == standard_images.hello.expected_output[0]


@pytest.mark.parametrize("image", ["dockertypes", "layers"])
def test_docker_runs_docker_media_types_and_whiteouts(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
    image: str,
) -> None:
    expected = getattr(standard_images, image)
    ref = f"{registry.host}/{expected.reference}"
    out = tmp_path / "x.tar"
    _pull(ref, "-o", str(out))
    clean_dockerd.load(out)
    lines = clean_dockerd.run(ref).splitlines()
    want = list(LAYERS_OUTPUT) if image == "layers" else list(expected.expected_output)
    assert [line.rstrip() for line in lines] == want


@pytest.mark.parametrize("which", ["multi_oci", "multi_docker"])
def test_docker_loads_arm64_from_index(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
    which: str,
) -> None:
    index = getattr(standard_images, which)
    ref = index.ref(registry.host)
    out = tmp_path / "arm.tar"
    _pull(ref, "--platform", "linux/arm64", "-o", str(out))
    clean_dockerd.load(out)
    info = clean_dockerd.inspect_image(ref)
    assert info["Architecture"] == "arm64"
    assert info["Id"] == index.images["linux/arm64/v8"].config_digest


def test_by_digest_and_tag_plus_digest_load(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
) -> None:
    hello = standard_images.hello
    by_digest = tmp_path / "d.tar"
    _pull(hello.ref(registry.host, by_digest=True), "-o", str(by_digest))
    loaded = clean_dockerd.load(by_digest)
    assert hello.config_digest in loaded  # untagged: docker names it by ID
    assert clean_dockerd.run(hello.config_digest).strip() == hello.expected_output[0]
    pinned = f"{registry.host}/test/hello:pinned@{hello.manifest_digest}"
    both = tmp_path / "td.tar"
    _pull(pinned, "-o", str(both))
    clean_dockerd.load(both)
    assert f"{registry.host}/test/hello:pinned" in clean_dockerd.image_tags()


def test_bundle_of_three_loads_all_three(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    clean_podman: Podman,
    tmp_path: Path,
) -> None:
    imgs = standard_images
    refs = [f"{registry.host}/{i.reference}" for i in (imgs.hello, imgs.dockertypes, imgs.layers)]
    out = tmp_path / "bundle.tar"
    _pull(*refs, "-o", str(out))
    clean_dockerd.load(out)
    assert set(refs) <= clean_dockerd.image_tags()
    for ref, image in zip(refs[:2], (imgs.hello, imgs.dockertypes), strict=True):
        assert clean_dockerd.run(ref).strip() == image.expected_output[0]
    clean_podman.load(out)
    assert set(refs) <= clean_podman.image_names()


def test_stdout_stream_into_docker_load(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
) -> None:
    ref = f"{registry.host}/test/hello:1"
    done = run_imgpull("pull", "-q", ref, "-o", "-")
    assert done.returncode == 0, done.stderr
    streamed = tmp_path / "stream.tar"
    streamed.write_bytes(done.stdout)
    clean_dockerd.load_stdin(streamed)
    assert clean_dockerd.run(ref).strip() == standard_images.hello.expected_output[0]


def test_podman_loads_and_runs_with_original_name(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_podman: Podman,
    tmp_path: Path,
) -> None:
    ref = f"{registry.host}/test/hello:1"
    out = tmp_path / "p.tar"
    _pull(ref, "-o", str(out))
    clean_podman.load(out)
    assert ref in clean_podman.image_names()
    assert clean_podman.run(ref).strip() == standard_images.hello.expected_output[0]


def test_podman_loads_oci_format(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_podman: Podman,
    tmp_path: Path,
) -> None:
    ref = f"{registry.host}/test/dockertypes:1"
    out = tmp_path / "o.tar"
    _pull(ref, "--format", "oci", "-o", str(out))
    clean_podman.load(out)
    assert ref in clean_podman.image_names()


def test_skopeo_reads_both_views_and_checks_digests(
    registry: RegistryServer,
    standard_images: StandardImages,
    skopeo: Skopeo,
    umoci: Umoci,
    tmp_path: Path,
) -> None:
    layers = standard_images.layers
    ref = f"{registry.host}/{layers.reference}"
    out = tmp_path / "s.tar"
    _pull(ref, "-o", str(out))
    # docker-archive: skopeo checks every layer against the config's diff_ids.
    skopeo.docker_archive_to_oci(out, tmp_path / "from-docker")
    # oci-archive: blobs copied unchanged, digests and sizes verified.
    skopeo.oci_archive_to_oci(out, tmp_path / "from-oci", "1", tag="t")
    index = (tmp_path / "from-oci" / "index.json").read_text()
    assert layers.manifest_digest in index
    rootfs = umoci.unpack(tmp_path / "from-oci", "t", tmp_path / "bundle")
    for path, content in layers.expected_files.items():
        assert (rootfs / path).read_bytes() == content
    for path in layers.absent_files:
        assert not (rootfs / path).exists()


def test_skopeo_reads_one_image_of_a_bundle(
    registry: RegistryServer,
    standard_images: StandardImages,
    skopeo: Skopeo,
    tmp_path: Path,
) -> None:
    refs = [f"{registry.host}/test/hello:1", f"{registry.host}/test/dockertypes:1"]
    out = tmp_path / "b.tar"
    _pull(*refs, "-o", str(out))
    skopeo.docker_archive_to_oci(out, tmp_path / "one", refs[1])
    assert ArchiveView.read(out).repo_tags == refs


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_signatures_in_the_archive_are_invisible_to_loaders(
    registry: RegistryServer,
    standard_images: StandardImages,
    clean_dockerd: DockerDaemon,
    clean_podman: Podman,
    skopeo: Skopeo,
    tmp_path: Path,
    fmt: str,
) -> None:
    """--referrers adds index.json entries without image names. docker and podman load
    the docker format's image alone and run it; podman refuses an OCI archive of more than
    one entry ("choose an image"), where skopeo picks the image by its tag."""
    hello = standard_images.hello
    subject = (hello.manifest_digest, len(hello.built.manifest))
    ref = signed_copy(registry.url, hello.ref(registry.host), f"signed-load-{fmt}/hello",
                      subject, Keys.make(tmp_path / "keys"))  # fmt: skip
    out = tmp_path / "signed.tar"
    _pull("--referrers", ref, "--format", fmt, "-o", str(out))
    if fmt == "docker":
        assert f"Loaded image: {ref}" in clean_dockerd.load(out)
        assert clean_dockerd.run(ref).strip() == hello.expected_output[0]
        clean_podman.load(out)
        assert clean_podman.image_names() == {ref}
        assert clean_podman.run(ref).strip() == hello.expected_output[0]
    skopeo.oci_archive_to_oci(out, tmp_path / "from-oci", "1", tag="t")
    assert hello.manifest_digest in (tmp_path / "from-oci" / "index.json").read_text()
