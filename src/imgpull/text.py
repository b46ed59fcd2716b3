"""Text from elsewhere (servers, archives, files) made safe for a one-line message."""

from __future__ import annotations

from typing import Final

SHOWN_MAX: Final = 120


def shown(text: str, limit: int = SHOWN_MAX) -> str:
    """``text`` escaped if it holds anything unprintable (terminal escape sequences, line
    breaks), and shortened to ``limit`` characters."""
    if not text.isprintable():
        text = text.encode("unicode_escape").decode("ascii")
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
