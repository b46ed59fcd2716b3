"""The hostile world's bounds on loops and on waiting (issue 9, Build 2): tag pagination
that loops or never ends, more tags than anyone has, and the default stall rule.

The same outcome as in ``test_hostile.py`` (:func:`~tests.fixtures.hostile.assert_secure_outcome`):
the exact exit code, one ``imgpull: error:`` line, nothing at ``-o``, peak RSS below
100 MiB, wall time within ``--timeout`` + 1 s, or, for the test of the defaults (run
without ``--timeout``), within the default stall interval and a few seconds.

The limits come from the source, so the tests follow them: ``MAX_TAG_PAGES`` and
``MAX_TAGS`` (registry/client.py), the low-speed rule's defaults (``SpeedRule`` in
registry/policy.py: 1024 B/s over 30 s).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from imgpull.errors import EXIT_ERROR, EXIT_NETWORK
from imgpull.registry.client import MAX_TAG_PAGES, MAX_TAGS, TAGS_PAGE_LIMIT
from imgpull.registry.policy import SpeedRule
from tests.conftest import FreshEnv
from tests.fixtures.faultproxy import FaultProxy, Hang, Rule, Status, Trickle
from tests.fixtures.hostile import (
    TIMEOUT,
    RecordingServer,
    assert_secure_outcome,
    json_status,
    serve_tag_pages,
    watch_cli,
    watch_pull,
)
from tests.fixtures.images import StandardImages

pytestmark = pytest.mark.usefixtures("fresh_env")

TAGS = r"/v2/.+/tags/list"


@pytest.fixture
def out(fresh_env: FreshEnv, tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    return tmp_path / "out" / "out.tar"


def tag_pages(server: RecordingServer) -> int:
    return len([r for r in server.requests if r.path.endswith("/tags/list")])


# -- pagination -------------------------------------------------------------------------


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
    watched = watch_cli("tags", "-q", fault_proxy.ref("test/hello"))
    # A page URL seen twice ends it: the first page (?n=1000), the loop's one or two
    # pages, then the one already seen, never asked for. Nothing is printed: tags are
    # printed once the whole list has been read.
    pages = 2 if loop == "to-itself" else 3
    assert_secure_outcome(
        watched,
        code=EXIT_ERROR,
        timeout=TIMEOUT,
        contains=f"loops or never ends (page {pages + 1})",
    )
    assert len(fault_proxy.requests_to("GET", TAGS)) == pages


def test_tag_pages_that_never_end_stop_at_the_page_cap(
    recording_server_factory: Callable[[str], RecordingServer],
) -> None:
    """Every page names a next page never seen before, each with a new tag: the seen-URL
    check cannot end it, the page cap (MAX_TAG_PAGES) does."""
    server = serve_tag_pages(recording_server_factory("endless pages"), "test/hello", _one_tag)
    watched = watch_cli("tags", "-q", f"{server.host}/test/hello", timeout=20)
    assert_secure_outcome(
        watched,
        code=EXIT_ERROR,
        timeout=20,
        contains=f"loops or never ends (page {MAX_TAG_PAGES + 1})",
    )
    assert tag_pages(server) == MAX_TAG_PAGES, watched.describe()


def _one_tag(page: int) -> list[str]:
    return [f"page-{page}"]


#: Tags of the longest name the grammar allows (128 characters): the most that fit on a
#: page under its cap, so the run reaches the tag limit holding the most bytes it can.
LONGEST = 128
#: A name, its quotes, a comma and a space each; a kilobyte left for the rest of the page.
PER_PAGE = (TAGS_PAGE_LIMIT - 1024) // (LONGEST + 4)


def _long_tags(page: int) -> list[str]:
    return [f"{page:03d}-{number:06d}-".ljust(LONGEST, "x") for number in range(PER_PAGE)]


def test_more_tags_than_the_limit_is_a_clean_failure(
    recording_server_factory: Callable[[str], RecordingServer],
) -> None:
    """Full pages of distinct 128-character tags, without end: the run stops once it has
    seen more than MAX_TAGS (200,000) tags, in one line, with nothing printed and the
    memory of 200,000 such names (88-92 MiB peak here) still below 100 MiB."""
    server = serve_tag_pages(recording_server_factory("many tags"), "test/hello", _long_tags)
    watched = watch_cli("tags", "-q", f"{server.host}/test/hello")
    assert_secure_outcome(
        watched, code=EXIT_ERROR, timeout=TIMEOUT, contains=f"lists more than {MAX_TAGS} tags"
    )
    assert tag_pages(server) == MAX_TAGS // PER_PAGE + 1, watched.describe()


# -- the default stall rule -------------------------------------------------------------

DEFAULT = SpeedRule()  # what pull uses without --speed-limit and --speed-time


@pytest.mark.parametrize("stall", ["trickle", "hang-after-headers"])
def test_a_stalled_blob_is_abandoned_by_the_default_rule(
    fault_proxy: FaultProxy, standard_images: StandardImages, out: Path, stall: str
) -> None:
    """No --timeout, no --speed-time: a blob trickling one byte a second, or sending its
    headers and then nothing, is abandoned after the default 30 s below 1 kB/s, as a
    network error. The registry is its only place; with the default --retries 3 it would
    be asked again three times (a new connection often cures a stuck one), so the test
    runs with --retries 0 to see the stall rule alone."""
    blob = f"/v2/.+/blobs/{standard_images.hello.built.layers[0].digest}"
    action = (
        Trickle(bytes_per_second=1, chunk=1) if stall == "trickle" else Hang(after_headers=True)
    )
    fault_proxy.add_rule(Rule(method="GET", path=blob, times=None, action=action))
    watched = watch_pull(
        fault_proxy.ref("test/hello", "1"),
        out,
        "--retries",
        "0",
        timeout=None,
        time_limit=DEFAULT.window * 4,
    )
    assert_secure_outcome(
        watched,
        code=EXIT_NETWORK,
        timeout=None,
        within=DEFAULT.window + 6,
        output=out,
        contains=DEFAULT.describe(),  # "slower than 1.024 kB/s for 30 s"
    )
    assert watched.wall >= DEFAULT.window, f"abandoned too early\n{watched.describe()}"
    assert len(fault_proxy.requests_to("GET", blob)) == 1, watched.describe()
