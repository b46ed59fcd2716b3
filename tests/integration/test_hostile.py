"""The hostile world (issue 9, and issue 8's slow bodies): servers that misbehave on purpose,
hostile filesystems and inputs. Each test asserts the secure outcome through the CLI.

Every run is watched (:mod:`tests.fixtures.procwatch`) and ends in
:func:`~tests.fixtures.hostile.assert_secure_outcome`, the outcome issue 9's "Done when"
asks for: the exact exit code, on failure exactly one ``imgpull: error:`` line (``-q``, so
no progress lines), no traceback and no "internal error", nothing at ``-o`` and nothing
left beside it, peak RSS (VmHWM) below 100 MiB, and a wall time within the ``--timeout``
the run was given plus one second. Runs that do not test the defaults pass ``--timeout``
(:data:`TIMEOUT`, far above the second or so they need); the few that test a default
(the stall rule, the low-speed rule) bound their wall time explicitly.

Where a case could be refused or ignored, the test pins the one outcome that happens and
says why. Misbehaviour comes from servers in front of the real registry (fault-proxy
rules) or from servers of :mod:`tests.fixtures.hostile`; the registry protocol is never
mocked. Pagination bounds, the tag limit and the default stall rule are in
``test_hostile_limits.py``.
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

from imgpull.errors import (
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_INTEGRITY,
    EXIT_NETWORK,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
)
from tests.archive_view import ArchiveView
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
    RSS_KILL,
    TIMEOUT,
    BearerFront,
    CraftedImage,
    ThreeHostLeak,
    assert_secure_outcome,
    default_config,
    json_status,
    leftovers_beside,
    nested_json,
    watch_cli,
    watch_pull,
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
from tests.fixtures.procwatch import Watcher, imgpull_argv, start_watched
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")

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
#: The caps of issue 9's Build 1, as the refusals name them.
MANIFEST_CAP = "larger than 4194304 bytes"  # manifests, configs and tag pages: 4 MiB
ANSWER_CAP = "larger than 1048576 bytes"  # token answers and error bodies: 1 MiB

pull = watch_pull


@pytest.fixture
def out(fresh_env: FreshEnv, tmp_path: Path) -> Path:
    return tmp_path / "out" / "out.tar"


@pytest.fixture(autouse=True)
def _output_dir(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()


def hello_layer(images: StandardImages) -> tuple[str, int]:
    layer = images.hello.built.layers[0]
    return layer.digest, layer.size


def assert_pulled(out: Path, images: StandardImages) -> None:
    """``out`` is an archive of hello whose every blob matches its digest."""
    assert set(images.hello.layer_digests) <= set(ArchiveView.read(out).blobs)


# == 1. credentials to a third host =====================================================


def credential_flags(password_from: str) -> tuple[list[str], bytes | None]:
    """``-u alice`` with the password as ``-p`` or on standard input: (flags, input)."""
    if password_from == "-p":
        return ["-u", BASIC_USER, "-p", BASIC_PASSWORD], None
    return ["-u", BASIC_USER, "--password-stdin"], f"{BASIC_PASSWORD}\n".encode()


def assert_nothing_reached_b_or_c(leak: ThreeHostLeak, detail: str) -> None:
    """B saw the one redirected ping, without credentials; C (the realm) saw nothing."""
    leaks = leak.leaks(BASIC_USER, BASIC_PASSWORD)
    assert leaks == [], "\n".join(leaks) + "\n" + detail
    assert [(r.method, r.path) for r in leak.b.requests] == [("GET", "/v2/")], detail
    assert leak.c.requests == [], detail


@pytest.mark.parametrize("password_from", ["-p", "--password-stdin"])
def test_ping_redirect_never_hands_credentials_to_a_third_host(
    three_host_leak: ThreeHostLeak, standard_images: StandardImages, out: Path, password_from: str
) -> None:
    """/v2/ answers 302 to B, B's 401 names a realm on C: -u/-p go to neither."""
    flags, secret = credential_flags(password_from)
    watched = pull(three_host_leak.a.ref("test/hello", "1"), out, *flags, input=secret)
    assert_nothing_reached_b_or_c(three_host_leak, watched.describe())
    # B's challenge is not the registry's own, so the ping learns nothing from it; A's
    # own 401 on the manifest then gets the Basic credentials, and the pull succeeds.
    assert_secure_outcome(watched, code=EXIT_OK, timeout=TIMEOUT, output=out)
    assert_pulled(out, standard_images)


@pytest.mark.parametrize("password_from", ["-p", "--password-stdin"])
@pytest.mark.parametrize("command", ["push", "copy"])
def test_destination_ping_redirect_never_hands_credentials_to_a_third_host(
    three_host_leak: ThreeHostLeak,
    registry: RegistryServer,
    standard_images: StandardImages,
    tmp_path: Path,
    command: str,
    password_from: str,
) -> None:
    """push and copy: the destination's /v2/ answers 302 to B, B's 401 names a realm on
    C; the destination's -u/-p go to neither (copy's source is the plain registry)."""
    destination = three_host_leak.a.ref(f"hostile/credentials-{command}", "1")
    if command == "push":
        archive = write_oci_archive(tmp_path / "hello.tar", standard_images.hello.built)
        args = ["push", "-q", str(archive), destination]
    else:
        args = ["copy", "-q", standard_images.hello.ref(registry.host), destination]
    flags, secret = credential_flags(password_from)
    watched = watch_cli(*args, *flags, input=secret)
    assert_nothing_reached_b_or_c(three_host_leak, watched.describe())
    # As for pull: B's challenge is ignored, A's own 401s get Basic, the image arrives.
    assert_secure_outcome(watched, code=EXIT_OK, timeout=TIMEOUT)
    stored = [r for r in three_host_leak.a.requests_to("PUT", MANIFESTS) if r.status == 201]
    assert stored, f"no manifest stored at the destination\n{watched.describe()}"


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
    assert_secure_outcome(watched, code=EXIT_OK, timeout=TIMEOUT, output=device)
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
    assert_secure_outcome(watched, code=EXIT_OK, timeout=TIMEOUT, output=fifo)
    archive = tmp_path / "received.tar"
    archive.write_bytes(bytes(received))
    assert_pulled(archive, standard_images)  # checks every blob against its name


def test_directory_output_is_refused(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "a-directory"
    target.mkdir()
    watched = pull(standard_images.hello.ref(registry.host), target)
    # -o names something that cannot be an output: a usage error, before any download.
    assert_secure_outcome(watched, code=EXIT_USAGE, timeout=TIMEOUT, contains="directory")
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
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        listener.close()
    assert_secure_outcome(watched, code=EXIT_USAGE, timeout=TIMEOUT, contains="socket")
    assert leftovers_beside(path) == []


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
    assert_secure_outcome(watched, code=EXIT_USAGE, timeout=TIMEOUT, contains="symlink")
    assert leftovers_beside(link) == [] and leftovers_beside(victim) == []


def test_symlink_owned_by_the_user_is_followed(
    registry: RegistryServer, standard_images: StandardImages, tmp_path: Path, sticky_dir: Path
) -> None:
    target = tmp_path / "real.tar"
    link = sticky_dir / "out.tar"
    os.symlink(target, link)  # owned by us (root), as protected_symlinks allows
    watched = pull(standard_images.hello.ref(registry.host), link)
    assert_secure_outcome(watched, code=EXIT_OK, timeout=TIMEOUT, output=target)
    assert link.is_symlink()
    assert_pulled(target, standard_images)


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
    # Refused at the manifest cap while streaming, long before --timeout could end it.
    assert_secure_outcome(
        watched, code=EXIT_ERROR, timeout=TIMEOUT, within=5, output=out, contains=MANIFEST_CAP
    )


def test_endless_token_answer(
    bearer_front_factory: Callable[..., BearerFront], standard_images: StandardImages, out: Path
) -> None:
    front = bearer_front_factory()
    front.token_rule(Rule(path=r"/token", times=None, action=EndlessBody(pattern=b'{"token":')))
    watched = pull(front.ref("test/hello", "1"), out)
    assert_secure_outcome(
        watched, code=EXIT_AUTH, timeout=TIMEOUT, within=5, output=out, contains=ANSWER_CAP
    )


def test_endless_tag_page(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    page = EndlessBody(prefix=b'{"name": "test/hello", "tags": [', pattern=b'"t", ')
    fault_proxy.add_rule(Rule(method="GET", path=TAGS, times=None, action=page))
    watched = watch_cli("tags", "-q", fault_proxy.ref("test/hello"))
    # Nothing printed: tags are printed once the whole list has been read.
    assert_secure_outcome(
        watched, code=EXIT_ERROR, timeout=TIMEOUT, within=5, contains=MANIFEST_CAP
    )


@pytest.mark.parametrize(
    ("status", "code"), [(404, EXIT_NOT_FOUND), (500, EXIT_ERROR)], ids=["404", "500"]
)
def test_endless_error_body(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path, status: int, code: int
) -> None:
    error = EndlessBody(status=status, prefix=b'{"errors": [', pattern=b'{"code": "X"}, ')
    fault_proxy.add_rule(Rule(path=MANIFESTS, times=None, action=error))
    watched = pull(fault_proxy.ref("test/hello", "1"), out, "--retries", "1")
    # The body is read only up to its 1 MiB cap; the status decides the error.
    assert_secure_outcome(watched, code=code, timeout=TIMEOUT, within=5, output=out)


@pytest.mark.parametrize("command", ["pull", "inspect"])
def test_huge_config_with_correct_digest_is_refused(
    registry: RegistryServer, huge_config_image: CraftedImage, out: Path, command: str
) -> None:
    """150 MB of config: refused at the config cap (4 MiB) by its declared size, before
    a byte of it is read; inspect refuses it the same way."""
    ref = huge_config_image.ref(registry.host)
    watched = pull(ref, out) if command == "pull" else watch_cli("inspect", "-q", ref)
    assert_secure_outcome(
        watched,
        code=EXIT_ERROR,
        timeout=TIMEOUT,
        within=5,
        output=out,
        contains="150000000 bytes, more than the 4194304 a config may have",
    )


def test_reference_list_from_dev_zero(out: Path) -> None:
    watched = watch_cli("pull", "-q", "-f", "/dev/zero", "-o", str(out))
    assert_secure_outcome(
        watched, code=EXIT_USAGE, timeout=TIMEOUT, within=5, output=out, contains="/dev/zero"
    )


def test_push_of_an_archive_with_300k_members(
    registry: RegistryServer, many_members_archive: Path
) -> None:
    watched = watch_cli(
        "push", "-q", str(many_members_archive), registry.ref("hostile/many-members", "1")
    )
    assert_secure_outcome(watched, code=EXIT_ERROR, timeout=TIMEOUT, contains="100000")


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
    watched = pull(slow_target, out, timeout=8)
    assert_secure_outcome(
        watched, code=EXIT_NETWORK, timeout=8, output=out, contains="longer than --timeout 8 s"
    )


@pytest.mark.parametrize("slow_target", SLOW_PATHS, indirect=True)
def test_slow_body_without_timeout_ends_by_the_low_speed_rule(slow_target: str, out: Path) -> None:
    """Below --speed-limit (default about 1 kB/s) for --speed-time 3 s, without --timeout:
    a network error after those 3 s (--retries 0: the only endpoint is otherwise asked
    again, up to three times)."""
    watched = pull(slow_target, out, "--speed-time", "3", "--retries", "0", timeout=None)
    assert_secure_outcome(
        watched, code=EXIT_NETWORK, timeout=None, within=8, output=out, contains="for 3 s"
    )


def test_upload_drained_at_one_byte_a_second_ends_within_timeout(
    fault_proxy_factory: Callable[..., FaultProxy],
    empty_registry_factory: Callable[[], RegistryServer],
    standard_images: StandardImages,
    tmp_path: Path,
) -> None:
    archive = write_oci_archive(tmp_path / "hello.tar", standard_images.hello.built)
    proxy = fault_proxy_factory(empty_registry_factory())
    proxy.add_rule(Rule(path=UPLOADS, times=None, action=SlowRequestBody(bytes_per_second=1)))
    watched = watch_cli("push", "-q", str(archive), proxy.ref("slow/hello", "1"), timeout=8)
    assert_secure_outcome(
        watched, code=EXIT_NETWORK, timeout=8, contains="longer than --timeout 8 s"
    )


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
    watched = pull(fault_proxy.ref("test/hello", "1"), out)
    # The manifest's answer is the registry's error (1). A blob that no place could
    # deliver is reported as a network error naming what each place said (5): the blob
    # stream's rule for every failure of its last place (registry/source.py).
    code = EXIT_ERROR if where == "manifest" else EXIT_NETWORK
    assert_secure_outcome(
        watched,
        code=code,
        timeout=TIMEOUT,
        output=out,
        contains=f"the redirect from {fault_proxy.host} is not a usable http(s) URL",
    )


@pytest.mark.parametrize("realm", ["http://[::1/token", "http://127.0.0.1:99999/token"])
def test_unparsable_token_realm(
    bearer_front_factory: Callable[..., BearerFront],
    standard_images: StandardImages,
    out: Path,
    realm: str,
) -> None:
    front = bearer_front_factory(realm=realm)
    watched = pull(front.ref("test/hello", "1"), out)
    assert_secure_outcome(watched, code=EXIT_AUTH, timeout=TIMEOUT, output=out, contains="realm")


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
    watched = pull(ref, out)
    # The unusable URL is skipped, the registry has no such blob: no place is left, a
    # network error naming both (5), as for any blob that cannot be had.
    assert_secure_outcome(
        watched,
        code=EXIT_NETWORK,
        timeout=TIMEOUT,
        output=out,
        contains=f"is not a usable http(s) URL: {BAD_URLS[url]}",
    )


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
    watched = watch_cli("push", "-q", str(archive), proxy.ref("bad/location", "1"))
    # A bracket left open does not even split into host and port; the others do, and
    # then fail as URLs (with the digest query imgpull appended).
    said = "an upload location that is not a URL" if location == "ipv6" else BAD_URLS[location]
    assert_secure_outcome(watched, code=EXIT_ERROR, timeout=TIMEOUT, contains=said)


NESTED_MANIFEST = nested_json(100_000)


def test_nested_manifest(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path
) -> None:
    fault_proxy.add_rule(
        Rule(path=MANIFESTS, times=None, action=json_status(NESTED_MANIFEST, OCI_MANIFEST))
    )
    watched = pull(fault_proxy.ref("test/hello", "1"), out)
    assert_secure_outcome(
        watched, code=EXIT_ERROR, timeout=TIMEOUT, output=out, contains="nested too deeply"
    )


def test_nested_token_answer(
    bearer_front_factory: Callable[..., BearerFront], standard_images: StandardImages, out: Path
) -> None:
    front = bearer_front_factory()
    front.token_rule(Rule(path=r"/token", times=None, action=json_status(NESTED_MANIFEST)))
    watched = pull(front.ref("test/hello", "1"), out)
    assert_secure_outcome(watched, code=EXIT_AUTH, timeout=TIMEOUT, output=out)


def test_nested_tag_list(fault_proxy: FaultProxy, standard_images: StandardImages) -> None:
    fault_proxy.add_rule(Rule(path=TAGS, times=None, action=json_status(NESTED_MANIFEST)))
    watched = watch_cli("tags", "-q", fault_proxy.ref("test/hello"))
    assert_secure_outcome(watched, code=EXIT_ERROR, timeout=TIMEOUT, contains="unreadable tag list")


@pytest.mark.parametrize("member", ["manifest.json", "index.json"])
def test_nested_archive_json_for_push(
    registry: RegistryServer, tmp_path: Path, member: str
) -> None:
    members = {member: nested_json(100_000, kind="array")}
    if member == "index.json":
        members = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}', **members}
    archive = write_tar(tmp_path / "nested.tar", members)
    watched = watch_cli("push", "-q", str(archive), registry.ref("hostile/nested", "1"))
    assert_secure_outcome(watched, code=EXIT_ERROR, timeout=TIMEOUT, contains=member)


#: Image configs with a wrong JSON type (or absurd nesting), and what the refusal says.
#: Every case is refused, by pull and by inspect alike: the config is parsed whole and
#: strictly (model/strict.py) before anything is written or shown, whether or not the
#: command needs the wrong field, so there is no "ignored" outcome.
CONFIG_CASES = {
    "config-is-a-string": "image config: 'config' is not an object",
    "rootfs-is-a-string": "image config: 'rootfs' is not an object",
    "entrypoint-is-a-number": "image config: 'Entrypoint' is not a list of strings",
    "labels-is-a-list": "image config: 'Labels' is not an object of strings",
    "env-is-a-number": "image config: 'Env' is not a list of strings",
    "variant-is-a-number": "image config: 'variant' is not a string",
    "nested-100000-deep": "image config is nested too deeply",
}


@pytest.mark.parametrize("command", ["pull", "inspect"])
@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_hostile_image_config(
    registry: RegistryServer,
    hostile_configs: dict[str, CraftedImage],
    out: Path,
    case: str,
    command: str,
) -> None:
    ref = hostile_configs[case].ref(registry.host)
    watched = pull(ref, out) if command == "pull" else watch_cli("inspect", "-q", ref)
    assert_secure_outcome(
        watched, code=EXIT_ERROR, timeout=TIMEOUT, output=out, contains=CONFIG_CASES[case]
    )


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


#: What the refusal of each wrong manifest says. All are refused, even the two whose
#: field a pull of this image never needs (``urls`` of a layer the registry has, the
#: ``variant`` of the platform): a manifest or index is parsed whole and strictly, every
#: descriptor checked, before any of it is used.
WRONG_MANIFESTS = {
    "config-is-a-string": "'config' is not an object",
    "layers-is-an-object": "'layers' is missing or not a list",
    "urls-holds-a-number": "'urls' is not a list of strings",
    "size-is-a-string": "bad size '12'",
    "variant-is-a-number": "'variant' is not a string",
    "manifests-is-a-string": "'manifests' is not a list",
}


@pytest.mark.parametrize("case", list(WRONG_MANIFESTS))
def test_manifest_with_wrong_json_types(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path, case: str
) -> None:
    manifest, media_type = _wrong_manifests(standard_images)[case]
    answer = json_status(manifest, media_type)
    fault_proxy.add_rule(Rule(method="GET", path=MANIFESTS, times=None, action=answer))
    watched = pull(fault_proxy.ref("test/hello", "1"), out)
    assert_secure_outcome(
        watched, code=EXIT_ERROR, timeout=TIMEOUT, output=out, contains=WRONG_MANIFESTS[case]
    )


@pytest.mark.parametrize("tags", [5, "abc", {"a": 1}, [5, None]], ids=["int", "str", "obj", "list"])
def test_tag_list_with_wrong_json_types(
    fault_proxy: FaultProxy, standard_images: StandardImages, tags: object
) -> None:
    page = json_status({"name": "test/hello", "tags": tags})
    fault_proxy.add_rule(Rule(path=TAGS, times=None, action=page))
    watched = watch_cli("tags", fault_proxy.ref("test/hello"))
    if isinstance(tags, list):
        # A list whose entries are not strings: they are dropped while the page is read
        # (never printed, not even counted as names left out), and the repository simply
        # has no tags: exit 0, nothing on either stream.
        assert_secure_outcome(watched, code=EXIT_OK, timeout=TIMEOUT)
        assert (watched.stdout, watched.stderr) == (b"", b""), watched.describe()
        return
    assert_secure_outcome(watched, code=EXIT_ERROR, timeout=TIMEOUT, contains="tags are not a list")


def test_token_with_cr_lf_is_refused(
    bearer_front_factory: Callable[..., BearerFront], standard_images: StandardImages, out: Path
) -> None:
    front = bearer_front_factory()
    evil = {"token": "abc\r\nX-Injected: yes", "expires_in": 300}
    front.token_rule(Rule(path=r"/token", times=None, action=json_status(evil)))
    watched = pull(front.ref("test/hello", "1"), out)
    assert_secure_outcome(watched, code=EXIT_AUTH, timeout=TIMEOUT, output=out, contains="token")
    assert not any("x-injected" in r.headers for r in front.front.requests)


def test_reference_list_from_a_binary_file(tmp_path: Path, out: Path) -> None:
    binary = tmp_path / "not-a-list.bin"
    binary.write_bytes(bytes(range(256)) * 64 + Path("/bin/busybox").read_bytes()[:65536])
    watched = watch_cli("pull", "-q", "-f", str(binary), "-o", str(out))
    assert_secure_outcome(
        watched, code=EXIT_USAGE, timeout=TIMEOUT, output=out, contains="is not text"
    )


# == 6. leftovers after signals =========================================================

#: The layer flows at 20 kB/s (about a minute); signals come a second into it.
SIGNAL_TIMEOUT = 60


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
    argv = imgpull_argv("pull", "-q", ref, "-o", str(out), "--timeout", str(SIGNAL_TIMEOUT), *extra)
    watcher = start_watched(argv, time_limit=SIGNAL_TIMEOUT + 30, rss_limit=RSS_KILL)
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
    """SIGTERM and SIGHUP unwind like Ctrl-C: every temporary file removed, one line
    ``imgpull: terminated``, and the shell's exit code for a signal, 128 + its number
    (143 and 129, as the README says), at once."""
    proxy, ref, digest = slow_blob_pull
    extra = ["--no-cache"] if cache == "no-cache" else []
    watcher = _start_pull_until_layer_flows(proxy, ref, digest, out, *extra)
    signalled = watcher.elapsed()
    watcher.send_signal(sig)
    watched = watcher.wait(30)
    assert_secure_outcome(
        watched,
        code=128 + sig,
        timeout=SIGNAL_TIMEOUT,
        output=out,
        line="imgpull: terminated",
    )
    assert watched.wall - signalled < 5, f"slow to stop\n{watched.describe()}"


def test_rerun_after_kill_9_removes_the_stale_partial(
    slow_blob_pull: tuple[FaultProxy, str, str], standard_images: StandardImages, out: Path
) -> None:
    proxy, ref, digest = slow_blob_pull
    watcher = _start_pull_until_layer_flows(proxy, ref, digest, out)
    watcher.send_signal(signal.SIGKILL)
    killed = watcher.wait(30)
    assert killed.returncode == -signal.SIGKILL, killed.describe()
    proxy.reset()  # the layer flows at full speed again
    rerun = pull(ref, out)
    assert_secure_outcome(rerun, code=EXIT_OK, timeout=TIMEOUT, output=out)
    assert out.is_file()
    assert_pulled(out, standard_images)


# == 7. unverified bytes ================================================================


def _cached_copies(cache_dir: Path, digest: str, size: int) -> list[Path]:
    """Files in the cache holding exactly the blob ``digest`` (whatever the layout)."""
    return [
        path for path in _same_size(cache_dir, size) if sha256_digest(path.read_bytes()) == digest
    ]


def _same_size(cache_dir: Path, size: int) -> list[Path]:
    return [
        path
        for path in cache_dir.rglob("*")
        if path.is_file() and not path.is_symlink() and path.stat().st_size == size
    ]


def test_tampered_cache_entry_is_hashed_again_dropped_and_fetched_again(
    fresh_env: FreshEnv,
    fault_proxy: FaultProxy,
    standard_images: StandardImages,
    out: Path,
    tmp_path: Path,
) -> None:
    """A cache entry of the right size but other content never reaches an archive: its
    stamp no longer matches, so it is hashed again, found wrong, removed, and the blob
    is fetched again from the registry. The second pull succeeds with the true bytes."""
    ref = fault_proxy.ref("test/hello", "1")
    digest, size = hello_layer(standard_images)
    blob = f"/v2/.+/blobs/{digest}"
    first = pull(ref, out)
    assert_secure_outcome(first, code=EXIT_OK, timeout=TIMEOUT, output=out)
    copies = _cached_copies(fresh_env.cache_dir, digest, size)
    assert copies, "the layer should be in the cache after a pull"
    tampered = set()
    for path in copies:  # same size, other content
        data = bytearray(path.read_bytes())
        data[size // 2 : size // 2 + 64] = bytes(b ^ 0xFF for b in data[size // 2 : size // 2 + 64])
        path.chmod(0o644)
        path.write_bytes(bytes(data))
        tampered.add(sha256_digest(bytes(data)))
    fetched_before = len(fault_proxy.requests_to("GET", blob))
    second_out = tmp_path / "out" / "second.tar"
    second = pull(ref, second_out)
    assert_secure_outcome(second, code=EXIT_OK, timeout=TIMEOUT, output=second_out)
    view = ArchiveView.read(second_out)  # checks every blob against its name
    assert digest in view.blobs, second.describe()
    fetched = len(fault_proxy.requests_to("GET", blob)) - fetched_before
    assert fetched == 1, f"the layer was fetched {fetched} times, not once again"
    in_cache = {sha256_digest(p.read_bytes()) for p in _same_size(fresh_env.cache_dir, size)}
    assert digest in in_cache and not tampered & in_cache, "the tampered entry is still cached"


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
    watched = watch_cli(
        "copy", "-q", fault_proxy.ref("test/hello", "1"), destination.ref("copied/hello", "1")
    )
    assert_secure_outcome(watched, code=EXIT_INTEGRITY, timeout=TIMEOUT, contains=digest)
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
    watched = watch_cli("tags", fault_proxy.ref("test/hello"))
    for stream in (watched.stdout, watched.stderr):
        text = stream.decode("utf-8", errors="replace")
        raw = [c for c in FORBIDDEN if c in text]
        assert not raw, f"raw control characters {raw!r} printed\n{watched.describe()}"
    # The names that are not tags are left out, counted in one warning; the real tag is
    # printed alone.
    assert_secure_outcome(watched, code=EXIT_OK, timeout=TIMEOUT)
    assert watched.stdout == b"1\n", watched.describe()
    assert watched.stderr.decode().splitlines() == [
        f"warning: left out {len(ESCAPES)} names that are not valid tags"
    ], watched.describe()
