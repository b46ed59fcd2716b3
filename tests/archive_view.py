"""Read an imgpull archive back for assertions: members, manifest.json, index.json, blobs."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ArchiveView:
    names: list[str]
    manifest_json: list[dict[str, Any]] | None
    index_json: dict[str, Any]
    blobs: dict[str, bytes]  # "sha256:hex" -> content

    @classmethod
    def read(cls, path: Path) -> ArchiveView:
        blobs: dict[str, bytes] = {}
        manifest_json = None
        index_json: dict[str, Any] = {}
        with tarfile.open(path) as tar:
            names = tar.getnames()
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if member.name.startswith("blobs/"):
                    _, algorithm, hexdigest = member.name.split("/")
                    assert hashlib.new(algorithm, data).hexdigest() == hexdigest, member.name
                    blobs[f"{algorithm}:{hexdigest}"] = data
                elif member.name == "manifest.json":
                    manifest_json = json.loads(data)
                elif member.name == "index.json":
                    index_json = json.loads(data)
        return cls(names, manifest_json, index_json, blobs)

    def config(self, manifest_digest: str) -> dict[str, Any]:
        manifest = json.loads(self.blobs[manifest_digest])
        return json.loads(self.blobs[manifest["config"]["digest"]])

    @property
    def repo_tags(self) -> list[str]:
        return [tag for entry in self.manifest_json or [] for tag in entry["RepoTags"]]

    @property
    def index_digests(self) -> list[str]:
        return [m["digest"] for m in self.index_json["manifests"]]
