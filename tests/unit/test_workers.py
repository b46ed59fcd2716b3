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


class Gauge:
    """How many tasks of each kind ran at once, at most."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = {True: 0, False: 0}
        self.most = {True: 0, False: 0, "all": 0}
        self.order: list[int] = []

    def work(self, n: int, _: threading.Event) -> int:
        light = n % 2 == 1
        with self.lock:
            self.order.append(n)
            self.running[light] += 1
            self.most[light] = max(self.most[light], self.running[light])
            self.most["all"] = max(self.most["all"], sum(self.running.values()))
        time.sleep(0.03)
        with self.lock:
            self.running[light] -= 1
        return n


def odd(n: int) -> bool:
    return n % 2 == 1


def test_light_tasks_may_use_as_many_workers_again_heavy_ones_never() -> None:
    gauge = Gauge()
    assert run_parallel(3, list(range(24)), gauge.work, light=odd) == list(range(24))
    assert gauge.most[False] <= 3  # heavy (even) tasks: -j at most
    assert gauge.most["all"] <= 6


def test_only_light_tasks_run_on_twice_the_workers() -> None:
    together = threading.Barrier(4, timeout=5)  # broken unless 4 run at once

    def work(n: int, _: threading.Event) -> int:
        together.wait()
        return n

    assert run_parallel(2, [1, 3, 5, 7, 9, 11, 13, 15], work, light=odd)[-1] == 15


def test_only_heavy_tasks_start_in_order_on_jobs_workers() -> None:
    gauge = Gauge()
    run_parallel(2, [0, 2, 4, 6, 8, 10], gauge.work, light=odd)
    assert gauge.most[False] == 2 and gauge.order == [0, 2, 4, 6, 8, 10]


def test_a_light_task_goes_ahead_while_heavy_ones_wait_for_a_worker() -> None:
    gauge = Gauge()
    run_parallel(1, [0, 2, 4, 1], gauge.work, light=odd)
    assert set(gauge.order[:2]) == {0, 1}  # 1 did not wait behind 2 and 4


def test_a_failure_wakes_workers_waiting_for_a_heavy_slot() -> None:
    def work(n: int, cancelled: threading.Event) -> int:
        if n == 0:
            time.sleep(0.05)
            raise ValueError("boom")
        if cancelled.wait(2 if n % 2 == 0 else 0.01):
            raise Cancelled
        return n

    started = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        run_parallel(1, [0, 2, 4, 6, 1, 3], work, light=odd)
    assert time.monotonic() - started < 1.5


def test_one_light_task_among_heavy_ones_adds_one_worker() -> None:
    gauge = Gauge()
    run_parallel(2, [0, 2, 4, 6, 8, 1], gauge.work, light=odd)
    assert gauge.most["all"] <= 3 and gauge.most[False] <= 2
