"""The deployment gate: signed promotions and stored bytes decide what may serve where."""

from __future__ import annotations

import hashlib

import pytest

from modelops.domain.entities import ModelStatus
from modelops.domain.monitoring import Quarantine
from modelops.domain.promotion import FamilyPolicy
from modelops.errors import DeploymentRefused
from modelops.services.artifacts import blob_key
from modelops.services.serving_gate import DeploymentGate
from tests.unit.fakes import MemorySigner
from tests.unit.test_promotion_service import Setup


@pytest.fixture
def setup() -> Setup:
    return Setup()


def _gate(setup: Setup, signer: MemorySigner | None = None) -> DeploymentGate:
    return setup.gate(signer)


def _stored(setup: Setup, model_id: str) -> None:
    """The test Setup registers artifacts without bytes: store them as uploads would."""
    model = setup.repo.get_model(model_id)
    assert model is not None
    artifact = setup.repo.get_artifact(model.artifactId)
    assert artifact is not None
    for entry in artifact.files:
        setup.blobs.put(blob_key(entry.sha256), model.version.encode())


def test_sandbox_takes_any_model_whose_bytes_match_its_digest(setup: Setup) -> None:
    model_id = setup.model("1.0.0", 0.9)
    _stored(setup, model_id)
    provenance = _gate(setup).verify(setup.repo.get_model(model_id), "sandbox")  # type: ignore[arg-type]
    assert provenance.promotionId is None and provenance.artifactRootDigest


def test_prod_refuses_a_model_never_promoted_to_prod(setup: Setup) -> None:
    model_id = setup.model("1.0.0", 0.9)
    _stored(setup, model_id)
    setup.promote(model_id, ModelStatus.STAGING)
    model = setup.repo.get_model(model_id)
    assert model is not None
    with pytest.raises(DeploymentRefused, match="no completed promotion to prod"):
        _gate(setup).verify(model, "prod")
    assert _gate(setup).verify(model, "staging").signedStage == "staging"


def test_prod_takes_a_model_whose_prod_promotion_verifies(setup: Setup) -> None:
    model_id = setup.model("1.0.0", 0.9)
    _stored(setup, model_id)
    setup.promote(model_id, ModelStatus.STAGING)
    setup.promote(model_id, ModelStatus.PROD)
    model = setup.repo.get_model(model_id)
    assert model is not None and model.status is ModelStatus.PROD
    provenance = _gate(setup).verify(model, "prod")
    assert provenance.signedStage == "prod" and provenance.signatureKeyId == setup.signer.key_id


def test_a_signature_by_another_key_is_refused(setup: Setup) -> None:
    model_id = setup.model("1.0.0", 0.9)
    _stored(setup, model_id)
    setup.promote(model_id, ModelStatus.STAGING)
    model = setup.repo.get_model(model_id)
    assert model is not None
    with pytest.raises(DeploymentRefused, match="signature does not verify"):
        _gate(setup, MemorySigner()).verify(model, "staging")


def test_a_tampered_artifact_is_refused_even_with_a_valid_signature(setup: Setup) -> None:
    model_id = setup.model("1.0.0", 0.9)
    _stored(setup, model_id)
    setup.promote(model_id, ModelStatus.STAGING)
    model = setup.repo.get_model(model_id)
    assert model is not None
    artifact = setup.repo.get_artifact(model.artifactId)
    assert artifact is not None
    setup.blobs.put(blob_key(artifact.files[0].sha256), b"evil weights")
    with pytest.raises(DeploymentRefused, match="the artifact was altered"):
        _gate(setup).verify(model, "staging")
    assert hashlib.sha256(b"evil weights").hexdigest() != artifact.files[0].sha256


def test_a_quarantined_high_risk_version_is_refused_until_an_approver_releases_it(
    setup: Setup,
) -> None:
    model_id = setup.model("1.0.0", 0.9)
    _stored(setup, model_id)
    model = setup.repo.get_model(model_id)
    assert model is not None
    quarantine = Quarantine(
        modelId=model_id, alertId="alr-" + "2" * 24, reason="drift", since=setup.clock.now()
    )
    setup.repo.save_quarantine(quarantine, None)
    assert _gate(setup).verify(model, "sandbox")  # a low-risk family: promotion is blocked only

    setup.repo.put_family_policy(
        FamilyPolicy(family=model.family, riskTier="high", approvalsRequired=1)
    )
    with pytest.raises(DeploymentRefused, match="quarantined"):
        _gate(setup).verify(model, "sandbox")

    released = quarantine.model_copy(update={"active": False, "revision": 1})
    setup.repo.save_quarantine(released, 0)
    assert _gate(setup).verify(model, "sandbox").artifactRootDigest == model.rootDigest
