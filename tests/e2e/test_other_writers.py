"""Archives other tools write, pushed with ``imgpull push`` and pulled back (issue 10).

For every writer shape of ``tests.fixtures.writers`` (real docker 20.10, podman, skopeo
and ctr where they are here; Docker 25, buildkit and crane constructed from their
formats): ``imgpull push ARCHIVE DEST``, then

* the registry holds each image under the name the README's rule gives (checked with
  ``skopeo inspect --raw``, not imgpull): its config is the archive's (the image ID
  survives), and where the archive carries the registry's manifest (OCI layouts of
  compressed layers) or compressed layers (crane), exactly those digests;
* ``imgpull pull`` of those names gives archives whose manifest (or index) digest is the
  one the registry holds;
* docker (podman for podman's own archives) runs the pulled image and prints its line.

Destination names (README, ``imgpull push``): a ``DEST`` without a tag is a prefix under
which each named image keeps its path (``registry.example:5000/writers/alpha:1`` ->
``DEST/writers/alpha:1``, ``beta:2`` -> ``DEST/library/beta:2``); images named only by a
tag (skopeo ``oci:DIR:TAG``) go to ``DEST:TAG``, DEST being the repository; a ``DEST``
with a tag names the one image of an archive.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli import ERROR_PREFIX, run_imgpull
from tests.fixtures import writers as w
from tests.fixtures.loaders import (
    Containerd,
    DockerDaemon,
    LoaderError,
    Podman,
    Skopeo,
    make_workdir,
    remove_workdir,
)
from tests.fixtures.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("fresh_env")]


# -- what the registry holds, what imgpull pulled ---------------------------------------------


def registry_manifest(skopeo: Skopeo, ref: str) -> tuple[str, dict[str, Any]]:
    """(digest, parsed) of the manifest the registry serves for ``ref`` (skopeo, raw bytes)."""
    raw = skopeo.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest(), json.loads(raw)


def archive_index_digests(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        return [m["digest"] for m in json.load(member)["manifests"]]


def imgpull_ok(*args: str) -> str:
    done = run_imgpull(*args, timeout=300)
    assert done.returncode == 0, (
        f"imgpull {' '.join(args)} exited {done.returncode}\n{done.stderr.decode()}"
    )
    return done.stderr.decode()


def imgpull_fails_cleanly(*args: str) -> str:
    """The README's failure contract: non-zero exit, one ``imgpull: error:`` line."""
    done = run_imgpull(*args, timeout=300)
    stderr = done.stderr.decode()
    assert done.returncode != 0, f"expected a failure, got exit 0\n{stderr}"
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), stderr
    return lines[0]


def dest_ref(image_names: tuple[str, ...], tags: tuple[str, ...], dest: str) -> str:
    """Where ``push ARCHIVE DEST`` puts an image (module docstring)."""
    if image_names:
        path, tag = w.repository_path(image_names[0])
        return f"{dest}/{path}:{tag}"
    (tag,) = tags
    return f"{dest}:{tag}"


# -- the writers' archives, built once per module ----------------------------------------------


class Catalog:
    """Every writer's archive, built on first use from the same source images."""

    def __init__(self, request: pytest.FixtureRequest, root: Path) -> None:
        self.request = request
        self.root = root
        self.sources = w.build_sources()
        self.layout = w.source_layout(root / "source-layout", self.sources)
        self.built: dict[str, w.WrittenArchive] = {}
        self.containerd: Containerd | None = None
        self.containerd_dir: Path | None = None

    def get(self, case: str) -> w.WrittenArchive:
        if case not in self.built:
            self.built[case] = BUILDERS[case](self)
        return self.built[case]

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    def loaded_docker(self) -> DockerDaemon:
        docker: DockerDaemon = self.fixture("dockerd")
        docker.remove_all_images()
        w.load_into_docker(docker, self.fixture("skopeo"), self.sources.images, self.root / "dl")
        return docker

    def loaded_podman(self) -> Podman:
        podman: Podman = self.fixture("podman")
        podman.reset()
        w.load_into_podman(podman, self.fixture("skopeo"), self.sources.images, self.root / "pl")
        return podman

    def loaded_containerd(self) -> Containerd:
        if self.containerd is None:
            self.containerd_dir = make_workdir("imgpull-ctrd-")
            try:
                self.containerd = Containerd(self.containerd_dir / "c").start()
            except LoaderError as exc:
                pytest.fail(f"loader unavailable: {exc}", pytrace=False)
            items: list[w.SourceImage | w.SourceIndex] = [*self.sources.images, self.sources.multi]
            w.load_into_containerd(self.containerd, items, self.root / "cl")
        return self.containerd

    def close(self) -> None:
        if self.containerd is not None:
            self.containerd.stop()
        if self.containerd_dir is not None:
            remove_workdir(self.containerd_dir)


def _docker_by_name(c: Catalog) -> w.WrittenArchive:
    return w.docker_save(c.loaded_docker(), c.sources.images, c.root / "docker-save.tar")


def _docker_by_id(c: Catalog) -> w.WrittenArchive:
    docker = c.loaded_docker()
    return w.docker_save(docker, [c.sources.gamma], c.root / "docker-id.tar", by_id=True)


def _podman(fmt: w.PodmanFormat) -> Callable[[Catalog], w.WrittenArchive]:
    def build(c: Catalog) -> w.WrittenArchive:
        images = c.sources.images if fmt == "docker-archive" else (c.sources.gamma,)
        return w.podman_save(c.loaded_podman(), images, c.root / f"podman-{fmt}", fmt)

    return build


def _skopeo(fmt: w.SkopeoFormat, key: str) -> Callable[[Catalog], w.WrittenArchive]:
    def build(c: Catalog) -> w.WrittenArchive:
        source = getattr(c.sources, key)
        skopeo = c.fixture("skopeo")
        return w.skopeo_copy(skopeo, c.layout, source, c.root / f"skopeo-{fmt}-{key}", fmt)

    return build


def _skopeo_tags(c: Catalog) -> w.WrittenArchive:
    tagged = {"v1": c.sources.alpha, "v2": c.sources.gamma}
    return w.skopeo_multi_tag_layout(c.fixture("skopeo"), c.layout, tagged, c.root / "tags")


def _ctr(all_platforms: bool, multi: bool) -> Callable[[Catalog], w.WrittenArchive]:
    def build(c: Catalog) -> w.WrittenArchive:
        items: list[w.SourceImage | w.SourceIndex] = (
            [c.sources.multi] if multi else [c.sources.alpha, c.sources.gamma]
        )
        out = c.root / f"ctr-{all_platforms}-{multi}.tar"
        return w.ctr_export(c.loaded_containerd(), items, out, all_platforms=all_platforms)

    return build


BUILDERS: dict[str, Callable[[Catalog], w.WrittenArchive]] = {
    "docker-20.10 by name": _docker_by_name,
    "docker-20.10 by id": _docker_by_id,
    "docker-25 by name": lambda c: w.docker25_save(c.root / "d25.tar", c.sources.images),
    "docker-25 by id": lambda c: w.docker25_save(
        c.root / "d25-id.tar", [c.sources.alpha], by_id=True
    ),
    "podman docker-archive": _podman("docker-archive"),
    "podman oci-archive": _podman("oci-archive"),
    "podman oci-dir": _podman("oci-dir"),
    "podman docker-dir": _podman("docker-dir"),
    "skopeo oci": _skopeo("oci", "gamma"),
    "skopeo oci-archive": _skopeo("oci-archive", "alpha"),
    "skopeo docker-archive": _skopeo("docker-archive", "beta"),
    "skopeo oci-archive --all": _skopeo("oci-archive", "multi"),
    "skopeo several tags": _skopeo_tags,
    "buildkit type=oci": lambda c: w.buildkit_oci_tar(c.root / "bk.tar", c.sources.gamma),
    "buildkit type=oci, no name": lambda c: w.buildkit_oci_tar(
        c.root / "bk-multi.tar", c.sources.multi, named=False
    ),
    "crane tarball": lambda c: w.crane_tarball(c.root / "crane.tar", c.sources.images),
    "crane legacy": lambda c: w.crane_legacy(c.root / "crane-legacy.tar", c.sources.images),
    "ctr export": _ctr(all_platforms=False, multi=False),
    "ctr export --all-platforms, index": _ctr(all_platforms=True, multi=True),
    "ctr export, index of one platform": _ctr(all_platforms=False, multi=True),
    "layout named by io.containerd.image.name": lambda c: w.named_layout(
        c.root / "named", [c.sources.alpha, c.sources.beta, c.sources.multi]
    ),
}


@pytest.fixture(scope="module")
def catalog(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    dockerd: DockerDaemon,
    podman: Podman,
) -> Iterator[Catalog]:
    """Asks for the session loaders here, before any test's ``fresh_env``: a loader made
    inside a test would keep that test's HOME and DOCKER_CONFIG (podman then fails every
    ``run`` with "stat .../config.json: no such file or directory")."""
    built = Catalog(request, tmp_path_factory.mktemp("other-writers"))
    try:
        yield built
    finally:
        built.close()


# -- the round trip -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """How a writer's archive is pushed: ``dest`` is ``prefix`` (``TARGET/NS``), ``repo``
    (``TARGET/NS/REPO``, for images named only by a tag) or ``full`` (``TARGET/NS/REPO:TAG``)."""

    dest: str
    runner: str = "docker"  # what runs the pulled images: docker or podman


CASES: dict[str, Case] = {
    "docker-20.10 by name": Case("prefix"),
    "docker-20.10 by id": Case("full"),
    "docker-25 by name": Case("prefix"),
    "docker-25 by id": Case("full"),
    "podman docker-archive": Case("prefix", "podman"),
    "podman oci-archive": Case("prefix", "podman"),
    "podman oci-dir": Case("prefix", "podman"),
    "podman docker-dir": Case("full", "podman"),
    "skopeo oci": Case("repo"),
    "skopeo oci-archive": Case("repo"),
    "skopeo docker-archive": Case("prefix"),
    "skopeo oci-archive --all": Case("repo"),
    "skopeo several tags": Case("repo"),
    "buildkit type=oci": Case("prefix"),
    "buildkit type=oci, no name": Case("full"),
    "crane tarball": Case("prefix"),
    "crane legacy": Case("prefix"),
    "ctr export": Case("prefix"),
    "ctr export --all-platforms, index": Case("prefix"),
    "layout named by io.containerd.image.name": Case("prefix"),
}


def _namespace(case: str) -> str:
    return "w/" + "".join(ch if ch.isalnum() else "-" for ch in case.lower()).strip("-")


def _pushed_refs(written: w.WrittenArchive, case: Case, dest: str) -> list[str]:
    items: list[w.ExpectedImage | w.ExpectedIndex] = [*written.images, *written.indexes]
    if case.dest == "full":
        assert len(items) == 1, "a full DEST reference names one image"
        return [dest]
    return [dest_ref(i.names, i.tags, dest) for i in items]


def _run_pulled(
    request: pytest.FixtureRequest, runner: str, archive: Path, refs: list[str]
) -> list[str]:
    """Load the pulled bundle into docker (or podman) and run each image: their lines."""
    if runner == "podman":
        podman: Podman = request.getfixturevalue("clean_podman")
        podman.load(archive)
        return [podman.run(ref).strip() for ref in refs]
    docker: DockerDaemon = request.getfixturevalue("clean_dockerd")
    docker.load(archive)
    return [docker.run(ref).strip() for ref in refs]


@pytest.mark.parametrize("case_name", list(CASES))
def test_push_then_pull_keeps_digests_and_runs(
    case_name: str,
    catalog: Catalog,
    registry: RegistryServer,
    skopeo: Skopeo,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    case = CASES[case_name]
    written = catalog.get(case_name)
    dest = f"{registry.host}/{_namespace(case_name)}"
    if case.dest == "full":
        dest += "/pushed:1"
    imgpull_ok("push", "-q", str(written.path), dest)

    refs = _pushed_refs(written, case, dest)
    items: list[w.ExpectedImage | w.ExpectedIndex] = [*written.images, *written.indexes]
    held: dict[str, str] = {}
    for item, ref in zip(items, refs, strict=True):
        digest, manifest = registry_manifest(skopeo, ref)
        held[ref] = digest
        if isinstance(item, w.ExpectedIndex):
            assert digest == item.digest, f"{ref}: the index must be pushed as it is"
            listed = [m["digest"] for m in manifest["manifests"]]
            assert listed == list(item.children)
            for child in item.children:  # every child, attestations and artifacts too
                assert registry_manifest(skopeo, f"{ref.rsplit(':', 1)[0]}@{child}")[0] == child
            continue
        assert manifest["config"]["digest"] == item.config_digest, f"{ref}: config changed"
        if item.keeps_manifest:
            assert digest == item.manifest_digest, f"{ref}: the archive's manifest must be kept"
        if item.layer_digests is not None:
            assert [layer["digest"] for layer in manifest["layers"]] == list(item.layer_digests)

    pulled = tmp_path / "pulled.tar"
    imgpull_ok("pull", "-q", "--all-platforms", *refs, "-o", str(pulled))
    assert archive_index_digests(pulled) == [held[ref] for ref in refs]
    outputs = _run_pulled(request, case.runner, pulled, refs)
    assert outputs == [item.output for item in items]


# -- names: what push does when the archive names images in other ways ------------------------


def test_several_tags_in_one_layout_need_a_repository(
    catalog: Catalog, registry: RegistryServer
) -> None:
    """Images named only by a tag cannot go to a bare registry: no repository to use."""
    written = catalog.get("skopeo several tags")
    imgpull_fails_cleanly("push", "-q", str(written.path), registry.host)


def test_unnamed_docker_25_archive_to_a_prefix_fails_cleanly(
    catalog: Catalog, registry: RegistryServer
) -> None:
    written = catalog.get("docker-25 by id")
    line = imgpull_fails_cleanly("push", "-q", str(written.path), f"{registry.host}/w/unnamed")
    assert "full reference" in line


def test_index_of_one_platform_pushes_the_platform_it_holds(
    catalog: Catalog,
    registry: RegistryServer,
    skopeo: Skopeo,
    clean_dockerd: DockerDaemon,
    tmp_path: Path,
) -> None:
    """``ctr images export`` without ``--all-platforms`` (the usual call on a node) lists
    every platform of an index but holds only the host's.  That index cannot be pushed
    (the registry refuses an index whose manifests it lacks); what the archive holds can:
    under the index's name, the host's manifest unchanged, alone or in an index of just
    it (as ``pull --platform`` writes one)."""
    written = catalog.get("ctr export, index of one platform")
    (index,) = written.indexes
    (present,) = index.present
    dest = f"{registry.host}/w/ctr-one-platform"
    imgpull_ok("push", "-q", str(written.path), dest)
    ref = dest_ref(index.names, index.tags, dest)
    digest, held = registry_manifest(skopeo, ref)
    if digest != present:
        assert [m["digest"] for m in held.get("manifests", [])] == [present], held
    pulled = tmp_path / "pulled.tar"
    imgpull_ok("pull", "-q", ref, "-o", str(pulled))
    clean_dockerd.load(pulled)
    assert clean_dockerd.run(ref).strip() == index.output


def test_docker_25_archive_keeps_the_image_id(
    catalog: Catalog, registry: RegistryServer, clean_dockerd: DockerDaemon, tmp_path: Path
) -> None:
    """Docker 25 stores layers uncompressed; whatever push does with them, the config (so
    the image ID docker shows) is the one the archive holds."""
    written = catalog.get("docker-25 by name")
    dest = f"{registry.host}/w/docker25-id"
    imgpull_ok("push", "-q", str(written.path), dest)
    refs = [dest_ref(i.names, i.tags, dest) for i in written.images]
    pulled = tmp_path / "pulled.tar"
    imgpull_ok("pull", "-q", *refs, "-o", str(pulled))
    clean_dockerd.load(pulled)
    for ref, image in zip(refs, written.images, strict=True):
        assert clean_dockerd.inspect_image(ref)["Id"] == image.config_digest
