"""``--require-signature``: every image pulled or copied must carry a cosign signature
that verifies with one of the given keys, checked before anything is written."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgpull.model import Descriptor
from imgpull.signing import PAYLOAD_LIMIT, is_signature, load_key, verify
from imgpull.source import ImageSource, SourceImage

KeyPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None


def load_keys(keys: KeyPaths) -> list[Any]:
    if keys is None:
        return []
    if isinstance(keys, str | os.PathLike):
        keys = [keys]
    return [load_key(Path(key)) for key in keys]


def require_signatures(source: ImageSource, images: Sequence[SourceImage], keys: list[Any]) -> None:
    """SignatureError unless each image's resolved digest (what its name points at, as
    cosign signs it) has a signature that verifies."""

    def read(descriptor: Descriptor) -> bytes:
        with source.open_blob(descriptor) as reader:
            return reader.read(PAYLOAD_LIMIT)

    for image in images:
        signatures = [
            a.manifest
            for a in image.attached
            if a.subject == image.resolved and is_signature(a.manifest, a.tag)
        ]
        verify(image.resolved, signatures, read, keys, what=f"{image.label}@{image.resolved}")
