"""Push archives into registries and copy between registries, against real registries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imgpull.errors import EXIT_AUTH
from tests.archive_view import ArchiveView
from tests.cli import assert_clean_failure, run_imgpull
from tests.fixtures.faultproxy import FaultProxy, Rule, Status
from tests.fixtures.images import StandardImages
from tests.fixtures.proxies import Isolated
from tests.fixtures.registry import RegistryServer, start_registry

pytestmark = pytest.mark.usefixtures("fresh_env")


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RegistryServer]:
    """An empty registry to push and copy into."""
    server = start_registry(tmp_path / "target", storage=tmp_path / "target-storage")
    yield server
    server.stop()


def _ok(*args: str, input: bytes | None = None) -> None:
    done = run_imgpull(*args, input=input)
    assert done.returncode == 0, done.stderr.decode()


def test_pull_push_pull_round_trip_keeps_digests(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    tmp_path: Path,
) -> None:
    images = [standard_images.layers, standard_images.dockertypes]
    first = tmp_path / "first.tar"
    _ok("pull", "-q", *(f"{registry.host}/{i.reference}" for i in images), "-o", str(first))
    _ok("push", "-q", str(first), f"{target.host}/mirror")
    second = tmp_path / "second.tar"
    _ok("pull", "-q", *(f"{target.host}/mirror/{i.reference}" for i in images), "-o", str(second))
    before, after = ArchiveView.read(first), ArchiveView.read(second)
    assert after.index_digests == before.index_digests
    assert set(after.blobs) == set(before.blobs)
    assert [i.manifest_digest for i in images] == after.index_digests


def test_push_to_a_full_reference(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "one.tar"
    _ok("pull", "-q", f"{registry.host}/test/hello:1", "-o", str(archive))
    _ok("push", "-q", str(archive), f"{target.host}/team/app:v2")
    found = run_imgpull("inspect", f"{target.host}/team/app:v2")
    assert standard_images.hello.manifest_digest.encode() in found.stdout


def test_second_push_uploads_nothing(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "one.tar"
    _ok("pull", "-q", f"{registry.host}/test/layers:1", "-o", str(archive))
    _ok("push", "-q", str(archive), f"{target.host}/m")
    mark = target.log_mark()
    _ok("push", "-q", str(archive), f"{target.host}/m")
    assert target.count_requests("PUT", r"/v2/.*/blobs/uploads/.*", since=mark) == 0
    assert target.count_requests("PATCH", r"/v2/.*/blobs/uploads/.*", since=mark) == 0


@pytest.mark.parametrize("chunking", [["--chunk-size", "256k"], []], ids=["asked", "on-413"])
def test_registry_refusing_large_bodies_gets_chunks(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    fault_proxy_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    chunking: list[str],
) -> None:
    proxy: FaultProxy = fault_proxy_factory(target)
    # Like an nginx with client_max_body_size 512k in front of the registry: asked for
    # chunks, or finding out from the 413, the push gets through.
    proxy.add_rule(
        Rule(
            method="PUT",
            path=r"/v2/.*/blobs/uploads/.*",
            times=None,
            headers={"content-length": r"^\d{6,}$"},
            action=Status(413),
        )
    )
    archive = tmp_path / "one.tar"
    _ok("pull", "-q", f"{registry.host}/test/hello:1", "-o", str(archive))
    _ok("push", "-q", str(archive), f"{proxy.host}/chunked/hello:1", *chunking)
    assert proxy.requests_to("PATCH", r"/v2/.*/blobs/uploads/.*")
    found = run_imgpull("inspect", f"{target.host}/chunked/hello:1")
    assert standard_images.hello.manifest_digest.encode() in found.stdout


def test_push_through_a_proxy(
    isolated_registry: Isolated,
    registry: RegistryServer,
    standard_images: StandardImages,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "one.tar"
    _ok("pull", "-q", f"{registry.host}/test/hello:1", "-o", str(archive))
    mark = isolated_registry.http_proxy.log_mark()
    destination = isolated_registry.ref("pushed/via-proxy", "1")
    _ok(
        "push",
        "-q",
        str(archive),
        destination,
        "--insecure",
        "--proxy",
        isolated_registry.http_proxy.url,
    )
    assert isolated_registry.http_proxy.requests_seen(since=mark)
    # The isolated registry shares storage with the plain one: the push is visible there.
    found = run_imgpull("inspect", f"{registry.host}/pushed/via-proxy:1")
    assert standard_images.hello.manifest_digest.encode() in found.stdout


def test_push_without_rights_fails_cleanly(
    registry: RegistryServer,
    standard_images: StandardImages,
    basic_registry: RegistryServer,
    tmp_path: Path,
) -> None:
    archive = tmp_path / "one.tar"
    _ok("pull", "-q", f"{registry.host}/test/hello:1", "-o", str(archive))
    done = run_imgpull(
        "push",
        "-q",
        str(archive),
        f"{basic_registry.host}/denied/hello:1",
        "--ca-cert",
        str(basic_registry.ca_cert),
    )
    assert_clean_failure(done, code=EXIT_AUTH, contains=basic_registry.host)


def test_garbage_archive_fails_cleanly(tmp_path: Path, target: RegistryServer) -> None:
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"this is not a tar archive at all" * 100)
    done = run_imgpull("push", str(garbage), f"{target.host}/x")
    assert done.returncode != 0
    assert done.stderr.decode().count("\n") == 1 and b"Traceback" not in done.stderr
    missing = run_imgpull("push", str(tmp_path / "missing.tar"), f"{target.host}/x")
    assert_clean_failure(missing, code=2, contains="does not exist")


def test_copy_all_platforms_keeps_the_index_digest(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
) -> None:
    index = standard_images.multi_oci
    _ok(
        "copy", "-q", index.ref(registry.host), f"{target.host}/copied/multi:oci", "--all-platforms"
    )
    found = run_imgpull("inspect", f"{target.host}/copied/multi:oci")
    assert index.digest.encode() in found.stdout


def test_copy_one_platform_and_many_to_a_prefix(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    tmp_path: Path,
) -> None:
    index = standard_images.multi_docker
    _ok(
        "copy",
        "-q",
        index.ref(registry.host),
        f"{target.host}/one/multi:arm",
        "--platform",
        "linux/arm64",
    )
    found = run_imgpull("inspect", f"{target.host}/one/multi:arm")
    assert index.platforms["linux/arm64/v8"].encode() in found.stdout
    listing = tmp_path / "list.txt"
    listing.write_text(f"{registry.host}/test/hello:1\n{registry.host}/test/layers:1\n")
    _ok("copy", "-q", "-f", str(listing), f"{target.host}/prefix")
    for image in (standard_images.hello, standard_images.layers):
        found = run_imgpull("inspect", f"{target.host}/prefix/{image.reference}")
        assert image.manifest_digest.encode() in found.stdout


def test_copy_within_one_registry_mounts_blobs(
    registry: RegistryServer, standard_images: StandardImages
) -> None:
    mark = registry.log_mark()
    _ok("copy", "-q", f"{registry.host}/test/layers:1", f"{registry.host}/mounted/layers:1")
    assert registry.count_requests("POST", r"/v2/mounted/layers/blobs/uploads/.*", since=mark)
    assert registry.count_requests("GET", r"/v2/test/layers/blobs/.*", since=mark) == 0


def test_shared_layers_are_mounted_not_uploaded_twice(
    registry: RegistryServer,
    standard_images: StandardImages,
    target: RegistryServer,
    tmp_path: Path,
) -> None:
    shared = set(standard_images.hello.layer_digests) & set(
        standard_images.dockertypes.layer_digests
    )
    assert shared, "the fixture images share their busybox layer"
    bundle = tmp_path / "bundle.tar"
    _ok(
        "pull",
        "-q",
        f"{registry.host}/test/hello:1",
        f"{registry.host}/test/dockertypes:1",
        "-o",
        str(bundle),
        "-j",
        "1",
    )
    mark = target.log_mark()
    _ok("push", "-q", str(bundle), f"{target.host}/m", "-j", "1")
    posts = target.requests("POST", r"/v2/.*/blobs/uploads/", since=mark)
    mounted = [p for p in posts if "mount=" in p.uri and p.status == 201]
    assert {m.uri.split("mount=")[1].split("&")[0].replace("%3A", ":") for m in mounted} == shared
    # The shared layer went over the wire once.
    for digest in shared:
        puts = [
            e
            for e in target.requests("PUT", r"/v2/.*/blobs/uploads/.*", since=mark)
            if digest.replace(":", "%3A") in e.uri or digest in e.uri
        ]
        assert len(puts) == 1
    for image in (standard_images.hello, standard_images.dockertypes):
        found = run_imgpull("inspect", f"{target.host}/m/{image.reference}")
        assert image.manifest_digest.encode() in found.stdout


def test_push_index_whose_children_need_compressing(target: RegistryServer, tmp_path: Path) -> None:
    """An OCI layout holding uncompressed layers under an index: the layers are gzipped,
    so the children get new manifests and the pushed index must point at those."""
    import hashlib
    import io
    import json
    import tarfile

    from tests.fixtures.images import build_image, build_layer, host_arch

    layer = build_layer({"etc/raw": b"uncompressed layer\n"})
    built = build_image([layer], cmd=["/bin/true"], arch=host_arch(), media="oci")
    plain = layer.uncompressed()

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    manifest = json.loads(built.manifest)
    manifest["layers"][0].update(
        mediaType="application/vnd.oci.image.layer.v1.tar", digest=digest(plain), size=len(plain)
    )
    manifest_raw = json.dumps(manifest).encode()
    index_raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": manifest["mediaType"],
                    "digest": digest(manifest_raw),
                    "size": len(manifest_raw),
                    "platform": {"os": "linux", "architecture": host_arch()},
                }
            ],
        }
    ).encode()
    top = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest(index_raw),
                "size": len(index_raw),
                "annotations": {
                    "io.containerd.image.name": "example.com/raw/app:1",
                    "org.opencontainers.image.ref.name": "1",
                },
            }
        ],
    }
    archive = tmp_path / "raw.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in [
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("index.json", json.dumps(top).encode()),
            *[
                (f"blobs/sha256/{digest(d)[7:]}", d)
                for d in (built.config, plain, manifest_raw, index_raw)
            ],
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    _ok("push", "-q", str(archive), f"{target.host}/pushed")
    found = json.loads(run_imgpull("inspect", f"{target.host}/pushed/raw/app:1").stdout)
    [child] = found["platforms"]
    assert child["digest"] != digest(manifest_raw)  # the rewritten child, which exists
    pulled = tmp_path / "back.tar"
    _ok("pull", "-q", f"{target.host}/pushed/raw/app:1", "-o", str(pulled))


def test_copy_with_image_repository_names_kubernetes_images_as_kubeadm(
    registry: RegistryServer, standard_images: StandardImages, target: RegistryServer
) -> None:
    """registry.k8s.io (here: a prefix mirror of it on the test registry) to a private
    registry: kubeadm's imageRepository layout, CoreDNS flattened, as issue 10 asks."""
    _ok("copy", "-q", f"{registry.host}/test/hello:1", f"{registry.host}/k8s/coredns/coredns:v1")
    _ok("copy", "-q", f"{registry.host}/test/hello:1", f"{registry.host}/k8s/kube-proxy:v1")
    mirror = ["--mirror", f"registry.k8s.io=http://{registry.host}/k8s"]
    repo = f"{target.host}/google_containers"
    _ok(
        "copy", "-q", *mirror, "--image-repository", repo,
        "registry.k8s.io/coredns/coredns:v1", "registry.k8s.io/kube-proxy:v1",
        f"{target.host}/elsewhere",
    )  # fmt: skip
    for name in ("coredns:v1", "kube-proxy:v1"):
        done = run_imgpull("inspect", f"{repo}/{name}")
        assert done.returncode == 0, done.stderr.decode()


def test_push_with_image_repository(
    registry: RegistryServer, standard_images: StandardImages, target: RegistryServer,
    tmp_path: Path,
) -> None:  # fmt: skip
    _ok("copy", "-q", f"{registry.host}/test/hello:1", f"{registry.host}/k8s/pause:3.9")
    archive = tmp_path / "kube.tar"
    _ok(
        "pull", "-q", "--mirror", f"registry.k8s.io=http://{registry.host}/k8s",
        "registry.k8s.io/pause:3.9", "-o", str(archive),
    )  # fmt: skip
    repo = f"{target.host}/mirror"
    _ok("push", "-q", str(archive), f"{target.host}/other", "--image-repository", repo)
    done = run_imgpull("inspect", f"{repo}/pause:3.9")
    assert done.returncode == 0, done.stderr.decode()
