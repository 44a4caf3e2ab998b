"""Request and response contracts of the training API (source of ``schemas/``)."""

from __future__ import annotations

from pydantic import Field

from modelops.contracts.registry import Contract
from modelops.domain.training import SubmitTrainingJobRequest, TrainingJob

__all__ = ["SubmitTrainingJobRequest", "TrainingJob", "TrainingJobList"]


class TrainingJobList(Contract):
    items: list[TrainingJob]
    nextToken: str | None = Field(default=None, description="Pass back to read the next page.")
