"""The KMS signer adapter against the local cloud's keys, verified offline."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.serialization import load_der_public_key

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.adapters.kms import KmsSigner
from modelops.domain.signing import sign_statement, verify_statement

STATEMENT = {"modelId": "mdl-0123456789abcdef01234567", "rootDigest": "ab" * 32, "to": "prod"}


@pytest.fixture(scope="module")
def ed25519(local_cloud: LocalCloud) -> KmsSigner:
    return KmsSigner(
        local_cloud.client("kms"), local_cloud.key_arns[platform.SIGNING_KEY.logical_id]
    )


def test_statement_signed_in_kms_verifies_offline_and_tampering_is_detected(
    ed25519: KmsSigner,
) -> None:
    message, record = sign_statement(ed25519, STATEMENT, "arn:aws:iam::1:user/p", datetime.now(UTC))
    assert record.algorithm == "ED25519_SHA_512"
    public_key = ed25519.public_key()
    assert verify_statement(record, message, public_key)
    assert not verify_statement(record, message.replace(b"prod", b"dev "), public_key)
    forged = record.model_copy(update={"signature": record.signature[::-1]})
    assert not verify_statement(forged, message, public_key)


def test_statements_over_the_kms_raw_limit_are_refused_before_calling_kms(
    ed25519: KmsSigner,
) -> None:
    with pytest.raises(ValueError, match="4096"):
        sign_statement(ed25519, {"files": ["x" * 5000]}, "p", datetime.now(UTC))


def test_p256_key_signs_a_digest_that_verifies_as_prehashed_ecdsa(local_cloud: LocalCloud) -> None:
    signer = KmsSigner(
        local_cloud.client("kms"), local_cloud.key_arns[platform.MODEL_SIGNING_KEY.logical_id]
    )
    digest = hashlib.sha256(b"DSSEv1 payload").digest()
    signature = signer.sign(digest)
    key = load_der_public_key(signer.public_key())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    with pytest.raises(ValueError, match="32-byte"):
        signer.sign(b"not a digest")
