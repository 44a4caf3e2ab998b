"""Retention: expire what is past its period, provably; legal holds; tombstone proofs.

The periods are ``modelops.platform.RETENTION_CLASSES`` (the table S3's lifecycle rules are
built from too). The job expires two classes of registry records:

- checkpoints: a finished training job's checkpoint artifact, ``expire_after_days`` after
  the job ended;
- datasets: a dataset's artifact once its ``retentionDays`` have passed.

Candidates with the same artifact (identical content: a job and its reproduction) expire
together. They are left alone when a legal hold names any of them (the artifact, a dataset,
a training job), when a dataset among them is in the lineage of a model that is or was in
prod, or when anything else refers to the artifact (a model, a dataset or job not due).
Otherwise the expiry goes through the steps of ``TombstoneStatus``, each stored before the
next starts:

1. PENDING: the tombstone (files, digests, class, reason, policy) is stored;
2. RECORDED: it is appended to the ledger stream ``retention`` as an audit event whose
   ``eventId`` is the tombstone id (a re-run after a crash finds it instead of appending
   it twice);
3. SEALED: a signed checkpoint covers that record (one forced over all of the run's
   tombstones if none does);
4. DELETED: the artifact is marked expired (downloads answer 410 GONE with the tombstone
   id), then its objects are deleted, every version: its blobs that no retained artifact
   shares (blobs are content-addressed) and, for checkpoints, the job's checkpoint sync.

Nothing is deleted before step 3, and every step is idempotent, so a run that dies anywhere
leaves a state the next run completes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from modelops import platform
from modelops.contracts.retention import (
    LegalHoldRequest,
    RetentionOutcome,
    RetentionRunRequest,
    RetentionRunResponse,
    TombstoneResponse,
)
from modelops.domain.access import Caller, Permission
from modelops.domain.entities import Artifact, Dataset, ModelStatus
from modelops.domain.ledger import AuditEvent, Checkpoint, LedgerRecord, Outcome, inclusion_proof
from modelops.domain.restrictions import retention_expiry
from modelops.domain.retention import (
    STREAM,
    TOMBSTONE_ACTION,
    ArtifactRetention,
    HoldKind,
    LegalHold,
    ObjectKind,
    Tombstone,
    TombstoneProof,
    TombstoneStatus,
    tombstone_details,
    tombstone_id,
)
from modelops.domain.training import checkpoint_prefix
from modelops.errors import NotFound
from modelops.ports import (
    Clock,
    Page,
    PromotionRepository,
    RegistryRepository,
    RetentionObjects,
    RetentionRepository,
    TrainingRepository,
)
from modelops.services.artifacts import blob_key, escrow_prefix
from modelops.services.audit import AuditService
from modelops.services.lineage import LineageService

PAGE = 100
EXPORT_PAGE = 1000
T = TypeVar("T")


@dataclass(frozen=True)
class Candidate:
    artifact: Artifact
    kind: ObjectKind
    object_id: str
    retention_class: str
    reason: str
    policy: str
    holds: tuple[tuple[HoldKind, str], ...]
    sync_prefix: str | None = None  # a training job's checkpoint sync, deleted too
    escrowed: bool = False  # raw personal data: its files are in the escrow bucket

    @property
    def owner(self) -> str:
        """How ``_artifact_owners`` names it."""
        return f"{'job' if self.kind == 'checkpoints' else 'dataset'}:{self.object_id}"


class RetentionService:
    def __init__(
        self,
        *,
        registry: RegistryRepository,
        jobs: TrainingRepository,
        stages: PromotionRepository,
        retention: RetentionRepository,
        lineage: LineageService,
        audit: AuditService,
        objects: RetentionObjects,
        clock: Clock,
        escrow: RetentionObjects | None = None,
    ) -> None:
        """``escrow``: the escrow bucket, in the one function that may delete from it (the
        scheduled ``retention-run``); elsewhere None, and escrowed datasets are left to it."""
        self._registry = registry
        self._jobs = jobs
        self._stages = stages
        self._retention = retention
        self._lineage = lineage
        self._audit = audit
        self._objects = objects
        self._escrow = escrow
        self._clock = clock

    # --- the job ---------------------------------------------------------------------------

    def run(self, request: RetentionRunRequest, caller: Caller) -> RetentionRunResponse:
        """A run on request: platform administrators only (it deletes, and ``asOf`` moves
        every period)."""
        caller.require(Permission.ADMINISTER)
        return self.run_as(request, caller.principal)

    def run_as(self, request: RetentionRunRequest, principal: str) -> RetentionRunResponse:
        """Expire every due candidate (up to ``request.limit``), as ``principal``."""
        as_of = request.asOf or self._clock.now()
        run_id = f"retention-{uuid.uuid4().hex}"
        outcomes: list[RetentionOutcome] = []
        protected = self._prod_lineage_datasets()
        owners = self._artifact_owners()
        # Identical content is one artifact: the jobs or datasets that share one expire it
        # together, all due, none held.
        groups: dict[str, list[Candidate]] = {}
        for found in self._candidates(request, as_of):
            groups.setdefault(found.artifact.artifactId, []).append(found)
        due: list[tuple[list[Candidate], Tombstone]] = []
        for group in groups.values():
            if len(due) >= request.limit:
                break
            candidate = group[0]
            tomb = self._retention.get_tombstone(tombstone_id(candidate.artifact.artifactId))
            if tomb is not None and tomb.status is TombstoneStatus.DELETED:
                continue
            left = self._left_alone(group, protected, owners)
            if left is not None:
                outcomes += [self._outcome(c, left[0], left[1], tomb) for c in group]
                continue
            due.append((group, self._record(candidate, tomb, principal, run_id)))
        # One signed checkpoint seals every tombstone of the run (one KMS Sign, not one each).
        if any(tomb.status is TombstoneStatus.RECORDED for _, tomb in due):
            self._audit.checkpoint(STREAM)
        expired = 0
        for group, tomb in due:
            done = self._seal_and_delete(group, tomb)
            expired += done.status is TombstoneStatus.DELETED
            action = "expired" if done.status is TombstoneStatus.DELETED else "awaiting-checkpoint"
            outcomes += [self._outcome(c, action, c.reason, done) for c in group]
        waiting = sum(o.action != "expired" for o in outcomes)
        return RetentionRunResponse(asOf=as_of, outcomes=outcomes, expired=expired, left=waiting)

    def _candidates(self, request: RetentionRunRequest, as_of: datetime) -> Iterator[Candidate]:
        if "checkpoints" in request.classes:
            yield from self._due_checkpoints(request.trainingJobIds, as_of)
        if "datasets" in request.classes:
            yield from self._due_datasets(request.datasetIds, as_of)

    def _due_checkpoints(self, job_ids: list[str], as_of: datetime) -> Iterator[Candidate]:
        spec = platform.RETENTION_CHECKPOINTS
        days = spec.expire_after_days
        if days is None:
            return
        jobs = (
            [j for j in (self._jobs.get_training_job(i) for i in job_ids) if j is not None]
            if job_ids
            else _pages(lambda token: self._jobs.list_training_jobs(None, PAGE, token))
        )
        for job in jobs:
            ended = job.endTs if job.status.terminal else None
            if ended is None or ended + timedelta(days=days) > as_of:
                continue
            for ref in job.artifactRefs:
                artifact = (
                    self._registry.get_artifact(ref.artifactId)
                    if ref.kind == "checkpoints"
                    else None
                )
                if artifact is None:
                    continue
                yield Candidate(
                    artifact=artifact,
                    kind="checkpoints",
                    object_id=job.jobId,
                    retention_class=spec.name,
                    reason=f"job {job.jobId} ended {ended.isoformat()}, more than {days} "
                    f"days before {as_of.isoformat()}",
                    policy=f"{spec.name}: expire {days} days after the training job ends",
                    holds=(("training-job", job.jobId), ("artifact", artifact.artifactId)),
                    sync_prefix=checkpoint_prefix(job.trainingJobName),
                )

    def _due_datasets(self, dataset_ids: list[str], as_of: datetime) -> Iterator[Candidate]:
        spec = platform.RETENTION_DATASETS
        datasets = (
            [d for d in (self._registry.get_dataset(i) for i in dataset_ids) if d is not None]
            if dataset_ids
            else self._all_datasets()
        )
        for dataset in datasets:
            expiry = retention_expiry(dataset)
            if expiry is None or expiry > as_of:
                continue
            artifact = self._registry.get_artifact(dataset.artifactId)
            if artifact is None:
                continue
            days = dataset.usageRestrictions.retentionDays
            yield Candidate(
                artifact=artifact,
                kind="dataset",
                object_id=dataset.datasetId,
                retention_class=spec.name,
                reason=f"retentionDays {days} of {dataset.datasetId} passed on "
                f"{expiry.isoformat()}",
                policy=f"{spec.name}: expire when the dataset's retentionDays pass",
                holds=(("dataset", dataset.datasetId), ("artifact", artifact.artifactId)),
                escrowed=dataset.escrowed,
            )

    def _left_alone(
        self, group: list[Candidate], protected: set[str], owners: dict[str, set[str]]
    ) -> tuple[str, str] | None:
        """Why the candidates of one artifact may not expire (action, detail), or None."""
        if self._escrow is None and any(c.escrowed for c in group):
            return (
                "escrow-scheduled",
                "raw personal data in escrow: deleted by the scheduled retention-run, the "
                "only function that may delete from the escrow bucket",
            )
        holds = self._retention.holds([h for c in group for h in c.holds])
        if holds:
            named = ", ".join(f"{h.kind} {h.targetId} ({h.reason})" for h in holds)
            return "held", f"legal hold on {named}"
        if any(c.kind == "dataset" and c.object_id in protected for c in group):
            return "prod-lineage", "in the lineage of a model that is or was in prod"
        others = owners.get(group[0].artifact.artifactId, set()) - {c.owner for c in group}
        if others:
            return "shared", f"the artifact is also held by {', '.join(sorted(others))}"
        return None

    def _prod_lineage_datasets(self) -> set[str]:
        """Datasets among the ancestors of every model that is or was in prod."""
        models = list(_pages(lambda token: self._registry.list_models(None, None, PAGE, token)))
        prod = {m.modelId for m in models if m.status is ModelStatus.PROD}
        for family in sorted({m.family for m in models}):
            prod |= {
                c.modelId
                for c in self._stages.stage_changes(family)
                if c.toStage is ModelStatus.PROD
            }
        datasets: set[str] = set()
        for model_id in sorted(prod):
            graph = self._lineage.ancestors(model_id)
            datasets |= {n.nodeId for n in graph.nodes if n.kind == "dataset"}
        return datasets

    def _artifact_owners(self) -> dict[str, set[str]]:
        """Artifact id -> what refers to it ("model:<id>", "dataset:<id>", "job:<id>" for
        checkpoints); model artifacts never expire."""
        owners: dict[str, set[str]] = {}
        jobs = _pages(lambda token: self._jobs.list_training_jobs(None, PAGE, token))
        for job in jobs:
            for ref in job.artifactRefs:
                if ref.kind == "checkpoints":
                    owners.setdefault(ref.artifactId, set()).add(f"job:{job.jobId}")
        models = _pages(lambda token: self._registry.list_models(None, None, PAGE, token))
        for model in models:
            owners.setdefault(model.artifactId, set()).add(f"model:{model.modelId}")
        for dataset in self._all_datasets():
            owners.setdefault(dataset.artifactId, set()).add(f"dataset:{dataset.datasetId}")
        return owners

    def _all_datasets(self) -> Iterator[Dataset]:
        return _pages(lambda token: self._registry.list_datasets(None, PAGE, token))

    # --- one expiry, step by step ----------------------------------------------------------

    def _record(
        self, candidate: Candidate, tomb: Tombstone | None, principal: str, run_id: str
    ) -> Tombstone:
        """Steps 1 and 2: the tombstone stored, then appended to the ledger."""
        resumed = tomb is not None
        if tomb is None:
            artifact = candidate.artifact
            tomb = Tombstone(
                tombstoneId=tombstone_id(artifact.artifactId),
                artifactId=artifact.artifactId,
                objectKind=candidate.kind,
                objectId=candidate.object_id,
                retentionClass=candidate.retention_class,
                reason=candidate.reason,
                policy=candidate.policy,
                rootDigest=artifact.rootDigest,
                manifestDigest=artifact.manifestDigest,
                files=artifact.files,
                status=TombstoneStatus.PENDING,
                createdAt=self._clock.now(),
            )
            self._retention.save_tombstone(tomb)
        if tomb.status is TombstoneStatus.PENDING:
            # Only a tombstone an earlier run left PENDING may already be in the ledger.
            found = self._find_record(tomb.tombstoneId) if resumed else None
            record = found or self._audit.record(self._event(tomb, principal, run_id))
            tomb = tomb.model_copy(
                update={
                    "status": TombstoneStatus.RECORDED,
                    "ledgerSeq": record.seq,
                    "recordHash": record.hash,
                }
            )
            self._retention.save_tombstone(tomb)
        return tomb

    def _seal_and_delete(self, group: list[Candidate], tomb: Tombstone) -> Tombstone:
        """Steps 3 and 4: sealed once a signed checkpoint covers it, then deleted."""
        if tomb.status is TombstoneStatus.RECORDED:
            checkpoint = self._sealing_checkpoint(tomb, force=True)
            if checkpoint is None:
                return tomb  # the next run (or the scheduled checkpoint) seals it
            tomb = tomb.model_copy(
                update={"status": TombstoneStatus.SEALED, "checkpointToSeq": checkpoint.toSeq}
            )
            self._retention.save_tombstone(tomb)
        if tomb.status is TombstoneStatus.SEALED:
            tomb = self._delete(group, tomb)
        return tomb

    def _event(self, tomb: Tombstone, principal: str, run_id: str) -> AuditEvent:
        return AuditEvent(
            stream=STREAM,
            eventId=tomb.tombstoneId,
            time=self._clock.now(),
            principal=principal,
            action=TOMBSTONE_ACTION,
            resources=(tomb.artifactId, tomb.objectId),
            requestId=run_id,
            correlationId=run_id,
            outcome=Outcome.SUCCEEDED,
            status=200,
            details=tombstone_details(tomb),
        )

    def _find_record(self, event_id: str) -> LedgerRecord | None:
        """The retention record with ``event_id``, if an earlier run appended it."""
        for record in self._stream_records(1, None):
            if record.event().eventId == event_id:
                return record
        return None

    def _stream_records(self, from_seq: int, to_seq: int | None) -> Iterator[LedgerRecord]:
        next_seq: int | None = from_seq
        while next_seq is not None and (to_seq is None or next_seq <= to_seq):
            limit = EXPORT_PAGE if to_seq is None else min(EXPORT_PAGE, to_seq - next_seq + 1)
            page = self._audit.export(STREAM, next_seq, limit)
            if not page.records:
                return
            yield from (r for r in page.records if to_seq is None or r.seq <= to_seq)
            next_seq = page.next_from_seq if to_seq is None else page.records[-1].seq + 1

    def _sealing_checkpoint(self, tomb: Tombstone, *, force: bool) -> Checkpoint | None:
        """The signed checkpoint whose range covers the tombstone's record; with ``force``,
        one is signed now if none does yet."""
        seq = tomb.ledgerSeq
        if seq is None:
            return None
        found = self._covering(seq)
        if found is None and force:
            self._audit.checkpoint(STREAM)
            found = self._covering(seq)
        return found

    def _covering(self, seq: int) -> Checkpoint | None:
        page = self._audit.export(STREAM, seq, 1)
        return next((c for c in page.checkpoints if c.fromSeq <= seq <= c.toSeq), None)

    def _delete(self, group: list[Candidate], tomb: Tombstone) -> Tombstone:
        # Marked first: from here downloads answer 410 GONE, never a URL to missing bytes.
        self._retention.save_artifact_retention(
            ArtifactRetention(
                artifactId=tomb.artifactId,
                status="expired",
                tombstoneId=tomb.tombstoneId,
                retentionClass=tomb.retentionClass,
                at=self._clock.now(),
            )
        )
        if any(c.escrowed for c in group):
            # Escrow keeps each artifact's files under its own prefix, shared with nothing.
            assert self._escrow is not None  # _left_alone keeps escrow from other functions
            store, kept = self._escrow, []
            keys = [f"{escrow_prefix(tomb.artifactId)}{f.path}" for f in tomb.files]
        else:
            holders = self._retention.blob_holders()  # without this artifact, now expired
            digests = sorted({f.sha256 for f in tomb.files})
            kept = [d for d in digests if holders.get(d, set()) - {tomb.artifactId}]
            store, keys = self._objects, [blob_key(d) for d in digests if d not in kept]
            for prefix in sorted({c.sync_prefix for c in group if c.sync_prefix}):
                keys += store.list_keys(prefix)
        for key in keys:
            store.purge(key)
        done = tomb.model_copy(
            update={
                "status": TombstoneStatus.DELETED,
                "deletedAt": self._clock.now(),
                "deletedKeys": tuple(keys),
                "sharedBlobsKept": tuple(kept),
            }
        )
        self._retention.save_tombstone(done)
        return done

    @staticmethod
    def _outcome(
        candidate: Candidate, action: str, detail: str, tomb: Tombstone | None
    ) -> RetentionOutcome:
        return RetentionOutcome.model_validate(
            {
                "artifactId": candidate.artifact.artifactId,
                "objectKind": candidate.kind,
                "objectId": candidate.object_id,
                "retentionClass": candidate.retention_class,
                "action": action,
                "tombstoneId": tomb.tombstoneId if tomb is not None else None,
                "detail": detail,
            }
        )

    # --- proofs ----------------------------------------------------------------------------

    def tombstone(self, tomb_id: str) -> TombstoneResponse:
        """The tombstone with its proof: ledger record, covering checkpoint, audit path."""
        tomb = self._retention.get_tombstone(tomb_id)
        if tomb is None:
            raise NotFound(f"tombstone {tomb_id} does not exist")
        checkpoint = self._sealing_checkpoint(tomb, force=False)
        if checkpoint is None or tomb.ledgerSeq is None:
            return TombstoneResponse(tombstone=tomb)
        records = list(self._stream_records(checkpoint.fromSeq, checkpoint.toSeq))
        index = tomb.ledgerSeq - checkpoint.fromSeq
        path = inclusion_proof([bytes.fromhex(r.hash) for r in records], index)
        proof = TombstoneProof(
            tombstone=tomb,
            record=records[index],
            checkpoint=checkpoint,
            leafIndex=index,
            auditPath=tuple(node.hex() for node in path),
        )
        return TombstoneResponse(tombstone=tomb, proof=proof)

    def tombstones(self, limit: int) -> list[Tombstone]:
        return self._retention.list_tombstones(limit)

    # --- legal holds -----------------------------------------------------------------------

    def place_hold(
        self, kind: HoldKind, target_id: str, request: LegalHoldRequest, caller: Caller
    ) -> LegalHold:
        caller.require(Permission.HOLD)
        self._require_target(kind, target_id)
        hold = LegalHold(
            kind=kind,
            targetId=target_id,
            reason=request.reason,
            placedBy=caller.principal,
            placedAt=self._clock.now(),
        )
        self._retention.put_hold(hold)
        return hold

    def release_hold(self, kind: HoldKind, target_id: str, caller: Caller) -> None:
        caller.require(Permission.HOLD)
        if not self._retention.delete_hold(kind, target_id):
            raise NotFound(f"no legal hold on {kind} {target_id}")

    def hold(self, kind: HoldKind, target_id: str) -> LegalHold:
        found = self._retention.get_hold(kind, target_id)
        if found is None:
            raise NotFound(f"no legal hold on {kind} {target_id}")
        return found

    def holds(self, limit: int) -> list[LegalHold]:
        return self._retention.list_holds(limit)

    def _require_target(self, kind: HoldKind, target_id: str) -> None:
        if kind == "artifact":
            exists: object = self._registry.get_artifact(target_id)
        elif kind == "dataset":
            exists = self._registry.get_dataset(target_id)
        else:
            exists = self._jobs.get_training_job(target_id)
        if exists is None:
            raise NotFound(f"{kind} {target_id} does not exist")


def _pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
    token: str | None = None
    while True:
        page = fetch(token)
        yield from page.items
        token = page.next_token
        if token is None:
            return
