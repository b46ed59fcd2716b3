"""Self-check of the real loaders with a tiny image archive built by hand (no network).

The archive is one gzip layer holding a static ``/bin/busybox`` (+ ``/bin/sh`` symlink),
written in the "new" docker-archive layout (Docker >= 25): ``blobs/sha256/<hex>`` for
config, layer and OCI manifest, ``manifest.json`` pointing into ``blobs/``, plus
``oci-layout`` and ``index.json``.  Variants drop one of the two indexes, change the
``ref.name`` annotations or put two images in one archive.

Besides checking the fixtures, these tests pin down how Docker 20.10, podman 4.3 and
skopeo 1.9 read such archives (see the per-test docstrings).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from tests.fixtures.loaders import CommandFailed, DockerDaemon, Podman, Skopeo, Umoci

pytestmark = pytest.mark.e2e

BUSYBOX = Path("/bin/busybox")
MESSAGE = "loader selfcheck"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ANN_REF_NAME = "org.opencontainers.image.ref.name"
ANN_CONTAINERD_NAME = "io.containerd.image.name"

RefNameStyle = Literal["tag", "full"]


# --------------------------------------------------------------------------- archive builder


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _host_arch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}.get(
        machine, machine
    )


def _is_static_elf(path: Path) -> bool:
    """True for a 64-bit little-endian ELF without a PT_INTERP program header."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    pt_interp = 3
    return all(
        struct.unpack_from("<I", data, phoff + i * phentsize)[0] != pt_interp for i in range(phnum)
    )


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tf.addfile(info, io.BytesIO(data))


def _tar_dir(tf: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tf.addfile(info)


def busybox_layer() -> tuple[bytes, bytes]:
    """(uncompressed tar, gzip of it): ``bin/``, ``bin/busybox`` 0755, ``bin/sh`` -> busybox."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        _tar_dir(tf, "bin")
        _tar_add(tf, "bin/busybox", BUSYBOX.read_bytes(), 0o755)
        link = tarfile.TarInfo("bin/sh")
        link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
        tf.addfile(link)
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


@dataclass(frozen=True)
class ImageSpec:
    name: str  # "selfcheck/busybox:1" (docker short form)
    message: str = MESSAGE


@dataclass(frozen=True)
class BuiltImage:
    name: str
    config_digest: str  # sha256:...
    manifest_digest: str  # digest of the OCI manifest blob
    layer_digest: str  # gzip blob
    diff_id: str


def build_archive(
    path: Path,
    images: list[ImageSpec],
    *,
    docker_manifest: bool = True,
    oci_index: bool = True,
    ref_name: RefNameStyle = "tag",
    containerd_name: bool = True,
    corrupt_diff_id: bool = False,
) -> list[BuiltImage]:
    """Write a docker-archive in the blobs/ ("new", Docker >= 25) layout to ``path``.

    ``ref_name`` "tag" writes ``org.opencontainers.image.ref.name: 1`` like Docker 25,
    "full" writes ``docker.io/selfcheck/busybox:1``; ``containerd_name`` adds
    ``io.containerd.image.name: docker.io/selfcheck/busybox:1``.
    """
    raw, gz = busybox_layer()
    diff_id = "sha256:" + ("0" * 64 if corrupt_diff_id else _sha256(raw))
    blobs: dict[str, bytes] = {_sha256(gz): gz}
    docker_entries: list[dict[str, Any]] = []
    index_entries: list[dict[str, Any]] = []
    built: list[BuiltImage] = []
    for spec in images:
        config = json.dumps(
            {
                "architecture": _host_arch(),
                "os": "linux",
                "config": {"Cmd": ["/bin/busybox", "echo", spec.message]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created_by": "imgpull loader selfcheck"}],
            },
            sort_keys=True,
        ).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": OCI_CONFIG,
                    "digest": f"sha256:{_sha256(config)}",
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": OCI_LAYER_GZIP,
                        "digest": f"sha256:{_sha256(gz)}",
                        "size": len(gz),
                    }
                ],
            }
        ).encode()
        blobs[_sha256(config)] = config
        blobs[_sha256(manifest)] = manifest
        docker_entries.append(
            {
                "Config": f"blobs/sha256/{_sha256(config)}",
                "RepoTags": [spec.name],
                "Layers": [f"blobs/sha256/{_sha256(gz)}"],
            }
        )
        full_name = f"docker.io/{spec.name}"
        annotations = {
            ANN_REF_NAME: spec.name.rsplit(":", 1)[1] if ref_name == "tag" else full_name
        }
        if containerd_name:
            annotations[ANN_CONTAINERD_NAME] = full_name
        index_entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": f"sha256:{_sha256(manifest)}",
                "size": len(manifest),
                "annotations": annotations,
            }
        )
        built.append(
            BuiltImage(
                name=spec.name,
                config_digest=f"sha256:{_sha256(config)}",
                manifest_digest=f"sha256:{_sha256(manifest)}",
                layer_digest=f"sha256:{_sha256(gz)}",
                diff_id=diff_id,
            )
        )
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        _tar_dir(tf, "blobs")
        _tar_dir(tf, "blobs/sha256")
        for hexdigest, data in blobs.items():
            _tar_add(tf, f"blobs/sha256/{hexdigest}", data)
        if oci_index:
            _tar_add(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries}
            _tar_add(tf, "index.json", json.dumps(index).encode())
        if docker_manifest:
            _tar_add(tf, "manifest.json", json.dumps(docker_entries).encode())
    return built


ONE = [ImageSpec("selfcheck/busybox:1")]
TWO = [ImageSpec("selfcheck/busybox:1"), ImageSpec("selfcheck/other:2", f"{MESSAGE} two")]


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BUSYBOX.is_file() or not _is_static_elf(BUSYBOX):
        pytest.fail(f"{BUSYBOX} missing or not static: apt-get install busybox-static")
    return tmp_path_factory.mktemp("selfcheck-archives")


def _archive(
    archives: Path, name: str, images: list[ImageSpec], **kw: Any
) -> tuple[Path, list[BuiltImage]]:
    path = archives / f"{name}.tar"
    return path, build_archive(path, images, **kw)


# --------------------------------------------------------------------------- dockerd


def test_dockerd_is_up(dockerd: DockerDaemon) -> None:
    info = dockerd.info()
    assert info["Driver"] == "vfs"
    assert info["CgroupDriver"] == "cgroupfs"
    assert info["ServerVersion"].startswith("20.10")
    assert dockerd.startup_seconds is not None and dockerd.startup_seconds < 60
    print(f"dockerd {info['ServerVersion']} up in {dockerd.startup_seconds:.2f}s")


def test_docker_loads_new_layout_with_gzip_layers(
    clean_dockerd: DockerDaemon, archives: Path
) -> None:
    """Docker 20.10 reads manifest.json, follows its blobs/sha256/... paths and
    decompresses gzip layers on load (it ignores index.json / oci-layout)."""
    path, (img,) = _archive(archives, "both", ONE)
    out = clean_dockerd.load(path)
    assert "Loaded image: selfcheck/busybox:1" in out
    assert clean_dockerd.image_tags() == {"selfcheck/busybox:1"}
    inspect = clean_dockerd.inspect_image("selfcheck/busybox:1")
    assert inspect["Id"] == img.config_digest
    assert inspect["RootFS"]["Layers"] == [img.diff_id]
    assert inspect["Config"]["Cmd"] == ["/bin/busybox", "echo", MESSAGE]
    assert clean_dockerd.run("selfcheck/busybox:1") == f"{MESSAGE}\n"
    assert clean_dockerd.run("selfcheck/busybox:1", "/bin/sh", "-c", "echo via sh") == "via sh\n"


def test_docker_load_stdin(clean_dockerd: DockerDaemon, archives: Path) -> None:
    path, _ = _archive(archives, "stdin", ONE)
    assert "Loaded image: selfcheck/busybox:1" in clean_dockerd.load_stdin(path)
    assert clean_dockerd.run("selfcheck/busybox:1") == f"{MESSAGE}\n"


def test_docker_loads_manifest_json_only(clean_dockerd: DockerDaemon, archives: Path) -> None:
    path, _ = _archive(archives, "docker-only", ONE, oci_index=False)
    assert "Loaded image: selfcheck/busybox:1" in clean_dockerd.load(path)
    assert clean_dockerd.run("selfcheck/busybox:1") == f"{MESSAGE}\n"


def test_docker_loads_two_images(clean_dockerd: DockerDaemon, archives: Path) -> None:
    path, _ = _archive(archives, "two", TWO)
    out = clean_dockerd.load(path)
    assert "Loaded image: selfcheck/busybox:1" in out
    assert "Loaded image: selfcheck/other:2" in out
    assert clean_dockerd.image_tags() == {"selfcheck/busybox:1", "selfcheck/other:2"}
    assert clean_dockerd.run("selfcheck/other:2") == f"{MESSAGE} two\n"


def test_docker_cannot_load_index_json_only(clean_dockerd: DockerDaemon, archives: Path) -> None:
    """Docker 20.10 needs manifest.json: an OCI-layout-only tar fails (exit 1)."""
    path, _ = _archive(archives, "oci-only", ONE, docker_manifest=False)
    res = clean_dockerd.docker("load", "-i", str(path), check=False)
    assert res.returncode != 0
    assert clean_dockerd.image_tags() == set()


def test_docker_rejects_wrong_diff_id(clean_dockerd: DockerDaemon, archives: Path) -> None:
    """docker load checks each (decompressed) layer against the config's diff_ids."""
    path, _ = _archive(archives, "bad-diffid", ONE, corrupt_diff_id=True)
    with pytest.raises(CommandFailed, match=r"(?i)diff ?id"):
        clean_dockerd.load(path)


# --------------------------------------------------------------------------- podman


@dataclass(frozen=True)
class PodmanCase:
    images: list[ImageSpec]
    kwargs: dict[str, Any]
    names: set[str]
    via: Literal["oci-archive", "docker-archive"]


PODMAN_CASES = {
    # index.json with one manifest wins: read as oci-archive, name from the
    # io.containerd.image.name annotation (preferred over ref.name).
    "both": PodmanCase(ONE, {}, {"docker.io/selfcheck/busybox:1"}, "oci-archive"),
    "oci-only": PodmanCase(
        ONE, {"docker_manifest": False}, {"docker.io/selfcheck/busybox:1"}, "oci-archive"
    ),
    "both-refname-full": PodmanCase(
        ONE, {"ref_name": "full"}, {"docker.io/selfcheck/busybox:1"}, "oci-archive"
    ),
    "oci-only-refname-full-no-containerd": PodmanCase(
        ONE,
        {"docker_manifest": False, "ref_name": "full", "containerd_name": False},
        {"docker.io/selfcheck/busybox:1"},
        "oci-archive",
    ),
    # Docker-25-style ref.name (the bare tag) without the containerd annotation:
    # podman takes "1" as the image name -> localhost/1:latest.
    "both-refname-tag-no-containerd": PodmanCase(
        ONE, {"containerd_name": False}, {"localhost/1:latest"}, "oci-archive"
    ),
    # manifest.json only: docker-archive; short RepoTags are qualified with localhost/.
    "docker-only": PodmanCase(
        ONE, {"oci_index": False}, {"localhost/selfcheck/busybox:1"}, "docker-archive"
    ),
    # Two manifests in index.json: oci-archive refuses ("more than one image in oci"),
    # podman falls back to manifest.json -> localhost/ names.
    "two": PodmanCase(
        TWO, {}, {"localhost/selfcheck/busybox:1", "localhost/selfcheck/other:2"}, "docker-archive"
    ),
}


@pytest.mark.parametrize("case_id", list(PODMAN_CASES))
def test_podman_load_names(clean_podman: Podman, archives: Path, case_id: str) -> None:
    case = PODMAN_CASES[case_id]
    path, built = _archive(archives, f"podman-{case_id}", case.images, **case.kwargs)
    out = clean_podman.load(path)
    for name in case.names:
        assert f"Loaded image: {name}" in out
    assert clean_podman.image_names() == case.names
    digests = {img["Digest"] for img in clean_podman.images()}
    ours = {b.manifest_digest for b in built}
    if case.via == "oci-archive":
        assert digests == ours  # our OCI manifest was stored as is
    else:
        assert not digests & ours  # podman synthesized a docker v2s2 manifest
    ids = {"sha256:" + img["Id"] for img in clean_podman.images()}
    assert ids == {b.config_digest for b in built}


def test_podman_cannot_load_two_images_index_json_only(
    clean_podman: Podman, archives: Path
) -> None:
    path, _ = _archive(archives, "podman-two-oci-only", TWO, docker_manifest=False)
    with pytest.raises(CommandFailed, match="payload does not match any of the supported"):
        clean_podman.load(path)


def test_podman_runs_loaded_image(clean_podman: Podman, archives: Path) -> None:
    path, _ = _archive(archives, "podman-run", ONE)
    clean_podman.load(path)
    assert clean_podman.run("docker.io/selfcheck/busybox:1") == f"{MESSAGE}\n"
    assert clean_podman.run("selfcheck/busybox:1", "/bin/sh", "-c", "echo via sh") == "via sh\n"


def test_podman_load_stdin(clean_podman: Podman, archives: Path) -> None:
    path, _ = _archive(archives, "podman-stdin", ONE)
    assert "Loaded image: docker.io/selfcheck/busybox:1" in clean_podman.load_stdin(path)


# --------------------------------------------------------------------------- skopeo / umoci


def _check_rootfs(rootfs: Path) -> None:
    busybox = rootfs / "bin" / "busybox"
    assert busybox.read_bytes() == BUSYBOX.read_bytes()
    assert busybox.stat().st_mode & 0o7777 == 0o755
    assert (rootfs / "bin" / "sh").is_symlink()
    assert (rootfs / "bin" / "sh").readlink() == Path("busybox")


def test_skopeo_docker_archive_to_oci(
    skopeo: Skopeo, umoci: Umoci, archives: Path, tmp_path: Path
) -> None:
    path, (img,) = _archive(archives, "skopeo-docker", ONE)
    oci = skopeo.docker_archive_to_oci(path, tmp_path / "oci", tag="1")
    index = json.loads((oci / "index.json").read_text())
    assert index["manifests"][0]["annotations"][ANN_REF_NAME] == "1"
    config = skopeo.inspect(f"oci:{oci}:1", "--config")
    assert config["rootfs"]["diff_ids"] == [img.diff_id]
    _check_rootfs(umoci.unpack(oci, "1", tmp_path / "bundle"))


def test_skopeo_docker_archive_selects_image_by_ref(
    skopeo: Skopeo, archives: Path, tmp_path: Path
) -> None:
    path, _ = _archive(archives, "skopeo-two", TWO)
    with pytest.raises(CommandFailed, match="expected 1 item, got 2"):
        skopeo.docker_archive_to_oci(path, tmp_path / "ambiguous")
    oci = skopeo.docker_archive_to_oci(path, tmp_path / "oci", "selfcheck/other:2", tag="2")
    config = skopeo.inspect(f"oci:{oci}:2", "--config")
    assert config["config"]["Cmd"][-1] == f"{MESSAGE} two"


def test_skopeo_docker_archive_checks_diff_ids(
    skopeo: Skopeo, archives: Path, tmp_path: Path
) -> None:
    path, _ = _archive(archives, "skopeo-bad-diffid", ONE, corrupt_diff_id=True)
    with pytest.raises(CommandFailed, match="Digest did not match"):
        skopeo.docker_archive_to_oci(path, tmp_path / "oci")


def test_skopeo_oci_archive_to_oci(
    skopeo: Skopeo, umoci: Umoci, archives: Path, tmp_path: Path
) -> None:
    path, (img,) = _archive(archives, "skopeo-oci", ONE)
    assert skopeo.inspect(f"oci-archive:{path}", "--raw")["config"]["digest"] == img.config_digest
    oci = skopeo.oci_archive_to_oci(path, tmp_path / "oci", tag="1")
    index = json.loads((oci / "index.json").read_text())
    assert index["manifests"][0]["digest"] == img.manifest_digest  # copied unchanged
    _check_rootfs(umoci.unpack(oci, "1", tmp_path / "bundle"))


def test_skopeo_oci_archive_selects_image_by_ref_name(
    skopeo: Skopeo, archives: Path, tmp_path: Path
) -> None:
    path, built = _archive(archives, "skopeo-oci-two", TWO)
    oci = skopeo.oci_archive_to_oci(path, tmp_path / "oci", "2", tag="2")
    index = json.loads((oci / "index.json").read_text())
    assert index["manifests"][0]["digest"] == built[1].manifest_digest
