"""The command line: flags to Settings, progress rendering, and errors as one line.

Human output goes to standard error; standard output carries only data (an archive with
``-o -``, JSON from ``inspect``, tags), so every command can be piped.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from imgpull._version import __version__
from imgpull.archive.writer import FORMATS
from imgpull.cache import BlobCache
from imgpull.cli.render import human_size, make_reporter
from imgpull.config.settings import Settings, redact_proxy
from imgpull.errors import (
    AuthError,
    ConfigError,
    DigestMismatchError,
    ImgpullError,
    InvalidReferenceError,
    NetworkError,
    NotFoundError,
    PlatformNotFoundError,
)
from imgpull.model import Platform
from imgpull.naming import Mirror
from imgpull.ops.pull import STDOUT, PullResult
from imgpull.reference import normalize_registry

# Exit codes, in one place.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_NETWORK = 5
EXIT_INTEGRITY = 6
EXIT_INTERRUPTED = 130

_EXIT_FOR: tuple[tuple[type[ImgpullError], int], ...] = (
    (InvalidReferenceError, EXIT_USAGE),
    (ConfigError, EXIT_USAGE),
    (AuthError, EXIT_AUTH),
    (NotFoundError, EXIT_NOT_FOUND),
    (PlatformNotFoundError, EXIT_NOT_FOUND),
    (NetworkError, EXIT_NETWORK),
    (DigestMismatchError, EXIT_INTEGRITY),
)


class UsageError(ImgpullError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


def _network_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry access")
    group.add_argument("-u", "--username", help="registry user name")
    group.add_argument("-p", "--password", help="password (prefer --password-stdin)")
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="allow plain HTTP and skip TLS verification for every registry",
    )
    group.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="like --insecure for one registry (repeatable)",
    )
    group.add_argument(
        "--ca-cert",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="trust the CA certificates in this PEM file (repeatable); "
        "SSL_CERT_FILE is honoured too",
    )
    group.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries per request on network errors and 5xx/429 (default 3)",
    )
    group.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up connecting after this long (default 10)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="give up on the whole operation after this long",
    )
    group.add_argument(
        "--proxy",
        metavar="URL",
        help="proxy for every request: http://, https://, socks5:// or socks5h:// (names "
        "resolved by the proxy), with user:password@ if needed; wins over HTTPS_PROXY, "
        "HTTP_PROXY and ALL_PROXY (NO_PROXY still applies; loopback is never proxied)",
    )
    group.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="REGISTRY=URL",
        help="try this mirror for REGISTRY before the registry itself (repeatable, in order "
        "of preference); a URL with a path is a prefix mirror, e.g. "
        "docker.io=https://m.daocloud.io/docker.io",
    )
    group.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="imgpull config file (default: imgpull/config.toml in the user config "
        "directory; `imgpull config` shows the effective settings)",
    )


def _list_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        metavar="LISTFILE",
        help="read image references from a file, one per line, '#' "
        "comments ('-' for standard input)",
    )


def _platform_options(parser: argparse.ArgumentParser, several: str, everything: str) -> None:
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT][,...]",
        help=f"platform(s) to take from multi-platform images (default "
        f"{Platform.host()}); {several}",
    )
    parser.add_argument(
        "--all-platforms", action="store_true", help=f"take every platform: {everything}"
    )


def _jobs_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-j", "--jobs", type=int, default=4, metavar="N", help=f"parallel {what} (default 4)"
    )


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log HTTP requests (without secrets) and show tracebacks",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="imgpull",
        description="Pull container images from OCI/Docker registries into archives that "
        "docker, podman and skopeo load, without a Docker daemon.",
    )
    parser.add_argument("--version", action="version", version=f"imgpull {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    pull = commands.add_parser(
        "pull",
        help="pull images into an archive",
        description="Pull one or more images into one archive. The default format is an OCI "
        "image layout that also carries Docker's manifest.json, so `docker load`, `podman "
        "load`, skopeo (docker-archive: and oci-archive:) and OCI tools all read it; "
        "--format oci writes the OCI layout alone. Layers are stored as the registry "
        "served them (compressed) and shared layers once.",
    )
    pull.add_argument(
        "images",
        nargs="*",
        metavar="IMAGE",
        help="image references, e.g. nginx:1.27 or quay.io/org/app@sha256:...",
    )
    _list_option(pull)
    pull.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="archive path, '-' for standard output (default: derived from the image name)",
    )
    pull.add_argument(
        "--format",
        choices=FORMATS,
        default="docker",
        help="docker (default: OCI layout + docker manifest.json) or oci",
    )
    _platform_options(
        pull,
        "with several, the OCI view holds an index of just those and the Docker view loads "
        "the first",
        "the OCI view holds the whole index (digest preserved); the Docker view loads the "
        "host's platform",
    )
    _jobs_option(pull, "downloads")
    pull.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="blob cache directory (default: IMGPULL_CACHE_DIR or the user cache directory)",
    )
    pull.add_argument("--no-cache", action="store_true", help="do not read or fill the blob cache")
    _network_options(pull)
    _common_options(pull)

    push = commands.add_parser(
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
    push.add_argument("archive", metavar="ARCHIVE", type=Path)
    push.add_argument("destination", metavar="DEST", nargs="?")
    push.add_argument(
        "--chunk-size",
        type=_size,
        metavar="SIZE",
        help="upload in chunks of this size (default: one request per blob, "
        "chunks only when the registry or a proxy refuses large bodies)",
    )
    _jobs_option(push, "uploads")
    _network_options(push)
    _common_options(push)

    copy = commands.add_parser(
        "copy",
        help="copy images from one registry to another",
        description="Copy images registry to registry, through the same proxies, mirrors and "
        "credentials as pull, without writing them to disk. With one SOURCE, DEST may be a "
        "full reference; with several (or -f LISTFILE) DEST is a registry[/namespace] prefix "
        "under which each image keeps its path, as with push.",
    )
    copy.add_argument("images", nargs="*", metavar="SOURCE... DEST")
    _list_option(copy)
    _platform_options(
        copy,
        "several give an index of just those",
        "the whole index, every platform, digests preserved",
    )
    _jobs_option(copy, "blob copies")
    _network_options(copy)
    _common_options(copy)

    images = commands.add_parser(
        "images",
        help="list the images Kubernetes YAML uses",
        description="Print the image references in Kubernetes YAML (files, directories, "
        "multi-document streams, '-' for stdin): containers, initContainers and "
        "ephemeralContainers of every workload, Lists included. For example "
        "`helm template ... | imgpull images - | imgpull pull -f - -o bundle.tar`.",
    )
    images.add_argument("paths", nargs="+", metavar="PATH")
    images.add_argument(
        "--normalized",
        action="store_true",
        help="print full names (docker.io/library/nginx:1.27), not as written",
    )
    _common_options(images)

    rewrite = commands.add_parser(
        "rewrite",
        help="point the images of Kubernetes YAML at a mirror or private registry",
        description="Rewrite only image values (comments and formatting kept), showing a "
        "diff unless --in-place. --mirror SRC=DST maps one registry (docker.io covers "
        "implicit names like nginx); --to PREFIX puts every other image under one registry "
        "keeping its path, as `imgpull push ARCHIVE PREFIX` does, with Kubernetes' own "
        "images following kubeadm's imageRepository rule (registry.k8s.io/coredns/coredns "
        "becomes PREFIX/coredns).",
    )
    rewrite.add_argument("paths", nargs="+", metavar="PATH")
    rewrite.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="SRC=DST",
        help="e.g. quay.io=quay.mirrors.ustc.edu.cn (repeatable)",
    )
    rewrite.add_argument("--to", metavar="PREFIX", help="e.g. registry.local:5000/mirror")
    rewrite.add_argument("--in-place", action="store_true", help="write the files")
    _common_options(rewrite)

    inspect = commands.add_parser("inspect", help="describe an image without pulling it")
    inspect.add_argument("image", metavar="IMAGE")
    inspect.add_argument(
        "--raw", action="store_true", help="print the manifest exactly as the registry served it"
    )
    inspect.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="for a multi-arch image, also describe this platform's image",
    )
    _network_options(inspect)
    _common_options(inspect)

    tags = commands.add_parser("tags", help="list the tags of a repository")
    tags.add_argument("repository", metavar="REPOSITORY")
    _network_options(tags)
    _common_options(tags)

    login = commands.add_parser(
        "login", help="save credentials for a registry (same file as docker login)"
    )
    login.add_argument("registry", nargs="?", default="docker.io", metavar="REGISTRY")
    _network_options(login)
    _common_options(login)

    config = commands.add_parser(
        "config",
        help="show the effective settings and where each came from",
        description="Show the settings imgpull would use (proxies, mirrors, insecure "
        "registries, CA files) and their origin: flags, environment, imgpull's config file "
        "(TOML), containers' registries.conf, Docker's daemon.json.",
    )
    config.add_argument("--json", action="store_true", help="print JSON")
    _network_options(config)
    _common_options(config)

    cache = commands.add_parser(
        "cache",
        help="show or prune the shared blob cache",
        description="Show what the content-addressed blob cache holds (`imgpull cache`), or "
        "prune it (`imgpull cache prune`): blobs unused for --older-than, then the least "
        "recently used until --max-size remains, or --all.",
    )
    cache.add_argument("action", nargs="?", choices=("show", "prune"), default="show")
    cache.add_argument(
        "--older-than",
        type=_duration,
        metavar="AGE",
        help="prune blobs unused for this long: 90s, 30m, 12h, 7d",
    )
    cache.add_argument(
        "--max-size",
        type=_size,
        metavar="SIZE",
        help="prune least recently used blobs until this much remains: 500M, 10G",
    )
    cache.add_argument("--all", action="store_true", help="prune everything")
    cache.add_argument("--cache-dir", type=Path, metavar="DIR", help="the cache to look at")
    _common_options(cache)

    logout = commands.add_parser("logout", help="forget saved credentials for a registry")
    logout.add_argument("registry", nargs="?", default="docker.io", metavar="REGISTRY")
    _common_options(logout)
    return parser


def _platform(text: str | None) -> Platform | None:
    if not text:
        return None
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc), "e.g. --platform linux/arm64 or linux/arm/v7") from exc


def _platforms(text: str | None) -> list[Platform] | None:
    if not text:
        return None
    return [p for p in (_platform(part.strip()) for part in text.split(",")) if p]


def _read_password(args: argparse.Namespace, stdin: TextIO) -> str | None:
    if getattr(args, "password_stdin", False):
        if args.password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        return stdin.read().rstrip("\r\n")
    password: str | None = getattr(args, "password", None)
    return password


def _mirrors(values: Sequence[str]) -> dict[str, tuple[Mirror, ...]]:
    mirrors: dict[str, list[Mirror]] = {}
    for value in values:
        registry, sep, url = value.partition("=")
        if not sep or not registry or not url:
            raise UsageError(
                f"invalid --mirror {value!r}", "use REGISTRY=URL, e.g. docker.io=https://mirror"
            )
        name = normalize_registry(registry)
        mirrors.setdefault(name, []).append(Mirror.parse(url, "--mirror"))
    return {name: tuple(found) for name, found in mirrors.items()}


def settings_from(args: argparse.Namespace, stdin: TextIO = sys.stdin) -> Settings:
    password = _read_password(args, stdin)
    username: str | None = getattr(args, "username", None)
    if password is not None and username is None:
        raise UsageError("a password was given without --username")
    overrides: dict[str, Any] = {
        "insecure": bool(getattr(args, "insecure", False)),
        "insecure_registries": frozenset(
            normalize_registry(r) for r in getattr(args, "insecure_registry", ())
        ),
        "ca_certs": tuple(getattr(args, "ca_cert", ())),
        "username": username,
        "password": password,
        "retries": max(0, getattr(args, "retries", 3)),
        "connect_timeout": getattr(args, "connect_timeout", 10.0),
        "timeout": getattr(args, "timeout", None),
        "proxy": getattr(args, "proxy", None),
        "mirrors": _mirrors(getattr(args, "mirror", ())),
    }
    if getattr(args, "jobs", None):
        overrides["jobs"] = max(1, args.jobs)
    if getattr(args, "cache_dir", None):
        overrides["cache_dir"] = args.cache_dir
    if getattr(args, "no_cache", False):
        overrides["use_cache"] = False
    for path in overrides["ca_certs"]:
        if not Path(path).is_file():
            raise ConfigError(f"CA file {path} does not exist", "check the --ca-cert path")
    return Settings.from_environment(config_file=getattr(args, "config", None), **overrides)


def _references(args: argparse.Namespace, stdin: TextIO) -> list[str]:
    refs = list(args.images)
    for name in args.file:
        try:
            text = stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read image list {name}: {exc.strerror}") from exc
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                refs.append(line)
    if not refs:
        raise UsageError("no images to pull", "name images or pass -f LISTFILE")
    return refs


def cmd_pull(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.pull import pull

    if args.password_stdin and "-" in args.file:
        raise UsageError("--password-stdin and -f - both want standard input")
    refs = _references(args, stdin)
    settings = settings_from(args, stdin)
    platform = _platforms(args.platform)
    reporter = make_reporter(quiet=args.quiet)
    result = pull(
        refs,
        args.output,
        platform=platform,
        all_platforms=args.all_platforms,
        archive_format=args.format,
        settings=settings,
        reporter=reporter,
    )
    if not args.quiet:
        _summary(result)
    return EXIT_OK


def cmd_push(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.push import push

    if not args.archive.exists():
        raise ConfigError(f"archive {args.archive} does not exist", "check the path")
    settings = settings_from(args, stdin)
    reporter = make_reporter(quiet=args.quiet)
    pushed = push(
        args.archive,
        args.destination,
        chunk_size=args.chunk_size,
        settings=settings,
        reporter=reporter,
    )
    if not args.quiet:
        for item in pushed:
            print(f"Pushed {item.destination.familiar}@{item.digest}", file=sys.stderr)
    return EXIT_OK


def cmd_copy(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.push import copy

    if len(args.images) < 1 or (len(args.images) < 2 and not args.file):
        raise UsageError(
            "copy needs SOURCE... DEST", "e.g. imgpull copy nginx:1.27 registry.local:5000/mirror"
        )
    if args.password_stdin and "-" in args.file:
        raise UsageError("--password-stdin and -f - both want standard input")
    *sources, destination = args.images
    args.images = sources
    refs = _references(args, stdin)
    settings = settings_from(args, stdin)
    reporter = make_reporter(quiet=args.quiet)
    copied = copy(
        refs,
        destination,
        platform=_platforms(args.platform),
        all_platforms=args.all_platforms,
        settings=settings,
        reporter=reporter,
    )
    if not args.quiet:
        for item in copied:
            print(
                f"Copied {item.source.familiar} to {item.destination.familiar}@{item.digest}",
                file=sys.stderr,
            )
    return EXIT_OK


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


def _summary(result: PullResult) -> None:
    err = sys.stderr
    for image in result.images:
        print(f"Pulled {image.reference.familiar}", file=err)
        print(f"  digest:   {image.digest}", file=err)
        if image.digest != image.manifest.digest:
            print(f"  manifest: {image.manifest.digest}", file=err)
        print(f"  platform: {image.platform}", file=err)
        print(f"  from:     {image.endpoint}", file=err)
        count = len(image.manifest.layers)
        layers = f"{count} layer" + ("" if count == 1 else "s")
        print(f"  size:     {human_size(image.size)} in {layers}", file=err)
    if result.output == STDOUT:
        print(f"Wrote {human_size(result.archive_size)} to standard output", file=err)
        return
    print(
        f"Wrote {result.output} ({human_size(result.archive_size)}, "
        f"{result.archive_format} format)",
        file=err,
    )
    quoted = result.output if " " not in result.output else f'"{result.output}"'
    if result.archive_format == "docker":
        print(f"Load it with: docker load -i {quoted}   (or: podman load -i {quoted})", file=err)
    else:
        print(
            f"Use it with: skopeo copy oci-archive:{quoted} ...   (or: podman load -i {quoted})",
            file=err,
        )


def cmd_inspect(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.pull import inspect, raw_manifest

    settings = settings_from(args, stdin)
    if args.raw:
        sys.stdout.buffer.write(raw_manifest(args.image, settings=settings))
        sys.stdout.flush()
        return EXIT_OK
    platform = _platform(args.platform)
    print(json.dumps(inspect(args.image, platform=platform, settings=settings), indent=2))
    return EXIT_OK


def cmd_tags(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.pull import list_tags

    for tag in list_tags(args.repository, settings=settings_from(args, stdin)):
        print(tag)
    return EXIT_OK


def cmd_login(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.pull import login

    if not args.username:
        if not stdin.isatty():
            raise UsageError(
                "login needs --username", "e.g. imgpull login REGISTRY -u NAME --password-stdin"
            )
        args.username = input("Username: ")
    if args.password is None and not args.password_stdin:
        if not stdin.isatty():
            raise UsageError("login needs a password", "pass it with --password-stdin")
        args.password = getpass.getpass("Password: ")
    settings = settings_from(args, stdin)
    where = login(args.registry, settings=settings)
    if not args.quiet:
        print(f"Login succeeded; credentials saved in {where}", file=sys.stderr)
    return EXIT_OK


def cmd_logout(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.pull import logout

    removed = logout(args.registry, settings=Settings.from_environment())
    if not args.quiet:
        message = "Removed credentials for" if removed else "Not logged in to"
        print(f"{message} {args.registry}", file=sys.stderr)
    return EXIT_OK


_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _size(text: str) -> int:
    number, unit = text.strip().lower().rstrip("ib").rstrip("b"), ""
    if number and number[-1] in _UNITS:
        number, unit = number[:-1], number[-1]
    try:
        return int(float(number) * _UNITS[unit])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use e.g. 500M or 10G") from None


def _duration(text: str) -> float:
    value = text.strip().lower()
    unit = value[-1] if value and value[-1] in _SECONDS else "s"
    try:
        return float(value.rstrip("smhdw")) * _SECONDS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid age {text!r}: use e.g. 12h or 7d") from None


def cmd_cache(args: argparse.Namespace, stdin: TextIO) -> int:
    settings = Settings.from_environment(
        **({"cache_dir": args.cache_dir} if args.cache_dir else {})
    )
    if settings.cache_dir is None:
        raise ConfigError("no cache directory", "pass --cache-dir")
    cache = BlobCache(settings.cache_dir)
    if args.action == "prune":
        if args.older_than is None and args.max_size is None and not args.all:
            raise UsageError("prune needs --older-than, --max-size or --all")
        removed, freed = cache.prune(
            older_than=args.older_than, max_size=args.max_size, everything=args.all
        )
        if not args.quiet:
            print(f"removed {removed} files, freed {human_size(freed)}", file=sys.stderr)
        return EXIT_OK
    blobs, partials = cache.entries(), cache.partials()
    print(f"cache:    {cache.root}")
    print(f"blobs:    {len(blobs)} ({human_size(sum(e.size for e in blobs))})")
    print(
        f"partial:  {len(partials)} ({human_size(sum(e.size for e in partials))}) "
        "resumable downloads"
    )
    if blobs:
        oldest = time.strftime("%Y-%m-%d %H:%M", time.localtime(blobs[0].last_used))
        print(f"oldest:   last used {oldest}")
    return EXIT_OK


def describe_settings(settings: Settings) -> dict[str, Any]:
    origins = settings.origins

    def entry(value: Any, key: str, default: str = "default") -> dict[str, Any]:
        return {"value": value, "from": origins.get(key, default)}

    registries: dict[str, Any] = {}
    for name in sorted({*settings.registries, *settings.mirrors, *settings.insecure_registries}):
        config = settings.registry_config(name)
        mirrors = settings.mirrors_for(name)
        registries[name] = {
            "mirrors": [{"url": str(m), "from": m.source} for m in mirrors],
            "mirror_only": entry(
                config.mirror_only, "", config.sources.get("mirror_only", "default")
            ),
            "insecure": {
                "value": settings.is_insecure(name),
                "from": "--insecure-registry"
                if name in settings.insecure_registries
                else config.sources.get("insecure", "default"),
            },
            "blocked": {"value": config.blocked, "from": config.sources.get("blocked", "default")},
            "ca_certs": [str(p) for p in config.ca_certs],
        }
    return {
        "files": [{"path": path, "status": status} for path, status in settings.files],
        "proxy": entry(settings.proxy, "proxy"),
        "https_proxy": entry(settings.env_proxies.get("https"), "https_proxy"),
        "http_proxy": entry(settings.env_proxies.get("http"), "http_proxy"),
        "all_proxy": entry(settings.env_proxies.get("all"), "all_proxy"),
        "no_proxy": entry(settings.no_proxy, "no_proxy"),
        "insecure": {
            "value": settings.insecure,
            "from": "--insecure" if settings.insecure else "default",
        },
        "ca_certs": entry([str(p) for p in settings.ca_certs], "ca_certs"),
        "certs_dirs": entry([str(p) for p in settings.certs_dirs], "certs_dirs"),
        "cache_dir": {
            "value": str(settings.cache_dir),
            "from": "IMGPULL_CACHE_DIR" if os.environ.get("IMGPULL_CACHE_DIR") else "default",
        },
        "registries": registries,
    }


def _redacted(value: Any) -> Any:
    if isinstance(value, str) and "@" in value and "://" in value:
        return redact_proxy(value)
    return value


def cmd_config(args: argparse.Namespace, stdin: TextIO) -> int:
    described = describe_settings(settings_from(args, stdin))
    for key in ("proxy", "https_proxy", "http_proxy", "all_proxy"):
        described[key]["value"] = _redacted(described[key]["value"])
    if args.json:
        print(json.dumps(described, indent=2))
        return EXIT_OK
    print("files:")
    for item in described["files"]:
        print(f"  {item['path']}: {item['status']}")
    for key, item in described.items():
        if key in ("files", "registries"):
            continue
        value = item["value"]
        if isinstance(value, list):
            value = ", ".join(value)
        shown = "(none)" if value in (None, "", []) else value
        print(f"{key}: {shown}   [{item['from']}]")
    print("registries:" + ("" if described["registries"] else " (no settings)"))
    for name, item in described["registries"].items():
        print(f"  {name}:")
        for mirror in item["mirrors"]:
            print(f"    mirror: {mirror['url']}   [{mirror['from']}]")
        for key in ("mirror_only", "insecure", "blocked"):
            print(f"    {key}: {str(item[key]['value']).lower()}   [{item[key]['from']}]")
        if item["ca_certs"]:
            print(f"    ca_certs: {', '.join(item['ca_certs'])}")
    return EXIT_OK


_COMMANDS = {
    "cache": cmd_cache,
    "config": cmd_config,
    "copy": cmd_copy,
    "images": cmd_images,
    "push": cmd_push,
    "rewrite": cmd_rewrite,
    "pull": cmd_pull,
    "inspect": cmd_inspect,
    "tags": cmd_tags,
    "login": cmd_login,
    "logout": cmd_logout,
}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_error(exc: ImgpullError) -> str:
    line = f"imgpull: error: {_one_line(exc.message)}"
    if exc.hint:
        line += f" ({_one_line(exc.hint)})"
    return line


def exit_code(exc: ImgpullError) -> int:
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return next((code for kind, code in _EXIT_FOR if isinstance(exc, kind)), EXIT_ERROR)


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
        return _COMMANDS[args.command](args, sys.stdin)
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
