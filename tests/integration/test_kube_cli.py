"""`imgpull images` and `imgpull rewrite` as users run them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imgpull.cli.exits import EXIT_USAGE
from tests.cli import assert_clean_failure, run_imgpull

DATA = Path(__file__).resolve().parent.parent / "data" / "k8s"

pytestmark = pytest.mark.usefixtures("fresh_env")


def test_images_lists_the_corpus_and_reads_stdin() -> None:
    done = run_imgpull("images", str(DATA / "manifests"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == (DATA / "expected-images.txt").read_text()
    one = next(iter(sorted((DATA / "manifests").rglob("*.yaml"))))
    piped = run_imgpull("images", "-", input=one.read_bytes())
    assert piped.returncode == 0
    assert (
        piped.stdout.decode().splitlines()
        == run_imgpull("images", str(one)).stdout.decode().splitlines()
    )


def test_rewrite_shows_a_diff_then_writes_in_place(tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(DATA / "manifests", copy)
    before = {p: p.read_bytes() for p in copy.rglob("*.yaml")}
    shown = run_imgpull("rewrite", str(copy), "--to", "registry.local:5000/mirror")
    assert shown.returncode == 0, shown.stderr
    assert b"+        image: registry.local:5000/mirror/" in shown.stdout
    assert {p: p.read_bytes() for p in copy.rglob("*.yaml")} == before  # a diff only
    done = run_imgpull(
        "rewrite", str(copy), "--to", "registry.local:5000/mirror", "--in-place", "-q"
    )
    assert done.returncode == 0, done.stderr
    after = run_imgpull("images", str(copy)).stdout.decode().split()
    assert after and all(i.startswith("registry.local:5000/mirror/") for i in after)
    assert "registry.local:5000/mirror/coredns:v1.11.1" in after  # kubeadm's layout
    # Comments survive.
    for path, old in before.items():
        old_comments = [line for line in old.splitlines() if line.lstrip().startswith(b"#")]
        new_comments = [ln for ln in path.read_bytes().splitlines() if ln.lstrip().startswith(b"#")]
        assert new_comments == old_comments


def test_rewrite_refuses_broken_yaml_and_changes_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: nginx\n")
    shutil.copy(DATA / "broken" / "bad.yaml", tmp_path / "bad.yaml")
    before = good.read_bytes()
    done = run_imgpull("rewrite", str(tmp_path), "--to", "r.local/m", "--in-place")
    assert_clean_failure(done, code=EXIT_USAGE, contains="bad.yaml")
    assert good.read_bytes() == before
    nothing = run_imgpull("rewrite", str(good))
    assert_clean_failure(nothing, code=EXIT_USAGE, contains="nothing to rewrite")
