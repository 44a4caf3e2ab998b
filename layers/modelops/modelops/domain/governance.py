"""Sanitization runs: a raw PII dataset in escrow turned into a registered derivative."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from modelops.domain.entities import NAME_PATTERN, Entity, PiiFlag
from modelops.domain.sanitize import SanitizeConfig, UniquenessReport

SanitizationStatus = Literal["PENDING", "COMPLETED", "FAILED"]


class SanitizeRequest(Entity):
    name: str = Field(pattern=NAME_PATTERN, description="The derivative dataset's name.")
    config: SanitizeConfig
    description: str = Field(default="", max_length=4096)


class SanitizationRun(Entity):
    runId: str
    datasetId: str = Field(description="The raw dataset (in escrow).")
    rawChecksum: str = Field(description="Its root digest: the content sanitized.")
    request: SanitizeRequest
    configDigest: str
    status: SanitizationStatus
    requestedBy: str
    requestedAt: datetime
    correlationId: str = ""
    derivedDatasetId: str | None = None
    reports: dict[str, UniquenessReport] = Field(
        default_factory=dict, description="Uniqueness before and after, per file."
    )
    remainingPiiFlags: tuple[PiiFlag, ...] = ()
    failure: str | None = None
    completedAt: datetime | None = None
