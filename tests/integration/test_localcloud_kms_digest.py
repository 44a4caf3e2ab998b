"""The local cloud's KMS signs MessageType=DIGEST as a prehashed digest, like real KMS
(moto 5.2.5, server mode)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from moto.kms.responses import KmsResponse
from moto.kms.utils import ECDSAPrivateKey, RSAPrivateKey

from localcloud import kms_digest, kms_ed25519
from tests.integration.moto_kms import error_of as _error
from tests.integration.moto_kms import kms_client

REGION = "us-east-1"
MESSAGE = b'{"_type":"https://in-toto.io/Statement/v1","subject":[]}'
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
ECC_KEYS = [
    ("ECC_NIST_P256", "ECDSA_SHA_256"),
    ("ECC_NIST_P384", "ECDSA_SHA_384"),
    ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
]
RSA_ALGORITHMS = [
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
]


@pytest.fixture(scope="module")
def kms() -> Iterator[Any]:
    yield from kms_client()


_KEYS: dict[str, str] = {}


def _key(kms: Any, key_spec: str) -> str:
    """One SIGN_VERIFY key per spec for the whole module (RSA key generation is slow)."""
    if key_spec not in _KEYS:
        metadata = kms.create_key(KeySpec=key_spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        _KEYS[key_spec] = metadata["KeyId"]
    return _KEYS[key_spec]


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    return HASHES[algorithm[-7:]]()


def _digest(algorithm: str, message: bytes = MESSAGE) -> bytes:
    hasher = hashes.Hash(_hash(algorithm))
    hasher.update(message)
    return hasher.finalize()


def _public_key(kms: Any, key_id: str) -> Any:
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def _sign(kms: Any, key_id: str, algorithm: str, message: bytes, message_type: str) -> bytes:
    signature: bytes = kms.sign(
        KeyId=key_id, Message=message, MessageType=message_type, SigningAlgorithm=algorithm
    )["Signature"]
    return signature


def _kms_verify(
    kms: Any, key_id: str, algorithm: str, message: bytes, message_type: str, *, signature: bytes
) -> bool:
    valid: bool = kms.verify(
        KeyId=key_id,
        Message=message,
        MessageType=message_type,
        Signature=signature,
        SigningAlgorithm=algorithm,
    )["SignatureValid"]
    return valid


def _rsa_padding(algorithm: str) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS_"):
        hash_algorithm = _hash(algorithm)
        return padding.PSS(mgf=padding.MGF1(hash_algorithm), salt_length=padding.PSS.AUTO)
    return padding.PKCS1v15()


# --- ECDSA --------------------------------------------------------------------------------------


def test_p256_digest_signature_verifies_offline_as_ecdsa_prehashed_sha256(kms: Any) -> None:
    key_id = _key(kms, "ECC_NIST_P256")
    digest = hashlib.sha256(MESSAGE).digest()

    response = kms.sign(
        KeyId=key_id, Message=digest, MessageType="DIGEST", SigningAlgorithm="ECDSA_SHA_256"
    )

    public_key = _public_key(kms, key_id)
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    signature = response["Signature"]
    public_key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    # The same signature KMS would give over the RAW message the digest was taken of.
    public_key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert response["SigningAlgorithm"] == "ECDSA_SHA_256"
    assert response["KeyId"].endswith(f":key/{key_id}")


def test_p256_digest_signature_is_not_over_the_digest_hashed_again(kms: Any) -> None:
    key_id = _key(kms, "ECC_NIST_P256")
    digest = hashlib.sha256(MESSAGE).digest()

    signature = _sign(kms, key_id, "ECDSA_SHA_256", digest, "DIGEST")

    # What stock moto 5.2.5 produced: ECDSA over SHA-256(digest).
    with pytest.raises(InvalidSignature):
        _public_key(kms, key_id).verify(signature, digest, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize(("key_spec", "algorithm"), ECC_KEYS)
def test_every_ecc_key_signs_a_digest_of_its_own_hash_as_prehashed(
    kms: Any, key_spec: str, algorithm: str
) -> None:
    key_id = _key(kms, key_spec)
    digest = _digest(algorithm)

    signature = _sign(kms, key_id, algorithm, digest, "DIGEST")

    _public_key(kms, key_id).verify(signature, digest, ec.ECDSA(Prehashed(_hash(algorithm))))


# --- Digest length ------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["sign", "verify"])
@pytest.mark.parametrize(
    ("key_spec", "algorithm", "length"),
    [
        ("ECC_NIST_P256", "ECDSA_SHA_256", 31),
        ("ECC_NIST_P256", "ECDSA_SHA_256", 33),
        ("ECC_NIST_P256", "ECDSA_SHA_256", 64),
        ("ECC_NIST_P384", "ECDSA_SHA_384", 32),
        ("ECC_NIST_P521", "ECDSA_SHA_512", 48),
        ("RSA_2048", "RSASSA_PSS_SHA_256", 48),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512", 32),
    ],
)
def test_digest_of_the_wrong_length_for_the_algorithm_is_rejected_like_kms(
    kms: Any, key_spec: str, algorithm: str, length: int, operation: str
) -> None:
    key_id = _key(kms, key_spec)
    kwargs = {"Signature": b"\x30\x06\x02\x01\x01\x02\x01\x01"} if operation == "verify" else {}

    with pytest.raises(ClientError) as excinfo:
        getattr(kms, operation)(
            KeyId=key_id,
            Message=b"\x01" * length,
            MessageType="DIGEST",
            SigningAlgorithm=algorithm,
            **kwargs,
        )

    assert _error(excinfo) == (
        "ValidationException",
        f"Digest is invalid length for algorithm {algorithm}.",
        400,
    )


def test_empty_digest_gets_motos_minimum_length_error_as_for_raw(kms: Any) -> None:
    key_id = _key(kms, "ECC_NIST_P256")

    with pytest.raises(ClientError) as excinfo:
        _sign(kms, key_id, "ECDSA_SHA_256", b"", "DIGEST")

    code, message, _ = _error(excinfo)
    assert code == "ValidationException"
    assert "greater than or equal to 1" in message


def test_digest_with_an_algorithm_the_key_lacks_keeps_motos_validation_error(kms: Any) -> None:
    key_id = _key(kms, "ECC_NIST_P256")

    with pytest.raises(ClientError) as excinfo:
        _sign(kms, key_id, "ECDSA_SHA_384", _digest("ECDSA_SHA_384"), "DIGEST")

    assert _error(excinfo) == (
        "ValidationException",
        "1 validation error detected: Value 'ECDSA_SHA_384' at 'SigningAlgorithm' failed to "
        "satisfy constraint: Member must satisfy enum value set: ['ECDSA_SHA_256']",
        400,
    )


def test_digest_with_an_unknown_key_is_still_not_found(kms: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        _sign(
            kms,
            "11111111-2222-3333-4444-555555555555",
            "ECDSA_SHA_256",
            hashlib.sha256(MESSAGE).digest(),
            "DIGEST",
        )

    assert _error(excinfo)[0] == "NotFoundException"


def test_digest_through_an_alias_follows_the_same_rules(kms: Any) -> None:
    key_id = _key(kms, "ECC_NIST_P256")
    kms.create_alias(AliasName="alias/localcloud-p256-digest", TargetKeyId=key_id)
    digest = hashlib.sha256(MESSAGE).digest()

    signature = _sign(kms, "alias/localcloud-p256-digest", "ECDSA_SHA_256", digest, "DIGEST")
    with pytest.raises(ClientError) as excinfo:
        _sign(kms, "alias/localcloud-p256-digest", "ECDSA_SHA_256", digest[:31], "DIGEST")

    _public_key(kms, key_id).verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert _error(excinfo)[1] == "Digest is invalid length for algorithm ECDSA_SHA_256."


# --- RAW is unchanged ---------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", [{"MessageType": "RAW"}, {}], ids=["raw", "default"])
def test_raw_message_is_still_hashed_by_kms_like_stock_moto(
    kms: Any, message_type: dict[str, str]
) -> None:
    key_id = _key(kms, "ECC_NIST_P256")
    # A 32-byte RAW message is a message, not a digest: KMS hashes it.
    message = hashlib.sha256(MESSAGE).digest()

    signature = kms.sign(
        KeyId=key_id, Message=message, SigningAlgorithm="ECDSA_SHA_256", **message_type
    )["Signature"]

    _public_key(kms, key_id).verify(signature, message, ec.ECDSA(hashes.SHA256()))


def test_raw_message_of_any_length_is_not_checked_as_a_digest(kms: Any) -> None:
    key_id = _key(kms, "ECC_NIST_P256")

    signature = _sign(kms, key_id, "ECDSA_SHA_256", b"x" * 31, "RAW")

    _public_key(kms, key_id).verify(signature, b"x" * 31, ec.ECDSA(hashes.SHA256()))


# --- Verify -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sign_as", "verify_as"),
    [("DIGEST", "DIGEST"), ("DIGEST", "RAW"), ("RAW", "DIGEST"), ("RAW", "RAW")],
)
def test_kms_verify_accepts_a_signature_whether_message_or_digest_is_given(
    kms: Any, sign_as: str, verify_as: str
) -> None:
    key_id = _key(kms, "ECC_NIST_P256")
    as_given = {"RAW": MESSAGE, "DIGEST": hashlib.sha256(MESSAGE).digest()}
    signature = _sign(kms, key_id, "ECDSA_SHA_256", as_given[sign_as], sign_as)

    assert _kms_verify(
        kms, key_id, "ECDSA_SHA_256", as_given[verify_as], verify_as, signature=signature
    )


def test_kms_verify_of_another_digest_keeps_motos_signature_valid_false(kms: Any) -> None:
    key_id = _key(kms, "ECC_NIST_P256")
    signature = _sign(kms, key_id, "ECDSA_SHA_256", hashlib.sha256(MESSAGE).digest(), "DIGEST")

    other = hashlib.sha256(MESSAGE + b" ").digest()

    # Unchanged moto answer (real KMS raises KMSInvalidSignatureException).
    assert not _kms_verify(kms, key_id, "ECDSA_SHA_256", other, "DIGEST", signature=signature)


# --- RSA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", RSA_ALGORITHMS)
def test_rsa_digest_signature_verifies_offline_as_prehashed(kms: Any, algorithm: str) -> None:
    key_id = _key(kms, "RSA_2048")
    digest = _digest(algorithm)

    signature = _sign(kms, key_id, algorithm, digest, "DIGEST")

    public_key = _public_key(kms, key_id)
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(signature, digest, _rsa_padding(algorithm), Prehashed(_hash(algorithm)))
    public_key.verify(signature, MESSAGE, _rsa_padding(algorithm), _hash(algorithm))
    assert _kms_verify(kms, key_id, algorithm, digest, "DIGEST", signature=signature)
    assert _kms_verify(kms, key_id, algorithm, MESSAGE, "RAW", signature=signature)


def test_rsa_pkcs1_digest_signature_equals_the_raw_one(kms: Any) -> None:
    # PKCS#1 v1.5 is deterministic: DIGEST and RAW of the same message give the same bytes.
    key_id = _key(kms, "RSA_2048")
    algorithm = "RSASSA_PKCS1_V1_5_SHA_256"

    digest_signature = _sign(kms, key_id, algorithm, _digest(algorithm), "DIGEST")
    raw_signature = _sign(kms, key_id, algorithm, MESSAGE, "RAW")

    assert digest_signature == raw_signature


# --- Coexistence with the Ed25519 extension -----------------------------------------------------


def test_ed25519_keys_keep_their_own_rules(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
        "KeyId"
    ]

    signature = _sign(kms, key_id, "ED25519_SHA_512", MESSAGE, "RAW")
    with pytest.raises(ClientError) as wrong_length:
        _sign(kms, key_id, "ED25519_PH_SHA_512", hashlib.sha256(MESSAGE).digest(), "DIGEST")
    with pytest.raises(ClientError) as ed25519ph:
        _sign(kms, key_id, "ED25519_PH_SHA_512", hashlib.sha512(MESSAGE).digest(), "DIGEST")
    with pytest.raises(ClientError) as ecdsa_on_ed25519:
        _sign(kms, key_id, "ECDSA_SHA_256", hashlib.sha256(MESSAGE).digest(), "DIGEST")

    public_key = _public_key(kms, key_id)
    assert isinstance(public_key, Ed25519PublicKey)
    public_key.verify(signature, MESSAGE)
    assert _error(wrong_length)[1] == "Digest is invalid length for algorithm ED25519_PH_SHA_512."
    assert _error(ed25519ph)[0] == "UnsupportedOperationException"
    assert _error(ecdsa_on_ed25519)[0] == "ValidationException"
    assert "['ED25519_SHA_512', 'ED25519_PH_SHA_512']" in _error(ecdsa_on_ed25519)[1]


def test_concurrent_raw_and_digest_requests_do_not_see_each_others_message_type(
    kms: Any,
) -> None:
    key_id = _key(kms, "ECC_NIST_P256")
    digest = hashlib.sha256(MESSAGE).digest()
    requests = [("DIGEST", digest), ("RAW", MESSAGE)] * 12

    with ThreadPoolExecutor(max_workers=8) as pool:
        signatures = list(
            pool.map(lambda r: _sign(kms, key_id, "ECDSA_SHA_256", r[1], r[0]), requests)
        )

    public_key = _public_key(kms, key_id)
    for signature in signatures:  # every one is over MESSAGE, whichever way it was given
        public_key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))


# --- install() ---------------------------------------------------------------------------------


def _patched() -> tuple[object, ...]:
    return (
        vars(KmsResponse)["sign"],
        vars(KmsResponse)["verify"],
        vars(ECDSAPrivateKey)["_ECDSAPrivateKey__hash_algorithm"],
        vars(RSAPrivateKey)["_RSAPrivateKey__padding_and_hash_algorithm"],
    )


def test_install_is_idempotent(kms: Any) -> None:
    before = _patched()

    kms_digest.install()
    kms_digest.install()
    kms_ed25519.install()

    assert _patched() == before
    key_id = _key(kms, "ECC_NIST_P256")
    digest = hashlib.sha256(MESSAGE).digest()
    signature = _sign(kms, key_id, "ECDSA_SHA_256", digest, "DIGEST")
    _public_key(kms, key_id).verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))


_ORDER_SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys, boto3
    from moto import mock_aws
    from localcloud import kms_digest, kms_ed25519

    for name in sys.argv[1:]:
        {"digest": kms_digest, "ed25519": kms_ed25519}[name].install()
    digest = hashlib.sha256(b"hello").digest()
    with mock_aws():
        kms = boto3.client(
            "kms", region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )
        p256 = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
        p256 = p256["KeyMetadata"]["KeyId"]
        ed = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
        ed = ed["KeyMetadata"]["KeyId"]
        ecdsa = kms.sign(KeyId=p256, Message=digest, MessageType="DIGEST",
                         SigningAlgorithm="ECDSA_SHA_256")["Signature"]
        eddsa = kms.sign(KeyId=ed, Message=b"hello", MessageType="RAW",
                         SigningAlgorithm="ED25519_SHA_512")["Signature"]
        errors = []
        for key, algorithm in ((p256, "ECDSA_SHA_256"), (ed, "ED25519_PH_SHA_512")):
            try:
                kms.sign(KeyId=key, Message=b"x" * 40, MessageType="DIGEST",
                         SigningAlgorithm=algorithm)
            except kms.exceptions.ClientError as error:
                errors.append(error.response["Error"]["Message"])
        print(json.dumps({
            "p256": kms.get_public_key(KeyId=p256)["PublicKey"].hex(),
            "ecdsa": ecdsa.hex(),
            "ed25519": kms.get_public_key(KeyId=ed)["PublicKey"].hex(),
            "eddsa": eddsa.hex(),
            "errors": errors,
        }))
    """
)


@pytest.mark.parametrize(
    "order", [("digest", "ed25519"), ("ed25519", "digest")], ids=["digest-first", "ed25519-first"]
)
def test_both_extensions_work_in_either_install_order_under_mock_aws(
    order: tuple[str, str],
) -> None:
    # A separate interpreter per order: patches are process-wide, and mock_aws resets every moto
    # backend, which would wipe the server sharing this process.
    completed = subprocess.run(
        [sys.executable, "-c", _ORDER_SCRIPT, *order],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    result = json.loads(completed.stdout.strip().splitlines()[-1])
    p256 = serialization.load_der_public_key(bytes.fromhex(result["p256"]))
    assert isinstance(p256, ec.EllipticCurvePublicKey)
    p256.verify(bytes.fromhex(result["ecdsa"]), b"hello", ec.ECDSA(hashes.SHA256()))
    ed25519 = serialization.load_der_public_key(bytes.fromhex(result["ed25519"]))
    assert isinstance(ed25519, Ed25519PublicKey)
    ed25519.verify(bytes.fromhex(result["eddsa"]), b"hello")
    assert result["errors"] == [
        "Digest is invalid length for algorithm ECDSA_SHA_256.",
        "Digest is invalid length for algorithm ED25519_PH_SHA_512.",
    ]
