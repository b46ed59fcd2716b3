"""Exit codes, in one place, and which error gets which."""

from __future__ import annotations

from imgpull.errors import (
    AuthError,
    ConfigError,
    DigestMismatchError,
    ImgpullError,
    InvalidReferenceError,
    NetworkError,
    NotFoundError,
    PlatformNotFoundError,
    UsageError,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_NETWORK = 5
EXIT_INTEGRITY = 6
EXIT_INTERRUPTED = 130

_EXIT_FOR: tuple[tuple[type[ImgpullError], int], ...] = (
    (UsageError, EXIT_USAGE),
    (InvalidReferenceError, EXIT_USAGE),
    (ConfigError, EXIT_USAGE),
    (AuthError, EXIT_AUTH),
    (NotFoundError, EXIT_NOT_FOUND),
    (PlatformNotFoundError, EXIT_NOT_FOUND),
    (NetworkError, EXIT_NETWORK),
    (DigestMismatchError, EXIT_INTEGRITY),
)


def exit_code(exc: ImgpullError) -> int:
    return next((code for kind, code in _EXIT_FOR if isinstance(exc, kind)), EXIT_ERROR)
