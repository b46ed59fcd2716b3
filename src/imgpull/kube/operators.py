"""Images that operators keep in their custom resources, field by field.

Checked against the Go types of prometheus-operator (``pkg/apis/monitoring/v1``:
``CommonPrometheusFields.Image``, ``PrometheusSpec.BaseImage/Tag/SHA``, ``ThanosSpec``,
``AlertmanagerSpec``, ``ThanosRulerSpec``; ``v1alpha1`` ``PrometheusAgent``, which
inlines the common fields) and at how the operator builds the image it runs
(``pkg/operator/image.go`` ``BuildImagePath``): ``spec.image`` wins when set; otherwise
``spec.baseImage`` is used as it is if it has a tag or digest, else with ``@sha256:SHA``,
else ``:TAG``, else ``:VERSION`` (for Prometheus itself ``v`` + the semantic version:
``2.53.0`` and ``v2.53.0`` both give ``:v2.53.0``). The legacy form is reported as that
composed reference, found at ``baseImage``, and rewritten there: only the repository in
``baseImage`` changes, ``version``/``tag``/``sha`` stay. A ``baseImage`` without any of
them is listed bare (the operator adds its own default version). The CRs' ``containers``
and ``initContainers`` overrides are pod-spec shaped and found as containers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from imgpull.kube.tree import Mapping, Scalar, get, get_str

__all__ = ["OPERATOR_FIELDS", "CustomResourceImage", "ImageField", "custom_resource_images"]


@dataclass(frozen=True)
class ImageField:
    """Where a CR kind keeps an image: the mapping at ``path`` holds ``image``, and with
    ``legacy`` also ``baseImage`` + ``version``/``tag``/``sha``."""

    path: tuple[str, ...]
    legacy: bool = False
    v_version: bool = False  # the version is a semantic version written with a "v"


#: (API group, kind) -> its image fields.
OPERATOR_FIELDS: Final[dict[tuple[str, str], tuple[ImageField, ...]]] = {
    ("monitoring.coreos.com", "Prometheus"): (
        ImageField(("spec",), legacy=True, v_version=True),
        ImageField(("spec", "thanos"), legacy=True),
    ),
    ("monitoring.coreos.com", "PrometheusAgent"): (ImageField(("spec",)),),
    ("monitoring.coreos.com", "Alertmanager"): (ImageField(("spec",), legacy=True),),
    ("monitoring.coreos.com", "ThanosRuler"): (ImageField(("spec",)),),
}


_KINDS: Final = frozenset(kind for _, kind in OPERATOR_FIELDS)


@dataclass(frozen=True)
class CustomResourceImage:
    """An image of a CR: the scalar that holds it, and the reference the operator runs
    (differs from the scalar's value for the legacy ``baseImage`` form)."""

    node: Scalar
    reference: str
    legacy: bool


def _composed(base: str, holder: Mapping, field: ImageField) -> str:
    """What ``BuildImagePath`` makes of ``baseImage`` and its companions."""
    last = base.rsplit("/", 1)[-1]
    if "@" in base or ":" in last:
        return base
    sha, tag, version = (get_str(holder, key) for key in ("sha", "tag", "version"))
    if sha is not None:
        return f"{base}@sha256:{sha.value}"
    if tag is not None:
        return f"{base}:{tag.value}"
    if version is not None:
        return (
            f"{base}:v{version.value.removeprefix('v')}"
            if field.v_version
            else (f"{base}:{version.value}")
        )
    return base


def _holder(resource: Mapping, path: tuple[str, ...]) -> Mapping | None:
    node: object = resource
    for key in path:
        node = get(node, key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else None


def custom_resource_images(resource: Mapping) -> list[CustomResourceImage]:
    """The images of ``resource`` if it is a CR kind of :data:`OPERATOR_FIELDS`."""
    kind = get_str(resource, "kind")
    if kind is None or kind.value not in _KINDS:
        return []
    api_version = get_str(resource, "apiVersion")
    group = "" if api_version is None else api_version.value.partition("/")[0]
    return list(_images(resource, OPERATOR_FIELDS.get((group, kind.value), ())))


def _images(resource: Mapping, fields: tuple[ImageField, ...]) -> Iterator[CustomResourceImage]:
    for field in fields:
        holder = _holder(resource, field.path)
        if holder is None:
            continue
        image = get_str(holder, "image")
        if image is not None:
            yield CustomResourceImage(image, image.value, legacy=False)
        elif field.legacy and (base := get_str(holder, "baseImage")) is not None:
            yield CustomResourceImage(base, _composed(base.value, holder, field), legacy=True)
