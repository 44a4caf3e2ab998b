"""Ed25519 signing keys (``ECC_NIST_EDWARDS25519``) for the local cloud's KMS.

Pinned to moto 5.2.5 (and cryptography 50.0.2). Re-check every hook below when either changes.

What real AWS KMS does
----------------------
* ``CreateKey`` accepts ``KeySpec=ECC_NIST_EDWARDS25519`` only with ``KeyUsage=SIGN_VERIFY``
  (the default usage, ``ENCRYPT_DECRYPT``, is a ``ValidationException``). ``DescribeKey`` and
  ``GetPublicKey`` list the signing algorithms ``ED25519_SHA_512`` and ``ED25519_PH_SHA_512``.
* ``ED25519_SHA_512`` is pure Ed25519 (RFC 8032): it needs ``MessageType=RAW`` and a message of
  1-4096 bytes, and returns a plain 64-byte signature any Ed25519 verifier accepts.
* ``ED25519_PH_SHA_512`` is Ed25519ph: it needs ``MessageType=DIGEST`` with a 64-byte SHA-512
  digest. Plain Ed25519 verifiers reject its signatures.
* ``Verify`` returns ``SignatureValid: true`` or fails with ``KMSInvalidSignatureException``.
* ``GetPublicKey`` returns the public key as DER SubjectPublicKeyInfo. The private key never
  leaves KMS.

What moto 5.2.5 does, and what :func:`install` patches
------------------------------------------------------
moto refuses the key spec. :func:`install` patches these moto internals, one job each:

1. ``KmsBackend._KmsBackend__ensure_valid_key_spec`` (name-mangled private method; moto checks
   the spec against its ``KeySpec`` enum, which cannot be extended): also accept
   ``ECC_NIST_EDWARDS25519``.
2. ``moto.kms.models.generate_private_key`` (the module global that ``Key.__init__`` calls):
   return an :class:`Ed25519KeyPair` for this spec.
3. ``Key.signing_algorithms`` (property): list the two Ed25519 algorithms for this spec.
   DescribeKey, GetPublicKey and moto's own "algorithm valid for this key" check in Sign/Verify
   read it, so a wrong algorithm (say ``ECDSA_SHA_256``) gets moto's usual ``ValidationException``.
4. ``KmsResponse.create_key``: reject key usages other than ``SIGN_VERIFY`` for this spec.
5. ``KmsResponse.sign`` and ``KmsResponse.verify``: moto's backend never sees ``MessageType``,
   so the message size limit, the message type each algorithm requires and the digest length
   are checked here, before moto's handler runs.
6. ``KmsResponse.get_public_key``: add ``KeySpec`` (moto only returns the deprecated
   ``CustomerMasterKeySpec``).

RSA and NIST P-curve keys go through moto untouched: every hook hands anything that is not an
Ed25519 key to moto's original code.

Known limits (the emulator errs loudly rather than faking)
---------------------------------------------------------
* ``ED25519_PH_SHA_512``: cryptography exposes pure Ed25519 only, not Ed25519ph. Requests are
  validated like real KMS (``DIGEST``, 64 bytes) and then refused with
  ``UnsupportedOperationException``. Use ``ED25519_SHA_512`` with ``RAW``.
* A signing algorithm the key does not support gets moto's ``ValidationException`` (as for every
  other key type in moto); real KMS answers ``InvalidKeyUsageException``.
* ``KMSInvalidSignatureException`` is raised for Ed25519 keys only. moto still answers
  ``SignatureValid: false`` for a bad RSA or ECDSA signature, which real KMS never does.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from moto.core.exceptions import JsonRESTError
from moto.kms import models as kms_models
from moto.kms.exceptions import ValidationException
from moto.kms.models import Key, KmsBackend
from moto.kms.responses import KmsResponse
from moto.kms.utils import AbstractPrivateKey

__all__ = [
    "ED25519_KEY_SPEC",
    "ED25519_SIGNING_ALGORITHMS",
    "MAX_MESSAGE_BYTES",
    "install",
]

ED25519_KEY_SPEC = "ECC_NIST_EDWARDS25519"
ED25519_SHA_512 = "ED25519_SHA_512"
ED25519_PH_SHA_512 = "ED25519_PH_SHA_512"
ED25519_SIGNING_ALGORITHMS = (ED25519_SHA_512, ED25519_PH_SHA_512)
MAX_MESSAGE_BYTES = 4096
SHA512_DIGEST_BYTES = 64

# The MessageType each Ed25519 algorithm requires; KMS does not let them be swapped.
_REQUIRED_MESSAGE_TYPE = {ED25519_SHA_512: "RAW", ED25519_PH_SHA_512: "DIGEST"}

# Set on KmsBackend once patched, so install() is idempotent even if this module is reloaded.
_MARKER = "_localcloud_ed25519_installed"
_LOCK = threading.Lock()


class InvalidSignatureError(JsonRESTError):
    """KMS's ``KMSInvalidSignatureException`` (no message, like moto's KMSInvalidMacException)."""

    code = 400

    def __init__(self) -> None:
        super().__init__("KMSInvalidSignatureException", "")


class UnsupportedOperationError(JsonRESTError):
    """KMS's ``UnsupportedOperationException``."""

    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("UnsupportedOperationException", message)


def _refuse_ed25519ph() -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"{ED25519_PH_SHA_512} (Ed25519ph) is not supported by the local cloud: the cryptography "
        f"library offers pure Ed25519 only. Use {ED25519_SHA_512} with MessageType RAW."
    )


class Ed25519KeyPair(AbstractPrivateKey):
    """The key pair of one ``ECC_NIST_EDWARDS25519`` KMS key, held as moto's ``Key.private_key``.

    Only the public key and signatures ever leave this object.
    """

    def __init__(self) -> None:
        self._private_key = Ed25519PrivateKey.generate()

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        # moto has already checked that signing_algorithm is one of ED25519_SIGNING_ALGORITHMS.
        if signing_algorithm == ED25519_PH_SHA_512:
            raise _refuse_ed25519ph()
        return self._private_key.sign(message)

    def verify(self, message: bytes, signature: bytes, signing_algorithm: str) -> bool:
        if signing_algorithm == ED25519_PH_SHA_512:
            raise _refuse_ed25519ph()
        try:
            self._private_key.public_key().verify(signature, message)
        except InvalidSignature:
            raise InvalidSignatureError() from None
        return True

    def public_key(self) -> bytes:
        return self._private_key.public_key().public_bytes(
            encoding=serialization.Encoding.DER,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )


def _check_create_key(response: KmsResponse) -> None:
    key_spec = response._get_param("KeySpec") or response._get_param("CustomerMasterKeySpec")
    if key_spec != ED25519_KEY_SPEC:
        return
    key_usage = response._get_param("KeyUsage") or "ENCRYPT_DECRYPT"  # KMS's default usage
    if key_usage != "SIGN_VERIFY":
        raise ValidationException(f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}")


def _check_sign_or_verify(response: KmsResponse) -> None:
    key_id = response._get_param("KeyId")
    response._validate_key_id(key_id)  # NotFoundException, exactly as moto's own handler raises
    if response.kms_backend.describe_key(key_id).key_spec != ED25519_KEY_SPEC:
        return
    message: bytes = response._get_param("Message") or b""
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValidationException(
            "1 validation error detected: Value at 'message' failed to satisfy constraint: "
            f"Member must have length less than or equal to {MAX_MESSAGE_BYTES}"
        )
    algorithm = response._get_param("SigningAlgorithm")
    required_type = _REQUIRED_MESSAGE_TYPE.get(algorithm)
    if required_type is None:
        return  # not an Ed25519 algorithm: moto's own check rejects it for this key
    message_type = response._get_param("MessageType") or "RAW"
    if message_type != required_type:
        raise ValidationException(
            f"Message type {message_type} is incompatible with algorithm {algorithm}."
        )
    if algorithm == ED25519_PH_SHA_512 and len(message) != SHA512_DIGEST_BYTES:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")


_Handler = Callable[[KmsResponse], str]


def _checked_first(check: Callable[[KmsResponse], None]) -> Callable[[_Handler], _Handler]:
    """Wrap a moto KmsResponse handler so that ``check`` runs before it."""

    def wrap(original: _Handler) -> _Handler:
        @functools.wraps(original)
        def handler(self: KmsResponse) -> str:
            check(self)
            return original(self)

        return handler

    return wrap


def _with_key_spec(original: _Handler) -> _Handler:
    @functools.wraps(original)
    def get_public_key(self: KmsResponse) -> str:
        body = original(self)
        payload = json.loads(body)
        if payload.get("CustomerMasterKeySpec") != ED25519_KEY_SPEC:
            return body
        payload["KeySpec"] = ED25519_KEY_SPEC
        return json.dumps(payload)

    return get_public_key


def _accepting_ed25519(
    original: Callable[[KmsBackend, str], None],
) -> Callable[[KmsBackend, str], None]:
    @functools.wraps(original)
    def ensure_valid_key_spec(self: KmsBackend, key_spec: str) -> None:
        if key_spec != ED25519_KEY_SPEC:
            original(self, key_spec)

    return ensure_valid_key_spec


def _generating_ed25519(
    original: Callable[[str], AbstractPrivateKey],
) -> Callable[[str], AbstractPrivateKey]:
    @functools.wraps(original)
    def generate_private_key(key_spec: str) -> AbstractPrivateKey:
        if key_spec == ED25519_KEY_SPEC:
            return Ed25519KeyPair()
        return original(key_spec)

    return generate_private_key


def _listing_ed25519_algorithms(original: property) -> property:
    getter = original.fget
    if getter is None:
        raise TypeError("moto's Key.signing_algorithms is no longer a readable property")

    def signing_algorithms(self: Key) -> list[str]:
        if self.key_spec == ED25519_KEY_SPEC:
            return list(ED25519_SIGNING_ALGORITHMS)
        result: list[str] = getter(self)
        return result

    return property(signing_algorithms, doc=original.__doc__)


def _patch(owner: object, name: str, wrap: Callable[..., object]) -> None:
    original = vars(owner)[name]  # the raw attribute (a property stays a property)
    setattr(owner, name, wrap(original))


def install() -> None:
    """Teach moto's KMS (mock_aws and server mode, this process) ``ECC_NIST_EDWARDS25519``.

    Idempotent and thread-safe. Patches moto's classes, so it covers every backend, account and
    region, and survives moto resets. Call it before the first request that needs Ed25519.
    """
    with _LOCK:
        if getattr(KmsBackend, _MARKER, False):
            return
        _patch(KmsBackend, "_KmsBackend__ensure_valid_key_spec", _accepting_ed25519)
        _patch(kms_models, "generate_private_key", _generating_ed25519)
        _patch(Key, "signing_algorithms", _listing_ed25519_algorithms)
        _patch(KmsResponse, "create_key", _checked_first(_check_create_key))
        _patch(KmsResponse, "sign", _checked_first(_check_sign_or_verify))
        _patch(KmsResponse, "verify", _checked_first(_check_sign_or_verify))
        _patch(KmsResponse, "get_public_key", _with_key_spec)
        setattr(KmsBackend, _MARKER, True)
