"""Where an archive is written, safely.

* A new path or a regular file: the archive is written to a temporary file beside it
  (``.NAME.RANDOM.partial``, locked while written) and renamed over it only once
  complete, so a failed or interrupted run leaves nothing at the path and an existing
  file untouched. Partials of the same path left by a killed run (unlocked) are removed.
* A character device (``/dev/null``) or a FIFO: written through, never replaced, and only
  once every blob is verified (as for standard output), so a reader never gets a
  half-pulled image.
* A directory, socket or block device: refused.
* A symbolic link is followed only when it belongs to the user (or root), as Linux's
  ``fs.protected_symlinks`` has it for shared directories; another's link is refused, so
  a link planted in /tmp cannot make us replace its target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import BinaryIO

from imgpull.errors import ArchiveError, ConfigError

STDOUT = "-"

if sys.platform == "win32":
    import msvcrt

    def _try_lock(handle: BinaryIO) -> bool:
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(handle: BinaryIO) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True


def _owner_ok(info: os.stat_result) -> bool:
    getuid = getattr(os, "getuid", None)
    return getuid is None or info.st_uid in (0, getuid())


def resolve_target(text: str) -> tuple[Path, bool]:
    """The file to write and whether it is written through (a device or FIFO); a
    ConfigError for a target that must not be written."""
    path = Path(text)
    try:
        link = path.lstat()
    except FileNotFoundError:
        link = None
    except OSError as exc:
        raise ConfigError(f"cannot use output {text}: {exc.strerror}") from exc
    if link is not None and stat.S_ISLNK(link.st_mode):
        if not _owner_ok(link):
            raise ConfigError(
                f"output {text} is a symbolic link owned by another user; not following it",
                "remove it or choose another path with -o",
            )
        path = path.resolve()
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise ConfigError(f"cannot use output {text}: {exc.strerror}") from exc
    if info is None or stat.S_ISREG(info.st_mode):
        parent = path.resolve().parent
        if not parent.is_dir():
            raise ConfigError(
                f"cannot write {text}: directory {parent} does not exist",
                "create it or choose another path with -o",
            )
        return path.resolve(), False
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return path, True
    kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
    raise ConfigError(f"output {text} is {kind}", "name a file, e.g. -o image.tar")


class Output:
    """An archive being written; ``commit`` makes it appear, ``abort`` leaves nothing."""

    def __init__(self, target: str, stdout: BinaryIO | None = None) -> None:
        self.target = target
        self.through = True
        self._temp: Path | None = None
        self._final: Path | None = None
        if target == STDOUT:
            if stdout is None:
                stdout = sys.stdout.buffer
            if stdout.isatty():
                raise ConfigError(
                    "refusing to write an archive to a terminal",
                    "redirect standard output, e.g. `imgpull pull IMAGE -o - | docker load`",
                )
            self.stream: BinaryIO = stdout
            return
        path, self.through = resolve_target(target)
        if self.through:
            self.stream = self._open(path, "wb")
            return
        self._final = path
        remove_stale_partials(path)
        # Not mkstemp: its 0600 mode would stick to the archive; "x" honours the umask.
        self._temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial"
        self.stream = self._open(self._temp, "xb")
        _try_lock(self.stream)

    @staticmethod
    def _open(path: Path, mode: str) -> BinaryIO:
        try:
            return path.open(mode)  # type: ignore[return-value]
        except OSError as exc:
            raise ArchiveError(
                f"cannot write {path}: {exc.strerror}", "choose another path with -o"
            ) from exc

    @property
    def shown(self) -> str:
        return "standard output" if self.target == STDOUT else self.target

    @property
    def partial(self) -> Path | None:
        """The hidden file being written, when the archive goes to a regular file."""
        return self._temp

    def commit(self) -> None:
        try:
            self.stream.flush()
            if self.target == STDOUT:
                return
            if self._temp is None:
                self.stream.close()
                return
            assert self._final is not None
            if sys.platform == "win32":
                self.stream.close()  # Windows renames no file that is open
            os.replace(self._temp, self._final)
            self.stream.close()  # after the rename elsewhere: locked until it is in place
        except BrokenPipeError as exc:
            raise ArchiveError(f"the reader of {self.shown} went away") from exc
        except OSError as exc:
            self.abort()
            raise ArchiveError(f"cannot write {self.target}: {exc.strerror or exc}") from exc

    def abort(self) -> None:
        if self.target == STDOUT:
            return
        with contextlib.suppress(OSError):
            self.stream.close()
        if self._temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._temp)


def remove_stale_partials(path: Path) -> None:
    """Remove ``.NAME.*.partial`` files of ``path`` that no running imgpull holds."""
    try:
        candidates = list(path.parent.glob(f".{path.name}.*.partial"))
    except OSError:
        return
    for partial in candidates:
        try:
            if not stat.S_ISREG(partial.lstat().st_mode):
                continue
            with partial.open("rb") as handle:
                if not _try_lock(handle):
                    continue  # another run is writing it
            partial.unlink()
        except OSError:
            continue


class StreamOutput:
    """An archive written to a stream the caller owns (written as blobs come)."""

    through = False
    shown = "the stream"

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def commit(self) -> None:
        self.stream.flush()

    def abort(self) -> None:
        pass
