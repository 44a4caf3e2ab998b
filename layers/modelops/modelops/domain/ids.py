"""Identifiers. Registry ids are derived from natural keys or content, so a retried
registration lands on the same id; their prefix names the entity kind."""

from __future__ import annotations

import hashlib
import re

ARTIFACT, DATASET, MODEL, SOURCE, UPLOAD = "art", "ds", "mdl", "src", "upl"
PROMOTION, APPROVER_KEY, TRAINING_JOB, DEPLOYMENT = "prm", "apk", "trn", "dep"
EVALUATION, DRIFT_FINDING, DRIFT_ALERT, RETRAIN_PROPOSAL = "evl", "dft", "alr", "rtp"
SANITIZATION = "san"
ID_PATTERN = re.compile(
    r"^(art|ds|mdl|src|upl|prm|apk|trn|dep|evl|dft|alr|rtp|san)-[0-9a-f]{24,32}$"
)
TRAINING_JOB_PATTERN = r"^trn-[0-9a-f]{24}$"


def _derive(prefix: str, *parts: str, length: int = 24) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"{prefix}-{digest[:length]}"


def artifact_id(manifest_digest: str) -> str:
    return _derive(ARTIFACT, manifest_digest, length=32)


def escrow_artifact_id(manifest_digest: str) -> str:
    """The same files uploaded to escrow are another artifact than outside it."""
    return _derive(ARTIFACT, "escrow", manifest_digest, length=32)


def sanitization_id(dataset_id: str, name: str, config_digest: str) -> str:
    """One run per raw dataset, derivative name and sanitizer configuration."""
    return _derive(SANITIZATION, dataset_id, name, config_digest)


def dataset_id(name: str, root_digest: str) -> str:
    return _derive(DATASET, name, root_digest)


def model_id(family: str, version: str) -> str:
    return _derive(MODEL, family, version)


def source_id(ref: str) -> str:
    return _derive(SOURCE, ref)


def approver_key_id(public_key_fingerprint: str) -> str:
    return f"{APPROVER_KEY}-{public_key_fingerprint[:24]}"


def training_job_id(nonce: str) -> str:
    """A new job's id: jobs have no natural key (the same inputs may be trained again on
    purpose), so the caller passes a fresh nonce; retries are deduplicated by the
    Idempotency-Key header, not by the id."""
    return _derive(TRAINING_JOB, nonce)


def deployment_id(nonce: str) -> str:
    return _derive(DEPLOYMENT, nonce)


def fresh(prefix: str, nonce: str) -> str:
    """A new record's id for kinds without a natural key (evaluations, findings, alerts,
    proposals): ``prefix`` plus 24 hex digits derived from the caller's fresh nonce."""
    return _derive(prefix, nonce)
