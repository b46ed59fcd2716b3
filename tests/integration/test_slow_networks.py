"""Real networks behind the wall (issue 11): hung and slow mirrors skipped in seconds,
endpoints remembered between runs, mirrors raced without leaking credentials or
connections, big blobs over several ranged connections.

The session ``registry`` plays the upstream; mirrors are servers on loopback that hang
(:class:`~tests.fixtures.hostile.SilentServer`), trickle (fault-proxy ``Trickle``) or sit
behind a per-connection throttle, always in front of the real registry.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.archive_view import ArchiveView
from tests.conftest import BASIC_PASSWORD, BASIC_USER, FreshEnv
from tests.fixtures.faultproxy import (
    ConnectionThrottle,
    Corrupt,
    Delay,
    FaultProxy,
    IgnoreRange,
    Rule,
    Trickle,
)
from tests.fixtures.hostile import SilentServer, secret_forms
from tests.fixtures.images import BuiltImage, MiB, StandardImages, push_random_image
from tests.fixtures.procwatch import Watched, imgpull_argv, start_watched, watch_imgpull
from tests.fixtures.registry import RegistryServer

pytestmark = pytest.mark.usefixtures("fresh_env")

#: Issue 11: a hung mirror costs a pull at most this much with default settings.
DEFAULT_DEADLINE = 15.0
#: Words a warning about a hung mirror may use to say why it was skipped.
HUNG_REASON = re.compile(
    r"tim(e|ed) ?out|no answer|not answer|did not respond|no response|unresponsive|hung|"
    r"stalled|too slow",
    re.IGNORECASE,
)
MANIFESTS = r"/v2/.+/manifests/.+"


@pytest.fixture
def out(fresh_env: FreshEnv, tmp_path: Path) -> Path:
    return tmp_path / "out.tar"


def mirror_of(registry_host: str, url: str) -> list[str]:
    return ["--mirror", f"{registry_host}={url}"]


def assert_pulled(watched: Watched, out: Path, images: StandardImages) -> None:
    assert watched.returncode == 0, watched.describe()
    assert set(images.hello.layer_digests) <= set(ArchiveView.read(out).blobs)


def lines_naming(watched: Watched, host: str) -> list[str]:
    return [line for line in watched.stderr.decode(errors="replace").splitlines() if host in line]


# -- a mirror that accepts and never answers --------------------------------------------


def test_hung_mirror_is_skipped_within_15_s_by_default(
    registry: RegistryServer,
    standard_images: StandardImages,
    silent_server: SilentServer,
    out: Path,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    watched = watch_imgpull(
        "pull", ref, "-o", str(out), *mirror_of(registry.host, silent_server.url), time_limit=60
    )
    assert silent_server.accepted >= 1, "the mirror was never tried"
    assert_pulled(watched, out, standard_images)
    assert watched.wall <= DEFAULT_DEADLINE, watched.describe()
    warnings = lines_naming(watched, silent_server.host)
    assert len(warnings) == 1, f"one warning must name the mirror\n{watched.describe()}"
    assert HUNG_REASON.search(warnings[0]), f"the warning must say why\n{watched.describe()}"


def test_hung_mirror_leaves_time_for_the_registry_within_timeout(
    registry: RegistryServer,
    standard_images: StandardImages,
    silent_server: SilentServer,
    out: Path,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    mark = registry.log_mark()
    watched = watch_imgpull(
        "pull",
        "-q",
        ref,
        "-o",
        str(out),
        "--timeout",
        "12",
        *mirror_of(registry.host, silent_server.url),
        time_limit=30,
    )
    asked = [
        e
        for e in registry.requests("GET", MANIFESTS, since=mark)
        if e.user_agent.startswith("imgpull/")
    ]
    assert asked, f"the registry itself was never tried\n{watched.describe()}"
    assert_pulled(watched, out, standard_images)
    assert watched.wall <= 13, watched.describe()


def test_second_run_does_not_try_the_dead_mirror_first(
    registry: RegistryServer,
    standard_images: StandardImages,
    silent_server: SilentServer,
    tmp_path: Path,
) -> None:
    ref = standard_images.hello.ref(registry.host)
    mirror = mirror_of(registry.host, silent_server.url)
    first = watch_imgpull("pull", "-q", ref, "-o", str(tmp_path / "1.tar"), *mirror, time_limit=40)
    assert first.returncode == 0, first.describe()
    tried = silent_server.accepted
    second = watch_imgpull("pull", "-q", ref, "-o", str(tmp_path / "2.tar"), *mirror, time_limit=40)
    assert second.returncode == 0, second.describe()
    assert silent_server.accepted == tried, "the second run connected to the dead mirror again"
    assert second.wall <= 5, second.describe()


# -- a mirror below the speed limit -----------------------------------------------------


def test_slow_mirror_is_abandoned_and_the_blob_resumed_elsewhere_with_range(
    registry: RegistryServer,
    standard_images: StandardImages,
    fault_proxy_factory: Callable[..., FaultProxy],
    out: Path,
) -> None:
    digest = standard_images.hello.layer_digests[0]
    upstream = fault_proxy_factory(registry)  # records what the next endpoint is asked
    mirror = fault_proxy_factory(registry)
    fast_part = 256 * 1024
    mirror.add_rule(
        Rule(
            method="GET",
            path=f"/v2/.+/blobs/{digest}",
            times=None,
            action=Trickle(bytes_per_second=200, chunk=50, after=fast_part),
        )
    )
    watched = watch_imgpull(
        "pull",
        "-q",
        upstream.ref("test/hello", "1"),
        "-o",
        str(out),
        "--speed-time",
        "3",
        *mirror_of(upstream.host, mirror.url),
        time_limit=60,
    )
    assert_pulled(watched, out, standard_images)
    assert mirror.requests_to("GET", f"/v2/.+/blobs/{digest}"), "the mirror was not used first"
    assert watched.wall <= 20, watched.describe()
    resumed = [
        r
        for r in upstream.requests_to("GET", f"/v2/.+/blobs/{digest}")
        if re.fullmatch(r"bytes=(\d+)-\d*", r.headers.get("range", ""))
    ]
    assert resumed, f"no Range request at the next endpoint\n{watched.describe()}"
    start = int(re.findall(r"\d+", resumed[0].headers["range"])[0])
    assert start >= fast_part, "the bytes the mirror already sent were fetched again"


# -- racing mirrors ---------------------------------------------------------------------


def test_racing_mirrors_never_get_the_registry_credentials(
    basic_http_registry: RegistryServer,
    registry: RegistryServer,
    standard_images: StandardImages,
    fault_proxy_factory: Callable[..., FaultProxy],
    out: Path,
) -> None:
    upstream = fault_proxy_factory(basic_http_registry)
    wants_auth = fault_proxy_factory(basic_http_registry)  # a mirror answering 401
    slow = fault_proxy_factory(registry)
    slow.add_rule(Rule(path=MANIFESTS, times=None, action=Delay(2)))
    fast = fault_proxy_factory(registry)
    mirrors = [arg for m in (wants_auth, slow, fast) for arg in mirror_of(upstream.host, m.url)]
    watched = watch_imgpull(
        "pull",
        "-q",
        upstream.ref("test/hello", "1"),
        "-o",
        str(out),
        "-u",
        BASIC_USER,
        "--password-stdin",
        *mirrors,
        input=f"{BASIC_PASSWORD}\n".encode(),
        time_limit=60,
    )
    assert_pulled(watched, out, standard_images)
    secrets = secret_forms(BASIC_USER, BASIC_PASSWORD)
    for name, mirror in (("401 mirror", wants_auth), ("slow mirror", slow), ("fast", fast)):
        for seen in mirror.requests:
            assert "authorization" not in seen.headers, f"{name}: {seen.method} {seen.target}"
            sent = f"{seen.target} {seen.headers}".encode()
            assert not any(s in sent for s in secrets), f"{name}: {seen.method} {seen.target}"


@pytest.mark.parametrize("by", ["digest", "tag"])
def test_racing_never_picks_an_answer_that_fails_its_check(
    registry: RegistryServer,
    standard_images: StandardImages,
    fault_proxy_factory: Callable[..., FaultProxy],
    out: Path,
    by: str,
) -> None:
    """The first mirror to answer sends a manifest with one byte flipped (by digest, the
    requested digest fails; by tag, the Docker-Content-Digest it relays does), a slower
    one sends the truth: the archive holds the true manifest, the liar is named."""
    hello = standard_images.hello
    liar = fault_proxy_factory(registry)
    liar.add_rule(Rule(path=MANIFESTS, times=None, action=Corrupt(offset=20)))
    honest = fault_proxy_factory(registry)
    honest.add_rule(Rule(path=MANIFESTS, times=None, action=Delay(1)))
    mirrors = [arg for m in (liar, honest) for arg in mirror_of(registry.host, m.url)]
    ref = (
        f"{registry.host}/test/hello@{hello.manifest_digest}"
        if by == "digest"
        else hello.ref(registry.host)
    )
    watched = watch_imgpull("pull", ref, "-o", str(out), *mirrors, time_limit=60)
    assert_pulled(watched, out, standard_images)
    assert ArchiveView.read(out).index_digests == [hello.manifest_digest]
    assert liar.requests_to("GET", MANIFESTS), "the lying mirror was not asked"
    assert lines_naming(watched, liar.host), watched.describe()


RACE_SCRIPT = """
import pathlib, sys, time
import imgpull

ref, out, done, release = sys.argv[1:5]
imgpull.pull([ref], out, settings=imgpull.Settings.from_environment())
pathlib.Path(done).touch()
while not pathlib.Path(release).exists():  # stay alive while the servers are counted
    time.sleep(0.05)
"""


def test_racing_leaves_no_connection_to_a_losing_mirror_open(
    registry: RegistryServer,
    standard_images: StandardImages,
    silent_server: SilentServer,
    fault_proxy_factory: Callable[..., FaultProxy],
    fresh_env: FreshEnv,
    tmp_path: Path,
) -> None:
    """After pull() returns, in a process that lives on, no connection to a mirror that
    lost the race (hung, or slow) is still open: losers are cancelled, not abandoned."""
    slow = fault_proxy_factory(registry)
    slow.add_rule(Rule(path=MANIFESTS, times=None, action=Delay(8)))
    config = tmp_path / "config.toml"
    config.write_text(
        f'[registries."{registry.host}"]\nmirrors = ["{silent_server.url}", "{slow.url}"]\n'
    )
    done, release = tmp_path / "done", tmp_path / "release"
    ref = standard_images.hello.ref(registry.host)
    watcher = start_watched(
        [
            sys.executable,
            "-c",
            RACE_SCRIPT,
            ref,
            str(tmp_path / "out.tar"),
            str(done),
            str(release),
        ],
        env={"IMGPULL_CONFIG": str(config)},
        time_limit=60,
    )
    try:
        deadline = time.monotonic() + 40
        while not done.exists() and watcher.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        pulled_after = watcher.elapsed()
        finished = done.exists()
        hung_closed = silent_server.connections.wait_closed(1.0)
        slow_closed = slow.connections.wait_closed(1.0)
    finally:
        release.touch()
    watched = watcher.wait(20)
    assert finished, f"pull() did not return\n{watched.describe()}"
    assert watched.returncode == 0, watched.describe()
    assert pulled_after <= DEFAULT_DEADLINE, watched.describe()
    assert silent_server.accepted >= 1 or slow.connections.accepted >= 1, "no race was run"
    assert hung_closed, f"{silent_server.open_connections()} connection(s) to the hung mirror open"
    assert slow_closed, f"{slow.open_connections()} connection(s) to the slow mirror open"


# -- big blobs over several connections -------------------------------------------------

BIG_LAYER = 64 * MiB
PER_CONNECTION = 8_000_000  # bytes per second: the blob is worth 8 pieces


@pytest.fixture(scope="module")
def big_image(registry: RegistryServer) -> BuiltImage:
    return push_random_image(registry.url, "slow/big", "1", [BIG_LAYER], seed="slow-networks")


def test_big_blob_comes_over_several_ranges_in_parallel(
    registry: RegistryServer,
    big_image: BuiltImage,
    fault_proxy_factory: Callable[..., FaultProxy],
    out: Path,
) -> None:
    proxy = fault_proxy_factory(registry)
    proxy.set_link(ConnectionThrottle(PER_CONNECTION))
    watched = watch_imgpull("pull", "-q", proxy.ref("slow/big", "1"), "-o", str(out), time_limit=60)
    assert watched.returncode == 0, watched.describe()
    # Quiet means quiet: every piece's connection goes back to the pool without a word.
    assert watched.stderr == b"", watched.describe()
    digest = big_image.layers[0].digest
    ranged = [r for r in proxy.requests_to("GET", f"/v2/.+/blobs/{digest}") if "range" in r.headers]
    parallel = any(a.overlaps(b) for i, a in enumerate(ranged) for b in ranged[i + 1 :])
    assert parallel, f"no two ranged requests at once: {[r.headers.get('range') for r in ranged]}"
    one_stream = big_image.layers[0].size / PER_CONNECTION
    assert watched.wall < 0.75 * one_stream, watched.describe()
    assert digest in ArchiveView.read(out).blobs


def test_endpoint_ignoring_range_falls_back_to_one_stream(
    registry: RegistryServer,
    big_image: BuiltImage,
    fault_proxy_factory: Callable[..., FaultProxy],
    out: Path,
) -> None:
    digest = big_image.layers[0].digest
    proxy = fault_proxy_factory(registry)
    proxy.add_rule(Rule(path=f"/v2/.+/blobs/{digest}", times=None, action=IgnoreRange()))
    watched = watch_imgpull("pull", "-q", proxy.ref("slow/big", "1"), "-o", str(out), time_limit=60)
    assert watched.returncode == 0, watched.describe()
    assert digest in ArchiveView.read(out).blobs  # checked against its digest


def test_pieces_resume_across_runs(
    registry: RegistryServer,
    big_image: BuiltImage,
    fault_proxy_factory: Callable[..., FaultProxy],
    fresh_env: FreshEnv,
    out: Path,
) -> None:
    """kill -9 mid-pull, then again: only the pieces not finished are fetched."""
    digest = big_image.layers[0].digest
    slow = fault_proxy_factory(registry)
    slow.set_link(ConnectionThrottle(4_000_000))  # a piece of 16 MiB takes about 4 s
    record = fresh_env.cache_dir / "partial" / f"{digest.replace(':', '-')}.pieces"
    first = start_watched(
        imgpull_argv("pull", "-q", "-j", "1", slow.ref("slow/big", "1"), "-o", str(out)),
        time_limit=60,
    )
    try:
        until = time.monotonic() + 45
        while time.monotonic() < until and first.alive:
            if record.exists() and '"done": []' not in record.read_text():
                break
            time.sleep(0.05)
    finally:
        first.kill("the test's kill -9, once a piece is done")
    first.wait(10)
    left = json.loads(record.read_text())
    done, start, piece = left["done"], left["start"], left["piece"]
    assert done, "no piece was finished before the kill"
    again = fault_proxy_factory(registry)
    watched = watch_imgpull("pull", "-q", again.ref("slow/big", "1"), "-o", str(out), time_limit=60)
    assert watched.returncode == 0, watched.describe()
    assert digest in ArchiveView.read(out).blobs
    asked = {
        (int(re.findall(r"\d+", r.headers["range"])[0]) - start) // piece
        for r in again.requests_to("GET", f"/v2/.+/blobs/{digest}")
        if "range" in r.headers
    }
    assert asked, "the second run fetched no pieces"
    assert not asked & set(done), f"pieces {sorted(asked & set(done))} were fetched twice"
