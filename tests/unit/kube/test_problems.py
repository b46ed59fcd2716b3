"""One clean line for every malformed input: syntax, templates, placeholders, depth."""

from __future__ import annotations

import io
import re

import pytest

from imgpull.errors import ConfigError
from imgpull.kube import (
    TemplateError,
    find_images,
    list_images,
    make_mapper,
    read_sources,
    rewrite,
    rewrite_text,
)
from tests.unit.kube.helpers import DATA, TO, no_stdin, pod, src


def test_syntax_error_names_file_line_column(loader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(DATA)
    with pytest.raises(ConfigError) as info:
        list_images(read_sources(["broken"], no_stdin()))
    message = info.value.message
    # libyaml: "did not find expected '-' indicator"; PyYAML: "expected <block end>, ..."
    assert re.fullmatch(
        r"broken/bad\.yaml:9:6: invalid YAML: [^\n]+ "
        r"\(while parsing a block collection at line 7, column 5\)",
        message,
    ), message
    assert info.value.hint == "fix the YAML syntax at that position"
    with pytest.raises(ConfigError, match=r"^broken/bad\.yaml:9:6: invalid YAML"):
        rewrite(["broken/bad.yaml"], no_stdin(), mirrors={}, to=TO)


def test_reader_error_has_position(loader: str) -> None:
    with pytest.raises(
        ConfigError, match=r"^t\.yaml:2:4: invalid YAML: \w+ characters are not allowed$"
    ):
        find_images(src("a: 1\nb: \x01\n"))


def test_a_position_is_not_repeated(loader: str) -> None:
    with pytest.raises(ConfigError) as info:
        find_images(src("a: @x\n"))
    assert info.value.message.startswith("t.yaml:1:4: invalid YAML: found character")
    assert "line 1, column 4" not in info.value.message
    assert info.value.message.count("1:4") == 1


@pytest.mark.parametrize(
    "text",
    [
        # Not YAML at all.
        "spec:\n  containers:\n  - image: {{ .Values.image }}:{{ .Values.tag }}\n",
        "{{- if .Values.enabled }}\napiVersion: v1\nkind: Pod\n{{- end }}\n",
        # YAML, but the value is a flow mapping: a template that happens to parse.
        "spec:\n  containers:\n  - image: {{ .Values.image }}\n",
        # Quoted: valid YAML, the reference does not parse.
        'spec:\n  containers:\n  - image: "{{ .Values.image.repository }}:{{ .Chart.Version }}"\n',
        "spec:\n  containers:\n  - image: repo/app:{{ .Values.tag }}\n",
    ],
)
def test_helm_templates_get_their_own_message(loader: str, text: str) -> None:
    with pytest.raises(TemplateError) as info:
        list_images([src(text, "chart/templates/pod.yaml")])
    assert info.value.message == (
        "chart/templates/pod.yaml: looks like a Helm template; render it first: "
        "helm template ... | imgpull images -"
    )
    assert info.value.hint == ""
    with pytest.raises(TemplateError, match=r"\| imgpull rewrite -$"):
        rewrite(["-"], io.StringIO(text), mirrors={"quay.io": "q.local"})


def test_braces_in_data_are_not_templates() -> None:
    text = (
        'kind: ConfigMap\ndata:\n  dashboard.json: |\n    {"legendFormat": "{{instance}}"}\n'
        "  x: '{{ not a template field }}'\n"
    ) + pod("image: nginx:1.27")
    text = text.replace("apiVersion: v1\nkind: Pod\n", "---\napiVersion: v1\nkind: Pod\n")
    assert list_images([src(text)]) == ["nginx:1.27"]


@pytest.mark.parametrize(
    ("image", "hint"),
    [
        ("<YOUR-CONTAINER>", "put a real image there"),
        ("'<image>:<tag>'", "put a real image there"),
        ("${IMAGE}", "substitute the variables first"),
        ("'$IMAGE_REPO/app:1'", "substitute the variables first"),
    ],
)
def test_placeholders_are_named_with_their_location(image: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        list_images([src(pod(f"image: {image}"), "deploy.yaml")])
    assert re.match(r'deploy\.yaml:6:12: ".+" is a placeholder, not an image$', info.value.message)
    assert info.value.hint.startswith(hint)


@pytest.mark.parametrize("depth", [999, 1000])
def test_deep_nesting_within_the_limit_works_everywhere(loader: str, depth: int) -> None:
    levels = depth - 3  # and a mapping, its containers sequence, a container
    text = "[" * levels + "{containers: [{image: 'quay.io/a/b:1'}]}" + "]" * levels + "\n"
    assert [u.reference for u in find_images(src(text))] == ["quay.io/a/b:1"]
    new = rewrite_text(src(text), make_mapper({"quay.io": "q.local"}))
    assert "q.local/a/b:1" in new


@pytest.mark.parametrize("text", ["[" * 1001 + "]" * 1001, "- " * 1001 + "x\n"])
def test_too_deep_is_the_same_clean_error_for_images_and_rewrite(loader: str, text: str) -> None:
    for run in (
        lambda: find_images(src(text)),
        lambda: rewrite_text(src(text), make_mapper({"quay.io": "q.local"})),
    ):
        with pytest.raises(ConfigError, match=r"^t\.yaml:\d+:\d+: YAML nested more than 1000"):
            run()


def test_hostile_nesting_ends_at_once() -> None:
    # libyaml stops at its own limit of 1000 levels; no slow second try.
    for text in ("[" * 1_000_000, "{a: " * 300_000, "- " * 500_000):
        with pytest.raises(ConfigError, match=r"^t\.yaml:1:\d+: YAML nested more than 1000"):
            find_images(src(text))


def test_undefined_alias() -> None:
    with pytest.raises(ConfigError, match=r"^t\.yaml:1:4: invalid YAML: found undefined alias"):
        find_images(src("a: *nope\n"))


def test_a_syntax_error_in_a_file_with_braces_in_data_is_a_syntax_error() -> None:
    text = (
        'kind: ConfigMap\ndata:\n  dashboard.json: |\n    {"legendFormat": "{{instance}}"}\n'
        "  bad: [1, 2\n"
    )
    with pytest.raises(ConfigError) as info:
        find_images(src(text))
    assert not isinstance(info.value, TemplateError)
    assert "invalid YAML" in info.value.message
