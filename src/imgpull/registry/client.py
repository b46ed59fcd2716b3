"""The Distribution API: ping, authenticate, manifests, blobs and tags of one registry."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Final

from imgpull.cache import PartialBlob
from imgpull.config.settings import RegistryHost
from imgpull.digest import Digest, Verifier
from imgpull.errors import (
    AuthError,
    DigestMismatchError,
    ImgpullError,
    NetworkError,
    NotFoundError,
    ProxyError,
    RateLimitedError,
    RegistryError,
    TLSError,
)
from imgpull.model import ACCEPT_MANIFESTS, Descriptor, Index, Manifest, parse_manifest
from imgpull.registry.auth import Authenticator, Credentials, TokenResponse
from imgpull.registry.transport import HttpClient, Response, backoff, origin, redact, translate

log = logging.getLogger("imgpull.registry.client")

MAX_MANIFEST_BYTES: Final = 4 * 1024 * 1024
CHUNK: Final = 1024 * 1024
TAGS_PAGE_SIZE = 1000

ProgressCallback = Callable[[int], None]


class RegistryClient:
    """Talks to one registry host. Thread-safe: blobs are fetched from worker threads."""

    def __init__(
        self, host: RegistryHost, http: HttpClient, credentials: Credentials | None
    ) -> None:
        self.host = host
        self.http = http
        self.auth = Authenticator(host.name, credentials, self._fetch_token)
        self._base: str | None = None
        self._ping_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | BinaryIO | None = None,
        *,
        stream: bool = False,
        retries: int | None = None,
        foreign: bool = False,
    ) -> Response:
        # The registry's TLS setup (CAs, client certificate) is for the registry and its
        # token server; other hosts (foreign layer URLs) get the default.
        return self.http.request(
            method,
            url,
            headers=headers,
            body=body,
            tls=None if foreign else self.host.tls,
            stream=stream,
            retries=retries,
        )

    def _fetch_token(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> TokenResponse:
        response = self._send(method, url, headers, body)
        return TokenResponse(response.status, response.data[:MAX_MANIFEST_BYTES])

    def ping(self) -> str:
        """Find the scheme that works and the auth the registry wants; returns the base URL."""
        with self._ping_lock:
            if self._base is not None:
                return self._base
            error: ImgpullError | None = None
            for scheme in self.host.schemes:
                url = self.host.url(scheme, "/v2/")
                try:
                    response = self._send("GET", url, {})
                except ProxyError:
                    raise  # the proxy failed, not the scheme: another scheme won't help
                except TLSError as exc:
                    if not exc.maybe_plain_http or scheme == self.host.schemes[-1]:
                        raise
                    error = exc  # a plain-HTTP server; try the next scheme
                    continue
                except NetworkError as exc:
                    if scheme == self.host.schemes[-1]:
                        raise
                    error = exc
                    continue
                if scheme == "http" and response.status == 400 and scheme != self.host.schemes[-1]:
                    # "Client sent an HTTP request to an HTTPS server": try HTTPS next.
                    response.drain_conn()
                    continue
                if response.status == 401:
                    challenge = response.headers.get("WWW-Authenticate", "")
                    if challenge:
                        self.auth.learn(challenge)
                elif response.status >= 400 and response.status != 404:
                    raise error_from(response, f"{self.host.name} /v2/ endpoint", None)
                self._base = f"{scheme}://{self.host.api_host}"
                log.debug("registry %s at %s", self.host.name, self._base)
                return self._base
            assert error is not None
            raise error

    def request(
        self,
        method: str,
        path: str,
        *,
        repository: str,
        actions: str = "pull",
        headers: dict[str, str] | None = None,
        stream: bool = False,
        retries: int | None = None,
        url: str | None = None,
        body: bytes | BinaryIO | None = None,
        scope: str | None = None,
    ) -> Response:
        """An authenticated request; a 401 mid-run (an expired token) is answered once.

        A streamed ``body`` cannot be sent twice: callers make an authenticated request
        first (the upload's POST), so the token is in hand before the body goes out.
        """
        base = self.ping()
        target = url or base + path
        scope = scope or f"repository:{repository}:{actions}"
        sent = dict(headers or {})
        # An upload URL on another host (some registries hand those out) gets no token.
        same_host = origin(target) == origin(base)
        needs = self.auth.needs_auth and same_host
        authorization = self.auth.header(scope) if needs else None
        for attempt in range(2):
            if authorization:
                sent["Authorization"] = authorization
            response = self._send(method, target, sent, body, stream=stream, retries=retries)
            replayable = body is None or isinstance(body, bytes)
            # A 401 from a host we were redirected to (blob storage) is not the registry's
            # challenge: answering it would hand our credentials to that host's realm.
            answered_by_registry = origin(response.url or target) == origin(base)
            if (
                response.status != 401
                or attempt == 1
                or not replayable
                or not same_host
                or not answered_by_registry
            ):
                return response
            challenge = response.headers.get("WWW-Authenticate", "")
            if not challenge:
                return response
            response.drain_conn()
            response.release_conn()
            if authorization:
                self.auth.invalidate(authorization)
            else:
                self.auth.learn(challenge)
            authorization = self.auth.header(scope, challenge_header=challenge)
        raise AssertionError("unreachable")  # pragma: no cover

    def verify_login(self) -> None:
        """Prove the credentials work: Basic against /v2/, Bearer at the token server."""
        base = self.ping()
        if not self.auth.needs_auth:
            return
        authorization = self.auth.header("")
        response = self._send("GET", base + "/v2/", {"Authorization": authorization or ""})
        if response.status in (401, 403):
            raise AuthError(
                f"{self.host.name} refused the credentials (HTTP {response.status})",
                "check the username and password",
            )

    # -- manifests ------------------------------------------------------------------------

    def get_manifest(self, repository: str, identifier: str) -> Manifest | Index:
        """Fetch a manifest or index by tag or digest, verifying its bytes."""
        repository = self.host.repository(repository)
        path = f"/v2/{repository}/manifests/{urllib.parse.quote(identifier, safe=':')}"
        response = self.request(
            "GET", path, repository=repository, headers={"Accept": ACCEPT_MANIFESTS}
        )
        what = f"{self.host.name}/{repository}:{identifier}"
        if ":" in identifier:
            what = f"{self.host.name}/{repository}@{identifier}"
        if response.status != 200:
            raise error_from(response, what, identifier)
        raw = response.data
        if len(raw) > MAX_MANIFEST_BYTES:
            raise RegistryError(f"manifest of {what} is larger than {MAX_MANIFEST_BYTES} bytes")
        digest = _manifest_digest(raw, identifier, response, what)
        media_type = response.headers.get("Content-Type", "")
        return parse_manifest(raw, media_type, digest)

    def get_blob_bytes(self, repository: str, descriptor: Descriptor) -> bytes:
        """A small blob (a config) read whole and verified."""
        if descriptor.size > MAX_MANIFEST_BYTES * 4:
            raise RegistryError(f"config blob {descriptor.digest} is suspiciously large")
        response = self._blob_response(repository, descriptor, 0)
        if response.status != 200:
            raise error_from(response, f"blob {descriptor.digest} of {repository}", None)
        data = response.data
        verifier = Verifier(descriptor.digest, descriptor.size, what=f"blob {descriptor.digest}")
        verifier.update(data)
        verifier.verify()
        return data

    # -- blobs ----------------------------------------------------------------------------

    def _blob_response(
        self, repository: str, descriptor: Descriptor, offset: int, url: str | None = None
    ) -> Response:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        repository = self.host.repository(repository)
        path = f"/v2/{repository}/blobs/{descriptor.digest}"
        if url is not None:
            # Foreign layers live outside the registry: plain GET, no credentials.
            return self._send("GET", url, headers, stream=True, foreign=True)
        return self.request("GET", path, repository=repository, headers=headers, stream=True)

    def open_blob(self, repository: str, descriptor: Descriptor, offset: int = 0) -> Response:
        """A blob's bytes from ``offset`` as a stream (for copies); the caller closes it."""
        response = self._blob_response(repository, descriptor, offset)
        expected = 206 if offset else 200
        if response.status != expected:
            error = error_from(response, f"blob {descriptor.digest} of {repository}", None)
            response.close()
            raise error
        return response

    def download_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        partial: PartialBlob,
        on_progress: ProgressCallback | None = None,
        *,
        retries: int = 3,
    ) -> None:
        """Stream a blob into ``partial``, resuming with Range after a dropped connection.

        The caller commits ``partial``, which verifies size and digest.
        """
        sources: list[str | None] = [*descriptor.urls, None]
        last_error: ImgpullError | None = None
        for url in sources:
            for attempt in range(retries + 1):
                try:
                    self._stream_once(repository, descriptor, partial, on_progress, url)
                    return
                except DigestMismatchError:
                    raise
                except ImgpullError as exc:
                    last_error = exc
                    if not exc.temporary:
                        break
                    log.debug("blob %s: %s; attempt %d", descriptor.digest.short, exc, attempt)
                    if attempt < retries:
                        time.sleep(backoff(attempt))
        assert last_error is not None
        left = descriptor.size - partial.offset
        raise type(last_error)(
            f"{last_error.message} (blob {descriptor.digest.short}, {left} of "
            f"{descriptor.size} bytes left)",
            last_error.hint,
        ) from last_error

    def _stream_once(
        self,
        repository: str,
        descriptor: Descriptor,
        partial: PartialBlob,
        on_progress: ProgressCallback | None,
        url: str | None,
    ) -> None:
        offset = partial.offset
        if offset >= descriptor.size and descriptor.size > 0:
            return
        response = self._blob_response(repository, descriptor, offset, url)
        finished = False
        try:
            if response.status == 206:
                start = _content_range_start(response.headers.get("Content-Range", ""))
                if start != offset:
                    raise RegistryError(
                        f"{self.host.name} resumed blob {descriptor.digest.short} at byte "
                        f"{start}, not {offset} as asked"
                    )
            elif response.status == 200:
                if offset:
                    if on_progress:
                        on_progress(-offset)
                    partial.restart()
            else:
                where = redact(url) if url else f"{self.host.name}/{repository}"
                raise error_from(response, f"blob {descriptor.digest} of {where}", None)
            for chunk in _chunks(response, url or self.host.api_host):
                partial.write(chunk)
                if on_progress:
                    on_progress(len(chunk))
                self.http.remaining()  # --timeout holds during long transfers too
            finished = True
        finally:
            # A half-read connection must not go back to the pool for another request.
            if finished:
                response.release_conn()
            else:
                response.close()

    # -- tags -----------------------------------------------------------------------------

    def list_tags(self, repository: str) -> Iterator[str]:
        repository = self.host.repository(repository)
        path: str | None = f"/v2/{repository}/tags/list?n={TAGS_PAGE_SIZE}"
        seen: set[str] = set()
        while path:
            response = self.request("GET", path, repository=repository)
            if response.status != 200:
                raise error_from(response, f"{self.host.name}/{repository}", None)
            try:
                tags = json.loads(response.data).get("tags") or []
            except (ValueError, AttributeError) as exc:
                raise RegistryError(f"{self.host.name} sent an unreadable tag list") from exc
            for tag in tags:
                if tag not in seen:
                    seen.add(tag)
                    yield str(tag)
            path = _next_link(response.headers.get("Link", ""))


def _chunks(response: Response, host: str) -> Iterator[bytes]:
    try:
        while True:
            chunk = response.read(CHUNK, decode_content=False)
            if not chunk:
                return
            yield chunk
    except Exception as exc:  # urllib3 raises several unrelated types mid-stream
        if isinstance(exc, ImgpullError):
            raise
        raise translate(exc, f"https://{host}") from exc


def _next_link(header: str) -> str | None:
    """The path of the ``rel="next"`` entry of an RFC 5988 Link header, if any."""
    for part in header.split(","):
        if 'rel="next"' in part or "rel=next" in part:
            start, end = part.find("<"), part.find(">")
            if start != -1 and end > start:
                target = urllib.parse.urlsplit(part[start + 1 : end])
                return target.path + (f"?{target.query}" if target.query else "")
    return None


def _content_range_start(value: str) -> int | None:
    try:
        unit, _, rest = value.partition(" ")
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


def _manifest_digest(raw: bytes, identifier: str, response: Response, what: str) -> Digest:
    """The digest the bytes must have, checked: the one asked for, else the registry's."""
    actual = Digest.of(raw)
    expected: Digest | None = None
    if ":" in identifier:  # a digest; tags never contain ':'
        expected = Digest.parse(identifier)
    elif response.headers.get("Docker-Content-Digest"):
        try:
            expected = Digest.parse(response.headers["Docker-Content-Digest"])
        except (ValueError, ImgpullError):
            expected = None
    if expected is not None:
        check = Digest(expected.algorithm, Digest.of(raw, expected.algorithm).hex)
        if check != expected:
            raise DigestMismatchError(
                f"manifest of {what} does not match its digest {expected} (got {check})",
                "the registry or a proxy altered it; try again or another mirror",
            )
        return expected if expected.algorithm == "sha256" else actual
    return actual


def _registry_errors(response: Response) -> list[dict[str, Any]]:
    try:
        body = json.loads(response.data[:65536] or b"{}")
        errors = body.get("errors") or []
        return [e for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError):
        return []


def error_from(response: Response, what: str, identifier: str | None) -> ImgpullError:
    """Map an unexpected registry answer to one clear error."""
    status = response.status
    errors = _registry_errors(response)
    codes = {str(e.get("code", "")) for e in errors}
    detail = "; ".join(str(e.get("message", "")) for e in errors if e.get("message"))
    if status == 401:
        return AuthError(
            f"authentication required for {what}"
            + (" (credentials were refused)" if "UNAUTHORIZED" in codes else ""),
            "log in with `imgpull login REGISTRY` or pass -u/--password-stdin; the repository "
            "may also not exist",
        )
    if status == 403:
        return AuthError(
            f"access to {what} denied" + (f": {detail}" if detail else ""),
            "check that your account may pull this repository",
        )
    if status == 404 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"}:
        if "NAME_UNKNOWN" in codes:
            return NotFoundError(
                f"repository not found: {what.rsplit(':', 1)[0]}", "check the image name"
            )
        if identifier is not None and ":" not in identifier:
            return NotFoundError(
                f"tag not found: {what}", "list the available tags with `imgpull tags REPOSITORY`"
            )
        return NotFoundError(f"not found: {what}", "check the name, tag and digest")
    if status == 429:
        limits = ", ".join(
            f"{k}={v}" for k, v in response.headers.items() if k.lower().startswith("ratelimit-")
        )
        return RateLimitedError(
            f"rate limited by the registry while fetching {what}"
            + (f" ({limits})" if limits else ""),
            "wait and retry, log in for a higher limit, or use a mirror",
        )
    return RegistryError(
        f"registry answered HTTP {status} for {what}" + (f": {detail}" if detail else ""),
        "try again later" if status >= 500 else "",
        status=status,
    )
