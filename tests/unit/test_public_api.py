"""The public surface is exactly what __all__ says, only imgpull errors leave it, and the
import contract in pyproject.toml holds (import-linter; CI runs it too)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import imgpull

PUBLIC = {
    "ArchiveError", "AuthError", "ConfigError", "Copied", "Descriptor", "Digest",
    "DigestMismatchError", "ImageConfig", "ImgpullError", "Index", "InvalidPlatformError",
    "InvalidReferenceError", "Manifest", "NetworkError", "NotFoundError", "Platform",
    "PlatformNotFoundError", "ProxyError", "PullResult", "PulledImage", "Pushed",
    "RateLimitedError", "Reference", "RegistryError", "Reporter", "Settings", "SignatureError",
    "TLSError",
    "UnsupportedError", "UsageError", "__version__", "copy", "images", "inspect", "login",
    "logout", "parse_reference", "pull", "push", "raw_manifest", "rewrite", "tags",
}  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]


def test_all_is_exact() -> None:
    assert set(imgpull.__all__) == PUBLIC
    for name in imgpull.__all__:
        assert hasattr(imgpull, name), name


def test_import_contract_holds() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint is not None, "import-linter is a dev dependency: pip install -e '.[dev]'"
    done = subprocess.run([lint], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: imgpull.pull(["nginx:1.27"], "x.tar", platform="linux"), "invalid platform"),
        (lambda: imgpull.pull([5], "x.tar"), "not an image reference"),  # type: ignore[list-item]
        (lambda: imgpull.pull(["nginx"], "x.tar", archive_format="zip"), "archive format"),  # type: ignore[arg-type]
        (lambda: imgpull.copy(["nginx"], ""), "destination"),
        (lambda: imgpull.Settings.from_environment(colour=True), "unknown setting"),
        (lambda: imgpull.pull(["Nginx"], "x.tar"), "lowercase"),
    ],
)
def test_bad_calls_raise_imgpull_errors(call: object, fragment: str) -> None:
    with pytest.raises(imgpull.ImgpullError, match=fragment):
        call()  # type: ignore[operator]
