"""The details of the EventBridge events the platform publishes (source illuvrse.modelops),
by detail type; ``schemas/events/`` is generated from them for consumers (Kernel, Finance)."""

from __future__ import annotations

from pydantic import BaseModel

from modelops import platform
from modelops.contracts.registry import Contract
from modelops.domain.pools import UsageRecord


class TrainingJobStateChange(Contract):
    jobId: str
    status: str
    previousStatus: str | None
    modelFamily: str
    modelVersion: str
    modelId: str | None
    reason: str
    correlationId: str
    purpose: str = "train"
    evaluationId: str | None = None


class DriftDetected(Contract):
    """A drift check found features (or performance) past their alarm threshold; the
    finding (GET /drift/findings/{findingId}) holds every statistic and its evidence."""

    findingId: str
    modelId: str
    endpoint: str
    drifted: list[str]
    performance: str
    windowStart: str
    windowEnd: str
    correlationId: str


STATE_CHANGE = platform.TRAINING_STATE_CHANGE
USAGE = "Training Job Usage"
EVENTS: dict[str, type[BaseModel]] = {
    STATE_CHANGE: TrainingJobStateChange,
    USAGE: UsageRecord,
    platform.DRIFT_DETECTED: DriftDetected,
}
