"""What one measured run is about: an image, over a transport, over a link."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.images import PreparedImage
from bench.links import LinkSpec, SlowLinkProcess

from tests.fixtures.registry import RegistryServer

__all__ = ["Case", "RunContext", "Transport"]

TRANSPORTS = ("http", "tls")


@dataclass
class Transport:
    name: str  # http | tls
    server: RegistryServer
    ca_cert: Path | None = None
    cert_dir: Path | None = None  # a directory holding only ca.crt (skopeo --src-cert-dir)


@dataclass
class Case:
    image: PreparedImage
    transport: Transport
    link: LinkSpec
    proxy: SlowLinkProcess | None = None  # None on loopback: straight to the registry

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` the tools talk to: the proxy's on a slow link."""
        return self.proxy.host if self.proxy is not None else self.transport.server.host

    @property
    def url(self) -> str:
        return f"{self.transport.server.scheme}://{self.host}"

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.image.spec.repo}:{self.image.spec.tag}"

    @property
    def key(self) -> tuple[str, str, str]:
        """(image, link, transport): what a table row's figures are grouped by."""
        return (self.image.spec.name, self.link.key, self.transport.name)

    @property
    def label(self) -> str:
        return f"{self.image.spec.name} {self.link.key}/{self.transport.name}"

    @property
    def slug(self) -> str:
        """For file names."""
        return f"{self.image.spec.key}-{self.link.key}-{self.transport.name}"


@dataclass
class RunContext:
    case: Case
    rundir: Path  # empty, deleted after the run: outputs go here
    round: int
    log_stem: Path  # the commands' logs are {log_stem}-pI-J.log
