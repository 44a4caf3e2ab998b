"""Training jobs: admission, the workflow's steps, cancellation and reproduction.

``submit`` runs every check a job must pass (datasets, source artifact and its spec,
hyperparameters, compute, image, policy) before anything is written, so bad input is a 4xx
and no execution starts. The state machine (``statemachines/train_model.asl.json``) then
calls one method per Task state; each is idempotent under Step Functions' retries and every
write of the job record is conditional on the revision it read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from modelops import platform
from modelops.contracts.events import EventDetail, TrainingJobStateChange, TrainingJobUsage
from modelops.contracts.registry import Contract, RegisterModelRequest
from modelops.contracts.training import TrainingJobList
from modelops.domain import compute, ids
from modelops.domain.access import Caller, Permission
from modelops.domain.archive import extract_targz
from modelops.domain.digests import canonical_json, sha256_file
from modelops.domain.entities import Artifact, Dataset, ModelLineage
from modelops.domain.ledger import AuditEvent, Outcome
from modelops.domain.manifest import FileEntry
from modelops.domain.policy import PolicyEngine
from modelops.domain.pools import PoolConfig, period_of, usage_record
from modelops.domain.signing import sign_statement
from modelops.domain.training import (
    ESCROW_SCHEME,
    MODEL_CHANNEL,
    PARENT_CHANNEL,
    SOURCE_ARCHIVE,
    SPEC_FILE,
    ArtifactRef,
    ComputeRequirements,
    DatasetRef,
    Failure,
    FileDiff,
    JobStatus,
    MetricDefinition,
    ParentModelRef,
    Purpose,
    Reproducibility,
    ReproductionReport,
    SubmitTrainingJobRequest,
    TrainingJob,
    TrainingSpec,
    Usage,
    checkpoint_age,
    checkpoint_prefix,
    metric_value,
    sagemaker_job_name,
    training_since,
)
from modelops.errors import (
    Conflict,
    InvalidState,
    JobCancelled,
    NotFound,
    QuotaExceeded,
    ReferenceNotFound,
    ServiceUnavailable,
    TrainingOutputMissing,
    ValidationFailed,
)
from modelops.ports import (
    AlreadyExists,
    BlobStore,
    Clock,
    ComputeAllocator,
    ImageRegistry,
    LogReader,
    PromotionRepository,
    RegistryRepository,
    ReservationRefused,
    Signer,
    TrainingBackend,
    TrainingRepository,
    UsageLedger,
    Workflow,
)
from modelops.services import governance
from modelops.services.artifacts import ArtifactService, blob_key, each, escrow_prefix
from modelops.services.evaluation import EvaluationResults
from modelops.services.governance import Governance, Use
from modelops.services.lineage import LineageService
from modelops.services.registry import RegistryService
from modelops.services.revisions import revise
from modelops.services.watermark import Mark, WatermarkService

LOG_GROUP = platform.TRAINING_LOG_GROUP
LOG_TAIL_LINES = 20
REPRODUCTION_PREDICATE = "https://illuvrse.dev/attestations/reproduction/v1"
IN_TOTO_STATEMENT = "https://in-toto.io/Statement/v1"
AUDIT_STREAM = "training"


@dataclass(frozen=True)
class TrainingSettings:
    bucket: str
    region: str
    role_arn: str
    default_image: str
    poll_seconds: int
    # Raw PII: where escrowed datasets live and the only job role that may read them.
    escrow_bucket: str | None = None
    raw_pii_role_arn: str | None = None


@dataclass(frozen=True)
class _Resolved:
    """What admission pinned: the inputs a job (and its reproductions) will use."""

    datasets: tuple[DatasetRef, ...]
    dataset_records: tuple[Dataset, ...]
    parent: ParentModelRef | None
    spec: TrainingSpec
    hyperparameters: dict[str, str]
    reproducibility: Reproducibility


class TrainingService:
    def __init__(
        self,
        *,
        jobs: TrainingRepository,
        registry: RegistryRepository,
        promotions: PromotionRepository,
        registry_service: RegistryService,
        artifacts: ArtifactService,
        lineage: LineageService,
        blobs: BlobStore,
        backend: TrainingBackend,
        workflow: Workflow,
        images: ImageRegistry,
        logs: LogReader,
        compute_pool: ComputeAllocator,
        usage: UsageLedger,
        pools: PoolConfig,
        policy: PolicyEngine,
        signer: Signer,
        evaluations: EvaluationResults,
        publish: Callable[[EventDetail], None],
        audit: Callable[[AuditEvent], object],
        clock: Clock,
        settings: TrainingSettings,
        watermarks: WatermarkService | None = None,
    ) -> None:
        self._jobs = jobs
        self._registry = registry
        self._promotions = promotions
        self._registry_service = registry_service
        self._artifacts = artifacts
        self._lineage = lineage
        self._blobs = blobs
        self._backend = backend
        self._workflow = workflow
        self._images = images
        self._logs = logs
        self._compute = compute_pool
        self._ledger = usage
        self._pools = pools
        self._governance = Governance(registry, lineage, promotions, policy, clock)
        self._signer = signer
        self._evaluations = evaluations
        self._publish = publish
        self._audit = audit
        self._clock = clock
        self._settings = settings
        self._watermarks = watermarks

    # --- the API -------------------------------------------------------------------------

    def submit(
        self, request: SubmitTrainingJobRequest, caller: Caller, correlation_id: str
    ) -> TrainingJob:
        caller.require(Permission.TRAIN)
        model_id = ids.model_id(request.modelFamily, request.modelVersion)
        if self._registry.get_model(model_id) is not None:
            raise Conflict(
                f"{request.modelFamily} {request.modelVersion} is already registered; "
                "train into a new version",
                details=[{"field": "modelVersion", "message": "already registered"}],
            )
        return self._launch(self._admit(request, caller, correlation_id, "train"))

    def prepare_evaluation(
        self,
        request: SubmitTrainingJobRequest,
        caller: Caller,
        correlation_id: str,
        evaluation_id: str,
    ) -> TrainingJob:
        """An evaluation job of ``request.parentModelId`` (the model under evaluation),
        admitted like a training job but not started: ``launch`` starts it."""
        job = self._admit(request, caller, correlation_id, "evaluate")
        return job.model_copy(
            update={"evaluationId": evaluation_id, "modelId": request.parentModelId}
        )

    def launch(self, job: TrainingJob) -> TrainingJob:
        return self._launch(job)

    def _admit(
        self,
        request: SubmitTrainingJobRequest,
        caller: Caller,
        correlation_id: str,
        purpose: Purpose,
    ) -> TrainingJob:
        resolved = self._resolve(request, purpose)
        decision = self._decide(
            request.modelFamily,
            resolved.dataset_records,
            request.parentModelId if purpose == "train" else None,
            caller.principal,
            tuple(sorted(caller.roles)),
            purpose=purpose,
            region=self._region_of(resolved.reproducibility.compute.pool),
        )
        job = self._new_job(request, resolved, caller, correlation_id, None)
        return job.model_copy(update={"policyDecision": decision, "purpose": purpose})

    def _compute_of(self, request: SubmitTrainingJobRequest) -> ComputeRequirements:
        """The request's compute with its pool: the named one, which must offer the
        instance type, or the first pool (by name) that does, in this region if any does."""
        wanted = request.compute
        pools = self._pools.pools
        if wanted.pool is None:
            offering = sorted(
                (pools[n].region != self._settings.region, n)
                for n in pools
                if wanted.instanceType in pools[n].instanceTypes
            )
            if not offering:
                raise ValidationFailed(
                    f"no compute pool offers {wanted.instanceType}",
                    details=[{"field": "compute.instanceType", "message": "in no pool"}],
                )
            return wanted.model_copy(update={"pool": offering[0][1]})
        pool = pools.get(wanted.pool)
        if pool is None:
            raise ValidationFailed(
                f"compute pool {wanted.pool!r} does not exist (pools: {', '.join(sorted(pools))})",
                details=[{"field": "compute.pool", "message": "unknown pool"}],
            )
        if wanted.instanceType not in pool.instanceTypes:
            raise ValidationFailed(
                f"pool {pool.name} offers {', '.join(pool.instanceTypes)}, "
                f"not {wanted.instanceType}",
                details=[{"field": "compute.instanceType", "message": "not in the pool"}],
            )
        return wanted

    def _reserve(self, job: TrainingJob) -> None:
        try:
            self._compute.reserve(job.jobId, job.team, job.computeRequirements)
        except ReservationRefused as refused:
            denial = refused.denial
            raise QuotaExceeded(
                denial.message(),
                details=[
                    {
                        "field": "compute",
                        "message": denial.message(),
                        **denial.model_dump(mode="json"),
                    }
                ],
            ) from None

    def get(self, job_id: str) -> TrainingJob:
        job = self._jobs.get_training_job(job_id)
        if job is None:
            raise NotFound(f"training job {job_id} does not exist")
        return job

    def list_jobs(self, family: str | None, limit: int, token: str | None) -> TrainingJobList:
        page = self._jobs.list_training_jobs(family, limit, token)
        return TrainingJobList(items=page.items, nextToken=page.next_token)

    def cancel(self, job_id: str, caller: Caller) -> TrainingJob:
        caller.require(Permission.TRAIN)
        job = self.get(job_id)
        if job.status.terminal:
            raise InvalidState(f"training job {job_id} already ended {job.status.value}")
        if job.status is JobStatus.CANCELLING:
            return job
        was_training = job.status is JobStatus.TRAINING
        job = self._transition(
            job_id,
            {JobStatus.QUEUED, JobStatus.TRAINING},
            lambda j: {
                "status": JobStatus.CANCELLING,
                "statusReason": f"cancelled by {caller.principal}",
            },
        )
        if was_training:
            # The workflow sees SageMaker's Stopped status and winds the job down; a job
            # still queued is wound down by its next step (each checks for CANCELLING).
            self._backend.stop(job.trainingJobName)
        return job

    def reproduce(self, job_id: str, caller: Caller, correlation_id: str) -> TrainingJob:
        caller.require(Permission.TRAIN)
        original = self.get(job_id)
        if original.reproductionOf is not None:
            original = self.get(original.reproductionOf)
        if original.status is not JobStatus.COMPLETED or original.purpose != "train":
            raise InvalidState(
                f"job {original.jobId} is a {original.purpose} job, {original.status.value}; "
                "only completed training jobs can be reproduced (evaluate again instead)"
            )
        pinned = original.reproducibility
        request = original.request.model_copy(update={"image": pinned.imageUri})
        resolved = self._resolve(request, original.purpose)
        if resolved.reproducibility.model_dump() != pinned.model_dump():
            raise Conflict(
                "the recorded inputs no longer resolve to what the job used",
                details=[{"field": "reproducibility", "message": "inputs changed"}],
            )
        job = self._new_job(request, resolved, caller, correlation_id, original.jobId)
        return self._launch(job)

    # --- the workflow's steps -------------------------------------------------------------

    def validate(self, job_id: str) -> None:
        job = self._live(job_id)
        if job.status is not JobStatus.QUEUED:
            return  # a retried step after training started
        resolved = self._resolve(job.request, job.purpose)
        if resolved.reproducibility != job.reproducibility:
            raise Conflict(f"{job_id}: its inputs no longer resolve to what was admitted")

    def check_policy(self, job_id: str) -> None:
        """The policies again at start (approvals may have been withdrawn since admission),
        on the datasets the job pinned: no need to resolve its inputs a second time."""
        job = self._live(job_id)
        datasets = [self._registry.get_dataset(ref.datasetId) for ref in job.datasetRefs]
        decision = self._decide(
            job.modelFamily,
            [d for d in datasets if d is not None],
            job.parentModel.modelId if job.parentModel and job.purpose == "train" else None,
            job.createdBy,
            job.createdByRoles,
            purpose=job.purpose,
            region=self._region_of(job.computeRequirements.pool),
        )
        self._transition(job_id, _LIVE, lambda j: {"policyDecision": decision})

    def _region_of(self, pool: str | None) -> str:
        """Where a job runs: its pool's region (the data is used there)."""
        found = self._pools.pools.get(pool or "")
        return found.region if found is not None else self._settings.region

    def request_compute(self, job_id: str) -> dict[str, Any]:
        """Hold the job's quota (already held since admission: this confirms it)."""
        job = self._live(job_id)
        self._reserve(job)
        return {"metrics": self._quota_metrics(job)}

    def _quota_metrics(self, job: TrainingJob) -> list[dict[str, Any]]:
        """The team's quota use in the job's pool this period, as a percentage (alarmed at
        80 and 100 by CDK)."""
        pool = self._pools.pools[str(job.computeRequirements.pool)]
        limit = pool.quota.team_limit(job.team)
        if limit <= 0:
            return []
        committed = self._ledger.committed(pool.name, job.team, period_of(self._clock.now()))
        return [
            {
                "name": "QuotaUsedPercent",
                "unit": "Percent",
                "value": float(committed / limit * 100),
                "dimensions": {"pool": pool.name, "team": job.team},
            }
        ]

    def start_training(self, job_id: str) -> None:
        job = self._live(job_id)
        if job.status is JobStatus.TRAINING:
            return
        for ref in job.datasetRefs:
            if not ref.escrowed:  # raw PII is read in place, never copied out of escrow
                self._stage(ref.artifactId, ref.s3Uri)
        if job.parentModel is not None:
            self._stage(job.parentModel.artifactId, job.parentModel.s3Uri)
        # AlreadyExists: a retry of this step, the first attempt created the job
        with contextlib.suppress(AlreadyExists):
            self._backend.create(self._create_request(job))
        try:
            self._transition(
                job_id,
                {JobStatus.QUEUED},
                lambda j: {
                    "status": JobStatus.TRAINING,
                    "startTs": self._clock.now(),
                    "logsRef": f"{LOG_GROUP}/{j.trainingJobName}",
                },
            )
        except InvalidState:
            self._backend.stop(job.trainingJobName)
            raise JobCancelled(f"{job_id} was cancelled before training started") from None

    def register_outputs(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        if job.status.terminal:
            return {"status": job.status.value}
        described = self._describe(job)
        archive_uri = (described.get("ModelArtifacts") or {}).get("S3ModelArtifacts", "")
        evaluating = job.purpose == "evaluate"
        model_ref, output, mark = self._register_archive(
            job, archive_uri, kind="output" if evaluating else "model"
        )
        refs = [model_ref, *self._checkpoint_refs(job)]
        metrics = {
            m["MetricName"]: float(m["Value"]) for m in described.get("FinalMetricDataList") or ()
        }
        update: dict[str, Any] = {
            "status": JobStatus.COMPLETED,
            "statusReason": "",
            "endTs": self._clock.now(),
            "artifactRefs": tuple(refs),
            "metrics": metrics,
            "usage": self._usage(job, described),
        }
        if evaluating:
            self._evaluations.complete(job, output)
        elif job.reproductionOf is None:
            update["modelId"] = self._register_model(job, model_ref, metrics)
            if mark is not None and self._watermarks is not None:
                self._watermarks.record(
                    mark,
                    model_id=update["modelId"],
                    family=job.modelFamily,
                    version=job.modelVersion,
                    artifact_id=model_ref.artifactId,
                    principal=job.createdBy,
                    correlation_id=job.correlationId,
                )
        else:
            update["reproduction"] = self._attest(job, model_ref)
        done = self._transition(
            job_id, {JobStatus.TRAINING, JobStatus.CANCELLING}, lambda j: update
        )
        return {
            "status": done.status.value,
            "modelId": done.modelId,
            "evaluationId": done.evaluationId,
        }

    def fail_job(self, job_id: str, error: Mapping[str, Any] | None) -> dict[str, Any]:
        """The compensation path: record why, keep the logs' tail and partial checkpoints."""
        job = self.get(job_id)
        if job.status.terminal:
            return {"status": job.status.value}
        described = self._backend.describe(job.trainingJobName) or {}
        cancelled = (
            job.status is JobStatus.CANCELLING or _error_name(error) == JobCancelled.__name__
        )
        reason = job.statusReason if cancelled else _failure_reason(error, described)
        tail = (
            tuple(self._logs.tail(LOG_GROUP, f"{job.trainingJobName}/", LOG_TAIL_LINES))
            if described
            else ()
        )
        refs = self._checkpoint_refs(job) if described else []
        status = JobStatus.CANCELLED if cancelled else JobStatus.FAILED
        done = self._transition(
            job_id,
            _LIVE,
            lambda j: {
                "status": status,
                "statusReason": reason,
                "endTs": self._clock.now(),
                "artifactRefs": tuple(refs),
                "failure": None if cancelled else Failure(reason=reason, logTail=tail),
                "usage": self._usage(job, described),
            },
        )
        if done.purpose == "evaluate":
            self._evaluations.fail(done, reason or f"the job was {status.value.lower()}")
        return {"status": done.status.value}

    def record_usage(self, job_id: str) -> dict[str, Any]:
        """Write the finished job's immutable usage record (cost at its pool's rates) and
        publish it to Finance, once."""
        job = self.get(job_id)
        if job.usage is None or not job.status.terminal:
            return {}
        requirements = job.computeRequirements
        record = usage_record(
            pool=self._pools.pools[str(requirements.pool)],
            job_id=job_id,
            # a reproduction's cost is part of what its model version cost
            model_id=job.modelId
            or (self.get(job.reproductionOf).modelId if job.reproductionOf else None),
            family=job.modelFamily,
            version=job.modelVersion,
            team=job.team,
            instance_type=requirements.instanceType,
            instance_count=requirements.instanceCount,
            spot=requirements.spot,
            status=job.status.value,
            billable_seconds=job.usage.billableSeconds,
            training_seconds=job.usage.trainingSeconds,
            ended_at=job.endTs or self._clock.now(),
            correlation_id=job.correlationId,
        )
        try:
            self._ledger.put_usage(record)
        except AlreadyExists:
            return (self._ledger.get_usage(job_id) or record).model_dump(mode="json")
        self._publish(TrainingJobUsage.model_validate(record.model_dump()))
        dimensions = {"pool": record.pool, "team": record.team}
        return {
            **record.model_dump(mode="json"),
            "metrics": [
                {
                    "name": "GpuHours",
                    "unit": "Count",
                    "value": float(record.gpuHours),
                    "dimensions": dimensions,
                },
                {
                    "name": "CostUsd",
                    "unit": "None",
                    "value": float(record.costUsd),
                    "dimensions": dimensions,
                },
            ],
        }

    def release_compute(self, job_id: str) -> dict[str, Any]:
        """Turn the reservation into what the job used (nothing if it never ran)."""
        job = self.get(job_id)
        used = Decimal(str(job.usage.gpuHours)) if job.usage else Decimal(0)
        self._compute.release(job_id, used)
        return {"releasedGpuHours": str(used), "metrics": self._quota_metrics(job)}

    def reconcile(self, stale_after: timedelta) -> dict[str, Any]:
        """Release what leaked: reservations of jobs that ended, or whose workflow ended
        without ending the job (a crashed or stopped execution), or that were never
        recorded (admission crashed between reserving and recording). In the same pass,
        ``checkpointAgeSeconds``: job id -> seconds since each running spot job in
        SageMaker's ``Training`` status last wrote a checkpoint (or (re)entered ``Training``,
        if later: a job still downloading its data, or waiting for spot capacity after an
        interruption, is not measured). A spot job resumes from its newest checkpoint after
        an interruption, so this is what it stands to lose."""
        released: list[str] = []
        failed: list[str] = []
        ages: dict[str, float] = {}
        now = self._clock.now()
        for reservation in self._compute.open_reservations(limit=100):
            job = self._jobs.get_training_job(reservation.jobId)
            if job is None:
                if now - reservation.createdAt > stale_after:
                    self._compute.release(reservation.jobId, Decimal(0))
                    released.append(reservation.jobId)
                continue
            if not job.status.terminal:
                if job.executionArn and self._workflow.running(job.executionArn):
                    age = self._checkpoint_age(job, now)
                    if age is not None:
                        ages[job.jobId] = age
                    continue
                self.fail_job(job.jobId, {"Error": "WorkflowEnded", "Cause": _ENDED})
                failed.append(job.jobId)
            self.record_usage(job.jobId)
            self.release_compute(job.jobId)
            released.append(job.jobId)
        return {"released": released, "failed": failed, "checkpointAgeSeconds": ages}

    def _checkpoint_age(self, job: TrainingJob, now: datetime) -> float | None:
        """Seconds since a running spot job's newest checkpoint; None if not measured."""
        if job.status is not JobStatus.TRAINING or not job.computeRequirements.spot:
            return None
        since = training_since(self._backend.describe(job.trainingJobName) or {})
        if since is None:
            return None
        written = self._blobs.modified_times(checkpoint_prefix(job.trainingJobName))
        return checkpoint_age(now, since, written.values())

    # --- admission -------------------------------------------------------------------------

    def _resolve(self, request: SubmitTrainingJobRequest, purpose: Purpose) -> _Resolved:
        requirements = self._compute_of(request)
        bucket = self._settings.bucket
        datasets: list[Dataset] = []
        missing = []
        for index, given in enumerate(request.datasets):
            dataset = self._registry.get_dataset(given.datasetId)
            if dataset is None:
                missing.append(
                    {"field": f"datasets.{index}.datasetId", "message": "unknown dataset"}
                )
            else:
                datasets.append(dataset)
        if missing:
            raise ReferenceNotFound("unknown datasets: register them first", details=missing)
        refs = []
        for given, dataset in zip(request.datasets, datasets, strict=True):
            artifact = self._artifact(dataset.artifactId, "datasets")
            refs.append(
                DatasetRef(
                    datasetId=dataset.datasetId,
                    channel=given.channel,
                    artifactId=artifact.artifactId,
                    checksum=dataset.checksum,
                    manifestDigest=artifact.manifestDigest,
                    s3Uri=(
                        f"{ESCROW_SCHEME}{escrow_prefix(artifact.artifactId)}"
                        if artifact.storage == "escrow"
                        else f"s3://{bucket}/inputs/{artifact.artifactId}/"
                    ),
                )
            )
        parent = None
        if request.parentModelId:
            model = self._registry.get_model(request.parentModelId)
            if model is None:
                raise ReferenceNotFound(
                    f"parent model {request.parentModelId} does not exist",
                    details=[{"field": "parentModelId", "message": "unknown model"}],
                )
            parent = ParentModelRef(
                modelId=model.modelId,
                artifactId=model.artifactId,
                rootDigest=model.rootDigest,
                s3Uri=f"s3://{bucket}/inputs/{model.artifactId}/",
            )
        source = self._artifact(request.code.sourceArtifactId, "code.sourceArtifactId")
        files = {f.path: f for f in source.files}
        if SOURCE_ARCHIVE not in files or SPEC_FILE not in files:
            raise ValidationFailed(
                f"the source artifact must hold {SOURCE_ARCHIVE} and {SPEC_FILE} "
                "(modelops train package builds it)",
                details=[{"field": "code.sourceArtifactId", "message": "not a source artifact"}],
            )
        spec_bytes = self._blobs.get_bytes(blob_key(files[SPEC_FILE].sha256))
        if spec_bytes is None:
            raise ReferenceNotFound(f"{SPEC_FILE} of the source artifact is missing from storage")
        try:
            spec = TrainingSpec.parse(spec_bytes)
        except ValueError as exc:
            raise ValidationFailed(
                str(exc), details=[{"field": "code.sourceArtifactId", "message": "invalid spec"}]
            ) from None
        hyperparameters, problems = spec.hyperparameter_strings(
            request.hyperparameters, request.seed
        )
        problems += _channel_problems(spec, request, _model_channel(purpose))
        if problems:
            raise ValidationFailed(
                f"the request does not fit {SPEC_FILE}: {problems[0]['field']}: "
                f"{problems[0]['message']}",
                details=problems,
            )
        image_uri = request.image or self._settings.default_image
        pinned = self._images.resolve(image_uri)
        if pinned is None:
            raise ReferenceNotFound(
                f"training image {image_uri} does not exist or the platform may not use it",
                details=[{"field": "image", "message": "unknown image"}],
            )
        reproducibility = Reproducibility(
            gitCommit=request.code.gitCommit,
            repository=request.code.repository,
            sourceArtifactId=source.artifactId,
            sourceArchiveDigest=files[SOURCE_ARCHIVE].sha256,
            specDigest=files[SPEC_FILE].sha256,
            entryPoint=spec.entryPoint,
            imageUri=pinned[0],
            imageDigest=pinned[1],
            dependencyLockDigest=request.dependencyLockDigest,
            seed=request.seed,
            datasetChecksums={d.datasetId: d.checksum for d in datasets},
            parentModelDigest=parent.rootDigest if parent else None,
            hyperparameters=hyperparameters,
            compute=requirements,
        )
        return _Resolved(
            datasets=tuple(refs),
            dataset_records=tuple(datasets),
            parent=parent,
            spec=spec,
            hyperparameters=hyperparameters,
            reproducibility=reproducibility,
        )

    def _decide(
        self,
        family: str,
        job_datasets: Sequence[Dataset],
        parent_model_id: str | None,
        principal: str,
        roles: tuple[str, ...],
        *,
        purpose: Purpose,
        region: str,
    ) -> dict[str, Any]:
        """The policies on every dataset the job's data derives from, and, for a fine-tune,
        every dataset of its parent's lineage (it inherits their obligations)."""
        roots = [d.datasetId for d in job_datasets]
        if parent_model_id is not None:
            roots.append(parent_model_id)
        policy = self._promotions.get_family_policy(family)
        use = Use(
            action="train",
            purpose=governance.TRAINING if purpose == "train" else governance.EVALUATION,
            principal=principal,
            roles=roles,
            family=family,
            risk_tier=policy.riskTier if policy else "low",
            target_env="sandbox",
            region=region,
        )
        decision = self._governance.require(use, self._governance.lineage_datasets(roots))
        return decision.model_dump(mode="json")

    def _new_job(
        self,
        request: SubmitTrainingJobRequest,
        resolved: _Resolved,
        caller: Caller,
        correlation_id: str,
        reproduction_of: str | None,
    ) -> TrainingJob:
        job_id = ids.training_job_id(uuid.uuid4().hex)
        name = sagemaker_job_name(job_id)
        return TrainingJob(
            jobId=job_id,
            modelFamily=request.modelFamily,
            modelVersion=request.modelVersion,
            request=request,
            datasetRefs=resolved.datasets,
            parentModel=resolved.parent,
            hyperparameters=resolved.hyperparameters,
            metricDefinitions=resolved.spec.metricDefinitions,
            computeRequirements=resolved.reproducibility.compute,
            reproducibility=resolved.reproducibility,
            status=JobStatus.QUEUED,
            createdAt=self._clock.now(),
            createdBy=caller.principal,
            createdByRoles=tuple(sorted(caller.roles)),
            team=self._pools.team_of(caller.principal),
            correlationId=correlation_id or job_id,
            trainingJobName=name,
            executionArn=self._workflow.execution_arn(job_id),
            retryPolicy=request.retryPolicy,
            retrainReason=request.retrainReason,
            reproductionOf=reproduction_of,
        )

    def _launch(self, job: TrainingJob) -> TrainingJob:
        """Reserve, record, start. A refused reservation writes nothing; a workflow that
        cannot start leaves the job FAILED and its reservation released."""
        self._reserve(job)
        self._jobs.create_training_job(job)
        self._record(job, "submitted")
        try:
            self._workflow.start(
                job.jobId,
                {
                    "jobId": job.jobId,
                    "trainingJobName": job.trainingJobName,
                    "correlationId": job.correlationId,
                    "pollSeconds": self._settings.poll_seconds,
                },
            )
        except Exception as exc:
            reason = f"the training workflow could not be started: {type(exc).__name__}"
            self._transition(
                job.jobId,
                {JobStatus.QUEUED},
                lambda j: {
                    "status": JobStatus.FAILED,
                    "statusReason": reason,
                    "endTs": self._clock.now(),
                },
            )
            self._compute.release(job.jobId, Decimal(0))
            raise ServiceUnavailable(
                f"{reason}; the job {job.jobId} is marked FAILED, submit again"
            ) from exc
        return job

    # --- SageMaker -------------------------------------------------------------------------

    def _create_request(self, job: TrainingJob) -> dict[str, Any]:
        bucket = self._settings.bucket
        pinned = job.reproducibility
        requirements = job.computeRequirements
        escrowed = any(ref.escrowed for ref in job.datasetRefs)
        channels = [(ref.channel, self._channel_uri(ref)) for ref in job.datasetRefs]
        if job.parentModel is not None:
            channels.append((_model_channel(job.purpose), job.parentModel.s3Uri))
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": requirements.maxRuntimeSeconds}
        wait = requirements.wait_seconds
        if wait is not None:
            stopping["MaxWaitTimeInSeconds"] = wait
        source_uri = f"s3://{bucket}/{blob_key(pinned.sourceArchiveDigest)}"
        return {
            "TrainingJobName": job.trainingJobName,
            "AlgorithmSpecification": {
                "TrainingImage": pinned.imageUri,
                "TrainingInputMode": "File",
                "MetricDefinitions": [m.model_dump() for m in job.metricDefinitions],
            },
            # Only jobs on raw PII an approver allowed (admission checked) read escrow.
            "RoleArn": self._raw_pii_role() if escrowed else self._settings.role_arn,
            "HyperParameters": {
                **job.hyperparameters,
                # script mode, as the SageMaker framework containers read it (JSON strings)
                "sagemaker_program": json.dumps(pinned.entryPoint),
                "sagemaker_submit_directory": json.dumps(source_uri),
            },
            "InputDataConfig": [
                {
                    "ChannelName": channel,
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": uri,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                    "InputMode": "File",
                }
                for channel, uri in channels
            ],
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/training/"},
            "ResourceConfig": {
                "InstanceType": requirements.instanceType,
                "InstanceCount": requirements.instanceCount,
                "VolumeSizeInGB": requirements.volumeSizeGb,
            },
            "StoppingCondition": stopping,
            "EnableManagedSpotTraining": requirements.spot,
            "CheckpointConfig": {
                "S3Uri": f"s3://{bucket}/{checkpoint_prefix(job.trainingJobName)}",
                "LocalPath": "/opt/ml/checkpoints",
            },
            "RetryStrategy": {"MaximumRetryAttempts": job.retryPolicy.maxAttempts},
            "Environment": {"MODELOPS_JOB_ID": job.jobId},
            "Tags": [
                {"Key": "modelops:job-id", "Value": job.jobId},
                {"Key": "modelops:pool", "Value": str(requirements.pool)},
                {"Key": "modelops:correlation-id", "Value": job.correlationId[:256]},
            ],
        }

    def _usage(self, job: TrainingJob, described: Mapping[str, Any]) -> Usage:
        billable = int(described.get("BillableTimeInSeconds") or 0)
        requirements = job.computeRequirements
        return Usage(
            billableSeconds=billable,
            trainingSeconds=int(described.get("TrainingTimeInSeconds") or 0),
            instanceHours=round(requirements.instanceCount * billable / 3600, 6),
            gpuHours=compute.gpu_hours(
                requirements.instanceType, requirements.instanceCount, billable
            ),
            spot=requirements.spot,
            spotInterruptions=sum(
                1
                for transition in described.get("SecondaryStatusTransitions") or ()
                if transition.get("Status") == "Interrupted"
            ),
        )

    def _describe(self, job: TrainingJob) -> dict[str, Any]:
        described = self._backend.describe(job.trainingJobName)
        if described is None:
            raise TrainingOutputMissing(f"SageMaker has no training job {job.trainingJobName}")
        return described

    def _channel_uri(self, ref: DatasetRef) -> str:
        if not ref.escrowed:
            return ref.s3Uri
        if not self._settings.escrow_bucket:
            raise ServiceUnavailable("this function is not told the escrow bucket's name")
        return f"s3://{self._settings.escrow_bucket}/{ref.s3Uri.removeprefix(ESCROW_SCHEME)}"

    def _raw_pii_role(self) -> str:
        if not self._settings.raw_pii_role_arn:
            raise ServiceUnavailable("this deployment has no raw-PII job role")
        return self._settings.raw_pii_role_arn

    def _stage(self, artifact_id: str, s3_uri: str) -> None:
        """Lay an artifact's files out under its input prefix (names as registered), once."""
        artifact = self._artifact(artifact_id, "inputs")
        prefix = s3_uri.removeprefix(f"s3://{self._settings.bucket}/")
        for entry in artifact.files:
            target = f"{prefix}{entry.path}"
            if not self._blobs.exists(target):
                self._blobs.copy(blob_key(entry.sha256), target)

    # --- outputs ---------------------------------------------------------------------------

    def _register_archive(
        self, job: TrainingJob, archive_uri: str, *, kind: Literal["model", "output"]
    ) -> tuple[ArtifactRef, Artifact, Mark | None]:
        """Hash and register the archive's files; a model of a kind the watermark scheme
        knows is watermarked first (so its digests are the marked bytes')."""
        prefix = f"s3://{self._settings.bucket}/"
        key = archive_uri.removeprefix(prefix)
        if not archive_uri.startswith(prefix):
            raise TrainingOutputMissing(
                f"model archive {archive_uri!r} is outside the artifact bucket"
            )
        with tempfile.TemporaryDirectory(prefix="modelops-outputs-") as scratch:
            archive = Path(scratch) / "model.tar.gz"
            if not self._blobs.download(key, archive):
                raise TrainingOutputMissing(f"SageMaker reported {archive_uri} but it is not there")
            archive_sha, _ = sha256_file(archive)
            root = Path(scratch) / "files"
            with archive.open("rb") as handle:
                paths = extract_targz(handle, root)
            mark = (
                self._watermarks.mark(root, job.modelFamily, job.modelVersion)
                if kind == "model" and self._watermarks is not None
                else None
            )
            entries = []
            for path in paths:
                sha, size = sha256_file(root / path)
                if not self._blobs.exists(blob_key(sha)):
                    self._blobs.upload(root / path, blob_key(sha))
                entries.append((FileEntry(path=path, size=size, sha256=sha), None))
        artifact = self._artifacts.record_files(
            f"{job.modelFamily}-{job.modelVersion}-{kind}",
            entries,
            principal=job.createdBy,
            origin=job.jobId,
        )
        return _ref(kind, artifact, archive_sha), artifact, mark

    def _checkpoint_refs(self, job: TrainingJob) -> list[ArtifactRef]:
        prefix = checkpoint_prefix(job.trainingJobName)
        keys = self._blobs.list_keys(prefix)
        entries = [
            (FileEntry(path=key.removeprefix(prefix), size=found[1], sha256=found[0]), key)
            for key, found in zip(keys, each(self._blobs.sha256_of, keys), strict=True)
            if found is not None
        ]
        if not entries:
            return []
        artifact = self._artifacts.record_files(
            f"{job.modelFamily}-{job.modelVersion}-checkpoints",
            entries,
            principal=job.createdBy,
            origin=job.jobId,
        )
        return [_ref("checkpoints", artifact, None)]

    def _register_model(
        self, job: TrainingJob, model: ArtifactRef, metrics: dict[str, float]
    ) -> str:
        pinned = job.reproducibility
        request = RegisterModelRequest(
            family=job.modelFamily,
            version=job.modelVersion,
            artifactId=model.artifactId,
            codeRef=(
                f"git:{pinned.repository or 'source'}@{pinned.gitCommit}"
                f"#sha256:{pinned.sourceArchiveDigest}"
            ),
            metrics=metrics,
            lineage=ModelLineage(
                datasets=tuple(sorted(ref.datasetId for ref in job.datasetRefs)),
                parentModels=(job.parentModel.modelId,) if job.parentModel else (),
            ),
            provenance={
                "trainingJobId": job.jobId,
                "sagemakerTrainingJob": job.trainingJobName,
                "imageUri": pinned.imageUri,
                "imageDigest": pinned.imageDigest,
                "sourceArchiveDigest": pinned.sourceArchiveDigest,
                "dependencyLockDigest": pinned.dependencyLockDigest,
                "seed": str(pinned.seed),
                "reproducibilityDigest": hashlib.sha256(
                    canonical_json(pinned.model_dump(mode="json"))
                ).hexdigest(),
            },
            description=job.request.description,
        )
        response = self._registry_service.record_model(request, job.createdBy)
        return response.model.modelId

    def _attest(self, job: TrainingJob, reproduced: ArtifactRef) -> ReproductionReport:
        assert job.reproductionOf is not None
        original_job = self.get(job.reproductionOf)
        original = next(r for r in original_job.artifactRefs if r.kind == "model")
        before = {f.path: f.sha256 for f in self._artifact(original.artifactId, "original").files}
        after = {
            f.path: f.sha256 for f in self._artifact(reproduced.artifactId, "reproduced").files
        }
        differences = tuple(
            FileDiff(
                path=path,
                change="added"
                if path not in before
                else "removed"
                if path not in after
                else "changed",
                originalSha256=before.get(path),
                reproducedSha256=after.get(path),
            )
            for path in sorted(before.keys() | after.keys())
            if before.get(path) != after.get(path)
        )
        identical = original.rootDigest == reproduced.rootDigest
        statement = {
            "_type": IN_TOTO_STATEMENT,
            "subject": [
                {
                    "name": f"{job.modelFamily}@{job.modelVersion}",
                    "digest": {"sha256": reproduced.rootDigest},
                }
            ],
            "predicateType": REPRODUCTION_PREDICATE,
            "predicate": {
                "originalJobId": original_job.jobId,
                "reproductionJobId": job.jobId,
                "identical": identical,
                "originalRootDigest": original.rootDigest,
                "reproducedRootDigest": reproduced.rootDigest,
                "differingFiles": len(differences),
                "inputsDigest": hashlib.sha256(
                    canonical_json(job.reproducibility.model_dump(mode="json"))
                ).hexdigest(),
            },
        }
        message, signature = sign_statement(
            self._signer, statement, job.createdBy, self._clock.now()
        )
        return ReproductionReport(
            originalJobId=original_job.jobId,
            reproductionJobId=job.jobId,
            identical=identical,
            originalRootDigest=original.rootDigest,
            reproducedRootDigest=reproduced.rootDigest,
            differences=differences,
            statement=message.decode(),
            signature=signature,
        )

    # --- the record ------------------------------------------------------------------------

    def _artifact(self, artifact_id: str, field: str) -> Artifact:
        artifact = self._registry.get_artifact(artifact_id)
        if artifact is None:
            raise ReferenceNotFound(
                f"artifact {artifact_id} does not exist",
                details=[{"field": field, "message": "unknown artifact"}],
            )
        return artifact

    def _live(self, job_id: str) -> TrainingJob:
        job = self.get(job_id)
        if job.status is JobStatus.CANCELLING:
            raise JobCancelled(f"training job {job_id} was cancelled")
        if job.status.terminal:
            raise InvalidState(f"training job {job_id} already ended {job.status.value}")
        return job

    def _transition(
        self,
        job_id: str,
        allowed_from: set[JobStatus],
        change: Callable[[TrainingJob], dict[str, Any]],
    ) -> TrainingJob:
        """Apply ``change`` to the stored job if its status is one of ``allowed_from``;
        re-read and retry when a concurrent writer moved the revision."""

        def allowed(job: TrainingJob) -> Mapping[str, Any]:
            if job.status not in allowed_from:
                raise InvalidState(f"training job {job_id} is {job.status.value}")
            return change(job)

        before, updated = revise(
            lambda: self.get(job_id),
            self._jobs.save_training_job,
            allowed,
            lambda: ServiceUnavailable(
                f"training job {job_id} is being changed concurrently; retry"
            ),
        )
        if updated.status is not before.status:
            self._record(updated, updated.status.value.lower(), previous=before.status)
        return updated

    def _record(self, job: TrainingJob, action: str, previous: JobStatus | None = None) -> None:
        """Every status change goes to the ledger and out as an event, with the job's
        correlation id."""
        detail = TrainingJobStateChange(
            jobId=job.jobId,
            resourcePath=f"/train/jobs/{job.jobId}",
            status=job.status.value,
            previousStatus=previous.value if previous else None,
            modelFamily=job.modelFamily,
            modelVersion=job.modelVersion,
            modelId=job.modelId,
            reason=job.statusReason,
            correlationId=job.correlationId,
            purpose=job.purpose,
            evaluationId=job.evaluationId,
        )
        self._publish(detail)
        self._audit(
            AuditEvent(
                stream=AUDIT_STREAM,
                eventId=str(uuid.uuid4()),
                time=self._clock.now(),
                principal=job.createdBy,
                action=f"{'train' if job.purpose == 'train' else 'eval'}.job.{action}",
                resources=tuple(r for r in (job.jobId, job.modelId, job.evaluationId) if r),
                requestId=job.executionArn or job.jobId,
                correlationId=job.correlationId[:128],
                outcome=Outcome.FAILED if job.status is JobStatus.FAILED else Outcome.SUCCEEDED,
                status=200,
                reason=job.statusReason[:1024],
                details={"actor": "training-workflow", "status": job.status.value},
            )
        )

    def metric_history(self, job_id: str) -> TrainingMetricHistory:
        """Each MetricDefinition's value per epoch, parsed from the job's log lines as
        SageMaker parses them for FinalMetricDataList (the first group of a regex search).
        The lines are those of the job's newest log stream: after a spot interruption, the
        epochs since the resume."""
        job = self.get(job_id)
        lines = self._logs.tail(LOG_GROUP, f"{job.trainingJobName}/", METRIC_LOG_LINES)
        return TrainingMetricHistory(
            jobId=job.jobId,
            status=job.status.value,
            logsRef=job.logsRef,
            linesRead=len(lines),
            truncated=len(lines) >= METRIC_LOG_LINES,
            series=metric_series(job.metricDefinitions, lines),
            final=job.metrics,
        )


_LIVE = {JobStatus.QUEUED, JobStatus.TRAINING, JobStatus.CANCELLING}
_ENDED = "the training workflow ended without finishing the job (found by reconciliation)"


def _ref(
    kind: Literal["model", "checkpoints", "output"], artifact: Artifact, archive_sha: str | None
) -> ArtifactRef:
    return ArtifactRef(
        kind=kind,
        artifactId=artifact.artifactId,
        rootDigest=artifact.rootDigest,
        files=len(artifact.files),
        archiveSha256=archive_sha,
    )


def _model_channel(purpose: Purpose) -> str:
    """The channel of ``parentModelId``: the model fine-tuned from, or the one evaluated."""
    return PARENT_CHANNEL if purpose == "train" else MODEL_CHANNEL


def _channel_problems(
    spec: TrainingSpec, request: SubmitTrainingJobRequest, model_channel: str
) -> list[dict[str, str]]:
    given = {d.channel for d in request.datasets}
    if request.parentModelId:
        given.add(model_channel)
    problems = [
        {"field": "datasets", "message": f"channel {name!r} is not declared by the code"}
        for name in sorted(given - set(spec.channels))
    ]
    problems += [
        {"field": "datasets", "message": f"channel {name!r} is required by the code"}
        for name, channel in sorted(spec.channels.items())
        if channel.required and name not in given
    ]
    return problems


def _error_name(error: Mapping[str, Any] | None) -> str:
    return str((error or {}).get("Error") or "")


def _failure_reason(error: Mapping[str, Any] | None, described: Mapping[str, Any]) -> str:
    """The failed step's error when a step failed (it says what went wrong in the
    workflow), else SageMaker's FailureReason, else why SageMaker stopped the job."""
    if error:
        cause = str(error.get("Cause") or "")
        try:
            message = json.loads(cause).get("errorMessage", cause)
        except (ValueError, AttributeError):
            message = cause
        return f"{_error_name(error) or 'Error'}: {message}"[:1024]
    if described.get("FailureReason"):
        return str(described["FailureReason"])[:1024]
    return f"SageMaker stopped the job ({described.get('SecondaryStatus', 'Stopped')})"


# --- per-epoch metrics (GET /train/jobs/{jobId}/metrics) -------------------------------------

METRIC_LOG_LINES = 10_000  # GetLogEvents' largest page
_EPOCH = re.compile(r"\bepoch[=: ]\s*(\d+)", re.IGNORECASE)


class MetricPoint(Contract):
    epoch: int = Field(description="The line's epoch=N, else the metric line's ordinal.")
    value: float


class MetricSeries(Contract):
    name: str
    regex: str
    points: list[MetricPoint]


class TrainingMetricHistory(Contract):
    jobId: str
    status: str
    logsRef: str | None
    linesRead: int = Field(description="Log lines read from the job's newest log stream.")
    truncated: bool = Field(description="True when only the stream's last lines were read.")
    series: list[MetricSeries]
    final: dict[str, float] = Field(description="The job record's final metrics.")


def metric_series(
    definitions: Sequence[MetricDefinition], lines: Sequence[str]
) -> list[MetricSeries]:
    """Every definition's values, one point per epoch (the last value an epoch logged)."""
    patterns = [(d.Name, d.Regex, re.compile(d.Regex)) for d in definitions]
    found: dict[str, dict[int, float]] = {name: {} for name, _, _ in patterns}
    ordinal = 0
    for line in lines:
        values: dict[str, float] = {}
        for name, _, pattern in patterns:
            value = metric_value(pattern, line)
            if value is not None:
                values[name] = value
        if not values:
            continue
        epoch = _EPOCH.search(line)
        ordinal = int(epoch.group(1)) if epoch else ordinal + 1
        for name, value in values.items():
            found[name][ordinal] = value
    return [
        MetricSeries(
            name=name,
            regex=regex,
            points=[MetricPoint(epoch=e, value=v) for e, v in sorted(found[name].items())],
        )
        for name, regex, _ in patterns
    ]
