"""What every operation does first: check its arguments, and find its settings."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from imgpull.cache import BlobStore
from imgpull.config.settings import Settings
from imgpull.errors import UsageError
from imgpull.reference import Reference, parse_reference


def parse_references(
    given: Iterable[str | Reference] | str | Reference, what: str
) -> list[Reference]:
    """References from strings or Reference objects; one string is one reference."""
    if isinstance(given, str | Reference):
        given = [given]
    found: list[Reference] = []
    for item in given:
        if isinstance(item, Reference):
            found.append(item)
        elif isinstance(item, str):
            found.append(parse_reference(item))
        else:
            raise UsageError(
                f"{what}: {type(item).__name__} is not an image reference",
                "pass strings such as 'nginx:1.27' or imgpull.Reference objects",
            )
    return found


def settings_or_default(settings: Settings | None) -> Settings:
    if settings is None:
        return Settings.from_environment()
    if not isinstance(settings, Settings):
        raise UsageError(
            f"settings must be an imgpull.Settings, not {type(settings).__name__}",
            "build one with imgpull.Settings.from_environment(...)",
        )
    return settings


def open_store(settings: Settings, near: Path | None) -> tuple[BlobStore, bool]:
    """The blob store a pull uses, and whether it is a throwaway one (--no-cache)."""
    if settings.use_cache and settings.cache_dir is not None:
        return BlobStore(settings.cache_dir), False
    try:
        return BlobStore.temporary(near), True
    except OSError:
        return BlobStore.temporary(None), True
