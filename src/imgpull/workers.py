"""A bounded worker pool where the first failure cancels the rest."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

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
) -> list[R]:
    """Run ``work(task, cancelled)`` on a pool; the first failure cancels the rest, as
    does an interruption of the caller (Ctrl-C, SIGTERM). ``on_cancel`` is called then,
    to wake workers blocked in I/O."""
    if not tasks:
        return []
    cancelled = threading.Event()

    def cancel(futures: Sequence[Future[R]]) -> None:
        cancelled.set()
        for future in futures:
            future.cancel()
        if on_cancel is not None:
            on_cancel()

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(tasks)))) as pool:
        futures: list[Future[R]] = [pool.submit(work, t, cancelled) for t in tasks]
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
        return [f.result() for f in futures]
