"""``MessageType=DIGEST`` for the local cloud's KMS: RSA and ECC keys sign the digest as given.

Pinned to moto 5.2.5 (and cryptography 50.0.2). Re-check every hook below when either changes.

What real AWS KMS does
----------------------
* ``Sign`` and ``Verify`` take ``MessageType=RAW`` (the default: KMS hashes ``Message`` with the
  signing algorithm's hash) or ``MessageType=DIGEST`` (``Message`` already is that hash; KMS
  signs it as is, so the result is the same signature as over the RAW message it digests).
* A ``DIGEST`` must be exactly as long as the algorithm's hash: 32 bytes for ``*_SHA_256``,
  48 for ``*_SHA_384``, 64 for ``*_SHA_512``. Anything else is a ``ValidationException``
  (``Digest is invalid length for algorithm ECDSA_SHA_256.``).
* So an ``ECDSA_SHA_256`` signature over a ``DIGEST`` verifies offline as
  ``ECDSA(Prehashed(SHA256()))`` over that digest, or as ``ECDSA(SHA256())`` over the message
  the digest was taken of. ``RSASSA_PSS_*`` and ``RSASSA_PKCS1_V1_5_*`` behave the same way.

What moto 5.2.5 does, and what :func:`install` patches
------------------------------------------------------
moto's ``KmsResponse.sign``/``verify`` read ``MessageType`` and drop it: the backend always
hashes ``Message`` again, so a DIGEST signature is over SHA-256(digest) and no standard verifier
accepts it. :func:`install` patches these moto internals, one job each:

1. ``KmsResponse.sign`` and ``KmsResponse.verify`` (the only code that sees ``MessageType``):
   for ``DIGEST`` with an RSA or ECC key and one of the key's own algorithms, check the digest
   length like KMS, then run moto's handler with a per-request "message is prehashed" flag (a
   context variable, so concurrent requests on the threaded server never see each other's).
   Everything else (``RAW``, other key types, Ed25519, an algorithm the key lacks, an empty
   message) goes to the wrapped handler untouched. The wrapper chains onto whatever is
   installed, so it composes with :mod:`localcloud.kms_ed25519` in either install order.
2. ``ECDSAPrivateKey._ECDSAPrivateKey__hash_algorithm`` and
   ``RSAPrivateKey._RSAPrivateKey__padding_and_hash_algorithm`` (name-mangled private methods,
   the one place each key class picks the hash it gives cryptography): while the flag is set,
   wrap that hash in ``Prehashed``. moto's key selection, algorithm checks, padding and response
   shape all stay moto's.

Key specs covered: ``ECC_NIST_P256``, ``ECC_NIST_P384``, ``ECC_NIST_P521``, ``ECC_SECG_P256K1``
and ``RSA_2048/3072/4096``. ``SM2`` and ``ECC_NIST_EDWARDS25519`` (see
:mod:`localcloud.kms_ed25519`) are not touched.

Known limits (unchanged moto behaviour)
---------------------------------------
* ``RSASSA_PSS_*``: moto signs with the maximum salt length; real KMS uses a salt as long as
  the hash. An offline verifier that insists on a hash-length salt rejects local PSS
  signatures; verify them with ``PSS.AUTO``.
* A bad RSA or ECDSA signature still gets ``SignatureValid: false`` (real KMS raises
  ``KMSInvalidSignatureException``), for ``RAW`` and ``DIGEST`` alike.
* The 4096-byte limit on ``RAW`` messages is not enforced for RSA and ECC keys.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.kms.exceptions import ValidationException
from moto.kms.responses import KmsResponse
from moto.kms.utils import ECDSAPrivateKey, RSAPrivateKey

__all__ = ["DIGEST_BYTES", "DIGEST_KEY_SPECS", "install"]

# The key specs whose DIGEST requests this module handles (moto's ECDSAPrivateKey/RSAPrivateKey).
DIGEST_KEY_SPECS = frozenset(
    {
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
    }
)

# The digest length KMS requires for each signing algorithm of those keys.
DIGEST_BYTES = {
    "ECDSA_SHA_256": 32,
    "ECDSA_SHA_384": 48,
    "ECDSA_SHA_512": 64,
    "RSASSA_PSS_SHA_256": 32,
    "RSASSA_PSS_SHA_384": 48,
    "RSASSA_PSS_SHA_512": 64,
    "RSASSA_PKCS1_V1_5_SHA_256": 32,
    "RSASSA_PKCS1_V1_5_SHA_384": 48,
    "RSASSA_PKCS1_V1_5_SHA_512": 64,
}

# True while moto handles a DIGEST request that this module has validated.
_PREHASHED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "localcloud_kms_message_is_digest", default=False
)

# Set on KmsResponse once patched, so install() is idempotent even if this module is reloaded.
_MARKER = "_localcloud_kms_digest_installed"
_LOCK = threading.Lock()

_ECDSA_HASH = "_ECDSAPrivateKey__hash_algorithm"
_RSA_PADDING_AND_HASH = "_RSAPrivateKey__padding_and_hash_algorithm"


@contextmanager
def _prehashed() -> Iterator[None]:
    token = _PREHASHED.set(True)
    try:
        yield
    finally:
        _PREHASHED.reset(token)


def _is_checked_digest_request(response: KmsResponse) -> bool:
    """True for a DIGEST request this module handles; raises KMS's error for a bad length."""
    if (response._get_param("MessageType") or "RAW") != "DIGEST":
        return False
    key_id = response._get_param("KeyId")
    response._validate_key_id(key_id)  # NotFoundException, exactly as moto's own handler raises
    key = response.kms_backend.describe_key(key_id)
    if key.key_spec not in DIGEST_KEY_SPECS:
        return False
    algorithm = response._get_param("SigningAlgorithm")
    # An algorithm the key does not have (or a key that cannot sign) gets moto's own error.
    if algorithm not in (key.signing_algorithms or ()) or algorithm not in DIGEST_BYTES:
        return False
    digest: bytes = response._get_param("Message") or b""
    if not digest:
        return False  # moto's "length greater than or equal to 1" error, as for RAW
    if len(digest) != DIGEST_BYTES[algorithm]:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    return True


_Handler = Callable[[KmsResponse], str]


def _honouring_digest(original: _Handler) -> _Handler:
    """Wrap KmsResponse.sign/verify: run a checked DIGEST request with the prehashed flag."""

    @functools.wraps(original)
    def handler(self: KmsResponse) -> str:
        if not _is_checked_digest_request(self):
            return original(self)
        with _prehashed():
            return original(self)

    return handler


def _prehashing_ecdsa_hash(
    original: Callable[[ECDSAPrivateKey, str], hashes.HashAlgorithm],
) -> Callable[[ECDSAPrivateKey, str], Any]:
    @functools.wraps(original)
    def hash_algorithm(self: ECDSAPrivateKey, signing_algorithm: str) -> Any:
        algorithm = original(self, signing_algorithm)
        return Prehashed(algorithm) if _PREHASHED.get() else algorithm

    return hash_algorithm


def _prehashing_rsa_hash(
    original: Callable[[RSAPrivateKey, str], tuple[Any, hashes.HashAlgorithm]],
) -> Callable[[RSAPrivateKey, str], tuple[Any, Any]]:
    @functools.wraps(original)
    def padding_and_hash_algorithm(self: RSAPrivateKey, signing_algorithm: str) -> tuple[Any, Any]:
        pad, algorithm = original(self, signing_algorithm)
        return (pad, Prehashed(algorithm)) if _PREHASHED.get() else (pad, algorithm)

    return padding_and_hash_algorithm


def _patch(owner: object, name: str, wrap: Callable[..., object]) -> None:
    original = vars(owner)[name]  # the raw attribute, whatever another extension installed
    setattr(owner, name, wrap(original))


def install() -> None:
    """Make moto's KMS (mock_aws and server mode, this process) honour ``MessageType=DIGEST``.

    Idempotent and thread-safe; composes with :func:`localcloud.kms_ed25519.install` whichever
    runs first. Patches moto's classes, so it covers every backend, account and region, and
    survives moto resets.
    """
    with _LOCK:
        if getattr(KmsResponse, _MARKER, False):
            return
        _patch(ECDSAPrivateKey, _ECDSA_HASH, _prehashing_ecdsa_hash)
        _patch(RSAPrivateKey, _RSA_PADDING_AND_HASH, _prehashing_rsa_hash)
        _patch(KmsResponse, "sign", _honouring_digest)
        _patch(KmsResponse, "verify", _honouring_digest)
        setattr(KmsResponse, _MARKER, True)
