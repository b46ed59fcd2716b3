"""The entry point: parse, dispatch, and turn every failure into one line and an exit code."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from imgpull.cli.parser import COMMANDS, build_parser
from imgpull.errors import EXIT_ERROR, EXIT_INTERRUPTED, ImgpullError, UsageError, exit_code
from imgpull.reference import parse_reference


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_error(exc: ImgpullError) -> str:
    line = f"imgpull: error: {_one_line(exc.message)}"
    if exc.hint:
        line += f" ({_one_line(exc.hint)})"
    return line


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``timeout``, systemd and container stops send them): unwound
    like Ctrl-C, so every temporary file is removed on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # main() called from a library user's thread: leave their handlers alone
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, _terminate)


def _old_habit(argv: Sequence[str]) -> None:
    """``imgpull nginx:1.27``, as the old docker_pull.py scripts were called: one line
    pointing at the command, rather than argparse's list of choices."""
    if not argv or argv[0].startswith("-") or argv[0] in COMMANDS:
        return
    try:
        parse_reference(argv[0])
    except ImgpullError:
        return
    wanted = " ".join(argv)
    raise UsageError(
        f"unknown command {argv[0]!r}; did you mean `imgpull pull {wanted}`?",
        "imgpull takes a command first; `imgpull --help` lists them",
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # urllib3 logs whole URLs, signed query strings included, and warns about what is
    # no failure (a full connection pool): only ours speak, which redact, and every
    # failure reaches the user through them.
    logging.getLogger("urllib3").setLevel(logging.CRITICAL + 1)
    _install_signal_handlers()
    try:
        _old_habit(arguments)
        command = arguments[0] if arguments and arguments[0] in COMMANDS else None
        args = build_parser(command).parse_args(arguments)
        return int(args.run(args, sys.stdin))
    except ImgpullError as exc:
        if debug:
            logging.getLogger("imgpull").exception("failed")
        print(render_error(exc), file=sys.stderr)
        return exit_code(exc)
    except Terminated as stop:
        print("imgpull: terminated", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("imgpull: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of standard output went away (`| head`): quietly, as cat does.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except OSError as exc:  # a full disk, a vanished directory: not a bug of ours
        if debug:
            logging.getLogger("imgpull").exception("failed")
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(
            f"imgpull: error: {exc.strerror or exc}{where} (check the disk and the paths)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except Exception as exc:
        if debug:
            logging.getLogger("imgpull").exception("internal error")
        print(
            f"imgpull: internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(run again with --debug and report it)",
            file=sys.stderr,
        )
        return EXIT_ERROR
