"""Fuzzing every parser that reads what a server or an archive sends (issue 9, Build 5).

Random and mutated manifests, indexes, configs, ``WWW-Authenticate`` and ``Link`` headers
and archives (``manifest.json``, ``index.json``, ``oci-layout``) go in; only
:class:`imgpull.errors.ImgpullError` subclasses may come out. A ``RecursionError``,
``TypeError``, ``KeyError``, ``ValueError``... is a finding: hypothesis shrinks it to
the smallest input that shows it.

Mutations start from valid documents built by :mod:`tests.fixtures.images` and change
types and values, drop keys and nest values deeply. Each test is bounded (a few hundred
examples, a few seconds); ``database=None`` keeps hypothesis from writing into the
checkout. The parsers are imported inside the tests, so one moved name fails one test,
not the module.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgpull.errors import ImgpullError
from tests.fixtures.images import build_image, build_index, build_layer

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ_ARCHIVES = settings(FUZZ, max_examples=60)

DEPTH = 100_000

# -- valid starting points --------------------------------------------------------------

_LAYER = build_layer({"etc/fuzz": b"fuzz\n"})
_IMAGES = {
    media: build_image([_LAYER], cmd=["/bin/true"], arch="amd64", media=media)
    for media in ("oci", "docker")
}
_ARM = build_image([_LAYER], cmd=["/bin/true"], arch="arm64", variant="v8", media="oci")
_INDEXES = {
    media: build_index(
        [_IMAGES["oci"] if media == "oci" else _IMAGES["docker"], _ARM],
        media=media,
        attestation=media == "oci",
    )
    for media in ("oci", "docker")
}
MANIFESTS: list[Any] = [image.manifest_json() for image in _IMAGES.values()]
INDEXES: list[Any] = [index.manifest_json() for index in _INDEXES.values()]
CONFIGS: list[Any] = [image.config_json() for image in _IMAGES.values()]
MEDIA_TYPES = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
    "application/octet-stream",
    "text/plain; charset=utf-8",
    "",
    "garbage/\x00type",
]

# -- strategies -------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["sha256:" + "0" * 64, "sha256:xyz", "", "linux", "amd64", "v8"])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

_DELETE = object()
#: Keys the parsers look for, so mutations also add them where they were absent.
KNOWN_KEYS = [
    "annotations",
    "urls",
    "platform",
    "variant",
    "os.features",
    "mediaType",
    "config",
    "layers",
    "manifests",
    "subject",
    "artifactType",
    "schemaVersion",
    "digest",
    "size",
    "rootfs",
    "diff_ids",
    "Entrypoint",
    "Cmd",
    "Env",
    "Labels",
    "User",
    "WorkingDir",
    "created",
    "history",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _with(document: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``document`` with the value at ``path`` replaced (or deleted: ``_DELETE``)."""
    if not path:
        return None if new is _DELETE else new
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if new is _DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return document


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def mutated(draw: st.DrawFn, documents: list[Any]) -> Any:
    """A valid document with one to four of its values replaced, deleted or nested."""
    document = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(_paths(document))))
        operation = draw(
            st.sampled_from(["replace", "replace", "delete", "nest", "swap-type", "add-key"])
        )
        current = _get(document, path)
        if operation == "add-key" and isinstance(current, dict):
            current[draw(st.sampled_from(KNOWN_KEYS))] = draw(json_values)
        elif operation == "delete" and path:
            document = _with(document, path, _DELETE)
        elif operation == "nest":
            document = _with(document, path, _nest(current, draw(st.integers(1, 50))))
        elif operation == "swap-type":
            document = _with(document, path, _swapped(current))
        else:
            document = _with(document, path, draw(json_values))
    return document


def _get(document: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        document = document[step]
    return document


def _swapped(value: Any) -> Any:
    """The same content in the wrong JSON type."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return {"0": value[0]} if value else "[]"
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, bool):
        return "true"
    if isinstance(value, int):
        return str(value)
    return 0


@st.composite
def corrupted_bytes(draw: st.DrawFn, documents: list[Any]) -> bytes:
    """The JSON text of a valid document with a few bytes flipped, cut or inserted."""
    raw = bytearray(json.dumps(draw(st.sampled_from(documents))).encode())
    for _ in range(draw(st.integers(1, 5))):
        if not raw:
            break
        position = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["flip", "cut", "insert", "truncate"]))
        if action == "flip":
            raw[position] ^= draw(st.integers(1, 255))
        elif action == "cut":
            del raw[position]
        elif action == "insert":
            raw[position:position] = draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[position:]
    return bytes(raw)


def _encoded(document: Any) -> bytes:
    return json.dumps(document).encode()


def _only_imgpull_errors(call: Callable[[], object]) -> None:
    """Run ``call``; an ImgpullError is a fine answer, anything else propagates."""
    with contextlib.suppress(ImgpullError):
        call()


DEEP_DOCUMENTS = {
    "object": b'{"a":' * DEPTH + b"1" + b"}" * DEPTH,
    "array": b"[" * DEPTH + b"]" * DEPTH,
    "in-config": b'{"schemaVersion": 2, "config": ' + b"[" * DEPTH + b"]" * DEPTH + b"}",
    "in-manifests": b'{"manifests": [' + b'{"a":' * DEPTH + b"1" + b"}" * DEPTH + b"]}",
    "unclosed": b"[" * DEPTH,
}

# -- manifests and indexes --------------------------------------------------------------


def _parse_manifest(raw: bytes, media_type: str) -> object:
    from imgpull.digest import Digest
    from imgpull.model import parse_manifest

    return parse_manifest(raw, media_type, Digest.of(raw))


@FUZZ
@given(document=mutated(MANIFESTS + INDEXES), media_type=st.sampled_from(MEDIA_TYPES))
def test_parse_manifest_mutated_documents(document: Any, media_type: str) -> None:
    _only_imgpull_errors(lambda: _parse_manifest(_encoded(document), media_type))


@FUZZ
@given(raw=corrupted_bytes(MANIFESTS + INDEXES), media_type=st.sampled_from(MEDIA_TYPES))
def test_parse_manifest_corrupted_bytes(raw: bytes, media_type: str) -> None:
    _only_imgpull_errors(lambda: _parse_manifest(raw, media_type))


@FUZZ
@given(raw=st.binary(max_size=2000), media_type=st.sampled_from(MEDIA_TYPES))
def test_parse_manifest_random_bytes(raw: bytes, media_type: str) -> None:
    _only_imgpull_errors(lambda: _parse_manifest(raw, media_type))


@pytest.mark.parametrize("shape", list(DEEP_DOCUMENTS))
@pytest.mark.parametrize("media_type", MEDIA_TYPES[:4])
def test_parse_manifest_deep_nesting(shape: str, media_type: str) -> None:
    with pytest.raises(ImgpullError):
        _parse_manifest(DEEP_DOCUMENTS[shape], media_type)


def test_parse_manifest_still_parses_the_valid_ones() -> None:
    """The starting points are valid: the fuzzing above mutates real documents."""
    for image in _IMAGES.values():
        assert _parse_manifest(image.manifest, image.media_type) is not None
    for index in _INDEXES.values():
        assert _parse_manifest(index.manifest, index.media_type) is not None


# -- image configs ----------------------------------------------------------------------


def _parse_config(raw: bytes) -> object:
    from imgpull.digest import Digest
    from imgpull.model import ImageConfig

    return ImageConfig.parse(raw, Digest.of(raw))


@FUZZ
@given(document=mutated(CONFIGS))
def test_image_config_mutated_documents(document: Any) -> None:
    _only_imgpull_errors(lambda: _parse_config(_encoded(document)))


@FUZZ
@given(raw=corrupted_bytes(CONFIGS) | st.binary(max_size=2000))
def test_image_config_corrupted_and_random_bytes(raw: bytes) -> None:
    _only_imgpull_errors(lambda: _parse_config(raw))


@pytest.mark.parametrize("shape", list(DEEP_DOCUMENTS))
def test_image_config_deep_nesting(shape: str) -> None:
    _only_imgpull_errors(lambda: _parse_config(DEEP_DOCUMENTS[shape]))


# -- WWW-Authenticate -------------------------------------------------------------------


def _parse_challenges(header: str) -> object:
    from imgpull.registry.auth import parse_challenges

    return parse_challenges(header)


_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789-_.!#$%&'*+^`|~", min_size=1
)
_quoted = st.text(max_size=40).map(lambda s: '"' + s.replace("\\", "\\\\") + '"')
_param = st.tuples(_token, st.sampled_from(["=", " = ", "=", ""]), _quoted | _token | st.just(""))
_challenge = st.tuples(
    st.sampled_from(["Bearer", "Basic", "bearer", "Digest", "Negotiate", ""]) | _token,
    st.lists(_param.map("".join), max_size=5).map(lambda ps: ", ".join(ps)),
).map(" ".join)
challenge_headers = st.lists(_challenge, min_size=1, max_size=3).map(", ".join) | st.text()


@FUZZ
@given(header=challenge_headers)
def test_parse_challenges(header: str) -> None:
    def parse() -> None:
        result = _parse_challenges(header)
        assert isinstance(result, list)

    _only_imgpull_errors(parse)


ADVERSARIAL_CHALLENGES = {
    "escaped-quotes": 'Bearer realm="' + '\\"' * 50_000,
    "many-params": "Bearer " + "a=b," * 50_000,
    "long-space": " " * 100_000 + "x",
    "unclosed-quote": 'Basic realm="' + "x" * 100_000,
    "many-schemes": "Bearer, " * 50_000,
    "equals": "Bearer " + "=" * 100_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL_CHALLENGES))
def test_parse_challenges_stays_fast_on_adversarial_headers(name: str) -> None:
    """No regex backtracking blow-up: a long hostile header is parsed in well under 1 s."""
    started = time.monotonic()
    _only_imgpull_errors(lambda: _parse_challenges(ADVERSARIAL_CHALLENGES[name]))
    assert time.monotonic() - started < 1.0


# -- Link headers -----------------------------------------------------------------------

PAGE = "https://registry.example:5000/v2/team/app/tags/list?n=100"


def _next_link(header: str, url: str) -> str | None:
    try:
        from imgpull.registry.client import next_link
    except ImportError:
        pytest.fail("imgpull.registry.client.next_link(header: str, url: str) does not exist")
    result: str | None = next_link(header, url)
    return result


_link_targets = st.sampled_from(
    [
        "/v2/team/app/tags/list?n=100&last=b",
        "https://other.example/v2/x/tags/list",
        "http://[::1/v2/x",
        "http://127.0.0.1:99999/v2/x",
        "//evil.example/v2/x",
        "",
        "?last=c",
        "javascript:alert(1)",
    ]
) | st.text(max_size=60)
_rels = st.sampled_from(['rel="next"', "rel=next", 'rel="prev"', 'rel="next last"', "", 'rel="'])
link_headers = st.lists(
    st.tuples(_link_targets, _rels).map(lambda pair: f"<{pair[0]}>; {pair[1]}"), max_size=3
).map(", ".join) | st.text(max_size=200)


@FUZZ
@given(header=link_headers)
def test_next_link(header: str) -> None:
    def parse() -> None:
        result = _next_link(header, PAGE)
        assert result is None or result.startswith(("http://", "https://")), result

    _only_imgpull_errors(parse)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '</v2/team/app/tags/list?n=100&last=b>; rel="next"',
            f"{PAGE.split('/v2/')[0]}/v2/team/app/tags/list?n=100&last=b",
        ),
        (
            "</v2/team/app/tags/list?last=b>; rel=next",
            "https://registry.example:5000/v2/team/app/tags/list?last=b",
        ),
        (
            '<https://registry.example:5000/v2/team/app/tags/list?last=c>; rel="next"',
            "https://registry.example:5000/v2/team/app/tags/list?last=c",
        ),
        ('</v2/a>; rel="prev"', None),
        ("", None),
    ],
)
def test_next_link_resolves_against_the_page(header: str, expected: str | None) -> None:
    assert _next_link(header, PAGE) == expected


# -- archives ---------------------------------------------------------------------------

_OCI = _IMAGES["oci"]
_BLOBS = {
    f"blobs/sha256/{digest.split(':', 1)[1]}": data
    for digest, data in (
        (_OCI.manifest_digest, _OCI.manifest),
        (_OCI.config_digest, _OCI.config),
        (_LAYER.digest, _LAYER.compressed),
    )
}
_INDEX_JSON: Any = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        _OCI.descriptor(
            {"org.opencontainers.image.ref.name": "1", "io.containerd.image.name": "x/fuzz:1"}
        )
    ],
}
_MANIFEST_JSON: Any = [
    {
        "Config": f"blobs/sha256/{_OCI.config_digest.split(':', 1)[1]}",
        "RepoTags": ["x/fuzz:1"],
        "Layers": [f"blobs/sha256/{_LAYER.digest.split(':', 1)[1]}"],
    }
]
_OCI_LAYOUT: Any = {"imageLayoutVersion": "1.0.0"}
ARCHIVE_JSON = {
    "index.json": _INDEX_JSON,
    "manifest.json": _MANIFEST_JSON,
    "oci-layout": _OCI_LAYOUT,
}


def _tar(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _open_archive(data: bytes) -> None:
    """Open the archive and walk everything it claims to hold."""
    from imgpull.archive.reader import ImageArchive

    with tempfile.TemporaryDirectory(prefix="fuzz-archive-") as workdir:
        path = Path(workdir) / "archive.tar"
        path.write_bytes(data)
        with ImageArchive(path) as archive:
            for image in archive.images:
                for layer in image.layers:
                    with archive.open(layer) as stream:
                        stream.read()


@st.composite
def mutated_archives(draw: st.DrawFn) -> bytes:
    documents = {name: copy.deepcopy(value) for name, value in ARCHIVE_JSON.items()}
    target = draw(st.sampled_from(sorted(documents)))
    documents[target] = draw(mutated([documents[target]]))
    members = {name: _encoded(value) for name, value in documents.items()}
    if draw(st.booleans()):
        victim = draw(st.sampled_from(sorted(members)))
        members[victim] = draw(st.binary(max_size=200) | st.just(b""))
    if draw(st.booleans()):
        del members[draw(st.sampled_from(sorted(members)))]
    return _tar({**members, **_BLOBS})


@FUZZ_ARCHIVES
@given(data=mutated_archives())
def test_image_archive_mutated_json(data: bytes) -> None:
    _only_imgpull_errors(lambda: _open_archive(data))


@FUZZ_ARCHIVES
@given(data=st.binary(max_size=4096))
def test_image_archive_random_bytes(data: bytes) -> None:
    _only_imgpull_errors(lambda: _open_archive(data))


def test_image_archive_valid_starting_point() -> None:
    members = {name: _encoded(value) for name, value in ARCHIVE_JSON.items()}
    _open_archive(_tar({**members, **_BLOBS}))  # must not raise at all


@pytest.mark.parametrize("member", sorted(ARCHIVE_JSON))
@pytest.mark.parametrize("shape", ["object", "array"])
def test_image_archive_deep_json(member: str, shape: str) -> None:
    members = {name: _encoded(value) for name, value in ARCHIVE_JSON.items()}
    members[member] = DEEP_DOCUMENTS[shape]
    _only_imgpull_errors(lambda: _open_archive(_tar({**members, **_BLOBS})))
