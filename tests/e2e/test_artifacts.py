"""OCI artifacts (issue 10): Helm charts, signatures, SBOMs, and images listed beside them.

* push: a layout holding artifacts pushes them faithfully: every manifest (an index as it
  is, its artifact children included) keeps its digest, and every blob is there (skopeo
  copies each manifest out of the registry, verifying every digest);
* pull: into the default docker format an artifact is refused with one line naming its
  type and pointing to ``--format oci``; with ``--format oci`` it is written faithfully
  (skopeo reads it, digests unchanged); an index holding an image and an artifact pulls
  the image and runs;
* inspect names the config / artifact media type.

Artifacts are built by ``tests.fixtures.writers`` from the documented shapes (OCI
image-spec 1.1 ``artifactType`` and the empty descriptor; Helm's media types from
HIP-0017) and pushed to the test registry with ``Pusher`` where a test needs them there.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli import ERROR_PREFIX, partial_files, run_imgpull
from tests.fixtures import writers as w
from tests.fixtures.images import BuiltImage, BuiltIndex, Pusher, StandardImages
from tests.fixtures.loaders import DockerDaemon, Skopeo
from tests.fixtures.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh_env")]


def registry_manifest(skopeo: Skopeo, ref: str) -> tuple[str, dict[str, Any]]:
    raw = skopeo.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest(), json.loads(raw)


def copy_out(skopeo: Skopeo, ref: str, dest: Path) -> dict[str, Any]:
    """``skopeo copy --all docker://REF oci:DEST:t``: fetches and verifies every blob."""
    skopeo.copy(f"docker://{ref}", f"oci:{dest}:t", "--all", "--src-tls-verify=false")
    loaded: dict[str, Any] = json.loads((dest / "index.json").read_text())
    return loaded


def imgpull_ok(*args: str) -> str:
    done = run_imgpull(*args, timeout=300)
    assert done.returncode == 0, f"imgpull {' '.join(args)}: exit {done.returncode}\n" + (
        done.stderr.decode()
    )
    return done.stdout.decode()


@dataclass(frozen=True)
class Artifacts:
    image: w.SourceImage  # runnable, the subject of the signature and the SBOM
    helm: BuiltImage
    signature: BuiltImage
    sbom: BuiltImage
    with_sbom: BuiltIndex  # image + SBOM (empty config), as one index
    with_bare_sbom: BuiltIndex  # image + SBOM whose config is an image config "{}"


@pytest.fixture(scope="module")
def artifacts() -> Artifacts:
    image = w.build_sources().alpha
    sbom = w.sbom_artifact(image.built)
    bare = w.sbom_artifact(None, config_media_type=w.OCI_CONFIG)
    return Artifacts(
        image=image,
        helm=w.helm_chart(),
        signature=w.signature_artifact(image.built),
        sbom=sbom,
        with_sbom=w.image_with_artifact(image.built, sbom),
        with_bare_sbom=w.image_with_artifact(image.built, bare),
    )


@pytest.fixture(scope="module")
def in_registry(registry: RegistryServer, artifacts: Artifacts) -> dict[str, str]:
    """The artifacts pushed with ``Pusher``: kind -> reference."""
    pusher = Pusher(registry.url)
    refs = {
        "helm": ("a/charts/demo", "0.1.0", artifacts.helm),
        "signature": ("a/signed", "sha256-sig", artifacts.signature),
        "sbom": ("a/signed", "sbom", artifacts.sbom),
    }
    try:
        pusher.push_image("a/signed", "1", artifacts.image.built)
        for repo, tag, artifact in refs.values():
            pusher.push_image(repo, tag, artifact)
        pusher.push_index("a/with-sbom", "1", artifacts.with_sbom)
        pusher.push_index("a/with-bare-sbom", "1", artifacts.with_bare_sbom)
    finally:
        pusher.close()
    found = {kind: f"{registry.host}/{repo}:{tag}" for kind, (repo, tag, _a) in refs.items()}
    found["with-sbom"] = f"{registry.host}/a/with-sbom:1"
    found["with-bare-sbom"] = f"{registry.host}/a/with-bare-sbom:1"
    return found


def _artifact(artifacts: Artifacts, kind: str) -> BuiltImage:
    built: BuiltImage = getattr(artifacts, kind)
    return built


def _type_of(artifact: BuiltImage) -> str:
    return w.expected_artifact(artifact).artifact_type


# -- push ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tar", [False, True], ids=["layout", "archive"])
def test_helm_chart_layout_pushes_faithfully(
    artifacts: Artifacts, registry: RegistryServer, skopeo: Skopeo, tmp_path: Path, tar: bool
) -> None:
    """A chart as ``helm``/``oras`` keep it in an OCI layout (``ref.name`` = version)."""
    written = w.artifact_layout(
        tmp_path / ("chart.tar" if tar else "chart"), [("0.1.0", artifacts.helm)], tar=tar
    )
    dest = f"{registry.host}/pushed/charts/demo-{'tar' if tar else 'dir'}"
    imgpull_ok("push", "-q", str(written.path), dest)
    digest, manifest = registry_manifest(skopeo, f"{dest}:0.1.0")
    assert digest == artifacts.helm.manifest_digest
    assert manifest["config"]["mediaType"] == w.HELM_CONFIG_MEDIA
    copied = copy_out(skopeo, f"{dest}:0.1.0", tmp_path / "copied")
    assert copied["manifests"][0]["digest"] == artifacts.helm.manifest_digest


@pytest.mark.parametrize("which", ["with_sbom", "with_bare_sbom"])
def test_index_with_image_and_artifact_pushes_as_it_is(
    artifacts: Artifacts,
    registry: RegistryServer,
    skopeo: Skopeo,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
    which: str,
) -> None:
    """The issue's case: an index listing an image and an artifact (platform
    ``unknown/unknown``, one layer, a config without diff_ids) is pushed byte for byte,
    artifact included; pulled back it still runs."""
    index: BuiltIndex = getattr(artifacts, which)
    written = w.artifact_layout(tmp_path / "layout", [("1", index)])
    dest = f"{registry.host}/pushed/{which.replace('_', '-')}"
    imgpull_ok("push", "-q", str(written.path), dest)
    digest, listed = registry_manifest(skopeo, f"{dest}:1")
    assert digest == index.digest
    for child in index.children:
        assert registry_manifest(skopeo, f"{dest}@{child.manifest_digest}")[0] == (
            child.manifest_digest
        )
    # skopeo reads and verifies every blob; it may not keep the index's digest itself, as
    # skopeo 1.9 compresses the SBOM's uncompressed layer on its way into an OCI layout.
    copy_out(skopeo, f"{dest}:1", tmp_path / "copied")
    assert [m["digest"] for m in listed["manifests"]] == [c.manifest_digest for c in index.children]
    pulled = tmp_path / "pulled.tar"
    imgpull_ok("pull", "-q", f"{dest}:1", "-o", str(pulled))
    clean_dockerd.load(pulled)
    assert clean_dockerd.run(f"{dest}:1").strip() == artifacts.image.output


def test_image_signature_and_sbom_in_one_layout_push_faithfully(
    artifacts: Artifacts, registry: RegistryServer, skopeo: Skopeo, tmp_path: Path
) -> None:
    """A layout as ``oras``/``cosign save`` leave it: the image, its signature (cosign's
    ``sha256-<hex>.sig`` tag) and its SBOM, each under its own tag."""
    hexdigest = artifacts.image.built.manifest_digest.split(":")[1]
    entries: list[tuple[str, BuiltImage | BuiltIndex]] = [
        ("1", w.image_with_artifact(artifacts.image.built, artifacts.sbom)),
        (f"sha256-{hexdigest}.sig", artifacts.signature),
        ("sbom", artifacts.sbom),
    ]
    written = w.artifact_layout(tmp_path / "layout", entries, tar=True)
    dest = f"{registry.host}/pushed/signed"
    imgpull_ok("push", "-q", str(written.path), dest)
    for tag, item in entries:
        expected = item.manifest_digest if isinstance(item, BuiltImage) else item.digest
        assert registry_manifest(skopeo, f"{dest}:{tag}")[0] == expected, tag


@pytest.mark.parametrize("dest_kind", ["prefix", "full"])
def test_own_archive_of_an_index_with_an_attestation_pushes_as_it_is(
    registry: RegistryServer,
    standard_images: StandardImages,
    skopeo: Skopeo,
    tmp_path: Path,
    dest_kind: str,
) -> None:
    """README: "a pull, push, pull round trip keeps every digest".  ``pull
    --all-platforms`` keeps the registry's index (buildx attestation included); pushing
    that archive back, to a prefix or to a full reference (an index is one image), must
    keep the index and every child, the attestation manifest as well."""
    index = standard_images.multi_oci
    out = tmp_path / "multi.tar"
    imgpull_ok("pull", "-q", "--all-platforms", index.ref(registry.host), "-o", str(out))
    if dest_kind == "prefix":
        dest = f"{registry.host}/pushed/own"
        ref = f"{dest}/{index.repo}:{index.tag}"
    else:
        dest = ref = f"{registry.host}/pushed/own-full:{index.tag}"
    imgpull_ok("push", "-q", str(out), dest)
    digest, listed = registry_manifest(skopeo, ref)
    assert [m["digest"] for m in listed["manifests"]] == [
        *index.platforms.values(),
        *index.attestation_digests,
    ]
    assert digest == index.digest


# -- pull ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["helm", "signature", "sbom"])
def test_artifact_into_docker_format_is_refused_clearly(
    artifacts: Artifacts, in_registry: dict[str, str], tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "artifact.tar"
    done = run_imgpull("pull", "-q", in_registry[kind], "-o", str(out))
    stderr = done.stderr.decode()
    assert done.returncode != 0, f"a {kind} is not a container image\n{stderr}"
    assert "Traceback" not in stderr and done.stdout == b""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), stderr
    assert _type_of(_artifact(artifacts, kind)) in lines[0], stderr
    assert "--format oci" in lines[0], stderr
    assert not out.exists() and not partial_files(out)


@pytest.mark.parametrize("kind", ["helm", "signature", "sbom"])
def test_artifact_pulls_faithfully_with_format_oci(
    artifacts: Artifacts,
    in_registry: dict[str, str],
    skopeo: Skopeo,
    tmp_path: Path,
    kind: str,
) -> None:
    artifact = _artifact(artifacts, kind)
    out = tmp_path / "artifact.tar"
    imgpull_ok("pull", "-q", "--format", "oci", in_registry[kind], "-o", str(out))
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
    for digest in (artifact.manifest_digest, artifact.config_digest, *artifact.layer_digests):
        assert f"blobs/sha256/{digest.split(':')[1]}" in names
    raw = skopeo.skopeo("inspect", "--raw", f"oci-archive:{out}").stdout.encode()
    assert raw == artifact.manifest
    copied = tmp_path / "copied"
    skopeo.copy(f"oci-archive:{out}", f"oci:{copied}:t")
    index = json.loads((copied / "index.json").read_text())
    assert index["manifests"][0]["digest"] == artifact.manifest_digest


def test_helm_chart_pull_is_readable_by_skopeo_inspect(
    in_registry: dict[str, str], skopeo: Skopeo, tmp_path: Path
) -> None:
    """The issue's words: ``skopeo inspect oci-archive:FILE`` reads the pulled chart.
    (skopeo 1.9 describes OCI artifacts only with ``--raw``; without it, it says the
    manifest is not an image; both mean it parsed the archive.)"""
    out = tmp_path / "chart.tar"
    imgpull_ok("pull", "-q", "--format", "oci", in_registry["helm"], "-o", str(out))
    done = skopeo.skopeo("inspect", f"oci-archive:{out}", check=False)
    assert done.returncode == 0 or w.HELM_CONFIG_MEDIA in done.stderr, done.stderr


@pytest.mark.parametrize("which", ["with-sbom", "with-bare-sbom"])
def test_index_with_image_and_artifact_pulls_the_image(
    artifacts: Artifacts,
    in_registry: dict[str, str],
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
    which: str,
) -> None:
    """The artifact is skipped like an attestation: docker format, host platform."""
    out = tmp_path / "image.tar"
    imgpull_ok("pull", "-q", in_registry[which], "-o", str(out))
    clean_dockerd.load(out)
    assert clean_dockerd.run(in_registry[which]).strip() == artifacts.image.output


# -- inspect ---------------------------------------------------------------------------------------


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


@pytest.mark.parametrize("kind", ["helm", "signature", "sbom"])
def test_inspect_names_the_artifact_type(
    artifacts: Artifacts, in_registry: dict[str, str], kind: str
) -> None:
    artifact = _artifact(artifacts, kind)
    described = json.loads(imgpull_ok("inspect", in_registry[kind]))
    values = set(_strings(described))
    assert artifact.config_media_type in values, described
    assert _type_of(artifact) in values, described
