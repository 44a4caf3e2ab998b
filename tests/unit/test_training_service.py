"""The training service against in-memory ports: admission, every workflow step,
cancellation and reproduction."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from modelops.adapters.cedar_policy import CedarPolicyEngine
from modelops.config import Settings
from modelops.contracts.promotion import DatasetApprovalRequest
from modelops.contracts.registry import RegisterDatasetRequest
from modelops.domain.access import Caller, Role
from modelops.domain.entities import Artifact, ModelStatus, Storage
from modelops.domain.ledger import AuditEvent
from modelops.domain.manifest import FileEntry, Manifest
from modelops.domain.pools import PoolConfig
from modelops.domain.signing import ManifestSignature, verify_statement
from modelops.domain.training import (
    ComputeRequirements,
    JobStatus,
    SubmitTrainingJobRequest,
    TrainingJob,
    checkpoint_age,
    training_since,
)
from modelops.errors import (
    Conflict,
    Forbidden,
    InvalidState,
    JobCancelled,
    PolicyDenied,
    QuotaExceeded,
    ReferenceNotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from modelops.ports import AlreadyExists
from modelops.services.artifacts import ArtifactService, blob_key
from modelops.services.evaluation import EvaluationResults
from modelops.services.lineage import LineageService
from modelops.services.promotion import EvidenceGates, PromotionService
from modelops.services.registry import RegistryService
from modelops.services.training import TrainingService, TrainingSettings
from tests.unit.fakes import (
    FixedClock,
    MemoryBlobStore,
    MemoryEcdsaSigner,
    MemoryPlatform,
    MemoryPublisher,
    MemoryQuotaLedger,
    MemorySigner,
)

ENGINEER = Caller("arn:aws:iam::123456789012:user/eng", frozenset({Role.ML_ENGINEER}))
APPROVER = Caller("arn:aws:iam::123456789012:user/approver", frozenset({Role.APPROVER}))
READER = Caller("arn:aws:iam::123456789012:user/reader", frozenset())
BUCKET = "artifacts"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/modelops/python-training:3.11"
IMAGE_DIGEST = "sha256:" + "ab" * 32
SPEC = {
    "format": "modelops.training-spec/1",
    "entryPoint": "train.py",
    "seedHyperparameter": "seed",
    "hyperparameters": {
        "epochs": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
        "learning_rate": {"type": "number", "exclusiveMinimum": 0, "default": 0.5},
        "seed": {"type": "integer", "minimum": 0},
    },
    "channels": {"train": {"required": True}, "parent": {}},
    "metricDefinitions": [{"Name": "train:loss", "Regex": "loss=([0-9.]+)"}],
}


class FakeSageMaker:
    """CreateTrainingJob is recorded; a test finishes the job as SageMaker would."""

    def __init__(self, blobs: MemoryBlobStore) -> None:
        self.blobs = blobs
        self.created: dict[str, Mapping[str, Any]] = {}
        self.described: dict[str, dict[str, Any]] = {}
        self.stopped: list[str] = []

    def create(self, request: Mapping[str, Any]) -> None:
        name = str(request["TrainingJobName"])
        if name in self.created:
            raise AlreadyExists(name)
        self.created[name] = request
        self.described[name] = {"TrainingJobName": name, "TrainingJobStatus": "InProgress"}

    def describe(self, name: str) -> dict[str, Any] | None:
        return self.described.get(name)

    def stop(self, name: str) -> None:
        self.stopped.append(name)
        self.described[name] |= {"TrainingJobStatus": "Stopped"}

    def complete(self, name: str, files: dict[str, bytes], checkpoints: dict[str, bytes]) -> None:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for path, data in sorted(files.items()):
                info = tarfile.TarInfo(path)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        key = f"training/{name}/output/model.tar.gz"
        self.blobs.put(key, buffer.getvalue())
        for path, data in checkpoints.items():
            self.blobs.put(f"training/{name}/checkpoints/{path}", data)
        self.described[name] |= {
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/{key}"},
            "FinalMetricDataList": [{"MetricName": "train:loss", "Value": 0.25}],
            "BillableTimeInSeconds": 1800,
            "TrainingTimeInSeconds": 2000,
        }

    def fail(self, name: str, reason: str, checkpoints: dict[str, bytes]) -> None:
        for path, data in checkpoints.items():
            self.blobs.put(f"training/{name}/checkpoints/{path}", data)
        self.described[name] |= {
            "TrainingJobStatus": "Failed",
            "FailureReason": reason,
            "BillableTimeInSeconds": 60,
        }


class FakeWorkflow:
    def __init__(self) -> None:
        self.started: list[tuple[str, Mapping[str, Any]]] = []
        self.ended: set[str] = set()
        self.broken = False

    def running(self, execution_arn: str) -> bool:
        return execution_arn not in self.ended

    def execution_arn(self, name: str) -> str:
        return f"arn:aws:states:us-east-1:123456789012:execution:train:{name}"

    def start(self, name: str, payload: Mapping[str, Any]) -> None:
        if self.broken:
            raise ConnectionError("states is down")
        self.started.append((name, payload))


class FakeImages:
    def resolve(self, uri: str) -> tuple[str, str] | None:
        if uri in {IMAGE, f"{IMAGE.rsplit(':', 1)[0]}@{IMAGE_DIGEST}"}:
            return f"{IMAGE.rsplit(':', 1)[0]}@{IMAGE_DIGEST}", IMAGE_DIGEST
        return None


class FakeLogs:
    def tail(self, group: str, stream_prefix: str, lines: int) -> list[str]:
        return [f"{group}/{stream_prefix} line {i}" for i in range(3)][-lines:]


POOLS = PoolConfig.parse(
    json.dumps(
        {
            "gpu": {
                "region": "us-east-1",
                "instanceTypes": ["ml.g5.xlarge", "ml.g5.12xlarge"],
                "quota": {"gpuHoursPerTeam": {"default": 10, "ml": 100}, "maxConcurrentGpus": 8},
                "rates": {
                    "ml.g5.xlarge": {"onDemand": 1.5, "spot": 0.5},
                    "ml.g5.12xlarge": {"onDemand": 7.0, "spot": 2.0},
                },
            },
            "cpu": {
                "region": "us-east-1",
                "instanceTypes": ["ml.m5.large"],
                "quota": {"gpuHoursPerTeam": {"default": 0}, "maxConcurrentGpus": 0},
                "rates": {"ml.m5.large": {"onDemand": 0.1, "spot": 0.03}},
            },
        }
    ),
    json.dumps({ENGINEER.principal: "ml"}),
)


class Setup:
    def __init__(self, pools: PoolConfig = POOLS) -> None:
        self.repo = MemoryPlatform()
        self.clock = FixedClock()
        self.blobs = MemoryBlobStore()
        self.signer = MemorySigner()
        self.sagemaker = FakeSageMaker(self.blobs)
        self.workflow = FakeWorkflow()
        self.compute = MemoryQuotaLedger(pools, self.clock)
        self.publisher = MemoryPublisher()
        self.events = self.publisher.published
        self.audit: list[AuditEvent] = []
        self.registry = RegistryService(self.repo, self.clock, self.publisher)
        lineage = LineageService(self.repo)
        self.promotions = PromotionService(
            registry=self.repo,
            promotions=self.repo,
            lineage=lineage,
            policy=CedarPolicyEngine(),
            signer=self.signer,
            model_signer=MemoryEcdsaSigner(),
            blobs=self.blobs,
            evaluations=self.repo,
            monitoring=self.repo,
            clock=self.clock,
            region="us-east-1",
            publish=self.publisher,
        )
        self.service = TrainingService(
            jobs=self.repo,
            registry=self.repo,
            promotions=self.repo,
            registry_service=self.registry,
            artifacts=ArtifactService(
                self.repo, self.blobs, self.clock, Settings(region="us-east-1")
            ),
            lineage=lineage,
            blobs=self.blobs,
            backend=self.sagemaker,
            workflow=self.workflow,
            images=FakeImages(),
            logs=FakeLogs(),
            compute_pool=self.compute,
            usage=self.compute,
            pools=pools,
            policy=CedarPolicyEngine(),
            signer=self.signer,
            evaluations=EvaluationResults(
                evaluations=self.repo,
                blobs=self.blobs,
                clock=self.clock,
                audit=self.audit.append,
                publish=self.publisher,
                recommend=EvidenceGates(
                    registry=self.repo,
                    promotions=self.repo,
                    evaluations=self.repo,
                    monitoring=self.repo,
                ).recommend,
            ),
            publish=self.publisher,
            audit=self.audit.append,
            clock=self.clock,
            settings=TrainingSettings(
                bucket=BUCKET,
                region="us-east-1",
                role_arn="arn:aws:iam::123456789012:role/training",
                default_image=IMAGE,
                poll_seconds=1,
            ),
        )
        self.source = self.artifact(
            {"sourcedir.tar.gz": b"source archive", "training.json": json.dumps(SPEC).encode()}
        )

    def artifact(self, files: dict[str, bytes], storage: Storage = "standard") -> Artifact:
        entries = []
        for path, data in files.items():
            sha = hashlib.sha256(data).hexdigest()
            self.blobs.put(blob_key(sha), data)
            entries.append(FileEntry(path=path, size=len(data), sha256=sha))
        manifest = Manifest(files=tuple(entries))
        artifact = Artifact(
            artifactId=f"art-{manifest.manifest_digest[:32]}",
            name="a",
            rootDigest=manifest.root_digest,
            manifestDigest=manifest.manifest_digest,
            totalSize=manifest.total_size,
            files=manifest.files,
            createdBy=ENGINEER.principal,
            createdAt=self.clock.now(),
            uploadId="upl-" + "0" * 32,
            storage=storage,
        )
        stored = self.repo.get_artifact(artifact.artifactId)
        if stored is None:
            self.repo.create_artifact(artifact)
        return stored or artifact

    def dataset(self, name: str, **fields: Any) -> str:
        storage: Storage = "escrow" if fields.get("piiFlags") else "standard"
        artifact = self.artifact({"train.csv": f"{name}\n1,2\n".encode()}, storage)
        request = RegisterDatasetRequest.model_validate(
            {"name": name, "artifactId": artifact.artifactId, "license": "MIT", **fields}
        )
        return self.registry.register_dataset(request, ENGINEER).dataset.datasetId

    def request(self, dataset_id: str, **fields: Any) -> SubmitTrainingJobRequest:
        return SubmitTrainingJobRequest.model_validate(
            {
                "modelFamily": "iris",
                "modelVersion": "1.0.0",
                "datasets": [{"datasetId": dataset_id}],
                "code": {"sourceArtifactId": self.source.artifactId, "gitCommit": "a" * 40},
                "dependencyLockDigest": "c" * 64,
                "seed": 7,
                "hyperparameters": {"epochs": 3},
                "compute": {"instanceType": "ml.g5.xlarge", "gpusPerInstance": 1},
                **fields,
            }
        )

    def submit(self, **fields: Any) -> TrainingJob:
        return self.service.submit(self.request(self.dataset("iris"), **fields), ENGINEER, "c-1")

    def run_to_training(self, job_id: str) -> None:
        self.service.validate(job_id)
        self.service.check_policy(job_id)
        self.service.request_compute(job_id)
        self.service.start_training(job_id)

    def finish(self, job: TrainingJob, model: bytes = b'{"w":[1]}') -> TrainingJob:
        self.run_to_training(job.jobId)
        self.sagemaker.complete(
            job.trainingJobName, {"model.json": model}, {"checkpoint-1.json": b"ck"}
        )
        self.service.register_outputs(job.jobId)
        return self.service.get(job.jobId)


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_submission_pins_every_input_and_starts_the_workflow(setup: Setup) -> None:
    job = setup.submit()
    assert job.status is JobStatus.QUEUED
    pinned = job.reproducibility
    assert pinned.imageUri.endswith(f"@{IMAGE_DIGEST}") and pinned.imageDigest == IMAGE_DIGEST
    assert pinned.sourceArchiveDigest == hashlib.sha256(b"source archive").hexdigest()
    assert pinned.hyperparameters == {"epochs": "3", "learning_rate": "0.5", "seed": "7"}
    assert pinned.datasetChecksums == {job.datasetRefs[0].datasetId: job.datasetRefs[0].checksum}
    assert setup.workflow.started == [
        (
            job.jobId,
            {
                "jobId": job.jobId,
                "trainingJobName": job.trainingJobName,
                "correlationId": "c-1",
                "pollSeconds": 1,
            },
        )
    ]
    assert setup.repo.get_training_job(job.jobId) == job


def test_submission_needs_the_train_permission(setup: Setup) -> None:
    with pytest.raises(Forbidden):
        setup.service.submit(setup.request(setup.dataset("iris")), READER, "c")
    assert setup.repo.training_jobs == {} and setup.workflow.started == []


def _rejected(setup: Setup, error: type[Exception], request: SubmitTrainingJobRequest) -> Any:
    with pytest.raises(error) as caught:
        setup.service.submit(request, ENGINEER, "c")
    assert setup.repo.training_jobs == {} and setup.workflow.started == []
    return caught.value


def test_unknown_dataset_is_refused_before_anything_starts(setup: Setup) -> None:
    error = _rejected(setup, ReferenceNotFound, setup.request("ds-" + "0" * 24))
    assert error.details == [{"field": "datasets.0.datasetId", "message": "unknown dataset"}]


def test_unapproved_pii_dataset_is_refused_by_policy_and_allowed_once_approved(
    setup: Setup,
) -> None:
    dataset_id = setup.dataset("people", piiFlags=["email"])
    error = _rejected(setup, PolicyDenied, setup.request(dataset_id))
    assert error.details[0]["policyId"] == "dataset.pii-not-approved"
    setup.promotions.approve_dataset(
        dataset_id,
        DatasetApprovalRequest(purposes=["training"], validDays=30, note="consented"),
        APPROVER,
    )
    assert setup.service.submit(setup.request(dataset_id), ENGINEER, "c").status is JobStatus.QUEUED


@pytest.mark.parametrize(
    ("hyperparameters", "field", "message"),
    [
        ({"epochs": 0}, "hyperparameters.epochs", "must be >= 1"),
        ({"epochs": "three"}, "hyperparameters.epochs", "expected an integer, got 'three'"),
        ({"epochs": 2.5}, "hyperparameters.epochs", "expected an integer, got 2.5"),
        ({"learning_rate": 0}, "hyperparameters.learning_rate", "must be > 0"),
        (
            {"momentum": 0.9},
            "hyperparameters.momentum",
            "unknown (known: epochs, learning_rate, seed)",
        ),
        ({"seed": 3}, "hyperparameters.seed", "the seed is set by the request's seed field"),
    ],
)
def test_hyperparameters_that_do_not_fit_the_code_spec_are_refused(
    setup: Setup, hyperparameters: dict[str, Any], field: str, message: str
) -> None:
    request = setup.request(setup.dataset("iris"), hyperparameters=hyperparameters)
    error = _rejected(setup, ValidationFailed, request)
    assert {"field": field, "message": message} in error.details


def test_channels_the_code_does_not_declare_or_requires_are_refused(setup: Setup) -> None:
    dataset_id = setup.dataset("iris")
    request = setup.request(dataset_id, datasets=[{"datasetId": dataset_id, "channel": "eval"}])
    error = _rejected(setup, ValidationFailed, request)
    messages = {d["message"] for d in error.details}
    assert messages == {
        "channel 'eval' is not declared by the code",
        "channel 'train' is required by the code",
    }


@pytest.mark.parametrize(
    ("compute", "message"),
    [
        ({"instanceType": "ml.x99.huge"}, "is not offered"),
        ({"instanceType": "ml.m5.large", "gpusPerInstance": 1}, "has 0 GPU(s)"),
        ({"maxRuntimeSeconds": 600, "maxWaitSeconds": 300}, "must be >= maxRuntimeSeconds"),
        ({"spot": False, "maxWaitSeconds": 600}, "spot training only"),
        ({"instanceCount": 101}, "less than or equal to 100"),
    ],
)
def test_impossible_compute_requests_are_invalid(compute: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ComputeRequirements.model_validate(compute)


def test_an_already_registered_model_version_is_a_conflict(setup: Setup) -> None:
    setup.finish(setup.submit())
    error = _rejected_after_first(setup)
    assert error.details == [{"field": "modelVersion", "message": "already registered"}]


def _rejected_after_first(setup: Setup) -> Any:
    before = dict(setup.repo.training_jobs)
    with pytest.raises(Conflict) as caught:
        setup.service.submit(setup.request(setup.dataset("iris")), ENGINEER, "c")
    assert setup.repo.training_jobs == before
    return caught.value


def test_an_unknown_image_is_refused(setup: Setup) -> None:
    request = setup.request(setup.dataset("iris"), image=IMAGE.replace("3.11", "9.9"))
    error = _rejected(setup, ReferenceNotFound, request)
    assert error.details == [{"field": "image", "message": "unknown image"}]


def test_a_workflow_that_cannot_start_leaves_the_job_failed_not_queued(setup: Setup) -> None:
    setup.workflow.broken = True
    with pytest.raises(ServiceUnavailable):
        setup.submit()
    (job,) = setup.repo.training_jobs.values()
    assert job.status is JobStatus.FAILED
    assert "could not be started" in job.statusReason


def test_the_checkpoint_age_counts_from_the_newest_checkpoint_or_the_training_start() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    described = {
        "SecondaryStatus": "Training",
        "SecondaryStatusTransitions": [
            {"Status": "Starting", "StartTime": start},
            {"Status": "Training", "StartTime": start + timedelta(minutes=5)},
            {"Status": "Interrupted", "StartTime": start + timedelta(minutes=20)},
            {"Status": "Training", "StartTime": start + timedelta(minutes=30)},
        ],
    }
    since = training_since(described)
    assert since == start + timedelta(minutes=30)
    now = start + timedelta(minutes=70)
    assert checkpoint_age(now, since, []) == 40 * 60
    assert checkpoint_age(now, since, [start + timedelta(minutes=60)]) == 10 * 60
    assert training_since({**described, "SecondaryStatus": "Downloading"}) is None


def test_reconcile_measures_checkpoint_age_of_running_spot_jobs_in_training_only(
    setup: Setup,
) -> None:
    spot = setup.submit()
    on_demand = setup.submit(
        modelVersion="1.0.1", compute={"instanceType": "ml.g5.xlarge", "spot": False}
    )
    for job in (spot, on_demand):
        setup.run_to_training(job.jobId)
        entered = setup.clock.current - timedelta(minutes=45)
        setup.sagemaker.described[job.trainingJobName] |= {
            "SecondaryStatus": "Training",
            "SecondaryStatusTransitions": [{"Status": "Training", "StartTime": entered}],
        }
    key = f"training/{spot.trainingJobName}/checkpoints/checkpoint-epoch-000001.json"
    setup.blobs.put(key, b"{}")
    setup.blobs.written[key] = setup.clock.current - timedelta(minutes=10)

    ages = setup.service.reconcile(timedelta(minutes=15))["checkpointAgeSeconds"]

    assert list(ages) == [spot.jobId]
    assert 10 * 60 <= ages[spot.jobId] < 10 * 60 + 5
    setup.sagemaker.described[spot.trainingJobName]["SecondaryStatus"] = "Interrupted"
    assert setup.service.reconcile(timedelta(minutes=15))["checkpointAgeSeconds"] == {}


def test_start_creates_a_managed_spot_job_with_checkpoints_and_script_mode(setup: Setup) -> None:
    job = setup.submit(compute={"instanceType": "ml.g5.xlarge", "maxRuntimeSeconds": 600})
    setup.run_to_training(job.jobId)
    request = setup.sagemaker.created[job.trainingJobName]
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 600,
        "MaxWaitTimeInSeconds": 1200,
    }
    assert request["CheckpointConfig"]["S3Uri"] == (
        f"s3://{BUCKET}/training/{job.trainingJobName}/checkpoints/"
    )
    assert request["AlgorithmSpecification"]["TrainingImage"] == job.reproducibility.imageUri
    assert request["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert request["HyperParameters"]["seed"] == "7"
    (channel,) = request["InputDataConfig"]
    uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
    assert (
        setup.blobs.get_bytes(uri.removeprefix(f"s3://{BUCKET}/") + "train.csv") == b"iris\n1,2\n"
    )
    stored = setup.service.get(job.jobId)
    assert stored.status is JobStatus.TRAINING and stored.team == "ml"
    assert stored.computeRequirements.pool == "gpu"  # the first pool offering ml.g5.xlarge


def test_retried_steps_are_harmless(setup: Setup) -> None:
    job = setup.submit()
    setup.run_to_training(job.jobId)
    setup.service.request_compute(job.jobId)  # retries after the first attempts succeeded
    setup.service.start_training(job.jobId)
    setup.service.validate(job.jobId)
    assert len(setup.sagemaker.created) == 1 and list(setup.compute.reservations) == [job.jobId]
    assert setup.compute.committed("gpu", "ml", "2026-11") == Decimal(1)


def test_completion_registers_outputs_and_a_draft_model_with_lineage(setup: Setup) -> None:
    job = setup.finish(setup.submit())
    assert job.status is JobStatus.COMPLETED
    assert [r.kind for r in job.artifactRefs] == ["model", "checkpoints"]
    assert job.metrics == {"train:loss": 0.25}
    assert job.usage is not None and job.usage.gpuHours == 0.5
    model = setup.registry.get_model(str(job.modelId))
    assert model.status is ModelStatus.DRAFT
    assert model.lineage.datasets == (job.datasetRefs[0].datasetId,)
    assert model.rootDigest == job.artifactRefs[0].rootDigest
    assert model.provenance["trainingJobId"] == job.jobId
    actions = [e.action for e in setup.audit]
    assert actions == ["train.job.submitted", "train.job.training", "train.job.completed"]
    assert {e.correlationId for e in setup.audit} == {"c-1"}


def test_usage_is_recorded_at_the_pools_rate_published_once_and_the_quota_trued_up(
    setup: Setup,
) -> None:
    job = setup.finish(setup.submit())
    first = setup.service.record_usage(job.jobId)
    setup.service.record_usage(job.jobId)  # a retry publishes nothing more
    released = setup.service.release_compute(job.jobId)
    record = setup.compute.usage[job.jobId]
    assert (record.gpuHours, record.instanceHours) == (Decimal("0.5"), Decimal("0.5"))
    assert record.costUsd == Decimal("0.25")  # 0.5 instance-hours at the spot rate 0.5
    assert record.spotSavings == Decimal("0.1000")  # 1 - 1800 s billed / 2000 s trained
    assert (record.team, record.pool, record.modelId) == ("ml", "gpu", job.modelId)
    assert first["metrics"][0]["dimensions"] == {"pool": "gpu", "team": "ml"}
    published = [d for kind, d in setup.events if kind == "Training Job Usage"]
    assert len(published) == 1 and published[0]["correlationId"] == "c-1"
    # the worst case held at admission (1 GPU-hour) became what was billed (0.5)
    assert setup.compute.committed("gpu", "ml", "2026-11") == Decimal("0.5")
    assert setup.compute.active_gpus("gpu") == 0
    assert released["metrics"][0]["value"] == 0.5  # percent of the team's 100 GPU-hours


def test_a_job_over_the_teams_gpu_hours_is_refused_with_what_is_left(setup: Setup) -> None:
    setup.submit(compute={"instanceType": "ml.g5.12xlarge", "maxRuntimeSeconds": 18000})
    request = setup.request(
        setup.dataset("iris"),
        modelVersion="1.0.1",
        compute={"instanceType": "ml.g5.12xlarge", "maxRuntimeSeconds": 90000},
    )
    before = dict(setup.repo.training_jobs)
    with pytest.raises(QuotaExceeded) as caught:
        setup.service.submit(request, ENGINEER, "c")
    detail = caught.value.details[0]
    assert (detail["quota"], detail["requested"], detail["remaining"]) == (
        "gpuHoursPerTeam",
        "100.000000",
        "80.000000",
    )
    assert "team ml asked for 100.000000 GPU-hours this month" in caught.value.message
    assert setup.repo.training_jobs == before and len(setup.workflow.started) == 1


def test_a_job_over_the_pools_concurrent_gpus_is_refused(setup: Setup) -> None:
    setup.submit(compute={"instanceType": "ml.g5.12xlarge", "instanceCount": 2})
    with pytest.raises(QuotaExceeded) as caught:
        setup.submit(
            modelVersion="1.0.1", compute={"instanceType": "ml.g5.12xlarge", "instanceCount": 1}
        )
    assert caught.value.details[0]["quota"] == "maxConcurrentGpus"
    assert caught.value.details[0]["remaining"] == "0"


def test_concurrent_submissions_never_over_commit_a_quota() -> None:
    tight = POOLS.model_copy(deep=True)
    tight.pools["gpu"].quota.gpuHoursPerTeam["ml"] = Decimal(7)
    setup = Setup(tight)
    dataset = setup.dataset("iris")
    requests = [
        setup.request(dataset, modelVersion=f"1.0.{i}", compute={"instanceType": "ml.g5.xlarge"})
        for i in range(50)
    ]

    def submit(request: SubmitTrainingJobRequest) -> bool:
        try:
            setup.service.submit(request, ENGINEER, "c")
        except QuotaExceeded:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        accepted = sum(pool.map(submit, requests))
    assert accepted == 7
    assert setup.compute.committed("gpu", "ml", "2026-11") == Decimal(7)


@pytest.mark.parametrize(
    ("compute", "field"),
    [
        ({"pool": "tpu", "instanceType": "ml.g5.xlarge"}, "compute.pool"),
        ({"pool": "cpu", "instanceType": "ml.g5.xlarge"}, "compute.instanceType"),
        ({"instanceType": "ml.p5.48xlarge"}, "compute.instanceType"),
    ],
)
def test_pools_that_do_not_exist_or_offer_the_instance_type_are_refused(
    setup: Setup, compute: dict[str, Any], field: str
) -> None:
    error = _rejected(
        setup, ValidationFailed, setup.request(setup.dataset("iris"), compute=compute)
    )
    assert error.details[0]["field"] == field


def test_reconciliation_releases_what_ended_jobs_and_crashed_admissions_left_held(
    setup: Setup,
) -> None:
    ended = setup.submit()
    running = setup.submit(modelVersion="1.0.1")
    setup.run_to_training(ended.jobId)
    setup.run_to_training(running.jobId)
    setup.workflow.ended.add(str(ended.executionArn))  # its execution was stopped mid-way
    setup.compute.reserve(
        "trn-" + "f" * 24, "ml", ComputeRequirements(pool="gpu", instanceType="ml.g5.xlarge")
    )  # admission crashed after reserving
    setup.clock.current += timedelta(hours=1)
    result = setup.service.reconcile(timedelta(minutes=15))
    assert result == {
        "released": [ended.jobId, "trn-" + "f" * 24],
        "failed": [ended.jobId],
        "checkpointAgeSeconds": {},  # the running job is not in SageMaker's Training status
    }
    assert setup.service.get(ended.jobId).status is JobStatus.FAILED
    assert "reconciliation" in setup.service.get(ended.jobId).statusReason
    assert [r.jobId for r in setup.compute.open_reservations(10)] == [running.jobId]
    assert setup.service.reconcile(timedelta(minutes=15)) == {
        "released": [],
        "failed": [],
        "checkpointAgeSeconds": {},
    }


def test_a_fine_tune_records_its_parent_in_the_model_lineage(setup: Setup) -> None:
    parent = setup.finish(setup.submit())
    tune = setup.finish(
        setup.submit(modelVersion="1.1.0", parentModelId=parent.modelId, hyperparameters={})
    )
    model = setup.registry.get_model(str(tune.modelId))
    assert model.lineage.parentModels == (parent.modelId,)
    channels = [
        c["ChannelName"] for c in setup.sagemaker.created[tune.trainingJobName]["InputDataConfig"]
    ]
    assert channels == ["train", "parent"]


def test_a_failed_training_job_keeps_the_reason_the_log_tail_and_its_checkpoints(
    setup: Setup,
) -> None:
    job = setup.submit()
    setup.run_to_training(job.jobId)
    setup.sagemaker.fail(
        job.trainingJobName, "AlgorithmError: diverged, exit code: 1", {"checkpoint-2.json": b"c"}
    )
    setup.service.fail_job(job.jobId, None)
    failed = setup.service.get(job.jobId)
    assert failed.status is JobStatus.FAILED
    assert failed.failure is not None and failed.failure.reason.startswith("AlgorithmError")
    assert len(failed.failure.logTail) == 3
    assert [r.kind for r in failed.artifactRefs] == ["checkpoints"]


def test_a_step_error_is_recorded_as_the_failure_reason(setup: Setup) -> None:
    job = setup.submit()
    cause = json.dumps({"errorMessage": "pool exhausted", "errorType": "ServiceUnavailable"})
    setup.service.fail_job(job.jobId, {"Error": "ServiceUnavailable", "Cause": cause})
    assert setup.service.get(job.jobId).statusReason == "ServiceUnavailable: pool exhausted"


def test_cancelling_a_queued_job_stops_its_next_step_and_ends_cancelled(setup: Setup) -> None:
    job = setup.submit()
    assert setup.service.cancel(job.jobId, ENGINEER).status is JobStatus.CANCELLING
    with pytest.raises(JobCancelled):
        setup.service.validate(job.jobId)
    setup.service.fail_job(job.jobId, {"Error": "JobCancelled", "Cause": "{}"})
    assert setup.service.get(job.jobId).status is JobStatus.CANCELLED
    assert setup.sagemaker.created == {}


def test_cancelling_a_training_job_stops_sagemaker(setup: Setup) -> None:
    job = setup.submit()
    setup.run_to_training(job.jobId)
    setup.service.cancel(job.jobId, ENGINEER)
    assert setup.sagemaker.stopped == [job.trainingJobName]
    setup.service.fail_job(job.jobId, None)
    assert setup.service.get(job.jobId).status is JobStatus.CANCELLED


def test_finished_jobs_cannot_be_cancelled_and_never_change(setup: Setup) -> None:
    job = setup.finish(setup.submit())
    with pytest.raises(InvalidState):
        setup.service.cancel(job.jobId, ENGINEER)
    assert setup.service.fail_job(job.jobId, {"Error": "X", "Cause": "late"}) == {
        "status": "COMPLETED"
    }
    assert setup.service.get(job.jobId) == job


def test_a_reproduction_with_identical_outputs_is_attested_identical(setup: Setup) -> None:
    original = setup.finish(setup.submit())
    again = setup.service.reproduce(original.jobId, ENGINEER, "c-2")
    assert again.reproductionOf == original.jobId
    assert again.reproducibility == original.reproducibility
    done = setup.finish(again)
    report = done.reproduction
    assert report is not None and report.identical and report.differences == ()
    assert done.modelId is None  # a reproduction registers no model version
    assert verify_statement(
        ManifestSignature.model_validate(report.signature.model_dump()),
        report.statement.encode(),
        setup.signer.public_key(),
    )
    statement = json.loads(report.statement)
    assert statement["subject"][0]["digest"]["sha256"] == original.artifactRefs[0].rootDigest


def test_a_reproduction_with_different_outputs_lists_the_files_that_differ(setup: Setup) -> None:
    original = setup.finish(setup.submit())
    done = setup.finish(
        setup.service.reproduce(original.jobId, ENGINEER, "c-2"), model=b'{"w":[2]}'
    )
    report = done.reproduction
    assert report is not None and not report.identical
    assert [(d.path, d.change) for d in report.differences] == [("model.json", "changed")]


def test_only_completed_jobs_can_be_reproduced(setup: Setup) -> None:
    job = setup.submit()
    with pytest.raises(InvalidState):
        setup.service.reproduce(job.jobId, ENGINEER, "c")


def test_the_workflow_checks_the_policies_again_on_the_datasets_the_job_pinned(
    setup: Setup,
) -> None:
    dataset_id = setup.dataset("people", piiFlags=["email"])
    setup.promotions.approve_dataset(
        dataset_id, DatasetApprovalRequest(purposes=["training"], validDays=30, note="ok"), APPROVER
    )
    job = setup.service.submit(setup.request(dataset_id), ENGINEER, "c")
    setup.service.check_policy(job.jobId)
    assert setup.service.get(job.jobId).policyDecision["allowed"] is True
    del setup.repo.dataset_approvals[dataset_id]  # the approval is withdrawn before start
    with pytest.raises(PolicyDenied):
        setup.service.check_policy(job.jobId)
