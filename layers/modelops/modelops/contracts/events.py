"""The details of the EventBridge events the platform publishes (source illuvrse.modelops),
by detail type; ``schemas/events/`` is generated from them for consumers (Kernel, Finance)."""

from __future__ import annotations

from pydantic import BaseModel

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


STATE_CHANGE = "Training Job State Change"
USAGE = "Training Job Usage"
EVENTS: dict[str, type[BaseModel]] = {STATE_CHANGE: TrainingJobStateChange, USAGE: UsageRecord}
