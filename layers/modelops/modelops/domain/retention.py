"""Retention: legal holds, tombstones of expired objects, and the offline proof that an
expired object existed with the content it had. Pure: no I/O, no clocks, no keys.

A tombstone is what stays of an artifact the retention job expired: every file's path,
SHA-256 and size, the artifact's root and manifest digests, why and under which policy. It
is appended to the ledger stream ``retention`` as an audit event (action
``retention.tombstone``) and sealed by a signed checkpoint BEFORE any object is deleted.

The proof (``TombstoneProof``) is the tombstone, its ledger record, the checkpoint whose
range covers the record and the RFC 9162 audit path from the record's hash (an RFC 6962
leaf hash, see ``modelops.domain.ledger``) to the checkpoint's Merkle root.
``verify_tombstone`` recomputes, from the public keys alone: the record's hash; that the
record's event is this tombstone (same files and digests); that the files give the root and
manifest digests; the Merkle root from the audit path; the checkpoint's signature. Nothing
it checks needs the deleted objects.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from modelops.domain.crypto import verify_ed25519
from modelops.domain.digests import canonical_json
from modelops.domain.entities import Entity
from modelops.domain.ledger import (
    Checkpoint,
    LedgerRecord,
    UtcDatetime,
    checkpoint_statement,
    record_hash,
    verify_inclusion,
)
from modelops.domain.manifest import FileEntry, Manifest

STREAM = "retention"
TOMBSTONE_ACTION = "retention.tombstone"
HOLD_KINDS = ("artifact", "dataset", "training-job")
HoldKind = Literal["artifact", "dataset", "training-job"]
ObjectKind = Literal["checkpoints", "dataset"]


class TombstoneStatus(StrEnum):
    """Steps of an expiry, in order; a crash leaves the step the next run completes."""

    PENDING = "PENDING"  # stored, its audit event maybe not yet appended
    RECORDED = "RECORDED"  # appended at ledgerSeq, not yet under a signed checkpoint
    SEALED = "SEALED"  # a signed checkpoint covers it: the objects may now be deleted
    DELETED = "DELETED"  # the objects are gone; the record answers 410 GONE


class LegalHold(Entity):
    kind: HoldKind
    targetId: str = Field(min_length=1, max_length=256)
    reason: str = Field(min_length=1, max_length=1024)
    placedBy: str
    placedAt: datetime


class Tombstone(Entity):
    tombstoneId: str
    artifactId: str
    objectKind: ObjectKind
    objectId: str = Field(description="The training job (checkpoints) or the dataset.")
    retentionClass: str
    reason: str
    policy: str = Field(description="The retention rule that expired it.")
    rootDigest: str
    manifestDigest: str
    files: tuple[FileEntry, ...]
    status: TombstoneStatus
    createdAt: datetime
    ledgerStream: str = STREAM
    ledgerSeq: int | None = None
    recordHash: str | None = None
    checkpointToSeq: int | None = None
    deletedAt: datetime | None = None
    deletedKeys: tuple[str, ...] = Field(default=(), description="S3 keys deleted (every version).")
    sharedBlobsKept: tuple[str, ...] = Field(
        default=(), description="Blobs kept: retained artifacts hold the same content."
    )


class ArtifactRetention(Entity):
    """An artifact's retention state, beside its immutable record."""

    artifactId: str
    status: Literal["expired"]
    tombstoneId: str
    retentionClass: str
    at: UtcDatetime


def tombstone_id(artifact_id: str) -> str:
    """One tombstone per artifact, named from it, so every run of an expiry finds it."""
    return "tomb-" + hashlib.sha256(artifact_id.encode()).hexdigest()[:32]


def tombstone_details(tombstone: Tombstone) -> dict[str, str]:
    """What the ledger event states about the expired object (its ``details``)."""
    return {
        "tombstoneId": tombstone.tombstoneId,
        "artifactId": tombstone.artifactId,
        "objectKind": tombstone.objectKind,
        "objectId": tombstone.objectId,
        "class": tombstone.retentionClass,
        "reason": tombstone.reason,
        "policy": tombstone.policy,
        "rootDigest": tombstone.rootDigest,
        "manifestDigest": tombstone.manifestDigest,
        "files": canonical_json([f.model_dump() for f in tombstone.files]).decode(),
    }


class TombstoneProof(Entity):
    tombstone: Tombstone
    record: LedgerRecord
    checkpoint: Checkpoint
    leafIndex: int = Field(ge=0, description="The record's index among the checkpoint's.")
    auditPath: tuple[str, ...] = Field(description="RFC 9162 audit path, hex, leaf to root.")


class ProofCheck(Entity):
    name: str
    ok: bool
    message: str


def verify_tombstone(proof: TombstoneProof, public_keys: Mapping[str, bytes]) -> list[ProofCheck]:
    """Every check of ``proof`` (module docstring), in order; all must pass.

    ``public_keys``: key id -> DER SubjectPublicKeyInfo of the Ed25519 checkpoint keys."""
    tomb, record, checkpoint = proof.tombstone, proof.record, proof.checkpoint
    checks: list[ProofCheck] = []

    def check(name: str, ok: bool, good: str, bad: str) -> None:
        checks.append(ProofCheck(name=name, ok=ok, message=good if ok else bad))

    recomputed = record_hash(record.prevHash, record.body)
    check(
        "record-hash",
        recomputed == record.hash,
        f"ledger record {record.stream} {record.seq} hashes to {record.hash[:16]}...",
        f"ledger record {record.stream} {record.seq} does not hash to its stated hash",
    )
    try:
        event = record.event()
        stated = dict(event.details)
        action = event.action
    except (ValueError, KeyError) as exc:
        stated, action = {}, f"unreadable ({exc})"
    expected = tombstone_details(tomb)
    differing = sorted(k for k in expected if stated.get(k) != expected[k])
    check(
        "record-states-tombstone",
        action == TOMBSTONE_ACTION and not differing,
        f"the record is the tombstone of {tomb.artifactId} ({len(tomb.files)} files)",
        f"the record is not this tombstone (action {action}; differs in "
        f"{', '.join(differing) or 'nothing'})",
    )
    manifest = Manifest(files=tomb.files) if tomb.files else None
    digests_ok = (
        manifest is not None
        and manifest.root_digest == tomb.rootDigest
        and manifest.manifest_digest == tomb.manifestDigest
    )
    check(
        "digests",
        digests_ok,
        f"the files give root digest {tomb.rootDigest[:16]}... and the manifest digest",
        "the files do not give the tombstone's root and manifest digests",
    )
    in_range = (
        record.stream == checkpoint.stream
        and checkpoint.fromSeq <= record.seq <= checkpoint.toSeq
        and proof.leafIndex == record.seq - checkpoint.fromSeq
    )
    try:
        path = [bytes.fromhex(node) for node in proof.auditPath]
        included = in_range and verify_inclusion(
            bytes.fromhex(record.hash),
            proof.leafIndex,
            checkpoint.size,
            path,
            bytes.fromhex(checkpoint.merkleRoot),
        )
    except ValueError:
        included = False
    check(
        "inclusion",
        included,
        f"the audit path ({len(proof.auditPath)} nodes) places record {record.seq} under the "
        f"Merkle root of checkpoint {checkpoint.fromSeq}..{checkpoint.toSeq}",
        f"record {record.seq} is not included in checkpoint "
        f"{checkpoint.fromSeq}..{checkpoint.toSeq}",
    )
    check(
        "checkpoint-signature",
        _signed(checkpoint, public_keys),
        f"the checkpoint is signed by {checkpoint.keyId.rsplit('/', 1)[-1]} (Ed25519)",
        f"the checkpoint has no valid signature by a known key ({checkpoint.keyId})",
    )
    return checks


def _signed(checkpoint: Checkpoint, public_keys: Mapping[str, bytes]) -> bool:
    der = public_keys.get(checkpoint.keyId)
    if der is None:
        return False
    try:
        signature = base64.b64decode(checkpoint.signature, validate=True)
        return verify_ed25519(der, signature, checkpoint_statement(checkpoint))
    except (binascii.Error, ValueError):
        return False
