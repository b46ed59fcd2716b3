"""Images in a container: its ``image``, image flags in ``args``/``command``, and
``*IMAGE*`` variables in ``env``.

``image``
    The ``image`` string of the container mapping; without one, ``<<`` merges are
    searched in order. Not a string (``image: 1.27``, ``null``) or empty: ignored.

``args`` and ``command``
    An element ``--FLAG=REF`` (or ``-FLAG=REF``), and an element ``REF`` right after an
    element ``--FLAG``, where FLAG names an image and REF names its registry
    (``quay.io/...``, ``registry.local:5000/...``, ``localhost/...``) and is a valid
    reference. FLAG names an image when it contains ``image`` in any case
    (``--config-reloader-image``, ``--prometheus-default-base-image``, ``-queue-sidecar-image``,
    ``--proxyImage``) or is a known image flag without that word
    (:data:`KNOWN_IMAGE_FLAGS`: prometheus-operator's ``--prometheus-config-reloader``).
    Both conditions are needed: flags such as ``--image-pull-policy=Always`` or
    ``--image-gc-high-threshold=85`` name no registry, and ``--upstream=http://...`` or
    ``--kubelet-service=kube-system/kubelet`` are not image flags. An implicit Docker Hub
    name (``--image=nginx``) is not found this way: it cannot be told from other words.
    Only ``REF`` is rewritten, ``--FLAG=`` stays.

``env``
    An entry whose ``name`` contains ``IMAGE`` (any case; ``RELATED_IMAGE_*`` is the OLM
    convention) and whose ``value`` names its registry and is a valid reference.

A flag or variable that names an image and whose value names a registry but does not
parse is not an image here; it is reported as skipped, with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from imgpull.errors import InvalidReferenceError
from imgpull.kube.tree import MERGE, Mapping, Node, Scalar, Sequence
from imgpull.naming import has_registry_host
from imgpull.reference import parse_reference

__all__ = ["KNOWN_IMAGE_FLAGS", "Found", "container_images"]

#: Flags that name an image without the word "image" in them.
KNOWN_IMAGE_FLAGS: Final = frozenset({"prometheus-config-reloader"})
_FLAG_RE: Final = re.compile(r"--?([A-Za-z0-9][\w.-]*)(?:=(.*))?", re.DOTALL | re.ASCII)


@dataclass(frozen=True)
class Found:
    """An image in a scalar: ``node.value[start:]`` (``kind`` says which rule found it),
    or with ``skipped`` a reason it looked like one and was left alone."""

    node: Scalar
    kind: str
    start: int = 0
    skipped: str | None = None


def _direct(container: Mapping, key: str) -> list[Node]:
    pairs = container.pairs
    return [pairs[i + 1] for i in range(0, len(pairs), 2) if pairs[i] == key]  # type: ignore[misc]


def lookup(container: Mapping, key: str) -> list[Node]:
    """The values of ``key``: the direct ones (duplicates included), else those of the
    first mapping merged in with ``<<`` that has it, searched depth-first in order (as
    YAML's merge works); each mapping once, so aliases cannot make it loop."""
    stack, seen = [container], set()
    while stack:
        mapping = stack.pop()
        if id(mapping) in seen:
            continue
        seen.add(id(mapping))
        direct = _direct(mapping, key)
        if direct:
            return direct
        merged: list[Node] = []
        for value in _direct(mapping, MERGE):
            merged.extend(value.items if isinstance(value, Sequence) else [value])
        stack.extend(m for m in reversed(merged) if isinstance(m, Mapping))
    return []


def _names_image_flag(flag: str) -> bool:
    return "image" in flag.lower() or flag in KNOWN_IMAGE_FLAGS


def _judge(node: Scalar, kind: str, start: int = 0) -> Found | None:
    """A Found for ``node.value[start:]`` if it names a registry: an image if it parses."""
    text = node.value[start:]
    if not has_registry_host(text):
        return None
    try:
        parse_reference(text)
    except InvalidReferenceError as exc:
        return Found(node, kind, start, skipped=f"not a valid reference ({exc.message})")
    return Found(node, kind, start)


def _argument_images(arguments: Sequence) -> Iterator[Found]:
    after_image_flag = False
    for item in arguments.items:
        text = item.text if isinstance(item, Scalar) else None
        match = _FLAG_RE.fullmatch(text) if text is not None else None
        if text is None or not isinstance(item, Scalar):
            after_image_flag = False
        elif match is not None:
            value = match.group(2)
            if value is not None and _names_image_flag(match.group(1)):
                found = _judge(item, "arg", match.start(2))
                if found is not None:
                    yield found
            after_image_flag = value is None and _names_image_flag(match.group(1))
        else:
            if after_image_flag and (found := _judge(item, "arg")) is not None:
                yield found
            after_image_flag = False


def _env_images(variables: Sequence) -> Iterator[Found]:
    for variable in variables.items:
        if not isinstance(variable, Mapping):
            continue
        names = [n for n in lookup(variable, "name") if isinstance(n, Scalar) and n.text]
        values = [v for v in lookup(variable, "value") if isinstance(v, Scalar) and v.text]
        if names and values and "IMAGE" in names[0].value.upper():
            found = _judge(values[0], "env")
            if found is not None:
                yield found


def _all_images(container: Mapping) -> Iterator[Found]:
    for image in lookup(container, "image"):
        if isinstance(image, Scalar) and image.text is not None:
            yield Found(image, "container")
    for key in ("command", "args"):
        for arguments in lookup(container, key):
            if isinstance(arguments, Sequence):
                yield from _argument_images(arguments)
    for variables in lookup(container, "env"):
        if isinstance(variables, Sequence):
            yield from _env_images(variables)


def container_images(container: Mapping) -> list[Found]:
    """Every image of one container mapping, in the order they are written."""
    return sorted(_all_images(container), key=lambda found: found.node.index)
