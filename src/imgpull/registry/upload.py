"""The upload half of the Distribution API: blob existence, cross-repository mounts,
monolithic and chunked uploads (resumed after a failed chunk), and manifests.

The bytes of an upload come through a :class:`~imgpull.digest.VerifyingReader`, which
verifies the digest before it hands out the last byte: a monolithic PUT never completes
and the closing PUT of a chunked upload is never sent for content that does not match,
so nothing unverified is published even to a registry that would not check.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Callable
from typing import Final

from imgpull.digest import Digest, VerifyingReader
from imgpull.errors import AuthError, DigestMismatchError, ImgpullError, RegistryError
from imgpull.registry.answers import error_from
from imgpull.registry.client import RegistryClient
from imgpull.registry.response import Response
from imgpull.registry.watchdog import note_progress

log = logging.getLogger("imgpull.upload")

DEFAULT_CHUNK: Final = 16 * 1024 * 1024
PUSH: Final = "pull,push"
# The registry may take a while to check and move a large upload before answering.
_COMPLETE_WAIT: Final = 120.0
_READ: Final = 1024 * 1024

Progress = Callable[[int], None]


class _Window:
    """``length`` bytes of ``reader`` as a request body, counted for progress and the
    watchdog's speed rule."""

    def __init__(self, reader: VerifyingReader, length: int, progress: Progress | None) -> None:
        self.reader = reader
        self.left = length
        self.progress = progress

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        data = self.reader.read(self.left if size < 0 else min(size, self.left, _READ))
        self.left -= len(data)
        note_progress(len(data))
        if self.progress and data:
            self.progress(len(data))
        return data


def _denied(response: Response, what: str) -> ImgpullError:
    if response.status in (401, 403):
        response.discard()
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
    if response.status in (200, 404):
        response.discard()
        return response.status == 200
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
    location = response.headers.get("Location")
    status = response.status
    if status in (201, 202, 401, 403):
        response.discard()
    if status == 201:
        return True
    if status == 202:
        # Mount refused (no access to the source): cancel the upload it opened.
        if location:
            _cancel(client, repository, location)
        return False
    if status in (401, 403):
        return False
    raise _denied(response, f"{client.host.name}/{repository}")


def _cancel(client: RegistryClient, repository: str, location: str) -> None:
    with contextlib.suppress(ImgpullError):  # an abandoned upload expires on its own
        client.request(
            "DELETE", "", repository=repository, actions=PUSH, url=_absolute(client, location)
        ).discard()


def _absolute(client: RegistryClient, location: str) -> str:
    try:
        return urllib.parse.urljoin(client.ping() + "/", location)
    except ValueError:
        raise RegistryError(
            f"{client.host.name} sent an upload location that is not a URL",
            "the registry or a proxy is misbehaving",
        ) from None


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
    location = response.headers.get("Location")
    if response.status != 202 or not location:
        raise _denied(response, f"{client.host.name}/{repository}")
    response.discard()
    return _absolute(client, location)


def upload_blob(
    client: RegistryClient,
    repository: str,
    reader: VerifyingReader,
    digest: Digest,
    *,
    chunk_size: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Upload one blob, monolithically unless ``chunk_size`` is set or the registry (or a
    proxy in front of it) refuses large bodies with 413, then in chunks. A temporary
    failure starts the upload again, as the transport's retry policy allows."""
    repository = client.host.repository(repository)
    what = f"blob {digest.short} to {client.host.name}/{repository}"
    chunks = chunk_size

    def attempt(number: int) -> None:
        nonlocal chunks
        if number:
            log.debug("%s: starting over (attempt %d)", what, number + 1)
            _restart(reader, progress)
        if chunks is None:
            if _monolithic(
                client, repository, _start(client, repository), reader, digest, progress
            ):
                return
            log.debug("%s: body refused as too large; switching to chunks", what)
            chunks = DEFAULT_CHUNK
            _restart(reader, progress)
        _chunked(client, repository, _start(client, repository), reader, digest, chunks, progress)

    client.http.policy.run(attempt, deadline=client.http.deadline)


def _restart(reader: VerifyingReader, progress: Progress | None) -> None:
    if progress and reader.position:
        progress(-reader.position)
    reader.rewind(0)


def _monolithic(
    client: RegistryClient,
    repository: str,
    location: str,
    reader: VerifyingReader,
    digest: Digest,
    progress: Progress | None,
) -> bool:
    size = reader.size
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    response = client.request(
        "PUT",
        "",
        repository=repository,
        actions=PUSH,
        url=_with_digest(location, digest),
        headers=headers,
        body=_Window(reader, size, progress),  # type: ignore[arg-type]
        retries=0,
        first_byte=_COMPLETE_WAIT,
    )
    if response.status == 413:
        response.discard()
        return False
    _check_created(response, digest, f"{client.host.name}/{repository}")
    return True


def _chunked(
    client: RegistryClient,
    repository: str,
    location: str,
    reader: VerifyingReader,
    digest: Digest,
    chunk_size: int,
    progress: Progress | None,
) -> None:
    size = reader.size
    failures = 0
    while reader.position < size:
        offset = reader.position
        length = min(chunk_size, size - offset)
        reader.mark()
        try:
            location = _patch(client, repository, location, reader, length, progress)
        except ImgpullError as exc:
            failures += 1
            if not exc.temporary or failures > client.http.policy.retries:
                raise
            # Ask where the upload stands and go on from there, if we can verify from
            # there; else the whole upload starts again.
            held, location = _upload_state(client, repository, location)
            if not reader.marked(held):
                raise
            if progress:
                progress(held - reader.position)
            reader.rewind(held)
            client.http.deadline.sleep(client.http.policy.backoff(failures - 1))
    if not reader.done:
        reader.read(0)  # a zero-byte blob: verify the empty content
    response = client.request(
        "PUT",
        "",
        repository=repository,
        actions=PUSH,
        url=_with_digest(location, digest),
        body=b"",
        headers={"Content-Length": "0"},
        first_byte=_COMPLETE_WAIT,
    )
    _check_created(response, digest, f"{client.host.name}/{repository}")


def _patch(
    client: RegistryClient,
    repository: str,
    location: str,
    reader: VerifyingReader,
    length: int,
    progress: Progress | None,
) -> str:
    offset = reader.position
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(length),
        "Content-Range": f"{offset}-{offset + length - 1}",
    }
    response = client.request(
        "PATCH",
        "",
        repository=repository,
        actions=PUSH,
        url=location,
        headers=headers,
        retries=0,
        body=_Window(reader, length, progress),  # type: ignore[arg-type]
    )
    if response.status != 202:
        raise _denied(response, f"{client.host.name}/{repository}")
    response.discard()
    return _absolute(client, response.headers.get("Location") or location)


def _upload_state(client: RegistryClient, repository: str, location: str) -> tuple[int, str]:
    """Bytes the registry holds of an upload in progress (its ``Range: 0-N``) and the
    upload's current location (the registry renews its state token)."""
    response = client.request("GET", "", repository=repository, actions=PUSH, url=location)
    response.discard()
    return parse_upload_range(response.status, response.headers.get("Range", ""), client), (
        _absolute(client, response.headers.get("Location") or location)
    )


def parse_upload_range(status: int, value: str, client: RegistryClient | None = None) -> int:
    """Bytes held, from an upload status answer (204 with ``Range: 0-N``).

    ``0-0`` is what distribution reports for an empty upload as well as for one byte;
    it is taken as empty (resending one byte costs nothing).
    """
    start, _, end = value.partition("-")
    if status != 204 or start.strip() != "0" or not end.strip().isdigit():
        where = client.host.name if client is not None else "the registry"
        raise RegistryError(f"cannot resume the upload to {where} (HTTP {status})", "push again")
    last = int(end)
    return last + 1 if last > 0 else 0


def _check_created(response: Response, digest: Digest, what: str) -> None:
    if response.status == 201:
        response.discard()
        return
    if response.status == 400:
        body = response.read(64 * 1024, "an error answer")
        if b"DIGEST_INVALID" in body:
            raise DigestMismatchError(
                f"{what} rejected blob {digest}: its content does not match",
                "the archive is damaged; pull or save it again",
            )
        raise RegistryError(f"{what} refused blob {digest} (HTTP 400)")
    raise _denied(response, what)


def put_manifest(
    client: RegistryClient, repository: str, reference: str, raw: bytes, media_type: str
) -> Digest:
    """Store a manifest or index under a tag or its digest; returns its digest."""
    return _put(client, repository, reference, raw, media_type)[0]


def put_referrer(client: RegistryClient, repository: str, raw: bytes, media_type: str) -> bool:
    """Store a manifest with a ``subject`` by its digest; True when the registry says it
    indexed the subject (its ``OCI-Subject`` header, OCI 1.1)."""
    return _put(client, repository, str(Digest.of(raw)), raw, media_type)[1]


def _put(
    client: RegistryClient, repository: str, reference: str, raw: bytes, media_type: str
) -> tuple[Digest, bool]:
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
    what = f"{client.host.name}/{repository}:{reference}"
    if response.status != 201:
        raise _denied(response, what)
    stored = response.headers.get("Docker-Content-Digest")
    took_subject = bool(response.headers.get("OCI-Subject"))
    response.discard()
    if stored and stored != str(digest):
        raise DigestMismatchError(
            f"{what}: the registry stored the manifest as {stored}, not {digest}"
        )
    return digest, took_subject
