"""The registry and archive commands: flags in, one call to the library, a summary out.

Human output goes to standard error; standard output carries only data (an archive with
``-o -``, JSON from ``inspect``, tags), so every command can be piped.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from typing import Any, TextIO

from imgpull.archive.output import STDOUT
from imgpull.cache import BlobStore
from imgpull.cli.options import parse_platform, parse_platforms, references, settings_from
from imgpull.cli.render import human_size, make_reporter
from imgpull.config.settings import Settings, redact_proxy
from imgpull.errors import EXIT_OK, ConfigError, UsageError
from imgpull.ops.results import PullResult
from imgpull.registry.memory import EndpointMemory


def cmd_pull(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.pull import pull

    if args.password_stdin and "-" in args.file:
        raise UsageError("--password-stdin and -f - both want standard input")
    refs = references(args, stdin)
    settings = settings_from(args, stdin)
    platform = parse_platforms(args.platform)
    reporter = make_reporter(quiet=args.quiet)
    result = pull(
        refs,
        args.output,
        platform=platform,
        all_platforms=args.all_platforms,
        archive_format=args.format,
        referrers=args.referrers,
        require_signature=args.require_signature,
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
        image_repository=args.image_repository,
        settings=settings,
        reporter=reporter,
    )
    if not args.quiet:
        for item in pushed:
            print(f"Pushed {item.destination.familiar}@{item.digest}", file=sys.stderr)
    return EXIT_OK


def cmd_copy(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.copy import copy

    if len(args.images) < 1 or (len(args.images) < 2 and not args.file):
        raise UsageError(
            "copy needs SOURCE... DEST", "e.g. imgpull copy nginx:1.27 registry.local:5000/mirror"
        )
    if args.password_stdin and "-" in args.file:
        raise UsageError("--password-stdin and -f - both want standard input")
    *sources, destination = args.images
    args.images = sources
    refs = references(args, stdin)
    settings = settings_from(args, stdin)
    reporter = make_reporter(quiet=args.quiet)
    copied = copy(
        refs,
        destination,
        platform=parse_platforms(args.platform),
        all_platforms=args.all_platforms,
        image_repository=args.image_repository,
        referrers=args.referrers,
        require_signature=args.require_signature,
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


def _summary(result: PullResult) -> None:
    err = sys.stderr
    for image in result.images:
        print(f"Pulled {image.reference.familiar}", file=err)
        print(f"  digest:   {image.digest}", file=err)
        if image.digest != image.manifest.digest:
            print(f"  manifest: {image.manifest.digest}", file=err)
        if image.config is None:
            print(f"  artifact: {image.manifest.kind}", file=err)
        else:
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
        print(f"  on a Kubernetes node: ctr -n k8s.io images import {quoted}", file=err)
    else:
        print(
            f"Use it with: skopeo copy oci-archive:{quoted} ...   (or: podman load -i {quoted})",
            file=err,
        )


def cmd_inspect(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.inspect import inspect, raw_manifest

    settings = settings_from(args, stdin)
    if args.raw:
        sys.stdout.buffer.write(raw_manifest(args.image, settings=settings))
        sys.stdout.flush()
        return EXIT_OK
    platform = parse_platform(args.platform)
    print(json.dumps(inspect(args.image, platform=platform, settings=settings), indent=2))
    return EXIT_OK


def cmd_tags(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.inspect import tags

    reporter = make_reporter(quiet=args.quiet)
    for tag in tags(args.repository, settings=settings_from(args, stdin), reporter=reporter):
        print(tag)
    return EXIT_OK


def cmd_login(args: argparse.Namespace, stdin: TextIO) -> int:
    from imgpull.ops.login import login

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
    from imgpull.ops.login import logout

    removed = logout(args.registry, settings=Settings.from_environment())
    if not args.quiet:
        message = "Removed credentials for" if removed else "Not logged in to"
        print(f"{message} {args.registry}", file=sys.stderr)
    return EXIT_OK


def cmd_cache(args: argparse.Namespace, stdin: TextIO) -> int:
    settings = Settings.from_environment(
        **({"cache_dir": args.cache_dir} if args.cache_dir else {})
    )
    if settings.cache_dir is None:
        raise ConfigError("no cache directory", "pass --cache-dir")
    cache = BlobStore(settings.cache_dir)
    memory = EndpointMemory.in_cache(settings.cache_dir)
    if args.action == "verify":
        checked, removed = cache.verify_all()
        if not args.quiet:
            print(f"checked {checked} blobs, removed {removed} that did not match", file=sys.stderr)
        return EXIT_OK
    if args.action == "forget":
        forgot = memory.forget()
        if not args.quiet:
            what = (
                "forgot what earlier runs learned about endpoints"
                if forgot
                else "nothing to forget"
            )
            print(what, file=sys.stderr)
        return EXIT_OK
    if args.action == "prune":
        if args.older_than is None and args.max_size is None and not args.all:
            raise UsageError("prune needs --older-than, --max-size or --all")
        removed, freed = cache.prune(
            older_than=args.older_than, max_size=args.max_size, everything=args.all
        )
        if args.all:
            memory.forget()
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
    remembered = sum(len(hosts) for hosts in memory.entries().values())
    print(f"endpoints: {remembered} remembered (`imgpull config` shows them)")
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
        "endpoint_memory": _memory(settings),
    }


def _memory(settings: Settings) -> dict[str, Any]:
    """What earlier runs learned about endpoints (from the cache), newest facts only."""
    memory = EndpointMemory.in_cache(settings.cache_dir if settings.use_cache else None)
    shown: dict[str, Any] = {}
    for registry, hosts in sorted(memory.entries().items()):
        for label, entry in sorted(hosts.items()):
            why = memory.failed_recently(registry, label)
            state = f"failed recently: {why}" if why else "answered" if entry.get("ok") else "-"
            shown.setdefault(registry, {})[label] = state
    return shown


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
        if key in ("files", "registries", "endpoint_memory"):
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
    memory = described["endpoint_memory"]
    print("endpoint memory:" + ("" if memory else " (empty)"))
    for registry, hosts in memory.items():
        for label, state in hosts.items():
            print(f"  {registry} via {label}: {state}")
    return EXIT_OK
