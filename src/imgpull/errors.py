"""The errors imgpull raises, one tree, each with a message for users and a hint.

    ImgpullError                 message + hint; ``temporary`` marks retryable conditions
    ├── InvalidReferenceError    a reference that Docker would not accept
    ├── ConfigError              bad flags, config files or credentials files
    │   └── UsageError           a command line or API call that cannot work as given
    │       └── InvalidPlatformError  not os/arch[/variant] (also a ValueError)
    ├── AuthError                credentials missing or refused, token flow failed
    ├── NotFoundError            repository, tag, manifest or blob unknown to the registry
    ├── RateLimitedError         HTTP 429 (temporary)
    ├── RegistryError            any other unexpected answer from a registry
    ├── NetworkError             DNS, refused or reset connections, timeouts (temporary)
    │   ├── TLSError             certificate or handshake failures (not temporary)
    │   └── ProxyError           the proxy itself failed
    ├── DigestMismatchError      bytes that do not match the digest they were asked for
    ├── SignatureError           --require-signature: no signature verifies with the key
    ├── UnsupportedError         schema 1 manifests, unknown media types
    ├── PlatformNotFoundError    an index without the requested platform (lists what exists)
    └── ArchiveError             an archive that cannot be written or read

Lower-layer exceptions (urllib3, OSError, JSON) are translated into this tree once, at
the module boundary where they occur; callers above never see library exceptions.

Exit codes of the command line, in one place: 0 done, 1 anything else, 2 bad usage or
reference, 3 authentication, 4 not found, 5 network or TLS, 6 integrity, 130 interrupted.
"""

from __future__ import annotations


class ImgpullError(Exception):
    """Base error: ``message`` says what went wrong, ``hint`` what to do about it."""

    temporary: bool = False

    def __init__(self, message: str, hint: str = "", *, temporary: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if temporary is not None:
            self.temporary = temporary

    def __str__(self) -> str:
        return self.message


class InvalidReferenceError(ImgpullError):
    pass


class ConfigError(ImgpullError):
    pass


class UsageError(ConfigError):
    """Wrong arguments: an unknown option, a bad platform string, a wrong keyword."""


class InvalidPlatformError(UsageError, ValueError):
    """A platform that is not ``os/arch[/variant]``; a ValueError as it always was."""


class AuthError(ImgpullError):
    pass


class NotFoundError(ImgpullError):
    pass


class RateLimitedError(ImgpullError):
    temporary = True


class RegistryError(ImgpullError):
    def __init__(self, message: str, hint: str = "", *, status: int = 0) -> None:
        super().__init__(message, hint)
        self.status = status
        self.temporary = status in (408, 500, 502, 503, 504)


class NetworkError(ImgpullError):
    temporary = True
    # The endpoint answered too slowly or not at all (the watchdog's limits): another
    # endpoint is worth trying at once rather than this one again.
    stalled = False


class TLSError(NetworkError):
    temporary = False
    # The handshake failed the way it does against a plain-HTTP server: trying plain
    # HTTP, where that is allowed, may work. Never set for an untrusted certificate.
    maybe_plain_http = False


class ProxyError(NetworkError):
    pass


class DigestMismatchError(ImgpullError):
    pass


class SignatureError(ImgpullError):
    """An image whose signature was required and does not verify (or is missing)."""


class UnsupportedError(ImgpullError):
    pass


class PlatformNotFoundError(ImgpullError):
    def __init__(self, message: str, hint: str = "", *, available: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint)
        self.available = available


class ArchiveError(ImgpullError):
    pass


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
    (SignatureError, EXIT_INTEGRITY),
)


def exit_code(exc: ImgpullError) -> int:
    """The command line's exit code for ``exc``."""
    return next((code for kind, code in _EXIT_FOR if isinstance(exc, kind)), EXIT_ERROR)
