"""The retry policy, the deadline and the low-speed rule, on a fake clock."""

from __future__ import annotations

import email.utils
import time

import pytest

from imgpull.errors import ImgpullError, NetworkError, NotFoundError
from imgpull.registry.policy import Deadline, RetryPolicy, SpeedRule, retry_after


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def deadline(seconds: float | None, clock: FakeClock) -> Deadline:
    return Deadline(seconds, clock=clock, sleeper=clock.sleep)


def test_deadline_counts_down_and_then_refuses() -> None:
    clock = FakeClock()
    limit = deadline(10, clock)
    assert limit.remaining() == 10
    clock.now += 4
    assert limit.remaining() == 6
    assert limit.cap(30) == 6 and limit.cap(2) == 2
    clock.now += 6
    assert limit.expired
    with pytest.raises(NetworkError, match="--timeout 10 s") as caught:
        limit.check()
    assert not caught.value.temporary  # retrying cannot help


def test_no_deadline_never_expires() -> None:
    clock = FakeClock()
    limit = deadline(None, clock)
    clock.now += 10**9
    assert limit.remaining() is None and not limit.expired and limit.cap(5) == 5


def test_sleep_never_passes_the_deadline() -> None:
    clock = FakeClock()
    limit = deadline(3, clock)
    with pytest.raises(NetworkError):
        limit.sleep(60)
    assert clock.slept == [3]


def test_within_is_the_earlier_of_both() -> None:
    clock = FakeClock()
    parent = deadline(10, clock)
    assert parent.within(4, "an endpoint").remaining() == 4
    assert parent.within(20, "an endpoint").remaining() == 10
    assert parent.within(None, "x") is parent


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(rng=lambda low, high: high)  # the top of each range
    assert [policy.backoff(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    low = RetryPolicy(rng=lambda low, high: low)
    assert low.backoff(5) == 0


def test_retry_after_wins_unless_it_asks_too_much() -> None:
    policy = RetryPolicy(rng=lambda low, high: high)
    assert policy.delay(0, 7.0) == 7.0
    assert policy.delay(0, 31.0) is None  # report the answer, do not hang
    assert policy.delay(2, None) == 2


@pytest.mark.parametrize(
    ("method", "status", "retried"),
    [("GET", 503, True), ("HEAD", 429, True), ("GET", 404, False), ("PUT", 503, False),
     ("POST", 502, False), ("GET", 408, True), ("GET", 500, True), ("GET", 501, False)],
)  # fmt: skip
def test_which_answers_are_retried(method: str, status: int, retried: bool) -> None:
    assert RetryPolicy().retries_status(method, status) is retried


def test_errors_are_retried_for_safe_requests_or_ones_never_sent() -> None:
    policy = RetryPolicy()
    refused = NetworkError("refused")
    assert policy.retries_error("GET", refused)
    assert not policy.retries_error("PUT", refused)
    assert policy.retries_error("PUT", refused, sent=False)
    assert not policy.retries_error("GET", NotFoundError("gone"))


def test_run_retries_temporary_failures_then_gives_up() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def flaky(attempt: int) -> str:
        calls.append(attempt)
        raise NetworkError("reset")

    policy = RetryPolicy(retries=2, rng=lambda low, high: high)
    with pytest.raises(NetworkError, match="reset"):
        policy.run(flaky, deadline=deadline(None, clock))
    assert calls == [0, 1, 2]
    assert clock.slept == [0.5, 1]


def test_run_stops_at_a_permanent_failure() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def missing(attempt: int) -> str:
        calls.append(attempt)
        raise NotFoundError("no such tag")

    with pytest.raises(NotFoundError):
        RetryPolicy(retries=5).run(missing, deadline=deadline(None, clock))
    assert calls == [0] and clock.slept == []


def test_run_ends_with_the_deadline_not_after_it() -> None:
    clock = FakeClock()
    policy = RetryPolicy(retries=100, rng=lambda low, high: high)

    def slow(attempt: int) -> str:
        clock.now += 2  # every attempt takes two seconds
        raise NetworkError("timed out")

    with pytest.raises(NetworkError, match="--timeout 10 s") as caught:
        policy.run(slow, deadline=deadline(10, clock))
    assert isinstance(caught.value.__cause__, ImgpullError)
    assert clock.now <= 1010 + 2  # no attempt starts, nor sleep ends, after the deadline


def test_run_returns_the_first_success() -> None:
    clock = FakeClock()
    answers = iter([NetworkError("reset"), "done"])

    def once(attempt: int) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert RetryPolicy(rng=lambda low, high: 0.0).run(once, deadline=deadline(5, clock)) == "done"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("5", 5.0), ("-3", 0.0), ("soon", None), ("1.5", 1.5)],
)
def test_retry_after_values(value: str | None, expected: float | None) -> None:
    assert retry_after(value) == expected


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 < (retry_after(when) or 0) <= 60


@pytest.mark.parametrize(
    ("moved", "elapsed", "slow"),
    [(0, 29.9, False), (0, 30, True), (30_000, 30, True), (40_000, 30, False)],
)
def test_speed_rule(moved: int, elapsed: float, slow: bool) -> None:
    assert SpeedRule(limit=1024, window=30).too_slow(moved, elapsed) is slow


def test_speed_rule_describes_itself() -> None:
    assert SpeedRule(1024, 30).describe() == "slower than 1.024 kB/s for 30 s"
    assert SpeedRule(0, 5).describe() == "no data for 5 s"
