"""The hostile world (issue 9, and issue 8's slow bodies): servers that misbehave on purpose,
hostile filesystems and inputs. Each test asserts the secure outcome through the CLI.

The outcome every failure here must have (``assert_one_line_error``): a non-zero exit (the
specific code where the issue makes it obvious: wrong bytes 6, slow or hung 5), exactly
one ``imgpull: error:`` line on standard error (``-q``, so no progress lines), no
traceback, no "internal error", nothing at ``-o`` and nothing left beside it. Where memory
is the point the peak RSS (VmHWM, :mod:`tests.fixtures.procwatch`) stays below 100 MiB;
where time is the point the run ends within ``--timeout`` plus one second.

Misbehaviour comes from servers in front of the real registry (fault-proxy rules) or from
servers of :mod:`tests.fixtures.hostile`; the registry protocol is never mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.archive_view import ArchiveView
from tests.cli import partial_files
from tests.conftest import BASIC_PASSWORD, BASIC_USER, FreshEnv
from tests.fixtures.faultproxy import (
    Corrupt,
    EndlessBody,
    FaultProxy,
    Hang,
    Rule,
    SlowRequestBody,
    Status,
    Throttle,
    Trickle,
)
from tests.fixtures.hostile import (
    EXIT_INTEGRITY,
    EXIT_NETWORK,
    BearerFront,
    CraftedImage,
    ThreeHostLeak,
    assert_one_line_error,
    default_config,
    leftovers_beside,
    nested_json,
    write_oci_archive,
    write_tar,
)
from tests.fixtures.images import (
    CONFIG_MEDIA,
    INDEX_MEDIA,
    MANIFEST_MEDIA,
    Pusher,
    StandardImages,
    build_layer,
    host_arch,
    sha256_digest,
)
from tests.fixtures.procwatch import (
    MiB,
    Watched,
    Watcher,
    imgpull_argv,
    start_watched,
    watch_imgpull,
)
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")

MEMORY_CAP = 100 * MiB
#: Far above the cap, so a run that grows without bound is stopped early.
RSS_KILL = 300 * MiB
MANIFESTS = r"/v2/.+/manifests/.+"
TAGS = r"/v2/.+/tags/list"
UPLOADS = r"/v2/.+/blobs/uploads/.+"
OCI_MANIFEST = MANIFEST_MEDIA["oci"]
DOCKER_MANIFEST = MANIFEST_MEDIA["docker"]
FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
BAD_URLS = {
    "ipv6": "http://[::1/v2/x",
    "port": "http://127.0.0.1:99999/v2/x",
    "port-text": "http://127.0.0.1:port/v2/x",
}


@pytest.fixture
def out(fresh_env: FreshEnv, tmp_path: Path) -> Path:
    return tmp_path / "out" / "out.tar"


@pytest.fixture(autouse=True)
def _output_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()


def assert_bounded_memory(watched: Watched) -> None:
    assert watched.peak_rss < MEMORY_CAP, (
        f"peak RSS {watched.peak_rss_mib:.0f} MiB >= 100 MiB\n{watched.describe()}"
    )


def assert_within(watched: Watched, seconds: float) -> None:
    assert watched.wall <= seconds, f"took {watched.wall:.1f} s > {seconds} s\n{watched.describe()}"


def hello_layer(images: StandardImages) -> tuple[str, int]:
    layer = images.hello.built.layers[0]
    return layer.digest, layer.size


def pull(
    ref: str, out: Path, *extra: str, time_limit: float = 60, input: bytes | None = None
) -> Watched:
    """``imgpull pull -q REF -o OUT EXTRA...``, watched."""
    args = ("pull", "-q", ref, "-o", str(out), *extra)
    return watch_imgpull(*args, input=input, time_limit=time_limit, rss_limit=RSS_KILL)


def json_status(data: object, content_type: str = "application/json", **headers: str) -> Status:
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return Status(200, {"Content-Type": content_type, **headers}, body)


# == 1. credentials to a third host =====================================================


@pytest.mark.parametrize("password_from", ["-p", "--password-stdin"])
def test_ping_redirect_never_hands_credentials_to_a_third_host(
    three_host_leak: ThreeHostLeak, standard_images: StandardImages, out: Path, password_from: str
) -> None:
    """/v2/ answers 302 to B, B's 401 names a realm on C: -u/-p go to neither."""
    ref = three_host_leak.a.ref("test/hello", "1")
    if password_from == "-p":
        watched = pull(ref, out, "-u", BASIC_USER, "-p", BASIC_PASSWORD)
    else:
        secret = f"{BASIC_PASSWORD}\n".encode()
        watched = pull(ref, out, "-u", BASIC_USER, "--password-stdin", input=secret)
    leaks = three_host_leak.leaks(BASIC_USER, BASIC_PASSWORD)
    assert leaks == [], "\n".join(leaks) + "\n" + watched.describe()
    if watched.returncode != 0:
        assert_one_line_error(watched, output=out)


# == 2. safe outputs ====================================================================


def test_character_device_output_is_written_through_not_replaced(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    # A private node equal to /dev/null (1, 3): the machine's own /dev/null is shared.
    device = tmp_path / "out" / "null"
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    watched = pull(standard_images.hello.ref(registry.host), device)
    mode = os.lstat(device)
    assert stat.S_ISCHR(mode.st_mode), f"the device was replaced\n{watched.describe()}"
    assert mode.st_rdev == os.makedev(1, 3)
    assert watched.returncode == 0, watched.describe()
    assert leftovers_beside(device) == []
    assert sorted(p.name for p in device.parent.iterdir()) == ["null"]


def test_fifo_output_is_written_through_like_stdout(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    fifo = tmp_path / "out" / "pipe.tar"
    os.mkfifo(fifo)
    alias = tmp_path / "pipe-alias"  # the same FIFO, even if -o is renamed over
    os.link(fifo, alias)
    received = bytearray()

    def read_fifo() -> None:
        with open(alias, "rb") as reader:
            while chunk := reader.read(65536):
                received.extend(chunk)

    reader = threading.Thread(target=read_fifo, daemon=True)
    reader.start()
    try:
        watched = pull(standard_images.hello.ref(registry.host), fifo)
    finally:
        if reader.is_alive():  # nobody ever wrote: unblock the reader
            with contextlib.suppress(OSError):
                os.close(os.open(alias, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), f"the FIFO was replaced\n{watched.describe()}"
    assert watched.returncode == 0, watched.describe()
    assert leftovers_beside(fifo) == []
    archive = tmp_path / "received.tar"
    archive.write_bytes(bytes(received))
    view = ArchiveView.read(archive)  # checks every blob against its name
    assert set(standard_images.hello.layer_digests) <= set(view.blobs)


def test_directory_output_is_refused(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "a-directory"
    target.mkdir()
    watched = pull(standard_images.hello.ref(registry.host), target)
    assert_one_line_error(watched)
    assert target.is_dir() and not any(target.iterdir())
    assert leftovers_beside(target) == []


def test_socket_output_is_refused(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    path = tmp_path / "out" / "a.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    try:
        watched = pull(standard_images.hello.ref(registry.host), path)
        assert_one_line_error(watched)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert leftovers_beside(path) == []
    finally:
        listener.close()


SENTINEL = b"a file someone else owns; a planted symlink must not replace it\n"
OTHER_UID = 4242


@pytest.fixture
def sticky_dir(tmp_path: Path) -> Path:
    """A sticky, world-writable directory like /tmp, owned by root."""
    path = tmp_path / "sticky"
    path.mkdir()
    path.chmod(0o1777)
    return path


def test_symlink_planted_by_another_user_in_a_sticky_directory_is_refused(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path, sticky_dir: Path
) -> None:
    victim = tmp_path / "victim.conf"
    victim.write_bytes(SENTINEL)
    link = sticky_dir / "out.tar"
    os.symlink(victim, link)
    os.lchown(link, OTHER_UID, OTHER_UID)
    watched = pull(standard_images.hello.ref(registry.host), link)
    assert victim.read_bytes() == SENTINEL, f"the link's target was replaced\n{watched.describe()}"
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert_one_line_error(watched)
    assert leftovers_beside(link) == [] and partial_files(victim) == []


def test_symlink_owned_by_the_user_is_followed(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path, sticky_dir: Path
) -> None:
    target = tmp_path / "real.tar"
    link = sticky_dir / "out.tar"
    os.symlink(target, link)  # owned by us (root), as protected_symlinks allows
    watched = pull(standard_images.hello.ref(registry.host), link)
    assert watched.returncode == 0, watched.describe()
    assert link.is_symlink()
    assert set(standard_images.hello.layer_digests) <= set(ArchiveView.read(target).blobs)


# == 3. unbounded memory ================================================================

ENDLESS_MANIFESTS = {
    "chunked": EndlessBody(headers={"Content-Type": OCI_MANIFEST}),
    "close-delimited": EndlessBody(headers={"Content-Type": OCI_MANIFEST}, chunked=False),
    "lying-length": EndlessBody(headers={"Content-Type": OCI_MANIFEST}, content_length=10**10),
}


@pytest.mark.parametrize("framing", list(ENDLESS_MANIFESTS))
def test_endless_manifest_body(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path, framing: str
) -> None:
    fault_proxy.add_rule(Rule(path=MANIFESTS, times=None, action=ENDLESS_MANIFESTS[framing]))
    watched = pull(fault_proxy.ref("test/hello", "1"), out)
    assert_one_line_error(watched, output=out)
    assert_bounded_memory(watched)


def test_endless_token_answer(
    bearer_front_factory: Callable[..., BearerFront], standard_images: StandardImages, out: Path
) -> None:
    front = bearer_front_factory()
    front.token_rule(Rule(path=r"/token", times=None, action=EndlessBody(pattern=b'{"token":')))
    watched = pull(front.ref("test/hello", "1"), out)
    assert_one_line_error(watched, output=out)
    assert_bounded_memory(watched)


def test_endless_tag_page(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    page = EndlessBody(prefix=b'{"name": "test/hello", "tags": [', pattern=b'"t", ')
    fault_proxy.add_rule(Rule(method="GET", path=TAGS, times=None, action=page))
    watched = watch_imgpull(
        "tags", fault_proxy.ref("test/hello"), time_limit=60, rss_limit=RSS_KILL
    )
    assert_one_line_error(watched, stdout_empty=False)
    assert_bounded_memory(watched)


@pytest.mark.parametrize("status", [404, 500])
def test_endless_error_body(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path, status: int
) -> None:
    error = EndlessBody(status=status, prefix=b'{"errors": [', pattern=b'{"code": "X"}, ')
    fault_proxy.add_rule(Rule(path=MANIFESTS, times=None, action=error))
    watched = pull(fault_proxy.ref("test/hello", "1"), out, "--retries", "1")
    assert_one_line_error(watched, output=out)
    assert_bounded_memory(watched)


def test_huge_config_with_correct_digest_is_refused(
    registry: RegistryServer, huge_config_image: CraftedImage, out: Path
) -> None:
    """150 MB of config: refused at the config cap (4 MiB), never held in memory."""
    watched = pull(huge_config_image.ref(registry.host), out)
    assert_one_line_error(watched, output=out)
    assert_bounded_memory(watched)


def test_reference_list_from_dev_zero(out: Path) -> None:
    watched = watch_imgpull(
        "pull", "-q", "-f", "/dev/zero", "-o", str(out), time_limit=30, rss_limit=RSS_KILL
    )
    assert_one_line_error(watched, output=out)
    assert_bounded_memory(watched)
    assert_within(watched, 10)


def test_push_of_an_archive_with_300k_members(
    registry: RegistryServer, many_members_archive: Path
) -> None:
    watched = watch_imgpull(
        "push",
        "-q",
        str(many_members_archive),
        registry.ref("hostile/many-members", "1"),
        time_limit=60,
        rss_limit=RSS_KILL,
    )
    assert_one_line_error(watched)
    assert_bounded_memory(watched)
    assert_within(watched, 10)


# == 4 and issue 8. slow bodies and hangs ===============================================


@pytest.fixture
def slow_target(
    request: pytest.FixtureRequest,
    fault_proxy: FaultProxy,
    bearer_front_factory: Callable[..., BearerFront],
    standard_images: StandardImages,
) -> str:
    """The reference to pull, with request.param deciding what is slow (see SLOW_PATHS)."""
    kind: str = request.param
    digest, _ = hello_layer(standard_images)
    trickle = Trickle(bytes_per_second=1, chunk=1)
    if kind == "token":
        front = bearer_front_factory()
        front.token_rule(Rule(path=r"/token", times=None, action=trickle))
        return front.ref("test/hello", "1")
    rules = {
        "manifest": Rule(method="GET", path=MANIFESTS, times=None, action=trickle),
        "blob": Rule(method="GET", path=f"/v2/.+/blobs/{digest}", times=None, action=trickle),
        "manifest-headers": Rule(path=MANIFESTS, times=None, action=Trickle(1, 1, in_headers=True)),
        "manifest-hang": Rule(path=MANIFESTS, times=None, action=Hang()),
        "blob-hang-after-headers": Rule(
            method="GET", path=f"/v2/.+/blobs/{digest}", times=None, action=Hang(after_headers=True)
        ),
    }
    fault_proxy.add_rule(rules[kind])
    return fault_proxy.ref("test/hello", "1")


SLOW_PATHS = ["manifest", "blob", "token"]
HUNG_PATHS = ["manifest-headers", "manifest-hang", "blob-hang-after-headers"]


@pytest.mark.parametrize("slow_target", SLOW_PATHS + HUNG_PATHS, indirect=True)
def test_slow_body_ends_within_timeout(slow_target: str, out: Path) -> None:
    """One byte a second (or none): --timeout 8 ends the run within 9 s."""
    watched = pull(slow_target, out, "--timeout", "8", time_limit=20)
    assert_one_line_error(watched, code=EXIT_NETWORK, output=out)
    assert_within(watched, 9)


@pytest.mark.parametrize("slow_target", SLOW_PATHS, indirect=True)
def test_slow_body_without_timeout_ends_by_the_low_speed_rule(slow_target: str, out: Path) -> None:
    """Below --speed-limit (default about 1 kB/s) for --speed-time seconds: a network error."""
    watched = pull(slow_target, out, "--speed-time", "3", time_limit=60)
    assert_one_line_error(watched, code=EXIT_NETWORK, output=out)
    assert_within(watched, 30)


def test_upload_drained_at_one_byte_a_second_ends_within_timeout(
    fault_proxy_factory: Callable[..., FaultProxy],
    empty_registry_factory: Callable[[], RegistryServer],
    standard_images: StandardImages,
    tmp_path: Path,
) -> None:
    archive = write_oci_archive(tmp_path / "hello.tar", standard_images.hello.built)
    proxy = fault_proxy_factory(empty_registry_factory())
    proxy.add_rule(Rule(path=UPLOADS, times=None, action=SlowRequestBody(bytes_per_second=1)))
    watched = watch_imgpull(
        "push", "-q", str(archive), proxy.ref("slow/hello", "1"), "--timeout", "8", time_limit=20
    )
    assert_one_line_error(watched, code=EXIT_NETWORK)
    assert_within(watched, 9)


def _link(query: str) -> str:
    return f'</v2/test/hello/tags/list?{query}>; rel="next"'


def _tag_page(link: str) -> Status:
    return json_status({"name": "test/hello", "tags": ["1"]}, Link=link)


@pytest.mark.parametrize("loop", ["to-itself", "between-two"])
def test_tag_pagination_loop_ends(
    fault_proxy: FaultProxy, standard_images: StandardImages, loop: str
) -> None:
    if loop == "to-itself":
        fault_proxy.add_rule(
            Rule(path=TAGS, times=None, action=_tag_page(_link("n=100&last=loop")))
        )
    else:
        fault_proxy.add_rule(
            Rule(path=TAGS, query=r"last=b\b", times=None, action=_tag_page(_link("last=a")))
        )
        fault_proxy.add_rule(Rule(path=TAGS, times=None, action=_tag_page(_link("last=b"))))
    watched = watch_imgpull("tags", fault_proxy.ref("test/hello"), time_limit=30)
    assert_one_line_error(watched, stdout_empty=False)
    assert_within(watched, 15)


# == 5. no "internal error" =============================================================


@pytest.mark.parametrize("where", ["manifest", "blob"])
@pytest.mark.parametrize("location", list(BAD_URLS))
def test_unparsable_redirect_location(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path, where: str, location: str
) -> None:
    digest, _ = hello_layer(standard_images)
    path = MANIFESTS if where == "manifest" else f"/v2/.+/blobs/{digest}"
    redirect = Status(307, {"Location": BAD_URLS[location]})
    fault_proxy.add_rule(Rule(method="GET", path=path, times=None, action=redirect))
    assert_one_line_error(pull(fault_proxy.ref("test/hello", "1"), out), output=out)


@pytest.mark.parametrize("realm", ["http://[::1/token", "http://127.0.0.1:99999/token"])
def test_unparsable_token_realm(
    bearer_front_factory: Callable[..., BearerFront],
    standard_images: StandardImages,
    out: Path,
    realm: str,
) -> None:
    front = bearer_front_factory(realm=realm)
    assert_one_line_error(pull(front.ref("test/hello", "1"), out), output=out)


def _serve_foreign_layer(proxy: FaultProxy, registry: RegistryServer, urls: list[object]) -> str:
    """Serve hostile/foreign:1: a docker manifest whose only layer is foreign (not in the
    registry) with ``urls``; its config is in the registry. Returns the reference."""
    layer = build_layer({"etc/foreign": b"a layer only its urls have\n"})
    config = json.dumps(default_config(layer)).encode()
    pusher = Pusher(registry.url)
    try:
        pusher.push_blob("hostile/foreign", sha256_digest(config), len(config), config)
    finally:
        pusher.close()
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": CONFIG_MEDIA["docker"],
            "digest": sha256_digest(config),
            "size": len(config),
        },
        "layers": [{**layer.descriptor(FOREIGN_LAYER), "urls": urls}],
    }
    proxy.add_rule(Rule(path=MANIFESTS, times=None, action=json_status(manifest, DOCKER_MANIFEST)))
    return proxy.ref("hostile/foreign", "1")


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_unparsable_layer_url(
    fault_proxy: FaultProxy, registry: RegistryServer, out: Path, url: str
) -> None:
    ref = _serve_foreign_layer(fault_proxy, registry, [BAD_URLS[url]])
    assert_one_line_error(pull(ref, out), output=out)


@pytest.mark.parametrize("location", list(BAD_URLS))
def test_unparsable_upload_location(
    fault_proxy_factory: Callable[..., FaultProxy],
    empty_registry_factory: Callable[[], RegistryServer],
    standard_images: StandardImages,
    tmp_path: Path,
    location: str,
) -> None:
    archive = write_oci_archive(tmp_path / "hello.tar", standard_images.hello.built)
    proxy = fault_proxy_factory(empty_registry_factory())
    started = Status(
        202,
        {"Location": BAD_URLS[location], "Docker-Upload-UUID": "u-1", "Range": "0-0"},
    )
    proxy.add_rule(Rule(method="POST", path=r"/v2/.+/blobs/uploads/?", times=None, action=started))
    watched = watch_imgpull("push", "-q", str(archive), proxy.ref("bad/location", "1"))
    assert_one_line_error(watched)


NESTED_MANIFEST = nested_json(100_000)


def test_nested_manifest(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path
) -> None:
    fault_proxy.add_rule(
        Rule(path=MANIFESTS, times=None, action=json_status(NESTED_MANIFEST, OCI_MANIFEST))
    )
    assert_one_line_error(pull(fault_proxy.ref("test/hello", "1"), out), output=out)


def test_nested_token_answer(
    bearer_front_factory: Callable[..., BearerFront], standard_images: StandardImages, out: Path
) -> None:
    front = bearer_front_factory()
    front.token_rule(Rule(path=r"/token", times=None, action=json_status(NESTED_MANIFEST)))
    assert_one_line_error(pull(front.ref("test/hello", "1"), out), output=out)


def test_nested_tag_list(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    fault_proxy.add_rule(Rule(path=TAGS, times=None, action=json_status(NESTED_MANIFEST)))
    assert_one_line_error(watch_imgpull("tags", fault_proxy.ref("test/hello")))


@pytest.mark.parametrize("member", ["manifest.json", "index.json"])
def test_nested_archive_json_for_push(
    registry: RegistryServer, tmp_path: Path, member: str
) -> None:
    members = {member: nested_json(100_000, kind="array")}
    if member == "index.json":
        members = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', **members}
    archive = write_tar(tmp_path / "nested.tar", members)
    watched = watch_imgpull("push", "-q", str(archive), registry.ref("hostile/nested", "1"))
    assert_one_line_error(watched)


CONFIG_CASES = [
    "config-is-a-string",
    "rootfs-is-a-string",
    "entrypoint-is-a-number",
    "labels-is-a-list",
    "env-is-a-number",
    "variant-is-a-number",
    "nested-100000-deep",
]


@pytest.mark.parametrize("command", ["pull", "inspect"])
@pytest.mark.parametrize("case", CONFIG_CASES)
def test_hostile_image_config(
    registry: RegistryServer,
    hostile_configs: dict[str, CraftedImage],
    out: Path,
    case: str,
    command: str,
) -> None:
    ref = hostile_configs[case].ref(registry.host)
    if command == "pull":
        watched = pull(ref, out)
        if watched.returncode == 0:
            return  # a pull that never needed the field may succeed
        assert_one_line_error(watched, output=out)
    else:
        watched = watch_imgpull("inspect", ref)
        if watched.returncode == 0:
            json.loads(watched.stdout)  # whatever it shows is valid JSON
            return
        assert_one_line_error(watched)


def _hello_manifest(images: StandardImages) -> dict[str, object]:
    return images.hello.built.manifest_json()


def _wrong_manifests(images: StandardImages) -> dict[str, tuple[dict[str, object], str]]:
    """Manifests (and one index) with a wrong JSON type, with their media types."""
    config_is_string = {**_hello_manifest(images), "config": "x"}
    layers_not_list = {**_hello_manifest(images), "layers": {"a": 1}}
    urls = _hello_manifest(images)
    urls["layers"] = [{**urls["layers"][0], "urls": [5]}]  # type: ignore[index]
    size_string = _hello_manifest(images)
    size_string["layers"] = [{**size_string["layers"][0], "size": "12"}]  # type: ignore[index]
    hello = images.hello
    platform = {"os": "linux", "architecture": host_arch(), "variant": 7}
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA["oci"],
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": hello.manifest_digest,
                "size": hello.built.manifest_size,
                "platform": platform,
            }
        ],
    }
    manifests_string = {"schemaVersion": 2, "mediaType": INDEX_MEDIA["oci"], "manifests": "x"}
    return {
        "config-is-a-string": (config_is_string, OCI_MANIFEST),
        "layers-is-an-object": (layers_not_list, OCI_MANIFEST),
        "urls-holds-a-number": (urls, OCI_MANIFEST),
        "size-is-a-string": (size_string, OCI_MANIFEST),
        "variant-is-a-number": (index, INDEX_MEDIA["oci"]),
        "manifests-is-a-string": (manifests_string, INDEX_MEDIA["oci"]),
    }


#: Wrong types that leave nothing to pull: these must fail (the others may be ignored).
UNPULLABLE = {
    "config-is-a-string",
    "layers-is-an-object",
    "size-is-a-string",
    "manifests-is-a-string",
}
WRONG_MANIFESTS = [
    "config-is-a-string",
    "layers-is-an-object",
    "urls-holds-a-number",
    "size-is-a-string",
    "variant-is-a-number",
    "manifests-is-a-string",
]


@pytest.mark.parametrize("case", WRONG_MANIFESTS)
def test_manifest_with_wrong_json_types(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path, case: str
) -> None:
    manifest, media_type = _wrong_manifests(standard_images)[case]
    answer = json_status(manifest, media_type)
    fault_proxy.add_rule(Rule(method="GET", path=MANIFESTS, times=None, action=answer))
    watched = pull(fault_proxy.ref("test/hello", "1"), out)
    if watched.returncode == 0 and case not in UNPULLABLE:
        return  # a field imgpull never reads may be wrong
    assert_one_line_error(watched, output=out)


@pytest.mark.parametrize("tags", [5, "abc", {"a": 1}, [5, None]], ids=["int", "str", "obj", "list"])
def test_tag_list_with_wrong_json_types(
    fault_proxy: FaultProxy, standard_images: StandardImages, tags: object
) -> None:
    page = json_status({"name": "test/hello", "tags": tags})
    fault_proxy.add_rule(Rule(path=TAGS, times=None, action=page))
    watched = watch_imgpull("tags", fault_proxy.ref("test/hello"))
    if watched.returncode == 0 and isinstance(tags, list):
        # Entries that are not tag names may be skipped, never printed.
        assert watched.stdout == b"", watched.describe()
        return
    assert_one_line_error(watched, stdout_empty=False)


def test_token_with_cr_lf_is_refused(
    bearer_front_factory: Callable[..., BearerFront], standard_images: StandardImages, out: Path
) -> None:
    front = bearer_front_factory()
    evil = {"token": "abc\r\nX-Injected: yes", "expires_in": 300}
    front.token_rule(Rule(path=r"/token", times=None, action=json_status(evil)))
    watched = pull(front.ref("test/hello", "1"), out)
    assert_one_line_error(watched, output=out)
    assert not any("x-injected" in r.headers for r in front.front.requests)


def test_reference_list_from_a_binary_file(tmp_path: Path, out: Path) -> None:
    binary = tmp_path / "not-a-list.bin"
    binary.write_bytes(bytes(range(256)) * 64 + Path("/bin/busybox").read_bytes()[:65536])
    watched = watch_imgpull("pull", "-q", "-f", str(binary), "-o", str(out))
    assert_one_line_error(watched, output=out)


# == 6. leftovers after signals =========================================================


@pytest.fixture
def slow_blob_pull(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> Iterator[tuple[FaultProxy, str, str]]:
    """(proxy, reference, layer digest): the layer comes at 20 kB/s (about a minute)."""
    digest, _ = hello_layer(standard_images)
    rule = Rule(method="GET", path=f"/v2/.+/blobs/{digest}", times=None, action=Throttle(20_000))
    fault_proxy.add_rule(rule)
    yield fault_proxy, fault_proxy.ref("test/hello", "1"), digest


def _start_pull_until_layer_flows(
    proxy: FaultProxy, ref: str, digest: str, out: Path, *extra: str
) -> Watcher:
    """Start a pull; return once the layer is flowing, well inside the download."""
    watcher = start_watched(imgpull_argv("pull", "-q", ref, "-o", str(out), *extra), time_limit=90)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and watcher.alive:
        flowing = [r for r in proxy.requests_to("GET", f"/v2/.+/blobs/{digest}") if r.bytes_sent]
        if flowing:
            time.sleep(0.5)  # the partial files exist by now
            return watcher
        time.sleep(0.05)
    pytest.fail(f"the layer never started flowing\n{watcher.wait(30).describe()}")


@pytest.mark.parametrize("cache", ["cache", "no-cache"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_mid_pull_leaves_nothing(
    slow_blob_pull: tuple[FaultProxy, str, str], out: Path, sig: int, cache: str
) -> None:
    proxy, ref, digest = slow_blob_pull
    extra = ["--no-cache"] if cache == "no-cache" else []
    watcher = _start_pull_until_layer_flows(proxy, ref, digest, out, *extra)
    watcher.send_signal(sig)
    watched = watcher.wait(30)
    assert watched.killed is None, (
        f"did not end after {signal.Signals(sig).name}\n{watched.describe()}"
    )
    assert watched.returncode != 0
    assert b"Traceback" not in watched.stderr
    assert not out.exists(), watched.describe()
    assert leftovers_beside(out) == [], watched.describe()


def test_rerun_after_kill_9_removes_the_stale_partial(
    slow_blob_pull: tuple[FaultProxy, str, str], out: Path
) -> None:
    proxy, ref, digest = slow_blob_pull
    watcher = _start_pull_until_layer_flows(proxy, ref, digest, out)
    watcher.send_signal(signal.SIGKILL)
    watcher.wait(30)
    proxy.reset()  # the layer flows at full speed again
    rerun = pull(ref, out)
    assert rerun.returncode == 0, rerun.describe()
    assert out.is_file()
    assert partial_files(out) == [], "a stale partial of the killed run is still there"


# == 7. unverified bytes ================================================================


def _cached_copies(cache_dir: Path, digest: str, size: int) -> list[Path]:
    """Files in the cache holding exactly the blob ``digest`` (whatever the layout)."""
    same_size = [
        path
        for path in cache_dir.rglob("*")
        if path.is_file() and not path.is_symlink() and path.stat().st_size == size
    ]
    return [path for path in same_size if sha256_digest(path.read_bytes()) == digest]


def test_tampered_cache_entry_never_reaches_an_archive(
    fresh_env: FreshEnv,
    registry: RegistryServer,
    standard_images: StandardImages,
    out: Path,
    tmp_path: Path,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    digest, size = hello_layer(standard_images)
    first = pull(ref, out)
    assert first.returncode == 0, first.describe()
    copies = _cached_copies(fresh_env.cache_dir, digest, size)
    assert copies, "the layer should be in the cache after a pull"
    for path in copies:  # same size, other content
        data = bytearray(path.read_bytes())
        data[size // 2 : size // 2 + 64] = bytes(b ^ 0xFF for b in data[size // 2 : size // 2 + 64])
        path.chmod(0o644)
        path.write_bytes(bytes(data))
    second_out = tmp_path / "out" / "second.tar"
    second = pull(ref, second_out)
    if second.returncode == 0:
        view = ArchiveView.read(second_out)  # checks every blob against its name
        assert digest in view.blobs, second.describe()
    else:
        assert_one_line_error(second, code=EXIT_INTEGRITY, output=second_out)


def _decoded_query(query: str) -> str:
    return urllib.parse.unquote(query)


def test_copy_of_a_corrupted_layer_publishes_nothing(
    fault_proxy: FaultProxy,
    fault_proxy_factory: Callable[..., FaultProxy],
    empty_registry_factory: Callable[[], RegistryServer],
    standard_images: StandardImages,
) -> None:
    digest, _ = hello_layer(standard_images)
    fault_proxy.add_rule(
        Rule(method="GET", path=f"/v2/.+/blobs/{digest}", times=None, action=Corrupt(offset=1000))
    )
    destination = fault_proxy_factory(empty_registry_factory())
    watched = watch_imgpull(
        "copy", "-q", fault_proxy.ref("test/hello", "1"), destination.ref("copied/hello", "1")
    )
    assert_one_line_error(watched, code=EXIT_INTEGRITY)
    manifest_puts = destination.requests_to("PUT", MANIFESTS)
    # A PUT naming the digest completes the upload once its body has arrived whole; one
    # whose body imgpull cut short (the last bytes held back) is dropped by any server.
    completing = [
        r
        for r in destination.requests_to("PUT", r"/v2/.+/blobs/uploads/.*")
        if digest in _decoded_query(r.query) and r.body_complete
    ]
    assert manifest_puts == [], [r.target for r in manifest_puts]
    assert completing == [], [r.target for r in completing]


ESCAPES = ["\x1b]0;pwned\x07", "\x1b[2J\x1b[31mred", "ok\rover", "c1\u009b31m"]
FORBIDDEN = ("\x1b", "\x07", "\r", "\u009b")


def test_tags_with_terminal_escapes_are_never_printed_raw(
    fault_proxy: FaultProxy, standard_images: StandardImages
) -> None:
    page = json_status({"name": "test/hello", "tags": ["1", *ESCAPES]})
    fault_proxy.add_rule(Rule(path=TAGS, times=None, action=page))
    watched = watch_imgpull("tags", fault_proxy.ref("test/hello"))
    for stream in (watched.stdout, watched.stderr):
        text = stream.decode("utf-8", errors="replace")
        raw = [c for c in FORBIDDEN if c in text]
        assert not raw, f"raw control characters {raw!r} printed\n{watched.describe()}"
    if watched.returncode != 0:
        assert_one_line_error(watched, stdout_empty=False)
