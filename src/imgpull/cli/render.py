"""Progress on screen: rich bars on a terminal, plain lines when piped, nothing with -q."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from imgpull.digest import Digest
from imgpull.model import Descriptor, Platform
from imgpull.progress import SILENT, Reporter

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


class LineReporter(Reporter):
    """One line per event, for logs and pipes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def _say(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def resolved(self, reference: str, digest: str, platform: Platform | None) -> None:
        self._say(f"{reference}: resolved to {digest}" + (f" ({platform})" if platform else ""))

    def warning(self, text: str) -> None:
        self._say(f"warning: {text}")

    def blob_started(self, descriptor: Descriptor, *, cached: bool, what: str) -> None:
        if what == "layer":
            state = "already cached" if cached else f"downloading {human_size(descriptor.size)}"
            self._say(f"{descriptor.digest.short}: {state}")

    def blob_done(self, descriptor: Descriptor) -> None:
        pass

    def writing(self, destination: str, total: int) -> None:
        where = "standard output" if destination == "-" else destination
        self._say(f"writing {where}")


class BarReporter(Reporter):
    """Per-layer bars with size, speed and time left, as `docker pull` shows."""

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

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.progress.start()
        self._tasks: dict[Digest, TaskID] = {}
        self._lock = threading.Lock()

    def resolved(self, reference: str, digest: str, platform: Platform | None) -> None:
        self.progress.console.print(
            f"[bold]{reference}[/bold] {digest}" + (f" ({platform})" if platform else "")
        )

    def warning(self, text: str) -> None:
        self.progress.console.print(f"[yellow]warning:[/yellow] {text}")

    def blob_started(self, descriptor: Descriptor, *, cached: bool, what: str) -> None:
        if what != "layer":
            return
        with self._lock:
            if descriptor.digest in self._tasks:
                return
            label = f"{descriptor.digest.short} {'cached ' if cached else 'layer  '}"
            self._tasks[descriptor.digest] = self.progress.add_task(
                label, total=descriptor.size, completed=descriptor.size if cached else 0
            )

    def blob_progress(self, descriptor: Descriptor, received: int) -> None:
        task = self._tasks.get(descriptor.digest)
        if task is not None:
            self.progress.advance(task, received)

    def blob_done(self, descriptor: Descriptor) -> None:
        task = self._tasks.get(descriptor.digest)
        if task is not None:
            self.progress.update(task, completed=descriptor.size)

    def writing(self, destination: str, total: int) -> None:
        where = "standard output" if destination == "-" else destination
        self.progress.console.print(f"writing {where}")

    def close(self) -> None:
        self.progress.stop()


def make_reporter(*, quiet: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or sys.stderr
    if quiet:
        return SILENT
    if stream.isatty():
        from rich.console import Console

        return BarReporter(Console(file=stream))
    return LineReporter(stream)
