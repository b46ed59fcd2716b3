"""imgpull: pull container images from OCI/Docker registries into archives that
``docker load``, ``podman load`` and skopeo read, without a Docker daemon.

    import imgpull
    result = imgpull.pull(["nginx:1.27"], "nginx.tar", platform="linux/arm64")
    print(result.images[0].digest)
"""

from imgpull._version import __version__
from imgpull.config.settings import Settings
from imgpull.digest import Digest
from imgpull.errors import (
    ArchiveError,
    AuthError,
    ConfigError,
    DigestMismatchError,
    ImgpullError,
    InvalidReferenceError,
    NetworkError,
    NotFoundError,
    PlatformNotFoundError,
    ProxyError,
    RateLimitedError,
    RegistryError,
    TLSError,
    UnsupportedError,
)
from imgpull.model import Descriptor, ImageConfig, Index, Manifest, Platform
from imgpull.ops.pull import (
    PulledImage,
    PullResult,
    inspect,
    list_tags,
    login,
    logout,
    pull,
    raw_manifest,
)
from imgpull.progress import Reporter
from imgpull.reference import Reference, parse_reference

__all__ = [
    "ArchiveError",
    "AuthError",
    "ConfigError",
    "Descriptor",
    "Digest",
    "DigestMismatchError",
    "ImageConfig",
    "ImgpullError",
    "Index",
    "InvalidReferenceError",
    "Manifest",
    "NetworkError",
    "NotFoundError",
    "Platform",
    "PlatformNotFoundError",
    "ProxyError",
    "PullResult",
    "PulledImage",
    "RateLimitedError",
    "Reference",
    "RegistryError",
    "Reporter",
    "Settings",
    "TLSError",
    "UnsupportedError",
    "__version__",
    "inspect",
    "list_tags",
    "login",
    "logout",
    "parse_reference",
    "pull",
    "raw_manifest",
]
