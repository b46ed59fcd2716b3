"""Rewriting many inputs: all or nothing, keep-going, in place, counts."""

from __future__ import annotations

import io
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from imgpull.errors import ConfigError, UsageError
from imgpull.kube import batch, rewrite, unified_diff
from tests.unit.kube.helpers import DATA, MIRRORS, no_stdin, pod


def test_in_place_atomic_keeps_mode_follows_links(tmp_path: Path) -> None:
    tree = tmp_path / "manifests"
    shutil.copytree(DATA / "manifests", tree)
    target = tree / "cluster" / "kube-system.yaml"
    target.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    inode = target.stat().st_ino
    preview = rewrite([str(tree)], no_stdin(), mirrors=MIRRORS, to=None)

    result = rewrite([str(link), str(tree)], no_stdin(), mirrors=MIRRORS, to=None, in_place=True)

    # The file reached twice (link and directory) is rewritten once, under its first name.
    assert result.changed[0] == str(link)
    assert str(target) not in result.changed
    assert len(result.changed) == len(preview.changed)
    assert result.written == result.changed
    assert result.diff == ""  # no diff is made for --in-place
    assert link.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.stat().st_ino != inode  # replaced by os.replace, not written over
    assert "image: k8s.m.daocloud.io/kube-proxy:v1.30.2" in target.read_text()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary files left
    # What was written is what the preview showed.
    for name in preview.changed:
        original = (DATA / Path(name).relative_to(tmp_path)).read_text()
        assert unified_diff(name, original, Path(name).read_text()) in preview.diff
    # A second run changes nothing and writes nothing.
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tree.rglob("*.yaml")}
    again = rewrite([str(tree)], no_stdin(), mirrors=MIRRORS, to=None, in_place=True)
    assert (again.diff, again.changed) == ("", [])
    assert stamps == {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in tree.rglob("*.yaml")}


def test_in_place_touches_only_changed_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod("image: quay.io/a/b:1"))
    (tmp_path / "b.yaml").write_text(pod("image: gcr.io/a/b:1"))
    stamp = (tmp_path / "b.yaml").stat()
    result = rewrite([str(tmp_path)], no_stdin(), mirrors={"quay.io": "q.local"}, to=None,
                     in_place=True)  # fmt: skip
    assert result.changed == [str(tmp_path / "a.yaml")]
    assert (tmp_path / "a.yaml").read_text() == pod("image: q.local/a/b:1")
    after = (tmp_path / "b.yaml").stat()
    assert (after.st_ino, after.st_mtime_ns) == (stamp.st_ino, stamp.st_mtime_ns)


def test_nothing_written_when_any_input_is_bad(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(pod("image: quay.io/a/b:1"))
    bad = tmp_path / "zz-bad.yaml"
    shutil.copy(DATA / "broken" / "bad.yaml", bad)
    invalid = tmp_path / "invalid.yaml"
    invalid.write_text(pod('image: "quay.io/a/b:"'))
    stamp = good.stat().st_mtime_ns
    for inputs in ([good, bad], [good, invalid], [good, tmp_path / "missing.yaml"]):
        with pytest.raises(ConfigError):
            rewrite([str(p) for p in inputs], no_stdin(), mirrors={"quay.io": "q.local"},
                    to=None, in_place=True)  # fmt: skip
        assert good.read_text() == pod("image: quay.io/a/b:1")
        assert good.stat().st_mtime_ns == stamp
    with pytest.raises(ConfigError, match=r"invalid\.yaml:6:12: invalid reference"):
        rewrite([str(invalid)], no_stdin(), mirrors={}, to="r.local")


def test_keep_going_rewrites_the_good_inputs(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod("image: quay.io/a/b:1"))
    shutil.copy(DATA / "broken" / "bad.yaml", tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text(pod("image: <YOUR-IMAGE>"))
    (tmp_path / "d.yaml").write_text(pod('image: "{{ .Values.image }}"'))
    (tmp_path / "e.yaml").write_text(pod("image: quay.io/e/f:2"))
    rules = {"quay.io": "q.local"}
    result = rewrite([str(tmp_path)], no_stdin(), mirrors=rules, in_place=True, keep_going=True)
    assert result.written == [str(tmp_path / "a.yaml"), str(tmp_path / "e.yaml")]
    assert (tmp_path / "e.yaml").read_text() == pod("image: q.local/e/f:2")
    assert [f.name for f in result.failures] == [
        str(tmp_path / n) for n in ("b.yaml", "c.yaml", "d.yaml")
    ]
    messages = [f.error.message for f in result.failures]
    assert "invalid YAML" in messages[0]
    assert "placeholder" in messages[1]
    assert messages[2].endswith("looks like a Helm template; render it first: "
                                "helm template ... | imgpull rewrite -")  # fmt: skip


def test_a_failed_write_names_the_files_already_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.yaml", "b.yaml", "c.yaml"):
        (tmp_path / name).write_text(pod("image: quay.io/a/b:1"))
    real = batch.write_atomic

    def disk_full_for_b(path: str, text: str) -> None:
        if path.endswith("b.yaml"):
            raise ConfigError(f"{path}: cannot write: No space left on device")
        real(path, text)

    monkeypatch.setattr(batch, "write_atomic", disk_full_for_b)
    rules = {"quay.io": "q.local"}
    with pytest.raises(ConfigError) as info:
        rewrite([str(tmp_path)], no_stdin(), mirrors=rules, in_place=True)
    assert info.value.message.endswith("b.yaml: cannot write: No space left on device")
    assert info.value.hint == f"already rewritten: {tmp_path / 'a.yaml'}"
    assert "q.local" in (tmp_path / "a.yaml").read_text()
    assert "quay.io" in (tmp_path / "c.yaml").read_text()
    # With keep_going the others are still written.
    (tmp_path / "a.yaml").write_text(pod("image: quay.io/a/b:1"))
    result = rewrite([str(tmp_path)], no_stdin(), mirrors=rules, in_place=True, keep_going=True)
    assert [Path(n).name for n in result.written] == ["a.yaml", "c.yaml"]
    assert [Path(f.name).name for f in result.failures] == ["b.yaml"]


def test_counts_are_values_and_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        pod("image: quay.io/a/b:1") + "---\n" + pod("image: quay.io/a/b:1")
    )
    (tmp_path / "b.yaml").write_text(pod("image: quay.io/a/b:1"))
    result = rewrite([str(tmp_path)], no_stdin(), mirrors={"quay.io": "q.local"})
    assert (result.values_changed, len(result.files_changed)) == (3, 2)
    assert result.replacements == [("quay.io/a/b:1", "q.local/a/b:1")]


def test_standard_input_is_alone(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod("image: quay.io/a/b:1"))
    with pytest.raises(UsageError, match="standard input cannot be rewritten together with files"):
        rewrite(["-", str(tmp_path)], io.StringIO("a: 1\n"), mirrors={"quay.io": "q.local"})


def test_not_a_regular_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(pod("image: quay.io/a/b:1"))
    fifo = tmp_path / "z.yaml"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "w") as handle:
            handle.write(pod("image: quay.io/c/d:1"))

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    paths = [str(tmp_path / "a.yaml"), str(fifo)]
    with pytest.raises(ConfigError, match=r"z\.yaml: not a regular file; cannot rewrite in place"):
        rewrite(paths, no_stdin(), mirrors={"quay.io": "q.local"}, in_place=True)
    writer.join(5)
    assert (tmp_path / "a.yaml").read_text() == pod("image: quay.io/a/b:1")
