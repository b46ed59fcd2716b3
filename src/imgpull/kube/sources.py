"""Reading the inputs of ``images`` and ``rewrite``: files, directories and standard input.

Every input is read in binary, in chunks, with a size cap (:data:`DEFAULT_MAX_BYTES`,
``max_bytes=``), so ``/dev/zero``, a runaway pipe or a huge file ends with one line and
bounded memory; NUL bytes (binary files, UTF-16 text) are refused at the first chunk that
has one. Text must be UTF-8 and is decoded without newline translation, so CRLF files
stay CRLF.

``keep_going``: with a ``failures`` list, an input that cannot be read is recorded there
and skipped; without one, the first problem raises ConfigError.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

from imgpull.errors import ConfigError, UsageError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "STDIN",
    "STDIN_NAME",
    "YAML_SUFFIXES",
    "Failure",
    "Source",
    "iter_sources",
    "read_sources",
]

STDIN: Final = "-"
#: How standard input is named in messages.
STDIN_NAME: Final = "standard input"
#: The largest input read (per file, and for standard input): far above any real manifest.
DEFAULT_MAX_BYTES: Final = 64 * 1024 * 1024
YAML_SUFFIXES: Final = (".yaml", ".yml")
_CHUNK: Final = 1024 * 1024
_UTF16_32_BOMS: Final = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


@dataclass(frozen=True)
class Source:
    """One input: ``name`` as given (``-`` for standard input) and its whole ``text``.

    ``path`` is the file to write back to, None for standard input.
    """

    name: str
    text: str
    path: str | None = None

    @property
    def label(self) -> str:
        """The name for messages: ``standard input`` for ``-``."""
        return STDIN_NAME if self.path is None and self.name == STDIN else self.name


@dataclass(frozen=True)
class Failure:
    """An input skipped under ``keep_going``: its name and why."""

    name: str
    error: ConfigError


_UNITS: Final = (
    ("GiB", 1024**3),
    ("GB", 1000**3),
    ("MiB", 1024**2),
    ("MB", 1000**2),
    ("KiB", 1024),
    ("kB", 1000),
)


def _size(limit: int) -> str:
    for unit, scale in _UNITS:
        if limit >= scale and limit % scale == 0:
            return f"{limit // scale} {unit}"
    return f"{limit} bytes"


def _too_big(label: str, limit: int) -> ConfigError:
    return ConfigError(
        f"{label}: larger than the {_size(limit)} limit for YAML input",
        "split it, or raise the limit with --max-size",
    )


def _check_chunk(label: str, chunk: bytes, offset: int) -> None:
    if offset == 0 and chunk.startswith(_UTF16_32_BOMS):
        raise ConfigError(
            f"{label}: UTF-16 or UTF-32 text, not UTF-8",
            "Kubernetes manifests are UTF-8; convert it with iconv -f UTF-16 -t UTF-8",
        )
    nul = chunk.find(b"\0")
    if nul >= 0:
        raise ConfigError(
            f"{label}: a binary file, not YAML text (NUL byte at offset {offset + nul})",
            "give Kubernetes YAML files",
        )


def _read_limited(handle: IO[Any], label: str, limit: int) -> str:
    """All of ``handle`` (binary or text) as text; ConfigError past ``limit`` bytes."""
    chunks: list[Any] = []
    total = 0
    while chunk := handle.read(min(_CHUNK, limit + 1 - total)):
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8", "surrogatepass")
        _check_chunk(label, chunk, total)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise _too_big(label, limit)
    return _decode(label, b"".join(chunks))


def _decode(label: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{label}: not UTF-8 text (invalid byte 0x{data[exc.start]:02x} on line {line}, "
            f"at offset {exc.start})",
            "Kubernetes manifests are UTF-8; convert the file with iconv",
        ) from None


def _read_file(name: str, limit: int) -> str:
    try:
        with open(name, "rb") as handle:
            return _read_limited(handle, name, limit)
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file or directory") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _read_stdin(stdin: IO[Any], limit: int) -> str:
    try:
        return _read_limited(getattr(stdin, "buffer", stdin), STDIN_NAME, limit)
    except OSError as exc:
        raise ConfigError(f"{STDIN_NAME}: cannot read: {exc.strerror or exc}") from None


def _yaml_files(directory: str) -> list[str]:
    """``*.yaml`` and ``*.yml`` under ``directory`` in ``filepath.Walk`` order (the order
    ``kubectl apply -R -f`` uses): entries by name, subdirectories read where they sort.
    Names starting with ``.`` are skipped; symbolic links to directories are not followed.
    """
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot read: {exc.strerror or exc}") from None
    found: list[str] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            found.extend(_yaml_files(entry.path))
        elif entry.name.endswith(YAML_SUFFIXES) and entry.is_file():
            found.append(entry.path)
    return found


def _names(given: str) -> list[str]:
    if not os.path.isdir(given):
        return [given]
    names = _yaml_files(given)
    if not names:
        raise ConfigError(f"{given}: no *.yaml or *.yml files in this directory")
    return names


def _check_paths(paths: Sequence[str]) -> None:
    if not paths:
        raise UsageError(
            "no input given", "name YAML files or directories, or - for standard input"
        )
    if list(paths).count(STDIN) > 1:
        raise UsageError("standard input (-) is given more than once")


def iter_sources(
    paths: Sequence[str],
    stdin: IO[Any],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    failures: list[Failure] | None = None,
) -> Iterator[Source]:
    """Read every input, one at a time: files, directories (``*.yaml``/``*.yml``,
    recursively, in the order ``kubectl apply -R`` reads them) and ``-`` for ``stdin``.
    A file reached twice (by a link, or named and in a directory) is read once, under its
    first name.

    ConfigError for a missing or unreadable path, a directory without YAML files, an
    input over ``max_bytes``, binary or non-UTF-8 text -- or, with ``failures``, that
    input is recorded there and skipped. UsageError for no input or ``-`` given twice.
    """
    _check_paths(paths)
    seen: set[str] = set()
    for given in paths:
        try:
            if given == STDIN:
                yield Source(STDIN, _read_stdin(stdin, max_bytes), None)
                continue
            names = _names(given)
        except ConfigError as exc:
            if failures is None:
                raise
            failures.append(Failure(STDIN_NAME if given == STDIN else given, exc))
            continue
        for name in names:
            key = os.path.realpath(name)
            if key in seen:
                continue
            seen.add(key)
            try:
                text = _read_file(name, max_bytes)
            except ConfigError as exc:
                if failures is None:
                    raise
                failures.append(Failure(name, exc))
                continue
            yield Source(name, text, name)


def read_sources(
    paths: Sequence[str], stdin: IO[Any], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> list[Source]:
    """Every input read (see :func:`iter_sources`); the first problem raises ConfigError."""
    return list(iter_sources(paths, stdin, max_bytes=max_bytes))
