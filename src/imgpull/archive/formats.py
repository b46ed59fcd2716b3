"""The formats an archive may hold, read into images and indexes, told apart by
content, never by file name (see :mod:`imgpull.archive.reader`)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from imgpull.archive.layout import ANNOTATION_SUBJECT, ANNOTATION_TAG
from imgpull.archive.members import Entry, Members
from imgpull.archive.problems import NOT_AN_ARCHIVE, Problem, about
from imgpull.archive.records import (
    MAX_INDEX_DEPTH,
    SMALL_LIMIT,
    ArchivedAttached,
    ArchivedBlob,
    ArchivedImage,
    ArchivedIndex,
    ArchiveKind,
    Compression,
    blob_path,
    layer_media_type,
    renamed,
    split_names,
    unique,
)
from imgpull.digest import Digest
from imgpull.errors import ImgpullError
from imgpull.model import (
    ANNOTATION_REF_NAME,
    DOCKER_CONFIG,
    OCI_CONFIG,
    OCI_INDEX,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    parse_manifest,
)
from imgpull.text import shown

# cosign's tags: sha256-<hex>.sig, .att, .sbom
COSIGN_TAG_RE: Final = re.compile(
    r"(?P<algorithm>sha256|sha512)-(?P<hex>[0-9a-f]{64,128})\.(sig|att|sbom)"
)


@dataclass(frozen=True, slots=True)
class Contents:
    format: ArchiveKind
    images: tuple[ArchivedImage, ...]
    indexes: tuple[ArchivedIndex, ...]
    index: Index | None
    attached: tuple[ArchivedAttached, ...] = ()


def load(members: Members) -> Contents:
    """Every image and index of the archive, by what its top-level files say."""
    docker_entries: list[Any] | None = None
    dir_manifest: bytes | None = None
    if members.exists("manifest.json"):
        raw = members.read("manifest.json")
        data = members.json("manifest.json", "manifest.json")
        if isinstance(data, list):
            docker_entries = data
        elif isinstance(data, dict) and "schemaVersion" in data:
            dir_manifest = raw
        else:
            raise Problem(
                "manifest.json is neither a docker-archive image list nor an image manifest"
            )
    if members.exists("index.json"):
        index, oci_images, indexes, attached = load_oci(members)
        if docker_entries is None:
            return Contents("oci", tuple(oci_images), indexes, index, attached)
        docker = load_docker(members, docker_entries)
        images, indexes = merge(oci_images, docker, indexes)
        return Contents("docker+oci", images, indexes, index, attached)
    if docker_entries is not None:
        return Contents("docker", tuple(load_docker(members, docker_entries)), (), None)
    if dir_manifest is not None:
        images, indexes = load_dir(members, dir_manifest)
        return Contents("dir", images, indexes, None)
    raise Problem(
        "not an image archive: it has neither manifest.json nor index.json", NOT_AN_ARCHIVE
    )


def _has_rootfs(raw: bytes) -> bool:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return True  # let the config parser say what is wrong
    return not isinstance(data, dict) or "rootfs" in data


def load_docker(members: Members, entries: list[Any]) -> list[ArchivedImage]:
    images: list[ArchivedImage] = []
    for number, entry in enumerate(entries, 1):
        where = f"image {number} of manifest.json"
        if not isinstance(entry, dict):
            raise Problem(f"{where} is not a JSON object")
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise Problem(f"{where} has RepoTags that are not a list of names")
        layers = entry.get("Layers")
        if not isinstance(layers, list):
            raise Problem(f"{where} has no Layers list")
        config_member = members.reference(entry.get("Config"), f"{where}: its Config")
        with about(f"the config of {where}"):
            config_raw = members.read(config_member)
        config_digest = Digest.of(config_raw)
        config = parse_config(config_raw, config_digest, f"the config of {where}")
        if len(layers) != len(config.diff_ids):
            raise Problem(
                f"{where} lists {len(layers)} layers, but its config has "
                f"{len(config.diff_ids)} diff_ids"
            )
        located: list[tuple[Entry, Compression]] = []
        for position, path in enumerate(layers, 1):
            what = f"layer {position} of {where}"
            with about(what):
                found = members.locate(members.reference(path, "its path"))
            located.append((found, members.compression(found, what)))
        family = "oci" if any(c == "zstd" for _, c in located) else "docker"
        blobs = tuple(
            ArchivedBlob(
                member=found.name,
                size=found.size,
                digest=Digest.parse(diff_id) if kind == "none" else None,
                media_type=layer_media_type(None, kind, family),
                compression=kind,
                diff_id=diff_id,
                offset=found.offset,
            )
            for (found, kind), diff_id in zip(located, config.diff_ids, strict=True)
        )
        images.append(
            ArchivedImage(
                names=unique(tags),
                tags=(),
                config=config_raw,
                config_digest=config_digest,
                config_media_type=OCI_CONFIG if family == "oci" else DOCKER_CONFIG,
                layers=blobs,
                manifest=None,
                platform=config.platform,
            )
        )
    return images


def parse_config(raw: bytes, digest: Digest, what: str) -> ImageConfig:
    try:
        json.loads(raw)
    except RecursionError:
        raise Problem(f"{what} is nested too deeply to be real") from None
    except (ValueError, UnicodeDecodeError):
        raise Problem(f"{what} is not valid JSON") from None
    try:
        config = ImageConfig.parse(raw, digest)
    except ImgpullError as exc:
        raise Problem(f"{what} is not an image config: {exc.message}") from None
    for diff_id in config.diff_ids:
        try:
            Digest.parse(diff_id)
        except (ValueError, TypeError, ImgpullError):
            raise Problem(f"{what} has an invalid diff_id {shown(repr(diff_id))}") from None
    return config


def load_oci(
    members: Members,
) -> tuple[Index, list[ArchivedImage], tuple[ArchivedIndex, ...], tuple[ArchivedAttached, ...]]:
    raw = members.read("index.json")
    data = members.json("index.json", "index.json")
    if isinstance(data, dict) and "manifests" in data and data["manifests"] is None:
        # Docker 25 writes this when saving by image ID; its manifest.json names them.
        return Index(raw, OCI_INDEX, Digest.of(raw), ()), [], (), ()
    try:
        parsed = parse_manifest(raw, "", Digest.of(raw))
    except ImgpullError as exc:
        raise Problem(f"index.json is not an image index: {exc.message}") from None
    if not isinstance(parsed, Index):
        raise Problem("index.json is not an image index (it has no manifests list)")
    grouped: dict[Digest, list[Descriptor]] = {}
    for descriptor in parsed.manifests:
        grouped.setdefault(descriptor.digest, []).append(descriptor)
    images: list[ArchivedImage] = []
    indexes: list[ArchivedIndex] = []
    attached: list[ArchivedAttached] = []
    for number, descriptors in enumerate(grouped.values(), 1):
        names, tags = split_names(dict(d.annotations) for d in descriptors)
        what = f"manifest {number} of index.json"
        found = oci_manifest(members, descriptors[0], what, blob_path)
        if isinstance(found, Manifest):
            image = oci_image(members, found, descriptors[0], names, tags, what, blob_path)
            # Named, or tagged as itself ("sbom"), it is an image of its own, pushed by
            # name; otherwise what it refers to decides where it goes.
            own = names or any(not COSIGN_TAG_RE.fullmatch(tag) for tag in tags if tag)
            belongs = None if own else _attached_to(found, descriptors)
            if belongs is not None:
                attached.append(ArchivedAttached(image, *belongs))
            else:
                images.append(image)
        else:
            indexes.append(oci_index(members, found, names, tags, what, blob_path, depth=1))
    return parsed, images, tuple(indexes), tuple(attached)


def _attached_to(
    manifest: Manifest, descriptors: Sequence[Descriptor]
) -> tuple[Digest, str | None] | None:
    """(subject, tag) for an entry that is a signature, attestation or SBOM of an image:
    cosign's tags name the subject, an OCI 1.1 referrer carries it; None otherwise."""
    tag: str | None = None
    subject: Digest | None = manifest.subject.digest if manifest.subject else None
    for descriptor in descriptors:
        annotations = descriptor.annotations
        ref = annotations.get(ANNOTATION_TAG) or annotations.get(ANNOTATION_REF_NAME, "")
        found = COSIGN_TAG_RE.fullmatch(ref)
        if found:
            tag = ref
            subject = subject or _digest(f"{found['algorithm']}:{found['hex']}")
        named = descriptor.annotations.get(ANNOTATION_SUBJECT)
        if subject is None and named:
            subject = _digest(named)
    return None if subject is None else (subject, tag)


def _digest(text: str) -> Digest | None:
    try:
        return Digest.parse(text)
    except (ValueError, ImgpullError):
        return None


def oci_manifest(
    members: Members, descriptor: Descriptor, what: str, member_of: Callable[[Digest], str]
) -> Manifest | Index:
    raw = members.blob(descriptor, member_of(descriptor.digest), what, SMALL_LIMIT)
    try:
        return parse_manifest(raw, descriptor.media_type, descriptor.digest)
    except ImgpullError as exc:
        raise Problem(f"{what} is not usable: {exc.message}") from None


def oci_image(
    members: Members,
    manifest: Manifest,
    descriptor: Descriptor | None,
    names: Sequence[str],
    tags: Sequence[str],
    what: str,
    member_of: Callable[[Digest], str],
) -> ArchivedImage:
    config_raw = members.blob(
        manifest.config, member_of(manifest.config.digest), f"the config of {what}", SMALL_LIMIT
    )
    diff_ids: tuple[str | None, ...] = (None,) * len(manifest.layers)
    fallback = (descriptor.platform if descriptor else None) or Platform("unknown", "unknown")
    platform = fallback
    # An artifact (a signature, an attestation) may use an image config media type with
    # a config of `{}`: without a rootfs it has no diff_ids to check.
    if manifest.is_image and _has_rootfs(config_raw):
        config = parse_config(config_raw, manifest.config.digest, f"the config of {what}")
        if len(config.diff_ids) != len(manifest.layers):
            raise Problem(
                f"{what} has {len(manifest.layers)} layers, but its config has "
                f"{len(config.diff_ids)} diff_ids"
            )
        diff_ids = config.diff_ids
        if config.platform.os or config.platform.architecture:
            platform = config.platform
    layers: list[ArchivedBlob] = []
    for position, (layer, diff_id) in enumerate(zip(manifest.layers, diff_ids, strict=True), 1):
        where = f"layer {position} of {what}"
        member = member_of(layer.digest)
        with about(where):
            found = members.locate(member)
        if found.size != layer.size:
            raise Problem(
                f"{where} ({shown(member)}) is {found.size} bytes, its manifest says {layer.size}"
            )
        kind = members.compression(found, where)
        layers.append(
            ArchivedBlob(
                member=found.name,
                size=found.size,
                digest=layer.digest,
                media_type=layer_media_type(layer.media_type, kind, "oci"),
                compression=kind,
                diff_id=diff_id,
                declared=layer.media_type,
                offset=found.offset,
            )
        )
    return ArchivedImage(
        names=unique(names),
        tags=unique(tags),
        config=config_raw,
        config_digest=manifest.config.digest,
        config_media_type=manifest.config.media_type,
        layers=tuple(layers),
        manifest=manifest,
        platform=platform,
    )


def oci_index(
    members: Members,
    index: Index,
    names: Sequence[str],
    tags: Sequence[str],
    what: str,
    member_of: Callable[[Digest], str],
    *,
    depth: int,
) -> ArchivedIndex:
    if depth > MAX_INDEX_DEPTH:
        raise Problem(f"{what}: indexes nested too deep")
    children: list[ArchivedImage] = []
    missing: list[Descriptor] = []
    for number, child in enumerate(index.manifests, 1):
        where = f"entry {number} of the index in {what}"
        if not members.exists(member_of(child.digest)):
            missing.append(child)
            continue
        found = oci_manifest(members, child, where, member_of)
        if isinstance(found, Index):
            nested = oci_index(members, found, (), (), where, member_of, depth=depth + 1)
            children.extend(nested.images)
            missing.extend(nested.missing)
        else:
            children.append(oci_image(members, found, child, (), (), where, member_of))
    return ArchivedIndex(
        names=unique(names),
        tags=unique(tags),
        index=index,
        images=tuple(children),
        missing=tuple(missing),
    )


def merge(
    oci: list[ArchivedImage], docker: list[ArchivedImage], indexes: Sequence[ArchivedIndex]
) -> tuple[tuple[ArchivedImage, ...], tuple[ArchivedIndex, ...]]:
    """One image per OCI manifest, named also by the manifest.json entries that show
    the same config and layer members. An entry that shows a child of an index is the
    Docker view of that index: its names go to the index when it has none (Docker 25
    saves a multi-platform image so). Entries that match nothing stay docker images."""

    def key(image: ArchivedImage) -> tuple[Digest, tuple[str, ...]]:
        return image.config_digest, tuple(layer.member for layer in image.layers)

    merged: dict[tuple[Digest, tuple[str, ...]], ArchivedImage] = {}
    for image in oci:
        merged.setdefault(key(image), image)
    owner = {key(child): number for number, i in enumerate(indexes) for child in i.images}
    named = list(indexes)
    extra: list[ArchivedImage] = []
    for image in docker:
        k = key(image)
        if k in merged:
            seen = merged[k]
            merged[k] = renamed(seen, (*image.names, *seen.names), seen.tags)
        elif k in owner:
            index = named[owner[k]]
            if not index.names and not index.tags:
                named[owner[k]] = dataclasses.replace(index, names=unique(image.names))
        else:
            extra.append(image)
    return (*merged.values(), *extra), tuple(named)


def load_dir(
    members: Members, raw: bytes
) -> tuple[tuple[ArchivedImage, ...], tuple[ArchivedIndex, ...]]:
    def member_of(digest: Digest) -> str:
        return digest.hex

    def child_manifest(digest: Digest) -> str:
        return f"{digest.hex}.manifest.json"

    try:
        parsed = parse_manifest(raw, "", Digest.of(raw))
    except ImgpullError as exc:
        raise Problem(f"manifest.json is not usable: {exc.message}") from None
    if isinstance(parsed, Manifest):
        return (oci_image(members, parsed, None, (), (), "manifest.json", member_of),), ()
    children: list[ArchivedImage] = []
    missing: list[Descriptor] = []
    for number, child in enumerate(parsed.manifests, 1):
        where = f"entry {number} of manifest.json"
        if not members.exists(child_manifest(child.digest)):
            missing.append(child)
            continue
        found = oci_manifest(members, child, where, child_manifest)
        if isinstance(found, Index):
            raise Problem(f"{where} is a nested index, which the dir: layout never has")
        children.append(oci_image(members, found, child, (), (), where, member_of))
    return (), (ArchivedIndex((), (), parsed, tuple(children), tuple(missing)),)
