"""Command-line options, and the plan they make: which images, tools and transports per link."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.images import ALL_IMAGES
from bench.links import ALL_LINKS, LinkSpec

__all__ = ["TOOL_KEYS", "LinkPlan", "Options", "parse_args"]

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH_DIR / "results" / "latest.md"
DEFAULT_PROFILE_DIR = BENCH_DIR / "results" / "profile"
TRANSPORTS = ("http", "tls")
#: Every tool, in the order the tables show them.
TOOL_KEYS = (
    "limit",
    "imgpull-cold",
    "imgpull-warm",
    "imgpull-nocache",
    "skopeo-docker-archive",
    "skopeo-oci",
    "skopeo-oci-archive",
    "docker",
)
TOOL_ALIASES = {
    "imgpull": ("imgpull-cold", "imgpull-warm", "imgpull-nocache"),
    "skopeo": ("skopeo-docker-archive", "skopeo-oci", "skopeo-oci-archive"),
    "all": TOOL_KEYS,
}


@dataclass(frozen=True)
class LinkPlan:
    link: LinkSpec
    images: tuple[str, ...]
    tools: tuple[str, ...]
    transports: tuple[str, ...]


@dataclass(frozen=True)
class Options:
    rounds: int
    plans: tuple[LinkPlan, ...]
    jobs: int | None
    imgpull_src: Path | None
    docker: bool
    timeout: float
    out: Path
    profile: bool
    profile_dir: Path
    argv: tuple[str, ...]
    workdir: Path = Path("/tmp")

    @property
    def image_keys(self) -> list[str]:
        """Every image some link needs, each once."""
        return list(dict.fromkeys(k for p in self.plans for k in p.images))

    @property
    def tool_keys(self) -> list[str]:
        wanted = {k for p in self.plans for k in p.tools}
        return [k for k in TOOL_KEYS if k in wanted]


def _split(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _tools(parser: argparse.ArgumentParser, names: list[str]) -> tuple[str, ...]:
    chosen: set[str] = set()
    for name in names:
        if name in TOOL_ALIASES:
            chosen.update(TOOL_ALIASES[name])
        elif name in TOOL_KEYS:
            chosen.add(name)
        else:
            known = ", ".join([*TOOL_KEYS, *TOOL_ALIASES])
            parser.error(f"unknown tool {name!r} (choose from {known})")
    return tuple(k for k in TOOL_KEYS if k in chosen)


def _check(
    parser: argparse.ArgumentParser, kind: str, names: list[str], known: Sequence[str]
) -> None:
    for name in names:
        if name not in known:
            parser.error(f"unknown {kind} {name!r} (choose from {', '.join(known)})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark imgpull against the machine's limit, skopeo and docker pull, "
        "on loopback and over slow links.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 round, bench/mid:200m on loopback only"
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds per case (default 5)")
    parser.add_argument(
        "--links",
        default=None,
        help=f"comma-separated links from {','.join(ALL_LINKS)} (default all; --quick, "
        "--profile: loopback)",
    )
    parser.add_argument(
        "--images",
        default=None,
        help=f"comma-separated images from {','.join(ALL_IMAGES)}, for every link (default: "
        "each link's own: loopback big,many,mid; throttled medium; latency many)",
    )
    parser.add_argument(
        "--tools",
        default=None,
        help=f"comma-separated tools from {','.join(TOOL_KEYS)} or the groups "
        f"{','.join(TOOL_ALIASES)} (default: loopback all; slow links "
        "limit,imgpull-cold,skopeo-oci,docker)",
    )
    parser.add_argument("--transports", default=None, help="http,tls (default both)")
    parser.add_argument("--jobs", type=int, default=None, help="imgpull -j (default: its own)")
    parser.add_argument(
        "--imgpull-src",
        type=Path,
        default=None,
        help="measure the imgpull package in this src/ directory instead of the checkout's "
        "(e.g. `git archive HEAD src | tar -x -C /tmp/head`, then /tmp/head/src)",
    )
    parser.add_argument("--no-docker", action="store_true", help="do not start dockerd")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds before a run is killed"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown report path")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/tmp"),
        help="where the tools write their outputs and caches (default /tmp); e.g. an XFS "
        "or btrfs mount, where imgpull clones cached blobs into archives",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of the rounds: run imgpull cold and warm once under cProfile "
        "(default image mid, loopback) and write .pstats and top-25 text files",
    )
    parser.add_argument(
        "--profile-dir", type=Path, default=DEFAULT_PROFILE_DIR, help="where --profile writes"
    )
    return parser


def parse_args(argv: Sequence[str]) -> Options:
    parser = _parser()
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    link_keys = _split(args.links)
    if link_keys is None:
        link_keys = ["loopback"] if args.quick or args.profile else list(ALL_LINKS)
    _check(parser, "link", link_keys, list(ALL_LINKS))
    images = _split(args.images)
    if images is None and (args.quick or args.profile):
        images = ["mid"]
    if images is not None:
        _check(parser, "image", images, list(ALL_IMAGES))
    transports = _split(args.transports) or list(TRANSPORTS)
    _check(parser, "transport", transports, TRANSPORTS)
    tool_names = _split(args.tools)
    plans = []
    for key in dict.fromkeys(link_keys):
        link = ALL_LINKS[key]
        tools = _tools(parser, tool_names) if tool_names is not None else link.default_tools
        plans.append(
            LinkPlan(
                link,
                tuple(dict.fromkeys(images or link.default_images)),
                tools,
                tuple(t for t in TRANSPORTS if t in transports),
            )
        )
    if args.profile:  # only imgpull is profiled, cold then warm
        plans = [LinkPlan(p.link, p.images, ("imgpull-cold",), p.transports) for p in plans]
    return Options(
        rounds=rounds,
        plans=tuple(plans),
        jobs=args.jobs,
        imgpull_src=args.imgpull_src.resolve() if args.imgpull_src else None,
        docker=not args.no_docker,
        timeout=args.timeout,
        out=args.out,
        profile=args.profile,
        profile_dir=args.profile_dir,
        argv=tuple(argv),
        workdir=args.workdir,
    )
