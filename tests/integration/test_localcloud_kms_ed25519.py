"""The local cloud's KMS acts like real KMS for ECC_NIST_EDWARDS25519 (moto 5.2.5, server mode)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from moto.kms.models import Key, KmsBackend, kms_backends
from moto.kms.responses import KmsResponse

from localcloud import kms_ed25519
from tests.integration.moto_kms import error_of as _error
from tests.integration.moto_kms import kms_client

REGION = "us-east-1"
ED25519 = "ECC_NIST_EDWARDS25519"
MESSAGE = b'{"root":"sha256:0f1e2d"}'


@pytest.fixture(scope="module")
def kms() -> Iterator[Any]:
    yield from kms_client()


@pytest.fixture(scope="module")
def key_id(kms: Any) -> str:
    key_id: str = kms.create_key(KeySpec=ED25519, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    return key_id


def _call(kms: Any, operation: str, key_id: str, **kwargs: Any) -> dict[str, Any]:
    """Sign, or Verify with a syntactically fine (64-byte) signature: both apply the same rules."""
    if operation == "verify":
        kwargs.setdefault("Signature", b"\x00" * 64)
    result: dict[str, Any] = getattr(kms, operation)(KeyId=key_id, **kwargs)
    return result


def _sign(kms: Any, key_id: str, message: bytes = MESSAGE) -> bytes:
    signature: bytes = kms.sign(
        KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512"
    )["Signature"]
    return signature


def _public_key(kms: Any, key_id: str) -> Ed25519PublicKey:
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    public_key = serialization.load_der_public_key(der)
    assert isinstance(public_key, Ed25519PublicKey)
    return public_key


# --- CreateKey / DescribeKey / GetPublicKey ---------------------------------------------------


def test_describe_key_shows_ed25519_spec_and_both_signing_algorithms(kms: Any, key_id: str) -> None:
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]

    assert metadata["KeySpec"] == ED25519
    assert metadata["KeyUsage"] == "SIGN_VERIFY"
    assert metadata["KeyState"] == "Enabled"
    assert metadata["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    assert "EncryptionAlgorithms" not in metadata


@pytest.mark.parametrize(
    ("usage_kwargs", "usage"),
    [({"KeyUsage": "ENCRYPT_DECRYPT"}, "ENCRYPT_DECRYPT"), ({}, "ENCRYPT_DECRYPT")],
    ids=["explicit-encrypt-decrypt", "default-usage-is-encrypt-decrypt"],
)
def test_create_key_rejects_usage_other_than_sign_verify_like_kms(
    kms: Any, usage_kwargs: dict[str, str], usage: str
) -> None:
    keys_before = len(kms.list_keys()["Keys"])

    with pytest.raises(ClientError) as excinfo:
        kms.create_key(KeySpec=ED25519, **usage_kwargs)

    assert _error(excinfo) == (
        "ValidationException",
        f"KeyUsage {usage} is not compatible with KeySpec {ED25519}",
        400,
    )
    assert len(kms.list_keys()["Keys"]) == keys_before


def test_get_public_key_returns_der_spki_with_key_spec_usage_and_algorithms(
    kms: Any, key_id: str
) -> None:
    response = kms.get_public_key(KeyId=key_id)

    der = response["PublicKey"]
    public_key = serialization.load_der_public_key(der)
    assert isinstance(public_key, Ed25519PublicKey)
    # RFC 8410 SubjectPublicKeyInfo: 12-byte header (OID 1.3.101.112) + 32-byte key.
    assert len(der) == 44
    assert der.startswith(bytes.fromhex("302a300506032b6570032100"))
    assert response["KeySpec"] == ED25519
    assert response["KeyUsage"] == "SIGN_VERIFY"
    assert response["SigningAlgorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]


# --- Sign / Verify with ED25519_SHA_512 --------------------------------------------------------


def test_sign_returns_rfc8032_signature_that_verifies_offline_with_der_public_key(
    kms: Any, key_id: str
) -> None:
    response = kms.sign(
        KeyId=key_id, Message=MESSAGE, MessageType="RAW", SigningAlgorithm="ED25519_SHA_512"
    )

    signature = response["Signature"]
    assert len(signature) == 64
    assert response["SigningAlgorithm"] == "ED25519_SHA_512"
    assert response["KeyId"].endswith(f":key/{key_id}")
    _public_key(kms, key_id).verify(signature, MESSAGE)  # raises InvalidSignature if wrong
    # Pure Ed25519 is deterministic: the same message gives the same signature.
    assert _sign(kms, key_id) == signature


def test_sign_defaults_to_raw_message_type_like_kms(kms: Any, key_id: str) -> None:
    signature = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ED25519_SHA_512")[
        "Signature"
    ]

    _public_key(kms, key_id).verify(signature, MESSAGE)


@pytest.mark.parametrize("size", [1, 4096])
def test_sign_accepts_raw_messages_from_1_to_4096_bytes(kms: Any, key_id: str, size: int) -> None:
    message = bytes(range(256)) * (size // 256) + bytes(range(size % 256))

    signature = _sign(kms, key_id, message)

    _public_key(kms, key_id).verify(signature, message)


@pytest.mark.parametrize("operation", ["sign", "verify"])
def test_sign_rejects_message_over_4096_bytes_like_kms(
    kms: Any, key_id: str, operation: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(
            kms,
            operation,
            key_id,
            Message=b"x" * 4097,
            MessageType="RAW",
            SigningAlgorithm="ED25519_SHA_512",
        )

    code, message, status = _error(excinfo)
    assert (code, status) == ("ValidationException", 400)
    assert message == (
        "1 validation error detected: Value at 'message' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096"
    )


def test_oversize_message_error_has_the_shape_moto_uses_for_oversize_plaintext(
    kms: Any, key_id: str
) -> None:
    symmetric_key = kms.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as plaintext_error:
        kms.encrypt(KeyId=symmetric_key, Plaintext=b"x" * 4097)
    with pytest.raises(ClientError) as message_error:
        _sign(kms, key_id, b"x" * 4097)

    plaintext_code, plaintext_message, plaintext_status = _error(plaintext_error)
    code, message, status = _error(message_error)
    assert (code, status) == (plaintext_code, plaintext_status)
    assert message == plaintext_message.replace("'plaintext'", "'message'")


def test_sign_rejects_empty_message(kms: Any, key_id: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        _sign(kms, key_id, b"")

    code, message, _ = _error(excinfo)
    assert code == "ValidationException"
    assert "greater than or equal to 1" in message


@pytest.mark.parametrize("operation", ["sign", "verify"])
def test_ed25519_sha_512_rejects_digest_message_type_like_kms(
    kms: Any, key_id: str, operation: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(
            kms,
            operation,
            key_id,
            Message=hashlib.sha512(MESSAGE).digest(),
            MessageType="DIGEST",
            SigningAlgorithm="ED25519_SHA_512",
        )

    assert _error(excinfo) == (
        "ValidationException",
        "Message type DIGEST is incompatible with algorithm ED25519_SHA_512.",
        400,
    )


def test_verify_returns_signature_valid_true_for_a_kms_signature(kms: Any, key_id: str) -> None:
    signature = _sign(kms, key_id)

    response = kms.verify(
        KeyId=key_id,
        Message=MESSAGE,
        MessageType="RAW",
        Signature=signature,
        SigningAlgorithm="ED25519_SHA_512",
    )

    assert response["SignatureValid"] is True
    assert response["SigningAlgorithm"] == "ED25519_SHA_512"


@pytest.mark.parametrize(
    "tamper",
    ["message", "signature-bit", "truncated-signature", "other-keys-signature"],
)
def test_verify_raises_kms_invalid_signature_exception_like_kms(
    kms: Any, key_id: str, tamper: str
) -> None:
    message, signature = MESSAGE, _sign(kms, key_id)
    if tamper == "message":
        message = MESSAGE + b" "
    elif tamper == "signature-bit":
        signature = bytes([signature[0] ^ 1]) + signature[1:]
    elif tamper == "truncated-signature":
        signature = signature[:63]
    else:
        other_key = kms.create_key(KeySpec=ED25519, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        signature = _sign(kms, other_key["KeyId"])

    with pytest.raises(kms.exceptions.KMSInvalidSignatureException) as excinfo:
        kms.verify(
            KeyId=key_id,
            Message=message,
            MessageType="RAW",
            Signature=signature,
            SigningAlgorithm="ED25519_SHA_512",
        )

    code, _, status = _error(excinfo)
    assert (code, status) == ("KMSInvalidSignatureException", 400)


@pytest.mark.parametrize(
    ("algorithm", "message", "message_type"),
    [
        ("ECDSA_SHA_256", hashlib.sha256(MESSAGE).digest(), "DIGEST"),
        ("ECDSA_SHA_256", MESSAGE, "RAW"),
        ("RSASSA_PSS_SHA_512", MESSAGE, "RAW"),
    ],
)
def test_sign_rejects_algorithm_the_ed25519_key_does_not_support_like_moto(
    kms: Any, key_id: str, algorithm: str, message: bytes, message_type: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        kms.sign(
            KeyId=key_id, Message=message, MessageType=message_type, SigningAlgorithm=algorithm
        )

    # moto's wording for every key type (real KMS says InvalidKeyUsageException).
    assert _error(excinfo) == (
        "ValidationException",
        f"1 validation error detected: Value '{algorithm}' at 'SigningAlgorithm' failed to "
        "satisfy constraint: Member must satisfy enum value set: "
        "['ED25519_SHA_512', 'ED25519_PH_SHA_512']",
        400,
    )


def test_ed25519_key_is_usable_through_an_alias_with_the_same_rules(kms: Any, key_id: str) -> None:
    kms.create_alias(AliasName="alias/localcloud-ed25519", TargetKeyId=key_id)

    signature = _sign(kms, "alias/localcloud-ed25519")
    with pytest.raises(ClientError) as excinfo:
        _sign(kms, "alias/localcloud-ed25519", b"x" * 4097)

    _public_key(kms, key_id).verify(signature, MESSAGE)
    assert "less than or equal to 4096" in _error(excinfo)[1]


def test_sign_with_unknown_key_is_still_not_found(kms: Any) -> None:
    missing = "11111111-2222-3333-4444-555555555555"

    with pytest.raises(ClientError) as excinfo:
        _sign(kms, missing)

    assert _error(excinfo)[0] == "NotFoundException"


# --- ED25519_PH_SHA_512 (Ed25519ph) ------------------------------------------------------------


@pytest.mark.parametrize("operation", ["sign", "verify"])
def test_ed25519_ph_sha_512_rejects_raw_message_type_like_kms(
    kms: Any, key_id: str, operation: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(
            kms,
            operation,
            key_id,
            Message=MESSAGE,
            MessageType="RAW",
            SigningAlgorithm="ED25519_PH_SHA_512",
        )

    assert _error(excinfo) == (
        "ValidationException",
        "Message type RAW is incompatible with algorithm ED25519_PH_SHA_512.",
        400,
    )


@pytest.mark.parametrize("digest", [hashlib.sha256(MESSAGE).digest(), b"\x01" * 65])
def test_ed25519_ph_sha_512_rejects_digest_that_is_not_64_bytes_like_kms(
    kms: Any, key_id: str, digest: bytes
) -> None:
    with pytest.raises(ClientError) as excinfo:
        kms.sign(
            KeyId=key_id,
            Message=digest,
            MessageType="DIGEST",
            SigningAlgorithm="ED25519_PH_SHA_512",
        )

    assert _error(excinfo) == (
        "ValidationException",
        "Digest is invalid length for algorithm ED25519_PH_SHA_512.",
        400,
    )


@pytest.mark.parametrize("operation", ["sign", "verify"])
def test_ed25519_ph_sha_512_is_refused_as_unsupported_not_faked(
    kms: Any, key_id: str, operation: str
) -> None:
    with pytest.raises(ClientError) as excinfo:
        _call(
            kms,
            operation,
            key_id,
            Message=hashlib.sha512(MESSAGE).digest(),
            MessageType="DIGEST",
            SigningAlgorithm="ED25519_PH_SHA_512",
        )

    code, message, status = _error(excinfo)
    assert (code, status) == ("UnsupportedOperationException", 400)
    assert "Ed25519ph" in message
    assert "ED25519_SHA_512 with MessageType RAW" in message


# --- The private key stays inside -------------------------------------------------------------


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_private_key_material_is_never_returned_by_any_api(kms: Any) -> None:
    metadata = kms.create_key(KeySpec=ED25519, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    key_id = metadata["KeyId"]
    stored = kms_backends[metadata["AWSAccountId"]][REGION].keys[key_id].private_key
    assert isinstance(stored, kms_ed25519.Ed25519KeyPair)
    seed = stored._private_key.private_bytes_raw()
    pkcs8 = stored._private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    signature = _sign(kms, key_id)

    responses = [
        metadata,
        kms.describe_key(KeyId=key_id),
        kms.get_public_key(KeyId=key_id),
        kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ED25519_SHA_512"),
        kms.verify(
            KeyId=key_id, Message=MESSAGE, Signature=signature, SigningAlgorithm="ED25519_SHA_512"
        ),
        kms.list_keys(),
    ]

    leaves = [leaf for response in responses for leaf in _leaves(response)]
    blobs = [leaf for leaf in leaves if isinstance(leaf, bytes)]
    texts = [leaf for leaf in leaves if isinstance(leaf, str)]
    assert len(blobs) == 2  # the public key and the signature: nothing else is binary
    assert all(seed not in blob and pkcs8 not in blob for blob in blobs)
    for encoded in (seed.hex(), base64.b64encode(seed).decode(), base64.b64encode(pkcs8).decode()):
        assert all(encoded not in text for text in texts)


# --- Other key types are untouched ------------------------------------------------------------


def test_p256_key_still_signs_and_its_signature_verifies_offline(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]

    response = kms.sign(
        KeyId=key_id, Message=MESSAGE, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )

    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(response["Signature"], MESSAGE, ec.ECDSA(hashes.SHA256()))
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    assert kms.verify(
        KeyId=key_id,
        Message=MESSAGE,
        Signature=response["Signature"],
        SigningAlgorithm="ECDSA_SHA_256",
    )["SignatureValid"]


def test_p256_bad_signature_keeps_stock_moto_answer_signature_valid_false(kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    signature = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")[
        "Signature"
    ]

    response = kms.verify(
        KeyId=key_id,
        Message=MESSAGE + b" ",
        Signature=signature,
        SigningAlgorithm="ECDSA_SHA_256",
    )

    # Unchanged moto behaviour (real KMS raises KMSInvalidSignatureException); callers must
    # handle both. The Ed25519 extension deliberately does not change other key types.
    assert response["SignatureValid"] is False


def test_rsa_key_still_signs_and_verifies(kms: Any) -> None:
    metadata = kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    key_id = metadata["KeyId"]

    signature = kms.sign(KeyId=key_id, Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256")[
        "Signature"
    ]

    public_key = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_key.verify(
        signature,
        MESSAGE,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
        hashes.SHA256(),
    )
    assert "RSASSA_PKCS1_V1_5_SHA_256" in metadata["SigningAlgorithms"]
    assert "KeySpec" not in kms.get_public_key(KeyId=key_id)  # moto's response, untouched


# --- install() ---------------------------------------------------------------------------------


def test_install_is_idempotent(kms: Any, key_id: str) -> None:
    patched = (
        vars(KmsResponse)["sign"],
        vars(KmsResponse)["verify"],
        vars(KmsResponse)["create_key"],
        vars(KmsResponse)["get_public_key"],
        vars(Key)["signing_algorithms"],
        vars(KmsBackend)["_KmsBackend__ensure_valid_key_spec"],
    )

    kms_ed25519.install()
    kms_ed25519.install()

    assert patched == (
        vars(KmsResponse)["sign"],
        vars(KmsResponse)["verify"],
        vars(KmsResponse)["create_key"],
        vars(KmsResponse)["get_public_key"],
        vars(Key)["signing_algorithms"],
        vars(KmsBackend)["_KmsBackend__ensure_valid_key_spec"],
    )
    _public_key(kms, key_id).verify(_sign(kms, key_id), MESSAGE)


def test_install_also_works_under_mock_aws() -> None:
    # A separate interpreter: mock_aws resets every moto backend, which would wipe the state of
    # the server (and any other fixture) sharing this process.
    script = textwrap.dedent(
        """
        import json, boto3
        from moto import mock_aws
        from localcloud.kms_ed25519 import install

        install()
        with mock_aws():
            kms = boto3.client(
                "kms", region_name="us-east-1",
                aws_access_key_id="testing", aws_secret_access_key="testing",
            )
            key = kms.create_key(KeySpec="ECC_NIST_EDWARDS25519", KeyUsage="SIGN_VERIFY")
            key_id = key["KeyMetadata"]["KeyId"]
            signature = kms.sign(
                KeyId=key_id, Message=b"hello", MessageType="RAW",
                SigningAlgorithm="ED25519_SHA_512",
            )["Signature"]
            public_key = kms.get_public_key(KeyId=key_id)["PublicKey"]
            print(json.dumps({"signature": signature.hex(), "public_key": public_key.hex(),
                              "algorithms": key["KeyMetadata"]["SigningAlgorithms"]}))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    result = json.loads(completed.stdout.strip().splitlines()[-1])
    public_key = serialization.load_der_public_key(bytes.fromhex(result["public_key"]))
    assert isinstance(public_key, Ed25519PublicKey)
    public_key.verify(bytes.fromhex(result["signature"]), b"hello")
    assert result["algorithms"] == ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
