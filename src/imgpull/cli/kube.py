"""The Kubernetes YAML commands: ``images`` and ``rewrite``."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from imgpull.cli.exits import EXIT_OK
from imgpull.cli.options import common_options
from imgpull.errors import UsageError

Commands = Any  # argparse's _SubParsersAction, which it does not export


def add_images(commands: Commands) -> None:
    parser = commands.add_parser(
        "images",
        help="list the images Kubernetes YAML uses",
        description="Print the image references in Kubernetes YAML (files, directories, "
        "multi-document streams, '-' for stdin): containers, initContainers and "
        "ephemeralContainers of every workload, Lists included. For example "
        "`helm template ... | imgpull images - | imgpull pull -f - -o bundle.tar`.",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
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
        "diff unless --in-place. --mirror SRC=DST maps one registry (docker.io covers "
        "implicit names like nginx); --to PREFIX puts every other image under one registry "
        "keeping its path, as `imgpull push ARCHIVE PREFIX` does, with Kubernetes' own "
        "images following kubeadm's imageRepository rule (registry.k8s.io/coredns/coredns "
        "becomes PREFIX/coredns).",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="e.g. quay.io=quay.mirrors.ustc.edu.cn (repeatable)",
    )
    parser.add_argument("--to", metavar="PREFIX", help="e.g. registry.local:5000/mirror")
    parser.add_argument("--in-place", action="store_true", help="write the files")
    common_options(parser)
    parser.set_defaults(run=cmd_rewrite)


def cmd_images(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.kube import list_images, read_sources

    for image in list_images(read_sources(args.paths, stdin), normalized=args.normalized):
        print(image)
    return EXIT_OK


def cmd_rewrite(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.kube import parse_mirrors, rewrite

    if not args.mirror and not args.to:
        raise UsageError("nothing to rewrite to", "pass --mirror SRC=DST or --to PREFIX")
    result = rewrite(
        args.paths, stdin, mirrors=parse_mirrors(args.mirror), to=args.to, in_place=args.in_place
    )
    if result.text_for_stdin is not None:
        sys.stdout.write(result.text_for_stdin)
    elif not args.in_place:
        sys.stdout.write(result.diff)
    if not args.quiet:
        changed = [name for name in result.changed if name != "-"]
        verb = "rewrote" if args.in_place else "would rewrite"
        print(
            f"{verb} {len(result.replacements)} image references in {len(changed)} files",
            file=sys.stderr,
        )
    return EXIT_OK
