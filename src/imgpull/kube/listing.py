"""``imgpull images``: the images of many inputs, validated, with what was skipped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from imgpull.errors import ConfigError
from imgpull.kube.find import ImageUse, Skipped, scan
from imgpull.kube.parse import DEFAULT_MAX_DEPTH
from imgpull.kube.sources import Failure, Source

__all__ = ["Listing", "collect_images", "list_images"]


@dataclass
class Listing:
    """Every use of every good input, what was skipped, and the inputs that failed."""

    uses: list[ImageUse] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    def images(self, *, normalized: bool = False) -> list[str]:
        """Unique references in order of first appearance: as written, or with
        ``normalized`` fully qualified (``docker.io/library/nginx:1.27``)."""
        result: dict[str, None] = {}
        for use in self.uses:
            result.setdefault(str(use.parse()) if normalized else use.reference)
        return list(result)


def collect_images(
    sources: Iterable[Source],
    *,
    keep_going: bool = False,
    failures: list[Failure] | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Listing:
    """Scan and validate every source. ConfigError for the first bad one (YAML syntax,
    an invalid reference at ``FILE:LINE:COLUMN``), or with ``keep_going`` the bad ones
    are recorded in ``Listing.failures`` (after those already in ``failures``, which
    :func:`imgpull.kube.iter_sources` fills) and skipped."""
    listing = Listing(failures=failures if failures is not None else [])
    for source in sources:
        try:
            found = scan(source, max_depth=max_depth)
            for use in found.uses:
                use.parse()
        except ConfigError as exc:
            if not keep_going:
                raise
            listing.failures.append(Failure(source.label, exc))
            continue
        listing.uses.extend(found.uses)
        listing.skipped.extend(found.skipped)
    return listing


def list_images(sources: Sequence[Source], *, normalized: bool = False) -> list[str]:
    """The image references of all ``sources``, unique, in order of first appearance.

    As written (``nginx:1.27``), or with ``normalized`` fully qualified
    (``docker.io/library/nginx:1.27``; a missing tag becomes ``:latest``). Every reference
    is validated: ConfigError naming ``FILE:LINE:COLUMN`` for the first invalid one. All
    sources are parsed before anything is returned.
    """
    return collect_images(sources).images(normalized=normalized)
