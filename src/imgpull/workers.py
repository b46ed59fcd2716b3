"""A bounded worker pool where the first failure cancels the rest."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Cancelled(Exception):
    """Raised inside a worker once another worker has failed."""


def run_parallel(
    jobs: int,
    tasks: Sequence[T],
    work: Callable[[T, threading.Event], R],
    *,
    on_cancel: Callable[[], None] | None = None,
    light: Callable[[T], bool] | None = None,
) -> list[R]:
    """Run ``work(task, cancelled)`` on a pool; the first failure cancels the rest, as
    does an interruption of the caller (Ctrl-C, SIGTERM). ``on_cancel`` is called then,
    to wake workers blocked in I/O.

    At most ``jobs`` tasks run at once. With ``light``, the tasks it holds for (small
    downloads, which wait on round trips rather than bandwidth) may also run on up to
    ``jobs`` more workers, one per light task; the others never more than ``jobs`` at
    once. Tasks start in their order, but a light one goes ahead of heavy ones while
    those have no worker free."""
    if not tasks:
        return []
    cancelled = threading.Event()
    queue = _Queue(tasks, jobs, light)

    def cancel(futures: Sequence[Future[tuple[int, R] | None]]) -> None:
        cancelled.set()
        queue.close()
        for future in futures:
            future.cancel()
        if on_cancel is not None:
            on_cancel()

    def next_task() -> tuple[int, R] | None:
        taken = queue.take()
        if taken is None:
            return None
        index, task, heavy = taken
        try:
            return index, work(task, cancelled)
        finally:
            queue.done(heavy)

    workers = max(1, min(queue.workers, len(tasks)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # One future per task; each runs whichever task may start next.
        futures = [pool.submit(next_task) for _ in tasks]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:
            cancel(futures)
            raise
        failed = next((f for f in futures if f in done and f.exception()), None)
        if failed is not None:
            cancel(futures)
            wait(futures)
            errors = [f.exception() for f in futures if f.done() and not f.cancelled()]
            real = [e for e in errors if e is not None and not isinstance(e, Cancelled)]
            raise real[0] if real else failed.exception()  # type: ignore[misc]
        results = dict(outcome for f in futures if (outcome := f.result()) is not None)
        return [results[i] for i in range(len(tasks))]


class _Queue(Generic[T]):
    """The tasks not started yet, handed out in their order, except that heavy ones
    never run more than ``jobs`` at once."""

    def __init__(self, tasks: Sequence[T], jobs: int, light: Callable[[T], bool] | None):
        self.jobs = max(1, jobs)
        self._light: deque[tuple[int, T]] = deque()
        self._heavy: deque[tuple[int, T]] = deque()
        for item in enumerate(tasks):
            (self._light if light is not None and light(item[1]) else self._heavy).append(item)
        # A worker more per light task, up to ``jobs`` more: each thread that has run a
        # download keeps memory of its own (an image of big layers and one small config
        # peaked 9 MiB higher on twice the workers).
        self.workers = self.jobs + min(self.jobs, len(self._light))
        self._heavy_running = 0
        self._closed = False
        self._changed = threading.Condition()

    def take(self) -> tuple[int, T, bool] | None:
        """The next task that may start, waiting while only heavy ones are left and
        ``jobs`` of them run; None once closed or empty."""
        with self._changed:
            while not self._closed and (self._light or self._heavy):
                free = self._heavy_running < self.jobs
                heavy_first = bool(self._heavy) and (
                    not self._light or self._heavy[0][0] < self._light[0][0]
                )
                if free and heavy_first:
                    self._heavy_running += 1
                    index, task = self._heavy.popleft()
                    return index, task, True
                if self._light:
                    index, task = self._light.popleft()
                    return index, task, False
                self._changed.wait()
            return None

    def done(self, heavy: bool) -> None:
        if heavy:
            with self._changed:
                self._heavy_running -= 1
                self._changed.notify_all()

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()
