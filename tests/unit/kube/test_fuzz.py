"""Fuzzing: random and mutated YAML gives images and rewrite nothing but ImgpullError.

Bounded: a few hundred examples in all, no deadline per example, well under 20 s.
"""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imgpull.errors import ImgpullError
from imgpull.kube import collect_images, make_mapper, read_sources, rewrite_source, scan
from tests.unit.kube.helpers import DATA, src

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
MAPPER = make_mapper({"quay.io": "q.local", "docker.io": "m.local/hub"}, to="r.local:5000/all")
CORPUS = [path.read_text() for path in sorted((DATA / "manifests").rglob("*.yaml"))]
CORPUS += [path.read_text() for path in sorted((DATA / "kube-prometheus").rglob("*.yaml"))]
YAML_CHARS = "abcimage:-[]{}&*!|>'\"#%@`,?\n\t =<>${}/.\\0123\ufeff\u2028\x85\x00\x01"


def exercise(text: str) -> None:
    """Everything images and rewrite do with one input; only ImgpullError may come out,
    and a rewrite that succeeds parses again to the mapped images."""
    with contextlib.suppress(ImgpullError):
        collect_images([src(text)])
    try:
        done = rewrite_source(src(text), MAPPER)
    except ImgpullError:
        return
    expected = [MAPPER(use.reference) or use.reference for use in scan(src(text)).uses]
    assert [use.reference for use in scan(src(done.text)).uses] == expected


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "duplicate"]))
        piece = draw(st.text(YAML_CHARS, min_size=1, max_size=8))
        if action == "insert":
            text = text[:position] + piece + text[position:]
        elif action == "delete":
            text = text[:position] + text[position + len(piece) :]
        elif action == "replace":
            text = text[:position] + piece + text[position + len(piece) :]
        else:
            text = text[:position] + text[position : position + 200] * 3 + text[position:]
    return text


SCALARS = st.one_of(
    st.sampled_from(["quay.io/a/b:1", "nginx", "<IMG>", "{{ .x }}", "'q'", "1.5", "null", "~"]),
    st.text(YAML_CHARS, max_size=12),
    st.integers(0, 10_000).map(lambda n: "x" * n),  # huge scalars
)
TAGS = st.sampled_from(["", "!!str ", "!custom ", "!!python/object:os.system ", "!!binary ", "! "])


def flow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.sampled_from(["image", "containers", "args", "env", "name", "value", "<<", "kind"])
    return st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(keys, children), max_size=4).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
        ),
    )


STRUCTURED = st.recursive(
    st.tuples(TAGS, SCALARS).map(lambda t: t[0] + repr(t[1])),
    flow,
    max_leaves=30,
).map(lambda doc: f"a: &a {doc}\nspec:\n  containers: [{{<<: *a, image: *a}}, *a]\n")


@FUZZ
@given(mutated())
def test_mutated_manifests(text: str) -> None:
    exercise(text)


@FUZZ
@given(STRUCTURED)
def test_structured_documents_with_aliases_tags_and_merges(text: str) -> None:
    exercise(text)


@FUZZ
@given(st.text(YAML_CHARS, max_size=300))
def test_random_text(text: str) -> None:
    exercise(text)


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 50))
def test_random_bytes_and_nesting(data: bytes, depth: int) -> None:
    try:
        sources = read_sources(["-"], io.BytesIO(data))
    except ImgpullError:
        sources = []
    for source in sources:
        exercise(source.text)
    exercise("[" * depth * 25 + "]" * depth * 25)
    exercise("- " * depth * 25 + "&x y\n")
