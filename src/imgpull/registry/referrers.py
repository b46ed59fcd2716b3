"""What refers to an image in a registry, and how to put it back.

Found three ways, as the tools that write them do:

* the OCI 1.1 referrers API, ``GET /v2/NAME/referrers/DIGEST``: an index of the manifests
  whose ``subject`` is that digest;
* where a registry has no such API (distribution 2.8 among them), the fallback tag
  ``sha256-HEX``, an index kept up to date by whoever pushes a referrer;
* cosign's own tags, ``sha256-HEX.sig`` (signatures), ``.att`` (attestations) and
  ``.sbom`` (SBOMs).

Putting back: a tagged one under its tag; a referrer by its digest, and where the
registry does not answer that it took the ``subject`` (its ``OCI-Subject`` header), the
fallback tag's index gains its descriptor, so both ways of looking keep working.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Final

from imgpull.digest import Digest
from imgpull.errors import ImgpullError, NotFoundError
from imgpull.model import OCI_INDEX, Descriptor, Index, Manifest, parse_manifest
from imgpull.registry.client import RegistryClient
from imgpull.registry.upload import put_manifest, put_referrer
from imgpull.source import Attached

log = logging.getLogger("imgpull.registry.referrers")

COSIGN_SUFFIXES: Final = (".sig", ".att", ".sbom")
MAX_REFERRERS: Final = 64  # per subject: more is not an image's signatures but an attack


def fallback_tag(subject: Digest) -> str:
    return f"{subject.algorithm}-{subject.hex}"


def cosign_tags(subject: Digest) -> list[str]:
    return [fallback_tag(subject) + suffix for suffix in COSIGN_SUFFIXES]


def find(client: RegistryClient, repository: str, subject: Digest) -> list[Attached]:
    """Everything that refers to ``subject`` in ``repository``, each manifest fetched and
    verified (by the digest the listing gives)."""
    found: dict[Digest, Attached] = {}
    listed = _listed(client, repository, subject)
    for descriptor in listed[:MAX_REFERRERS]:
        manifest = _manifest(client, repository, str(descriptor.digest), descriptor.size)
        if manifest is not None and manifest.digest not in found:
            found[manifest.digest] = Attached(manifest, subject)
    for tag in cosign_tags(subject):
        manifest = _manifest(client, repository, tag, None)
        if manifest is not None:
            found[manifest.digest] = Attached(manifest, subject, tag)
    return list(found.values())


def _listed(client: RegistryClient, repository: str, subject: Digest) -> list[Descriptor]:
    """The referrers API's answer, else the fallback tag's index, else nothing."""
    path = f"/v2/{client.host.repository(repository)}/referrers/{subject}"
    response = client.request(
        "GET", path, repository=client.host.repository(repository),
        headers={"Accept": OCI_INDEX},
    )  # fmt: skip
    if response.status == 200:
        raw = response.read(client.manifest_limit, "a referrers list")
        try:
            index = parse_manifest(raw, OCI_INDEX, Digest.of(raw))
        except ImgpullError:
            index = None
        if isinstance(index, Index):
            return list(index.manifests)
    else:
        response.discard()
    try:
        tagged = client.get_manifest(repository, fallback_tag(subject))
    except NotFoundError:
        return []
    return list(tagged.manifests) if isinstance(tagged, Index) else []


def _manifest(
    client: RegistryClient, repository: str, identifier: str, size: int | None
) -> Manifest | None:
    try:
        found = client.get_manifest(repository, identifier, size=size)
    except NotFoundError:
        return None
    if not isinstance(found, Manifest):
        log.debug("%s: an index refers to an image; left out", identifier)
        return None
    return found


def put(client: RegistryClient, repository: str, attached: Attached) -> None:
    """Store ``attached`` in ``repository`` so that both ways of looking find it."""
    manifest = attached.manifest
    if attached.tag is not None:
        put_manifest(client, repository, attached.tag, manifest.raw, manifest.media_type)
        return
    if not put_referrer(client, repository, manifest.raw, manifest.media_type):
        _add_to_fallback(client, repository, attached)


def _add_to_fallback(client: RegistryClient, repository: str, attached: Attached) -> None:
    """The fallback tag's index, with this referrer's descriptor added (once)."""
    tag = fallback_tag(attached.subject)
    try:
        current = client.get_manifest(repository, tag)
        entries = list(_entries(current.raw)) if isinstance(current, Index) else []
    except NotFoundError:
        entries = []
    if any(e.get("digest") == str(attached.manifest.digest) for e in entries):
        return
    entries.append(_descriptor(attached.manifest))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    raw = json.dumps(index, separators=(",", ":")).encode()
    put_manifest(client, repository, tag, raw, OCI_INDEX)


def _entries(raw: bytes) -> Iterator[dict[str, object]]:
    data = json.loads(raw)
    for entry in data.get("manifests") or []:
        if isinstance(entry, dict):
            yield entry


def _descriptor(manifest: Manifest) -> dict[str, object]:
    """A referrers-list entry: the descriptor, with the artifact type and annotations."""
    entry: dict[str, object] = manifest.descriptor.to_json()
    entry["artifactType"] = manifest.artifact_type or manifest.config.media_type
    if manifest.annotations:
        entry["annotations"] = dict(manifest.annotations)
    return entry
