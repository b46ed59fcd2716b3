"""The public surface is exactly what __all__ says, and the layering of modules holds."""

from __future__ import annotations

import ast
from pathlib import Path

import imgpull

PUBLIC = {
    "ArchiveError", "AuthError", "ConfigError", "Descriptor", "Digest", "DigestMismatchError",
    "ImageConfig", "ImgpullError", "Index", "InvalidReferenceError", "Manifest",
    "NetworkError", "NotFoundError", "Platform", "PlatformNotFoundError", "ProxyError",
    "PullResult", "PulledImage", "RateLimitedError", "Reference", "RegistryError",
    "Reporter", "Settings", "TLSError", "UnsupportedError", "__version__", "inspect",
    "list_tags", "login", "logout", "parse_reference", "pull", "raw_manifest",
}  # fmt: skip

SRC = Path(imgpull.__file__).parent

# Which imgpull modules each module may import (ARCHITECTURE.md): data flows one way,
# archives never see the network, and nothing below the CLI imports it.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "digest": {"errors"},
    "reference": {"errors", "digest"},
    "model": {"digest", "errors"},
    "config": {"errors", "reference"},
    "settings": {"config", "reference", "errors", "__init__"},
    "auth": {"errors", "reference"},
    "transport": {"settings", "errors"},
    "cache": {"digest", "errors"},
    "registry": {"auth", "cache", "digest", "errors", "model", "settings", "transport"},
    "tarstream": set(),
    "workers": set(),
    "archive": {"digest", "model", "tarstream", "errors"},
    "progress": {"model", "digest"},
    "operations": {
        "archive", "auth", "cache", "digest", "errors", "model", "progress", "reference",
        "registry", "settings", "transport", "workers",
    },
    "upload": {"digest", "errors", "registry", "transport"},
    "kube": {"errors", "reference"},
    "archive_reader": {"digest", "errors", "model", "archive", "tarstream"},
    "transfer": {
        "archive_reader", "digest", "errors", "kube", "model", "operations", "progress",
        "reference", "registry", "settings", "upload", "workers",
    },
    "render": {"digest", "model", "progress"},
    "cli": {
        "__init__", "archive", "cache", "config", "errors", "model", "operations", "reference",
        "transfer", "kube",
        "render", "settings",
    },
    "__main__": {"cli"},
}  # fmt: skip


def test_all_is_exact() -> None:
    assert set(imgpull.__all__) == PUBLIC
    for name in imgpull.__all__:
        assert hasattr(imgpull, name), name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "imgpull":
                found.add("__init__")
            elif node.module.startswith("imgpull."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("imgpull."):
                    found.add(alias.name.split(".")[1])
    return found


def test_module_layering() -> None:
    modules = {p.stem for p in SRC.glob("*.py")} - {"__init__"}
    assert modules <= set(ALLOWED), "add new modules to ALLOWED and the README's Design"
    for module in sorted(modules):
        extra = _imports(SRC / f"{module}.py") - ALLOWED[module] - {module}
        assert not extra, f"{module} imports {sorted(extra)}"
