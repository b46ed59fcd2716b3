"""The isolated environment every measured tool runs in: no user configuration at all.

No proxies, no certs.d, no registries.conf mirrors, no docker config, no imgpull config or
cache from the home directory: each tool sees only what its command line gives it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Env"]

PERMISSIVE_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


@dataclass
class Env:
    root: Path
    base: dict[str, str] = field(default_factory=dict)
    skopeo_policy: Path = Path()

    @classmethod
    def create(cls, root: Path) -> Env:
        for sub in ("xdg-config", "xdg-cache", "docker-config", "certs.d", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "registries.conf").write_text("# no search registries, no mirrors\n")
        (root / "imgpull.toml").write_text("# empty: defaults only\n")
        (root / "daemon.json").write_text("{}\n")
        (root / "docker-config" / "config.json").write_text("{}\n")
        policy = root / "policy.json"
        policy.write_text(json.dumps(PERMISSIVE_POLICY) + "\n")
        drop = {"IMGPULL_CACHE_DIR", "SSL_CERT_FILE", "SSL_CERT_DIR", "REGISTRY_AUTH_FILE"}
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in drop and not k.lower().endswith("_proxy") and not k.startswith("DOCKER_")
        }
        base.update(
            XDG_CONFIG_HOME=str(root / "xdg-config"),
            XDG_CACHE_HOME=str(root / "xdg-cache"),
            DOCKER_CONFIG=str(root / "docker-config"),
            CONTAINERS_REGISTRIES_CONF=str(root / "registries.conf"),
            IMGPULL_CONFIG=str(root / "imgpull.toml"),
            IMGPULL_DAEMON_JSON=str(root / "daemon.json"),
            IMGPULL_CERTS_DIR=str(root / "certs.d"),
            TMPDIR=str(root / "tmp"),
            # curl reads ~/.curlrc unless told not to; CURL_HOME points it at nothing.
            CURL_HOME=str(root / "xdg-config"),
        )
        return cls(root=root, base=base, skopeo_policy=policy)
