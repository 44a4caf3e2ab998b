"""Drift monitoring records: a model version's baseline, the findings of each check, the
alerts they raise and their remediation (a signed retrain proposal, a quarantine), and
ground-truth labels posted for captured inferences.

The statistics themselves (summaries, constraints, per-feature drift) are the documents of
``modelops.domain.drift``; these records point at them by S3 key and SHA-256 so every
finding can be traced to the exact evidence it was computed from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from modelops.domain.drift import FeatureDrift
from modelops.domain.entities import Entity
from modelops.domain.signing import ManifestSignature
from modelops.domain.training import SubmitTrainingJobRequest

BaselineStatus = Literal["PENDING", "READY", "FAILED"]
PREDICTION_FEATURE = "prediction"  # the output distribution: predicted labels, categorical
MAX_LABELS_PER_CALL = 500


class Evidence(Entity):
    """A document a finding was computed from: where it is and its SHA-256."""

    key: str
    sha256: str


class DriftBaseline(Entity):
    modelId: str
    datasetId: str = Field(description="The data the baseline summarises (the training set).")
    datasetChecksum: str
    features: tuple[str, ...] = Field(description="Input features, in the endpoint's order.")
    categorical: tuple[str, ...] = ()
    labelColumn: str | None = None
    status: BaselineStatus
    statusReason: str = ""
    statistics: Evidence | None = None
    constraints: Evidence | None = None
    referenceAccuracy: float | None = Field(
        default=None, description="The model's accuracy on the baseline data (labels known)."
    )
    rows: int = 0
    requestedBy: str
    requestedAt: datetime
    completedAt: datetime | None = None
    correlationId: str = ""


class PerformanceDrift(Entity):
    """Accuracy on the window's inferences whose ground truth arrived, against the baseline."""

    labelled: int
    accuracy: float | None
    referenceAccuracy: float | None
    drop: float | None
    status: Literal["ok", "warn", "alarm", "unknown"]


class DriftFinding(Entity):
    findingId: str
    modelId: str
    endpoint: str
    variant: str = Field(description="The production variant whose data capture was read.")
    deployId: str
    windowStart: datetime
    windowEnd: datetime
    rows: int
    features: tuple[FeatureDrift, ...]
    drifted: tuple[str, ...]
    warned: tuple[str, ...]
    datasetDrift: bool
    performance: PerformanceDrift | None = None
    status: Literal["ok", "warn", "alarm"]
    evidence: dict[str, Evidence] = Field(
        description="statistics, constraints, the merged window summary and each hourly one."
    )
    checkedAt: datetime
    correlationId: str


Remediation = Literal["retrain", "quarantine"]
AlertSource = Literal["monitor", "alarm", "api"]


class DriftAlert(Entity):
    alertId: str
    modelId: str
    findingId: str | None
    source: AlertSource
    reason: str
    features: tuple[str, ...] = ()
    remediation: tuple[Remediation, ...]
    proposalId: str | None = None
    quarantined: bool = False
    raisedBy: str
    raisedAt: datetime
    correlationId: str


ProposalStatus = Literal["PROPOSED", "APPROVED", "SUBMITTED"]


class CostEstimate(Entity):
    gpuHours: float
    instanceHours: float
    costUsd: float
    basis: str = Field(description="How it was estimated (the previous job's usage).")


class RetrainProposal(Entity):
    proposalId: str
    modelId: str
    family: str
    alertId: str
    findingId: str | None
    windowStart: datetime | None
    windowEnd: datetime | None
    driftedFeatures: tuple[str, ...]
    datasetManifest: dict[str, Any] = Field(
        description="The data to train on: the previous datasets plus the window's capture."
    )
    previousJobId: str
    reproducibility: dict[str, Any] = Field(description="The previous job's record, verbatim.")
    request: SubmitTrainingJobRequest = Field(
        description="The training request to submit once approved (modelVersion to set)."
    )
    estimate: CostEstimate
    statement: str = Field(description="Canonical JSON of the proposal that was signed.")
    signature: ManifestSignature
    status: ProposalStatus
    approvedBy: str | None = None
    approvedAt: datetime | None = None
    submittedJobId: str | None = None
    createdAt: datetime
    revision: int = 0


class Quarantine(Entity):
    """A model version that may not be promoted; for a high-risk family it may not be
    (re)deployed either until an approver releases it."""

    modelId: str
    alertId: str
    reason: str
    active: bool = True
    since: datetime
    releasedBy: str | None = None
    releasedAt: datetime | None = None
    revision: int = 0


class GroundTruth(Entity):
    inferenceId: str = Field(min_length=1, max_length=128)
    label: str = Field(min_length=1, max_length=256)
