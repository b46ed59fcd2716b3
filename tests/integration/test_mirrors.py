"""Mirrors that keep the original image names: pull-through caches, prefix mirrors, dead
and empty mirrors, mirror_only, Docker Hub names, daemon.json and registries.conf, and
blobs from mirrors checked against their digests.

The session ``registry`` (127.0.0.1:PORT, holding ``standard_images``) plays the upstream
registry; references name it, mirrors are other real registries on loopback. Requests
are attributed by user agent: imgpull's starts with ``imgpull/``, while a pull-through
cache fetching from the upstream uses its own.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imgpull.errors import EXIT_NETWORK, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from tests.archive_view import ArchiveView
from tests.cli import assert_clean_failure, partial_files, run_imgpull
from tests.conftest import BASIC_PASSWORD, BASIC_USER, FreshEnv
from tests.fixtures.faultproxy import Corrupt, FaultProxy, Refuse404, Rule
from tests.fixtures.images import Pusher, StandardImages
from tests.fixtures.registry import (
    AccessLogEntry,
    RegistryServer,
    find_free_port,
    start_registry,
)

#: A pull that has to skip dead mirrors must still finish well within this.
DEADLINE = 20.0
CONTAINERD_NAME = "io.containerd.image.name"
PREFIX = "mirrorprefix"


def imgpull_requests(
    server: RegistryServer,
    since: int,
    method: str | None = None,
    path_pattern: str | None = None,
) -> list[AccessLogEntry]:
    """Requests imgpull itself sent (not a pull-through cache filling itself)."""
    return [
        e
        for e in server.requests(method, path_pattern, since=since)
        if e.user_agent.startswith("imgpull/")
    ]


def dead_url() -> str:
    return f"http://127.0.0.1:{find_free_port()}"


def stderr_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode(errors="replace")


def assert_pulled(result: subprocess.CompletedProcess[bytes], out: Path) -> ArchiveView:
    assert result.returncode == EXIT_OK, stderr_of(result)
    assert out.is_file()
    assert not partial_files(out)
    return ArchiveView.read(out)


@pytest.fixture
def out(fresh_env: FreshEnv, tmp_path: Path) -> Path:
    return tmp_path / "out.tar"


@pytest.fixture(scope="module")
def side_registry(
    tmp_path_factory: pytest.TempPathFactory, standard_images: StandardImages
) -> Iterator[RegistryServer]:
    """A plain registry with its own storage holding hello:1 under mirror-style names:
    ``test/hello`` (a full mirror of the upstream's repository), ``mirrorprefix/test/hello``
    (a prefix mirror), ``library/hello`` and ``docker.io/library/hello`` (Docker Hub
    mirrors without and with a prefix). It has no ``test/hello:latest``."""
    root = tmp_path_factory.mktemp("side-registry")
    server = start_registry(root / "server", storage=root / "storage")
    pusher = Pusher(server.url)
    try:
        built = standard_images.hello.built
        for repo in (
            "test/hello",
            f"{PREFIX}/test/hello",
            "library/hello",
            "docker.io/library/hello",
        ):
            pusher.push_image(repo, "1", built)
    finally:
        pusher.close()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pull_through(
    tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> Iterator[RegistryServer]:
    """distribution in proxy mode (a pull-through cache) in front of ``registry``."""
    server = start_registry(
        tmp_path / "pull-through",
        storage=tmp_path / "pull-through-cache",
        extra_config={"proxy": {"remoteurl": registry.url}},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def empty_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A registry with nothing in it: 404 for every manifest and blob."""
    server = start_registry(tmp_path / "empty", storage=tmp_path / "empty-storage")
    try:
        yield server
    finally:
        server.stop()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imgpull.toml"
    path.write_text(text)
    return path


# -- pull-through cache ------------------------------------------------------------------


def test_pull_through_cache_keeps_the_original_name(
    out: Path,
    registry: RegistryServer,
    pull_through: RegistryServer,
    standard_images: StandardImages,
) -> None:
    hello = standard_images.hello
    ref = hello.ref(registry.host)
    up_mark, mirror_mark = registry.log_mark(), pull_through.log_mark()
    result = run_imgpull(
        "pull", ref, "-o", str(out), "--mirror", f"{registry.host}={pull_through.url}"
    )
    view = assert_pulled(result, out)
    assert view.repo_tags == [ref]
    assert view.index_digests == [hello.manifest_digest]
    assert view.index_json["manifests"][0]["annotations"][CONTAINERD_NAME] == ref
    assert {hello.config_digest, *hello.layer_digests} <= set(view.blobs)
    # imgpull asked the mirror for the manifest and the blobs, and never the upstream ...
    assert imgpull_requests(pull_through, mirror_mark, "GET", r"/v2/test/hello/manifests/1")
    for digest in (hello.config_digest, *hello.layer_digests):
        assert imgpull_requests(pull_through, mirror_mark, "GET", rf"/v2/test/hello/blobs/{digest}")
    assert imgpull_requests(registry, up_mark) == []
    # ... which the cache itself filled from (so the mirror really is a pull-through one).
    upstream_manifests = registry.requests(None, r"/v2/test/hello/manifests/.*", since=up_mark)
    assert upstream_manifests
    assert all(not e.user_agent.startswith("imgpull/") for e in upstream_manifests)
    assert f"  from:     {pull_through.host}" in stderr_of(result).splitlines()


def test_second_pull_through_the_cache_needs_no_upstream_blobs(
    fresh_env: FreshEnv,
    tmp_path: Path,
    registry: RegistryServer,
    pull_through: RegistryServer,
    standard_images: StandardImages,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    mirror = f"{registry.host}={pull_through.url}"
    first = run_imgpull(
        "pull", ref, "-o", str(tmp_path / "a.tar"), "--no-cache", "--mirror", mirror
    )
    assert_pulled(first, tmp_path / "a.tar")
    up_mark = registry.log_mark()
    second = run_imgpull(
        "pull", ref, "-o", str(tmp_path / "b.tar"), "--no-cache", "--mirror", mirror
    )
    assert_pulled(second, tmp_path / "b.tar")
    assert registry.requests("GET", r"/v2/.*/blobs/.*", since=up_mark) == []
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_multi_platform_index_through_the_pull_through_cache(
    out: Path,
    registry: RegistryServer,
    pull_through: RegistryServer,
    standard_images: StandardImages,
) -> None:
    index = standard_images.multi_oci
    ref = index.ref(registry.host)
    up_mark, mirror_mark = registry.log_mark(), pull_through.log_mark()
    result = run_imgpull(
        "pull",
        ref,
        "-o",
        str(out),
        "--platform",
        "linux/arm64",
        "--mirror",
        f"{registry.host}={pull_through.url}",
    )
    view = assert_pulled(result, out)
    child = index.platforms["linux/arm64/v8"]
    assert view.index_digests == [child]
    assert view.repo_tags == [ref]
    assert imgpull_requests(pull_through, mirror_mark, "GET", rf"/v2/test/multi/manifests/{child}")
    assert imgpull_requests(registry, up_mark) == []


def test_pull_by_digest_through_a_prefix_mirror(
    out: Path,
    registry: RegistryServer,
    side_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    hello = standard_images.hello
    ref = hello.ref(registry.host, by_digest=True)
    mark = side_registry.log_mark()
    result = run_imgpull(
        "pull", ref, "-o", str(out), "--mirror", f"{registry.host}={side_registry.url}/{PREFIX}"
    )
    view = assert_pulled(result, out)
    assert view.index_digests == [hello.manifest_digest]
    assert view.repo_tags == []  # by digest: no tag, as docker save does
    path = rf"/v2/{PREFIX}/test/hello/manifests/{hello.manifest_digest}"
    assert imgpull_requests(side_registry, mark, "GET", path)


@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_summary_names_the_endpoint(
    out: Path,
    registry: RegistryServer,
    side_registry: RegistryServer,
    empty_registry: RegistryServer,
    standard_images: StandardImages,
    prefix: str,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    label = side_registry.host + (f"/{prefix}" if prefix else "")
    result = run_imgpull("pull", ref, "-o", str(out), "--mirror", f"{registry.host}=http://{label}")
    assert_pulled(result, out)
    lines = stderr_of(result).splitlines()
    summary = lines[next(i for i, line in enumerate(lines) if line.startswith("Pulled ")) :]
    assert f"  from:     {label}" in summary, stderr_of(result)
    # Served by the registry itself after an empty mirror: the registry's name.
    fallback = run_imgpull(
        "pull", ref, "-o", str(out), "--mirror", f"{registry.host}={empty_registry.url}"
    )
    assert_pulled(fallback, out)
    assert f"  from:     {registry.host}" in stderr_of(fallback).splitlines()


def test_inspect_and_tags_use_the_mirror(
    fresh_env: FreshEnv,
    registry: RegistryServer,
    side_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    mirror = ["--mirror", f"{registry.host}={side_registry.url}/{PREFIX}"]
    inspected = run_imgpull("inspect", standard_images.hello.ref(registry.host), *mirror)
    assert inspected.returncode == EXIT_OK, stderr_of(inspected)
    described = json.loads(inspected.stdout)
    assert described["endpoint"] == f"{side_registry.host}/{PREFIX}"
    assert described["digest"] == standard_images.hello.manifest_digest
    assert described["name"] == standard_images.hello.ref(registry.host)
    # The mirror's copy has only tag "1"; the upstream also has "latest".
    tags = run_imgpull("tags", f"{registry.host}/test/hello", *mirror)
    assert tags.returncode == EXIT_OK, stderr_of(tags)
    assert tags.stdout.decode().split() == ["1"]
    upstream = run_imgpull("tags", f"{registry.host}/test/hello")
    assert sorted(upstream.stdout.decode().split()) == ["1", "latest"]


# -- dead, empty and lying mirrors -----------------------------------------------------------


def test_dead_first_mirror_is_skipped_with_a_warning(
    out: Path,
    registry: RegistryServer,
    side_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    dead = dead_url()
    ref = standard_images.hello.ref(registry.host)
    up_mark, side_mark = registry.log_mark(), side_registry.log_mark()
    started = time.monotonic()
    result = run_imgpull(
        "pull",
        ref,
        "-o",
        str(out),
        "--mirror",
        f"{registry.host}={dead}",
        "--mirror",
        f"{registry.host}={side_registry.url}",
    )
    elapsed = time.monotonic() - started
    view = assert_pulled(result, out)
    assert view.repo_tags == [ref]
    assert elapsed < DEADLINE
    warnings = [line for line in stderr_of(result).splitlines() if line.startswith("warning:")]
    dead_host = dead.removeprefix("http://")
    assert len(warnings) == 1, stderr_of(result)
    assert dead_host in warnings[0] and "skipped" in warnings[0]
    assert imgpull_requests(side_registry, side_mark, "GET", r"/v2/test/hello/manifests/1")
    assert imgpull_requests(registry, up_mark) == []


def test_mirror_answering_404_falls_back_to_the_upstream(
    out: Path,
    registry: RegistryServer,
    empty_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    hello = standard_images.hello
    ref = hello.ref(registry.host)
    up_mark, empty_mark = registry.log_mark(), empty_registry.log_mark()
    result = run_imgpull(
        "pull", ref, "-o", str(out), "--mirror", f"{registry.host}={empty_registry.url}"
    )
    view = assert_pulled(result, out)
    assert view.repo_tags == [ref]
    assert view.index_digests == [hello.manifest_digest]
    asked = imgpull_requests(empty_registry, empty_mark, "GET", r"/v2/test/hello/manifests/1")
    assert [e.status for e in asked] == [404]
    assert imgpull_requests(registry, up_mark, "GET", r"/v2/test/hello/manifests/1")
    warning = [line for line in stderr_of(result).splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and empty_registry.host in warning[0], stderr_of(result)


def test_all_mirrors_dead_with_mirror_only_fails_cleanly(
    out: Path, tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    first, second = dead_url(), dead_url()
    config = write_config(
        tmp_path,
        f'[registries."{registry.host}"]\nmirrors = ["{first}", "{second}"]\nmirror_only = true\n',
    )
    up_mark = registry.log_mark()
    started = time.monotonic()
    result = run_imgpull(
        "pull",
        standard_images.hello.ref(registry.host),
        "-q",
        "-o",
        str(out),
        "--config",
        str(config),
    )
    assert time.monotonic() - started < DEADLINE
    line = assert_clean_failure(
        result, code=EXIT_NETWORK, contains=second.removeprefix("http://"), output=out
    )
    assert first.removeprefix("http://") in line  # the skipped one is named too
    assert imgpull_requests(registry, up_mark) == []


def test_single_dead_mirror_with_mirror_only_fails_cleanly(
    out: Path, tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    dead = dead_url()
    config = write_config(
        tmp_path,
        f'[registries."{registry.host}"]\nmirrors = ["{dead}"]\nmirror_only = true\n',
    )
    up_mark = registry.log_mark()
    result = run_imgpull(
        "pull", standard_images.hello.ref(registry.host), "-o", str(out), "--config", str(config)
    )
    assert_clean_failure(
        result, code=EXIT_NETWORK, contains=dead.removeprefix("http://"), output=out
    )
    assert imgpull_requests(registry, up_mark) == []


def test_mirror_only_with_an_empty_mirror_is_not_found(
    out: Path,
    tmp_path: Path,
    registry: RegistryServer,
    empty_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    config = write_config(
        tmp_path,
        f'[registries."{registry.host}"]\nmirrors = ["{empty_registry.url}"]\nmirror_only = true\n',
    )
    up_mark = registry.log_mark()
    result = run_imgpull(
        "pull", standard_images.hello.ref(registry.host), "-o", str(out), "--config", str(config)
    )
    assert_clean_failure(result, code=EXIT_NOT_FOUND, contains=empty_registry.host, output=out)
    assert imgpull_requests(registry, up_mark) == []


def test_all_mirrors_dead_without_mirror_only_falls_back(
    out: Path, tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    first, second = dead_url(), dead_url()
    config = write_config(
        tmp_path, f'[registries."{registry.host}"]\nmirrors = ["{first}", "{second}"]\n'
    )
    ref = standard_images.hello.ref(registry.host)
    up_mark = registry.log_mark()
    started = time.monotonic()
    result = run_imgpull("pull", ref, "-o", str(out), "--config", str(config))
    assert time.monotonic() - started < DEADLINE
    view = assert_pulled(result, out)
    assert view.repo_tags == [ref]
    assert imgpull_requests(registry, up_mark, "GET", r"/v2/test/hello/manifests/1")
    text = stderr_of(result)
    for dead in (first, second):
        assert dead.removeprefix("http://") in text


def test_mirror_with_a_bad_port_is_a_config_error(
    out: Path, tmp_path: Path, registry: RegistryServer, standard_images: StandardImages
) -> None:
    config = write_config(
        tmp_path, f'[registries."{registry.host}"]\nmirrors = ["http://127.0.0.1:abc"]\n'
    )
    result = run_imgpull(
        "pull", standard_images.hello.ref(registry.host), "-o", str(out), "--config", str(config)
    )
    assert_clean_failure(result, code=EXIT_USAGE, contains=str(config), output=out)


# -- prefix mirrors and Docker Hub names ---------------------------------------------------


def test_prefix_mirror(
    out: Path,
    registry: RegistryServer,
    side_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    hello = standard_images.hello
    ref = hello.ref(registry.host)
    up_mark, side_mark = registry.log_mark(), side_registry.log_mark()
    result = run_imgpull(
        "pull", ref, "-o", str(out), "--mirror", f"{registry.host}={side_registry.url}/{PREFIX}/"
    )
    view = assert_pulled(result, out)
    assert view.repo_tags == [ref]
    assert view.index_json["manifests"][0]["annotations"][CONTAINERD_NAME] == ref
    assert imgpull_requests(
        side_registry, side_mark, "GET", rf"/v2/{PREFIX}/test/hello/manifests/1"
    )
    for digest in (hello.config_digest, *hello.layer_digests):
        assert imgpull_requests(
            side_registry, side_mark, "GET", rf"/v2/{PREFIX}/test/hello/blobs/{digest}"
        )
    assert not imgpull_requests(side_registry, side_mark, None, r"/v2/test/.*")
    assert imgpull_requests(registry, up_mark) == []


@pytest.mark.parametrize("prefix", ["", "docker.io"])
def test_docker_hub_names_through_a_mirror(
    out: Path,
    tmp_path: Path,
    side_registry: RegistryServer,
    standard_images: StandardImages,
    prefix: str,
) -> None:
    # mirror_only keeps registry-1.docker.io out of it (there is no internet here anyway).
    config = write_config(tmp_path, '[registries."docker.io"]\nmirror_only = true\n')
    url = side_registry.url + (f"/{prefix}" if prefix else "")
    mark = side_registry.log_mark()
    result = run_imgpull(
        "pull", "hello:1", "-o", str(out), "--config", str(config), "--mirror", f"docker.io={url}"
    )
    view = assert_pulled(result, out)
    assert view.repo_tags == ["hello:1"]
    assert view.index_digests == [standard_images.hello.manifest_digest]
    annotations = view.index_json["manifests"][0]["annotations"]
    assert annotations[CONTAINERD_NAME] == "docker.io/library/hello:1"
    path = f"/v2/{prefix + '/' if prefix else ''}library/hello/manifests/1"
    assert imgpull_requests(side_registry, mark, "GET", path)


def test_docker_hub_mirror_from_daemon_json(
    out: Path, fresh_env: FreshEnv, tmp_path: Path, side_registry: RegistryServer
) -> None:
    (fresh_env.root / "daemon.json").write_text(
        json.dumps({"registry-mirrors": [side_registry.url]})
    )
    config = write_config(tmp_path, '[registries."docker.io"]\nmirror_only = true\n')
    mark = side_registry.log_mark()
    result = run_imgpull("pull", "hello:1", "-o", str(out), "--config", str(config))
    view = assert_pulled(result, out)
    assert view.repo_tags == ["hello:1"]
    assert imgpull_requests(side_registry, mark, "GET", r"/v2/library/hello/manifests/1")


def test_daemon_json_mirror_is_tried_before_docker_hub(
    out: Path, fresh_env: FreshEnv, side_registry: RegistryServer
) -> None:
    """Without mirror_only Docker Hub stays the fallback, but a working mirror answers
    first, so it is never asked."""
    (fresh_env.root / "daemon.json").write_text(
        json.dumps({"registry-mirrors": [side_registry.url + "/"]})
    )
    mark = side_registry.log_mark()
    result = run_imgpull("pull", "library/hello:1", "-o", str(out))
    view = assert_pulled(result, out)
    assert view.repo_tags == ["hello:1"]
    assert imgpull_requests(side_registry, mark, "GET", r"/v2/library/hello/manifests/1")
    assert "warning" not in stderr_of(result)


def test_flag_mirror_replaces_daemon_json_mirror(
    out: Path, fresh_env: FreshEnv, tmp_path: Path, side_registry: RegistryServer
) -> None:
    dead = dead_url()
    (fresh_env.root / "daemon.json").write_text(json.dumps({"registry-mirrors": [dead]}))
    config = write_config(tmp_path, '[registries."docker.io"]\nmirror_only = true\n')
    result = run_imgpull(
        "pull",
        "hello:1",
        "-o",
        str(out),
        "--config",
        str(config),
        "--mirror",
        f"docker.io={side_registry.url}",
    )
    assert_pulled(result, out)
    assert dead.removeprefix("http://") not in stderr_of(result)


# -- registries.conf -----------------------------------------------------------------------


def test_registries_conf_mirror(
    out: Path,
    fresh_env: FreshEnv,
    registry: RegistryServer,
    side_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    (fresh_env.root / "registries.conf").write_text(
        f'unqualified-search-registries = ["docker.io"]\n\n[[registry]]\n'
        f'prefix = "{registry.host}"\nlocation = "{registry.host}"\n\n'
        f'[[registry.mirror]]\nlocation = "{side_registry.host}/{PREFIX}"\ninsecure = true\n'
    )
    ref = standard_images.hello.ref(registry.host)
    up_mark, side_mark = registry.log_mark(), side_registry.log_mark()
    result = run_imgpull("pull", ref, "-o", str(out))
    view = assert_pulled(result, out)
    assert view.repo_tags == [ref]
    assert imgpull_requests(
        side_registry, side_mark, "GET", rf"/v2/{PREFIX}/test/hello/manifests/1"
    )
    assert imgpull_requests(registry, up_mark) == []


def test_registries_conf_blocked_registry(
    out: Path, fresh_env: FreshEnv, registry: RegistryServer, standard_images: StandardImages
) -> None:
    conf = fresh_env.root / "registries.conf"
    conf.write_text(
        f'[[registry]]\nprefix = "{registry.host}"\nlocation = "{registry.host}"\nblocked = true\n'
    )
    up_mark = registry.log_mark()
    result = run_imgpull("pull", standard_images.hello.ref(registry.host), "-o", str(out))
    line = assert_clean_failure(result, code=EXIT_USAGE, contains=str(conf), output=out)
    assert "blocked" in line and registry.host in line
    assert imgpull_requests(registry, up_mark) == []


# -- credentials and integrity ----------------------------------------------------------------


def test_flag_credentials_are_not_sent_to_a_mirror(
    out: Path,
    registry: RegistryServer,
    basic_http_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    """The mirror wants alice's password too, but -u/-p belong to the upstream: the mirror
    gets no credentials, refuses, and the upstream serves."""
    ref = standard_images.hello.ref(registry.host)
    mirror_mark, up_mark = basic_http_registry.log_mark(), registry.log_mark()
    result = run_imgpull(
        "pull",
        ref,
        "-o",
        str(out),
        "-u",
        BASIC_USER,
        "--password-stdin",
        "--mirror",
        f"{registry.host}={basic_http_registry.url}",
        input=BASIC_PASSWORD.encode(),
    )
    assert_pulled(result, out)
    seen = imgpull_requests(basic_http_registry, mirror_mark)
    assert seen, "the mirror was not tried"
    # alice's password is right for this registry: had it been sent, it would have said 200.
    assert {e.status for e in seen} == {401}, seen
    assert imgpull_requests(registry, up_mark, "GET", r"/v2/test/hello/manifests/1")


def test_mirror_uses_its_own_saved_credentials(
    out: Path,
    fresh_env: FreshEnv,
    registry: RegistryServer,
    basic_http_registry: RegistryServer,
    standard_images: StandardImages,
) -> None:
    fresh_env.docker_login(basic_http_registry.host, BASIC_USER, BASIC_PASSWORD)
    mirror_mark, up_mark = basic_http_registry.log_mark(), registry.log_mark()
    result = run_imgpull(
        "pull",
        standard_images.hello.ref(registry.host),
        "-o",
        str(out),
        "--mirror",
        f"{registry.host}={basic_http_registry.url}",
    )
    assert_pulled(result, out)
    asked = imgpull_requests(basic_http_registry, mirror_mark, "GET", r"/v2/.*/manifests/1")
    assert 200 in {e.status for e in asked}, asked  # only with the saved credentials
    assert imgpull_requests(registry, up_mark) == []


@pytest.mark.parametrize("what", ["blobs", "manifests"])
def test_corrupting_mirror_is_skipped_for_the_upstream(
    out: Path,
    registry: RegistryServer,
    fault_proxy_factory: Callable[..., FaultProxy],
    standard_images: StandardImages,
    what: str,
) -> None:
    hello = standard_images.hello
    mirror = fault_proxy_factory(registry)
    mirror.add_rule(
        Rule(action=Corrupt(offset=10), method="GET", path=rf"/v2/.*/{what}/.*", times=None)
    )
    ref = hello.ref(registry.host)
    up_mark = registry.log_mark()
    result = run_imgpull("pull", ref, "-o", str(out), "--mirror", f"{registry.host}={mirror.url}")
    view = assert_pulled(result, out)  # ArchiveView checks every blob against its digest
    assert view.index_digests == [hello.manifest_digest]
    assert {hello.config_digest, *hello.layer_digests} <= set(view.blobs)
    corrupted = [r for r in mirror.requests if r.action == "Corrupt"]
    assert corrupted, "the mirror was not asked"

    def direct(path: str) -> int:
        """imgpull's own requests to the upstream: the fault proxy forwards the mirror's
        requests there with imgpull's user agent, so those are subtracted."""
        relayed = len(mirror.requests_to("GET", path))
        return len(imgpull_requests(registry, up_mark, "GET", path)) - relayed

    manifest_path = r"/v2/test/hello/manifests/1"
    if what == "blobs":
        # The manifest came from the mirror, every blob (after a bad copy) from upstream.
        assert direct(manifest_path) == 0
        for digest in (hello.config_digest, *hello.layer_digests):
            assert direct(rf"/v2/test/hello/blobs/{digest}") == 1
    else:
        assert direct(manifest_path) == 1
    warnings = [line for line in stderr_of(result).splitlines() if line.startswith("warning:")]
    assert warnings and all(mirror.host in w for w in warnings), stderr_of(result)
    assert any("digest" in w for w in warnings), stderr_of(result)


def test_mirror_missing_blobs_is_skipped_for_the_upstream(
    out: Path,
    registry: RegistryServer,
    fault_proxy_factory: Callable[..., FaultProxy],
    standard_images: StandardImages,
) -> None:
    """A mirror holding the manifest but not the layers (a half-synced mirror)."""
    hello = standard_images.hello
    mirror = fault_proxy_factory(registry)
    mirror.add_rule(Rule(action=Refuse404(), method="GET", path=r"/v2/.*/blobs/.*", times=None))
    up_mark = registry.log_mark()
    result = run_imgpull(
        "pull",
        hello.ref(registry.host),
        "-o",
        str(out),
        "--mirror",
        f"{registry.host}={mirror.url}",
    )
    view = assert_pulled(result, out)
    assert {hello.config_digest, *hello.layer_digests} <= set(view.blobs)
    # Blobs refused by the proxy never reach the upstream: these GETs are imgpull's own.
    for digest in (hello.config_digest, *hello.layer_digests):
        assert imgpull_requests(registry, up_mark, "GET", rf"/v2/test/hello/blobs/{digest}")
    assert "  from:     " + mirror.host in stderr_of(result).splitlines()
