"""The upload half of the Distribution API: blob existence, cross-repository mounts,
monolithic and chunked uploads (resumed after a failed chunk), and manifests."""

from __future__ import annotations

import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable
from typing import BinaryIO, Final, cast

from imgpull.digest import Digest
from imgpull.errors import AuthError, DigestMismatchError, ImgpullError, RegistryError
from imgpull.registry.client import RegistryClient, error_from
from imgpull.registry.transport import Response, backoff

log = logging.getLogger("imgpull.registry.upload")

DEFAULT_CHUNK: Final = 16 * 1024 * 1024
PUSH: Final = "pull,push"

# Opens the blob's bytes at the given offset; the caller closes the stream.
BlobOpener = Callable[[int], BinaryIO]
Progress = Callable[[int], None]


class _Counting:
    """A file-like body that reports progress and stops after ``limit`` bytes."""

    def __init__(self, source: BinaryIO, limit: int, progress: Progress | None) -> None:
        self.source = source
        self.left = limit
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size < 0 else min(size, self.left)
        data = self.source.read(want)
        self.left -= len(data)
        if self.progress and data:
            self.progress(len(data))
        return data


def _denied(response: Response, what: str) -> ImgpullError:
    if response.status in (401, 403):
        return AuthError(
            f"no push access to {what} (HTTP {response.status})",
            "log in with an account that may push there (`imgpull login REGISTRY`)",
        )
    return error_from(response, what, None)


def blob_exists(client: RegistryClient, repository: str, digest: Digest) -> bool:
    repository = client.host.repository(repository)
    response = client.request(
        "HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository, actions=PUSH
    )
    if response.status == 200:
        return True
    if response.status == 404:
        return False
    raise _denied(response, f"{client.host.name}/{repository}")


def mount_blob(client: RegistryClient, repository: str, digest: Digest, source: str) -> bool:
    """Ask the registry to link a blob it holds for ``source``; True when it did."""
    repository = client.host.repository(repository)
    source = client.host.repository(source)
    query = urllib.parse.urlencode({"mount": str(digest), "from": source})
    scope = f"repository:{repository}:{PUSH} repository:{source}:pull"
    response = client.request(
        "POST",
        f"/v2/{repository}/blobs/uploads/?{query}",
        repository=repository,
        scope=scope,
        body=b"",
    )
    response.drain_conn()
    if response.status == 201:
        return True
    if response.status == 202:
        # Mount refused (no access to the source): cancel the upload it opened.
        location = response.headers.get("Location")
        if location:
            _cancel(client, repository, location)
        return False
    if response.status in (401, 403):
        return False
    raise _denied(response, f"{client.host.name}/{repository}")


def _cancel(client: RegistryClient, repository: str, location: str) -> None:
    with contextlib.suppress(ImgpullError):  # an abandoned upload expires on its own
        client.request(
            "DELETE", "", repository=repository, actions=PUSH, url=_absolute(client, location)
        ).drain_conn()


def _absolute(client: RegistryClient, location: str) -> str:
    return urllib.parse.urljoin(client.ping() + "/", location)


def _with_digest(location: str, digest: Digest) -> str:
    return (
        location
        + ("&" if "?" in location else "?")
        + urllib.parse.urlencode({"digest": str(digest)})
    )


def _start(client: RegistryClient, repository: str) -> str:
    response = client.request(
        "POST", f"/v2/{repository}/blobs/uploads/", repository=repository, actions=PUSH, body=b""
    )
    response.drain_conn()
    location = response.headers.get("Location")
    if response.status != 202 or not location:
        raise _denied(response, f"{client.host.name}/{repository}")
    return _absolute(client, location)


def upload_blob(
    client: RegistryClient,
    repository: str,
    digest: Digest,
    size: int,
    open_at: BlobOpener,
    *,
    chunk_size: int | None = None,
    retries: int = 3,
    progress: Progress | None = None,
) -> None:
    """Upload one blob, monolithically unless ``chunk_size`` is set or the registry (or a
    proxy in front of it) refuses large bodies with 413, then in chunks."""
    repository = client.host.repository(repository)
    what = f"blob {digest.short} to {client.host.name}/{repository}"
    for attempt in range(retries + 1):
        try:
            if chunk_size is None:
                location = _start(client, repository)
                if _monolithic(client, repository, location, digest, size, open_at, progress):
                    return
                log.debug("%s: body refused as too large; switching to chunks", what)
                chunk_size = DEFAULT_CHUNK
            location = _start(client, repository)
            _chunked(
                client, repository, location, digest, size, open_at, chunk_size, retries, progress
            )
            return
        except ImgpullError as exc:
            if not exc.temporary or attempt == retries:
                raise
            log.debug("%s failed (%s); starting over", what, exc)
            time.sleep(backoff(attempt))


def _monolithic(
    client: RegistryClient,
    repository: str,
    location: str,
    digest: Digest,
    size: int,
    open_at: BlobOpener,
    progress: Progress | None,
) -> bool:
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    with open_at(0) as source:
        body = _Counting(source, size, progress)
        response = client.request(
            "PUT",
            "",
            repository=repository,
            actions=PUSH,
            url=_with_digest(location, digest),
            headers=headers,
            body=cast(BinaryIO, body),
            retries=0,
        )
    response.drain_conn()
    if response.status == 413:
        if progress:
            progress(-(size - body.left))
        return False
    _check_created(response, digest, f"{client.host.name}/{repository}")
    return True


def _chunked(
    client: RegistryClient,
    repository: str,
    location: str,
    digest: Digest,
    size: int,
    open_at: BlobOpener,
    chunk_size: int,
    retries: int,
    progress: Progress | None,
) -> None:
    offset = 0
    failures = 0
    while offset < size:
        length = min(chunk_size, size - offset)
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(length),
            "Content-Range": f"{offset}-{offset + length - 1}",
        }
        try:
            with open_at(offset) as source:
                response = client.request(
                    "PATCH",
                    "",
                    repository=repository,
                    actions=PUSH,
                    url=location,
                    headers=headers,
                    retries=0,
                    body=cast(BinaryIO, _Counting(source, length, progress)),
                )
            response.drain_conn()
            if response.status != 202:
                raise _denied(response, f"{client.host.name}/{repository}")
        except ImgpullError as exc:
            failures += 1
            if not exc.temporary or failures > retries:
                raise
            # Ask where the upload stands and go on from there.
            done, location = _upload_state(client, repository, location)
            if progress:
                progress(done - offset - length)
            offset = done
            time.sleep(backoff(failures - 1))
            continue
        location = _absolute(client, response.headers.get("Location") or location)
        offset += length
    response = client.request(
        "PUT",
        "",
        repository=repository,
        actions=PUSH,
        url=_with_digest(location, digest),
        body=b"",
        headers={"Content-Length": "0"},
    )
    response.drain_conn()
    _check_created(response, digest, f"{client.host.name}/{repository}")


def _upload_state(client: RegistryClient, repository: str, location: str) -> tuple[int, str]:
    """Bytes the registry holds of an upload in progress (its ``Range: 0-N``) and the
    upload's current location (the registry renews its state token)."""
    response = client.request("GET", "", repository=repository, actions=PUSH, url=location)
    response.drain_conn()
    value = response.headers.get("Range", "")
    if response.status != 204 or "-" not in value:
        raise RegistryError(
            f"cannot resume the upload to {client.host.name}/{repository} (HTTP {response.status})",
            "push again",
        )
    end = int(value.rsplit("-", 1)[1])
    # "0-0" is what distribution reports for an empty upload as well as for one byte.
    held = end + 1 if end > 0 else 0
    return held, _absolute(client, response.headers.get("Location") or location)


def _check_created(response: Response, digest: Digest, what: str) -> None:
    if response.status == 201:
        return
    if response.status == 400 and b"DIGEST_INVALID" in response.data:
        raise DigestMismatchError(
            f"{what} rejected blob {digest}: its content does not match",
            "the archive is damaged; pull or save it again",
        )
    raise _denied(response, what)


def put_manifest(
    client: RegistryClient, repository: str, reference: str, raw: bytes, media_type: str
) -> Digest:
    """Store a manifest or index under a tag or its digest; returns its digest."""
    repository = client.host.repository(repository)
    digest = Digest.of(raw)
    response = client.request(
        "PUT",
        f"/v2/{repository}/manifests/{reference}",
        repository=repository,
        actions=PUSH,
        headers={"Content-Type": media_type},
        body=raw,
    )
    response.drain_conn()
    what = f"{client.host.name}/{repository}:{reference}"
    if response.status != 201:
        raise _denied(response, what)
    stored = response.headers.get("Docker-Content-Digest")
    if stored and stored != str(digest):
        raise DigestMismatchError(
            f"{what}: the registry stored the manifest as {stored}, not {digest}"
        )
    return digest
