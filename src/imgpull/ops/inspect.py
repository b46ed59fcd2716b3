"""Look before you pull: ``inspect`` (JSON), ``raw_manifest`` and ``tags``."""

from __future__ import annotations

from typing import Any

from imgpull.config.settings import Settings
from imgpull.digest import Digest
from imgpull.errors import ImgpullError, UsageError
from imgpull.model import Descriptor, ImageConfig, Index, Manifest, Platform
from imgpull.ops.common import parse_references, settings_or_default
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference, parse_repository
from imgpull.registry import referrers
from imgpull.registry.client import RegistryClient
from imgpull.registry.session import Endpoint, Registries

__all__ = ["inspect", "raw_manifest", "tags"]


def _fetch(registries: Registries, ref: Reference) -> tuple[Manifest | Index, Endpoint]:
    return registries.first_success(
        registries.endpoints(ref),
        lambda e: e.client.get_manifest(ref.repository, ref.identifier),
    )


def inspect(
    reference: str | Reference,
    *,
    platform: str | Platform | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """A JSON-ready description of an image or index, without downloading layers."""
    [ref] = parse_references(reference, "inspect")
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    registries = Registries(settings_or_default(settings))
    try:
        found, endpoint = _fetch(registries, ref)
        result: dict[str, Any] = {
            "name": ref.familiar,
            "reference": str(ref),
            "digest": str(found.digest),
            "mediaType": found.media_type,
            "endpoint": endpoint.label,
        }
        client = endpoint.client
        try:
            result["referrers"] = _referrers(client, ref, found.digest)
        except ImgpullError as exc:  # the image is still described
            result["referrers"], result["referrersError"] = [], exc.message
        if isinstance(found, Manifest):
            result.update(_describe(client, ref, found, registries.settings))
            return result
        result["platforms"] = [_entry(d) for d in found.images()]
        others = [_entry(d) for d in found.manifests if d.platform is None or d.is_attestation]
        if others:
            result["attachments"] = others
        if wanted is not None:
            child = client.get_manifest(ref.repository, str(found.select(wanted).digest))
            if isinstance(child, Manifest):
                result["image"] = _describe(client, ref, child, registries.settings)
        return result
    finally:
        registries.close()


def _referrers(client: RegistryClient, ref: Reference, subject: Digest) -> list[dict[str, Any]]:
    """What refers to ``subject``: signatures, attestations, SBOMs, however stored."""
    described = []
    for attached in referrers.find(client, ref.repository, subject):
        manifest = attached.manifest
        entry: dict[str, Any] = {
            "digest": str(manifest.digest),
            "mediaType": manifest.media_type,
            "artifactType": manifest.artifact_type or manifest.config.media_type,
            "size": manifest.size,
            "layers": [layer.media_type for layer in manifest.layers],
            "found": f"tag {attached.tag}" if attached.tag else "referrer (subject)",
        }
        if manifest.annotations:
            entry["annotations"] = dict(manifest.annotations)
        described.append(entry)
    return described


def _entry(descriptor: Descriptor) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "platform": str(descriptor.platform) if descriptor.platform else None,
        "digest": str(descriptor.digest),
        "size": descriptor.size,
        "mediaType": descriptor.media_type,
    }
    if descriptor.annotations:
        entry["annotations"] = dict(descriptor.annotations)
    return entry


def _describe(
    client: RegistryClient, ref: Reference, manifest: Manifest, settings: Settings
) -> dict[str, Any]:
    described: dict[str, Any] = {
        "manifestDigest": str(manifest.digest),
        "manifestMediaType": manifest.media_type,
        "configMediaType": manifest.config.media_type,
    }
    if manifest.artifact_type:
        described["artifactType"] = manifest.artifact_type
    layers = [
        {"digest": str(d.digest), "size": d.size, "mediaType": d.media_type}
        for d in manifest.layers
    ]
    if not manifest.is_image:
        described.update(layers=layers, size=manifest.size)
        return described
    raw = client.fetch_blob(ref.repository, manifest.config, settings.manifest_limit)
    config = ImageConfig.parse(raw, manifest.config.digest)
    described.update(
        platform=str(config.platform.normalized()),
        created=config.created,
        config={
            "digest": str(manifest.config.digest),
            "entrypoint": list(config.entrypoint),
            "cmd": list(config.cmd),
            "env": list(config.env),
            "workingDir": config.working_dir,
            "user": config.user,
            "labels": dict(config.labels),
        },
        layers=layers,
        size=manifest.size,
    )
    return described


def raw_manifest(reference: str | Reference, *, settings: Settings | None = None) -> bytes:
    """The manifest or index exactly as the registry served it (digest verified)."""
    [ref] = parse_references(reference, "raw_manifest")
    registries = Registries(settings_or_default(settings))
    try:
        return _fetch(registries, ref)[0].raw
    finally:
        registries.close()


def tags(
    repository: str | Reference,
    *,
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> list[str]:
    """Every tag of a repository, following the registry's pagination (bounded). Names
    that are not valid tags are left out, with a warning."""
    if isinstance(repository, Reference):
        ref = repository
    elif isinstance(repository, str):
        ref = parse_repository(repository)
    else:
        raise UsageError(f"tags: {type(repository).__name__} is not a repository name")
    registries = Registries(settings_or_default(settings), reporter)
    skipped: list[str] = []
    try:
        found, _ = registries.first_success(
            registries.endpoints(ref), lambda e: list(e.client.tags(ref.repository, skipped))
        )
    finally:
        registries.close()
    if skipped:
        reporter.warning(f"left out {len(skipped)} names that are not valid tags")
    return found
