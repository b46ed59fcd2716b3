"""Foreign (non-distributable) layers: fetched from their ``urls`` and verified."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from imgpull.config.settings import Settings
from imgpull.errors import DigestMismatchError
from imgpull.ops.pull import pull
from tests.archive_view import ArchiveView
from tests.fixtures.images import Pusher, build_image, build_layer, host_arch, sha256_digest
from tests.fixtures.registry import RegistryServer, start_registry

FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


class _Blobs(http.server.BaseHTTPRequestHandler):
    content: ClassVar[dict[str, bytes]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append({k.lower(): v for k, v in self.headers.items()})
        body = self.content.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def blob_host() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Blobs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def foreign_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    # Distribution refuses manifests with layer URLs unless told which URLs to allow.
    server = start_registry(
        tmp_path / "reg",
        storage=tmp_path / "storage",
        extra_config={"validation": {"manifests": {"urls": {"allow": [r"^http://127\.0\.0\.1"]}}}},
    )
    yield server
    server.stop()


def _push_with_foreign_layer(registry: RegistryServer, blob_url: str, served: bytes) -> str:
    base = build_layer({"etc/base": b"base\n"})
    foreign = build_layer({"etc/foreign": b"foreign\n"})
    image = build_image([base, foreign], cmd=["/bin/true"], arch=host_arch(), media="docker")
    manifest = json.loads(image.manifest)
    manifest["layers"][1]["mediaType"] = FOREIGN
    manifest["layers"][1]["urls"] = [blob_url]
    raw = json.dumps(manifest).encode()
    pusher = Pusher(registry.url)
    pusher.push_blob("test/foreign", image.config_digest, len(image.config), image.config)
    pusher.push_blob("test/foreign", base.digest, base.size, base.compressed)
    pusher.push_manifest("test/foreign", "1", raw, manifest["mediaType"])
    _Blobs.content["/foreign.tar.gz"] = served if served else foreign.compressed
    return foreign.digest


@pytest.mark.usefixtures("fresh_env")
def test_foreign_layer_comes_from_its_url(
    foreign_registry: RegistryServer, blob_host: str, tmp_path: Path
) -> None:
    digest = _push_with_foreign_layer(foreign_registry, f"http://{blob_host}/foreign.tar.gz", b"")
    out = tmp_path / "f.tar"
    pull([f"{foreign_registry.host}/test/foreign:1"], out, settings=Settings.from_environment())
    view = ArchiveView.read(out)
    assert digest in view.blobs
    assert sha256_digest(view.blobs[digest]) == digest
    assert all("authorization" not in headers for headers in _Blobs.seen)


@pytest.mark.usefixtures("fresh_env")
def test_foreign_layer_with_wrong_bytes_fails(
    foreign_registry: RegistryServer, blob_host: str, tmp_path: Path
) -> None:
    _push_with_foreign_layer(
        foreign_registry, f"http://{blob_host}/foreign.tar.gz", b"not the layer at all"
    )
    out = tmp_path / "f.tar"
    with pytest.raises(DigestMismatchError):
        pull([f"{foreign_registry.host}/test/foreign:1"], out, settings=Settings.from_environment())
    assert not out.exists()
