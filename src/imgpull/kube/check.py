"""The safety net of every rewrite: the new text must parse to the same events as the
old, except the rewritten image values, or nothing is written.

Only the new text is parsed: the old text's events are known by their signatures
(:func:`imgpull.kube.parse.event_signature`), so the check is one more linear parse and
no tree. A changed scalar must keep its anchor and tag, resolve to a string, and hold
exactly the expected value; its style may change (plain to quoted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import yaml  # type: ignore[import-untyped,unused-ignore]

from imgpull.errors import ConfigError
from imgpull.kube.parse import Parsed, event_signature, events, paused_gc
from imgpull.kube.tree import STR_TAG, Scalar

__all__ = ["check_rewrite"]

_RESOLVER: Final = yaml.SafeLoader("")


def _is_expected(event: Any, value: str, node: Scalar) -> bool:
    if event.__class__ is not yaml.ScalarEvent or event.value != value:
        return False
    if event.anchor != node.anchor or event.tag != node.raw_tag:
        return False
    tag = event.tag
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, event.implicit)
    return bool(tag == STR_TAG)


def _same_events(parsed: Parsed, new_text: str, expected: Mapping[int, tuple[str, Scalar]]) -> bool:
    signatures = parsed.signatures
    count = len(signatures)
    ordinal = 0
    text = new_text[parsed.offset :] if parsed.offset else new_text
    scalar = yaml.ScalarEvent
    with paused_gc(), events(parsed.loader, text) as get_event:
        while (event := get_event()) is not None:
            if ordinal >= count:
                return False
            want = expected.get(ordinal)
            if want is not None:
                if not _is_expected(event, *want):
                    return False
            elif event.__class__ is scalar:  # inline: the hot path
                signature = hash((event.anchor, event.tag, event.implicit, event.value))
                if signature != signatures[ordinal]:
                    return False
            elif event_signature(event) != signatures[ordinal]:
                return False
            ordinal += 1
    return ordinal == count


def check_rewrite(
    parsed: Parsed, new_text: str, expected: Mapping[int, tuple[str, Scalar]]
) -> None:
    """ConfigError unless ``new_text`` is ``parsed`` with only the scalars of
    ``expected`` ({event ordinal: (new value, old node)}) changed."""
    try:
        same = _same_events(parsed, new_text, expected)
    except yaml.YAMLError:
        same = False
    if not same:
        raise ConfigError(
            f"{parsed.source.label}: internal error: the rewritten text would differ in more "
            "than image values",
            "nothing was written; please report this with the input file",
        )
