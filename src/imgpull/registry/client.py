"""The Distribution API of one endpoint (a registry or one of its mirrors): ping,
authenticate, manifests, blobs and tags. Every body it reads is bounded."""

from __future__ import annotations

import json
import logging
import re
import threading
import urllib.parse
from collections.abc import Iterator
from typing import Final

from imgpull.config.settings import RegistryHost
from imgpull.digest import ByteStream, Verifier
from imgpull.errors import (
    AuthError,
    ImgpullError,
    NetworkError,
    ProxyError,
    RegistryError,
    TLSError,
)
from imgpull.model import ACCEPT_MANIFESTS, Descriptor, Index, Manifest, parse_manifest
from imgpull.registry.answers import error_from, manifest_digest
from imgpull.registry.auth import TOKEN_ANSWER_LIMIT, Authenticator, TokenResponse
from imgpull.registry.credentials import Credentials
from imgpull.registry.response import Response
from imgpull.registry.transport import Body, HttpClient
from imgpull.registry.urls import checked_url, origin
from imgpull.source import PiecesRefused

log = logging.getLogger("imgpull.registry.client")

TAGS_PAGE_SIZE: Final = 1000
TAGS_PAGE_LIMIT: Final = 4 * 1024 * 1024
MAX_TAG_PAGES: Final = 1000
MAX_TAGS: Final = 200_000
_TAG_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


class RegistryClient:
    """Talks to one endpoint. Thread-safe: blobs are fetched from worker threads."""

    def __init__(
        self,
        host: RegistryHost,
        http: HttpClient,
        credentials: Credentials | None,
        *,
        manifest_limit: int = 4 * 1024 * 1024,
    ) -> None:
        self.host = host
        self.http = http
        self.manifest_limit = manifest_limit
        self.auth = Authenticator(host.name, credentials, self._fetch_token)
        self._base: str | None = None
        self._ping_lock = threading.Lock()

    # -- plumbing -------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body = None,
        *,
        retries: int | None = None,
        foreign: bool = False,
        first_byte: float | None = None,
    ) -> Response:
        # The registry's TLS setup (CAs, client certificate) is for the registry and its
        # token server; other hosts (foreign layer URLs) get the default.
        return self.http.request(
            method,
            url,
            headers=headers,
            body=body,
            tls=None if foreign else self.host.tls,
            retries=retries,
            first_byte=first_byte,
        )

    def _fetch_token(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> TokenResponse:
        response = self._send(method, url, headers, body)
        if response.status != 200:
            response.discard()
            return TokenResponse(response.status, b"")
        try:
            answer = response.read(TOKEN_ANSWER_LIMIT, "the token answer")
        except RegistryError as exc:  # an endless answer is the token flow failing
            raise AuthError(exc.message, exc.hint) from None
        return TokenResponse(200, answer)

    def ping(self) -> str:
        """Find the scheme that works and the auth the registry wants; returns the base URL."""
        with self._ping_lock:
            if self._base is None:
                self._base = self._ping()
                log.debug("registry %s at %s", self.host.name, self._base)
            return self._base

    def _ping(self) -> str:
        error: ImgpullError | None = None
        schemes = self.host.schemes
        for scheme in schemes:
            url = self.host.url(scheme, "/v2/")
            try:
                response = self._send("GET", url, {})
            except ProxyError:
                raise  # the proxy failed, not the scheme: another scheme won't help
            except TLSError as exc:
                if not exc.maybe_plain_http or scheme == schemes[-1]:
                    raise
                error = exc  # a plain-HTTP server; try the next scheme
                continue
            except NetworkError as exc:
                if scheme == schemes[-1]:
                    raise
                error = exc
                continue
            if scheme == "http" and response.status == 400 and scheme != schemes[-1]:
                # "Client sent an HTTP request to an HTTPS server": try HTTPS next.
                response.discard()
                continue
            base = f"{scheme}://{self.host.api_host}"
            # A challenge from a host /v2/ redirected us to is not the registry's: its
            # realm never gets our credentials.
            own = origin(response.url) == origin(base)
            if response.status == 401 and own:
                challenge = response.headers.get("WWW-Authenticate", "")
                response.discard()
                if challenge:
                    self.auth.learn(challenge)
            elif (
                response.status >= 400
                and response.status != 404
                and (own or response.status != 401)
            ):
                raise error_from(response, f"{self.host.name} /v2/ endpoint", None)
            else:
                response.discard()
            return base
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
        retries: int | None = None,
        url: str | None = None,
        body: Body = None,
        scope: str | None = None,
        first_byte: float | None = None,
    ) -> Response:
        """An authenticated request; a 401 mid-run (an expired token) is answered once.

        A streamed ``body`` cannot be sent twice: callers make an authenticated request
        first (the upload's POST), so the token is in hand before the body goes out.
        """
        base = self.ping()
        target = checked_url(url or base + path, f"a URL from {self.host.name}")
        scope = scope or f"repository:{repository}:{actions}"
        sent = dict(headers or {})
        # An upload URL on another host (some registries hand those out) gets no token.
        same_host = origin(target) == origin(base)
        authorization = self.auth.header(scope) if self.auth.needs_auth and same_host else None
        for attempt in range(2):
            if authorization:
                sent["Authorization"] = authorization
            response = self._send(
                method, target, sent, body, retries=retries, first_byte=first_byte
            )
            replayable = body is None or isinstance(body, bytes)
            # A 401 from a host we were redirected to (blob storage) is not the registry's
            # challenge: answering it would hand our credentials to that host's realm.
            answered_by_registry = origin(response.url) == origin(base)
            challenge = response.headers.get("WWW-Authenticate", "")
            if (
                response.status != 401
                or attempt == 1
                or not replayable
                or not same_host
                or not answered_by_registry
                or not challenge
            ):
                return response
            response.discard()
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
        response.discard()
        if response.status in (401, 403):
            raise AuthError(
                f"{self.host.name} refused the credentials (HTTP {response.status})",
                "check the username and password",
            )

    # -- manifests ------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, identifier: str, *, size: int | None = None
    ) -> Manifest | Index:
        """Fetch a manifest or index by tag or digest, verifying its bytes; ``size``
        (from a descriptor) is checked against the limit before anything is fetched."""
        repository = self.host.repository(repository)
        what = f"{self.host.name}/{repository}" + (
            f"@{identifier}" if ":" in identifier else f":{identifier}"
        )
        limit = self.manifest_limit
        if size is not None and size > limit:
            raise RegistryError(
                f"manifest of {what} is {size} bytes, more than the {limit} allowed"
            )
        path = f"/v2/{repository}/manifests/{urllib.parse.quote(identifier, safe=':')}"
        response = self.request(
            "GET", path, repository=repository, headers={"Accept": ACCEPT_MANIFESTS}
        )
        if response.status != 200:
            raise error_from(response, what, identifier)
        raw = response.read(limit, f"the manifest of {what}")
        digest = manifest_digest(raw, identifier, response, what)
        return parse_manifest(raw, response.headers.get("Content-Type", ""), digest)

    # -- blobs ----------------------------------------------------------------------------

    def blob_response(
        self,
        repository: str,
        descriptor: Descriptor,
        offset: int,
        url: str | None = None,
        *,
        end: int | None = None,
    ) -> Response:
        """A blob's bytes from ``offset`` (to ``end``, exclusive, when given); status
        checked: 200, or 206 at that offset. Asked for a piece (``end``), an endpoint that
        ignores ``Range`` is :class:`RangeIgnored`."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        if end is not None:
            headers = {"Range": f"bytes={offset}-{end - 1}"}
        repository = self.host.repository(repository)
        where = f"{self.host.name}/{repository}"
        if url is not None:
            # Foreign layers live outside the registry: plain GET, no credentials.
            target = checked_url(url, f"a URL of layer {descriptor.digest.short}")
            response = self._send("GET", target, headers, foreign=True)
            where = origin(target)[1]
        else:
            path = f"/v2/{repository}/blobs/{descriptor.digest}"
            response = self.request("GET", path, repository=repository, headers=headers)
        if response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                response.close()
                raise RegistryError(
                    f"{where} resumed blob {descriptor.digest.short} at byte {start}, "
                    f"not {offset} as asked"
                )
        elif response.status != 200:
            raise error_from(response, f"blob {descriptor.digest} of {where}", None)
        elif end is not None:
            response.close()
            raise RangeIgnored(f"{where} does not serve parts of blobs (it ignores Range)")
        return response

    def fetch_blob(self, repository: str, descriptor: Descriptor, limit: int) -> bytes:
        """A small blob (a config) read whole, bounded and verified."""
        what = f"blob {descriptor.digest} of {self.host.name}/{repository}"
        if descriptor.size > limit:
            raise RegistryError(
                f"{what} is {descriptor.size} bytes, more than the {limit} a config may have",
                "this is not a container image config imgpull will read",
            )
        response = self.blob_response(repository, descriptor, 0)
        data = response.read(descriptor.size, what)
        verifier = Verifier(descriptor.digest, descriptor.size, what=what)
        verifier.update(data)
        verifier.verify()
        return data

    def open_blob(self, repository: str, descriptor: Descriptor, offset: int = 0) -> ByteStream:
        """A blob's bytes from ``offset``, as a stream the caller reads and closes."""
        return _ResponseStream(self.blob_response(repository, descriptor, offset))

    # -- tags -----------------------------------------------------------------------------

    def tags(self, repository: str, skipped: list[str] | None = None) -> Iterator[str]:
        """Every valid tag, following ``Link`` pagination with bounds: a page URL seen
        twice, too many pages or tags, or an oversized page ends it with an error.
        Names that are not tags are left out (and recorded in ``skipped``)."""
        repository = self.host.repository(repository)
        base = self.ping()
        url: str | None = f"{base}/v2/{repository}/tags/list?n={TAGS_PAGE_SIZE}"
        seen_urls: set[str] = set()
        seen: set[str] = set()
        where = f"{self.host.name}/{repository}"
        while url is not None:
            if url in seen_urls or len(seen_urls) >= MAX_TAG_PAGES:
                raise RegistryError(
                    f"the tag list of {where} loops or never ends (page {len(seen_urls) + 1})",
                    "the registry's pagination is broken",
                )
            seen_urls.add(url)
            response = self.request("GET", "", repository=repository, url=url)
            if response.status != 200:
                raise error_from(response, where, None)
            page = _tag_page(response.read(TAGS_PAGE_LIMIT, f"a tag list page of {where}"), where)
            for tag in page:
                if not _TAG_RE.fullmatch(tag):
                    if skipped is not None:
                        skipped.append(tag)
                elif tag not in seen:
                    seen.add(tag)
                    if len(seen) > MAX_TAGS:
                        raise RegistryError(f"{where} lists more than {MAX_TAGS} tags")
                    yield tag
            url = next_link(response.headers.get("Link", ""), response.url)
            if url is not None and origin(url) != origin(base):
                raise RegistryError(f"the tag list of {where} continues on another host")


class RangeIgnored(RegistryError, PiecesRefused):
    """Asked for a piece of a blob, the endpoint sent all of it."""


class _ResponseStream:
    """A response body as a file-like stream (``read``/``readinto``/``close``)."""

    def __init__(self, response: Response) -> None:
        self.response = response

    def read(self, size: int = -1) -> bytes:
        return self.response.read1(size if size > 0 else 1024 * 1024)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.response.read1(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> _ResponseStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tag_page(raw: bytes, where: str) -> list[str]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise RegistryError(f"{where} sent an unreadable tag list") from None
    tags = data.get("tags") if isinstance(data, dict) else None
    if tags is None:
        return []
    if not isinstance(tags, list):
        raise RegistryError(f"{where} sent a tag list whose tags are not a list")
    return [t for t in tags if isinstance(t, str)]


def next_link(header: str, url: str) -> str | None:
    """The absolute URL of the ``rel="next"`` entry of an RFC 8288 ``Link`` header
    (relative targets resolved against ``url``), or None."""
    for part in header[:8192].split(","):
        target, _, params = part.partition(";")
        rels = {p.strip().replace('"', "") for p in params.split(";")}
        if "rel=next" not in rels:
            continue
        target = target.strip()
        if not (target.startswith("<") and target.endswith(">")):
            continue
        try:
            absolute = urllib.parse.urljoin(url, target[1:-1])
            checked_url(absolute, "a Link header")
        except (ValueError, ImgpullError):
            return None
        return absolute
    return None


def _content_range_start(value: str) -> int | None:
    unit, _, rest = value.partition(" ")
    start = rest.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() and len(start) < 20 else None


__all__ = ["RangeIgnored", "RegistryClient", "next_link"]
