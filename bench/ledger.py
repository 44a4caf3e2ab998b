"""Audit ledger verification: 100,000 sealed events with a signed checkpoint every 1,000,
verified in full (chains, positions, Merkle roots, 100 Ed25519 signatures), against hashing
the same event bodies once each with hashlib in a Python loop."""

from __future__ import annotations

import base64
import hashlib
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from modelops.domain import ids
from modelops.domain.ledger import (
    AuditEvent,
    Checkpoint,
    LedgerRecord,
    Outcome,
    checkpoint_statement,
    make_checkpoint,
    merkle_root,
    seal,
    verify_ledger,
)

KEY_ID = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PRINCIPALS = (
    "arn:aws:sts::123456789012:assumed-role/ml-engineer/alice@example.com",
    "arn:aws:sts::123456789012:assumed-role/kernel-role/kernel-training-4711",
    "arn:aws:iam::123456789012:user/approver-bob",
)
ACTIONS = (
    "artifacts.upload.start",
    "artifacts.upload.complete",
    "datasets.register",
    "models.register",
    "models.promote",
    "datasets.approve",
)
REJECTIONS = (
    (409, "VERSION_CONFLICT: family fraud-detector version 1.4.2 exists with other content"),
    (403, "FORBIDDEN: role ml-engineer may not approve"),
    (422, "DIGEST_MISMATCH: weights/model.safetensors"),
)


def _events(count: int, seed: int = 7) -> list[AuditEvent]:
    rng = random.Random(seed)
    start = datetime(2025, 3, 1, tzinfo=UTC)
    events = []
    for n in range(count):
        action = ACTIONS[n % len(ACTIONS)]
        family = f"family-{rng.randrange(40)}"
        version = f"1.{rng.randrange(20)}.{rng.randrange(10)}"
        resources = (ids.model_id(family, version), ids.artifact_id(f"{n:064x}"))
        rejected = rng.random() < 0.1
        status, reason = REJECTIONS[n % len(REJECTIONS)] if rejected else (201, "")
        request_id = str(uuid.UUID(int=rng.getrandbits(128)))
        events.append(
            AuditEvent(
                stream="registry",
                eventId=str(uuid.UUID(int=rng.getrandbits(128))),
                time=start + timedelta(milliseconds=1500 * n + rng.randrange(1000)),
                principal=PRINCIPALS[rng.randrange(len(PRINCIPALS))],
                action=action,
                resources=resources[: 1 + n % 2],
                requestId=request_id,
                correlationId=request_id,
                outcome=Outcome.REJECTED if rejected else Outcome.SUCCEEDED,
                status=status,
                reason=reason,
                inputDigest=hashlib.sha256(request_id.encode()).hexdigest(),
                details={"family": family, "version": version},
            )
        )
    return events


def build(count: int, every: int) -> tuple[list[LedgerRecord], list[Checkpoint], dict[str, bytes]]:
    """A sealed stream of ``count`` events and a checkpoint after every ``every`` of them."""
    key = Ed25519PrivateKey.generate()
    public_der = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    records: list[LedgerRecord] = []
    checkpoints: list[Checkpoint] = []
    previous: LedgerRecord | None = None
    for event in _events(count):
        previous = seal(event, previous)
        records.append(previous)
        if len(records) % every == 0:
            checkpoints.append(
                make_checkpoint(
                    records[-every:],
                    checkpoints[-1] if checkpoints else None,
                    KEY_ID,
                    key.sign,
                    event.time,
                )
            )
    return records, checkpoints, {KEY_ID: public_der}


def _best_of(runs: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _crypto_floor(
    bodies: list[bytes], checkpoints: list[Checkpoint], public_keys: dict[str, bytes]
) -> Callable[[], object]:
    """Only the hashing and signature checks any verifier of this ledger must make: the chain
    over the (pre-encoded) bodies, the Merkle trees and the signatures; no bookkeeping."""
    keys: dict[str, Ed25519PublicKey] = {}
    for key_id, der in public_keys.items():
        key = load_der_public_key(der)
        if not isinstance(key, Ed25519PublicKey):
            raise TypeError(f"{key_id} is not an Ed25519 key")
        keys[key_id] = key
    signed = [
        (keys[c.keyId], base64.b64decode(c.signature), checkpoint_statement(c)) for c in checkpoints
    ]

    def floor() -> None:
        sha256, digest = hashlib.sha256, bytes(32)
        digests = [digest := sha256(b"\x00" + digest + body).digest() for body in bodies]
        for checkpoint in checkpoints:
            merkle_root(digests[checkpoint.fromSeq - 1 : checkpoint.toSeq])
        for key, signature, statement in signed:
            key.verify(signature, statement)

    return floor


def run(count: int = 100_000, every: int = 1_000, runs: int = 3) -> list[dict[str, object]]:
    records, checkpoints, public_keys = build(count, every)
    report = verify_ledger(records, checkpoints, public_keys)
    if not report.ok or report.recordsChecked != count or report.uncheckpointed != 0:
        raise AssertionError(f"the benchmark ledger does not verify: {report}")
    bodies = [record.body.encode() for record in records]

    def peer() -> None:
        for body in bodies:
            hashlib.sha256(body).digest()

    peer_s = _best_of(runs, peer)
    ours_s = _best_of(runs, lambda: verify_ledger(records, checkpoints, public_keys))
    floor_s = _best_of(runs, _crypto_floor(bodies, checkpoints, public_keys))
    return [
        {
            "benchmark": f"ledger: verify {count // 1000}k events, checkpoint every {every}",
            "peer": "hashlib.sha256 over the same bodies",
            "ours_events_s": round(count / ours_s),
            "peer_events_s": round(count / peer_s),
            "mean_body_bytes": round(sum(map(len, bodies)) / count),
            # The ratio a verifier doing nothing but the hashes and signatures would reach.
            "crypto_floor_ratio": round(peer_s / floor_s, 3),
            "ratio": round(peer_s / ours_s, 3),
            "target": ">= 0.5",
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
