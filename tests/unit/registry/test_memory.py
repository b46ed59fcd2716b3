"""Endpoint memory: failures are remembered for a day, and a run whose endpoints keep
answering writes nothing (no file, no lock)."""

from __future__ import annotations

import json
from pathlib import Path

from imgpull.registry.memory import FAILURE_TTL, SUCCESS_REFRESH, EndpointMemory


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def run(path: Path, clock: Clock, *records: tuple[str, bool]) -> EndpointMemory:
    memory = EndpointMemory(path, clock=clock)
    for label, ok in records:
        memory.record("docker.io", label, ok=ok, why="timed out")
    memory.save()
    return memory


def test_a_first_answer_is_written_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    path, clock = tmp_path / "endpoints.json", Clock()
    run(path, clock, ("mirror", True))
    assert json.loads(path.read_text())["registries"]["docker.io"]["mirror"]["ok"] == clock.now
    before = path.stat()
    clock.now += 60
    run(path, clock, ("mirror", True))
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_an_answer_after_a_failure_forgets_it(tmp_path: Path) -> None:
    path, clock = tmp_path / "endpoints.json", Clock()
    run(path, clock, ("mirror", True))
    clock.now += 10
    memory = run(path, clock, ("mirror", False))
    assert memory.failed_recently("docker.io", "mirror") == "timed out"
    clock.now += 10
    run(path, clock, ("mirror", True))
    assert EndpointMemory(path, clock=clock).failed_recently("docker.io", "mirror") is None


def test_a_failure_is_forgotten_after_a_day_and_old_answers_are_refreshed(tmp_path: Path) -> None:
    path, clock = tmp_path / "endpoints.json", Clock()
    run(path, clock, ("mirror", False), ("registry", True))
    clock.now += max(FAILURE_TTL, SUCCESS_REFRESH) + 1
    memory = EndpointMemory(path, clock=clock)
    assert memory.failed_recently("docker.io", "mirror") is None
    run(path, clock, ("registry", True))
    entry = json.loads(path.read_text())["registries"]["docker.io"]["registry"]
    assert entry["ok"] == clock.now
