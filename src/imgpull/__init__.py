"""imgpull: pull container images from OCI/Docker registries into archives that
``docker load``, ``podman load``, skopeo and containerd read, without a Docker daemon;
push archives into registries, copy between registries, and list or rewrite the images
of Kubernetes YAML.

    import imgpull
    result = imgpull.pull(["nginx:1.27"], "nginx.tar", platform="linux/arm64")
    print(result.images[0].digest)

Every failure is an :class:`ImgpullError` (``message`` and ``hint``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from imgpull._version import __version__

# Where each public name lives. They are imported on first use, so `import imgpull` and
# the command line start in a few milliseconds, not the third of a second the whole
# package takes (urllib3, PyYAML, ...).
_LOCATIONS = {
    "Settings": "imgpull.config.settings",
    "Digest": "imgpull.digest",
    "ArchiveError": "imgpull.errors",
    "AuthError": "imgpull.errors",
    "ConfigError": "imgpull.errors",
    "DigestMismatchError": "imgpull.errors",
    "ImgpullError": "imgpull.errors",
    "InvalidPlatformError": "imgpull.errors",
    "InvalidReferenceError": "imgpull.errors",
    "NetworkError": "imgpull.errors",
    "NotFoundError": "imgpull.errors",
    "PlatformNotFoundError": "imgpull.errors",
    "ProxyError": "imgpull.errors",
    "RateLimitedError": "imgpull.errors",
    "RegistryError": "imgpull.errors",
    "SignatureError": "imgpull.errors",
    "TLSError": "imgpull.errors",
    "UnsupportedError": "imgpull.errors",
    "UsageError": "imgpull.errors",
    "images": "imgpull.kube.api",
    "rewrite": "imgpull.kube.api",
    "Descriptor": "imgpull.model",
    "ImageConfig": "imgpull.model",
    "Index": "imgpull.model",
    "Manifest": "imgpull.model",
    "Platform": "imgpull.model",
    "copy": "imgpull.ops.copy",
    "inspect": "imgpull.ops.inspect",
    "raw_manifest": "imgpull.ops.inspect",
    "tags": "imgpull.ops.inspect",
    "login": "imgpull.ops.login",
    "logout": "imgpull.ops.login",
    "pull": "imgpull.ops.pull",
    "push": "imgpull.ops.push",
    "Copied": "imgpull.ops.results",
    "PulledImage": "imgpull.ops.results",
    "PullResult": "imgpull.ops.results",
    "Pushed": "imgpull.ops.results",
    "Reporter": "imgpull.progress",
    "Reference": "imgpull.reference",
    "parse_reference": "imgpull.reference",
}
# The library's names for what kube calls them.
_RENAMED = {"images": "list_paths", "rewrite": "rewrite_paths"}

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
    "SignatureError",
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


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'imgpull' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
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
        SignatureError,
        TLSError,
        UnsupportedError,
        UsageError,
    )
    from imgpull.kube.api import list_paths as images
    from imgpull.kube.api import rewrite_paths as rewrite
    from imgpull.model import Descriptor, ImageConfig, Index, Manifest, Platform
    from imgpull.ops.copy import copy
    from imgpull.ops.inspect import inspect, raw_manifest, tags
    from imgpull.ops.login import login, logout
    from imgpull.ops.pull import pull
    from imgpull.ops.push import push
    from imgpull.ops.results import Copied, PulledImage, PullResult, Pushed
    from imgpull.progress import Reporter
    from imgpull.reference import Reference, parse_reference
