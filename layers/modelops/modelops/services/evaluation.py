"""Evaluations: run one (a job of the training workflow with ``purpose: evaluate``), record
its results when the job completes, and serve them as the evidence promotion gates check."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from modelops.contracts.events import (
    EvaluationCompleted,
    EventDetail,
    ModelRecommendation,
    Recommendation,
)
from modelops.domain import ids
from modelops.domain.access import Caller, Permission
from modelops.domain.digests import canonical_digest, canonical_json
from modelops.domain.entities import Artifact
from modelops.domain.evaluation import (
    CONFIG_HYPERPARAMETER,
    RESULTS_FILE,
    RESULTS_FORMAT,
    TEST_CHANNELS,
    EvaluationList,
    EvaluationRecord,
    RunEvaluationRequest,
    TestsetBinding,
)
from modelops.domain.ledger import AuditEvent, Outcome
from modelops.domain.training import DatasetInput, SubmitTrainingJobRequest, TrainingJob
from modelops.errors import InvalidState, NotFound, ServiceUnavailable, TrainingOutputMissing
from modelops.ports import BlobStore, Clock, EvaluationRepository, RegistryRepository
from modelops.services.artifacts import blob_key
from modelops.services.revisions import revise

AUDIT_STREAM = "training"


class JobLauncher(Protocol):
    """The training workflow's admission, as evaluations use it."""

    def prepare_evaluation(
        self,
        request: SubmitTrainingJobRequest,
        caller: Caller,
        correlation_id: str,
        evaluation_id: str,
    ) -> TrainingJob: ...

    def launch(self, job: TrainingJob) -> TrainingJob: ...


class EvaluationResults:
    """What the training workflow calls when an evaluation job ends: the results document
    becomes the evaluation record's evidence (or the failure its reason)."""

    def __init__(
        self,
        *,
        evaluations: EvaluationRepository,
        blobs: BlobStore,
        clock: Clock,
        audit: Callable[[AuditEvent], object],
        publish: Callable[[EventDetail], None],
        recommend: Callable[[EvaluationRecord], Recommendation],
    ) -> None:
        self._evaluations = evaluations
        self._blobs = blobs
        self._clock = clock
        self._audit = audit
        self._publish = publish
        self._recommend = recommend

    def complete(self, job: TrainingJob, output: Artifact) -> EvaluationRecord:
        done = self._evaluations.get_evaluation(str(job.evaluationId))
        if done is not None and done.status == "COMPLETED":
            if done.resultsArtifactId != output.artifactId:
                raise InvalidState(f"evaluation {done.evaluationId} completed with other results")
            self._published(done)  # a retried step: publish what a failed attempt may not have
            return done
        entry = next((f for f in output.files if f.path == RESULTS_FILE), None)
        data = None if entry is None else self._blobs.get_bytes(blob_key(entry.sha256))
        if data is None:
            raise TrainingOutputMissing(f"the evaluation job wrote no {RESULTS_FILE}")
        try:
            results: dict[str, Any] = json.loads(data)
        except ValueError as exc:
            raise TrainingOutputMissing(f"{RESULTS_FILE} is not JSON: {exc}") from None
        if results.get("format") != RESULTS_FORMAT:
            raise TrainingOutputMissing(f"{RESULTS_FILE} is not a {RESULTS_FORMAT} document")
        flat = {
            str(name): float(value)
            for name, value in (results.get("flat") or {}).items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
        safety = results.get("safety") or {}

        def finish(record: EvaluationRecord) -> Mapping[str, Any]:
            if record.status != "RUNNING":
                raise InvalidState(f"evaluation {record.evaluationId} is {record.status}")
            return {
                "status": "COMPLETED",
                "completedAt": self._clock.now(),
                "results": results,
                "metrics": flat,
                "safetyPassed": bool(safety.get("passed", False)),
                "resultsArtifactId": output.artifactId,
                "digest": canonical_digest({"bindings": record.bindings(), "results": results}),
            }

        return self._revise(job, finish)

    def fail(self, job: TrainingJob, reason: str) -> EvaluationRecord | None:
        def failed(record: EvaluationRecord) -> Mapping[str, Any]:
            if record.status != "RUNNING":
                raise InvalidState(f"evaluation {record.evaluationId} is {record.status}")
            return {"status": "FAILED", "statusReason": reason, "completedAt": self._clock.now()}

        try:
            return self._revise(job, failed)
        except InvalidState:
            return None  # already ended: a retried compensation

    def _revise(
        self, job: TrainingJob, change: Callable[[EvaluationRecord], Mapping[str, Any]]
    ) -> EvaluationRecord:
        evaluation_id = str(job.evaluationId)

        def read() -> EvaluationRecord:
            record = self._evaluations.get_evaluation(evaluation_id)
            if record is None:
                raise NotFound(f"evaluation {evaluation_id} does not exist")
            return record

        _, updated = revise(
            read,
            self._evaluations.save_evaluation,
            change,
            lambda: ServiceUnavailable(f"evaluation {evaluation_id} is changing; retry"),
        )
        self._audit(
            AuditEvent(
                stream=AUDIT_STREAM,
                eventId=str(uuid.uuid4()),
                time=self._clock.now(),
                principal=updated.createdBy,
                action=f"eval.{updated.status.lower()}",
                resources=(updated.evaluationId, updated.modelId, updated.jobId),
                requestId=job.executionArn or job.jobId,
                correlationId=updated.correlationId[:128],
                outcome=Outcome.SUCCEEDED if updated.status == "COMPLETED" else Outcome.FAILED,
                status=200,
                reason=updated.statusReason[:1024],
                details={
                    "actor": "training-workflow",
                    "digest": updated.digest or "",
                    "safetyPassed": str(updated.safetyPassed),
                },
            )
        )
        self._published(updated)
        return updated

    def _published(self, record: EvaluationRecord) -> None:
        """The evaluation's trace and metrics (Reasoning Graph, Eval Engine), and what the
        next rung's gates make of them."""
        advice = self._recommend(record) if record.status == "COMPLETED" else None
        self._publish(
            EvaluationCompleted(
                evaluationId=record.evaluationId,
                modelId=record.modelId,
                family=record.family,
                version=record.version,
                modelRootDigest=record.modelRootDigest,
                status="COMPLETED" if record.status == "COMPLETED" else "FAILED",
                statusReason=record.statusReason,
                testsets=[t.datasetId for t in record.testsets],
                evaluatorDigest=record.evaluatorDigest,
                configDigest=record.configDigest,
                resultsDigest=record.digest,
                resultsArtifactId=record.resultsArtifactId,
                metrics=record.metrics,
                safetyPassed=record.safetyPassed,
                completedAt=record.completedAt,
                recommendation=advice,
                correlationId=record.correlationId,
                resourcePath=f"/eval/{record.evaluationId}",
            )
        )
        if advice is None:
            return
        self._publish(
            ModelRecommendation(
                modelId=record.modelId,
                family=record.family,
                version=record.version,
                source="evaluation",
                sourceId=record.evaluationId,
                recommendation=advice,
                correlationId=record.correlationId,
            )
        )


class EvaluationService:
    def __init__(
        self,
        *,
        evaluations: EvaluationRepository,
        registry: RegistryRepository,
        jobs: JobLauncher,
        clock: Clock,
    ) -> None:
        self._evaluations = evaluations
        self._registry = registry
        self._jobs = jobs
        self._clock = clock

    def run(
        self, request: RunEvaluationRequest, caller: Caller, correlation_id: str
    ) -> EvaluationRecord:
        """Admit the evaluation job (everything a training job is checked for), record the
        evaluation RUNNING, then start the job. A job that cannot start leaves the record
        FAILED with the reason, and the error goes back to the caller."""
        caller.require(Permission.TRAIN)
        model = self._registry.get_model(request.modelId)
        if model is None:
            raise NotFound(f"model {request.modelId} does not exist")
        evaluation_id = ids.fresh(ids.EVALUATION, uuid.uuid4().hex)
        config = request.config.model_dump(mode="json", exclude_none=True)
        job = self._jobs.prepare_evaluation(
            SubmitTrainingJobRequest(
                modelFamily=model.family,
                modelVersion=model.version,
                datasets=tuple(
                    DatasetInput(datasetId=dataset_id, channel=channel)
                    for dataset_id, channel in zip(request.testsets, TEST_CHANNELS, strict=False)
                ),
                code=request.evaluator,
                image=request.image,
                dependencyLockDigest=request.dependencyLockDigest,
                seed=request.seed,
                hyperparameters={CONFIG_HYPERPARAMETER: canonical_json(config).decode()},
                compute=request.compute,
                parentModelId=model.modelId,
                description=f"evaluation {evaluation_id} of {model.modelId}",
            ),
            caller,
            correlation_id,
            evaluation_id,
        )
        record = EvaluationRecord(
            evaluationId=evaluation_id,
            modelId=model.modelId,
            family=model.family,
            version=model.version,
            modelRootDigest=model.rootDigest,
            jobId=job.jobId,
            testsets=tuple(
                TestsetBinding(datasetId=ref.datasetId, checksum=ref.checksum, channel=ref.channel)
                for ref in job.datasetRefs
            ),
            config=request.config,
            configDigest=hashlib.sha256(canonical_json(config)).hexdigest(),
            evaluatorDigest=job.reproducibility.sourceArchiveDigest,
            status="RUNNING",
            createdAt=self._clock.now(),
            createdBy=caller.principal,
            correlationId=correlation_id or evaluation_id,
        )
        self._evaluations.create_evaluation(record)
        try:
            self._jobs.launch(job)
        except Exception as exc:
            failed = record.model_copy(
                update={
                    "status": "FAILED",
                    "statusReason": f"the evaluation job did not start: {exc}"[:1024],
                    "completedAt": self._clock.now(),
                    "revision": record.revision + 1,
                }
            )
            self._evaluations.save_evaluation(failed, expected_revision=record.revision)
            raise
        return record

    def get(self, evaluation_id: str) -> EvaluationRecord:
        record = self._evaluations.get_evaluation(evaluation_id)
        if record is None:
            raise NotFound(f"evaluation {evaluation_id} does not exist")
        return record

    def of_model(self, model_id: str) -> EvaluationList:
        if self._registry.get_model(model_id) is None:
            raise NotFound(f"model {model_id} does not exist")
        return EvaluationList(items=tuple(reversed(self._evaluations.evaluations_of(model_id))))


def latest_completed(evaluations: EvaluationRepository, model_id: str) -> EvaluationRecord | None:
    """The model's most recent completed evaluation: what promotion gates check."""
    done = [e for e in evaluations.evaluations_of(model_id) if e.status == "COMPLETED"]
    return done[-1] if done else None
