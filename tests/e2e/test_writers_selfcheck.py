"""Self-check of ``tests.fixtures.writers``: each archive has its writer's documented shape.

No imgpull here: members and JSON are checked in Python, and skopeo (which verifies every
digest, and diff_ids for docker-archives) must read each image back.  What is pinned, and
where it was read:

* Docker 20.10 ``docker save`` (real): ``<id>/layer.tar``, ``repositories``, no
  ``index.json``; by image ID ``"RepoTags": null`` and no ``repositories``.
* Docker 25+ (constructed, moby ``image/tarexport/save.go`` and issues #47065/#47072):
  OCI layout plus ``manifest.json``; layers uncompressed (``...layer.v1.tar``, digest =
  diff_id); ``index.json`` names each image with ``io.containerd.image.name`` + the tag
  as ``ref.name`` and the platform; by ID ``"manifests": null``.
* podman 4.3 (real): docker-archive ``-m`` with every name; oci-archive/oci-dir with the
  full name as ``ref.name`` and a rewritten config; docker-dir a ``dir:`` layout.
* skopeo 1.9 (real): ``oci:DIR:TAG`` keeps every byte, ``ref.name`` is just the tag;
  several tags give one layout with several entries.
* buildkit ``type=oci`` (constructed, buildkit ``exporter/oci/export.go`` over containerd
  ``images/archive/exporter.go``): no ``manifest.json``; one descriptor for buildx's image
  index, annotated with name, tag and creation time; members sorted, blobs mode 0444.
* crane (constructed, go-containerregistry ``pkg/v1/tarball/write.go`` and
  ``pkg/legacy/tarball/write.go``): ``tarball`` stores config ``sha256:<hex>`` and
  compressed ``<hex>.tar.gz`` layers; ``legacy`` stores ``<v1 id>/layer.tar`` uncompressed
  with ``json`` and ``VERSION`` (``1.0``), ``repositories``.
* containerd 1.6 ``ctr images export`` (real): ``index.json`` without mediaType, names
  as annotations, a ``manifest.json``; without ``--all-platforms`` an index keeps only
  the host platform's manifest.
* artifacts (constructed, OCI image-spec 1.1 ``manifest.md`` / ``descriptor.md``; Helm
  HIP-0017 media types): readable by skopeo ``inspect --raw``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import writers as w
from tests.fixtures.images import sha256_digest
from tests.fixtures.loaders import (
    Containerd,
    DockerDaemon,
    Podman,
    Skopeo,
)

pytestmark = pytest.mark.e2e


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources() -> w.Sources:
    return w.build_sources()


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("writers")


@pytest.fixture(scope="module")
def layout(sources: w.Sources, out: Path) -> Path:
    return w.source_layout(out / "source-layout", sources)


# -- reading what was written --------------------------------------------------------------


class Members:
    """Members of a tar (or files of a directory), small ones read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.order: list[str] = []
        self.dirs: list[str] = []
        self.symlinks: dict[str, str] = {}
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                name = file.relative_to(path).as_posix()
                self.order.append(name)
                self.data[name] = file.read_bytes()
            return
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                self.order.append(member.name)
                self.modes[member.name] = member.mode
                if member.isdir():
                    self.dirs.append(member.name)
                elif member.issym():
                    self.symlinks[member.name] = member.linkname
                elif member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    self.data[member.name] = extracted.read()

    def json(self, name: str) -> Any:
        return json.loads(self.data[name])

    def blob(self, digest: str) -> bytes:
        return self.data["blobs/sha256/" + digest.removeprefix("sha256:")]

    def check_blobs(self) -> None:
        """Every ``blobs/sha256/<hex>`` holds bytes with that digest."""
        for name, data in self.data.items():
            if name.startswith("blobs/sha256/"):
                assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1], name


def _config_digest(skopeo: Skopeo, ref: str) -> str:
    raw = skopeo.skopeo("inspect", "--config", "--raw", ref).stdout.encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _skopeo_reads(skopeo: Skopeo, ref: str, dest: Path, *extra: str) -> dict[str, Any]:
    """``skopeo copy REF oci:DEST:t`` (every digest verified); the copied index.json."""
    skopeo.copy(ref, f"oci:{dest}:t", *extra)
    loaded: dict[str, Any] = json.loads((dest / "index.json").read_text())
    return loaded


def _check_oci_image(members: Members, image: w.ExpectedImage) -> dict[str, Any]:
    assert image.manifest_digest is not None
    manifest: dict[str, Any] = json.loads(members.blob(image.manifest_digest))
    assert manifest["config"]["digest"] == image.config_digest
    config = json.loads(members.blob(image.config_digest))
    assert config["rootfs"]["diff_ids"] == list(image.diff_ids)
    return manifest


# -- Docker --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docker_archives(
    dockerd: DockerDaemon, skopeo: Skopeo, sources: w.Sources, layout: Path, out: Path
) -> tuple[w.WrittenArchive, w.WrittenArchive]:
    dockerd.remove_all_images()
    w.load_into_docker(dockerd, skopeo, sources.images, out / "docker-load")
    by_name = w.docker_save(dockerd, sources.images, out / "docker-save.tar")
    by_id = w.docker_save(dockerd, [sources.beta], out / "docker-save-id.tar", by_id=True)
    return by_name, by_id


def test_docker_20_10_save(
    docker_archives: tuple[w.WrittenArchive, w.WrittenArchive],
    dockerd: DockerDaemon,
    skopeo: Skopeo,
    out: Path,
) -> None:
    by_name, by_id = docker_archives
    for image in by_name.images:
        assert dockerd.inspect_image(w.familiar_name(image.names[0]))["Id"] == image.config_digest
    members = Members(by_name.path)
    assert "index.json" not in members.data and "repositories" in members.data
    entries = members.json("manifest.json")
    assert {tag for e in entries for tag in e["RepoTags"]} == {
        w.familiar_name(i.names[0]) for i in by_name.images
    }
    assert all(layer.endswith("/layer.tar") for e in entries for layer in e["Layers"])
    for image in by_name.images:
        ref = f"docker-archive:{by_name.path}:{w.familiar_name(image.names[0])}"
        assert _config_digest(skopeo, ref) == image.config_digest

    members = Members(by_id.path)
    assert "repositories" not in members.data
    ((entry),) = members.json("manifest.json")
    assert entry["RepoTags"] is None
    (image,) = by_id.images
    assert _config_digest(skopeo, f"docker-archive:{by_id.path}") == image.config_digest


def test_docker_25_save_by_name(sources: w.Sources, skopeo: Skopeo, out: Path) -> None:
    written = w.docker25_save(out / "docker25.tar", sources.images)
    members = Members(written.path)
    members.check_blobs()
    assert members.order[:2] == ["blobs", "blobs/sha256"]  # tarfile drops the slash
    assert members.order == sorted(members.order)
    assert {"index.json", "manifest.json", "oci-layout", "repositories"} <= set(members.data)
    index = members.json("index.json")
    assert index["mediaType"] == w.OCI_INDEX
    assert len(index["manifests"]) == 3
    for desc, image in zip(index["manifests"], written.images, strict=True):
        assert desc["digest"] == image.manifest_digest
        assert desc["annotations"] == {
            w.ANNOTATION_IMAGE_NAME: w.normalize_name(image.names[0]),
            w.ANNOTATION_REF_NAME: w.repository_path(image.names[0])[1],
        }
        assert desc["platform"]["os"] == "linux"
        manifest = _check_oci_image(members, image)
        assert manifest["config"]["mediaType"] == w.OCI_CONFIG
        assert [layer["mediaType"] for layer in manifest["layers"]] == [w.OCI_LAYER] * len(
            image.diff_ids
        )
        assert [layer["digest"] for layer in manifest["layers"]] == list(image.diff_ids)
    entries = members.json("manifest.json")
    assert [e["RepoTags"] for e in entries] == [
        ["registry.example:5000/writers/alpha:1"],
        ["beta:2"],
        ["writers/gamma:3"],
    ]
    # Both views read by skopeo: the docker view checks diff_ids, the OCI view digests.
    for image in written.images:
        tag = w.repository_path(image.names[0])[1]
        name = w.familiar_name(image.names[0])
        assert _config_digest(skopeo, f"docker-archive:{written.path}:{name}") == (
            image.config_digest
        )
        # (a copy would compress the layers: skopeo's oci: destination wants them so)
        raw = skopeo.skopeo("inspect", "--raw", f"oci-archive:{written.path}:{tag}").stdout
        assert sha256_digest(raw.encode()) == image.manifest_digest
        skopeo.inspect(f"oci-archive:{written.path}:{tag}")


def test_docker_25_save_by_id(sources: w.Sources, skopeo: Skopeo, out: Path) -> None:
    written = w.docker25_save(out / "docker25-id.tar", [sources.gamma], by_id=True)
    members = Members(written.path)
    assert members.data["index.json"] == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",'
        b'"manifests":null}'
    )
    assert "repositories" not in members.data
    ((entry),) = members.json("manifest.json")
    assert entry["RepoTags"] is None
    (image,) = written.images
    _check_oci_image(members, image)
    assert _config_digest(skopeo, f"docker-archive:{written.path}") == image.config_digest


# -- podman --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def podman_loaded(
    podman: Podman, skopeo: Skopeo, sources: w.Sources, layout: Path, out: Path
) -> Podman:
    podman.reset()
    w.load_into_podman(podman, skopeo, sources.images, out / "podman-load")
    return podman


def test_podman_save_docker_archive(
    podman_loaded: Podman, sources: w.Sources, skopeo: Skopeo, out: Path
) -> None:
    written = w.podman_save(podman_loaded, sources.images, out / "podman.tar", "docker-archive")
    entries = Members(written.path).json("manifest.json")
    assert sorted(tag for e in entries for tag in e["RepoTags"]) == sorted(
        w.normalize_name(s.name) for s in sources.images
    )
    for image in written.images:
        ref = f"docker-archive:{written.path}:{image.names[0]}"
        assert _config_digest(skopeo, ref) == image.config_digest


@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir"])
def test_podman_save_oci(
    podman_loaded: Podman, sources: w.Sources, skopeo: Skopeo, out: Path, fmt: w.PodmanFormat
) -> None:
    written = w.podman_save(podman_loaded, [sources.gamma], out / f"podman-{fmt}", fmt)
    members = Members(written.path)
    members.check_blobs()
    (desc,) = members.json("index.json")["manifests"]
    assert desc["annotations"][w.ANNOTATION_REF_NAME] == w.normalize_name(sources.gamma.name)
    (image,) = written.images
    _check_oci_image(members, image)
    assert image.config_digest != sources.gamma.built.config_digest  # podman rewrote it
    transport = "oci-archive" if fmt == "oci-archive" else "oci"
    _skopeo_reads(skopeo, f"{transport}:{written.path}", out / f"podman-{fmt}-copy")


def test_podman_save_docker_dir(
    podman_loaded: Podman, sources: w.Sources, skopeo: Skopeo, out: Path
) -> None:
    written = w.podman_save(podman_loaded, [sources.gamma], out / "podman-docker-dir", "docker-dir")
    members = Members(written.path)
    manifest = members.json("manifest.json")
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    for layer in manifest["layers"]:  # labelled gzip, stored uncompressed: digest = diff_id
        assert layer["mediaType"].endswith(".tar.gzip")
        assert layer["digest"] in sources.gamma.built.diff_ids
    (image,) = written.images
    assert _config_digest(skopeo, f"dir:{written.path}") == image.config_digest


# -- skopeo --------------------------------------------------------------------------------


def test_skopeo_oci_outputs(sources: w.Sources, layout: Path, skopeo: Skopeo, out: Path) -> None:
    oci = w.skopeo_copy(skopeo, layout, sources.gamma, out / "skopeo-oci", "oci")
    (desc,) = Members(oci.path).json("index.json")["manifests"]
    assert desc["annotations"] == {w.ANNOTATION_REF_NAME: "3"}  # only the tag
    assert desc["digest"] == sources.gamma.built.manifest_digest  # every byte kept
    archive = w.skopeo_copy(skopeo, layout, sources.alpha, out / "skopeo.tar", "oci-archive")
    (desc,) = Members(archive.path).json("index.json")["manifests"]
    assert desc["digest"] == sources.alpha.built.manifest_digest
    docker = w.skopeo_copy(
        skopeo, layout, sources.beta, out / "skopeo-docker.tar", "docker-archive"
    )
    ((entry),) = Members(docker.path).json("manifest.json")
    assert entry["RepoTags"] == ["docker.io/library/beta:2"]
    multi = w.skopeo_copy(skopeo, layout, sources.multi, out / "skopeo-multi.tar", "oci-archive")
    (desc,) = Members(multi.path).json("index.json")["manifests"]
    assert desc["digest"] == sources.multi.built.digest


def test_skopeo_several_tags_in_one_layout(
    sources: w.Sources, layout: Path, skopeo: Skopeo, out: Path
) -> None:
    written = w.skopeo_multi_tag_layout(
        skopeo, layout, {"v1": sources.alpha, "v2": sources.gamma}, out / "skopeo-tags"
    )
    descs = Members(written.path).json("index.json")["manifests"]
    assert [(d["annotations"], d["digest"]) for d in descs] == [
        ({w.ANNOTATION_REF_NAME: "v1"}, sources.alpha.built.manifest_digest),
        ({w.ANNOTATION_REF_NAME: "v2"}, sources.gamma.built.manifest_digest),
    ]
    for image in written.images:
        (tag,) = image.tags
        assert _config_digest(skopeo, f"oci:{written.path}:{tag}") == image.config_digest


# -- buildkit, crane -----------------------------------------------------------------------


@pytest.mark.parametrize("named", [True, False])
def test_buildkit_oci_tar(sources: w.Sources, skopeo: Skopeo, out: Path, named: bool) -> None:
    source: w.SourceImage | w.SourceIndex = sources.gamma if named else sources.multi
    written = w.buildkit_oci_tar(out / f"buildkit-{named}.tar", source, named=named)
    members = Members(written.path)
    members.check_blobs()
    assert "manifest.json" not in members.data
    assert members.order == sorted(members.order)
    assert {members.modes[n] for n in members.data if n.startswith("blobs/")} == {0o444}
    (desc,) = members.json("index.json")["manifests"]
    (expected,) = written.indexes
    assert (desc["mediaType"], desc["digest"]) == (w.OCI_INDEX, expected.digest)
    assert w.ANNOTATION_CREATED in desc["annotations"]
    assert (w.ANNOTATION_IMAGE_NAME in desc["annotations"]) is named
    nested = json.loads(members.blob(expected.digest))
    assert [m["digest"] for m in nested["manifests"]] == list(expected.children)
    assert nested["manifests"][-1]["platform"] == {"architecture": "unknown", "os": "unknown"}
    copied = _skopeo_reads(skopeo, f"oci-archive:{written.path}", out / f"bk-{named}", "--all")
    assert copied["manifests"][0]["digest"] == expected.digest


def test_crane_tarball(sources: w.Sources, skopeo: Skopeo, out: Path) -> None:
    written = w.crane_tarball(out / "crane.tar", sources.images)
    members = Members(written.path)
    assert members.order[-1] == "manifest.json"
    assert not members.dirs
    entries = members.json("manifest.json")
    for entry in entries:
        assert entry["Config"].startswith("sha256:") and entry["Config"] in members.data
        for layer in entry["Layers"]:
            assert layer.endswith(".tar.gz") and members.data[layer][:2] == b"\x1f\x8b"
            assert hashlib.sha256(members.data[layer]).hexdigest() == layer.removesuffix(".tar.gz")
    # The shared base layer is stored once.
    assert len([n for n in members.order if n.endswith(".tar.gz")]) == 3
    for image in written.images:
        ref = f"docker-archive:{written.path}:{image.names[0]}"
        assert _config_digest(skopeo, ref) == image.config_digest


def test_crane_legacy(sources: w.Sources, skopeo: Skopeo, out: Path) -> None:
    written = w.crane_legacy(out / "crane-legacy.tar", sources.images)
    members = Members(written.path)
    assert members.order[-2:] == ["manifest.json", "repositories"]
    entries = members.json("manifest.json")
    for entry, image in zip(entries, written.images, strict=True):
        assert entry["Config"] == image.config_digest.split(":")[1] + ".json"
        for layer, diff_id in zip(entry["Layers"], image.diff_ids, strict=True):
            v1_id = layer.removesuffix("/layer.tar")
            assert members.data[f"{v1_id}/VERSION"] == b"1.0"
            assert members.json(f"{v1_id}/json")["id"] == v1_id
            assert "sha256:" + hashlib.sha256(members.data[layer]).hexdigest() == diff_id
        ref = f"docker-archive:{written.path}:{image.names[0]}"
        assert _config_digest(skopeo, ref) == image.config_digest
    repositories = members.json("repositories")
    assert repositories["docker.io/writers/gamma"]["3"] == entries[2]["Layers"][-1].split("/")[0]


# -- containerd ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def containerd_loaded(containerd: Containerd, sources: w.Sources, out: Path) -> Containerd:
    w.load_into_containerd(containerd, [*sources.images, sources.multi], out / "ctr-load")
    return containerd


def test_ctr_export(
    containerd_loaded: Containerd, sources: w.Sources, skopeo: Skopeo, out: Path
) -> None:
    assert {w.normalize_name(s.name) for s in (*sources.images, sources.multi)} <= (
        containerd_loaded.image_names()
    )
    written = w.ctr_export(containerd_loaded, [sources.alpha, sources.gamma], out / "ctr.tar")
    members = Members(written.path)
    members.check_blobs()
    index = members.json("index.json")
    assert "mediaType" not in index
    for desc, image in zip(index["manifests"], written.images, strict=True):
        assert desc["digest"] == image.manifest_digest
        assert desc["annotations"] == {
            w.ANNOTATION_IMAGE_NAME: image.names[0],
            w.ANNOTATION_REF_NAME: w.repository_path(image.names[0])[1],
        }
        _check_oci_image(members, image)
    assert {tag for e in members.json("manifest.json") for tag in e["RepoTags"]} == {
        w.familiar_name(s.name) for s in (sources.alpha, sources.gamma)
    }
    copied = _skopeo_reads(skopeo, f"oci-archive:{written.path}:3", out / "ctr-copy")
    assert copied["manifests"][0]["digest"] == sources.gamma.built.manifest_digest


@pytest.mark.parametrize("all_platforms", [True, False])
def test_ctr_export_of_an_index(
    containerd_loaded: Containerd, sources: w.Sources, out: Path, all_platforms: bool
) -> None:
    written = w.ctr_export(
        containerd_loaded,
        [sources.multi],
        out / f"ctr-multi-{all_platforms}.tar",
        all_platforms=all_platforms,
    )
    members = Members(written.path)
    (index,) = written.indexes
    (desc,) = members.json("index.json")["manifests"]
    assert desc["digest"] == index.digest
    present = {c for c in index.children if f"blobs/sha256/{c.split(':')[1]}" in members.data}
    assert present == set(index.present)
    if not all_platforms:
        assert len(present) == 1 < len(index.children)


# -- layouts with names, artifacts ---------------------------------------------------------


def test_named_layout(sources: w.Sources, skopeo: Skopeo, out: Path) -> None:
    written = w.named_layout(out / "named", [sources.alpha, sources.gamma, sources.multi])
    members = Members(written.path)
    members.check_blobs()
    descs = members.json("index.json")["manifests"]
    assert [d["annotations"][w.ANNOTATION_IMAGE_NAME] for d in descs] == [
        w.normalize_name(s.name) for s in (sources.alpha, sources.gamma, sources.multi)
    ]
    for image in written.images:
        _check_oci_image(members, image)
    _skopeo_reads(skopeo, f"oci:{written.path}:1", out / "named-copy", "--all")


def test_helm_chart_shape(skopeo: Skopeo, out: Path) -> None:
    chart = w.helm_chart()
    manifest = json.loads(chart.manifest)
    assert manifest["config"]["mediaType"] == w.HELM_CONFIG_MEDIA
    assert [layer["mediaType"] for layer in manifest["layers"]] == [w.HELM_CHART_MEDIA]
    package = gzip.decompress(chart.layers[0].compressed)
    assert b"demo/Chart.yaml" in package
    assert json.loads(chart.config)["name"] == "demo"
    written = w.artifact_layout(out / "helm-layout", [("0.1.0", chart)])
    raw = skopeo.skopeo("inspect", "--raw", f"oci:{written.path}:0.1.0").stdout.encode()
    assert raw == chart.manifest


def test_signature_and_sbom_shapes(sources: w.Sources, skopeo: Skopeo, out: Path) -> None:
    image = sources.alpha.built
    for artifact, artifact_type in (
        (w.signature_artifact(image), "application/vnd.dev.cosign.artifact.sig.v1+json"),
        (w.sbom_artifact(image), "application/spdx+json"),
    ):
        manifest = json.loads(artifact.manifest)
        assert manifest["artifactType"] == artifact_type
        assert manifest["config"] == {
            "mediaType": w.EMPTY_MEDIA,
            "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "size": 2,
            "data": "e30=",
        }
        assert manifest["subject"]["digest"] == image.manifest_digest
        assert len(manifest["layers"]) == 1


@pytest.mark.parametrize("config_media_type", [w.EMPTY_MEDIA, w.OCI_CONFIG])
def test_index_with_image_and_artifact(
    sources: w.Sources, skopeo: Skopeo, out: Path, config_media_type: str
) -> None:
    image = sources.alpha.built
    sbom = w.sbom_artifact(None, config_media_type=config_media_type)
    index = w.image_with_artifact(image, sbom)
    listed = json.loads(index.manifest)["manifests"]
    assert listed[1]["platform"] == {"architecture": "unknown", "os": "unknown"}
    assert json.loads(sbom.config) == {}  # no rootfs: 0 diff_ids for 1 layer
    name = f"artifact-{config_media_type.rsplit('.', 2)[-2]}"
    written = w.artifact_layout(out / name, [("1", index)])
    members = Members(written.path)
    members.check_blobs()
    raw = skopeo.skopeo("inspect", "--raw", f"oci:{written.path}:1").stdout.encode()
    assert raw == index.manifest
