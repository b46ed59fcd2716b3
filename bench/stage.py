"""Setting the stage, untimed: images, registries, slow links, dockerd, the cases.

Every process started here registers how to stop it in ``cleanups``; the caller runs them
in reverse order, also on Ctrl-C.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.cases import Case, Transport
from bench.docker_tool import start_dockerd
from bench.environment import Env
from bench.images import ALL_IMAGES, PreparedImage, ensure_image, push_image
from bench.links import ALL_LINKS, SlowLinkProcess
from bench.options import Options

from tests.fixtures.certs import make_ca
from tests.fixtures.loaders import DockerDaemon
from tests.fixtures.registry import start_registry

__all__ = ["Stage", "build_stage"]

MB = 1_000_000
Log = Callable[[str], None]


@dataclass
class Stage:
    tmp: Path
    env: Env
    storage: Path
    images: dict[str, PreparedImage]
    transports: dict[str, Transport]
    proxies: dict[tuple[str, str], SlowLinkProcess]  # (link, transport) -> its proxy
    daemon: DockerDaemon | None
    docker_note: str | None

    def cases(self, opts: Options) -> list[Case]:
        """Link by link, image by image, transport by transport: the report's order."""
        out = []
        for plan in opts.plans:
            for key in plan.images:
                for name in plan.transports:
                    proxy = self.proxies.get((plan.link.key, name))
                    out.append(Case(self.images[key], self.transports[name], plan.link, proxy))
        return out


def _blob_file(storage: Path, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    return storage / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"


def warm_page_cache(storage: Path, image: PreparedImage) -> None:
    """Read the registry's copy of every blob once, so no measured run reads the disk."""
    digests = [image.image.config_digest, *(layer.digest for layer in image.image.layers)]
    for digest in digests:
        with _blob_file(storage, digest).open("rb") as fh:
            while fh.read(8 * 1024 * 1024):
                pass


def _push(images: list[PreparedImage], url: str, log: Log) -> None:
    for image in images:
        t0 = time.perf_counter()
        digest, sent = push_image(image, url, log=log)
        done = (
            f"pushed {sent / MB:,.0f} MB in {time.perf_counter() - t0:.1f}s"
            if sent
            else "already in the registry"
        )
        log(f"{image.spec.name}: {digest[:19]}, {image.wire_bytes / MB:,.0f} MB wire, {done}")


def build_stage(
    opts: Options, tmp: Path, work_dir: Path, cleanups: list[Callable[[], None]], log: Log
) -> Stage:
    env = Env.create(tmp / "env")
    # 1. images, built offline and cached in bench/.work
    images = {
        key: ensure_image(ALL_IMAGES[key], work_dir / "layers", log=log) for key in opts.image_keys
    }
    # 2. registries: plain HTTP and TLS over one storage
    ca = make_ca(tmp / "ca")
    cert_dir = tmp / "skopeo-certs"
    cert_dir.mkdir()
    shutil.copy(ca.ca_cert, cert_dir / "ca.crt")
    storage = work_dir / "registry"
    http_server = start_registry(tmp / "reg-http", storage=storage, name="bench-http")
    cleanups.append(http_server.stop)
    tls_server = start_registry(tmp / "reg-tls", storage=storage, tls=ca, name="bench-tls")
    cleanups.append(tls_server.stop)
    transports = {
        "http": Transport("http", http_server),
        "tls": Transport("tls", tls_server, ca_cert=ca.ca_cert, cert_dir=cert_dir),
    }
    log(f"registries: {http_server.url} and {tls_server.url} on {storage}")
    _push(list(images.values()), http_server.url, log)
    for image in images.values():
        warm_page_cache(storage, image)
    # 3. slow links: one proxy per link and transport in use
    proxies: dict[tuple[str, str], SlowLinkProcess] = {}
    for plan in opts.plans:
        if plan.link.is_loopback:
            continue
        for name in plan.transports:
            proxy = SlowLinkProcess(ALL_LINKS[plan.link.key], transports[name].server.host, tmp)
            cleanups.append(proxy.stop)
            proxies[(plan.link.key, name)] = proxy.start()
            log(f"{plan.link.key} link for {name}: {proxy.host} -> {proxy.upstream}")
    # 4. dockerd, when docker pull is among the tools
    daemon: DockerDaemon | None = None
    note: str | None = "not requested"
    if "docker" in opts.tool_keys and opts.docker:
        daemon, note = start_dockerd(cleanups, log)
    return Stage(tmp, env, storage, images, transports, proxies, daemon, note)
