"""Rewriting one input: only image values change, quoting kept, the result checked."""

from __future__ import annotations

import pytest
import yaml

from imgpull.errors import ConfigError, InvalidReferenceError
from imgpull.kube import check as check_module
from imgpull.kube import (
    find_images,
    make_mapper,
    rewrite_source,
    rewrite_text,
)
from tests.unit.kube.helpers import DATA, FAST, MIRRORS, TO, corpus_sources, pod, src, to_rewrite


def test_rewrite_changes_only_image_lines(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for source in corpus_sources(monkeypatch):
        images_by_line = {u.line: u.reference for u in find_images(source)}
        for mapper in (make_mapper(MIRRORS, None), make_mapper({}, TO)):
            new = rewrite_text(source, mapper)
            old_lines, new_lines = source.text.split("\n"), new.split("\n")
            assert len(old_lines) == len(new_lines)
            for number, (old, line) in enumerate(zip(old_lines, new_lines, strict=True), 1):
                if old == line:
                    continue
                image = images_by_line[number]
                mapped = mapper(image)
                assert mapped is not None
                # Same line with only the value swapped: comments, quotes, indent intact.
                assert old.replace(image, mapped, 1) == line, (source.name, number)


def test_round_trip_parses_to_mapped_images(monkeypatch: pytest.MonkeyPatch) -> None:
    mapper = make_mapper(MIRRORS, TO)
    for source in corpus_sources(monkeypatch):
        new = rewrite_text(source, mapper)
        expected = [mapper(u.reference) or u.reference for u in find_images(source)]
        assert [u.reference for u in find_images(src(new))] == expected
        # Everything but the images loads to the same data.
        old_docs = list(yaml.load_all(source.text, Loader=FAST))
        new_docs = list(yaml.load_all(new, Loader=FAST))
        assert len(old_docs) == len(new_docs)
        # quay.io/fake/env-value:v1 is an image now (an env value named *IMAGE*).
        assert str(old_docs).count("quay.io/fake") - str(new_docs).count("quay.io/fake") in (
            0,
            1,
        )


def test_rewrite_is_idempotent(monkeypatch: pytest.MonkeyPatch) -> None:
    mapper = make_mapper({}, TO)
    for source in corpus_sources(monkeypatch):
        once = rewrite_text(source, mapper)
        assert rewrite_text(src(once), mapper) == once


def test_anchor_rewritten_once_alias_untouched() -> None:
    text = (DATA / "manifests" / "daemonset-anchors.yaml").read_text()
    new = to_rewrite(text)
    changed = [(a, b) for a, b in zip(text.splitlines(), new.splitlines(), strict=True) if a != b]
    assert changed == [
        (
            "          image: &agent quay.io/cilium/cilium:v1.15.6   # one tag for every container",
            f"          image: &agent {TO}/cilium/cilium:v1.15.6   # one tag for every container",
        ),
        (
            "          image: quay.io/cilium/hubble-relay:v1.15.6",
            f"          image: {TO}/cilium/hubble-relay:v1.15.6",
        ),
    ]
    assert "image: *agent" in new
    assert [u.reference for u in find_images(src(new))].count(f"{TO}/cilium/cilium:v1.15.6") == 3


def test_anchor_with_tag_and_quotes(loader: str) -> None:
    new = to_rewrite(pod('image: &i !!str "nginx:1"  # c'))
    assert new == pod(f'image: &i !!str "{TO}/library/nginx:1"  # c')


@pytest.mark.parametrize(
    ("line", "to", "expected"),
    [
        ("image: nginx:1", TO, f"image: {TO}/library/nginx:1"),
        ("image: 'nginx:1'", TO, f"image: '{TO}/library/nginx:1'"),
        ('image: "nginx:1"', TO, f'image: "{TO}/library/nginx:1"'),
        # "[" cannot start a plain scalar: double quotes.
        ("image: nginx:1", "[::1]:5000", 'image: "[::1]:5000/library/nginx:1"'),
        ("image: 'nginx:1'", "[::1]:5000", "image: '[::1]:5000/library/nginx:1'"),
        ("image: nginx:1 # keep", TO, f"image: {TO}/library/nginx:1 # keep"),
        ("image:    nginx:1", TO, f"image:    {TO}/library/nginx:1"),
        ("image: |-\n      nginx:1", TO, f"image: |-\n      {TO}/library/nginx:1"),
        ('image: "nginx\\\n      :1"', TO, f'image: "{TO}/library/nginx:1"'),
    ],
)
def test_quoting_styles(loader: str, line: str, to: str, expected: str) -> None:
    assert to_rewrite(pod(line), to) == pod(expected)


def test_flow_collections_quote_a_new_colon_only() -> None:
    text = "spec:\n  containers: [{name: a, image: nginx}, {image: nginx:1}]\n"
    assert to_rewrite(text, "mirror.local") == (
        "spec:\n  containers: [{name: a, image: mirror.local/library/nginx},"
        " {image: mirror.local/library/nginx:1}]\n"
    )
    assert to_rewrite(text) == (
        f'spec:\n  containers: [{{name: a, image: "{TO}/library/nginx"}},'
        f" {{image: {TO}/library/nginx:1}}]\n"
    )


def test_block_scalars() -> None:
    text = pod("image: |\n      nginx:1\n      more")
    with pytest.raises(ConfigError, match="invalid reference"):
        to_rewrite(text)
    folded = pod("image: >-\n      nginx:1\n\n")
    assert to_rewrite(folded) == pod(f"image: >-\n      {TO}/library/nginx:1\n\n")


def test_multi_line_block_scalar_image_is_refused() -> None:
    text = pod("image: >-\n      quay.io/a/\n      b:1")  # folds to "quay.io/a/ b:1"
    with pytest.raises(ConfigError):
        to_rewrite(text)


def test_crlf_bom_and_missing_final_newline_are_kept(loader: str) -> None:
    text = "\ufeffspec:\r\n  containers:\r\n  - image: nginx:1\r\n    name: a"
    new = to_rewrite(text)
    assert new == f"\ufeffspec:\r\n  containers:\r\n  - image: {TO}/library/nginx:1\r\n    name: a"
    uses = find_images(src(text))
    assert [(u.line, u.column) for u in uses] == [(3, 12)]


def test_unchanged_text_is_returned_as_is() -> None:
    text = pod("image: gcr.io/a/b:1  # x")
    assert rewrite_text(src(text), make_mapper({"quay.io": "q.local"}, None)) is text


def test_mapper_errors_are_located() -> None:
    def boom(text: str) -> str | None:
        raise InvalidReferenceError(f"bad {text}")

    with pytest.raises(ConfigError, match=r"^t\.yaml:6:12: bad x:1$"):
        rewrite_text(src(pod("image: x:1")), boom)


def test_counts_are_of_values(monkeypatch: pytest.MonkeyPatch) -> None:
    text = pod("image: quay.io/a/b:1") + "---\n" + pod("image: quay.io/a/b:1")
    done = rewrite_source(src(text), make_mapper({"quay.io": "q.local"}))
    assert len(done.edits) == 2
    assert done.replacements == [("quay.io/a/b:1", "q.local/a/b:1")] * 2


def test_a_rewrite_that_would_change_more_than_images_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Simulate a splicing bug: the check must catch a text that parses differently.
    from imgpull.kube import rewriter as rewrite_module

    real = rewrite_module._apply

    def broken(text: str, edits: list[tuple[int, int, str]]) -> str:
        return real(text, edits).replace("name: a", "name: b")

    monkeypatch.setattr(rewrite_module, "_apply", broken)
    with pytest.raises(ConfigError, match="internal error: the rewritten text would differ"):
        rewrite_text(src(pod("image: quay.io/a/b:1")), make_mapper({"quay.io": "q.local"}))
    assert check_module.check_rewrite is not None
