"""Retention: selection (periods, legal holds, prod lineage, shared content), the order of an
expiry (nothing deleted before a signed checkpoint covers its tombstone), crash recovery,
and the offline proof of a tombstone."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelops import platform
from modelops.config import Settings
from modelops.contracts.retention import LegalHoldRequest, RetentionRunRequest
from modelops.domain import ids
from modelops.domain.access import Caller, Role
from modelops.domain.entities import (
    Artifact,
    Dataset,
    LineageNode,
    ModelLineage,
    ModelStatus,
    ModelVersion,
    UsageRestrictions,
)
from modelops.domain.manifest import FileEntry, Manifest
from modelops.domain.promotion import StageChange
from modelops.domain.retention import (
    ArtifactRetention,
    HoldKind,
    LegalHold,
    Tombstone,
    TombstoneProof,
    TombstoneStatus,
    tombstone_id,
    verify_tombstone,
)
from modelops.domain.training import ArtifactRef, JobStatus, TrainingJob, checkpoint_prefix
from modelops.errors import Forbidden, Gone, NotFound
from modelops.services.artifacts import ArtifactService, blob_key, escrow_prefix
from modelops.services.audit import AuditService
from modelops.services.lineage import LineageService
from modelops.services.retention import RetentionService
from tests.unit.fakes import (
    FixedClock,
    MemoryBlobStore,
    MemoryLedgerStore,
    MemoryPlatform,
    MemoryPublisher,
    MemorySigner,
)

ADMIN = Caller("arn:aws:iam::123456789012:user/admin", frozenset({Role.PLATFORM_ADMIN}))
APPROVER = Caller("arn:aws:iam::123456789012:user/approver", frozenset({Role.APPROVER}))
ENGINEER = Caller("arn:aws:iam::123456789012:user/alice", frozenset({Role.ML_ENGINEER}))
ENDED = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
DAYS = platform.RETENTION_CHECKPOINTS.expire_after_days or 0
DUE = ENDED + timedelta(days=DAYS)


class MemoryRetention:
    """``RetentionRepository`` in memory; ``fail_on`` makes one save of a tombstone in that
    status raise once (a crash between steps)."""

    def __init__(self, registry: MemoryPlatform) -> None:
        self.registry = registry
        self.tombs: dict[str, Tombstone] = {}
        self.hold_items: dict[tuple[str, str], LegalHold] = {}
        self.states: dict[str, ArtifactRetention] = {}
        self.fail_on: TombstoneStatus | None = None

    def get_tombstone(self, tombstone_id: str) -> Tombstone | None:
        return self.tombs.get(tombstone_id)

    def save_tombstone(self, tombstone: Tombstone) -> None:
        if self.fail_on is tombstone.status:
            self.fail_on = None
            raise ConnectionError("crashed before saving")
        self.tombs[tombstone.tombstoneId] = tombstone

    def list_tombstones(self, limit: int) -> list[Tombstone]:
        return sorted(self.tombs.values(), key=lambda t: t.createdAt, reverse=True)[:limit]

    def put_hold(self, hold: LegalHold) -> None:
        self.hold_items[(hold.kind, hold.targetId)] = hold

    def get_hold(self, kind: HoldKind, target_id: str) -> LegalHold | None:
        return self.hold_items.get((kind, target_id))

    def delete_hold(self, kind: HoldKind, target_id: str) -> bool:
        return self.hold_items.pop((kind, target_id), None) is not None

    def holds(self, targets: Any) -> list[LegalHold]:
        return [self.hold_items[t] for t in targets if t in self.hold_items]

    def list_holds(self, limit: int) -> list[LegalHold]:
        return list(self.hold_items.values())[:limit]

    def get_artifact_retention(self, artifact_id: str) -> ArtifactRetention | None:
        return self.states.get(artifact_id)

    def save_artifact_retention(self, state: ArtifactRetention) -> None:
        self.states[state.artifactId] = state

    def blob_holders(self) -> dict[str, set[str]]:
        holders: dict[str, set[str]] = {}
        for artifact in self.registry.artifacts.values():
            if artifact.artifactId not in self.states:
                for entry in artifact.files:
                    holders.setdefault(entry.sha256, set()).add(artifact.artifactId)
        return holders


@dataclass
class MemoryObjects:
    """The artifact bucket: key -> versions; ``on_purge`` runs before each purge."""

    versions: dict[str, int] = field(default_factory=dict)
    on_purge: Any = None
    fail_next: bool = False

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(k for k in self.versions if k.startswith(prefix))

    def purge(self, key: str) -> int:
        if self.on_purge is not None:
            self.on_purge(key)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("crashed while deleting")
        return self.versions.pop(key, 0)


@dataclass
class World:
    registry: MemoryPlatform
    retention: MemoryRetention
    ledger: MemoryLedgerStore
    signer: MemorySigner
    objects: MemoryObjects
    service: RetentionService
    clock: FixedClock


def make_world(escrow: MemoryObjects | None = None) -> World:
    """``escrow``: the escrow bucket, as the scheduled retention-run has it (None: as every
    other function, which may not delete there)."""
    registry, ledger, signer, clock = (
        MemoryPlatform(),
        MemoryLedgerStore(),
        MemorySigner(),
        FixedClock(),
    )
    retention, objects = MemoryRetention(registry), MemoryObjects()
    audit = AuditService(ledger, signer, MemoryPublisher(), clock)
    service = RetentionService(
        registry=registry,
        jobs=registry,
        stages=registry,
        retention=retention,
        lineage=LineageService(registry),
        audit=audit,
        objects=objects,
        clock=clock,
        escrow=escrow,
    )
    return World(registry, retention, ledger, signer, objects, service, clock)


@pytest.fixture
def world() -> World:
    return make_world()


def stored_artifact(world: World, name: str, files: dict[str, bytes]) -> Artifact:
    entries = tuple(
        FileEntry(path=p, size=len(d), sha256=hashlib.sha256(d).hexdigest())
        for p, d in files.items()
    )
    manifest = Manifest(files=entries)
    artifact = Artifact(
        artifactId=ids.artifact_id(manifest.manifest_digest),
        name=name,
        rootDigest=manifest.root_digest,
        manifestDigest=manifest.manifest_digest,
        totalSize=manifest.total_size,
        files=manifest.files,
        createdBy=ENGINEER.principal,
        createdAt=ENDED,
        uploadId="upload-1",
    )
    if artifact.artifactId not in world.registry.artifacts:  # recording again: the same
        world.registry.create_artifact(artifact)
    for entry in entries:
        world.objects.versions[blob_key(entry.sha256)] = 1
    return artifact


def finished_job(world: World, job_id: str, files: dict[str, bytes], ended: datetime) -> Artifact:
    checkpoints = stored_artifact(world, f"{job_id}-checkpoints", files)
    name = f"modelops-{job_id}"
    for path in files:
        world.objects.versions[checkpoint_prefix(name) + path] = 1
    ref = ArtifactRef(
        kind="checkpoints",
        artifactId=checkpoints.artifactId,
        rootDigest=checkpoints.rootDigest,
        files=len(files),
    )
    world.registry.training_jobs[job_id] = TrainingJob.model_construct(
        jobId=job_id,
        modelFamily="iris",
        createdAt=ended - timedelta(hours=1),
        status=JobStatus.COMPLETED,
        endTs=ended,
        trainingJobName=name,
        artifactRefs=(ref,),
    )
    return checkpoints


def dataset(
    world: World, name: str, retention_days: int | None, escrow: MemoryObjects | None = None
) -> Dataset:
    """``escrow``: raw personal data, its file in the escrow bucket under the artifact's
    prefix (and nothing in the artifact bucket)."""
    artifact = stored_artifact(world, name, {"data.csv": f"rows of {name}".encode()})
    if escrow is not None:
        artifact = artifact.model_copy(update={"storage": "escrow"})
        world.registry.artifacts[artifact.artifactId] = artifact
        for entry in artifact.files:
            del world.objects.versions[blob_key(entry.sha256)]
            escrow.versions[f"{escrow_prefix(artifact.artifactId)}{entry.path}"] = 2
    record = Dataset(
        datasetId=ids.dataset_id(name, artifact.rootDigest),
        name=name,
        version=1,
        artifactId=artifact.artifactId,
        checksum=artifact.rootDigest,
        sourceRefs=(),
        transformations=(),
        license="MIT",
        piiFlags=("email",) if escrow is not None else (),
        storage="escrow" if escrow is not None else "standard",
        usageRestrictions=UsageRestrictions(retentionDays=retention_days),
        description="",
        createdAt=ENDED,
        createdBy=ENGINEER.principal,
        requestDigest="0" * 64,
    )
    node = LineageNode(nodeId=record.datasetId, kind="dataset", label=name)
    world.registry.create_dataset(record, node, [])
    return record


def model_on(world: World, version: str, data: Dataset, status: ModelStatus) -> ModelVersion:
    artifact = stored_artifact(world, f"model-{version}", {"model.bin": version.encode()})
    model = ModelVersion(
        modelId=ids.model_id("iris", version),
        family="iris",
        version=version,
        codeRef="git:x@y",
        artifactId=artifact.artifactId,
        rootDigest=artifact.rootDigest,
        metrics={},
        createdAt=ENDED,
        createdBy=ENGINEER.principal,
        status=status,
        lineage=ModelLineage(datasets=(data.datasetId,)),
        provenance={},
        description="",
        requestDigest="0" * 64,
    )
    node = LineageNode(nodeId=model.modelId, kind="model", label="iris", parents=(data.datasetId,))
    world.registry.create_model(model, node)
    return model


def run(world: World, as_of: datetime, **request: Any) -> Any:
    return world.service.run(RetentionRunRequest(asOf=as_of, **request), ADMIN)


# --- selection -------------------------------------------------------------------------------


def test_checkpoints_are_tombstoned_sealed_and_deleted_once_their_period_has_passed(
    world: World,
) -> None:
    checkpoints = finished_job(
        world, "job-1", {"epoch-4.pt": b"four", "epoch-9.pt": b"nine"}, ENDED
    )

    report = run(world, DUE)

    assert [(o.action, o.objectId) for o in report.outcomes] == [("expired", "job-1")]
    tomb = world.retention.tombs[tombstone_id(checkpoints.artifactId)]
    assert tomb.status is TombstoneStatus.DELETED
    assert world.objects.versions.keys().isdisjoint(tomb.deletedKeys)
    assert sorted(tomb.deletedKeys) == sorted(
        [blob_key(f.sha256) for f in checkpoints.files]
        + [checkpoint_prefix("modelops-job-1") + p for p in ("epoch-4.pt", "epoch-9.pt")]
    )
    assert world.retention.states[checkpoints.artifactId].tombstoneId == tomb.tombstoneId
    assert world.registry.artifacts[checkpoints.artifactId] == checkpoints  # record stays


def test_checkpoints_are_kept_until_the_period_has_fully_passed(world: World) -> None:
    finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)

    report = run(world, DUE - timedelta(seconds=1))

    assert report.outcomes == [] and report.expired == 0
    assert world.ledger.head("retention") is None


def test_checkpoints_of_a_job_still_running_are_never_candidates(world: World) -> None:
    finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)
    job = world.registry.training_jobs["job-1"]
    world.registry.training_jobs["job-1"] = job.model_copy(update={"status": JobStatus.TRAINING})

    assert run(world, DUE + timedelta(days=365)).outcomes == []


@pytest.mark.parametrize("kind", ["training-job", "artifact"])
def test_a_legal_hold_on_the_job_or_its_artifact_blocks_expiry(world: World, kind: str) -> None:
    checkpoints = finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)
    target = "job-1" if kind == "training-job" else checkpoints.artifactId
    world.service.place_hold(kind, target, LegalHoldRequest(reason="case 42"), APPROVER)  # type: ignore[arg-type]

    report = run(world, DUE)

    assert [o.action for o in report.outcomes] == ["held"]
    assert "case 42" in report.outcomes[0].detail
    assert world.objects.versions[blob_key(checkpoints.files[0].sha256)] == 1
    assert world.ledger.head("retention") is None

    world.service.release_hold(kind, target, APPROVER)  # type: ignore[arg-type]
    assert run(world, DUE).expired == 1


def test_a_dataset_past_its_retention_days_expires(world: World) -> None:
    data = dataset(world, "clicks", retention_days=10)

    report = run(world, ENDED + timedelta(days=10))

    assert [(o.action, o.objectId) for o in report.outcomes] == [("expired", data.datasetId)]
    assert data.artifactId in world.retention.states


def test_raw_personal_data_past_its_retention_is_deleted_from_escrow_by_the_scheduled_run() -> None:
    escrow = MemoryObjects()
    world = make_world(escrow=escrow)
    raw = dataset(world, "growers-raw", retention_days=30, escrow=escrow)
    (key,) = escrow.versions

    report = run(world, ENDED + timedelta(days=30))

    assert [(o.action, o.objectId) for o in report.outcomes] == [("expired", raw.datasetId)]
    tomb = world.retention.tombs[tombstone_id(raw.artifactId)]
    assert tomb.deletedKeys == (key,) and escrow.versions == {}
    assert tomb.files == world.registry.artifacts[raw.artifactId].files  # digests recorded


def test_escrow_is_left_to_the_scheduled_run_by_functions_that_may_not_delete_there() -> None:
    escrow = MemoryObjects()
    world = make_world()  # the registry API's manual run: no escrow store
    raw = dataset(world, "growers-raw", retention_days=30, escrow=escrow)

    report = run(world, ENDED + timedelta(days=30))

    assert [(o.action, o.objectId) for o in report.outcomes] == [
        ("escrow-scheduled", raw.datasetId)
    ]
    assert len(escrow.versions) == 1 and world.retention.tombs == {}


def test_a_dataset_in_the_lineage_of_a_model_that_was_once_in_prod_never_expires(
    world: World,
) -> None:
    data = dataset(world, "clicks", retention_days=10)
    model = model_on(world, "1.0.0", data, ModelStatus.DEPRECATED)  # in prod before
    world.registry.changes.append(
        StageChange(
            family="iris",
            modelId=model.modelId,
            version="1.0.0",
            fromStage=ModelStatus.STAGING,
            toStage=ModelStatus.PROD,
            at=ENDED,
            by=ADMIN.principal,
        )
    )

    report = run(world, ENDED + timedelta(days=400))

    assert [o.action for o in report.outcomes] == ["prod-lineage"]
    assert data.artifactId not in world.retention.states


def test_a_dataset_used_only_by_a_draft_model_expires(world: World) -> None:
    data = dataset(world, "clicks", retention_days=10)
    model_on(world, "1.0.0", data, ModelStatus.DRAFT)

    assert run(world, ENDED + timedelta(days=10)).expired == 1


def test_content_a_retained_artifact_shares_is_kept_when_checkpoints_expire(
    world: World,
) -> None:
    data = dataset(world, "clicks", retention_days=None)
    model_on(world, "1.0.0", data, ModelStatus.PROD)
    shared = b"1.0.0"  # the prod model's file: a checkpoint with the same bytes
    checkpoints = finished_job(world, "job-1", {"final.pt": shared, "epoch-1.pt": b"one"}, ENDED)

    run(world, DUE)

    tomb = world.retention.tombs[tombstone_id(checkpoints.artifactId)]
    shared_digest = hashlib.sha256(shared).hexdigest()
    assert tomb.sharedBlobsKept == (shared_digest,)
    assert world.objects.versions[blob_key(shared_digest)] == 1
    assert blob_key(hashlib.sha256(b"one").hexdigest()) not in world.objects.versions


def test_an_artifact_that_is_also_a_models_is_never_expired_as_checkpoints(world: World) -> None:
    data = dataset(world, "clicks", retention_days=None)
    model = model_on(world, "1.0.0", data, ModelStatus.DRAFT)
    finished_job(world, "job-1", {"model.bin": b"1.0.0"}, ENDED)  # same manifest as the model

    report = run(world, DUE)

    assert [o.action for o in report.outcomes] == ["shared"]
    assert f"model:{model.modelId}" in report.outcomes[0].detail


# --- order and recovery -----------------------------------------------------------------------


def test_nothing_is_deleted_before_a_signed_checkpoint_covers_the_tombstone(world: World) -> None:
    checkpoints = finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)
    seen: list[tuple[str, bool]] = []

    def covered(key: str) -> None:
        tomb = world.retention.tombs[tombstone_id(checkpoints.artifactId)]
        sealed = any(
            c.fromSeq <= (tomb.ledgerSeq or 0) <= c.toSeq
            for c in world.ledger.checkpoints("retention")
        )
        seen.append((key, sealed and checkpoints.artifactId in world.retention.states))

    world.objects.on_purge = covered

    run(world, DUE)

    assert seen and all(ok for _, ok in seen)


@pytest.mark.parametrize(
    "crash", [TombstoneStatus.RECORDED, TombstoneStatus.SEALED, TombstoneStatus.DELETED]
)
def test_a_run_that_crashed_between_steps_is_completed_by_the_next_without_a_second_record(
    world: World, crash: TombstoneStatus
) -> None:
    checkpoints = finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)
    world.retention.fail_on = crash  # the save that would record this step fails

    with pytest.raises(ConnectionError):
        run(world, DUE)
    again = run(world, DUE)

    assert again.expired == 1
    records = world.ledger.records("retention", 1, 100).items
    assert [r.event().eventId for r in records] == [tombstone_id(checkpoints.artifactId)]
    assert world.retention.tombs[records[0].event().eventId].status is TombstoneStatus.DELETED


def test_a_run_that_crashed_while_deleting_deletes_the_rest_next_time(world: World) -> None:
    checkpoints = finished_job(world, "job-1", {"a.pt": b"a", "b.pt": b"b"}, ENDED)
    world.objects.fail_next = True

    with pytest.raises(ConnectionError):
        run(world, DUE)
    assert world.retention.tombs[tombstone_id(checkpoints.artifactId)].status is (
        TombstoneStatus.SEALED
    )
    run(world, DUE)

    assert world.objects.versions == {}


def test_running_again_after_an_expiry_changes_nothing(world: World) -> None:
    finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)
    run(world, DUE)
    head = world.ledger.head("retention")

    again = run(world, DUE + timedelta(days=1))

    assert again.outcomes == [] and world.ledger.head("retention") == head


def test_a_run_is_for_platform_administrators_only(world: World) -> None:
    with pytest.raises(Forbidden):
        world.service.run(RetentionRunRequest(), ENGINEER)


def test_legal_holds_are_placed_by_approvers_or_admins_on_existing_records_only(
    world: World,
) -> None:
    finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)
    with pytest.raises(Forbidden):
        world.service.place_hold("training-job", "job-1", LegalHoldRequest(reason="x"), ENGINEER)
    with pytest.raises(NotFound):
        world.service.place_hold("dataset", "ds-nope", LegalHoldRequest(reason="x"), ADMIN)
    hold = world.service.place_hold("training-job", "job-1", LegalHoldRequest(reason="x"), ADMIN)
    assert world.service.hold("training-job", "job-1") == hold


def test_downloading_an_expired_artifact_answers_gone_with_its_tombstone(world: World) -> None:
    checkpoints = finished_job(world, "job-1", {"epoch-1.pt": b"one"}, ENDED)
    run(world, DUE)
    artifacts = ArtifactService(
        world.registry,
        MemoryBlobStore(),
        world.clock,
        Settings(region="us-east-1"),
        retention=world.retention,
    )

    with pytest.raises(Gone) as gone:
        artifacts.get(checkpoints.artifactId, download=True)

    tomb_id = tombstone_id(checkpoints.artifactId)
    assert gone.value.details[0]["tombstoneId"] == tomb_id
    described = artifacts.get(checkpoints.artifactId, download=False)
    assert described.retention is not None and described.retention.tombstoneId == tomb_id


# --- proofs -------------------------------------------------------------------------------------


def expired_proof(world: World) -> TombstoneProof:
    # Other retention records around it, so the audit path has more than one node.
    for n in range(3):
        finished_job(world, f"job-{n}", {"epoch.pt": f"job {n}".encode()}, ENDED)
    run(world, DUE)
    tomb_id = tombstone_id(world.registry.training_jobs["job-1"].artifactRefs[0].artifactId)
    proof = world.service.tombstone(tomb_id).proof
    assert proof is not None
    return proof


def keys(world: World) -> dict[str, bytes]:
    return {world.signer.key_id: world.signer.public_key()}


def test_a_tombstone_proof_verifies_from_the_public_key_after_the_objects_are_gone(
    world: World,
) -> None:
    proof = expired_proof(world)
    assert world.objects.versions == {}

    checks = verify_tombstone(proof, keys(world))

    assert [c.name for c in checks if not c.ok] == []
    assert len(proof.auditPath) >= 1


def test_a_tampered_file_digest_fails_the_proof(world: World) -> None:
    proof = expired_proof(world)
    tomb = proof.tombstone
    forged = tomb.files[0].model_copy(update={"sha256": "f" * 64})
    tampered = proof.model_copy(
        update={"tombstone": tomb.model_copy(update={"files": (forged, *tomb.files[1:])})}
    )

    failed = {c.name for c in verify_tombstone(tampered, keys(world)) if not c.ok}

    assert failed == {"record-states-tombstone", "digests"}


def test_a_tampered_audit_path_fails_inclusion(world: World) -> None:
    proof = expired_proof(world)
    path = ("0" * 64, *proof.auditPath[1:])

    failed = {
        c.name
        for c in verify_tombstone(proof.model_copy(update={"auditPath": path}), keys(world))
        if not c.ok
    }

    assert failed == {"inclusion"}


def test_a_proof_checked_with_another_key_fails_the_signature(world: World) -> None:
    proof = expired_proof(world)
    other = MemorySigner()

    failed = {
        c.name
        for c in verify_tombstone(proof, {world.signer.key_id: other.public_key()})
        if not c.ok
    }

    assert failed == {"checkpoint-signature"}


def test_identical_checkpoints_of_two_jobs_expire_once_together_with_both_syncs(
    world: World,
) -> None:
    checkpoints = finished_job(world, "job-1", {"epoch-1.pt": b"same"}, ENDED)
    finished_job(world, "job-2", {"epoch-1.pt": b"same"}, ENDED)  # a reproduction

    report = run(world, DUE)

    assert report.expired == 1
    assert sorted((o.objectId, o.action) for o in report.outcomes) == [
        ("job-1", "expired"),
        ("job-2", "expired"),
    ]
    assert len(world.ledger.records("retention", 1, 10).items) == 1
    assert world.objects.versions == {}
    assert world.retention.states.keys() == {checkpoints.artifactId}


def test_identical_checkpoints_stay_while_any_job_sharing_them_is_held_or_not_due(
    world: World,
) -> None:
    finished_job(world, "job-1", {"epoch-1.pt": b"same"}, ENDED)
    finished_job(world, "job-2", {"epoch-1.pt": b"same"}, ENDED)
    world.service.place_hold("training-job", "job-2", LegalHoldRequest(reason="audit"), ADMIN)

    held = run(world, DUE)
    scoped = run(world, DUE, trainingJobIds=["job-1"])

    assert {o.action for o in held.outcomes} == {"held"}
    assert [(o.action, o.detail) for o in scoped.outcomes] == [
        ("shared", "the artifact is also held by job:job-2")
    ]
    assert world.ledger.head("retention") is None
