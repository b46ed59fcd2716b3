"""imgpull: pull container images from OCI/Docker registries into archives that
``docker load``, ``podman load``, skopeo and containerd read, without a Docker daemon;
push archives into registries, copy between registries, and list or rewrite the images
of Kubernetes YAML.

    import imgpull
    result = imgpull.pull(["nginx:1.27"], "nginx.tar", platform="linux/arm64")
    print(result.images[0].digest)

Every failure is an :class:`ImgpullError` (``message`` and ``hint``).
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
    InvalidPlatformError,
    InvalidReferenceError,
    NetworkError,
    NotFoundError,
    PlatformNotFoundError,
    ProxyError,
    RateLimitedError,
    RegistryError,
    TLSError,
    UnsupportedError,
    UsageError,
)
from imgpull.kube import list_images as images
from imgpull.kube import rewrite
from imgpull.model import Descriptor, ImageConfig, Index, Manifest, Platform
from imgpull.ops.copy import copy
from imgpull.ops.inspect import inspect, raw_manifest, tags
from imgpull.ops.login import login, logout
from imgpull.ops.pull import pull
from imgpull.ops.push import push
from imgpull.ops.results import Copied, PulledImage, PullResult, Pushed
from imgpull.progress import Reporter
from imgpull.reference import Reference, parse_reference

__all__ = [
    "ArchiveError",
    "AuthError",
    "ConfigError",
    "Copied",
    "Descriptor",
    "Digest",
    "DigestMismatchError",
    "ImageConfig",
    "ImgpullError",
    "Index",
    "InvalidPlatformError",
    "InvalidReferenceError",
    "Manifest",
    "NetworkError",
    "NotFoundError",
    "Platform",
    "PlatformNotFoundError",
    "ProxyError",
    "PullResult",
    "PulledImage",
    "Pushed",
    "RateLimitedError",
    "Reference",
    "RegistryError",
    "Reporter",
    "Settings",
    "TLSError",
    "UnsupportedError",
    "UsageError",
    "__version__",
    "copy",
    "images",
    "inspect",
    "login",
    "logout",
    "parse_reference",
    "pull",
    "push",
    "raw_manifest",
    "rewrite",
    "tags",
]
