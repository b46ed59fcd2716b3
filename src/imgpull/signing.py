"""Checking cosign's key-based signatures (``cosign sign --key``), offline.

A cosign signature manifest (tag ``sha256-HEX.sig``, or an OCI 1.1 referrer) has one
layer per signature: the *simple signing* payload, a small JSON document naming the
signed image's manifest digest in ``critical.image.docker-manifest-digest``, with the
base64 signature over those exact bytes in the layer's annotation
``dev.cosignproject.cosign/signature``. A signature holds when it verifies with the given
public key (ECDSA P-256 with SHA-256, Ed25519, or RSA PKCS#1 v1.5 / PSS with SHA-256) and
its payload names the very digest that was pulled. Keyless signatures (Fulcio
certificates, Rekor transparency log) need the network and are not checked.

Needs the ``cryptography`` package (``pip install 'imgpull[signatures]'``).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from imgpull.digest import Digest
from imgpull.errors import ConfigError, SignatureError
from imgpull.model import Descriptor, Manifest

SIMPLE_SIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION: Final = "dev.cosignproject.cosign/signature"
COSIGN_SIGNATURE_ARTIFACT: Final = "application/vnd.dev.cosign.artifact.sig.v1+json"
PAYLOAD_LIMIT: Final = 1024 * 1024
KEY_LIMIT: Final = 64 * 1024


def load_key(path: Path) -> Any:
    """A PEM public key from ``path``; ConfigError when it is none we can use."""
    try:
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        raise ConfigError(
            "checking signatures needs the cryptography package",
            "pip install 'imgpull[signatures]'",
        ) from None
    try:
        with path.open("rb") as handle:
            data = handle.read(KEY_LIMIT)
    except OSError as exc:
        raise ConfigError(f"cannot read key {path}: {exc.strerror}") from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{path} is not a PEM public key", "give cosign's cosign.pub (or another PEM key)"
        ) from None
    if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"{path}: only ECDSA keys on P-256 are supported")
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ConfigError(f"{path}: only ECDSA P-256, Ed25519 and RSA keys are supported")
    return key


def is_signature(manifest: Manifest, tag: str | None) -> bool:
    """A cosign signature manifest: by its tag, its artifact type, or its layers."""
    if tag is not None:
        return tag.endswith(".sig")
    if manifest.artifact_type == COSIGN_SIGNATURE_ARTIFACT:
        return True
    return any(layer.media_type == SIMPLE_SIGNING for layer in manifest.layers)


def verify(
    subject: Digest,
    signatures: Sequence[Manifest],
    read_blob: Callable[[Descriptor], bytes],
    keys: Sequence[Any],
    *,
    what: str,
) -> None:
    """Return when one signature of ``subject`` verifies with one of ``keys``; else one
    SignatureError saying what was found (nothing, another digest, a bad signature)."""
    if not signatures:
        raise SignatureError(f"{what} is not signed (no cosign signature found)")
    problems: list[str] = []
    for manifest in signatures:
        for layer in manifest.layers:
            if layer.media_type != SIMPLE_SIGNING:
                continue
            problem = _check(subject, layer, read_blob, keys)
            if problem is None:
                return
            problems.append(problem)
    found = "; ".join(dict.fromkeys(problems)) or "no simple-signing payload"
    raise SignatureError(
        f"no signature of {what} verifies with the given key ({found})",
        "check the key, or that the image was signed with it (cosign sign --key)",
    )


def _check(
    subject: Digest,
    layer: Descriptor,
    read_blob: Callable[[Descriptor], bytes],
    keys: Sequence[Any],
) -> str | None:
    encoded = layer.annotations.get(SIGNATURE_ANNOTATION, "")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "a signature that is not base64"
    if layer.size > PAYLOAD_LIMIT:
        return "a payload too large to be a signature's"
    payload = read_blob(layer)  # verified against the layer's digest by the reader
    if not any(_verifies(key, signature, payload) for key in keys):
        return "a signature made with another key, or over other bytes"
    signed = _signed_digest(payload)
    if signed is None:
        return "a payload that names no image digest"
    if signed != str(subject):
        return f"a signature of {signed[:19]}..., not of this image"
    return None


def _verifies(key: Any, signature: bytes, payload: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        elif isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                key.verify(signature, payload, pss, hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _signed_digest(payload: bytes) -> str | None:
    """``critical.image.docker-manifest-digest`` (its key in any case, as the simple
    signing format's writers differ), or None."""
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    critical = data.get("critical") if isinstance(data, dict) else None
    image = critical.get("image") if isinstance(critical, dict) else None
    if not isinstance(image, dict):
        return None
    for key, value in image.items():
        if isinstance(key, str) and key.lower() == "docker-manifest-digest":
            return value if isinstance(value, str) else None
    return None
