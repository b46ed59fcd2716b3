"""Where the images are: one walk over every document, and what looked like an image but
was left alone.

The walk visits every node once (aliases: once per collection, so recursive aliases and
alias "bombs" cost no more than the text). Any mapping key ``containers``,
``initContainers`` or ``ephemeralContainers`` whose value is a sequence makes each of its
mapping entries a container (:mod:`imgpull.kube.containers`); that covers Pods,
workloads, CronJobs, PodTemplates, ``kind: List`` and custom resources that embed a pod
spec. Custom resources of known operators add their image fields
(:mod:`imgpull.kube.operators`). Results come in document order, repeats included (an
image reached through an alias reports its anchor's position).

Skipped: any other string value with an image reference that names its registry and has
a tag or digest in it (or, for ``rewrite``, whose registry a rule names) -- text a
``sed`` over the file would change. ConfigMap data, annotations and the like are listed
this way, with their position, so nothing is left alone silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from imgpull.errors import ConfigError, InvalidReferenceError
from imgpull.kube.composer import CANDIDATE_RE
from imgpull.kube.containers import Found, container_images
from imgpull.kube.operators import custom_resource_images
from imgpull.kube.parse import DEFAULT_MAX_DEPTH, Parsed, compose
from imgpull.kube.positions import positions, reference_offset
from imgpull.kube.problems import reference_error
from imgpull.kube.sources import Source
from imgpull.kube.tree import CONTAINER_KEYS, Mapping, Node, Scalar, Sequence
from imgpull.naming import has_registry_host
from imgpull.reference import Reference, parse_reference

__all__ = ["Hit", "ImageUse", "Scan", "Skipped", "find_images", "scan"]

_TRAILING: Final = ".,;:"
#: The most image uses one input may have (a real manifest of 10 MB has about 5,000).
MAX_USES: Final = 200_000


@dataclass(frozen=True)
class Hit:
    """An image in the tree: the scalar, the reference's start in its value, the rule
    that found it, and the reference to list (``listed``, for the legacy CR form)."""

    node: Scalar
    kind: str
    start: int = 0
    listed: str | None = None

    @property
    def text(self) -> str:
        """The reference as written in the scalar."""
        return self.node.value[self.start :]


@dataclass(frozen=True)
class ImageUse:
    """One image use in a source: the reference as written and where (1-based line,
    column), and ``kind``: ``container``, ``arg``, ``env``, ``cr-field`` (a custom
    resource's image field) or ``cr-base`` (its legacy ``baseImage`` form, listed as the
    reference the operator composes)."""

    reference: str
    path: str
    line: int
    column: int
    kind: str = "container"

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    def parse(self) -> Reference:
        """The parsed reference; ConfigError naming this location if it is invalid."""
        try:
            return parse_reference(self.reference)
        except InvalidReferenceError as exc:
            raise reference_error(self.path, self.location, self.reference, exc) from None


@dataclass(frozen=True)
class Skipped:
    """Text that looks like an image but that no rule reached, and why it was left."""

    text: str
    path: str
    line: int
    column: int
    reason: str

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


@dataclass
class Scan:
    """What one source holds: its parse, the hits, their uses, and what was skipped."""

    parsed: Parsed
    hits: list[Hit]
    uses: list[ImageUse] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _hits_of_mapping(mapping: Mapping) -> Iterator[Hit]:
    for image in custom_resource_images(mapping):
        yield Hit(image.node, "cr-base" if image.legacy else "cr-field", listed=image.reference)


def _hits_of_found(found: Found) -> Hit | None:
    return None if found.skipped is not None else Hit(found.node, found.kind, found.start)


def _containers(sequence: Sequence, cache: dict[int, list[Found]]) -> Iterator[Found]:
    """The findings of each container of ``sequence``; a container reached again through
    an alias is not searched again."""
    for entry in sequence.items:
        if isinstance(entry, Mapping):
            if id(entry) not in cache:
                cache[id(entry)] = container_images(entry)
            yield from cache[id(entry)]


def walk(documents: list[Node], notes: list[Found], label: str = "") -> list[Hit]:
    """Every hit in document order; rule findings that were skipped go to ``notes``.

    ConfigError past :data:`MAX_USES` (aliases can repeat a container list cheaply)."""
    hits: list[Hit] = []
    visited: set[int] = set()
    cache: dict[int, list[Found]] = {}
    stack: list[tuple[Node, bool]] = [(doc, False) for doc in reversed(documents)]
    while stack:
        node, is_containers = stack.pop()
        if is_containers and isinstance(node, Sequence):
            for found in _containers(node, cache):
                hit = _hits_of_found(found)
                if hit is None:
                    notes.append(found)
                else:
                    hits.append(hit)
            if len(hits) + len(notes) > MAX_USES:
                raise ConfigError(
                    f"{label}: more than {MAX_USES} image uses",
                    "check where this input comes from (aliases repeating container lists?)",
                )
        if isinstance(node, Scalar) or id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, Mapping):
            hits.extend(_hits_of_mapping(node))
            pairs = node.pairs
            for i in range(len(pairs) - 2, -1, -2):
                stack.append((pairs[i + 1], pairs[i] in CONTAINER_KEYS))  # type: ignore[arg-type]
        else:
            stack.extend((item, False) for item in reversed(node.items))
    return hits


def _looks_like_image(token: str, registries: frozenset[str]) -> bool:
    if not has_registry_host(token):
        return False
    try:
        ref = parse_reference(token)
    except InvalidReferenceError:
        return False
    last = token.rsplit("/", 1)[-1]
    return "@" in token or ":" in last or ref.registry in registries


def _skipped_strings(
    parsed: Parsed, hits: list[Hit], registries: frozenset[str]
) -> Iterator[tuple[int, str]]:
    """(offset, token) of image-like strings outside every hit."""
    text = parsed.source.text
    taken = {hit.node.ordinal for hit in hits}
    for candidate in parsed.candidates:
        if candidate.ordinal in taken:
            continue
        for match in CANDIDATE_RE.finditer(candidate.value):
            token = match.group().rstrip(_TRAILING)
            if _looks_like_image(token, registries):
                window = candidate.index + 4 * len(candidate.value) + 64
                offset = text.find(token, candidate.index, window)
                yield (candidate.index if offset < 0 else offset), token


def _skips(
    parsed: Parsed, hits: list[Hit], notes: list[Found], registries: frozenset[str]
) -> list[tuple[int, str, str]]:
    """(offset, text, reason) of everything skipped, in text order."""
    text = parsed.source.text
    found = [
        (offset, token, "not in an image field")
        for offset, token in _skipped_strings(parsed, hits, registries)
    ]
    found += [
        (
            reference_offset(text, note.node, note.start),
            note.node.value[note.start :],
            note.skipped or "",
        )
        for note in notes
    ]
    return sorted(found, key=lambda item: item[0])


def scan(
    source: Source,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    registries: frozenset[str] = frozenset(),
) -> Scan:
    """Parse ``source`` and find its images and skipped image-like strings.

    ``registries``: strings of these registries count as skipped even without a tag.
    References are not validated here (see :meth:`ImageUse.parse`). ConfigError for
    text that is not YAML.
    """
    parsed = compose(source, max_depth=max_depth)
    notes: list[Found] = []
    hits = walk(parsed.documents, notes, source.label)
    label, text = source.label, source.text
    offsets = [reference_offset(text, hit.node, hit.start) for hit in hits]
    skips = _skips(parsed, hits, notes, registries)
    where = positions(text, [*offsets, *(offset for offset, _, _ in skips)])
    result = Scan(parsed, hits)
    for hit, offset in zip(hits, offsets, strict=True):
        line, column = where[offset]
        result.uses.append(ImageUse(hit.listed or hit.text, label, line, column, hit.kind))
    for offset, token, reason in skips:
        line, column = where[offset]
        result.skipped.append(Skipped(token, label, line, column, reason))
    if parsed.candidates_dropped:
        more = parsed.candidates_dropped
        reason = f"{more} more strings with a host and a path were not looked at"
        result.skipped.append(Skipped("...", label, 1, 1, reason))
    return result


def find_images(source: Source, *, max_depth: int = DEFAULT_MAX_DEPTH) -> list[ImageUse]:
    """Every image use in ``source``, in document order, including repeats.

    References are returned as written and not validated (see :meth:`ImageUse.parse`).
    Raises ConfigError for a YAML syntax error.
    """
    return scan(source, max_depth=max_depth).uses
