"""Registries as an image sink: blobs the destination holds are skipped (HEAD), blobs on
the same registry are mounted (from the source repository, or from a repository this
run already put them in), the rest uploaded; manifests last, keeping their exact bytes
so digests survive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from imgpull.digest import Digest
from imgpull.errors import ConfigError
from imgpull.model import Descriptor, Index, Manifest
from imgpull.reference import Reference
from imgpull.registry import referrers
from imgpull.registry.client import RegistryClient
from imgpull.registry.session import Registries
from imgpull.registry.upload import blob_exists, mount_blob, put_manifest, upload_blob
from imgpull.source import Attached, BlobContent, Placement


class RegistrySink:
    """Pushes to the registries the placements' names point at."""

    def __init__(self, registries: Registries, *, chunk_size: int | None = None) -> None:
        self.registries = registries
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._exists: dict[tuple[str, str, Digest], bool] = {}
        self._homes: dict[tuple[str, Digest], str] = {}  # where this run put a blob

    def begin(self, placements: Sequence[Placement]) -> None:
        for placement in placements:
            if not placement.names:
                raise ConfigError(
                    f"{placement.image.label} has no destination name",
                    "give a destination, e.g. registry.local:5000/team/app:1",
                )

    def _destinations(self, placements: Sequence[Placement]) -> list[tuple[RegistryClient, str]]:
        found: dict[tuple[str, str], tuple[RegistryClient, str]] = {}
        for placement in placements:
            for name in placement.names:
                client = self.registries.client(name)
                found.setdefault((client.host.api_host, name.repository), (client, name.repository))
        return list(found.values())

    def _has(self, client: RegistryClient, repository: str, digest: Digest) -> bool:
        key = (client.host.api_host, repository, digest)
        with self._lock:
            known = self._exists.get(key)
        if known is None:
            known = blob_exists(client, repository, digest)
            with self._lock:
                self._exists[key] = known
        return known

    def has_blob(self, descriptor: Descriptor, placements: Sequence[Placement]) -> bool:
        if descriptor.urls:
            return True  # foreign layers stay where their URLs point, as docker push does
        return all(
            self._has(client, repository, descriptor.digest)
            for client, repository in self._destinations(placements)
        )

    def put_blob(
        self,
        content: BlobContent,
        placements: Sequence[Placement],
        progress: Callable[[int], None] | None = None,
    ) -> str:
        digest = content.descriptor.digest
        how = "exists"
        for client, repository in self._destinations(placements):
            host = client.host.api_host
            if self._has(client, repository, digest):
                continue
            home = self._home(host, digest, placements)
            if (
                home is not None
                and home != repository
                and mount_blob(client, repository, digest, home)
            ):
                how = f"mounted from {home}"
            else:
                with content.open() as reader:
                    upload_blob(
                        client,
                        repository,
                        reader,
                        digest,
                        chunk_size=self.chunk_size,
                        progress=progress,
                    )
                how = "uploaded"
            with self._lock:
                self._exists[(host, repository, digest)] = True
                self._homes.setdefault((host, digest), repository)
        return how

    def _home(self, host: str, digest: Digest, placements: Sequence[Placement]) -> str | None:
        """A repository of ``host`` that holds the blob: one this run put it in, or the
        source repository of an image on the same registry."""
        with self._lock:
            home = self._homes.get((host, digest))
        if home is not None:
            return home
        for placement in placements:
            origin = placement.image.origin
            if origin is not None and origin[0] == host:
                return origin[1]
        return None

    def put_manifest(
        self, manifest: Manifest | Index, name: Reference | None, *, by_digest: bool = False
    ) -> Digest:
        if name is None:
            raise ConfigError("a manifest to push has no destination name")
        client = self.registries.client(name)
        if by_digest:
            reference = str(manifest.digest)
        else:
            reference = name.tag or (str(name.digest) if name.digest else "latest")
        return put_manifest(client, name.repository, reference, manifest.raw, manifest.media_type)

    def put_attached(self, attached: Attached, name: Reference | None) -> None:
        if name is None:
            raise ConfigError("a signature to push has no destination name")
        referrers.put(self.registries.client(name), name.repository, attached)

    def commit(self) -> None:
        """Nothing to do: each manifest is live once put, and put only after its blobs."""

    def abort(self) -> None:
        """Blobs uploaded before a failure stay (no manifest refers to them; registries
        collect them); nothing else was published."""
