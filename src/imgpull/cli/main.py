"""The entry point: parse, dispatch, and turn every failure into one line and an exit code."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from imgpull.cli.exits import EXIT_ERROR, EXIT_INTERRUPTED, exit_code
from imgpull.cli.parser import build_parser
from imgpull.errors import ImgpullError


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_error(exc: ImgpullError) -> str:
    line = f"imgpull: error: {_one_line(exc.message)}"
    if exc.hint:
        line += f" ({_one_line(exc.hint)})"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # urllib3 logs whole URLs, signed query strings included: only ours, which redact.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        return int(args.run(args, sys.stdin))
    except ImgpullError as exc:
        if debug:
            logging.getLogger("imgpull").exception("failed")
        print(render_error(exc), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("imgpull: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # a full disk, a vanished directory: not a bug of ours
        if debug:
            logging.getLogger("imgpull").exception("failed")
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(
            f"imgpull: error: {exc.strerror or exc}{where} (check the disk and the paths)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except BrokenPipeError:
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
