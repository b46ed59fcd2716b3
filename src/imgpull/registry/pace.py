"""Fast bodies read in whole buffers, below Python's per-record loop.

Python's TLS socket hands out one 16 KiB record per read, and urllib3 and http.client
add several Python frames to each: at 1 GB/s that is 64 calls per MiB and more CPU than
the decryption itself. http.client's ``readinto`` fills a whole buffer in C instead, but
it returns only when the buffer is full, so on a slow link nothing would report progress
(nor feed the watchdog's speed rule) for as long as a buffer takes. A :class:`Pace`
therefore measures how fast the body arrives and allows whole-buffer reads only while a
buffer takes milliseconds; a body that slows down goes back to small reads.
"""

from __future__ import annotations

import http.client
import ssl
from typing import Final

import urllib3
from urllib3.exceptions import ProtocolError, ReadTimeoutError, SSLError

#: Bytes per second above which a body is read in whole buffers (a 1 MiB buffer then
#: fills in under 16 ms, so progress and the watchdog still see it move many times a second).
FAST_RATE: Final = 64_000_000
#: Bytes read in small steps before the rate is trusted.
PROBE: Final = 256 * 1024


class Pace:
    """How fast one body arrives, counting only the time spent waiting in reads."""

    def __init__(self) -> None:
        self.fast = False
        self._bytes = 0
        self._seconds = 0.0

    def note(self, count: int, seconds: float) -> None:
        self._bytes += count
        self._seconds += seconds
        if self._bytes < PROBE:
            return
        self.fast = self._bytes >= FAST_RATE * self._seconds
        self._bytes, self._seconds = 0, 0.0


def direct_body(raw: urllib3.BaseHTTPResponse) -> http.client.HTTPResponse | None:
    """The http.client response under urllib3's, where reading it directly gives the
    same bytes: a body of known length, not chunked, read without content decoding (the
    transport never decodes, so urllib3 buffers nothing of its own)."""
    body = getattr(raw, "_fp", None)
    if not isinstance(body, http.client.HTTPResponse) or body.chunked or body.length is None:
        return None
    return body


def read_into(body: http.client.HTTPResponse, buffer: memoryview, url: str) -> int:
    """Fill ``buffer`` from ``body``; urllib3's exceptions for failures, as its own reads
    raise them (so one translation serves both), including a body cut short."""
    try:
        count = body.readinto(buffer)
    except TimeoutError as exc:  # socket.timeout
        raise ReadTimeoutError(None, url, f"Read timed out. ({exc})") from exc  # type: ignore[arg-type]
    except ssl.SSLError as exc:
        raise SSLError(exc) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ProtocolError(f"Connection broken: {exc!r}", exc) from exc
    if count == 0 and len(buffer) and body.length:
        left = body.length
        raise ProtocolError(
            f"Connection broken: IncompleteRead({left} bytes left)",
            http.client.IncompleteRead(b"", left),
        )
    return count


__all__ = ["FAST_RATE", "PROBE", "Pace", "direct_body", "read_into"]
