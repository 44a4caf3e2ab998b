"""Interfaces the services depend on. Adapters implement them; tests use fakes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from modelops.domain.entities import (
    Artifact,
    Dataset,
    LineageNode,
    ModelStatus,
    ModelVersion,
    UploadSession,
)
from modelops.domain.promotion import (
    ApproverKey,
    DatasetApproval,
    FamilyPolicy,
    Promotion,
    StageChange,
)

if TYPE_CHECKING:
    from modelops.contracts.watermark import WatermarkRecord
    from modelops.domain.evaluation import EvaluationRecord
    from modelops.domain.governance import SanitizationRun
    from modelops.domain.ledger import Checkpoint, LedgerRecord
    from modelops.domain.monitoring import (
        DriftAlert,
        DriftBaseline,
        DriftFinding,
        GroundTruth,
        Quarantine,
        RetrainProposal,
    )
    from modelops.domain.pools import QuotaDenial, Reservation, UsageRecord
    from modelops.domain.serving import Autoscaling, DeploymentRecord, VariantStats
    from modelops.domain.training import ComputeRequirements, TrainingJob


class AlreadyExists(Exception):
    """The item's key is taken (a conditional put failed)."""


class VersionTaken(Exception):
    """Another writer took the dataset version number first."""


class SequenceTaken(Exception):
    """Another writer appended at this seq of the ledger stream first."""


class UnreadableEntry(Exception):
    """A stored ledger record or checkpoint does not parse (it was edited in storage)."""

    def __init__(
        self, stream: str, message: str, *, seq: int | None = None, checkpoint: int | None = None
    ) -> None:
        super().__init__(message)
        self.stream = stream
        self.message = message
        self.seq = seq
        self.checkpoint = checkpoint


class MissingReferences(Exception):
    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = list(ids)


T = TypeVar("T")


class Page(Generic[T]):
    def __init__(self, items: list[T], next_token: str | None) -> None:
        self.items = items
        self.next_token = next_token


class Clock(Protocol):
    def now(self) -> datetime: ...


class BlobStore(Protocol):
    """Object storage for artifact bytes (S3)."""

    def presign_put(self, key: str, expires_s: int, sha256: str | None = None) -> str:
        """A PUT URL; with ``sha256`` (hex), the PUT must declare it and S3 refuses a body
        that hashes otherwise."""
        ...

    def checked_size(self, key: str) -> int | None:
        """The object's size if S3 verified a SHA-256 on its PUT (without reading it);
        None if absent or put without one."""
        ...

    def start_multipart(self, key: str) -> str: ...
    def presign_part(self, key: str, upload_id: str, part_number: int, expires_s: int) -> str: ...
    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Raises ValueError when the parts are not a valid, complete upload."""
        ...

    def sha256_of(self, key: str) -> tuple[str, int] | None:
        """SHA-256 hex and size of the object's bytes, read once; None if absent."""
        ...

    def exists(self, key: str) -> bool: ...
    def copy(self, source_key: str, target_key: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def presign_get(self, key: str, expires_s: int, filename: str) -> str: ...
    def put_bytes(self, key: str, data: bytes, content_type: str) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def download(self, key: str, path: Path) -> bool:
        """Write the object to ``path``; False if there is no such object."""
        ...

    def upload(self, path: Path, key: str) -> None: ...
    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        ...

    def modified_times(self, prefix: str) -> dict[str, datetime]:
        """Every key under ``prefix`` with when it was last written."""
        ...


class RegistryRepository(Protocol):
    def create_upload(self, session: UploadSession) -> None: ...
    def get_upload(self, upload_id: str) -> UploadSession | None: ...
    def finish_upload(self, session: UploadSession) -> None:
        """Store the terminal state; only an OPEN session may change (else AlreadyExists)."""
        ...

    def create_artifact(self, artifact: Artifact) -> None:
        """Raises AlreadyExists if the id is taken (same content by construction)."""
        ...

    def get_artifact(self, artifact_id: str) -> Artifact | None: ...

    def latest_dataset_version(self, name: str) -> int: ...
    def create_dataset(
        self, dataset: Dataset, node: LineageNode, sources: Sequence[LineageNode]
    ) -> None:
        """Atomically: dataset, its version slot, lineage node, edges, source nodes.

        Raises AlreadyExists, VersionTaken or MissingReferences (parents that do not exist).
        """
        ...

    def get_dataset(self, dataset_id: str) -> Dataset | None: ...
    def list_datasets(self, name: str | None, limit: int, token: str | None) -> Page[Dataset]: ...

    def create_model(self, model: ModelVersion, node: LineageNode) -> None:
        """Atomically: model, lineage node, edges. Raises AlreadyExists or MissingReferences."""
        ...

    def get_model(self, model_id: str) -> ModelVersion | None: ...
    def list_models(
        self,
        family: str | None,
        status: ModelStatus | None,
        limit: int,
        token: str | None,
        *,
        family_prefix: str | None = None,
    ) -> Page[ModelVersion]:
        """Versions in (family, semantic version) order; ``family`` is exact,
        ``family_prefix`` matches every family that starts with it."""
        ...

    def get_nodes(self, node_ids: Sequence[str]) -> dict[str, LineageNode]:
        """Batch read of lineage nodes: one round trip per 100 ids."""
        ...

    def children_of(self, node_id: str, limit: int) -> list[str]:
        """Ids of the nodes that name ``node_id`` as a parent (one query on the edges)."""
        ...


class Signer(Protocol):
    """An asymmetric key that signs without revealing its private half (KMS)."""

    @property
    def key_id(self) -> str: ...

    @property
    def algorithm(self) -> str: ...

    def sign(self, message: bytes) -> bytes:
        """Ed25519 keys sign the message itself (1-4096 bytes); ECDSA keys sign a SHA-256
        digest given as the message (32 bytes)."""
        ...

    def public_key(self) -> bytes:
        """DER SubjectPublicKeyInfo."""
        ...


class PromotionPending(Exception):
    """Another promotion of this model is waiting for approvals."""

    def __init__(self, promotion_id: str) -> None:
        super().__init__(promotion_id)
        self.promotion_id = promotion_id


class StaleWrite(Exception):
    """What the write was conditioned on has changed (a concurrent writer won)."""


class PromotionRepository(Protocol):
    def get_family_policy(self, family: str) -> FamilyPolicy | None: ...
    def put_family_policy(self, policy: FamilyPolicy) -> None: ...
    def put_approver_key(self, key: ApproverKey) -> None:
        """Raises AlreadyExists when the key id is registered."""
        ...

    def get_approver_key(self, key_id: str) -> ApproverKey | None: ...
    def put_dataset_approval(self, approval: DatasetApproval) -> None: ...
    def get_dataset_approval(self, dataset_id: str) -> DatasetApproval | None: ...

    def create_pending_promotion(self, promotion: Promotion) -> None:
        """Raises PromotionPending when the model already has a pending promotion."""
        ...

    def get_promotion(self, promotion_id: str) -> Promotion | None: ...
    def save_promotion(self, promotion: Promotion, expected_revision: int) -> None:
        """Raises StaleWrite unless the stored promotion is at ``expected_revision``."""
        ...

    def move_stages(
        self,
        moves: Sequence[tuple[ModelVersion, ModelStatus]],
        changes: Sequence[StageChange],
        promotion: Promotion | None,
        expected_revision: int | None,
    ) -> None:
        """Atomically: each model as it will be (conditioned on the status it must still
        have), the stage changes, and the promotion record (created when expected_revision is
        None, else conditioned on it) with the model's pending marker cleared. Raises
        StaleWrite."""
        ...

    def stage_changes(self, family: str) -> list[StageChange]: ...
    def promotions_of(self, model_id: str) -> list[Promotion]:
        """Every promotion of the model, oldest first."""
        ...


class LedgerStore(Protocol):
    """The audit ledger: streams of hash-chained records and their signed checkpoints."""

    def append(self, record: LedgerRecord) -> None:
        """Store ``record`` at its seq; raises SequenceTaken if that seq is taken."""
        ...

    def head(self, stream: str) -> LedgerRecord | None:
        """The stream's last record (a consistent read), None if it has none."""
        ...

    def records(self, stream: str, from_seq: int, limit: int) -> Page[LedgerRecord]:
        """Records from ``from_seq`` on in seq order; ``next_token`` is the next from_seq.
        Raises UnreadableEntry for an item that is not a record."""
        ...

    def streams(self) -> list[str]:
        """Every stream that has records or checkpoints, sorted."""
        ...

    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store ``checkpoint`` (index and write-once copy). Raises AlreadyExists if another
        checkpoint starts at its fromSeq; storing the same checkpoint again completes a
        write that failed half-way."""
        ...

    def latest_checkpoint(self, stream: str) -> Checkpoint | None: ...

    def checkpoints(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None
    ) -> list[Checkpoint]:
        """The write-once copies that cover any of from_seq..to_seq (None: every one from
        from_seq on), in order: what verification trusts. Raises UnreadableEntry."""
        ...


class EventPublisher(Protocol):
    """Events out to other systems (EventBridge)."""

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None: ...


class TrainingRepository(Protocol):
    def create_training_job(self, job: TrainingJob) -> None:
        """Raise AlreadyExists if the job id is taken."""
        ...

    def get_training_job(self, job_id: str) -> TrainingJob | None: ...
    def save_training_job(self, job: TrainingJob, expected_revision: int) -> None:
        """Write ``job`` if the stored revision is ``expected_revision``; else StaleWrite."""
        ...

    def list_training_jobs(
        self, family: str | None, limit: int, token: str | None
    ) -> Page[TrainingJob]: ...


class EvaluationRepository(Protocol):
    def create_evaluation(self, record: EvaluationRecord) -> None:
        """Raise AlreadyExists if the evaluation id is taken."""
        ...

    def get_evaluation(self, evaluation_id: str) -> EvaluationRecord | None: ...
    def save_evaluation(self, record: EvaluationRecord, expected_revision: int) -> None:
        """Write ``record`` if the stored revision is ``expected_revision``; else StaleWrite."""
        ...

    def evaluations_of(self, model_id: str) -> list[EvaluationRecord]:
        """The model's evaluations, oldest first."""
        ...


class AsyncInvoker(Protocol):
    def invoke(self, function: str, payload: Mapping[str, Any]) -> None:
        """Invoke ``function`` (a platform function name) asynchronously."""
        ...


class SanitizationRepository(Protocol):
    def create_sanitization(self, run: SanitizationRun) -> None:
        """Raise AlreadyExists if the run id is taken."""
        ...

    def get_sanitization(self, run_id: str) -> SanitizationRun | None: ...
    def save_sanitization(self, run: SanitizationRun) -> None:
        """Record a run's outcome (only the sanitizer writes after creation)."""
        ...


class WatermarkRepository(Protocol):
    """The watermark registry: one record per watermarked model version."""

    def put_watermark(self, record: WatermarkRecord) -> None:
        """Store the record (a retry stores the same record again)."""
        ...

    def get_watermark(self, model_id: str) -> WatermarkRecord | None: ...
    def watermarks_of(self, family: str) -> list[WatermarkRecord]:
        """Every watermarked version of ``family``, oldest version first."""
        ...


class MonitoringRepository(Protocol):
    """Drift baselines, findings, alerts, retrain proposals, quarantines, labels."""

    def put_baseline(self, baseline: DriftBaseline) -> None: ...
    def get_baseline(self, model_id: str) -> DriftBaseline | None: ...
    def create_finding(self, finding: DriftFinding) -> None: ...
    def get_finding(self, finding_id: str) -> DriftFinding | None: ...
    def findings_of(self, model_id: str, limit: int) -> list[DriftFinding]:
        """The model's findings, newest first."""
        ...

    def create_alert(self, alert: DriftAlert) -> None:
        """Raise AlreadyExists if the alert id is taken (one alert per finding)."""
        ...

    def get_alert(self, alert_id: str) -> DriftAlert | None: ...
    def alerts_of(self, model_id: str, limit: int) -> list[DriftAlert]:
        """Newest first."""
        ...

    def create_proposal(self, proposal: RetrainProposal) -> None: ...
    def get_proposal(self, proposal_id: str) -> RetrainProposal | None: ...
    def save_proposal(self, proposal: RetrainProposal, expected_revision: int) -> None:
        """Else StaleWrite."""
        ...

    def proposals_of(self, model_id: str, limit: int) -> list[RetrainProposal]: ...
    def get_quarantine(self, model_id: str) -> Quarantine | None: ...
    def save_quarantine(self, quarantine: Quarantine, expected_revision: int | None) -> None:
        """Create (``expected_revision`` None: AlreadyExists if there is one) or replace the
        revision read (else StaleWrite)."""
        ...

    def put_labels(self, model_id: str, labels: Sequence[GroundTruth]) -> None: ...
    def get_labels(self, model_id: str, inference_ids: Sequence[str]) -> dict[str, str]:
        """inferenceId -> label for those that were posted."""
        ...


class TrainingBackend(Protocol):
    """SageMaker training jobs (CreateTrainingJob's request shape, DescribeTrainingJob's
    response shape)."""

    def create(self, request: Mapping[str, Any]) -> None:
        """Raise AlreadyExists if a job of that name exists."""
        ...

    def describe(self, name: str) -> dict[str, Any] | None: ...
    def stop(self, name: str) -> None: ...


class Workflow(Protocol):
    """The training state machine."""

    def execution_arn(self, name: str) -> str: ...
    def start(self, name: str, payload: Mapping[str, Any]) -> None:
        """Start an execution called ``name`` (a retry with the same name is a no-op)."""
        ...

    def running(self, execution_arn: str) -> bool:
        """Whether the execution is still running (False if it does not exist)."""
        ...


class ImageRegistry(Protocol):
    def resolve(self, uri: str) -> tuple[str, str] | None:
        """``(repository@sha256:digest, sha256:digest)`` of an image URI, None if unknown."""
        ...


class LogReader(Protocol):
    def tail(self, group: str, stream_prefix: str, lines: int) -> list[str]:
        """The last ``lines`` messages of the newest stream starting with ``stream_prefix``."""
        ...


class ReservationRefused(Exception):
    """A reservation would pass a quota; ``denial`` says which and what is left."""

    def __init__(self, denial: QuotaDenial) -> None:
        super().__init__(denial.message())
        self.denial = denial


class ComputeAllocator(Protocol):
    """The Resource Allocator: quota reservations per pool and team."""

    def reserve(self, job_id: str, team: str, requirements: ComputeRequirements) -> None:
        """Hold the job's worst case against its team's quota and its pool's concurrency,
        atomically; ReservationRefused if either would be passed. Reserving again is a no-op."""
        ...

    def release(self, job_id: str, used_gpu_hours: Decimal) -> None:
        """Turn the job's reservation into what it used; releasing again is a no-op."""
        ...

    def open_reservations(self, limit: int) -> list[Reservation]:
        """Reservations not yet released, oldest first (for reconciliation)."""
        ...


class UsageLedger(Protocol):
    def put_usage(self, record: UsageRecord) -> None:
        """Write once; raise AlreadyExists if the job's record exists."""
        ...

    def get_usage(self, job_id: str) -> UsageRecord | None: ...
    def usage_between(self, start: datetime, end: datetime) -> list[UsageRecord]: ...
    def usage_of_model(self, model_id: str) -> list[UsageRecord]: ...
    def committed(self, pool: str, team: str, period: str) -> Decimal: ...
    def active_gpus(self, pool: str) -> int: ...


class DeploymentRepository(Protocol):
    def create_deployment(self, record: DeploymentRecord) -> None: ...
    def get_deployment(self, deploy_id: str) -> DeploymentRecord | None: ...
    def save_deployment(self, record: DeploymentRecord, expected_revision: int) -> None:
        """Write if the stored revision is ``expected_revision``; else StaleWrite."""
        ...

    def live_deployment(self, endpoint: str) -> str | None:
        """The deployment serving the endpoint (its last promoted one)."""
        ...

    def set_live_deployment(self, endpoint: str, deploy_id: str) -> None: ...
    def live_deployments(self) -> list[tuple[str, str]]:
        """(endpoint, deployId) of every endpoint's live deployment."""
        ...


class EndpointBackend(Protocol):
    """SageMaker hosting: models, endpoint configs, endpoints, weights, autoscaling."""

    def ensure_model(
        self,
        name: str,
        image: str,
        model_data_url: str,
        role_arn: str,
        environment: Mapping[str, str],
    ) -> None:
        """Create the model once; ``environment`` tells its container what it serves
        (answered back as request-level provenance)."""
        ...

    def create_endpoint_config(self, request: Mapping[str, Any]) -> None: ...
    def deploy(self, endpoint: str, config: str) -> None:
        """Create the endpoint with ``config``, or switch an existing one to it."""
        ...

    def describe(self, endpoint: str) -> dict[str, Any] | None: ...
    def set_weights(self, endpoint: str, weights: Mapping[str, float]) -> None: ...
    def autoscale(self, endpoint: str, variant: str, autoscaling: Autoscaling) -> None: ...


class ServingVariants(Protocol):
    def serving(self, endpoint: str) -> dict[str, str]:
        """Production variant name -> the model id it serves now ({} without the endpoint)."""
        ...


class ServingTelemetry(Protocol):
    def variant_stats(
        self, endpoint: str, variant: str, start: datetime, end: datetime
    ) -> VariantStats:
        """Invocations, 5xx errors and p95 latency from CloudWatch; predicted labels from
        data capture."""
        ...


if TYPE_CHECKING:
    from modelops.domain.retention import ArtifactRetention, HoldKind, LegalHold, Tombstone


class RetentionRepository(Protocol):
    """Tombstones, legal holds and artifacts' retention states (modelops.services.retention)."""

    def get_tombstone(self, tombstone_id: str) -> Tombstone | None: ...
    def save_tombstone(self, tombstone: Tombstone) -> None: ...
    def list_tombstones(self, limit: int) -> list[Tombstone]:
        """Newest first."""
        ...

    def put_hold(self, hold: LegalHold) -> None: ...
    def get_hold(self, kind: HoldKind, target_id: str) -> LegalHold | None: ...
    def delete_hold(self, kind: HoldKind, target_id: str) -> bool:
        """True if there was one."""
        ...

    def holds(self, targets: Sequence[tuple[HoldKind, str]]) -> list[LegalHold]: ...
    def list_holds(self, limit: int) -> list[LegalHold]: ...
    def get_artifact_retention(self, artifact_id: str) -> ArtifactRetention | None: ...
    def save_artifact_retention(self, state: ArtifactRetention) -> None: ...
    def blob_holders(self) -> dict[str, set[str]]:
        """SHA-256 -> ids of the artifacts in the artifact bucket, not expired, that hold a
        file with that content (blobs are content-addressed and shared)."""
        ...


class RetentionObjects(Protocol):
    """The artifact bucket as the retention job deletes from it."""

    def list_keys(self, prefix: str) -> list[str]: ...
    def purge(self, key: str) -> int:
        """Delete every version of ``key`` (and its delete markers); how many there were."""
        ...
