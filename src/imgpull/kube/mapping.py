"""The renaming rules (:class:`imgpull.naming.Renamer`) applied to image values as
written: the written form of tag and digest is kept (no ``:latest`` added to ``nginx``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from imgpull.naming import Renamer
from imgpull.reference import parse_reference

__all__ = ["Mapper", "make_mapper", "map_image", "map_text"]

#: Image text as written -> its new text, or None to keep it.
Mapper = Callable[[str], str | None]


def _has_explicit_version(text: str) -> bool:
    return "@" in text or ":" in text.rsplit("/", 1)[-1]


def map_text(renamer: Renamer, text: str) -> str | None:
    """The new value for an image written as ``text`` under ``renamer``, or None to keep
    it (no rule applies, or it is already at its destination).

    InvalidReferenceError if ``text`` (or the result) is not a valid reference.
    """
    mapped = renamer.map(parse_reference(text))
    if mapped is None:
        return None
    return str(mapped) if _has_explicit_version(text) else mapped.name


def map_image(
    text: str,
    *,
    mirrors: Mapping[str, str],
    to: str | None,
    image_repository: str | None = None,
) -> str | None:
    """:func:`map_text` with rules given as ``--mirror``/``--to``/``--image-repository``
    values (ConfigError if one is invalid)."""
    renamer = Renamer(mirrors=mirrors, to=to, image_repository=image_repository)
    return map_text(renamer, text)


def make_mapper(
    mirrors: Mapping[str, str] | Sequence[str] = (),
    to: str | None = None,
    *,
    image_repository: str | None = None,
    renamer: Renamer | None = None,
) -> Mapper:
    """A mapper for :func:`imgpull.kube.rewrite_text`: ``renamer``, or one built from the
    rules, validated here once (ConfigError), so the mapper only sees bad images."""
    rules = renamer or Renamer(mirrors=mirrors, to=to, image_repository=image_repository)

    def mapper(text: str) -> str | None:
        return map_text(rules, text)

    return mapper
