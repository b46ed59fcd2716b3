"""The command-line parser: one small function per command."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgpull._version import __version__
from imgpull.archive.layout import FORMATS
from imgpull.cli.commands import (
    cmd_cache,
    cmd_config,
    cmd_copy,
    cmd_inspect,
    cmd_login,
    cmd_logout,
    cmd_pull,
    cmd_push,
    cmd_tags,
)
from imgpull.cli.kube import add_images, add_rewrite
from imgpull.cli.options import (
    Parser,
    common_options,
    duration,
    image_repository_option,
    jobs_option,
    list_option,
    network_options,
    platform_options,
    signature_options,
    size,
)

Commands = Any  # argparse's _SubParsersAction, which it does not export


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``command`` (one of COMMANDS), a parser that knows only that
    command, which is all a run of it reads: building the other twelve, and importing
    what they need, was a tenth of a small pull's start-up."""
    parser = Parser(
        prog="imgpull",
        description="Pull container images from OCI/Docker registries into archives that "
        "docker, podman and skopeo load, without a Docker daemon.",
    )
    parser.add_argument("--version", action="version", version=f"imgpull {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    adders = _ADDERS if command is None else {command: _ADDERS[command]}
    for add in adders.values():
        add(commands)
    return parser


def add_demo(commands: Commands) -> None:
    from imgpull.demo.cli import add_demo as add  # the demo's engines: only for `demo`

    add(commands)


def add_completion(commands: Commands) -> None:
    from imgpull.cli.completion import add_completion as add  # only for `completion`

    add(commands)


def add_pull(commands: Commands) -> None:
    parser = commands.add_parser(
        "pull",
        help="pull images into an archive",
        description="Pull one or more images into one archive. The default format is an OCI "
        "image layout that also carries Docker's manifest.json, so `docker load`, `podman "
        "load`, skopeo (docker-archive: and oci-archive:) and OCI tools all read it; "
        "--format oci writes the OCI layout alone. Layers are stored as the registry "
        "served them (compressed) and shared layers once.",
    )
    parser.add_argument(
        "images",
        nargs="*",
        metavar="IMAGE",
        help="image references, e.g. nginx:1.27 or quay.io/org/app@sha256:...",
    )
    list_option(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="archive path, '-' for standard output (default: derived from the image name)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="docker",
        help="docker (default: OCI layout + docker manifest.json) or oci",
    )
    platform_options(
        parser,
        "with several, the OCI view holds an index of just those and the Docker view loads "
        "the first",
        "the OCI view holds the whole index (digest preserved); the Docker view loads the "
        "host's platform",
    )
    signature_options(parser)
    jobs_option(parser, "downloads")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="blob cache directory (default: IMGPULL_CACHE_DIR or the user cache directory)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="do not read or fill the blob cache: each blob is written once, straight into "
        "the archive (fastest for a one-off pull; nothing is kept for the next run)",
    )
    network_options(parser)
    common_options(parser)
    parser.set_defaults(run=cmd_pull)


def add_push(commands: Commands) -> None:
    parser = commands.add_parser(
        "push",
        help="push every image of an archive to a registry",
        description="Push the images of an archive written by imgpull, docker save (old or "
        "new format), podman save or skopeo. DEST is a full reference with a tag (one-image "
        "archives) or a registry[/namespace] prefix under which each image keeps its path: "
        "registry.local:5000/mirror gives registry.local:5000/mirror/library/nginx:1.27 "
        "(Kubernetes' own images follow kubeadm's imageRepository rule: "
        "registry.k8s.io/coredns/coredns becomes PREFIX/coredns). Without DEST images go "
        "to the names they carry. Blobs the registry has are skipped; uncompressed layers "
        "are gzip-compressed on the way (diffIDs unchanged).",
    )
    parser.add_argument("archive", metavar="ARCHIVE", type=Path)
    parser.add_argument("destination", metavar="DEST", nargs="?")
    parser.add_argument(
        "--chunk-size",
        type=size,
        metavar="SIZE",
        help="upload in chunks of this size (default: one request per blob, "
        "chunks only when the registry or a proxy refuses large bodies)",
    )
    image_repository_option(parser)
    jobs_option(parser, "uploads")
    network_options(parser)
    common_options(parser)
    parser.set_defaults(run=cmd_push)


def add_copy(commands: Commands) -> None:
    parser = commands.add_parser(
        "copy",
        help="copy images from one registry to another",
        description="Copy images registry to registry, through the same proxies, mirrors and "
        "credentials as pull, without writing them to disk. With one SOURCE, DEST may be a "
        "full reference; with several (or -f LISTFILE) DEST is a registry[/namespace] prefix "
        "under which each image keeps its path, as with push.",
    )
    parser.add_argument("images", nargs="*", metavar="SOURCE... DEST")
    list_option(parser)
    platform_options(
        parser,
        "several give an index of just those",
        "the whole index, every platform, digests preserved",
    )
    image_repository_option(parser)
    signature_options(parser)
    jobs_option(parser, "blob copies")
    network_options(parser)
    common_options(parser)
    parser.set_defaults(run=cmd_copy)


def add_inspect(commands: Commands) -> None:
    parser = commands.add_parser("inspect", help="describe an image without pulling it")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument(
        "--raw", action="store_true", help="print the manifest exactly as the registry served it"
    )
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="for a multi-arch image, also describe this platform's image",
    )
    network_options(parser)
    common_options(parser)
    parser.set_defaults(run=cmd_inspect)


def add_tags(commands: Commands) -> None:
    parser = commands.add_parser("tags", help="list the tags of a repository")
    parser.add_argument("repository", metavar="REPOSITORY")
    network_options(parser)
    common_options(parser)
    parser.set_defaults(run=cmd_tags)


def add_login(commands: Commands) -> None:
    parser = commands.add_parser(
        "login", help="save credentials for a registry (same file as docker login)"
    )
    parser.add_argument("registry", nargs="?", default="docker.io", metavar="REGISTRY")
    network_options(parser)
    common_options(parser)
    parser.set_defaults(run=cmd_login)


def add_config(commands: Commands) -> None:
    parser = commands.add_parser(
        "config",
        help="show the effective settings and where each came from",
        description="Show the settings imgpull would use (proxies, mirrors, insecure "
        "registries, CA files) and their origin: flags, environment, imgpull's config file "
        "(TOML), containers' registries.conf, Docker's daemon.json.",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    network_options(parser)
    common_options(parser)
    parser.set_defaults(run=cmd_config)


def add_cache(commands: Commands) -> None:
    parser = commands.add_parser(
        "cache",
        help="show, verify or prune the shared blob cache",
        description="Show what the content-addressed blob cache holds (`imgpull cache`); "
        "hash every blob again and remove those that no longer match (`verify`); prune it "
        "(`prune`): blobs unused for --older-than, then the least recently used until "
        "--max-size remains, or --all (which also forgets the endpoint memory); forget what "
        "earlier runs learned about mirrors and registries (`forget`).",
    )
    parser.add_argument(
        "action", nargs="?", choices=("show", "verify", "prune", "forget"), default="show"
    )
    parser.add_argument(
        "--older-than",
        type=duration,
        metavar="AGE",
        help="prune blobs unused for this long: 90s, 30m, 12h, 7d",
    )
    parser.add_argument(
        "--max-size",
        type=size,
        metavar="SIZE",
        help="prune least recently used blobs until this much remains: 500M, 10G",
    )
    parser.add_argument("--all", action="store_true", help="prune everything")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR", help="the cache to look at")
    common_options(parser)
    parser.set_defaults(run=cmd_cache)


def add_logout(commands: Commands) -> None:
    parser = commands.add_parser("logout", help="forget saved credentials for a registry")
    parser.add_argument("registry", nargs="?", default="docker.io", metavar="REGISTRY")
    common_options(parser)
    parser.set_defaults(run=cmd_logout)


_ADDERS: dict[str, Callable[[Commands], None]] = {
    "pull": add_pull,
    "push": add_push,
    "copy": add_copy,
    "images": add_images,
    "rewrite": add_rewrite,
    "inspect": add_inspect,
    "tags": add_tags,
    "login": add_login,
    "logout": add_logout,
    "config": add_config,
    "cache": add_cache,
    "demo": add_demo,
    "completion": add_completion,
}
COMMANDS = tuple(_ADDERS)
