"""The limit row: the least work any verified pull must do on this machine.

Phase 1, *fetch*: one ``curl`` fetches the manifest, the config and every layer from the
same endpoint the tools use (registry or slow link, HTTP or TLS with the test CA) into
files, 4 transfers at a time over HTTP/1.1 (4 connections, as ``-j 4``; HTTP/2 would
multiplex them over one). Phase 2, *hash*: ``openssl dgst -sha256`` over those files, the
files split into two groups of about equal bytes, one process per group (both cores).
The row's wall time is the two phases' sum: receive, write once, hash once, with nothing
else (no archive, no cache, no overlap of hashing with receiving, which a real tool may
do and so beat this row on a slow link). Every digest is checked after the run (untimed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.cases import Case, RunContext
from bench.environment import Env
from bench.measure import Command, Measurement
from bench.tools import Figures, Tool

__all__ = ["Limit"]

FETCH_JOBS = 4
HASH_JOBS = 2
MANIFEST_ACCEPT = (
    "Accept: application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
_DGST_LINE = re.compile(r"^\S+\((?P<path>.+)\)= (?P<hex>[0-9a-f]{64})$")


@dataclass(frozen=True)
class _Blob:
    name: str
    path: str  # URL path on the registry
    digest: str
    size: int


def _blobs(case: Case) -> list[_Blob]:
    """Manifest, config and layers, in the order a pull meets them."""
    image, spec = case.image.image, case.image.spec
    out = [
        _Blob(
            "manifest",
            f"/v2/{spec.repo}/manifests/{spec.tag}",
            image.manifest_digest,
            len(image.manifest),
        ),
        _Blob(
            "config",
            f"/v2/{spec.repo}/blobs/{image.config_digest}",
            image.config_digest,
            len(image.config),
        ),
    ]
    for i, layer in enumerate(image.layers):
        out.append(
            _Blob(
                f"layer-{i:03d}", f"/v2/{spec.repo}/blobs/{layer.digest}", layer.digest, layer.size
            )
        )
    return out


def split_even(sizes: dict[str, int], groups: int) -> list[list[str]]:
    """Largest first into the lightest group: ``groups`` groups of about equal bytes."""
    bins: list[tuple[int, list[str]]] = [(0, []) for _ in range(groups)]
    for name in sorted(sizes, key=lambda n: -sizes[n]):
        i = min(range(groups), key=lambda j: bins[j][0])
        total, names = bins[i]
        bins[i] = (total + sizes[name], [*names, name])
    return [sorted(names) for _, names in bins if names]


class Limit(Tool):
    key = "limit"
    label = "limit"

    def __init__(self, env: Env, curl: str | None, openssl: str | None) -> None:
        self.env = env
        self.curl = curl
        self.openssl = openssl

    def unavailable(self, case: Case) -> str | None:
        if self.curl is None:
            return "curl not found"
        if self.openssl is None:
            return "openssl not found"
        return None

    def output(self, ctx: RunContext) -> Path:
        return ctx.rundir / "blobs"

    def before(self, ctx: RunContext) -> None:
        self.output(ctx).mkdir()

    def phases(self, ctx: RunContext) -> list[list[Command]]:
        assert self.curl is not None and self.openssl is not None
        case, out = ctx.case, self.output(ctx)
        blobs = _blobs(case)
        fetch = [self.curl, "-q", "--silent", "--show-error", "--fail", "--http1.1"]
        fetch += ["--parallel", "--parallel-immediate", "--parallel-max", str(FETCH_JOBS)]
        fetch += ["--noproxy", "*", "-H", MANIFEST_ACCEPT]
        if case.transport.ca_cert is not None:
            fetch += ["--cacert", str(case.transport.ca_cert)]
        for blob in blobs:
            fetch += ["-o", str(out / blob.name), case.url + blob.path]
        groups = split_even({b.name: b.size for b in blobs}, HASH_JOBS)
        hashes = [
            Command(
                [self.openssl, "dgst", "-sha256", *(str(out / n) for n in group)], self.env.base
            )
            for group in groups
        ]
        return [[Command(fetch, self.env.base)], hashes]

    def after(self, ctx: RunContext, m: Measurement) -> Figures:
        figures = Figures(
            extra={"phase_wall_s": dict(zip(("fetch", "hash"), m.phase_wall_s, strict=False))}
        )
        if m.returncode != 0 or len(m.logs) < 2:
            return figures
        seen: dict[str, str] = {}
        for log in m.logs[1]:
            for line in log.read_text(errors="replace").splitlines():
                if match := _DGST_LINE.match(line.strip()):
                    seen[Path(match["path"]).name] = "sha256:" + match["hex"]
        bad = []
        for blob in _blobs(ctx.case):
            size = (self.output(ctx) / blob.name).stat().st_size
            if seen.get(blob.name) != blob.digest or size != blob.size:
                bad.append(f"{blob.name}: {size} bytes, {seen.get(blob.name)} != {blob.digest}")
        if bad:
            figures.error = "verification failed: " + "; ".join(bad[:5])
        return figures
