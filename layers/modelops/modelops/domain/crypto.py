"""Signature verification with public keys only: the one domain module that uses
``cryptography`` (imported inside each function, so handlers that never verify never pay
for it). Signing happens in KMS, behind the ``Signer`` port."""

from __future__ import annotations

from typing import Any


def _public_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    return load_der_public_key(der)


def verify_ed25519(public_key_der: bytes, signature: bytes, message: bytes) -> bool:
    """RFC 8032 Ed25519 (what KMS ED25519_SHA_512 over a RAW message produces)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = _public_key(public_key_der)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def verify_ecdsa_sha256_digest(public_key_der: bytes, signature_der: bytes, digest: bytes) -> bool:
    """ECDSA over a SHA-256 digest (what KMS ECDSA_SHA_256 with MessageType DIGEST produces)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = _public_key(public_key_der)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an elliptic-curve public key")
    try:
        key.verify(signature_der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def public_key_pem(public_key_der: bytes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem: bytes = _public_key(public_key_der).public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
    )
    return pem
