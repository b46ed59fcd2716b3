"""The bounded worker pool: results in order, the first failure cancels the rest."""

from __future__ import annotations

import threading
import time

import pytest

from imgpull.workers import Cancelled, run_parallel


def test_results_keep_the_order_of_the_tasks() -> None:
    assert run_parallel(3, [3, 1, 2], lambda n, _: n * 10) == [30, 10, 20]
    assert run_parallel(4, [], lambda n, _: n) == []


def test_the_first_real_failure_is_raised_and_the_rest_see_cancellation() -> None:
    saw_cancel = threading.Event()
    cancels: list[int] = []

    def work(n: int, cancelled: threading.Event) -> int:
        if n == 0:
            raise ValueError("boom")
        for _ in range(200):
            if cancelled.is_set():
                saw_cancel.set()
                raise Cancelled
            time.sleep(0.01)
        return n

    with pytest.raises(ValueError, match="boom"):
        run_parallel(2, [0, 1, 2], work, on_cancel=lambda: cancels.append(1))
    assert saw_cancel.is_set() and cancels == [1]


def test_pool_size_is_bounded() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def work(n: int, _: threading.Event) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    run_parallel(3, list(range(12)), work)
    assert most <= 3
