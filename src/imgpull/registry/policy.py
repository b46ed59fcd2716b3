"""When to wait, how long, and when to give up: the deadline of an operation, the retry
policy, and the low-speed rule. Pure logic with an injectable clock; the transport owns
every use of it, and nothing else in imgpull sleeps or loops on errors.

    deadline = Deadline(settings.timeout)         # --timeout for the whole command
    policy = RetryPolicy(retries=3)
    policy.run(lambda attempt: fetch(), deadline=deadline, what="GET /v2/")
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

from imgpull.errors import ImgpullError, NetworkError

T = TypeVar("T")

Clock = Callable[[], float]
Sleeper = Callable[[float], None]

RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
# Only requests that can be repeated safely are retried on a failed answer.
IDEMPOTENT: Final = frozenset({"GET", "HEAD"})
MAX_BACKOFF: Final = 30.0


class Deadline:
    """The time an operation may take (``--timeout``); None means no limit.

    Every wait of the operation asks it: connects, reads and sleeps are cut to what is
    left, and once nothing is left :meth:`check` raises a NetworkError saying so.
    """

    def __init__(
        self,
        seconds: float | None,
        *,
        clock: Clock = time.monotonic,
        sleeper: Sleeper = time.sleep,
        label: str | None = None,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sleeper = sleeper
        self._end = None if seconds is None else clock() + seconds
        self.label = label or (f"--timeout {seconds:g} s" if seconds is not None else "")

    def remaining(self) -> float | None:
        """Seconds left (never negative), or None without a limit."""
        if self._end is None:
            return None
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def check(self) -> None:
        if self.expired:
            raise self.error()

    def error(self) -> NetworkError:
        if self.parent is not None and not self.parent.expired:
            share = NetworkError(f"no answer within {self.label}", "check the network path")
            share.stalled = True
            return share
        root = self
        while root.parent is not None:
            root = root.parent
        return NetworkError(
            f"gave up: the operation took longer than {root.label}",
            "raise --timeout, or check the network path",
            temporary=False,
        )

    def cap(self, seconds: float) -> float:
        """``seconds``, or less when the deadline comes first."""
        left = self.remaining()
        return seconds if left is None else min(seconds, left)

    def sleep(self, seconds: float) -> None:
        """Sleep, but never past the deadline; raise if it has passed."""
        self.check()
        self._sleeper(self.cap(seconds))
        self.check()

    def within(self, seconds: float | None, label: str) -> Deadline:
        """A deadline that ends after ``seconds`` or with this one, whichever is first.
        Passing it while this one has time left is a temporary failure (the caller moves
        on to another endpoint); passing this one is this one's error."""
        if seconds is None:
            return self
        left = self.remaining()
        own = seconds if left is None else min(seconds, left)
        child = Deadline(own, clock=self._clock, sleeper=self._sleeper, label=label)
        child.parent = self
        return child

    parent: Deadline | None = None


def retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when
    absent or unreadable (our own backoff applies then)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which failures are retried, how often, and how long to wait in between.

    Backoff is exponential with full jitter (0.5 s, 1 s, 2 s ... capped at 30 s), or
    what the server asks in ``Retry-After``. A server that asks for longer than the cap
    is not waited for: the answer is reported instead of hanging the run.
    """

    retries: int = 3
    statuses: frozenset[int] = RETRY_STATUSES
    methods: frozenset[str] = IDEMPOTENT
    base: float = 0.5
    cap: float = MAX_BACKOFF
    rng: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def backoff(self, attempt: int) -> float:
        return self.rng(0, min(self.cap, self.base * 2**attempt))

    def retries_status(self, method: str, status: int) -> bool:
        return method in self.methods and status in self.statuses

    def retries_error(self, method: str, error: ImgpullError, *, sent: bool = True) -> bool:
        """A temporary failure is retried for idempotent requests, and for any request
        that surely never reached the server (``sent`` False: the connection failed)."""
        return error.temporary and (method in self.methods or not sent)

    def delay(self, attempt: int, asked: float | None) -> float | None:
        """How long to wait before attempt ``attempt + 1``; None: do not wait that long."""
        if asked is not None:
            return None if asked > self.cap else asked
        return self.backoff(attempt)

    def run(
        self,
        action: Callable[[int], T],
        *,
        deadline: Deadline,
        retryable: Callable[[ImgpullError], bool] = lambda error: error.temporary,
        on_retry: Callable[[ImgpullError, float], None] | None = None,
    ) -> T:
        """``action(attempt)`` until it succeeds, a failure is not retryable, the retries
        are used up, or the deadline passes (then the deadline's error, with the last
        failure as its cause)."""
        for attempt in range(self.retries + 1):
            deadline.check()
            try:
                return action(attempt)
            except ImgpullError as error:
                if attempt == self.retries or not retryable(error):
                    raise
                if deadline.expired:
                    raise deadline.error() from error
                pause = self.backoff(attempt)
                if on_retry is not None:
                    on_retry(error, pause)
                try:
                    deadline.sleep(pause)
                except NetworkError as expired:
                    raise expired from error
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class SpeedRule:
    """curl's ``--speed-limit``/``--speed-time``: a transfer that moves fewer than
    ``limit`` bytes per second, averaged over ``window`` seconds, is abandoned (and
    resumed elsewhere where that is possible). A stall is the case of zero bytes."""

    limit: float = 1024.0
    window: float = 30.0

    def too_slow(self, moved: int, elapsed: float) -> bool:
        """``moved`` bytes in the last ``elapsed`` seconds (at most ``window``)."""
        return elapsed >= self.window and moved < self.limit * elapsed

    def describe(self) -> str:
        if self.limit <= 1:
            return f"no data for {self.window:g} s"
        return f"slower than {_rate(self.limit)} for {self.window:g} s"


def _rate(bytes_per_second: float) -> str:
    for unit, size in (("MB/s", 1e6), ("kB/s", 1e3)):
        if bytes_per_second >= size:
            return f"{bytes_per_second / size:g} {unit}"
    return f"{bytes_per_second:g} B/s"
