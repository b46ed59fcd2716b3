"""Platforms (``linux/arm64/v8``) and which of an index's images a run takes."""

from __future__ import annotations

import platform as host_platform
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from imgpull.errors import InvalidPlatformError, PlatformNotFoundError

if TYPE_CHECKING:
    from imgpull.model.manifest import Descriptor, Index

_ARCH_ALIASES: Final = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}
_HINT: Final = "use os/arch[/variant], e.g. --platform linux/arm64 or linux/arm/v7"


@dataclass(frozen=True, slots=True)
class Platform:
    """An OS/architecture pair such as ``linux/arm64/v8``, normalised as containerd does."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        if not isinstance(text, str):
            raise InvalidPlatformError(f"invalid platform {text!r}: not a string", _HINT)
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts) or not all(p.isprintable() for p in parts):
            raise InvalidPlatformError(f"invalid platform {text!r}: use os/arch[/variant]", _HINT)
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None).normalized()

    @classmethod
    def host(cls) -> Platform:
        """Linux on this machine's CPU: images are Linux images even on macOS and Windows."""
        return cls("linux", host_platform.machine().lower()).normalized()

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture, self.architecture)
        variant = self.variant or None
        if self.architecture in ("armhf",) and variant is None:
            variant = "v7"
        if self.architecture == "armel" and variant is None:
            variant = "v6"
        if arch == "arm64" and variant == "v8":
            variant = None
        return Platform(self.os, arch, variant)

    def matches(self, other: Platform) -> bool:
        """True when ``other`` (an index entry) satisfies this (a request).

        A request without a variant accepts any variant of that architecture.
        """
        mine, theirs = self.normalized(), other.normalized()
        if (mine.os, mine.architecture) != (theirs.os, theirs.architecture):
            return False
        return mine.variant is None or mine.variant == theirs.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class PlatformSelection:
    """Which images of a multi-platform index to take: the host's by default, a list,
    or every one (the whole index, its digest preserved). Parsed once, here."""

    platforms: tuple[Platform, ...] = ()  # empty: the host's
    everything: bool = False  # --all-platforms

    @classmethod
    def of(
        cls,
        platform: str | Platform | Iterable[Platform | str] | None = None,
        everything: bool = False,
    ) -> PlatformSelection:
        """From what a caller gives: ``"linux/amd64,linux/arm64"``, a Platform, a list of
        either, or None. A bad string is an InvalidPlatformError (a UsageError)."""
        if platform is None:
            found: tuple[Platform, ...] = ()
        elif isinstance(platform, Platform):
            found = (platform,)
        elif isinstance(platform, str):
            found = tuple(Platform.parse(p) for p in platform.split(",") if p.strip())
            if not found:
                raise InvalidPlatformError(f"invalid platform {platform!r}: it is empty", _HINT)
        else:
            found = tuple(p if isinstance(p, Platform) else Platform.parse(p) for p in platform)
        return cls(tuple(dict.fromkeys(p.normalized() for p in found)), bool(everything))

    @property
    def single(self) -> Platform | None:
        """The one platform asked for, if exactly one was."""
        return self.platforms[0] if len(self.platforms) == 1 and not self.everything else None

    @property
    def several(self) -> bool:
        """Whether the result keeps an index (several platforms, or all of them)."""
        return self.everything or len(self.platforms) > 1

    def choose(self, index: Index) -> list[Descriptor]:
        """The index entries taken, in the order asked; PlatformNotFoundError if one of
        the requested platforms is not there."""
        if self.everything:
            return list(index.manifests)
        wanted = self.platforms or (Platform.host(),)
        chosen: dict[str, Descriptor] = {}
        for platform in wanted:
            descriptor = index.select(platform)
            chosen.setdefault(str(descriptor.digest), descriptor)
        return list(chosen.values())

    def primary(self, children: Sequence[Descriptor]) -> Descriptor:
        """The image docker loads: the first requested platform, else the host's, else
        the first image."""
        images = [c for c in children if c.platform is not None and not c.is_attestation]
        for wanted in (*self.platforms, Platform.host()):
            for child in images:
                if child.platform is not None and wanted.matches(child.platform):
                    return child
        if not images and not children:
            raise PlatformNotFoundError("the index lists no images")
        return (images or list(children))[0]

    def check_single(self, name: str, found: Platform) -> None:
        """A single-platform image must be the platform asked for, if one was."""
        wanted = self.single
        if wanted is not None and not wanted.matches(found):
            raise PlatformNotFoundError(
                f"{name} is a single-platform image for {found}, not {wanted}",
                f"use --platform {found} or pick another tag",
                available=(str(found),),
            )
