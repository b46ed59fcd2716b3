"""The Kubernetes YAML commands: ``images`` and ``rewrite``.

Data goes to standard output (references, ``--verbose`` locations, a diff, rewritten
standard input); counts, skipped image-like strings and, with ``--keep-going``, one line
per bad input go to standard error. With ``--keep-going`` the good inputs are processed
and the exit code is still 2 (as without it) when any input was bad, so a script sees the
same code either way and can still use the output.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from imgpull.cli.options import common_options, size
from imgpull.errors import EXIT_OK, EXIT_USAGE, ImgpullError, UsageError

Commands = Any  # argparse's _SubParsersAction, which it does not export

_FOUND = (
    "containers, initContainers and ephemeralContainers of every workload (Lists and "
    "CRDs with pod specs included), image flags in container args (--FLAG=REF where "
    "FLAG names an image), env values named *IMAGE*, and the image fields of Prometheus "
    "Operator resources (Prometheus, PrometheusAgent, Alertmanager, ThanosRuler)"
)


def _input_options(parser: argparse.ArgumentParser, verbose: str) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="report bad inputs (one line each) and go on with the others; "
        "the exit code is still 2",
    )
    parser.add_argument(
        "--max-size",
        type=size,
        metavar="SIZE",
        help="largest YAML input read (default 64MiB)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help=verbose,
    )


def add_images(commands: Commands) -> None:
    parser = commands.add_parser(
        "images",
        help="list the images Kubernetes YAML uses",
        description=f"Print the image references in Kubernetes YAML (files, directories, "
        f"multi-document streams, '-' for stdin): {_FOUND}. For example "
        "`helm template ... | imgpull images - | imgpull pull -f - -o bundle.tar`.",
    )
    _input_options(
        parser,
        "print FILE:LINE:COL KIND REF for every use, and list each image-like string left "
        "alone on standard error (otherwise only their count)",
    )
    parser.add_argument(
        "--normalized",
        action="store_true",
        help="print full names (docker.io/library/nginx:1.27), not as written",
    )
    common_options(parser)
    parser.set_defaults(run=cmd_images)


def add_rewrite(commands: Commands) -> None:
    parser = commands.add_parser(
        "rewrite",
        help="point the images of Kubernetes YAML at a mirror or private registry",
        description="Rewrite only image values (comments and formatting kept), showing a "
        f"diff unless --in-place. Images are found where `imgpull images` finds them: "
        f"{_FOUND}. --mirror SRC=DST maps one registry keeping every repository path "
        "(docker.io covers implicit names like nginx); --image-repository REPO maps "
        "registry.k8s.io and k8s.gcr.io images as kubeadm's imageRepository does "
        "(registry.k8s.io/coredns/coredns becomes REPO/coredns); --to PREFIX puts every "
        "other image under one registry keeping its path, as `imgpull push ARCHIVE "
        "PREFIX` does, with the same kubeadm rule.",
    )
    _input_options(
        parser,
        "list each image-like string left alone on standard error (otherwise only their count)",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="e.g. quay.io=quay.mirrors.ustc.edu.cn (repeatable; DST is "
        "[https://]host[:port][/prefix])",
    )
    parser.add_argument(
        "--image-repository",
        metavar="REPO",
        help="registry.k8s.io images as kubeadm names them, e.g. "
        "registry.aliyuncs.com/google_containers",
    )
    parser.add_argument("--to", metavar="PREFIX", help="e.g. registry.local:5000/mirror")
    parser.add_argument("--in-place", action="store_true", help="write the files")
    common_options(parser)
    parser.set_defaults(run=cmd_rewrite)


def _write_out(text: str) -> None:
    """``text`` to standard output as UTF-8 bytes, without newline translation (CRLF
    files stay CRLF on every OS)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8"))
    buffer.flush()


def _one_line(error: ImgpullError) -> str:
    line = f"imgpull: error: {' '.join(error.message.split())}"
    return line + (f" ({' '.join(error.hint.split())})" if error.hint else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _report(args: argparse.Namespace, skipped: Sequence[Any], failures: Sequence[Any]) -> int:
    """Skipped strings and bad inputs on stderr; the exit code they call for."""
    if skipped and not args.quiet:
        if args.verbose:
            for item in skipped:
                print(
                    f"imgpull: skipped {item.location}: {item.text} ({item.reason})",
                    file=sys.stderr,
                )
        else:
            print(
                f"imgpull: left alone {_plural(len(skipped), 'image-like string')} that no "
                "rule finds (not in an image field); --verbose lists them",
                file=sys.stderr,
            )
    for failure in failures:
        print(_one_line(failure.error), file=sys.stderr)
    if failures:
        print(
            f"imgpull: error: skipped {_plural(len(failures), 'bad input')}; the others were "
            "processed",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return EXIT_OK


def _limits(args: argparse.Namespace) -> dict[str, Any]:
    return {} if args.max_size is None else {"max_bytes": args.max_size}


def cmd_images(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.kube import collect_images, iter_sources

    failures: list[Any] | None = [] if args.keep_going else None
    sources = iter_sources(args.paths, stdin, failures=failures, **_limits(args))
    listing = collect_images(sources, keep_going=args.keep_going, failures=failures)
    if args.verbose:
        for use in listing.uses:
            print(f"{use.location} {use.kind} {use.reference}")
    else:
        for image in listing.images(normalized=args.normalized):
            print(image)
    return _report(args, listing.skipped, listing.failures)


def _summary(args: argparse.Namespace, result: Any) -> str:
    verb = "rewrote" if args.in_place else "would rewrite"
    where = []
    if result.files_changed:
        where.append(_plural(len(result.files_changed), "file"))
    if result.text_for_stdin is not None:
        where.append("standard input")
    place = " and ".join(where) or "0 files"
    return f"{verb} {_plural(result.values_changed, 'image value')} in {place}"


def cmd_rewrite(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.kube import rewrite

    if not (args.mirror or args.to or args.image_repository):
        raise UsageError(
            "nothing to rewrite to",
            "pass --mirror SRC=DST, --image-repository REPO or --to PREFIX",
        )
    result = rewrite(
        args.paths,
        stdin,
        mirrors=args.mirror,
        to=args.to,
        image_repository=args.image_repository,
        in_place=args.in_place,
        keep_going=args.keep_going,
        **_limits(args),
    )
    if result.text_for_stdin is not None:
        _write_out(result.text_for_stdin)
    elif not args.in_place:
        _write_out(result.diff)
    if not args.quiet:
        print(_summary(args, result), file=sys.stderr)
    return _report(args, result.skipped, result.failures)
