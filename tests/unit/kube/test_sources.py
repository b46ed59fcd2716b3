"""Reading inputs: files, directories, standard input; caps and undecodable text."""

from __future__ import annotations

import io
import os
import resource
import threading
from pathlib import Path

import pytest

from imgpull.errors import ConfigError, UsageError
from imgpull.kube import (
    STDIN_NAME,
    Failure,
    Source,
    iter_sources,
    list_images,
    read_sources,
    rewrite,
)
from tests.unit.kube.helpers import DATA, MIRRORS, no_stdin


def test_stdin() -> None:
    text = (DATA / "manifests" / "helm" / "webapp-rendered.yaml").read_text()
    sources = read_sources(["-"], io.StringIO(text))
    assert sources == [Source("-", text, None)]
    assert sources[0].label == STDIN_NAME == "standard input"
    assert list_images(sources)[0] == "busybox:1.36"
    result = rewrite(["-"], io.StringIO(text), mirrors=MIRRORS, to=None)
    assert result.diff == ""
    assert result.changed == ["-"]
    assert result.text_for_stdin is not None
    assert "image: m.daocloud.io/docker.io/library/busybox:1.36" in result.text_for_stdin
    assert ("busybox:1.36", "m.daocloud.io/docker.io/library/busybox:1.36") in result.replacements
    unchanged = rewrite(["-"], io.StringIO("a: 1\n"), mirrors=MIRRORS, to=None)
    assert (unchanged.text_for_stdin, unchanged.changed) == ("a: 1\n", [])
    with pytest.raises(ConfigError, match="in place"):
        rewrite(["-"], io.StringIO(text), mirrors=MIRRORS, to=None, in_place=True)
    with pytest.raises(ConfigError, match="more than once"):
        read_sources(["-", "-"], io.StringIO(text))


def test_stdin_bytes_keep_crlf_and_name_standard_input() -> None:
    data = b"spec:\r\n  containers:\r\n  - image: Bad\r\n"
    sources = read_sources(["-"], io.BytesIO(data))
    assert sources[0].text == data.decode()
    with pytest.raises(ConfigError, match=r"^standard input:3:12: invalid reference"):
        list_images(sources)


def test_directories_sorted_recursive_and_deduplicated(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    (tmp_path / "b-c").mkdir()
    files = ("b/z.yml", "a.yaml", "b/a.yaml", "c.yaml", "b-c/x.yaml", "notes.txt", ".git/x.yaml",
             ".hidden.yaml")  # fmt: skip
    for name in files:
        (tmp_path / name).write_text("a: 1\n")
    (tmp_path / "linked").symlink_to(tmp_path / "b")
    names = [s.name for s in read_sources([str(tmp_path), str(tmp_path / "a.yaml")], no_stdin())]
    # filepath.Walk order, as kubectl: "b" sorts before "b-c", and its files come first.
    expected = ("a.yaml", "b/a.yaml", "b/z.yml", "b-c/x.yaml", "c.yaml")
    assert names == [str(tmp_path / n) for n in expected]
    # A file given by name is read whatever its extension.
    assert [s.name for s in read_sources([str(tmp_path / "notes.txt")], no_stdin())] == [
        str(tmp_path / "notes.txt")
    ]


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_sources([str(tmp_path / "missing.yaml")], no_stdin())
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \*\.yaml or \*\.yml files"):
        read_sources([str(tmp_path / "empty")], no_stdin())
    (tmp_path / "latin1.yaml").write_bytes(b"a: 1\nb: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(invalid byte 0xe9 on line 2"):
        read_sources([str(tmp_path / "latin1.yaml")], no_stdin())
    with pytest.raises(UsageError, match="no input"):
        read_sources([], no_stdin())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a: 1\n\0\0\0", r"a binary file, not YAML text \(NUL byte at offset 5\)"),
        (b"\xff\xfea\0:\0 \0", "UTF-16 or UTF-32 text"),
        (b"\xfe\xff\0a\0:", "UTF-16 or UTF-32 text"),
        (b"\x7fELF\x02\x01\x01\0", "binary file"),
    ],
)
def test_binary_and_utf16_files_are_one_clean_line(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message):
        read_sources([str(path)], no_stdin())


def test_size_cap_applies_while_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: 1\n" * 1000)
    assert read_sources([str(path)], no_stdin(), max_bytes=5000)[0].text.count("\n") == 1000
    with pytest.raises(ConfigError, match=r"big\.yaml: larger than the 4999 bytes limit"):
        read_sources([str(path)], no_stdin(), max_bytes=4999)
    with pytest.raises(ConfigError, match=r"^standard input: larger than the 1 KiB limit"):
        read_sources(["-"], io.BytesIO(b"#" * 1025), max_bytes=1024)
    with pytest.raises(ConfigError, match="larger than"):
        read_sources(["-"], io.StringIO("#" * 1025), max_bytes=1024)


def test_dev_zero_ends_at_once() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError, match=r"^/dev/zero: a binary file"):
        read_sources(["/dev/zero"], no_stdin())
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 32 * 1024  # KiB


def test_endless_text_stops_at_the_cap(tmp_path: Path) -> None:
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)
    stop = threading.Event()

    def feed() -> None:
        try:
            with open(fifo, "wb") as handle:
                while not stop.is_set():
                    handle.write(b"a: 1\n" * 10000)
        except BrokenPipeError:  # the reader stopped, as it should
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        with pytest.raises(ConfigError, match="larger than the 1 MiB limit"):
            read_sources([str(fifo)], no_stdin(), max_bytes=1024 * 1024)
    finally:
        stop.set()
        writer.join(5)


def test_keep_going_records_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("a: 1\n")
    (tmp_path / "bin.yaml").write_bytes(b"\0")
    failures: list[Failure] = []
    paths = [str(tmp_path / "missing.yaml"), str(tmp_path), str(tmp_path / "empty-dir-x")]
    names = [s.name for s in iter_sources(paths, no_stdin(), failures=failures)]
    assert names == [str(tmp_path / "good.yaml")]
    assert [f.name for f in failures] == [
        str(tmp_path / "missing.yaml"),
        str(tmp_path / "bin.yaml"),
        str(tmp_path / "empty-dir-x"),
    ]
    assert all(isinstance(f.error, ConfigError) for f in failures)
