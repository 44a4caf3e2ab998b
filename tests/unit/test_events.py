"""The integration events (Kernel, Reasoning Graph, Eval Engine): each is published by the
service that knows it, through the one publisher, and validates against its JSON Schema
(``MemoryPublisher`` checks every detail with jsonschema as it is published)."""

from __future__ import annotations

import base64
import json

import pytest

from localcloud.integrations import schema_file, validate_event
from modelops.contracts.events import (
    EVENT_TYPES,
    EVENTS,
    DatasetRegistered,
    EvaluationCompleted,
    ModelRecommendation,
    ModelRegistered,
    ModelStageChanged,
    PromotionAwaitingApproval,
)
from modelops.contracts.promotion import ApproveRequest, FamilyPolicyRequest
from modelops.contracts.registry import RegisterModelRequest
from modelops.domain.access import Caller, Role
from modelops.domain.entities import ModelStatus
from modelops.errors import Forbidden, SignatureInvalid
from modelops.services.drift import AlertRequest
from tests.unit.fakes import MemoryPublisher
from tests.unit.test_drift_service import Drift, iris_like
from tests.unit.test_evaluation_service import Evaluations, _require_evaluation, results
from tests.unit.test_promotion_service import ADMIN, APPROVERS, ENGINEER, Setup

KERNEL = Caller("arn:aws:sts::123456789012:assumed-role/ModelOpsKernel/k", frozenset({Role.KERNEL}))


@pytest.mark.parametrize("event", EVENT_TYPES, ids=lambda e: e.DETAIL_TYPE)
def test_every_event_contract_has_a_versioned_schema_with_a_correlation_id(event: type) -> None:
    schema = json.loads(schema_file(event.DETAIL_TYPE).read_text())  # type: ignore[attr-defined]
    assert {"schemaVersion", "correlationId"} <= set(schema["required"])
    assert schema["properties"]["schemaVersion"]["const"] == "1"
    assert schema["additionalProperties"] is False


def test_the_schema_files_are_exactly_the_published_detail_types() -> None:
    on_disk = {p.name for p in schema_file("x").parent.glob("*.json")}
    assert on_disk == {schema_file(name).name for name in EVENTS}


def test_a_detail_that_breaks_its_schema_is_refused_naming_the_field() -> None:
    with pytest.raises(AssertionError, match="correlationId"):
        validate_event("Model Registered", {"schemaVersion": "1", "modelId": "m"})
    with pytest.raises(AssertionError, match="no contract"):
        validate_event("Something Else", {})


def test_registrations_are_published_and_a_retry_publishes_them_again() -> None:
    setup = Setup()
    dataset_id = setup.dataset("iris-train")
    model_id = setup.model("1.0.0", 0.9, (dataset_id,))
    stored = setup.repo.get_model(model_id)
    assert stored is not None
    retry = RegisterModelRequest(
        family=stored.family,
        version=stored.version,
        artifactId=stored.artifactId,
        codeRef=stored.codeRef,
        metrics=stored.metrics,
        lineage=stored.lineage,
    )
    again = setup.registry.register_model(retry, ENGINEER).model.modelId

    datasets = setup.publisher.of(DatasetRegistered.DETAIL_TYPE)
    models = setup.publisher.of(ModelRegistered.DETAIL_TYPE)
    assert again == model_id
    assert [d["datasetId"] for d in datasets] == [dataset_id]
    assert datasets[0]["resourcePath"] == f"/dataset/{dataset_id}"
    assert [m["modelId"] for m in models] == [model_id, model_id]
    assert models[0]["datasets"] == [dataset_id] and models[0]["rootDigest"]


def test_a_promotion_publishes_the_stage_change_with_its_signing_key() -> None:
    setup = Setup()
    model_id = setup.model("1.0.0", 0.9)

    setup.promote(model_id, ModelStatus.STAGING)

    (change,) = setup.publisher.of(ModelStageChanged.DETAIL_TYPE)
    assert (change["modelId"], change["fromStage"], change["toStage"]) == (
        model_id,
        "draft",
        "staging",
    )
    assert change["signatureKeyId"] == setup.signer.key_id
    assert change["changedBy"] == ENGINEER.principal


def _pending(setup: Setup) -> tuple[str, str]:
    setup.service.set_family_policy(
        "clf", FamilyPolicyRequest(riskTier="high", approvalsRequired=1), ADMIN
    )
    setup.approver(APPROVERS[0])
    model_id = setup.model("1.0.0", 0.9)
    setup.promote(model_id, ModelStatus.STAGING)
    pending = setup.promote(model_id, ModelStatus.PROD, KERNEL).promotion
    return model_id, pending.promotionId


def test_kernel_relays_an_approvers_signature_and_the_approval_is_the_approvers() -> None:
    setup = Setup()
    model_id, promotion_id = _pending(setup)
    (waiting,) = setup.publisher.of(PromotionAwaitingApproval.DETAIL_TYPE)
    private, key_id = setup.approver_keys[APPROVERS[0].principal]
    signature = base64.b64encode(private.sign(waiting["statement"].encode())).decode()

    done = setup.service.approve(
        model_id, promotion_id, ApproveRequest(keyId=key_id, signature=signature), KERNEL
    )

    assert done.promotion is not None and done.promotion.status == "COMPLETED"
    (approval,) = done.promotion.approvals
    assert approval.principal == APPROVERS[0].principal and approval.relayedBy == KERNEL.principal
    assert waiting["promotionId"] == promotion_id and waiting["requestedBy"] == KERNEL.principal
    prod = [c for c in setup.publisher.of(ModelStageChanged.DETAIL_TYPE) if c["toStage"] == "prod"]
    assert [c["modelId"] for c in prod] == [model_id]


def test_kernel_cannot_relay_a_forged_signature_or_approve_without_one() -> None:
    setup = Setup()
    model_id, promotion_id = _pending(setup)
    _, key_id = setup.approver_keys[APPROVERS[0].principal]
    forged = base64.b64encode(b"\x01" * 64).decode()

    with pytest.raises(SignatureInvalid):
        setup.service.approve(
            model_id, promotion_id, ApproveRequest(keyId=key_id, signature=forged), KERNEL
        )
    with pytest.raises(Forbidden):
        setup.service.approve(
            model_id, promotion_id, ApproveRequest(keyId=key_id, signature=forged), ENGINEER
        )


def test_an_evaluation_publishes_its_trace_metrics_and_a_hold_naming_the_failing_gate() -> None:
    evaluations = Evaluations()
    _require_evaluation(evaluations)
    record = evaluations.run(results(accuracy=0.95, dpd=0.3))
    publisher: MemoryPublisher = evaluations.setup.publisher

    (completed,) = publisher.of(EvaluationCompleted.DETAIL_TYPE)
    (advice,) = publisher.of(ModelRecommendation.DETAIL_TYPE)
    assert completed["evaluationId"] == record.evaluationId
    assert completed["resultsDigest"] == record.digest
    assert completed["testsets"] == [evaluations.testset]
    assert completed["metrics"]["fairness.site.demographic_parity_difference"] == 0.3
    assert completed["correlationId"] == "corr-eval"
    assert advice["recommendation"]["action"] == "hold"
    assert advice["recommendation"]["targetStage"] == "staging"
    assert any("demographic_parity_difference" in r for r in advice["recommendation"]["reasons"])


def test_a_passing_evaluation_recommends_promotion_to_the_next_rung() -> None:
    evaluations = Evaluations()
    _require_evaluation(evaluations)
    evaluations.run(results(accuracy=0.95, dpd=0.05))

    (advice,) = evaluations.setup.publisher.of(ModelRecommendation.DETAIL_TYPE)
    assert advice["source"] == "evaluation"
    assert advice["recommendation"] | {"reasons": []} == {
        "action": "promote",
        "currentStage": "draft",
        "targetStage": "staging",
        "reasons": [],
    }


def test_a_drift_alert_on_a_prod_version_recommends_a_retrain_and_its_demotion() -> None:
    drift = Drift()
    drift.baseline()
    drift.capture(1, iris_like(300, seed=2, petal_shift=2.5), "a")
    [finding], _ = drift.service.monitor(None, None, "corr")
    model = drift.setup.repo.models[drift.model_id]
    drift.setup.repo.models[drift.model_id] = model.model_copy(update={"status": ModelStatus.PROD})

    alert = drift.service.alert(
        AlertRequest(modelId=drift.model_id, findingId=finding.findingId),
        "drift-monitor",
        "monitor",
        "corr",
    )

    retrain, demote = drift.publisher.of(ModelRecommendation.DETAIL_TYPE)
    assert retrain["source"] == "drift" and retrain["sourceId"] == alert.alertId
    assert retrain["recommendation"]["action"] == "retrain"
    assert any(str(alert.proposalId) in r for r in retrain["recommendation"]["reasons"])
    assert demote["recommendation"] == {
        "action": "demote",
        "currentStage": "prod",
        "targetStage": "staging",
        "reasons": [alert.reason],
    }
