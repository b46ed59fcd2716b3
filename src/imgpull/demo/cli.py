"""``imgpull demo`` (once wired into the main parser) and ``python -m imgpull.demo``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from imgpull.demo.engines import ENGINES
from imgpull.demo.image import BUSYBOX
from imgpull.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, ImgpullError

Commands = Any  # argparse's _SubParsersAction, which it does not export

DESCRIPTION = (
    "A demo that needs no internet, only Debian's docker-registry and busybox-static: build "
    "a tiny image offline from /bin/busybox, push it to a throwaway registry on 127.0.0.1 "
    "with imgpull, pull it back into an archive with imgpull, then load and run that "
    "archive with docker, podman and containerd's ctr, each one that answers. Nothing is "
    "left behind: the registry is stopped, temporary files and loaded images are removed."
)


def demo_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="keep the pulled archive here (default: a temporary file, removed)",
    )
    parser.add_argument(
        "--engine",
        action="append",
        choices=ENGINES,
        help="try only this engine (repeatable; default: docker, podman and ctr)",
    )
    parser.add_argument(
        "--busybox",
        type=Path,
        default=BUSYBOX,
        metavar="FILE",
        help=f"the static busybox to build the image from (default {BUSYBOX})",
    )


def add_demo(commands: Commands) -> None:
    parser = commands.add_parser(
        "demo", help="pull, load and run a demo image offline", description=DESCRIPTION
    )
    demo_options(parser)
    parser.set_defaults(run=cmd_demo)


def cmd_demo(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.demo.walkthrough import run

    result = run(output=args.output, engines=args.engine or ENGINES, busybox=args.busybox)
    return EXIT_OK if result.ok else EXIT_ERROR


def _one_line(error: ImgpullError) -> str:
    text = f"imgpull demo: error: {' '.join(error.message.split())}"
    return f"{text} ({' '.join(error.hint.split())})" if error.hint else text


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m imgpull.demo``: the same options as ``imgpull demo``."""
    parser = argparse.ArgumentParser(prog="python -m imgpull.demo", description=DESCRIPTION)
    demo_options(parser)
    args = parser.parse_args(argv)
    try:
        return cmd_demo(args, sys.stdin)
    except ImgpullError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a full disk, an unreadable --output directory
        where = f": {exc.filename}" if exc.filename else ""
        print(f"imgpull demo: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "imgpull demo: interrupted (the registry was stopped, files removed)", file=sys.stderr
        )
        return EXIT_INTERRUPTED
