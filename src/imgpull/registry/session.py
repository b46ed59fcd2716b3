"""The registries of one run: one HTTP client and deadline, one client per endpoint,
credentials kept to the registry they belong to, and mirror fallback.

An image's endpoints are its registry's mirrors in order of preference, then the
registry itself (unless the configuration says mirrors only). An action that fails on
one endpoint in a way another may not (refused, timed out, 5xx, 401/403, not found,
wrong digest) is tried on the next, with a warning naming the endpoint skipped.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from imgpull.config.settings import RegistryHost, Settings, default_docker_config_dir
from imgpull.errors import (
    AuthError,
    ConfigError,
    DigestMismatchError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
)
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference
from imgpull.registry.client import RegistryClient
from imgpull.registry.credentials import find_credentials
from imgpull.registry.policy import Deadline
from imgpull.registry.transport import HttpClient

T = TypeVar("T")

# Failures after which the next endpoint (mirror, then upstream) is worth a try.
SKIPPABLE = (
    NetworkError,
    RegistryError,
    AuthError,
    NotFoundError,
    RateLimitedError,
    DigestMismatchError,
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A place that serves a registry's repositories: one of its mirrors, or itself."""

    host: RegistryHost
    client: RegistryClient

    @property
    def label(self) -> str:
        return self.host.label


class Registries:
    """Registry clients and settings for one run, shared by every image in it."""

    def __init__(
        self,
        settings: Settings,
        reporter: Reporter = SILENT,
        deadline: Deadline | None = None,
    ) -> None:
        self.settings = settings
        self.reporter = reporter
        self.http = HttpClient(settings, deadline)
        self._clients: dict[RegistryHost, RegistryClient] = {}
        self._lock = threading.Lock()

    def client_for(self, host: RegistryHost) -> RegistryClient:
        with self._lock:
            client = self._clients.get(host)
            if client is None:
                # Flag credentials belong to the one registry they were given for, never
                # to its mirrors or other registries; those get what config.json holds.
                owner = self.settings.credential_registry
                ours = host.mirror_of is None and (owner is None or owner == host.name)
                credentials = find_credentials(
                    host.name,
                    config_dir=default_docker_config_dir(self.settings),
                    username=self.settings.username if ours else None,
                    password=self.settings.password if ours else None,
                )
                client = RegistryClient(
                    host, self.http, credentials, manifest_limit=self.settings.manifest_limit
                )
                self._clients[host] = client
            return client

    def client(self, reference: Reference) -> RegistryClient:
        """The client of the registry itself (no mirrors)."""
        return self.client_for(self.settings.registry_host(reference.registry))

    def endpoints(self, reference: Reference) -> list[Endpoint]:
        return [
            Endpoint(h, self.client_for(h)) for h in self.settings.endpoints(reference.registry)
        ]

    def close(self) -> None:
        self.http.close()

    def first_success(
        self, endpoints: Sequence[Endpoint], action: Callable[[Endpoint], T]
    ) -> tuple[T, Endpoint]:
        """``action`` on each endpoint in turn until one succeeds; the last failure,
        naming what the skipped endpoints said, if none does."""
        skipped: list[str] = []
        for number, endpoint in enumerate(endpoints):
            try:
                return action(endpoint), endpoint
            except SKIPPABLE as exc:
                last = number == len(endpoints) - 1
                if last or self.http.deadline.expired:
                    if skipped:
                        exc.message = f"{exc.message} (also tried: {'; '.join(skipped)})"
                        exc.args = (exc.message,)
                    raise
                skipped.append(f"{endpoint.label}: {exc.message}")
                self.reporter.warning(f"{endpoint.label} skipped: {exc.message}")
        raise ConfigError("no endpoint to try")  # endpoints() never returns an empty list


def scope_credentials(settings: Settings, registries: Iterable[str]) -> Settings:
    """Settings whose -u/-p credentials belong to the one registry of ``registries``;
    refused when that is ambiguous, so a password never reaches a second registry."""
    if settings.username is None or settings.credential_registry is not None:
        return settings
    names = sorted(set(registries))
    if len(names) > 1:
        raise ConfigError(
            "-u/--username applies to one registry, but this run talks to " + ", ".join(names),
            "save credentials for each with `imgpull login REGISTRY` instead",
        )
    return dataclasses.replace(settings, credential_registry=names[0] if names else None)
