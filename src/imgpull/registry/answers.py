"""What a registry's answers mean: manifest digests checked, error bodies read (bounded)
and turned into one clear error."""

from __future__ import annotations

import json
from typing import Any, Final

from imgpull.digest import Digest
from imgpull.errors import (
    AuthError,
    DigestMismatchError,
    ImgpullError,
    NotFoundError,
    RateLimitedError,
    RegistryError,
)
from imgpull.registry.response import Response
from imgpull.text import shown

ERROR_BODY_LIMIT: Final = 1024 * 1024


def manifest_digest(raw: bytes, identifier: str, response: Response, what: str) -> Digest:
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


def registry_errors(response: Response) -> list[dict[str, Any]]:
    """The ``errors`` of a distribution-style error body: read at most 1 MiB of it, and
    take what parses (a body that is not such JSON gives none)."""
    try:
        body = json.loads(response.read(ERROR_BODY_LIMIT, "an error answer") or b"{}")
    except ImgpullError:
        return []
    except (ValueError, RecursionError):
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [e for e in errors[:20] if isinstance(e, dict)]


def error_from(response: Response, what: str, identifier: str | None) -> ImgpullError:
    """Map an unexpected registry answer to one clear error."""
    status = response.status
    errors = registry_errors(response)
    codes = {str(e.get("code", ""))[:64] for e in errors}
    detail = shown("; ".join(str(e.get("message", "")) for e in errors if e.get("message")))
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
        limits = shown(
            ", ".join(
                f"{k}={v}"
                for k, v in response.headers.items()
                if k.lower().startswith("ratelimit-")
            )
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
