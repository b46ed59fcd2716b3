"""Where an archive may be written: new and regular files replaced atomically, devices
and FIFOs written through, directories and foreign symlinks refused, stale partials of
a killed run removed."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from imgpull.archive.output import Output, remove_stale_partials, resolve_target
from imgpull.errors import ConfigError


def test_new_and_regular_files_are_replaced_at_commit(tmp_path: Path) -> None:
    target = tmp_path / "a.tar"
    target.write_bytes(b"old")
    out = Output(str(target))
    out.stream.write(b"new archive")
    assert target.read_bytes() == b"old"  # untouched until the end
    out.commit()
    assert target.read_bytes() == b"new archive"
    assert list(tmp_path.glob(".a.tar.*.partial")) == []


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "b.tar"
    out = Output(str(target))
    out.stream.write(b"half")
    out.abort()
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_character_devices_are_written_through(tmp_path: Path) -> None:
    path, through = resolve_target(os.devnull)
    assert through and path == Path(os.devnull)


def test_fifos_are_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert resolve_target(str(fifo)) == (fifo, True)


def test_directories_and_sockets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        resolve_target(str(tmp_path))
    sock_path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        with pytest.raises(ConfigError, match="not a regular file"):
            resolve_target(str(sock_path))
    finally:
        server.close()


def test_a_symlink_of_another_user_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    link = tmp_path / "planted.tar"
    link.symlink_to(victim)
    if os.geteuid() == 0:
        os.lchown(link, 12345, 12345)
        with pytest.raises(ConfigError, match="owned by another user"):
            resolve_target(str(link))
    own = tmp_path / "mine.tar"
    own.symlink_to(tmp_path / "target.tar")
    assert resolve_target(str(own)) == ((tmp_path / "target.tar").resolve(), False)
    assert victim.read_text() == "precious"


def test_a_missing_directory_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_target(str(tmp_path / "no" / "such" / "x.tar"))


def test_stale_partials_go_but_live_ones_stay(tmp_path: Path) -> None:
    target = tmp_path / "c.tar"
    stale = tmp_path / ".c.tar.dead0000.partial"
    stale.write_bytes(b"left by kill -9")
    live = Output(str(target))  # holds its partial locked
    remove_stale_partials(target)
    assert not stale.exists()
    assert len(list(tmp_path.glob(".c.tar.*.partial"))) == 1
    live.abort()
