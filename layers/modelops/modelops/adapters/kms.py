"""``Signer`` over KMS asymmetric keys, and ``KmsMac`` over KMS HMAC keys.

Ed25519 (``ECC_NIST_EDWARDS25519``) signs RAW messages of 1-4096 bytes with
``ED25519_SHA_512``: a plain RFC 8032 signature any verifier accepts. P-256 signs a SHA-256
DIGEST with ``ECDSA_SHA_256`` (DER signature), as OpenSSF bundles need. Public keys are
fetched once per process (GetPublicKey is rate-limited to a few calls a second).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

MAX_RAW_BYTES = 4096
_ALGORITHMS = {
    "ECC_NIST_EDWARDS25519": ("ED25519_SHA_512", "RAW"),
    "ECC_NIST_P256": ("ECDSA_SHA_256", "DIGEST"),
}


class KmsSigner:
    def __init__(self, client: Any, key_arn: str) -> None:
        self._kms = client
        self._key_arn = key_arn

    @property
    def key_id(self) -> str:
        return self._key_arn

    @cached_property
    def _described(self) -> dict[str, Any]:
        response: dict[str, Any] = self._kms.get_public_key(KeyId=self._key_arn)
        return response

    @property
    def algorithm(self) -> str:
        return _ALGORITHMS[self._key_spec][0]

    @property
    def _key_spec(self) -> str:
        # KeySpec; older responses (and moto for some key types) only carry the deprecated
        # CustomerMasterKeySpec, which has the same value.
        spec = str(self._described.get("KeySpec") or self._described["CustomerMasterKeySpec"])
        if spec not in _ALGORITHMS:
            raise ValueError(f"{self._key_arn} is a {spec} key, not a signing key we use")
        return spec

    def public_key(self) -> bytes:
        return bytes(self._described["PublicKey"])

    def sign(self, message: bytes) -> bytes:
        algorithm, message_type = _ALGORITHMS[self._key_spec]
        if message_type == "RAW" and not 1 <= len(message) <= MAX_RAW_BYTES:
            raise ValueError(
                f"KMS signs RAW messages of 1-{MAX_RAW_BYTES} bytes, not {len(message)}"
            )
        if message_type == "DIGEST" and len(message) != 32:
            raise ValueError("ECDSA_SHA_256 signs a 32-byte SHA-256 digest")
        response = self._kms.sign(
            KeyId=self._key_arn,
            Message=message,
            MessageType=message_type,
            SigningAlgorithm=algorithm,
        )
        return bytes(response["Signature"])


class KmsMac:
    """HMAC-SHA-256 with a KMS HMAC key (``GenerateMac``): the key never leaves KMS."""

    def __init__(self, client: Any, key_arn: str) -> None:
        self._kms = client
        self._key_arn = key_arn

    def __call__(self, message: bytes) -> bytes:
        if not 1 <= len(message) <= MAX_RAW_BYTES:
            raise ValueError(f"KMS MACs messages of 1-{MAX_RAW_BYTES} bytes, not {len(message)}")
        response = self._kms.generate_mac(
            KeyId=self._key_arn, Message=message, MacAlgorithm="HMAC_SHA_256"
        )
        return bytes(response["Mac"])
