"""Evaluations against in-memory ports: a job of the training workflow with purpose
``evaluate``, its record, and the promotion gates that read it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from modelops.contracts.promotion import PromoteRequest
from modelops.domain.digests import canonical_digest
from modelops.domain.entities import ModelStatus
from modelops.domain.evaluation import EvaluationRecord, RunEvaluationRequest
from modelops.domain.monitoring import Quarantine
from modelops.domain.promotion import FamilyPolicy, MetricRule
from modelops.domain.training import JobStatus, TrainingJob
from modelops.errors import NotFound, PromotionBlocked, QuotaExceeded
from modelops.services.evaluation import EvaluationService
from tests.unit.test_training_service import ENGINEER, Setup

EVALUATOR_SPEC = {
    "format": "modelops.training-spec/1",
    "entryPoint": "evaluate.py",
    "seedHyperparameter": "seed",
    "hyperparameters": {
        "config": {"type": "string"},
        "seed": {"type": "integer", "minimum": 0, "default": 0},
    },
    "channels": {"model": {"required": True}, "test": {"required": True}, "test2": {}},
}


def results(*, accuracy: float, dpd: float, safe: bool = True) -> dict[str, Any]:
    checks = [
        {
            "name": "forbidden_labels",
            "metric": "forbidden_predictions",
            "passed": safe,
            "value": 0.0 if safe else 3.0,
            "limit": 0.0,
            "message": "none" if safe else "3 predictions of 'virginica'",
        },
    ]
    return {
        "format": "modelops.evaluation/1",
        "rows": 30,
        "metrics": {"accuracy": accuracy},
        "fairness": {"site": {"demographic_parity_difference": dpd}},
        "safety": {"passed": safe, "checks": checks},
        "flat": {
            "accuracy": accuracy,
            "fairness.site.demographic_parity_difference": dpd,
            "safety.passed": 1.0 if safe else 0.0,
        },
    }


class Evaluations:
    def __init__(self) -> None:
        self.setup = Setup()
        self.service = EvaluationService(
            evaluations=self.setup.repo,
            registry=self.setup.repo,
            jobs=self.setup.service,
            clock=self.setup.clock,
        )
        self.evaluator = self.setup.artifact(
            {
                "sourcedir.tar.gz": b"evaluator archive",
                "training.json": json.dumps(EVALUATOR_SPEC).encode(),
            }
        )
        trained = self.setup.finish(self.setup.submit())
        self.model_id = str(trained.modelId)
        self.testset = self.setup.dataset("iris-holdout")

    def request(self, **fields: Any) -> RunEvaluationRequest:
        return RunEvaluationRequest.model_validate(
            {
                "modelId": self.model_id,
                "testsets": [self.testset],
                "config": {"labelColumn": "species", "sensitiveAttributes": ["site"]},
                "evaluator": {"sourceArtifactId": self.evaluator.artifactId, "gitCommit": "e" * 40},
                "dependencyLockDigest": "c" * 64,
                "compute": {"instanceType": "ml.m5.large"},
                **fields,
            }
        )

    def run(self, document: dict[str, Any]) -> EvaluationRecord:
        record = self.service.run(self.request(), ENGINEER, "corr-eval")
        job = self.setup.service.get(record.jobId)
        self.setup.run_to_training(job.jobId)
        self.setup.sagemaker.complete(
            job.trainingJobName, {"evaluation.json": json.dumps(document).encode()}, {}
        )
        self.setup.service.register_outputs(job.jobId)
        return self.service.get(record.evaluationId)

    def job(self, record: EvaluationRecord) -> TrainingJob:
        return self.setup.service.get(record.jobId)


@pytest.fixture
def evaluations() -> Evaluations:
    return Evaluations()


def test_an_evaluation_is_a_job_of_the_training_workflow_with_the_model_and_test_channels(
    evaluations: Evaluations,
) -> None:
    record = evaluations.service.run(evaluations.request(), ENGINEER, "corr-eval")

    job = evaluations.job(record)
    assert record.status == "RUNNING" and job.status is JobStatus.QUEUED
    assert (job.purpose, job.evaluationId, job.modelId) == (
        "evaluate",
        record.evaluationId,
        evaluations.model_id,
    )
    created = evaluations.setup.sagemaker
    evaluations.setup.run_to_training(job.jobId)
    request = created.created[job.trainingJobName]
    channels = {c["ChannelName"] for c in request["InputDataConfig"]}
    assert channels == {"model", "test"}
    config = json.loads(request["HyperParameters"]["config"])
    assert config["labelColumn"] == "species" and config["sensitiveAttributes"] == ["site"]
    assert (
        record.configDigest
        == hashlib.sha256(request["HyperParameters"]["config"].encode()).hexdigest()
    )
    assert record.evaluatorDigest == hashlib.sha256(b"evaluator archive").hexdigest()
    model = evaluations.setup.repo.get_model(evaluations.model_id)
    assert model is not None and record.modelRootDigest == model.rootDigest
    assert job.policyDecision is not None and job.policyDecision["allowed"]


def test_completed_job_stores_results_with_a_digest_over_bindings_and_results(
    evaluations: Evaluations,
) -> None:
    document = results(accuracy=0.93, dpd=0.1)

    record = evaluations.run(document)

    assert record.status == "COMPLETED" and record.safetyPassed is True
    assert record.metrics["fairness.site.demographic_parity_difference"] == 0.1
    assert record.digest == canonical_digest({"bindings": record.bindings(), "results": document})
    assert record.resultsArtifactId is not None
    job = evaluations.job(record)
    assert job.status is JobStatus.COMPLETED and job.modelId == evaluations.model_id
    actions = [e.action for e in evaluations.setup.audit]
    assert "eval.completed" in actions and "eval.job.completed" in actions
    listed = evaluations.service.of_model(evaluations.model_id).items
    assert [e.evaluationId for e in listed] == [record.evaluationId]


def test_a_failed_job_fails_the_evaluation_once_with_its_reason(
    evaluations: Evaluations,
) -> None:
    record = evaluations.service.run(evaluations.request(), ENGINEER, "corr-eval")
    job = evaluations.job(record)
    evaluations.setup.run_to_training(job.jobId)
    evaluations.setup.sagemaker.fail(job.trainingJobName, "AlgorithmError: no label column", {})

    evaluations.setup.service.fail_job(job.jobId, None)
    evaluations.setup.service.fail_job(job.jobId, None)  # a retried compensation

    failed = evaluations.service.get(record.evaluationId)
    assert failed.status == "FAILED" and "no label column" in failed.statusReason
    assert failed.revision == 1


def test_an_evaluation_refused_by_quota_ends_failed_with_the_reason_and_starts_nothing(
    evaluations: Evaluations,
) -> None:
    greedy = {
        "instanceType": "ml.g5.12xlarge",
        "gpusPerInstance": 4,
        "instanceCount": 8,
        "maxRuntimeSeconds": 86400,
    }
    with pytest.raises(QuotaExceeded):
        evaluations.service.run(evaluations.request(compute=greedy), ENGINEER, "corr")
    failed = evaluations.setup.repo.evaluations_of(evaluations.model_id)
    assert [e.status for e in failed] == ["FAILED"]
    assert "did not start" in failed[0].statusReason and "GPU-hours" in failed[0].statusReason
    assert not evaluations.setup.repo.get_training_job(failed[0].jobId)
    with pytest.raises(NotFound):
        evaluations.service.run(evaluations.request(modelId="mdl-" + "0" * 24), ENGINEER, "corr")


def _promote(evaluations: Evaluations, stage: ModelStatus) -> Any:
    return evaluations.setup.promotions.promote(
        evaluations.model_id, PromoteRequest(targetStage=stage), ENGINEER
    )


def _require_evaluation(evaluations: Evaluations) -> None:
    """Staging needs a passing evaluation and a demographic parity difference <= 0.2."""
    rule = MetricRule(
        metric="fairness.site.demographic_parity_difference", threshold=0.2, greaterIsBetter=False
    )
    evaluations.setup.repo.put_family_policy(
        FamilyPolicy(
            family="iris",
            evaluationRequired=(ModelStatus.STAGING,),
            gates={ModelStatus.STAGING: (rule,)},
        )
    )


def test_a_stage_that_requires_an_evaluation_is_blocked_without_one(
    evaluations: Evaluations,
) -> None:
    _require_evaluation(evaluations)

    with pytest.raises(PromotionBlocked) as blocked:
        _promote(evaluations, ModelStatus.STAGING)

    assert "evaluation: no completed evaluation" in blocked.value.message


def test_failed_safety_checks_block_promotion_naming_the_check(evaluations: Evaluations) -> None:
    _require_evaluation(evaluations)
    evaluations.run(results(accuracy=0.95, dpd=0.05, safe=False))

    with pytest.raises(PromotionBlocked) as blocked:
        _promote(evaluations, ModelStatus.STAGING)

    assert "forbidden_labels: 3 predictions of 'virginica'" in blocked.value.message


def test_metric_rules_read_the_evaluation_and_name_metric_threshold_and_value(
    evaluations: Evaluations,
) -> None:
    _require_evaluation(evaluations)
    evaluations.run(results(accuracy=0.95, dpd=0.3))

    with pytest.raises(PromotionBlocked) as blocked:
        _promote(evaluations, ModelStatus.STAGING)

    assert (
        "fairness.site.demographic_parity_difference = 0.3, needs at most 0.2"
        in blocked.value.message
    )


def test_a_passing_evaluation_is_bound_into_the_signed_promotion_statement(
    evaluations: Evaluations,
) -> None:
    _require_evaluation(evaluations)
    record = evaluations.run(results(accuracy=0.95, dpd=0.05))

    done = _promote(evaluations, ModelStatus.STAGING)

    assert done.promotion is not None
    statement = json.loads(done.promotion.statement)
    assert statement["evaluationId"] == record.evaluationId
    assert statement["evaluationDigest"] == record.digest
    gates = {g.gate: g for g in done.promotion.gates}
    assert gates["evaluation"].passed and record.evaluationId in gates["evaluation"].message


def test_a_quarantined_version_cannot_be_promoted(evaluations: Evaluations) -> None:
    evaluations.setup.repo.save_quarantine(
        Quarantine(
            modelId=evaluations.model_id,
            alertId="alr-" + "1" * 24,
            reason="2 feature(s) drifted",
            since=evaluations.setup.clock.now(),
        ),
        None,
    )

    with pytest.raises(PromotionBlocked) as blocked:
        _promote(evaluations, ModelStatus.STAGING)

    assert "quarantine: quarantined since" in blocked.value.message
