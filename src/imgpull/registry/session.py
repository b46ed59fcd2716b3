"""The registries of one run: one HTTP client and deadline, one client per endpoint,
credentials kept to the registry they belong to, and mirror fallback.

An image's endpoints are its registry's mirrors in order of preference, then the
registry itself (unless the configuration says mirrors only). An action that fails on
one endpoint in a way another may not (refused, timed out, 5xx, 401/403, not found,
wrong digest) is tried on the next, with a warning naming the endpoint skipped.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from imgpull.config.settings import RegistryHost, Settings, default_docker_config_dir
from imgpull.errors import (
    AuthError,
    ConfigError,
    DigestMismatchError,
    ImgpullError,
    NetworkError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
)
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference
from imgpull.registry.client import RegistryClient
from imgpull.registry.credentials import find_credentials
from imgpull.registry.memory import EndpointMemory
from imgpull.registry.policy import Deadline
from imgpull.registry.transport import HttpClient

T = TypeVar("T")

# How long the first choice has before the next endpoint is asked too (RFC 8305 uses
# 250 ms for addresses; registries answer a little slower than a TCP handshake).
RACE_STAGGER: Final = 0.5

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
    """Registry clients and settings for one run, shared by every image in it.

    Endpoints are tried in the configured order, except that an endpoint that stalled
    or failed at the network level earlier in this run, or in a run of the last day
    (:class:`EndpointMemory`), goes last. With ``--timeout``, each endpoint gets at most
    its share of the time left, so a hung mirror never takes all of it.
    """

    def __init__(
        self,
        settings: Settings,
        reporter: Reporter = SILENT,
        deadline: Deadline | None = None,
    ) -> None:
        self.settings = settings
        self.reporter = reporter
        self.http = HttpClient(settings, deadline)
        cache = settings.cache_dir if settings.use_cache else None
        self.memory = EndpointMemory.in_cache(cache)
        self._clients: dict[RegistryHost, RegistryClient] = {}
        self._dead: dict[str, str] = {}  # endpoint label -> why, in this run
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
        hosts = self.memory.order(reference.registry, self.settings.endpoints(reference.registry))
        with self._lock:
            alive = [h for h in hosts if h.label not in self._dead]
            dead = [h for h in hosts if h.label in self._dead]
        return [Endpoint(h, self.client_for(h)) for h in (*alive, *dead)]

    def close(self) -> None:
        self.memory.save()
        self.http.close()

    def _learned(self, endpoint: Endpoint, error: ImgpullError | None) -> None:
        registry = endpoint.host.mirror_of or endpoint.host.name
        if error is None:
            self.memory.record(registry, endpoint.label, ok=True)
            return
        if isinstance(error, NetworkError):  # not "this mirror lacks that image"
            with self._lock:
                self._dead.setdefault(endpoint.label, error.message)
            self.memory.record(registry, endpoint.label, ok=False, why=error.message)

    def _share(self, endpoint: Endpoint, left: int) -> Deadline | None:
        """The part of the time left this endpoint may use: all of it for the last."""
        remaining = self.http.deadline.remaining()
        if remaining is None or left <= 1:
            return None
        return self.http.deadline.within(
            remaining / left, f"{endpoint.label}'s share of {self.http.overall.label}"
        )

    def first_success(
        self, endpoints: Sequence[Endpoint], action: Callable[[Endpoint], T]
    ) -> tuple[T, Endpoint]:
        """``action`` on each endpoint in turn until one succeeds; the last failure,
        naming what the skipped endpoints said, if none does."""
        skipped: list[str] = []
        for number, endpoint in enumerate(endpoints):
            try:
                with self.http.bounded(self._share(endpoint, len(endpoints) - number)):
                    result = action(endpoint)
            except SKIPPABLE as exc:
                self._learned(endpoint, exc)
                last = number == len(endpoints) - 1
                if last or self.http.overall.expired:
                    raise _also_tried(exc, skipped) from None
                skipped.append(f"{endpoint.label}: {exc.message}")
                self.reporter.warning(f"{endpoint.label} skipped: {exc.message}")
                continue
            self._learned(endpoint, None)
            return result, endpoint
        raise ConfigError("no endpoint to try")  # endpoints() never returns an empty list

    def race(
        self,
        endpoints: Sequence[Endpoint],
        action: Callable[[Endpoint], T],
        *,
        stagger: float = RACE_STAGGER,
    ) -> tuple[T, Endpoint]:
        """``action`` on the endpoints as in Happy Eyeballs (RFC 8305): the first at
        once, the next when the earlier ones have not answered within ``stagger`` seconds
        or have failed; the first success wins and the others are cancelled (their
        requests ended, their connections closed)."""
        if len(endpoints) < 2:
            return self.first_success(endpoints, action)
        return _Race(self, endpoints, action, stagger).run()


def _also_tried(error: ImgpullError, skipped: Sequence[str]) -> ImgpullError:
    if skipped:
        error.message = f"{error.message} (also tried: {'; '.join(skipped)})"
        error.args = (error.message,)
    return error


class _Race(Generic[T]):
    """One race between endpoints; see :meth:`Registries.race`."""

    def __init__(
        self,
        registries: Registries,
        endpoints: Sequence[Endpoint],
        action: Callable[[Endpoint], T],
        stagger: float,
    ) -> None:
        self.registries = registries
        self.endpoints = list(endpoints)
        self.action = action
        self.stagger = stagger
        self.results: queue.Queue[tuple[int, T | None, BaseException | None]] = queue.Queue()
        self.groups: dict[int, object] = {}
        self.threads: dict[int, threading.Thread] = {}
        self.started: dict[int, float] = {}

    def _attempt(self, number: int) -> None:
        http = self.registries.http
        with http.grouped(self.groups[number]):
            try:
                value = self.action(self.endpoints[number])
            except BaseException as exc:  # handed over to the racing thread
                self.results.put((number, None, exc))
            else:
                self.results.put((number, value, None))

    def _start(self, number: int) -> None:
        self.groups[number] = object()
        self.started[number] = time.monotonic()
        thread = threading.Thread(target=self._attempt, args=(number,), daemon=True)
        self.threads[number] = thread
        thread.start()

    def run(self) -> tuple[T, Endpoint]:
        http = self.registries.http
        skipped: list[str] = []
        pending: set[int] = set()
        following = 0
        last_error: ImgpullError | None = None
        while True:
            if following < len(self.endpoints) and (not pending or following == 0):
                pending.add(following)
                self._start(following)
                following += 1
            wait = self.stagger if following < len(self.endpoints) else http.deadline.cap(3600)
            try:
                number, value, error = self.results.get(timeout=max(wait, 0.01))
            except queue.Empty:
                http.deadline.check()
                if following < len(self.endpoints):
                    pending.add(following)
                    self._start(following)
                    following += 1
                continue
            pending.discard(number)
            endpoint = self.endpoints[number]
            if error is None:
                self._stop(pending, winner=endpoint)
                self.registries._learned(endpoint, None)
                return value, endpoint  # type: ignore[return-value]
            if not isinstance(error, SKIPPABLE):
                self._stop(pending, winner=None)
                raise error
            self.registries._learned(endpoint, error)
            last_error = error
            if pending or following < len(self.endpoints):
                skipped.append(f"{endpoint.label}: {error.message}")
                self.registries.reporter.warning(f"{endpoint.label} skipped: {error.message}")
                continue
            raise _also_tried(last_error, skipped) from None

    def _stop(self, pending: set[int], winner: Endpoint | None) -> None:
        """Cancel the attempts still running and wait for them to end; an earlier choice
        that has not answered is remembered as such."""
        http = self.registries.http
        for number in sorted(pending):
            http.cancel_group(self.groups[number])
        for number in sorted(pending):
            self.threads[number].join(timeout=5)
            endpoint = self.endpoints[number]
            http.drop_idle(endpoint.host.api_host)
            if winner is not None and number < self.endpoints.index(winner):
                waited = time.monotonic() - self.started[number]
                why = f"no answer within {waited:.1f} s ({winner.label} answered first)"
                self.registries.reporter.warning(f"{endpoint.label} skipped: {why}")
                self.registries._learned(endpoint, NetworkError(why))


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
