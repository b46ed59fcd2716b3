"""Archives as an image source: every image and index an archive holds, ready to push.

An archive's own manifests are kept byte for byte, so a pull, push, pull round trip
keeps every digest. Images without one (docker-archives) get a Docker schema 2
manifest, as ``docker push`` would write; uncompressed layers (old ``docker save``) are
gzip-compressed first (deterministically, diffIDs unchanged), which changes the
manifest, and an index whose children changed points at the rewritten ones.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final, cast

from imgpull.archive.reader import ArchivedBlob, ArchivedImage, ArchivedIndex, ImageArchive
from imgpull.archive.records import DOCKER_LAYER, OCI_ND_LAYER
from imgpull.digest import Digest, Verifier, VerifyingReader
from imgpull.errors import ArchiveError, ImgpullError
from imgpull.model import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    IMAGE_CONFIG_TYPES,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_ZSTD,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    PlatformSelection,
    index_subset,
    parse_manifest,
)
from imgpull.reference import Reference, parse_reference
from imgpull.source import Attached, SourceImage

_READ: Final = 1024 * 1024
# Layers registries want compressed; other uncompressed blobs (in-toto statements, SBOM
# JSON, artifact files) are pushed exactly as they are, so their manifests survive.
UNCOMPRESSED_TARS: Final = frozenset({DOCKER_LAYER, OCI_LAYER, OCI_ND_LAYER})
Opener = Callable[[int], BinaryIO]


@dataclass(frozen=True, slots=True)
class _Prepared:
    manifest: Manifest
    config: ImageConfig | None


class ArchiveSource:
    """The images of an open archive; ``work`` holds layers compressed for the push."""

    def __init__(self, archive: ImageArchive, work: Path) -> None:
        self.archive = archive
        self.work = work
        self._openers: dict[Digest, Opener] = {}
        self._count = 0

    def resolve(self, selection: PlatformSelection) -> list[SourceImage]:
        """Every image and index of the archive (all platforms: it holds what it holds),
        with the signatures, attestations and SBOMs kept for each."""
        found = [self._image(image) for image in self.archive.images]
        found += [self._index(index) for index in self.archive.indexes]
        return self._with_attached(found)

    def _with_attached(self, images: list[SourceImage]) -> list[SourceImage]:
        """Each attached manifest goes with the image it is about, byte for byte; one
        whose subject the archive does not hold is left out (it has nowhere to go)."""
        attached: dict[int, list[Attached]] = {}
        for item in self.archive.attached:
            owner = next((n for n, i in enumerate(images) if item.subject in i.digests), None)
            if owner is None or item.image.manifest is None:
                continue
            self._prepare(item.image)  # its blobs are read from the archive as they are
            attached.setdefault(owner, []).append(
                Attached(item.image.manifest, item.subject, item.tag)
            )
        return [
            dataclasses.replace(image, attached=tuple(attached.get(number, ())))
            for number, image in enumerate(images)
        ]

    def _label(self, names: Sequence[str], fallback: str) -> str:
        return names[0] if names else fallback

    def _image(self, image: ArchivedImage) -> SourceImage:
        prepared = self._prepare(image)
        configs = {prepared.manifest.config.digest: prepared.config} if prepared.config else {}
        return SourceImage(
            label=image.label,
            top=prepared.manifest,
            manifests=(prepared.manifest,),
            configs=configs,
            resolved=prepared.manifest.digest,
            endpoint=str(self.archive.path),
            names=_references(image.names),
            tags=image.tags,
        )

    def _index(self, index: ArchivedIndex) -> SourceImage:
        prepared = [self._prepare(child) for child in index.images]
        present = [c.manifest.descriptor for c in index.images if c.manifest is not None]
        renamed = {
            str(child.manifest.digest): ready.manifest
            for child, ready in zip(index.images, prepared, strict=True)
            if child.manifest is not None
        }
        raw = _renamed_children(index_subset(index.index, present).raw, renamed)
        top = parse_manifest(raw, index.index.media_type or OCI_INDEX, Digest.of(raw))
        if not isinstance(top, Index):
            raise ArchiveError(f"{self.archive.path}: an index turned into a manifest")
        configs = {p.manifest.config.digest: p.config for p in prepared if p.config is not None}
        label = self._label(index.names, f"index {index.index.digest.short}")
        return SourceImage(
            label=label,
            top=top,
            manifests=tuple(p.manifest for p in prepared),
            configs=configs,
            resolved=top.digest,
            endpoint=str(self.archive.path),
            names=_references(index.names),
            tags=index.tags,
        )

    def _prepare(self, image: ArchivedImage) -> _Prepared:
        """The manifest to push and where its blobs' bytes come from."""
        self._count += 1
        media = image.config_media_type or DOCKER_CONFIG
        config = Descriptor(media, image.config_digest, len(image.config))
        data = image.config
        self._openers[config.digest] = lambda offset: io.BytesIO(data[offset:])
        changed = False
        layers: list[Descriptor] = []
        for number, layer in enumerate(image.layers):
            if layer.compression == "none" and layer.media_type in UNCOMPRESSED_TARS:
                descriptor = self._compress(layer, self.work / f"{self._count}-{number}.tar.gz")
                changed = True
            else:
                descriptor = self._stored(layer)
            layers.append(descriptor)
        parsed = _config(image)
        if image.manifest is not None and not changed:
            return _Prepared(image.manifest, parsed)
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config.to_json(),
            "layers": [d.to_json() for d in layers],
        }
        raw = json.dumps(manifest, indent=3).encode()
        built = parse_manifest(raw, DOCKER_MANIFEST, Digest.of(raw))
        assert isinstance(built, Manifest)
        return _Prepared(built, parsed)

    def _stored(self, layer: ArchivedBlob) -> Descriptor:
        digest = layer.digest or self._hash(layer)
        kind = layer.compression
        fallback = DOCKER_LAYER_GZIP if kind == "gzip" else OCI_LAYER_ZSTD
        media = layer.media_type if kind in layer.media_type else fallback
        self._openers[digest] = self._member_opener(layer)
        return Descriptor(media, digest, layer.size)

    def _member_opener(self, layer: ArchivedBlob) -> Opener:
        def open_at(offset: int) -> BinaryIO:
            stream = self.archive.open(layer, verify=False)  # the VerifyingReader checks
            _skip(stream, offset)
            return stream

        return open_at

    def _hash(self, layer: ArchivedBlob) -> Digest:
        hasher = hashlib.sha256()
        with self.archive.open(layer) as stream:
            while chunk := stream.read(_READ):
                hasher.update(chunk)
        return Digest("sha256", hasher.hexdigest())

    def _compress(self, layer: ArchivedBlob, path: Path) -> Descriptor:
        """gzip an uncompressed layer to a file (deterministic: no name, no mtime), so
        its digest and size are known before the upload; the diffID does not change."""
        path.parent.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.sha256()
        with self.archive.open(layer) as source, path.open("wb") as raw:
            tee = _HashingWriter(raw, hasher)
            with gzip.GzipFile(
                fileobj=cast(BinaryIO, tee), mode="wb", mtime=0, compresslevel=3, filename=""
            ) as packed:
                while chunk := source.read(_READ):
                    packed.write(chunk)
        digest = Digest("sha256", hasher.hexdigest())

        def open_at(offset: int) -> BinaryIO:
            handle = path.open("rb")
            handle.seek(offset)
            return handle

        self._openers[digest] = open_at
        return Descriptor(DOCKER_LAYER_GZIP, digest, path.stat().st_size)

    def open_blob(self, descriptor: Descriptor, resume: Verifier | None = None) -> VerifyingReader:
        opener = self._openers.get(descriptor.digest)
        if opener is None:
            raise ArchiveError(f"{self.archive.path}: blob {descriptor.digest} is not in it")
        what = f"blob {descriptor.digest.short} of {self.archive.path}"
        verifier = resume or Verifier(descriptor.digest, descriptor.size, what=what)
        return VerifyingReader(opener, verifier)

    def retry_blob(self, descriptor: Descriptor) -> bool:
        return False  # an archive has one copy of each blob

    def close(self) -> None:
        self.archive.close()


def _references(names: Sequence[str]) -> tuple[Reference, ...]:
    found: list[Reference] = []
    for name in names:
        try:
            found.append(parse_reference(name))
        except ImgpullError:
            continue  # an odd name in the archive; the others still count
    return tuple(dict.fromkeys(found))


def _config(image: ArchivedImage) -> ImageConfig | None:
    if image.config_media_type not in ("", *IMAGE_CONFIG_TYPES):
        return None
    try:
        return ImageConfig.parse(image.config, image.config_digest)
    except ImgpullError:
        return None


def _renamed_children(raw: bytes, manifests: dict[str, Manifest]) -> bytes:
    """The index with each child whose manifest was rewritten for the push (layers that
    needed compressing) pointing at the rewritten manifest; unchanged when none was."""
    data = json.loads(raw)
    changed = False
    for entry in data.get("manifests", []):
        ready = manifests.get(entry.get("digest"))
        if ready is None or str(ready.digest) == entry["digest"]:
            continue
        entry.update(digest=str(ready.digest), size=len(ready.raw), mediaType=ready.media_type)
        changed = True
    return json.dumps(data, indent=2).encode() if changed else raw


def _skip(stream: BinaryIO, offset: int) -> None:
    if not offset:
        return
    try:
        stream.seek(offset, os.SEEK_CUR)
    except (OSError, ValueError, io.UnsupportedOperation):
        while offset:
            data = stream.read(min(offset, _READ))
            if not data:
                raise ArchiveError("archive member ended early") from None
            offset -= len(data)


class _HashingWriter:
    def __init__(self, out: BinaryIO, hasher: hashlib._Hash) -> None:
        self.out = out
        self.hasher = hasher

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()
