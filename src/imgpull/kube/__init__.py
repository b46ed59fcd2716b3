"""Image references in Kubernetes YAML: list them, and rewrite them to a mirror or registry.

This is the library behind ``imgpull images PATH...`` and ``imgpull rewrite PATH...``,
one job per module:

``sources``     reading files, directories and standard input, with a size cap
``parse``       YAML events -> a compact tree (``tree``), iterative, depth-limited
``find``        where the images are: containers (``containers``: ``image``, image
                flags in ``args``/``command``, ``*IMAGE*`` env values), operators'
                custom resources (``operators``), and image-like strings skipped
``listing``     the images of many inputs (``images``), ``--keep-going``
``mapping``     the renaming rules of :mod:`imgpull.naming` applied to written values
``rewriter``    one input rewritten (``splice``) and checked (``check``)
``batch``       many inputs rewritten, shown as a diff (``diff``) or written (``write``)
``problems``    one clear line for Helm templates, placeholders and syntax errors

Errors are :class:`~imgpull.errors.ConfigError` with one line, e.g.
``manifests/bad.yaml:9:6: invalid YAML: did not find expected '-' indicator (while parsing
a block collection at line 7, column 5)``. Nothing here constructs Python objects from
YAML, so no tag can run code; memory and time are linear in the input.
"""

from __future__ import annotations

from imgpull.kube.batch import RewriteResult, rewrite
from imgpull.kube.containers import KNOWN_IMAGE_FLAGS
from imgpull.kube.diff import diff_edits, unified_diff
from imgpull.kube.find import Hit, ImageUse, Scan, Skipped, find_images, scan
from imgpull.kube.listing import Listing, collect_images, list_images
from imgpull.kube.mapping import Mapper, make_mapper, map_image, map_text
from imgpull.kube.operators import OPERATOR_FIELDS
from imgpull.kube.parse import DEFAULT_MAX_DEPTH, compose
from imgpull.kube.problems import TemplateError
from imgpull.kube.rewriter import Rewritten, rewrite_source, rewrite_text
from imgpull.kube.sources import (
    DEFAULT_MAX_BYTES,
    STDIN,
    STDIN_NAME,
    Failure,
    Source,
    iter_sources,
    read_sources,
)
from imgpull.kube.tree import CONTAINER_KEYS
from imgpull.kube.write import write_atomic
from imgpull.naming import (
    KUBERNETES_REGISTRIES,
    Renamer,
    map_reference,
    parse_mirror,
    parse_mirrors,
)

__all__ = [
    "CONTAINER_KEYS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "KNOWN_IMAGE_FLAGS",
    "KUBERNETES_REGISTRIES",
    "OPERATOR_FIELDS",
    "STDIN",
    "STDIN_NAME",
    "Failure",
    "Hit",
    "ImageUse",
    "Listing",
    "Mapper",
    "Renamer",
    "RewriteResult",
    "Rewritten",
    "Scan",
    "Skipped",
    "Source",
    "TemplateError",
    "collect_images",
    "compose",
    "diff_edits",
    "find_images",
    "iter_sources",
    "list_images",
    "make_mapper",
    "map_image",
    "map_reference",
    "map_text",
    "parse_mirror",
    "parse_mirrors",
    "read_sources",
    "rewrite",
    "rewrite_source",
    "rewrite_text",
    "scan",
    "unified_diff",
    "write_atomic",
]
