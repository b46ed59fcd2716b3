"""The Markdown report: the machine line, then one table per image and link."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.images import PreparedImage
from bench.links import LinkSpec
from bench.machine import machine_line
from bench.records import RunRecord, Summary, summarize
from bench.tools import Tool

__all__ = ["Table", "render_markdown"]

MB = 1_000_000
COLUMNS = (
    "transport",
    "tool",
    "wall s",
    "CPU s",
    "peak RSS MiB",
    "MB/s",
    "wall x cold",
    "wall x limit",
    "CPU x cold",
    "CPU x limit",
    "output MB",
)


@dataclass(frozen=True)
class Table:
    link: LinkSpec
    image: PreparedImage
    transports: tuple[str, ...]
    tools: tuple[Tool, ...]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "n/a"
    return f"{value / base:.2f}x"


def _header(meta: dict[str, Any], links: Sequence[LinkSpec]) -> list[str]:
    machine = meta["machine"]
    link_text = "; ".join(f"**{link.key}**: {link.description}" for link in links)
    return [
        "# imgpull benchmark",
        "",
        machine_line(machine),
        "",
        f"- **Date**: {machine['date']} (total runtime {meta['runtime_s'] / 60:.1f} min"
        + (", **interrupted**" if meta.get("interrupted") else "")
        + ")",
        f"- **Command**: `{meta['command']}`",
        f"- **Load average (1 min)**: {meta['loadavg_start']:.2f} at start, "
        f"{meta['loadavg_end']:.2f} at end, median {meta['loadavg_runs_median']:.2f} at the "
        "start of the measured runs (this script's own runs count for about 1-2)",
        f"- **Rounds**: {meta['rounds']} per case, tools round-robin (the order rotated by one "
        "each round)",
        f"- **Links**: {link_text}",
        "",
        "Wall and CPU are medians over the successful rounds; peak RSS is the largest seen: "
        "the VmHWM of the tool's process tree, sampled from /proc every 10 ms (the sum over "
        "the processes alive at once; for one-process tools, that process's VmHWM). MB/s is "
        "the image's wire size (10^6 bytes) ÷ median wall. 'x cold' is the ratio of the "
        "row's median to imgpull cold's on the same image, link and transport, 'x limit' "
        "the ratio to the limit row's (below 1 is faster / cheaper). The **limit** row is "
        "the least work any verified pull must do here: curl fetching every blob into files, "
        "4 at a time, then `openssl dgst -sha256` over them on both cores, the two phases' "
        "wall times summed. See bench/README.md.",
        "",
    ]


def _row(
    transport: str,
    tool: Tool,
    s: Summary,
    image: PreparedImage,
    cold: Summary | None,
    limit: Summary | None,
    slow: bool,
) -> str:
    mbps = image.wire_bytes / MB / s.wall_s if s.wall_s else None
    rss = s.peak_rss_kb / 1024 if s.peak_rss_kb is not None else None
    out_mb = s.output_bytes / MB if s.output_bytes is not None else None
    mark = tool.mark
    cells = [
        transport,
        tool.label,
        _fmt(s.wall_s),
        _fmt(s.cpu_s) + mark,
        _fmt(rss, 0) + mark,
        _fmt(mbps, 0),
        _ratio(s.wall_s, cold.wall_s if cold else None),
        _ratio(s.wall_s, limit.wall_s if limit else None),
        _ratio(s.cpu_s, cold.cpu_s if cold else None),
        _ratio(s.cpu_s, limit.cpu_s if limit else None),
        _fmt(out_mb, 0) + ("‡" if mark else ""),
    ]
    if slow:
        cells.append(str(s.connections) if s.connections is not None else "n/a")
    cells.append(f"{s.ok}/{s.runs}")
    return "| " + " | ".join(cells) + " |"


def _table(
    table: Table,
    records: Sequence[RunRecord],
    unavailable: dict[tuple[str, str, str, str], str],
    errors: list[str],
) -> list[str]:
    image, link = table.image, table.link
    spec = image.spec
    slow = not link.is_loopback
    columns = [*COLUMNS, *(["conns"] if slow else []), "ok"]
    largest = max(layer.size for layer in image.image.layers)
    lines = [
        f"## {spec.name} over {link.title}"
        + ("" if link.is_loopback else f" ({link.description})"),
        "",
        f"{image.wire_bytes / MB:,.0f} MB on the wire ({len(spec.layers)} layers, the largest "
        f"{largest / MB:,.0f} MB; {image.uncompressed_bytes / MB:,.0f} MB unpacked). "
        f"{spec.description}.",
        "",
        "| " + " | ".join(columns) + " |",
        "|---|---|" + "--:|" * (len(columns) - 2),
    ]
    notes: list[str] = []
    for transport in table.transports:
        key = (spec.name, link.key, transport)
        sums = {
            tool.key: summarize([r for r in records if r.key == key and r.tool == tool.key])
            for tool in table.tools
        }
        cold, limit = sums.get("imgpull-cold"), sums.get("limit")
        for tool in table.tools:
            s = sums[tool.key]
            why = unavailable.get((*key, tool.key))
            if why is not None or s.runs == 0:
                na = ["n/a"] * (len(columns) - 3)
                lines.append("| " + " | ".join([transport, tool.label, *na, "0/0"]) + " |")
                if why:
                    errors.append(f"{spec.name} {link.key} {transport} {tool.label}: {why}")
                continue
            lines.append(_row(transport, tool, s, image, cold, limit, slow))
            if s.first_error:
                errors.append(f"{spec.name} {link.key} {transport} {tool.label}: {s.first_error}")
        if limit is not None and len(limit.phase_wall_s) == 2:
            fetch, hashing = limit.phase_wall_s
            notes.append(f"{transport}: fetch {fetch:.2f} s + hash {hashing:.2f} s")
    lines.append("")
    if notes:
        lines += ["Limit row, medians of its phases: " + "; ".join(notes) + ".", ""]
    return lines


def render_markdown(
    meta: dict[str, Any],
    tables: Sequence[Table],
    records: Sequence[RunRecord],
    unavailable: dict[tuple[str, str, str, str], str],
) -> str:
    links = list({t.link.key: t.link for t in tables}.values())
    lines = _header(meta, links)
    errors: list[str] = []
    for table in tables:
        lines += _table(table, records, unavailable, errors)
    if any(tool.mark for t in tables for tool in t.tools):
        lines += [
            "† docker pull: dockerd's CPU (plus the docker CLI's) and dockerd's peak RSS "
            "(reset before each pull), since the daemon does the pulling.  ‡ docker pull: the "
            "unpacked image size docker reports (`docker image inspect .Size`), not an archive.",
            "",
        ]
    lines += [
        "Output MB: size of what the tool wrote (archive, OCI directory, the limit's blob "
        "files). skopeo's docker-archive holds uncompressed layers (c/image decompresses for "
        "that format); imgpull and skopeo's OCI outputs keep the registry's compressed blobs.",
        "",
    ]
    if any(not t.link.is_loopback for t in tables):
        lines += [
            "conns: TCP connections the slow link accepted during the run (median). The "
            "throttled link caps each connection (more connections carry more), the "
            "high-latency link charges each one a connect.",
            "",
        ]
    if errors:
        lines += ["## Failures and unavailable tools", ""]
        lines += [f"- {' '.join(err.split())[:600]}" for err in errors]
        lines.append("")
    return "\n".join(lines)
