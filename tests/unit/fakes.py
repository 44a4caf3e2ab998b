"""In-memory stand-ins for the ports, with the same atomicity the adapters promise."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

from localcloud.integrations import validate_event
from modelops.contracts.events import EventDetail
from modelops.domain import compute
from modelops.domain.entities import (
    Artifact,
    Dataset,
    LineageNode,
    ModelStatus,
    ModelVersion,
    UploadSession,
    UploadStatus,
)
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
from modelops.domain.pools import (
    PoolConfig,
    QuotaDenial,
    Reservation,
    UsageRecord,
    period_of,
    reserved_gpu_hours,
)
from modelops.domain.promotion import (
    ApproverKey,
    DatasetApproval,
    FamilyPolicy,
    Promotion,
    StageChange,
)
from modelops.domain.serving import DeploymentRecord
from modelops.domain.training import ComputeRequirements, TrainingJob
from modelops.events import Events
from modelops.ports import (
    AlreadyExists,
    MissingReferences,
    Page,
    PromotionPending,
    ReservationRefused,
    SequenceTaken,
    StaleWrite,
    VersionTaken,
)


class FixedClock:
    def __init__(self) -> None:
        self.current = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


class MemoryBlobStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.multipart: dict[str, dict[int, bytes]] = {}
        self.declared: dict[str, str] = {}  # key -> SHA-256 a presigned PUT must carry
        self.checksums: dict[str, str] = {}  # key -> SHA-256 verified at PUT
        self.created = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
        self.written: dict[str, datetime] = {}

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def presign_put(self, key: str, expires_s: int, sha256: str | None = None) -> str:
        if sha256 is not None:
            self.declared[key] = sha256
        return f"memory://put/{key}"

    def put_declared(self, key: str, data: bytes) -> None:
        """A PUT to a URL with a declared SHA-256, as S3 answers it: refused if it differs."""
        if hashlib.sha256(data).hexdigest() != self.declared.get(key):
            raise ValueError("BadDigest")
        self.objects[key] = data
        self.checksums[key] = self.declared[key]

    def checked_size(self, key: str) -> int | None:
        if key not in self.objects or key not in self.checksums:
            return None
        return len(self.objects[key])

    def start_multipart(self, key: str) -> str:
        upload_id = f"mpu-{len(self.multipart)}"
        self.multipart[upload_id] = {}
        return upload_id

    def presign_part(self, key: str, upload_id: str, part_number: int, expires_s: int) -> str:
        return f"memory://part/{key}/{upload_id}/{part_number}"

    def upload_part(self, upload_id: str, number: int, data: bytes) -> str:
        self.multipart[upload_id][number] = data
        return hashlib.md5(data).hexdigest()

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        stored = self.multipart.get(upload_id)
        if stored is None:
            raise ValueError("NoSuchUpload")
        for number, etag in parts:
            if number not in stored or hashlib.md5(stored[number]).hexdigest() != etag:
                raise ValueError(f"InvalidPart: {number}")
        self.objects[key] = b"".join(stored[n] for n, _ in parts)
        del self.multipart[upload_id]

    def sha256_of(self, key: str) -> tuple[str, int] | None:
        data = self.objects.get(key)
        return None if data is None else (hashlib.sha256(data).hexdigest(), len(data))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def copy(self, source_key: str, target_key: str) -> None:
        self.objects[target_key] = self.objects[source_key]

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def presign_get(self, key: str, expires_s: int, filename: str) -> str:
        return f"memory://get/{key}?filename={filename}"

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    def get_bytes(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def download(self, key: str, path: Path) -> bool:
        if key not in self.objects:
            return False
        path.write_bytes(self.objects[key])
        return True

    def upload(self, path: Path, key: str) -> None:
        self.objects[key] = path.read_bytes()

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(self.modified_times(prefix))

    def modified_times(self, prefix: str) -> dict[str, datetime]:
        """Keys under ``prefix``; when each was written is ``written[key]`` if a test set
        it, else when this store was made."""
        return {
            key: self.written.get(key, self.created)
            for key in self.objects
            if key.startswith(prefix)
        }


R = TypeVar("R", EvaluationRecord, DriftFinding, DriftAlert, RetrainProposal, Quarantine)


class Records(Generic[R]):
    """Records keyed by id: create (AlreadyExists), get, conditional save (StaleWrite)."""

    def __init__(self, key: Callable[[R], str]) -> None:
        self._lock = threading.Lock()
        self._key = key
        self.items: dict[str, R] = {}

    def create(self, record: R) -> None:
        with self._lock:
            if self._key(record) in self.items:
                raise AlreadyExists(self._key(record))
            self.items[self._key(record)] = record

    def get(self, record_id: str) -> R | None:
        return self.items.get(record_id)

    def save(self, record: R, expected_revision: int | None) -> None:
        if expected_revision is None:
            self.create(record)
            return
        with self._lock:
            stored = self.items.get(self._key(record))
            if stored is None or getattr(stored, "revision", None) != expected_revision:
                raise StaleWrite(self._key(record))
            self.items[self._key(record)] = record

    def where(self, model_id: str, order: Callable[[R], Any], newest_first: bool) -> list[R]:
        found = [r for r in self.items.values() if getattr(r, "modelId", None) == model_id]
        return sorted(found, key=order, reverse=newest_first)


class MemoryRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.uploads: dict[str, UploadSession] = {}
        self.artifacts: dict[str, Artifact] = {}
        self.datasets: dict[str, Dataset] = {}
        self.versions: dict[tuple[str, int], str] = {}
        self.models: dict[str, ModelVersion] = {}
        self.nodes: dict[str, LineageNode] = {}
        self.node_reads = 0
        self.training_jobs: dict[str, TrainingJob] = {}

    def create_upload(self, session: UploadSession) -> None:
        with self._lock:
            if session.uploadId in self.uploads:
                raise AlreadyExists(session.uploadId)
            self.uploads[session.uploadId] = session

    def get_upload(self, upload_id: str) -> UploadSession | None:
        return self.uploads.get(upload_id)

    def finish_upload(self, session: UploadSession) -> None:
        with self._lock:
            if self.uploads[session.uploadId].status is not UploadStatus.OPEN:
                raise AlreadyExists(session.uploadId)
            self.uploads[session.uploadId] = session

    def create_training_job(self, job: TrainingJob) -> None:
        with self._lock:
            if job.jobId in self.training_jobs:
                raise AlreadyExists(job.jobId)
            self.training_jobs[job.jobId] = job

    def get_training_job(self, job_id: str) -> TrainingJob | None:
        return self.training_jobs.get(job_id)

    def save_training_job(self, job: TrainingJob, expected_revision: int) -> None:
        with self._lock:
            if self.training_jobs[job.jobId].revision != expected_revision:
                raise StaleWrite(job.jobId)
            self.training_jobs[job.jobId] = job

    def list_training_jobs(
        self, family: str | None, limit: int, token: str | None
    ) -> Page[TrainingJob]:
        jobs = sorted(self.training_jobs.values(), key=lambda j: (j.modelFamily, j.createdAt))
        return Page([j for j in jobs if family in (None, j.modelFamily)][:limit], None)

    def create_artifact(self, artifact: Artifact) -> None:
        with self._lock:
            if artifact.artifactId in self.artifacts:
                raise AlreadyExists(artifact.artifactId)
            self.artifacts[artifact.artifactId] = artifact

    def get_artifact(self, artifact_id: str) -> Artifact | None:
        return self.artifacts.get(artifact_id)

    def latest_dataset_version(self, name: str) -> int:
        return max((v for n, v in self.versions if n == name), default=0)

    def _check_parents(self, node: LineageNode, new: Sequence[LineageNode]) -> None:
        known = set(self.nodes) | {n.nodeId for n in new}
        missing = [p for p in node.parents if p not in known]
        if missing:
            raise MissingReferences(missing)

    def create_dataset(
        self, dataset: Dataset, node: LineageNode, sources: Sequence[LineageNode]
    ) -> None:
        with self._lock:
            self._check_parents(node, sources)
            if dataset.datasetId in self.datasets:
                raise AlreadyExists(dataset.datasetId)
            if (dataset.name, dataset.version) in self.versions:
                raise VersionTaken(dataset.datasetId)
            self.datasets[dataset.datasetId] = dataset
            self.versions[(dataset.name, dataset.version)] = dataset.datasetId
            for source in sources:
                self.nodes[source.nodeId] = source
            self.nodes[node.nodeId] = node

    def get_dataset(self, dataset_id: str) -> Dataset | None:
        return self.datasets.get(dataset_id)

    def list_datasets(self, name: str | None, limit: int, token: str | None) -> Page[Dataset]:
        items = sorted(
            (d for d in self.datasets.values() if name is None or d.name == name),
            key=lambda d: (d.name, d.version),
        )
        return _page(items, limit, token)

    def create_model(self, model: ModelVersion, node: LineageNode) -> None:
        with self._lock:
            self._check_parents(node, [])
            if model.modelId in self.models:
                raise AlreadyExists(model.modelId)
            self.models[model.modelId] = model
            self.nodes[node.nodeId] = node

    def get_model(self, model_id: str) -> ModelVersion | None:
        return self.models.get(model_id)

    def list_models(
        self,
        family: str | None,
        status: ModelStatus | None,
        limit: int,
        token: str | None,
        *,
        family_prefix: str | None = None,
    ) -> Page[ModelVersion]:
        items = [
            m
            for m in sorted(self.models.values(), key=lambda m: (m.family, m.version))
            if (family is None or m.family == family)
            and m.family.startswith(family_prefix or "")
            and (status is None or m.status == status)
        ]
        return _page(items, limit, token)

    def get_nodes(self, node_ids: Sequence[str]) -> dict[str, LineageNode]:
        assert len(node_ids) <= 100, "a batch read takes at most 100 keys"
        self.node_reads += 1
        return {n: self.nodes[n] for n in node_ids if n in self.nodes}

    def children_of(self, node_id: str, limit: int) -> list[str]:
        return [n.nodeId for n in self.nodes.values() if node_id in n.parents][:limit]


def _page(items: list[Any], limit: int, token: str | None) -> Page[Any]:
    start = int(token or 0)
    end = start + limit
    return Page(items[start:end], str(end) if end < len(items) else None)


class MemoryPlatform(MemoryRegistry):
    """The registry plus promotions, as the single-table adapter implements both."""

    def __init__(self) -> None:
        super().__init__()
        self.sanitizations: dict[str, SanitizationRun] = {}
        self.policies: dict[str, FamilyPolicy] = {}
        self.approver_keys: dict[str, ApproverKey] = {}
        self.dataset_approvals: dict[str, DatasetApproval] = {}
        self.promotions: dict[str, Promotion] = {}
        self.pending: dict[str, str] = {}
        self.changes: list[StageChange] = []
        self.evaluations: Records[EvaluationRecord] = Records(lambda r: r.evaluationId)
        self.baselines: dict[str, DriftBaseline] = {}
        self.findings: Records[DriftFinding] = Records(lambda r: r.findingId)
        self.alerts: Records[DriftAlert] = Records(lambda r: r.alertId)
        self.proposals: Records[RetrainProposal] = Records(lambda r: r.proposalId)
        self.quarantines: Records[Quarantine] = Records(lambda r: r.modelId)
        self.labels: dict[tuple[str, str], str] = {}

    # sanitization runs

    def create_sanitization(self, run: SanitizationRun) -> None:
        if run.runId in self.sanitizations:
            raise AlreadyExists(run.runId)
        self.sanitizations[run.runId] = run

    def get_sanitization(self, run_id: str) -> SanitizationRun | None:
        return self.sanitizations.get(run_id)

    def save_sanitization(self, run: SanitizationRun) -> None:
        self.sanitizations[run.runId] = run

    # evaluations and drift (the same single table in DynamoDB)

    def create_evaluation(self, record: EvaluationRecord) -> None:
        self.evaluations.create(record)

    def get_evaluation(self, evaluation_id: str) -> EvaluationRecord | None:
        return self.evaluations.get(evaluation_id)

    def save_evaluation(self, record: EvaluationRecord, expected_revision: int) -> None:
        self.evaluations.save(record, expected_revision)

    def evaluations_of(self, model_id: str) -> list[EvaluationRecord]:
        return self.evaluations.where(model_id, lambda r: r.createdAt, newest_first=False)

    def put_baseline(self, baseline: DriftBaseline) -> None:
        self.baselines[baseline.modelId] = baseline

    def get_baseline(self, model_id: str) -> DriftBaseline | None:
        return self.baselines.get(model_id)

    def create_finding(self, finding: DriftFinding) -> None:
        self.findings.create(finding)

    def get_finding(self, finding_id: str) -> DriftFinding | None:
        return self.findings.get(finding_id)

    def findings_of(self, model_id: str, limit: int) -> list[DriftFinding]:
        return self.findings.where(model_id, lambda r: r.windowEnd, newest_first=True)[:limit]

    def create_alert(self, alert: DriftAlert) -> None:
        self.alerts.create(alert)

    def get_alert(self, alert_id: str) -> DriftAlert | None:
        return self.alerts.get(alert_id)

    def alerts_of(self, model_id: str, limit: int) -> list[DriftAlert]:
        return self.alerts.where(model_id, lambda r: r.raisedAt, newest_first=True)[:limit]

    def create_proposal(self, proposal: RetrainProposal) -> None:
        self.proposals.create(proposal)

    def get_proposal(self, proposal_id: str) -> RetrainProposal | None:
        return self.proposals.get(proposal_id)

    def save_proposal(self, proposal: RetrainProposal, expected_revision: int) -> None:
        self.proposals.save(proposal, expected_revision)

    def proposals_of(self, model_id: str, limit: int) -> list[RetrainProposal]:
        return self.proposals.where(model_id, lambda r: r.createdAt, newest_first=True)[:limit]

    def get_quarantine(self, model_id: str) -> Quarantine | None:
        return self.quarantines.get(model_id)

    def save_quarantine(self, quarantine: Quarantine, expected_revision: int | None) -> None:
        self.quarantines.save(quarantine, expected_revision)

    def put_labels(self, model_id: str, labels: Sequence[GroundTruth]) -> None:
        for label in labels:
            self.labels[(model_id, label.inferenceId)] = label.label

    def get_labels(self, model_id: str, inference_ids: Sequence[str]) -> dict[str, str]:
        return {
            i: self.labels[(model_id, i)] for i in inference_ids if (model_id, i) in self.labels
        }

    def get_family_policy(self, family: str) -> FamilyPolicy | None:
        return self.policies.get(family)

    def put_family_policy(self, policy: FamilyPolicy) -> None:
        self.policies[policy.family] = policy

    def put_approver_key(self, key: ApproverKey) -> None:
        with self._lock:
            if key.keyId in self.approver_keys:
                raise AlreadyExists(key.keyId)
            self.approver_keys[key.keyId] = key

    def get_approver_key(self, key_id: str) -> ApproverKey | None:
        return self.approver_keys.get(key_id)

    def put_dataset_approval(self, approval: DatasetApproval) -> None:
        self.dataset_approvals[approval.datasetId] = approval

    def get_dataset_approval(self, dataset_id: str) -> DatasetApproval | None:
        return self.dataset_approvals.get(dataset_id)

    def create_pending_promotion(self, promotion: Promotion) -> None:
        with self._lock:
            if promotion.modelId in self.pending:
                raise PromotionPending(self.pending[promotion.modelId])
            self.pending[promotion.modelId] = promotion.promotionId
            self.promotions[promotion.promotionId] = promotion

    def get_promotion(self, promotion_id: str) -> Promotion | None:
        return self.promotions.get(promotion_id)

    def save_promotion(self, promotion: Promotion, expected_revision: int) -> None:
        with self._lock:
            if self.promotions[promotion.promotionId].revision != expected_revision:
                raise StaleWrite(promotion.promotionId)
            self.promotions[promotion.promotionId] = promotion

    def move_stages(
        self,
        moves: Sequence[tuple[ModelVersion, ModelStatus]],
        changes: Sequence[StageChange],
        promotion: Promotion | None,
        expected_revision: int | None,
    ) -> None:
        with self._lock:
            if any(self.models[m.modelId].status is not expected for m, expected in moves):
                raise StaleWrite("model status changed")
            if promotion is not None and expected_revision is not None:
                if self.promotions[promotion.promotionId].revision != expected_revision:
                    raise StaleWrite(promotion.promotionId)
                self.pending.pop(promotion.modelId, None)
            for model, _ in moves:
                self.models[model.modelId] = model
            self.changes.extend(changes)
            if promotion is not None:
                self.promotions[promotion.promotionId] = promotion

    def stage_changes(self, family: str) -> list[StageChange]:
        return [c for c in self.changes if c.family == family]

    def promotions_of(self, model_id: str) -> list[Promotion]:
        found = [p for p in self.promotions.values() if p.modelId == model_id]
        return sorted(found, key=lambda p: p.requestedAt)


class MemorySigner:
    """An Ed25519 key held in memory, standing in for the KMS key."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.generate()

    @property
    def key_id(self) -> str:
        return "arn:aws:kms:us-east-1:123456789012:key/memory"

    @property
    def algorithm(self) -> str:
        return "ED25519_SHA_512"

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class MemoryLedgerStore:
    """The ledger in memory: a conditional put per seq and per checkpoint start, like the
    DynamoDB adapter. ``conflicts`` counts appends refused because the seq was taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records_by_stream: dict[str, dict[int, LedgerRecord]] = {}
        self.indexed: dict[str, dict[int, Checkpoint]] = {}  # stream -> fromSeq -> checkpoint
        self.archived: dict[str, dict[int, Checkpoint]] = {}  # stream -> toSeq -> checkpoint
        self.conflicts = 0
        self.before_append: Any = None  # a hook tests use to interleave another writer

    def append(self, record: LedgerRecord) -> None:
        if self.before_append is not None:
            hook, self.before_append = self.before_append, None
            hook(record)
        with self._lock:
            stream = self.records_by_stream.setdefault(record.stream, {})
            if record.seq in stream:
                self.conflicts += 1
                raise SequenceTaken(f"{record.stream} {record.seq}")
            stream[record.seq] = record

    def head(self, stream: str) -> LedgerRecord | None:
        with self._lock:
            records = self.records_by_stream.get(stream, {})
            return records[max(records)] if records else None

    def records(self, stream: str, from_seq: int, limit: int) -> Page[LedgerRecord]:
        with self._lock:
            stored = dict(self.records_by_stream.get(stream, {}))
        seqs = sorted(seq for seq in stored if seq >= from_seq)
        page = [stored[seq] for seq in seqs[:limit]]
        more = len(seqs) > limit
        return Page(page, str(page[-1].seq + 1) if more else None)

    def streams(self) -> list[str]:
        return sorted(set(self.records_by_stream) | set(self.archived))

    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._lock:
            indexed = self.indexed.setdefault(checkpoint.stream, {})
            existing = indexed.get(checkpoint.fromSeq)
            if existing is not None and existing != checkpoint:
                raise AlreadyExists(f"{checkpoint.stream} {checkpoint.fromSeq}")
            indexed[checkpoint.fromSeq] = checkpoint
            self.archived.setdefault(checkpoint.stream, {})[checkpoint.toSeq] = checkpoint

    def latest_checkpoint(self, stream: str) -> Checkpoint | None:
        with self._lock:
            indexed = self.indexed.get(stream, {})
            return indexed[max(indexed)] if indexed else None

    def checkpoints(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None
    ) -> list[Checkpoint]:
        with self._lock:
            archived = dict(self.archived.get(stream, {}))
        return [
            archived[end]
            for end in sorted(archived)
            if end >= from_seq and (to_seq is None or archived[end].fromSeq <= to_seq)
        ]


class FakeInvoker:
    """Asynchronous invocations, recorded (function name, payload)."""

    def __init__(self) -> None:
        self.invoked: list[tuple[str, Mapping[str, Any]]] = []

    def invoke(self, function: str, payload: Mapping[str, Any]) -> None:
        self.invoked.append((function, payload))


class MemoryPublisher:
    """The ``EventPublisher`` port in memory, behind the platform's one publisher: call it
    with an event contract (as services do). Every detail is checked against its generated
    JSON Schema on the way out, so each unit test that publishes is a contract test too."""

    def __init__(self, *, failing: bool = False) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.failing = failing
        self._events = Events(self)

    def __call__(self, event: EventDetail) -> None:
        self._events.publish(event)

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        if self.failing:
            raise RuntimeError("EventBridge is down")
        validate_event(detail_type, detail)
        self.published.append((detail_type, dict(detail)))

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.published if kind == detail_type]


class MemoryEcdsaSigner:
    """A P-256 key held in memory, standing in for the KMS model-signing key (DIGEST)."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def key_id(self) -> str:
        return "arn:aws:kms:us-east-1:123456789012:key/memory-p256"

    @property
    def algorithm(self) -> str:
        return "ECDSA_SHA_256"

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        return self._key.sign(message, ec.ECDSA(Prehashed(hashes.SHA256())))

    def public_key(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self._key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class MemoryQuotaLedger:
    """The Resource Allocator and usage ledger in memory, with the adapter's atomicity:
    a reservation checks and adds under one lock."""

    def __init__(self, pools: PoolConfig, clock: FixedClock) -> None:
        self._pools = pools
        self._clock = clock
        self._lock = threading.Lock()
        self.reservations: dict[str, Reservation] = {}
        self.counters: dict[tuple[str, str, str], Decimal] = {}
        self.load: dict[str, int] = {}
        self.usage: dict[str, UsageRecord] = {}

    def reserve(self, job_id: str, team: str, requirements: ComputeRequirements) -> None:
        pool = self._pools.pools[str(requirements.pool)]
        now = self._clock.now()
        gpus = requirements.instanceCount * compute.INSTANCE_TYPES[requirements.instanceType].gpus
        held = reserved_gpu_hours(
            requirements.instanceType, requirements.instanceCount, requirements.maxRuntimeSeconds
        )
        period = period_of(now)
        with self._lock:
            if job_id in self.reservations:
                return
            key = (pool.name, team, period)
            committed = self.counters.get(key, Decimal(0))
            limit = pool.quota.team_limit(team)
            if committed + held > limit:
                raise ReservationRefused(
                    QuotaDenial(
                        pool=pool.name,
                        team=team,
                        quota="gpuHoursPerTeam",
                        requested=held,
                        limit=limit,
                        remaining=max(Decimal(0), limit - committed),
                        period=period,
                    )
                )
            active = self.load.get(pool.name, 0)
            if active + gpus > pool.quota.maxConcurrentGpus:
                raise ReservationRefused(
                    QuotaDenial(
                        pool=pool.name,
                        team=team,
                        quota="maxConcurrentGpus",
                        requested=Decimal(gpus),
                        limit=Decimal(pool.quota.maxConcurrentGpus),
                        remaining=Decimal(max(0, pool.quota.maxConcurrentGpus - active)),
                        period=period,
                    )
                )
            self.counters[key] = committed + held
            self.load[pool.name] = active + gpus
            self.reservations[job_id] = Reservation(
                jobId=job_id,
                pool=pool.name,
                team=team,
                period=period,
                gpus=gpus,
                gpuHours=held,
                createdAt=now,
            )

    def release(self, job_id: str, used_gpu_hours: Decimal) -> None:
        with self._lock:
            held = self.reservations.get(job_id)
            if held is None or held.status == "RELEASED":
                return
            key = (held.pool, held.team, held.period)
            self.counters[key] += used_gpu_hours - held.gpuHours
            self.load[held.pool] -= held.gpus
            self.reservations[job_id] = held.model_copy(
                update={"status": "RELEASED", "usedGpuHours": used_gpu_hours}
            )

    def open_reservations(self, limit: int) -> list[Reservation]:
        return [r for r in self.reservations.values() if r.status == "RESERVED"][:limit]

    def put_usage(self, record: UsageRecord) -> None:
        with self._lock:
            if record.jobId in self.usage:
                raise AlreadyExists(record.jobId)
            self.usage[record.jobId] = record

    def get_usage(self, job_id: str) -> UsageRecord | None:
        return self.usage.get(job_id)

    def usage_between(self, start: datetime, end: datetime) -> list[UsageRecord]:
        return [u for u in self.usage.values() if start <= u.endedAt <= end]

    def usage_of_model(self, model_id: str) -> list[UsageRecord]:
        return [u for u in self.usage.values() if u.modelId == model_id]

    def committed(self, pool: str, team: str, period: str) -> Decimal:
        return self.counters.get((pool, team, period), Decimal(0))

    def active_gpus(self, pool: str) -> int:
        return self.load.get(pool, 0)


class MemoryDeployments:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, DeploymentRecord] = {}
        self.live: dict[str, str] = {}

    def create_deployment(self, record: DeploymentRecord) -> None:
        with self._lock:
            if record.deployId in self.records:
                raise AlreadyExists(record.deployId)
            self.records[record.deployId] = record

    def get_deployment(self, deploy_id: str) -> DeploymentRecord | None:
        return self.records.get(deploy_id)

    def save_deployment(self, record: DeploymentRecord, expected_revision: int) -> None:
        with self._lock:
            if self.records[record.deployId].revision != expected_revision:
                raise StaleWrite(record.deployId)
            self.records[record.deployId] = record

    def live_deployment(self, endpoint: str) -> str | None:
        return self.live.get(endpoint)

    def set_live_deployment(self, endpoint: str, deploy_id: str) -> None:
        self.live[endpoint] = deploy_id

    def live_deployments(self) -> list[tuple[str, str]]:
        return sorted(self.live.items())
