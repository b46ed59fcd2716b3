"""URLs as registries and proxies send them: printed without secrets, compared by origin,
checked before use (servers send ``Location`` headers, realms and layer URLs that do not
parse)."""

from __future__ import annotations

import urllib.parse

import urllib3
from urllib3.exceptions import LocationParseError

from imgpull.errors import RegistryError


def redact(url: str) -> str:
    """A URL safe to print: no user info, no query (signed blob URLs carry secrets)."""
    try:
        parts = urllib.parse.urlsplit(url)
        hostname, port = parts.hostname or "", parts.port
    except ValueError:
        return "(an unparsable URL)"
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port:
        host = f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.rpartition("@")[2].lower()


def checked_url(url: str, what: str) -> str:
    """``url`` if it is an http(s) URL with a host and a valid port; else one clean error
    (servers send ``Location`` headers, realms and layer URLs that do not parse)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
        urllib3.util.parse_url(url)
    except (ValueError, LocationParseError):
        parts, port = None, None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = url if len(url) < 80 and url.isprintable() else repr(url[:80])
        raise RegistryError(
            f"{what} is not a usable http(s) URL: {shown}",
            "the registry or a proxy sent a malformed URL; try again or another mirror",
        )
    del port  # parsing it was the check
    return url
