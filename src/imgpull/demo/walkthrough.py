"""The demo, step by step: build an image offline, push it to a throwaway registry with
imgpull, pull it back into an archive with imgpull, then load and run that archive with
every container engine that answers.

Everything lives in one temporary directory that is removed, and the registry stopped,
however the demo ends (an error, Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from imgpull.config.settings import Settings
from imgpull.demo.engines import ENGINES, EngineOutcome, try_engine
from imgpull.demo.image import (
    BUSYBOX,
    DEMO_REPOSITORY,
    DEMO_TAG,
    read_static_busybox,
    write_layout,
)
from imgpull.model import Platform

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoResult:
    reference: str  # where the throwaway registry served the image
    digest: str  # of the image manifest, as pushed and as pulled
    archive: Path | None  # the archive kept (``output``); None when it was removed
    outcomes: tuple[EngineOutcome, ...]

    @property
    def ok(self) -> bool:
        """No engine that answered failed to load or run the image."""
        return all(outcome.status != "failed" for outcome in self.outcomes)

    @property
    def ran_with(self) -> tuple[str, ...]:
        return tuple(o.engine for o in self.outcomes if o.status == "ran")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C, so the cleanup below runs for both."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _library_temporaries_in(directory: Path) -> Iterator[None]:
    """Meanwhile imgpull's own temporary files (push stages an archive in a directory of
    its own) go inside the demo's directory, so that removing it takes them too, even when
    an interrupt cuts their own cleanup short. ``tempfile.tempdir`` is process-wide: fine
    for a command, which is what the demo is."""
    previous, tempfile.tempdir = tempfile.tempdir, str(directory)
    try:
        yield
    finally:
        tempfile.tempdir = previous


def run(
    *,
    output: Path | None = None,
    engines: Sequence[str] = ENGINES,
    busybox: Path = BUSYBOX,
    say: Say = _stderr,
) -> DemoResult:
    """Run the demo; ``output`` keeps the pulled archive there, ``engines`` limits which
    engines are tried (default: docker, podman, ctr). Raises :class:`DemoError` when
    ``docker-registry`` or a static busybox is missing."""
    from imgpull.demo.registry import find_registry_binary

    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        raise ValueError(f"unknown engines {unknown}; choose from {ENGINES}")
    registry_binary = find_registry_binary()
    busybox_bytes = read_static_busybox(busybox)
    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="imgpull-demo-") as tmp:
        work = Path(tmp)
        platform = Platform.host()
        say(f"==> building {DEMO_REPOSITORY}:{DEMO_TAG} ({platform}) offline from {busybox}")
        image = write_layout(work / "layout", busybox_bytes, platform)
        archive = output if output is not None else work / "demo-hello.tar"
        with _library_temporaries_in(work):
            reference = _push_and_pull(work, registry_binary, archive, say)
        say("==> stopped the registry: the engines load the archive alone")
        outcomes = tuple(_each_engine(engines, archive, reference, say))
    result = DemoResult(reference, image.manifest_digest, output, outcomes)
    _summary(result, say)
    return result


def _push_and_pull(work: Path, registry_binary: str, archive: Path, say: Say) -> str:
    """Serve, push the layout in ``work``, pull it into ``archive``; the reference used."""
    # Imported here, not above: `imgpull --help` should not pay for the demo's imports.
    from imgpull.demo.registry import ThrowawayRegistry
    from imgpull.ops.pull import pull
    from imgpull.ops.push import push

    settings = Settings(use_cache=False)  # loopback only: no proxies, mirrors or cache
    with ThrowawayRegistry(work / "registry", registry_binary) as registry:
        say(f"==> started a throwaway registry: docker-registry on {registry.host}")
        reference = f"{registry.host}/{DEMO_REPOSITORY}:{DEMO_TAG}"
        say(f"==> pushing it with imgpull: imgpull push {work / 'layout'} {reference}")
        pushed = push(work / "layout", reference, settings=settings)
        say(f"    pushed {pushed[0].digest}")
        say(f"==> pulling it with imgpull: imgpull pull {reference} -o {archive}")
        pulled = pull([reference], archive, settings=settings)
        say(f"    {_megabytes(pulled.archive_size)}, {pulled.images[0].digest}")
    return reference


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _each_engine(
    engines: Sequence[str], archive: Path, reference: str, say: Say
) -> Iterator[EngineOutcome]:
    for engine in engines:
        outcome = try_engine(engine, archive, reference, say)
        if outcome.status == "ran":
            say(f"    {engine} ran the image, which printed: {outcome.detail}")
        else:
            say(f"==> {engine}: {outcome.status} ({outcome.detail})")
        yield outcome


def _summary(result: DemoResult, say: Say) -> None:
    failed = [o.engine for o in result.outcomes if o.status == "failed"]
    if failed:
        say(f"==> pulled with imgpull, but {', '.join(failed)} could not load or run it (above)")
        return
    kept = f"; the archive is {result.archive}" if result.archive else ""
    if result.ran_with:
        say(
            f"==> done: pushed and pulled with imgpull, ran with {', '.join(result.ran_with)}{kept}"
        )
        return
    name = result.archive or "FILE"
    later = "" if result.archive else " (keep the archive with --output FILE)"
    say(
        f"==> done: pushed and pulled with imgpull; no container engine answered here{kept}. "
        f"Where one does: docker load -i {name}, podman load -i {name} or "
        f"ctr images import {name}{later}"
    )
