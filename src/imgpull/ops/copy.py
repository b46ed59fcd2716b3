"""``copy``: registry to registry, through the same mirrors, proxies and credentials as
pull, without writing to disk; every blob verified before the destination takes it."""

from __future__ import annotations

from collections.abc import Sequence

from imgpull.config.settings import Settings
from imgpull.errors import UsageError
from imgpull.model import Index, Platform, PlatformSelection
from imgpull.naming import destination_for
from imgpull.ops.common import parse_references, settings_or_default
from imgpull.ops.results import Copied
from imgpull.ops.signed import KeyPaths, load_keys, require_signatures
from imgpull.progress import SILENT, Reporter
from imgpull.reference import Reference
from imgpull.registry.session import Registries, scope_credentials
from imgpull.registry.sink import RegistrySink
from imgpull.registry.source import RegistrySource
from imgpull.source import Placement, SourceImage
from imgpull.transfer import transfer

__all__ = ["copy"]


def copy(
    sources: Sequence[str | Reference] | str,
    destination: str,
    *,
    platform: str | Platform | Sequence[Platform | str] | None = None,
    all_platforms: bool = False,
    image_repository: str | None = None,
    referrers: bool = False,
    require_signature: KeyPaths = None,
    settings: Settings | None = None,
    reporter: Reporter = SILENT,
) -> list[Copied]:
    """Copy images from registry to registry. With one source ``destination`` may be a
    full reference; with several it is a ``registry[/namespace]`` prefix under which
    each image keeps its path, as with push (``image_repository``: Kubernetes' images as
    kubeadm names them)."""
    refs = parse_references(sources, "copy")
    if not refs:
        raise UsageError("no images to copy", "name at least one source image")
    if not isinstance(destination, str) or not destination:
        raise UsageError("copy needs a destination", "e.g. registry.local:5000/mirror")
    several = len(refs) > 1
    # -u/-p are for the destination (the push side); sources use saved credentials.
    targets = [
        destination_for(ref, destination, several=several, image_repository=image_repository)
        for ref in refs
    ]
    settings = scope_credentials(settings_or_default(settings), (t.registry for t in targets))
    selection = PlatformSelection.of(platform, all_platforms)
    keys = load_keys(require_signature)
    registries = Registries(settings, reporter)
    try:
        source = RegistrySource(
            registries, refs, reporter=reporter, read_configs=False,
            referrers=referrers or bool(keys),
        )  # fmt: skip
        images = source.resolve(selection)
        if keys:
            require_signatures(source, images, keys)
        placements = [
            Placement(image, (target,)) for image, target in zip(images, targets, strict=True)
        ]
        digests = transfer(
            source,
            RegistrySink(registries),
            placements,
            jobs=settings.jobs,
            reporter=reporter,
            action="copying",
            on_cancel=registries.http.cancel_all,
        )
    finally:
        registries.close()
        reporter.close()
    return [
        Copied(ref, target, digest, _platforms(image))
        for ref, target, image, digest in zip(refs, targets, images, digests, strict=True)
    ]


def _platforms(image: SourceImage) -> tuple[str, ...]:
    """The platforms taken from an index (none for a single-platform image)."""
    if isinstance(image.top, Index):
        return tuple(str(p) for p in image.top.platforms)
    if image.resolved == image.primary.digest or image.platform is None:
        return ()
    return (str(image.platform),)
