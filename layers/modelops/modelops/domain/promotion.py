"""Promotion: the stage ladder, its gates, and what a completed promotion binds.

Stages are ``draft`` (sandbox) -> ``staging`` -> ``prod``, one rung at a time; demotion
goes one rung down; any version can be deprecated. Promoting passes gates: metric rules
with MLflow ``MetricThreshold`` semantics (absolute threshold; minimum absolute or relative
improvement over the family's current prod version; direction), policy clearance, and a
KMS signature over a statement that binds the model's root digest, its datasets' digests,
the evaluation and the policy decision to the move. High-risk families also need M
approvals: Ed25519 signatures by registered approver keys over the same statement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from modelops.domain.entities import NAME_PATTERN, Entity, ModelStatus
from modelops.domain.policy import RiskTier, TargetEnv
from modelops.domain.signing import ManifestSignature

LADDER: tuple[ModelStatus, ...] = (ModelStatus.DRAFT, ModelStatus.STAGING, ModelStatus.PROD)
TARGET_ENV: dict[ModelStatus, TargetEnv] = {
    ModelStatus.DRAFT: "sandbox",
    ModelStatus.STAGING: "staging",
    ModelStatus.PROD: "prod",
}
STATEMENT_TYPE = "modelops.promotion/v1"
Move = Literal["promote", "demote", "deprecate"]


def next_rung(current: ModelStatus) -> ModelStatus | None:
    """The stage a promotion moves ``current`` to; None at the top or off the ladder."""
    if current not in LADDER or current is LADDER[-1]:
        return None
    return LADDER[LADDER.index(current) + 1]


def move_kind(current: ModelStatus, target: ModelStatus) -> Move | None:
    """What moving ``current`` -> ``target`` is, or None when the ladder forbids it."""
    if current is ModelStatus.DEPRECATED or current is target:
        return None
    if target is ModelStatus.DEPRECATED:
        return "deprecate"
    step = LADDER.index(target) - LADDER.index(current)
    if step == 1:
        return "promote"
    return "demote" if step == -1 else None


class MetricRule(Entity):
    """MLflow ``MetricThreshold`` semantics for one metric."""

    metric: str = Field(min_length=1, max_length=128)
    threshold: float | None = Field(default=None, description="Absolute bound to meet.")
    minAbsoluteChange: float | None = Field(
        default=None, ge=0, description="Must beat the prod version by at least this much."
    )
    minRelativeChange: float | None = Field(
        default=None, ge=0, description="Must beat the prod version by at least this fraction."
    )
    greaterIsBetter: bool = True

    @model_validator(mode="after")
    def _some_bound(self) -> MetricRule:
        if (
            self.threshold is None
            and self.minAbsoluteChange is None
            and self.minRelativeChange is None
        ):
            raise ValueError("a metric rule needs a threshold or a minimum change")
        return self

    def failures(self, candidate: dict[str, float], baseline: dict[str, float] | None) -> list[str]:
        """Why ``candidate`` fails this rule (empty when it passes)."""
        value = candidate.get(self.metric)
        if value is None:
            return [f"{self.metric} is missing from the model's metrics"]
        sign = 1.0 if self.greaterIsBetter else -1.0
        better = "at least" if self.greaterIsBetter else "at most"
        problems = []
        if self.threshold is not None and sign * (value - self.threshold) < 0:
            problems.append(f"{self.metric} = {value:g}, needs {better} {self.threshold:g}")
        reference = None if baseline is None else baseline.get(self.metric)
        if reference is not None:
            gain = sign * (value - reference)
            if self.minAbsoluteChange is not None and gain < self.minAbsoluteChange:
                problems.append(
                    f"{self.metric} = {value:g} improves on prod's {reference:g} by {gain:g}, "
                    f"needs {self.minAbsoluteChange:g}"
                )
            if self.minRelativeChange is not None and reference != 0:
                relative = gain / abs(reference)
                if relative < self.minRelativeChange:
                    problems.append(
                        f"{self.metric} = {value:g} improves on prod's {reference:g} by "
                        f"{relative:.2%}, needs {self.minRelativeChange:.2%}"
                    )
        return problems


class FamilyPolicy(Entity):
    """Per model family: risk tier, approvals needed for prod, metric gates per stage."""

    family: str = Field(pattern=NAME_PATTERN)
    riskTier: RiskTier = "low"
    approvalsRequired: int = Field(
        default=0, ge=0, le=10, description="M of the registered approvers (high risk: >= 1)."
    )
    gates: dict[ModelStatus, tuple[MetricRule, ...]] = Field(default_factory=dict)
    evaluationRequired: tuple[ModelStatus, ...] = Field(
        default=(),
        description="Stages a version may only enter with a completed evaluation whose "
        "safety checks passed; its metrics (fairness included) are what the rules check.",
    )
    updatedBy: str = ""
    updatedAt: datetime | None = None

    @model_validator(mode="after")
    def _high_risk_needs_approvals(self) -> FamilyPolicy:
        if self.riskTier == "high" and self.approvalsRequired < 1:
            raise ValueError("a high-risk family needs approvalsRequired >= 1")
        return self


class GateResult(Entity):
    gate: Literal[
        "ladder", "evaluation", "quarantine", "metrics", "policy", "approvals", "signature"
    ]
    passed: bool
    message: str


class Approval(Entity):
    principal: str = Field(description="The approver: the owner of the key that signed.")
    keyId: str
    signature: str = Field(description="Base64 Ed25519 signature over the statement bytes.")
    approvedAt: datetime
    relayedBy: str | None = Field(
        default=None, description="Who submitted it for the approver (Kernel), if not them."
    )


class ApproverKey(Entity):
    keyId: str
    principal: str
    publicKey: str = Field(description="Base64 DER SubjectPublicKeyInfo (Ed25519).")
    fingerprint: str
    registeredBy: str
    registeredAt: datetime


PromotionStatus = Literal["PENDING_APPROVAL", "COMPLETED"]


class Promotion(Entity):
    promotionId: str
    modelId: str
    family: str
    version: str
    fromStage: ModelStatus
    toStage: ModelStatus
    requestedBy: str
    requestedAt: datetime
    status: PromotionStatus
    gates: tuple[GateResult, ...]
    statement: str = Field(description="Canonical JSON that approvers and KMS sign.")
    statementDigest: str
    approvalsRequired: int
    approvals: tuple[Approval, ...] = ()
    signature: ManifestSignature | None = None
    completedAt: datetime | None = None
    revision: int = Field(default=1, description="Optimistic concurrency on approvals.")


PURPOSE_PATTERN = r"^[a-z][a-z0-9-]{0,63}$"


class DatasetApproval(Entity):
    """An approver allowed a PII dataset's use for named purposes until a time (the policies
    read it as piiApproved for a use whose purpose it names, while it is in force). A new
    approval of the dataset replaces the previous one."""

    datasetId: str
    approvedBy: str
    approvedAt: datetime
    purposes: tuple[str, ...] = Field(
        default=(), description="What the data may be used for, e.g. training, evaluation."
    )
    expiresAt: datetime | None = Field(default=None, description="Not in force from then on.")
    note: str = ""

    def allows(self, purpose: str, now: datetime) -> bool:
        return purpose in self.purposes and self.expiresAt is not None and now < self.expiresAt


class StageChange(Entity):
    """One move of a model version between stages; the family's history is these, in time."""

    family: str
    modelId: str
    version: str
    fromStage: ModelStatus
    toStage: ModelStatus
    at: datetime
    by: str
    promotionId: str | None = None


def version_at(changes: list[StageChange], stage: ModelStatus, at: datetime) -> StageChange | None:
    """The change that put the version holding ``stage`` at time ``at`` there, if any."""
    holder: StageChange | None = None
    for change in sorted(changes, key=lambda c: c.at):
        if change.at > at:
            break
        if change.toStage is stage:
            holder = change
        elif holder is not None and change.modelId == holder.modelId:
            holder = None  # the holder left the stage
    return holder
