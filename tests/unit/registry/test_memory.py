"""Endpoint memory: failures are remembered for a day, and a run whose endpoints answer
writes nothing (no file, no lock) unless an answer forgets a failure."""

from __future__ import annotations

from pathlib import Path

from imgpull.registry.memory import FAILURE_TTL, EndpointMemory


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


def test_answers_alone_write_nothing(tmp_path: Path) -> None:
    path, clock = tmp_path / "endpoints.json", Clock()
    run(path, clock, ("mirror", True), ("registry", True))
    assert not path.exists() and not (tmp_path / "endpoints.json.lock").exists()


def test_an_answer_after_a_failure_forgets_it_and_is_written_once(tmp_path: Path) -> None:
    path, clock = tmp_path / "endpoints.json", Clock()
    memory = run(path, clock, ("mirror", False))
    assert memory.failed_recently("docker.io", "mirror") == "timed out"
    clock.now += 10
    run(path, clock, ("mirror", True))
    assert EndpointMemory(path, clock=clock).failed_recently("docker.io", "mirror") is None
    before = path.stat()
    clock.now += 60
    run(path, clock, ("mirror", True))
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # not rewritten


def test_a_failure_is_forgotten_after_a_day(tmp_path: Path) -> None:
    path, clock = tmp_path / "endpoints.json", Clock()
    run(path, clock, ("mirror", False))
    clock.now += FAILURE_TTL + 1
    assert EndpointMemory(path, clock=clock).failed_recently("docker.io", "mirror") is None
