"""Request and response contracts of retention: runs of the retention job, legal holds,
tombstones with their proofs (source of ``schemas/``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from modelops.domain.retention import LegalHold, Tombstone, TombstoneProof

_CONTRACT = ConfigDict(extra="forbid", frozen=True, defer_build=True)
MAX_RUN_LIMIT = 500

JobClass = Literal["checkpoints", "datasets"]
JOB_CLASSES: tuple[JobClass, ...] = ("checkpoints", "datasets")
# What a run did with one candidate: expired it (tombstone sealed, objects deleted), or why
# it left it.
RetentionAction = Literal[
    "expired",  # tombstone sealed in a signed checkpoint, objects deleted
    "held",  # under legal hold
    "prod-lineage",  # in the lineage of a model that is or was in prod
    "shared",  # the artifact is also a model's, or a retained dataset's
    "escrow-scheduled",  # raw PII in escrow: only the scheduled retention-run deletes there
    "awaiting-checkpoint",  # tombstone recorded; no signed checkpoint covers it yet
]


class RetentionRunRequest(BaseModel):
    model_config = _CONTRACT
    classes: list[JobClass] = Field(
        default_factory=lambda: list(JOB_CLASSES),
        min_length=1,
        description="Retention classes to expire (modelops.platform.RETENTION_CLASSES).",
    )
    asOf: AwareDatetime | None = Field(
        default=None,
        description="Judge periods as of this time (default: now); a later time expires "
        "sooner (drills, the demo). Platform administrators only, like the run itself.",
    )
    trainingJobIds: list[str] = Field(
        default_factory=list, max_length=100, description="Only these jobs' checkpoints."
    )
    datasetIds: list[str] = Field(
        default_factory=list, max_length=100, description="Only these datasets."
    )
    limit: int = Field(default=50, ge=1, le=MAX_RUN_LIMIT, description="Expiries at most.")


class RetentionOutcome(BaseModel):
    model_config = _CONTRACT
    artifactId: str
    objectKind: Literal["checkpoints", "dataset"]
    objectId: str
    retentionClass: str
    action: RetentionAction
    tombstoneId: str | None = None
    detail: str = ""


class RetentionRunResponse(BaseModel):
    model_config = _CONTRACT
    asOf: datetime
    outcomes: list[RetentionOutcome]
    expired: int = Field(description="Artifacts expired (jobs or datasets sharing one count once).")
    left: int = Field(description="Candidates left (held, protected, awaiting a checkpoint).")


class LegalHoldRequest(BaseModel):
    model_config = _CONTRACT
    reason: str = Field(min_length=1, max_length=1024, description="Why (case, ticket).")


class LegalHoldResponse(BaseModel):
    model_config = _CONTRACT
    hold: LegalHold


class LegalHoldList(BaseModel):
    model_config = _CONTRACT
    holds: list[LegalHold]


class TombstoneResponse(BaseModel):
    model_config = _CONTRACT
    tombstone: Tombstone
    proof: TombstoneProof | None = Field(
        default=None,
        description="Ledger record, covering signed checkpoint and audit path; None until "
        "a signed checkpoint covers the tombstone.",
    )


class TombstoneList(BaseModel):
    model_config = _CONTRACT
    tombstones: list[Tombstone]
