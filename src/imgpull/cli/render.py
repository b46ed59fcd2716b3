"""Progress on screen: rich bars on a terminal, plain lines when piped, nothing with -q.

Every string that came from a server or an archive (names, warnings) is printed through
:func:`imgpull.text.shown`, so no terminal escape sequence a server sends reaches the
terminal raw.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from imgpull.digest import Digest
from imgpull.model import Descriptor, Platform
from imgpull.progress import SILENT, Reporter
from imgpull.text import shown

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def _what(reference: str, digest: str, platform: Platform | None, kind: str) -> str:
    detail = f" ({platform})" if platform else ""
    if kind:
        detail = f" (artifact: {shown(kind, 80)})"
    return f"{shown(reference)}: resolved to {digest}{detail}"


class LineReporter(Reporter):
    """One line per event, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def resolved(self, reference: str, digest: str, platform: Platform | None, kind: str) -> None:
        self._say(_what(reference, digest, platform, kind))

    def warning(self, text: str) -> None:
        self._say(f"warning: {shown(text, 400)}")

    def started(self, descriptor: Descriptor, action: str) -> None:
        self._say(f"{descriptor.digest.short}: {action} {human_size(descriptor.size)}")

    def skipped(self, descriptor: Descriptor, reason: str) -> None:
        words = {"cached": "already cached", "exists": "exists"}.get(reason, reason)
        self._say(f"{descriptor.digest.short}: {shown(words)}")

    def restarted(self, descriptor: Descriptor) -> None:
        self._say(f"{descriptor.digest.short}: wrong bytes; starting again elsewhere")

    def writing(self, destination: str, total: int) -> None:
        self._say(f"writing {destination}")


class BarReporter(Reporter):
    """Per-blob bars with size, speed and time left, as `docker pull` shows."""

    def __init__(self, console: Console) -> None:
        # rich costs a tenth of a second to import: only terminals pay for it.
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.bars.start()
        self._tasks: dict[Digest, TaskID] = {}
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        from rich.markup import escape

        self.bars.console.print(escape(text))

    def resolved(self, reference: str, digest: str, platform: Platform | None, kind: str) -> None:
        self._print(_what(reference, digest, platform, kind))

    def warning(self, text: str) -> None:
        self._print(f"warning: {shown(text, 400)}")

    def _task(self, descriptor: Descriptor, label: str, done: bool) -> None:
        with self._lock:
            if descriptor.digest in self._tasks:
                return
            self._tasks[descriptor.digest] = self.bars.add_task(
                f"{descriptor.digest.short} {label:<12}",
                total=descriptor.size,
                completed=descriptor.size if done else 0,
            )

    def started(self, descriptor: Descriptor, action: str) -> None:
        self._task(descriptor, action, False)

    def skipped(self, descriptor: Descriptor, reason: str) -> None:
        label = reason if len(reason) <= 12 else "mounted"
        self._task(descriptor, label, True)

    def progress(self, descriptor: Descriptor, count: int) -> None:
        task = self._tasks.get(descriptor.digest)
        if task is not None:
            self.bars.advance(task, count)

    def restarted(self, descriptor: Descriptor) -> None:
        task = self._tasks.get(descriptor.digest)
        if task is not None:
            self.bars.update(task, completed=0)

    def finished(self, descriptor: Descriptor) -> None:
        task = self._tasks.get(descriptor.digest)
        if task is not None:
            self.bars.update(task, completed=descriptor.size)

    def writing(self, destination: str, total: int) -> None:
        self._print(f"writing {destination}")

    def close(self) -> None:
        self.bars.stop()


def make_reporter(*, quiet: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    if quiet:
        return SILENT
    if stream.isatty():
        from rich.console import Console

        return BarReporter(Console(file=stream))
    return LineReporter(stream)
