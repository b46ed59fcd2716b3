"""Shared command-line options and how they turn into Settings and inputs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from imgpull.config.settings import Settings
from imgpull.errors import ConfigError, UsageError
from imgpull.model import Platform
from imgpull.naming import Mirror
from imgpull.reference import normalize_registry


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, f"see `{self.prog} --help`")


def network_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry access")
    _credential_options(group)
    _tls_options(group)
    _timing_options(group)
    _route_options(group)


def _credential_options(group: argparse._ArgumentGroup) -> None:
    """Who we are."""
    group.add_argument("-u", "--username", help="registry user name")
    group.add_argument("-p", "--password", help="password (prefer --password-stdin)")
    group.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def _tls_options(group: argparse._ArgumentGroup) -> None:
    """Whom we trust."""
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


def _timing_options(group: argparse._ArgumentGroup) -> None:
    """How long we wait, and how often we try again."""
    group.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries per request on network errors and 5xx/429 (default 3)",
    )
    group.add_argument(
        "--connect-timeout",
        type=positive,
        default=5.0,
        metavar="SECONDS",
        help="give up connecting to an endpoint after this long (default 5)",
    )
    group.add_argument(
        "--response-timeout",
        type=positive,
        default=10.0,
        metavar="SECONDS",
        help="give up on an endpoint whose answer has not begun after this long (default 10)",
    )
    group.add_argument(
        "--speed-limit",
        type=size,
        default=1024,
        metavar="BYTES",
        help="a transfer slower than this many bytes/s for --speed-time is abandoned and "
        "resumed elsewhere (default 1k)",
    )
    group.add_argument(
        "--speed-time",
        type=positive,
        default=30.0,
        metavar="SECONDS",
        help="how long a transfer may stay below --speed-limit, or send nothing (default 30)",
    )
    group.add_argument(
        "--timeout",
        type=positive,
        metavar="SECONDS",
        help="give up on the whole command after this long (slow bodies included)",
    )


def _route_options(group: argparse._ArgumentGroup) -> None:
    """Which way requests go."""
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


def list_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        metavar="LISTFILE",
        help="read image references from a file, one per line, '#' "
        "comments ('-' for standard input)",
    )


def platform_options(parser: argparse.ArgumentParser, several: str, everything: str) -> None:
    parser.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT][,...]",
        help=f"platform(s) to take from multi-platform images (default "
        f"{Platform.host()}); {several}",
    )
    parser.add_argument(
        "--all-platforms", action="store_true", help=f"take every platform: {everything}"
    )


def jobs_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=4,
        metavar="N",
        help=f"parallel {what} (default 4; blobs under 1 MiB, which wait on round trips "
        "more than on bandwidth, may use N more)",
    )


def common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="log HTTP requests (without secrets) and show tracebacks",
    )


def parse_platform(text: str | None) -> Platform | None:
    if not text:
        return None
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise UsageError(str(exc), "e.g. --platform linux/arm64 or linux/arm/v7") from exc


def parse_platforms(text: str | None) -> list[Platform] | None:
    if not text:
        return None
    return [p for p in (parse_platform(part.strip()) for part in text.split(",")) if p]


def read_password(args: argparse.Namespace, stdin: TextIO) -> str | None:
    if getattr(args, "password_stdin", False):
        if args.password is not None:
            raise UsageError("--password and --password-stdin are mutually exclusive")
        return stdin.read().rstrip("\r\n")
    password: str | None = getattr(args, "password", None)
    return password


def mirrors(values: Sequence[str]) -> dict[str, tuple[Mirror, ...]]:
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
    password = read_password(args, stdin)
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
        "connect_timeout": getattr(args, "connect_timeout", 5.0),
        "read_timeout": getattr(args, "response_timeout", 10.0),
        "speed_limit": float(getattr(args, "speed_limit", 1024)),
        "speed_time": getattr(args, "speed_time", 30.0),
        "timeout": getattr(args, "timeout", None),
        "proxy": getattr(args, "proxy", None),
        "mirrors": mirrors(getattr(args, "mirror", ())),
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


LIST_LIMIT = 4 * 1024 * 1024  # an image list of 4 MiB holds some 50,000 references


def references(args: argparse.Namespace, stdin: TextIO) -> list[str]:
    """The images named on the command line and in ``-f`` lists (bounded, text only)."""
    refs = list(args.images)
    for name in args.file:
        for line in _list_text(name, stdin).splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                refs.append(line)
    if not refs:
        raise UsageError("no images to pull", "name images or pass -f LISTFILE")
    return refs


def _list_text(name: str, stdin: TextIO) -> str:
    shown_name = "standard input" if name == "-" else name
    try:
        if name == "-":
            data = (
                stdin.buffer.read(LIST_LIMIT + 1)
                if hasattr(stdin, "buffer")
                else (stdin.read(LIST_LIMIT + 1).encode())
            )
        else:
            with Path(name).open("rb") as handle:
                data = handle.read(LIST_LIMIT + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read image list {shown_name}: {exc.strerror}") from exc
    if len(data) > LIST_LIMIT:
        raise ConfigError(
            f"image list {shown_name} is larger than {LIST_LIMIT // (1024 * 1024)} MiB",
            "an image list holds one reference per line; split it",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise ConfigError(
            f"image list {shown_name} is not text",
            "give a file with one image reference per line",
        )
    return text


_UNITS = {"": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def size(text: str) -> int:
    number, unit = text.strip().lower().rstrip("ib").rstrip("b"), ""
    if number and number[-1] in _UNITS:
        number, unit = number[:-1], number[-1]
    try:
        return int(float(number) * _UNITS[unit])
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use e.g. 500M or 10G") from None


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}: use e.g. 30")
    return value


def duration(text: str) -> float:
    value = text.strip().lower()
    unit = value[-1] if value and value[-1] in _SECONDS else "s"
    try:
        return float(value.rstrip("smhdw")) * _SECONDS[unit]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid age {text!r}: use e.g. 12h or 7d") from None


def image_repository_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-repository",
        metavar="REPO",
        help="put Kubernetes' own images (registry.k8s.io, k8s.gcr.io) where kubeadm's "
        "imageRepository would look: REPO/kube-apiserver:v1.31.0, REPO/coredns:v1.11.3",
    )


def signature_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--referrers",
        action="store_true",
        help="also take the signatures, attestations and SBOMs attached to each image "
        "(OCI referrers and cosign's .sig/.att/.sbom tags)",
    )
    parser.add_argument(
        "--require-signature",
        action="append",
        type=Path,
        metavar="KEY",
        help="refuse an image unless a cosign signature of it verifies with this public "
        "key (PEM: ECDSA P-256, Ed25519 or RSA; repeatable: any may verify); implies "
        "--referrers",
    )
