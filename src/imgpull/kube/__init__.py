"""Image references in Kubernetes YAML: list them, and rewrite them to a mirror or registry.

This is the library behind ``imgpull images PATH...`` and ``imgpull rewrite PATH...``.

Input
    Files, directories (searched recursively for ``*.yaml`` and ``*.yml`` in sorted order,
    as ``kubectl apply -R`` walks them, skipping names that start with ``.``), and ``-``
    for standard input, so that ``helm template ... | imgpull images -`` and
    ``kubectl kustomize ... | imgpull images -`` work. Every input may hold several
    documents separated by ``---``. Text is UTF-8 and is read without newline translation,
    so CRLF files stay CRLF.

Where images are found
    One generic rule instead of a table of kinds: walking every document's whole node tree,
    any mapping key ``containers``, ``initContainers`` or ``ephemeralContainers`` whose value
    is a sequence contributes the ``image`` string of each of its mapping entries. That
    covers Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers,
    Jobs, CronJobs (``spec.jobTemplate.spec.template.spec``), PodTemplates, ``kind: List``
    ``items`` (nested Lists too), and custom resources that embed a pod spec (Argo
    Rollouts, Knative Services, ...). Nothing else is an image: not annotations, not
    ConfigMap data (block scalars are text, never parsed as YAML), not env values. Custom
    resources that keep images elsewhere (Argo Workflows' ``container:``, Helm values
    files' ``image.repository``) are not covered. Anchors, aliases and ``<<`` merge keys are
    followed; an ``image`` that is not a string (``image: 1.27``, ``image: null``, an empty
    string) is ignored.

Invalid references
    Kubernetes refuses a pod whose image does not parse (``InvalidImageName``), so an
    invalid reference in a manifest is a real bug. Both listing and rewriting stop with a
    :class:`~imgpull.errors.ConfigError` naming ``FILE:LINE:COLUMN`` and the reason;
    :func:`find_images` itself does not parse, for callers that want to be lenient.

Mapping rules (:func:`map_reference`)
    ``mirrors`` (``--mirror SRC=DST``, repeatable): an image whose registry is ``SRC``
    (normalised: ``docker.io`` matches ``nginx``, which is ``docker.io/library/nginx``) moves
    to ``DST/<repository>``; ``DST`` is ``host[:port][/prefix]``. So
    ``quay.io=quay.mirrors.ustc.edu.cn`` maps ``quay.io/org/app:v1`` to
    ``quay.mirrors.ustc.edu.cn/org/app:v1`` and ``docker.io=m.daocloud.io/docker.io`` maps
    ``nginx:1.27`` to ``m.daocloud.io/docker.io/library/nginx:1.27``.

    ``to`` (``--to PREFIX``, ``registry[/namespace]``): every image not matched by a mirror
    rule moves under one registry keeping its repository path, as ``imgpull push ARCHIVE
    PREFIX`` stores it: ``nginx:1.27`` -> ``PREFIX/library/nginx:1.27``, ``quay.io/org/app:v1``
    -> ``PREFIX/org/app:v1``. An image already under ``PREFIX/`` (or a mirror's ``DST/``)
    is left alone, so rewriting twice changes nothing the second time.

    Except Kubernetes' own images, which follow kubeadm's rule for a custom
    ``imageRepository``: CoreDNS from ``registry.k8s.io`` (or the legacy ``k8s.gcr.io``)
    maps to ``PREFIX/coredns``. As verified in kubernetes/kubernetes
    ``cmd/kubeadm/app/images/images.go``: ``GetGenericImage(prefix, image, tag)`` is
    ``prefix/image:tag``; control-plane images and kube-proxy are
    ``GetGenericImage(repo, "kube-apiserver", tag)`` etc., etcd is ``repo/etcd``, pause is
    ``repo/pause``; and ``GetDNSImage`` appends ``/coredns`` to the repository *only* when it
    is the default ``registry.k8s.io`` ("Handle the renaming of the official image from
    registry.k8s.io/coredns to registry.k8s.io/coredns/coredns"), then adds the image name
    ``coredns`` (``constants.CoreDNSImageName``). So with ``imageRepository: PREFIX`` kubeadm
    pulls ``PREFIX/coredns:v1.11.1``, not ``PREFIX/coredns/coredns``, and
    ``registry.k8s.io/coredns/coredns:v1.11.1`` maps to ``PREFIX/coredns:v1.11.1``. The
    other kubeadm images are top-level already (``PREFIX/kube-apiserver``), and images
    outside kubeadm keep their path (``registry.k8s.io/ingress-nginx/controller`` ->
    ``PREFIX/ingress-nginx/controller``), so no two repositories collide. Mirror rules
    keep paths as they are, kubeadm or not (a mirror has the same layout). ``imgpull push``
    names its destinations with the same function:
    ``map_reference(ref, mirrors={}, to=PREFIX) or ref``.

    Tags and digests are kept, both when a reference has both. A reference written without
    tag or digest stays without one (``nginx`` -> ``PREFIX/library/nginx``). Images whose
    registry matches no rule are left unchanged.

Rewriting (:func:`rewrite_text`, :func:`rewrite`)
    Only image values change; every other byte (comments, key order, quoting, indentation,
    blank lines, anchors, document separators) is kept. PyYAML composes the text into nodes
    whose marks give the exact source span of each image scalar; new text is spliced into
    the original string at those spans. The quoting style is kept: a plain scalar stays
    plain when the new value is safe as a plain scalar (else it gets double quotes; in a
    flow collection a new ``:`` is quoted for the sake of older parsers unless the old value
    had one too), single- and double-quoted ones keep their quotes, and a one-line
    ``|``/``>`` block scalar keeps its header. An image given through an alias is rewritten
    once, at its anchor (every use of that anchor is the same value, so an anchor also used
    outside a container changes there too). The result is parsed again and compared node
    by node with the original: it must be the same tree with only the image values
    changed, or nothing is written.

    :func:`rewrite` reads and rewrites every input before it writes anything, so an error
    in any input (YAML syntax, an invalid reference, an unreadable path) leaves every file
    untouched. In-place writes go to a temporary file beside the target, keep the file's
    permission bits (and owner, where permitted), and replace it with ``os.replace``; only
    changed files are written (a symbolic link is followed, its target rewritten). Each
    file is replaced atomically; if writing one fails (disk full), those before it are
    already replaced.

Errors are :class:`~imgpull.errors.ConfigError` with one line, e.g.
``manifests/bad.yaml:9:6: invalid YAML: did not find expected '-' indicator (while parsing
a block collection at line 7, column 5)``.

Parsing uses PyYAML's libyaml binding (``CSafeLoader``, about ten times faster) when it is
there, else the pure-Python ``SafeLoader``; both give the same node positions. Only
composition is done (no Python objects are constructed), so no tag can run code.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO, cast

import yaml  # type: ignore[import-untyped,unused-ignore]

from imgpull.errors import ConfigError, InvalidReferenceError
from imgpull.naming import (
    KUBERNETES_REGISTRIES,
    map_reference,
    parse_location,
    parse_mirror,
    parse_mirrors,
    source_registry,
)
from imgpull.reference import Reference, parse_reference

__all__ = [
    "CONTAINER_KEYS",
    "KUBERNETES_REGISTRIES",
    "STDIN",
    "ImageUse",
    "RewriteResult",
    "Source",
    "find_images",
    "list_images",
    "make_mapper",
    "map_image",
    "map_reference",
    "parse_mirror",
    "parse_mirrors",
    "read_sources",
    "rewrite",
    "rewrite_text",
    "unified_diff",
    "write_atomic",
]

STDIN: Final = "-"
#: Keys whose sequence entries are containers with an ``image``.
CONTAINER_KEYS: Final = frozenset({"containers", "initContainers", "ephemeralContainers"})
YAML_SUFFIXES: Final = (".yaml", ".yml")

_STR_TAG: Final = "tag:yaml.org,2002:str"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"
_PLAIN_SAFE_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", re.ASCII)


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Source:
    """One input: ``name`` as shown to users (``-`` for stdin) and its whole ``text``.

    ``path`` is the file to write back to, None for standard input.
    """

    name: str
    text: str
    path: str | None = None


def _read_file(name: str) -> str:
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{name}: no such file or directory") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory") from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{name}: not UTF-8 text (invalid byte at offset {exc.start})",
            "Kubernetes manifests are UTF-8; convert the file with iconv",
        ) from None


def _yaml_files(directory: str) -> list[str]:
    """``*.yaml`` and ``*.yml`` under ``directory`` in ``filepath.Walk`` order (the order
    ``kubectl apply -R -f`` uses): entries by name, subdirectories read where they sort.
    Names starting with ``.`` are skipped; symbolic links to directories are not followed.
    """
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError as exc:
        raise ConfigError(f"{directory}: cannot read: {exc.strerror or exc}") from None
    found: list[str] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            found.extend(_yaml_files(entry.path))
        elif entry.name.endswith(YAML_SUFFIXES) and entry.is_file():
            found.append(entry.path)
    return found


def read_sources(paths: Sequence[str], stdin: TextIO) -> list[Source]:
    """Read every input: files, directories (``*.yaml``/``*.yml``, recursively, in the
    order ``kubectl apply -R`` reads them) and ``-`` for ``stdin``. A file reached twice
    (by a link, or named and in a directory) is read once, under its first name.

    Raises ConfigError for a missing or unreadable path, a directory without YAML files,
    text that is not UTF-8, or ``-`` given twice.
    """
    if not paths:
        raise ConfigError(
            "no input given", "name YAML files or directories, or - for standard input"
        )
    sources: list[Source] = []
    seen: set[str] = set()
    stdin_read = False
    for given in paths:
        if given == STDIN:
            if stdin_read:
                raise ConfigError("standard input (-) is given more than once")
            stdin_read = True
            sources.append(Source(STDIN, stdin.read(), None))
            continue
        if os.path.isdir(given):
            names = _yaml_files(given)
            if not names:
                raise ConfigError(f"{given}: no *.yaml or *.yml files in this directory")
        else:
            names = [given]
        for name in names:
            key = os.path.realpath(name)
            if key in seen:
                continue
            seen.add(key)
            sources.append(Source(name, _read_file(name), name))
    return sources


# --------------------------------------------------------------------------- parsing


#: The loaders to try, fastest first. libyaml's marks count characters like PyYAML's
#: (checked on CRLF and non-ASCII text) but skip a byte order mark, so text that starts
#: with one goes to the pure-Python loader; so does text libyaml refuses, to be sure
#: PyYAML refuses it too (it differs on rare line breaks such as U+2028).
_FAST_LOADER: Final[Any] = getattr(yaml, "CSafeLoader", None)


def _syntax_error(name: str, text: str, exc: yaml.YAMLError) -> ConfigError:
    """One line: ``NAME:LINE:COL: invalid YAML: problem (context at line L, column C)``."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
        problem = exc.problem or exc.context or "syntax error"
        detail = ""
        if exc.problem and exc.context:
            detail = f" ({exc.context}"
            if exc.context_mark is not None and exc.context_mark is not mark:
                detail += f" at line {exc.context_mark.line + 1}, column "
                detail += f"{exc.context_mark.column + 1}"
            detail += ")"
        message = f"{where}: invalid YAML: {problem}{detail}"
    elif isinstance(position := getattr(exc, "position", None), int):  # a ReaderError
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        reason = getattr(exc, "reason", "unacceptable character")
        message = f"{name}:{line}:{column}: invalid YAML: {reason}"
    else:
        message = f"{name}: invalid YAML: {exc}"
    return ConfigError(" ".join(message.split()), "fix the YAML syntax at that position")


@dataclass
class _Parsed:
    text: str
    documents: list[yaml.Node]


def _load(loader_class: Any, text: str) -> list[yaml.Node]:
    loader = loader_class(text)  # a str is checked for unprintable characters at once
    try:
        documents: list[yaml.Node] = []
        while loader.check_node():
            documents.append(cast("yaml.Node", loader.get_node()))
        return documents
    finally:
        loader.dispose()


def _compose(name: str, text: str) -> _Parsed:
    """All documents of ``text`` as nodes; ConfigError naming the position if invalid."""
    try:
        if _FAST_LOADER is not None and not text.startswith("\ufeff"):
            try:
                return _Parsed(text, _load(_FAST_LOADER, text))
            except yaml.YAMLError as exc:
                try:
                    return _Parsed(text, _load(yaml.SafeLoader, text))
                except yaml.YAMLError:
                    raise _syntax_error(name, text, exc) from None
        return _Parsed(text, _load(yaml.SafeLoader, text))
    except yaml.YAMLError as exc:
        raise _syntax_error(name, text, exc) from None
    except RecursionError:
        raise ConfigError(f"{name}: invalid YAML: nested too deeply") from None


def _scalar_str(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.ScalarNode) and node.tag == _STR_TAG:
        return cast(str, node.value)
    return None


def _pairs(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    return cast("list[tuple[yaml.Node, yaml.Node]]", node.value)


def _items(node: yaml.SequenceNode) -> list[yaml.Node]:
    return cast("list[yaml.Node]", node.value)


def _image_nodes(
    container: yaml.MappingNode, depth: int = 0
) -> Iterator[tuple[yaml.ScalarNode, yaml.MappingNode]]:
    """The ``image`` scalars of a container mapping (with the mapping that holds each).

    Direct ``image`` keys win; without one, ``<<`` merges are searched in order.
    """
    direct = [
        (value, container)
        for key, value in _pairs(container)
        if _scalar_str(key) == "image" and isinstance(value, yaml.ScalarNode)
    ]
    if any(_scalar_str(key) == "image" for key, _ in _pairs(container)):
        yield from direct
        return
    if depth > 32:
        return
    for key, value in _pairs(container):
        if key.tag != _MERGE_TAG:
            continue
        sources = _items(value) if isinstance(value, yaml.SequenceNode) else [value]
        for merged in sources:
            if isinstance(merged, yaml.MappingNode):
                found = list(_image_nodes(merged, depth + 1))
                if found:
                    yield from found
                    return


@dataclass
class _Found:
    node: yaml.ScalarNode
    holder: yaml.MappingNode


def _walk_images(documents: Sequence[yaml.Node]) -> list[_Found]:
    """Every image scalar in container lists, in document order (an alias repeats).

    Iterative, and each collection is descended into once, so deep nesting, recursive
    aliases and alias "bombs" cost no more than the text's size.
    """
    found: list[_Found] = []
    visited: set[int] = set()
    # (node, whether it is the value of a container key)
    stack: list[tuple[yaml.Node, bool]] = [(doc, False) for doc in reversed(documents)]
    while stack:
        node, is_containers = stack.pop()
        if is_containers and isinstance(node, yaml.SequenceNode):
            for entry in _items(node):
                if isinstance(entry, yaml.MappingNode):
                    found.extend(_Found(n, h) for n, h in _image_nodes(entry))
        if id(node) in visited or isinstance(node, yaml.ScalarNode):
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend(
                (value, _scalar_str(key) in CONTAINER_KEYS) for key, value in reversed(_pairs(node))
            )
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, False) for item in reversed(_items(node)))
    return [f for f in found if f.node.tag == _STR_TAG and f.node.value != ""]


# --------------------------------------------------------------------------- finding


@dataclass(frozen=True)
class ImageUse:
    """One image value in a source: the text as written and where (1-based line, column).

    An image given through an alias reports the position of its anchor's value.
    """

    reference: str
    path: str
    line: int
    column: int

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    def parse(self) -> Reference:
        """The parsed reference; ConfigError naming this location if it is invalid."""
        try:
            return parse_reference(self.reference)
        except InvalidReferenceError as exc:
            raise ConfigError(f"{self.location}: {exc.message}", exc.hint) from None


@dataclass(frozen=True)
class _Position:
    offset: int
    line: int  # 0-based
    column: int  # 0-based


def _value_start(parsed: _Parsed, node: yaml.ScalarNode) -> _Position:
    """Where the scalar's own text starts: after its anchor and tag, if any.

    A node's ``start_mark`` is at its properties (``&img !!str nginx``); they are
    separated from the value by spaces, line breaks and comments only.
    """
    mark = node.start_mark
    text, index, end = parsed.text, mark.index, node.end_mark.index
    if text[index : index + 1] not in ("&", "!"):
        return _Position(index, mark.line, mark.column)
    while index < end:
        char = text[index]
        if char in "&!":
            while index < end and text[index] not in " \t\r\n":
                index += 1
        elif char in " \t\r\n":
            index += 1
        elif char == "#":
            newline = text.find("\n", index, end)
            index = end if newline < 0 else newline
        else:
            break
    breaks = text.count("\n", mark.index, index)
    if breaks == 0:
        return _Position(index, mark.line, mark.column + index - mark.index)
    return _Position(index, mark.line + breaks, index - text.rfind("\n", 0, index) - 1)


def find_images(source: Source) -> list[ImageUse]:
    """Every image use in ``source``, in document order, including repeats.

    References are returned as written and not validated (see :meth:`ImageUse.parse`).
    Raises ConfigError for a YAML syntax error.
    """
    parsed = _compose(source.name, source.text)
    uses = []
    for found in _walk_images(parsed.documents):
        mark = _value_start(parsed, found.node)
        uses.append(
            ImageUse(cast(str, found.node.value), source.name, mark.line + 1, mark.column + 1)
        )
    return uses


def list_images(sources: Sequence[Source], *, normalized: bool = False) -> list[str]:
    """The image references of all ``sources``, unique, in order of first appearance.

    As written (``nginx:1.27``), or with ``normalized`` fully qualified
    (``docker.io/library/nginx:1.27``; a missing tag becomes ``:latest``). Every reference
    is validated: ConfigError naming ``FILE:LINE:COLUMN`` for the first invalid one. All
    sources are parsed before anything is returned.
    """
    uses = [use for source in sources for use in find_images(source)]
    result: dict[str, None] = {}
    for use in uses:
        ref = use.parse()
        result.setdefault(str(ref) if normalized else use.reference)
    return list(result)


# --------------------------------------------------------------------------- mapping


def _has_explicit_version(text: str) -> bool:
    return "@" in text or ":" in text.rsplit("/", 1)[-1]


def map_image(text: str, *, mirrors: Mapping[str, str], to: str | None) -> str | None:
    """The new value for an image written as ``text``, or None to keep it (no rule
    applies, or it is already at its destination). The written form of tag and digest is
    kept: no ``:latest`` is added to ``nginx``.

    InvalidReferenceError if ``text`` (or the result) is not a valid reference.
    """
    mapped = map_reference(parse_reference(text), mirrors=mirrors, to=to)
    if mapped is None:
        return None
    return str(mapped) if _has_explicit_version(text) else mapped.name


def make_mapper(mirrors: Mapping[str, str], to: str | None) -> Callable[[str], str | None]:
    """A mapper for :func:`rewrite_text` applying ``mirrors`` and ``to``.

    The rules are validated here, once (ConfigError), so the mapper only sees bad images.
    """
    checked = {source_registry(src): dst for src, dst in mirrors.items()}
    for dst in checked.values():
        parse_location(dst, "mirror destination")
    if to is not None:
        parse_location(to, "target prefix")

    def mapper(text: str) -> str | None:
        return map_image(text, mirrors=checked, to=to)

    return mapper


# --------------------------------------------------------------------------- rewriting


def _render(
    node: yaml.ScalarNode, new: str, source_text: str, start: int, flow: bool
) -> str | None:
    """The text to put in place of ``node`` (``source_text[start:end]``) for value ``new``;
    None for a multi-line block scalar, which is not rewritten."""
    style = node.style or None  # libyaml says "" for plain
    if style == "'":
        return "'" + new.replace("'", "''") + "'"
    if style in ("|", ">"):
        # A one-line block scalar: replace the content line, keep header and indentation.
        old = cast(str, node.value).rstrip("\n")
        span = source_text[start : node.end_mark.index]
        header, newline, body = span.partition("\n")
        if newline and "\n" not in old and body.strip() == old:
            return header + newline + body.replace(old, new, 1)
        return None
    if style is None and _plain_ok(new, flow=flow, colon_ok=":" in cast(str, node.value)):
        return new
    return '"' + new.replace("\\", "\\\\").replace('"', '\\"') + '"'


_RESOLVER: Final = yaml.SafeLoader("")


def _plain_ok(text: str, *, flow: bool, colon_ok: bool) -> bool:
    """Whether ``text`` reads back as the same plain string.

    In a flow collection ``a:b`` is plain for PyYAML and libyaml 0.2, but older parsers
    refuse it; it stays plain only if the original value already had a ``:``.
    """
    if not _PLAIN_SAFE_RE.fullmatch(text) or (flow and ":" in text and not colon_ok):
        return False
    resolve: Callable[[type, str, tuple[bool, bool]], object] = _RESOLVER.resolve
    resolved = resolve(yaml.ScalarNode, text, (True, False))
    return bool(resolved == _STR_TAG)


def _same_tree(old: yaml.Node, new: yaml.Node, expected: Mapping[int, str], seen: set[int]) -> bool:
    """``new`` is ``old`` with the image scalars (by id) replaced by ``expected`` values."""
    if id(old) in seen:
        return True
    seen.add(id(old))
    if type(old) is not type(new) or old.tag != new.tag:
        return False
    if isinstance(old, yaml.ScalarNode):
        want = expected.get(id(old), old.value)
        return bool(new.value == want)
    if isinstance(old, yaml.MappingNode) and isinstance(new, yaml.MappingNode):
        a, b = _pairs(old), _pairs(new)
        return len(a) == len(b) and all(
            _same_tree(ka, kb, expected, seen) and _same_tree(va, vb, expected, seen)
            for (ka, va), (kb, vb) in zip(a, b, strict=True)
        )
    if isinstance(old, yaml.SequenceNode) and isinstance(new, yaml.SequenceNode):
        c, d = _items(old), _items(new)
        return len(c) == len(d) and all(
            _same_tree(x, y, expected, seen) for x, y in zip(c, d, strict=True)
        )
    return False


def rewrite_text(source: Source, mapper: Callable[[str], str | None]) -> str:
    """``source.text`` with each image value replaced by ``mapper(value)`` (None: keep).

    Only the image scalars' text changes (see the module docstring). ConfigError naming
    ``FILE:LINE:COLUMN`` for a YAML syntax error or an image ``mapper`` finds invalid
    (InvalidReferenceError), and if the result would not be the same document with just
    the images changed.
    """
    text = source.text
    parsed = _compose(source.name, text)
    found = _walk_images(parsed.documents)
    edits: dict[int, tuple[int, int, str]] = {}  # node id -> (start, end, replacement)
    expected: dict[int, str] = {}
    for item in found:
        node = item.node
        if id(node) in expected:
            continue
        mark = _value_start(parsed, node)
        where = f"{source.name}:{mark.line + 1}:{mark.column + 1}"
        old = cast(str, node.value)
        try:
            new = mapper(old)
        except InvalidReferenceError as exc:
            raise ConfigError(f"{where}: {exc.message}", exc.hint) from None
        expected[id(node)] = old if new is None else new
        if new is None or new == old:
            continue
        replacement = _render(node, new, text, mark.offset, bool(item.holder.flow_style))
        if replacement is None:
            raise ConfigError(
                f"{where}: cannot rewrite an image written as a multi-line block scalar",
                "write the image on one line",
            )
        edits[id(node)] = (mark.offset, node.end_mark.index, replacement)
    if not edits:
        return text
    pieces: list[str] = []
    position = 0
    for start, end, replacement in sorted(edits.values()):
        pieces += (text[position:start], replacement)
        position = end
    pieces.append(text[position:])
    result = "".join(pieces)
    _check_rewrite(source.name, parsed.documents, result, expected)
    return result


def _check_rewrite(
    name: str, documents: Sequence[yaml.Node], result: str, expected: Mapping[int, str]
) -> None:
    failure = ConfigError(
        f"{name}: internal error: the rewritten text would differ in more than image values",
        "nothing was written; please report this with the input file",
    )
    try:
        new_documents = _compose(name, result).documents
    except ConfigError:
        raise failure from None
    seen: set[int] = set()
    if len(new_documents) != len(documents) or not all(
        _same_tree(a, b, expected, seen) for a, b in zip(documents, new_documents, strict=True)
    ):
        raise failure


def _lines(text: str) -> list[str]:
    """Split at ``\\n`` only (``str.splitlines`` also splits at form feeds and more)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def unified_diff(name: str, old: str, new: str) -> str:
    """A git-style unified diff (``a/NAME``, ``b/NAME``); empty if equal."""
    if old == new:
        return ""
    out = []
    for line in difflib.unified_diff(_lines(old), _lines(new), f"a/{name}", f"b/{name}"):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def write_atomic(path: str, text: str) -> None:
    """Replace ``path``'s content with ``text`` (UTF-8) atomically, keeping its mode
    (and its owner, where permitted).

    The temporary file is created beside the (symlink-resolved) target and moved over it
    with ``os.replace``; on failure the original is untouched and ConfigError is raised.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    try:
        status = os.stat(target)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", dir=directory)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, stat.S_IMODE(status.st_mode))
        if (status.st_uid, status.st_gid) != (os.getuid(), os.getgid()):
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(tmp, status.st_uid, status.st_gid)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class RewriteResult:
    """What :func:`rewrite` did or would do.

    ``diff``: unified diffs of the changed files (standard input excluded), in input order.
    ``changed``: names of the sources whose text changed (``-`` for standard input).
    ``text_for_stdin``: the rewritten standard input (even if unchanged), None without ``-``.
    ``replacements``: (old, new) image pairs applied, unique, in order of appearance.
    """

    diff: str
    changed: list[str] = field(default_factory=list)
    text_for_stdin: str | None = None
    replacements: list[tuple[str, str]] = field(default_factory=list)


def rewrite(
    paths: Sequence[str],
    stdin: TextIO,
    *,
    mirrors: Mapping[str, str],
    to: str | None,
    in_place: bool = False,
) -> RewriteResult:
    """Rewrite the images of every input under ``mirrors`` and ``to``.

    Every input is read and rewritten in memory first; any error raises ConfigError
    before a single file is written. With ``in_place`` the changed files are then replaced
    atomically (standard input cannot be rewritten in place).
    """
    if not mirrors and to is None:
        raise ConfigError(
            "nothing to rewrite to", "give --mirror SRC=DST (repeatable) or --to PREFIX"
        )
    if in_place and STDIN in paths:
        raise ConfigError(
            "standard input cannot be rewritten in place",
            "drop --in-place to print the rewritten text",
        )
    mapper = make_mapper(mirrors, to)
    replacements: dict[tuple[str, str], None] = {}

    def recording(text: str) -> str | None:
        new = mapper(text)
        if new is not None:
            replacements.setdefault((text, new))
        return new

    sources = read_sources(paths, stdin)
    results = [(source, rewrite_text(source, recording)) for source in sources]
    changed = [(source, new) for source, new in results if new != source.text]
    if in_place:
        for source, _ in changed:
            if source.path is not None and not os.path.isfile(source.path):
                raise ConfigError(f"{source.name}: not a regular file; cannot rewrite in place")
    diff = "".join(
        unified_diff(source.name, source.text, new)
        for source, new in changed
        if source.path is not None
    )
    text_for_stdin = next((new for source, new in results if source.path is None), None)
    if in_place:
        for source, new in changed:
            if source.path is not None:
                write_atomic(source.path, new)
    return RewriteResult(
        diff=diff,
        changed=[source.name for source, _ in changed],
        text_for_stdin=text_for_stdin,
        replacements=list(replacements),
    )
