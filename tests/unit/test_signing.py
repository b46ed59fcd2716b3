"""signing.py: cosign key-based signatures for each supported key kind, and each way a
signature fails (another key, other bytes, another digest, no payload), offline."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from imgpull.digest import Digest
from imgpull.errors import ConfigError, SignatureError
from imgpull.model import Descriptor, Manifest
from imgpull.model.manifest import parse_manifest
from imgpull.signing import SIMPLE_SIGNING, is_signature, load_key, verify

SUBJECT = Digest.parse("sha256:" + "12" * 32)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

Signer = Callable[[bytes], bytes]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _payload(digest: Digest) -> bytes:
    return json.dumps(
        {"critical": {"identity": {"docker-reference": "r/app"},
                      "image": {"docker-manifest-digest": str(digest)},
                      "type": "cosign container image signature"}, "optional": None}
    ).encode()  # fmt: skip


def _signature_manifest(payload: bytes, signature: bytes) -> tuple[Manifest, dict[str, bytes]]:
    config = b"{}"
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _sha(config), "size": len(config)},
            "layers": [{"mediaType": SIMPLE_SIGNING, "digest": _sha(payload), "size": len(payload),
                        "annotations": {"dev.cosignproject.cosign/signature":
                                        base64.b64encode(signature).decode()}}],
        }
    ).encode()  # fmt: skip
    manifest = parse_manifest(raw, OCI_MANIFEST, Digest.parse(_sha(raw)))
    assert isinstance(manifest, Manifest)
    return manifest, {_sha(payload): payload}


def _reader(blobs: dict[str, bytes]) -> Callable[[Descriptor], bytes]:
    return lambda descriptor: blobs[str(descriptor.digest)]


def _pem(directory: Path, name: str, public: Any) -> Path:
    path = directory / name
    path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _ecdsa() -> tuple[Any, Signer]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.public_key(), lambda data: key.sign(data, ec.ECDSA(hashes.SHA256()))


def _ed25519() -> tuple[Any, Signer]:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.public_key(), key.sign


def _rsa_pkcs1() -> tuple[Any, Signer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.public_key(), lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _rsa_pss() -> tuple[Any, Signer]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    return key.public_key(), lambda data: key.sign(data, pss, hashes.SHA256())


KINDS = {"ecdsa-p256": _ecdsa, "ed25519": _ed25519, "rsa-pkcs1": _rsa_pkcs1, "rsa-pss": _rsa_pss}


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_key_kind_verifies_its_own_signature_only(kind: str, tmp_path: Path) -> None:
    public, sign = KINDS[kind]()
    other, _ = KINDS[kind]()
    key = load_key(_pem(tmp_path, "k.pub", public))
    wrong = load_key(_pem(tmp_path, "o.pub", other))
    payload = _payload(SUBJECT)
    manifest, blobs = _signature_manifest(payload, sign(payload))
    assert is_signature(manifest, None)
    verify(SUBJECT, [manifest], _reader(blobs), [key], what="r/app")
    verify(SUBJECT, [manifest], _reader(blobs), [wrong, key], what="r/app")  # any key may
    with pytest.raises(SignatureError, match="another key"):
        verify(SUBJECT, [manifest], _reader(blobs), [wrong], what="r/app")


def test_a_good_signature_of_another_digest_is_refused() -> None:
    public, sign = _ecdsa()
    payload = _payload(Digest.parse("sha256:" + "34" * 32))
    manifest, blobs = _signature_manifest(payload, sign(payload))
    with pytest.raises(SignatureError, match="not of this image"):
        verify(SUBJECT, [manifest], _reader(blobs), [public], what="r/app")


def test_a_payload_changed_after_signing_is_refused() -> None:
    public, sign = _ecdsa()
    payload = _payload(SUBJECT)
    signature = sign(payload)
    tampered = payload.replace(b"r/app", b"r/evil")
    manifest, blobs = _signature_manifest(tampered, signature)
    with pytest.raises(SignatureError, match="another key, or over other bytes"):
        verify(SUBJECT, [manifest], _reader(blobs), [public], what="r/app")


def test_no_signature_and_a_payload_without_digest() -> None:
    public, sign = _ecdsa()
    with pytest.raises(SignatureError, match="not signed"):
        verify(SUBJECT, [], _reader({}), [public], what="r/app")
    payload = b'{"critical": {"type": "cosign container image signature"}}'
    manifest, blobs = _signature_manifest(payload, sign(payload))
    with pytest.raises(SignatureError, match="names no image digest"):
        verify(SUBJECT, [manifest], _reader(blobs), [public], what="r/app")


def test_keys_we_cannot_use_are_one_line_errors(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ConfigError, match="P-256"):
        load_key(_pem(tmp_path, "p384.pub", p384))
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key\n")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        load_key(junk)
    with pytest.raises(ConfigError, match="cannot read key"):
        load_key(tmp_path / "missing.pub")
