"""Signed statements: compact RFC 8785 JSON carrying root digests (never file lists), signed
by a KMS key, kept as ``ManifestSignature`` records that anyone can verify offline from the
public key."""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from modelops.domain.crypto import verify_ed25519
from modelops.domain.digests import canonical_json
from modelops.domain.entities import Entity

if TYPE_CHECKING:
    from modelops.ports import Signer

MAX_STATEMENT_BYTES = 4096  # KMS RAW message limit for ED25519_SHA_512


class ManifestSignature(Entity):
    keyId: str
    algorithm: str
    publicKeyFingerprint: str = Field(description="SHA-256 of the DER public key.")
    statementDigest: str = Field(description="SHA-256 of the canonical statement bytes.")
    signature: str = Field(description="Base64 signature over the statement bytes.")
    signedAt: datetime
    signerPrincipal: str


def fingerprint(public_key_der: bytes) -> str:
    return hashlib.sha256(public_key_der).hexdigest()


def sign_statement(
    signer: Signer, statement: dict[str, Any], principal: str, now: datetime
) -> tuple[bytes, ManifestSignature]:
    """Canonicalise and sign ``statement``; returns its bytes and the signature record."""
    message = canonical_json(statement)
    return message, sign_message(signer, message, principal, now)


def sign_message(
    signer: Signer, message: bytes, principal: str, now: datetime
) -> ManifestSignature:
    """Sign statement bytes that are already canonical (e.g. as stored and approved)."""
    if len(message) > MAX_STATEMENT_BYTES:
        raise ValueError(f"a signed statement is at most {MAX_STATEMENT_BYTES} bytes")
    signature = signer.sign(message)
    return ManifestSignature(
        keyId=signer.key_id,
        algorithm=signer.algorithm,
        publicKeyFingerprint=fingerprint(signer.public_key()),
        statementDigest=hashlib.sha256(message).hexdigest(),
        signature=base64.b64encode(signature).decode(),
        signedAt=now,
        signerPrincipal=principal,
    )


def verify_statement(record: ManifestSignature, message: bytes, public_key_der: bytes) -> bool:
    """Offline check with nothing but the public key: digest, fingerprint and signature."""
    if hashlib.sha256(message).hexdigest() != record.statementDigest:
        return False
    if fingerprint(public_key_der) != record.publicKeyFingerprint:
        return False
    try:
        signature = base64.b64decode(record.signature, validate=True)
    except binascii.Error:
        return False
    return verify_ed25519(public_key_der, signature, message)


_PEM_BEGIN = "-----BEGIN PUBLIC KEY-----"
_PEM_END = "-----END PUBLIC KEY-----"


def public_key_pem(public_key_der: bytes) -> str:
    """PEM text of a DER SubjectPublicKeyInfo (what ``openssl pkey -pubin`` reads)."""
    text = base64.b64encode(public_key_der).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "\n".join([_PEM_BEGIN, *lines, _PEM_END]) + "\n"


def public_key_der(pem: str) -> bytes:
    """The DER SubjectPublicKeyInfo inside PEM text; ValueError if there is none."""
    start, end = pem.find(_PEM_BEGIN), pem.find(_PEM_END)
    if start < 0 or end < start:
        raise ValueError("not a PEM public key (BEGIN/END PUBLIC KEY lines)")
    try:
        return base64.b64decode("".join(pem[start + len(_PEM_BEGIN) : end].split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"not a PEM public key: {exc}") from exc
