"""Signature verification with public keys only: the one domain module that uses
``cryptography`` (imported inside each function, so handlers that never verify never pay
for it). Signing happens in KMS, behind the ``Signer`` port."""

from __future__ import annotations

from typing import Any


def _public_key(der: bytes) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    try:
        return load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a DER SubjectPublicKeyInfo: {exc}") from exc


def is_ed25519_public_key(public_key_der: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return isinstance(_public_key(public_key_der), Ed25519PublicKey)
    except ValueError:
        return False


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


def verify_ecdsa(public_key_der: bytes, signature_der: bytes, message: bytes) -> bool:
    """ECDSA over ``message`` with the hash matched to the curve (P-256/SHA-256,
    P-384/SHA-384, P-521/SHA-512), as OpenSSF model signing pairs them."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    curve_hashes: dict[str, type[hashes.HashAlgorithm]] = {
        "secp256r1": hashes.SHA256,
        "secp384r1": hashes.SHA384,
        "secp521r1": hashes.SHA512,
    }
    key = _public_key(public_key_der)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in curve_hashes:
        raise ValueError("not an ECDSA P-256, P-384 or P-521 public key")
    try:
        key.verify(signature_der, message, ec.ECDSA(curve_hashes[key.curve.name]()))
    except InvalidSignature:
        return False
    return True


def canonical_public_key(public_key_der: bytes) -> bytes:
    """The key re-encoded as cryptography writes it (DER SubjectPublicKeyInfo)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der: bytes = _public_key(public_key_der).public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return der
