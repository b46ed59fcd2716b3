"""Replacing a file's content atomically, on Linux, macOS and Windows."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile

from imgpull.errors import ConfigError

__all__ = ["write_atomic"]


def _keep_owner(path: str, status: os.stat_result) -> None:
    """Give ``path`` the owner of the file it replaces, where the OS has owners and
    this process may (only root may give a file away; otherwise the owner stays ours)."""
    if sys.platform == "win32":
        return
    if (status.st_uid, status.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):
            os.chown(path, status.st_uid, status.st_gid)


def write_atomic(path: str, text: str) -> None:
    """Replace ``path``'s content with ``text`` (UTF-8) atomically, keeping its mode
    (and its owner, where permitted).

    The temporary file is created beside the (symlink-resolved) target and moved over it
    with ``os.replace``; on failure the original is untouched and ConfigError is raised.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    try:
        status = os.stat(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=directory)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IMODE(status.st_mode))
        _keep_owner(tmp, status)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
