"""Contracts of promotion, approvals, family policies and stage history."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator

from modelops.contracts.registry import Contract
from modelops.domain.entities import ModelStatus, ModelVersion
from modelops.domain.manifest import FileEntry
from modelops.domain.policy import RiskTier
from modelops.domain.promotion import (
    PURPOSE_PATTERN,
    ApproverKey,
    FamilyPolicy,
    MetricRule,
    Promotion,
    StageChange,
)


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError("must be base64") from exc
    return value


class PromoteRequest(Contract):
    targetStage: ModelStatus = Field(
        description="staging or prod (one rung up), one rung down, or deprecated."
    )
    reason: str = Field(default="", max_length=1024)


class PromotionResponse(Contract):
    model: ModelVersion
    promotion: Promotion | None = Field(
        default=None, description="Present for promotions (moves up the ladder)."
    )
    change: StageChange | None = Field(default=None, description="The stage move, once made.")


class ApproveRequest(Contract):
    keyId: str = Field(pattern=r"^apk-[0-9a-f]{24}$")
    signature: str = Field(
        max_length=256, description="Base64 Ed25519 signature over the promotion statement."
    )

    _b64 = field_validator("signature")(_base64)


class RegisterApproverRequest(Contract):
    principal: str = Field(pattern=r"^arn:\S+$", max_length=2048)
    publicKey: str = Field(
        max_length=512, description="Base64 DER SubjectPublicKeyInfo of an Ed25519 key."
    )

    _b64 = field_validator("publicKey")(_base64)


class FamilyPolicyRequest(Contract):
    riskTier: RiskTier = "low"
    approvalsRequired: int = Field(default=0, ge=0, le=10)
    gates: dict[ModelStatus, list[MetricRule]] = Field(default_factory=dict)
    evaluationRequired: list[ModelStatus] = Field(
        default_factory=list,
        description="Stages that need a completed evaluation (POST /eval/run) whose safety "
        "checks passed; metric rules then check its metrics, fairness included.",
    )


class FamilyPolicyResponse(Contract):
    policy: FamilyPolicy


class ApproverResponse(Contract):
    approver: ApproverKey


class DatasetApprovalRequest(Contract):
    purposes: list[Annotated[str, StringConstraints(pattern=PURPOSE_PATTERN)]] = Field(
        min_length=1,
        max_length=16,
        description="Uses allowed: training, evaluation, monitoring (drift baselines), "
        "inference (promotion and serving), or a purpose a dataset's restrictions name.",
    )
    validDays: int = Field(ge=1, le=366, description="The approval lapses after this.")
    note: str = Field(default="", max_length=1024)


class PublicKeyInfo(Contract):
    keyId: str
    algorithm: str
    publicKeyDer: str = Field(description="Base64 DER SubjectPublicKeyInfo.")
    fingerprint: str = Field(description="SHA-256 of the DER public key.")


class Provenance(Contract):
    """Everything needed to verify a model version offline, public keys included (pin them
    out of band for trust: ``modelops verify model --statement-key/--model-key``)."""

    model: ModelVersion
    promotions: list[Promotion] = Field(
        description="Each with its gates, signed statement, approvals and KMS signature."
    )
    modelSigningBundle: dict[str, Any] | None = Field(
        default=None,
        description="OpenSSF model-signing v1.0 bundle of the model's files (model.sig).",
    )
    keys: list[PublicKeyInfo]


class ModelPackage(Contract):
    """What an agent runtime (Agent Manager) needs to load a model version and refuse it
    unless it checks out: short-lived download URLs for its files, the registered digests,
    and the signed provenance (``modelops verify package`` or
    ``modelops_cli.package.verify_package`` check it)."""

    provenance: Provenance
    files: list[FileEntry] = Field(description="Path, size and SHA-256 of every file.")
    downloads: dict[str, str] = Field(description="Presigned GET URL per file.")
    expiresAt: datetime = Field(description="When the download URLs stop working.")


class StageHistory(Contract):
    family: str
    changes: list[StageChange]
    holder: StageChange | None = Field(
        default=None, description="With stage and at: the move that put that stage's holder there."
    )
