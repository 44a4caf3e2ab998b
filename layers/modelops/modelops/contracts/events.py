"""Every EventBridge event the platform publishes (source ``illuvrse.modelops``), one contract
per detail type; ``schemas/events/`` is generated from them for consumers: Kernel (lifecycle
and audit), the Reasoning Graph and Memory Layer (evaluation traces, drift findings with
their evidence, dataset references), the Eval Engine (metrics and recommendations), Finance
(usage) and the Resource Allocator.

Each detail carries ``schemaVersion`` (the contract's version: a consumer reads the versions
it knows) and ``correlationId`` (the flow it belongs to: the API call, the workflow, the log
lines and the audit records of that flow carry the same id). Where the thing an event is
about can be read back, ``resourcePath`` names the API path that returns it.

Events leave only through ``modelops.events.Events.publish``, which takes these contracts and
nothing else; a contract test validates every published event against its JSON Schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from modelops import platform
from modelops.domain.ledger import AuditEvent, Checkpoint
from modelops.domain.monitoring import Evidence
from modelops.domain.pools import UsageRecord

SCHEMA_VERSION: Literal["1"] = "1"


class EventDetail(BaseModel):
    """What every event's detail carries."""

    # Serialization-mode schemas: a field with a default is still always present on the wire.
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        defer_build=True,
        json_schema_serialization_defaults_required=True,
    )
    DETAIL_TYPE: ClassVar[str]

    schemaVersion: Literal["1"] = Field(
        default=SCHEMA_VERSION, description="The version of this detail's schema."
    )
    correlationId: str = Field(
        min_length=1, max_length=256, description="The flow this event belongs to."
    )


class TrainingJobStateChange(EventDetail):
    DETAIL_TYPE: ClassVar[str] = platform.TRAINING_STATE_CHANGE

    jobId: str
    status: str
    previousStatus: str | None
    modelFamily: str
    modelVersion: str
    modelId: str | None
    reason: str
    purpose: str = "train"
    evaluationId: str | None = None
    resourcePath: str = Field(description="GET it: /train/jobs/{jobId}.")


class TrainingJobUsage(UsageRecord, EventDetail):
    """What a finished job used and cost (Finance's chargeback input)."""

    DETAIL_TYPE: ClassVar[str] = "Training Job Usage"


class DriftDetected(EventDetail):
    """A drift check found features (or performance) past their alarm threshold; the
    finding (GET /drift/findings/{findingId}) holds every statistic, and ``evidence`` names
    the documents it was computed from with their SHA-256."""

    DETAIL_TYPE: ClassVar[str] = platform.DRIFT_DETECTED

    findingId: str
    modelId: str
    endpoint: str
    drifted: list[str]
    performance: str
    windowStart: str
    windowEnd: str
    evidence: dict[str, Evidence] = Field(description="Evidence document -> key and SHA-256.")
    resourcePath: str = Field(description="GET it: /drift/findings/{findingId}.")


class DeploymentStateChange(EventDetail):
    DETAIL_TYPE: ClassVar[str] = "Deployment State Change"

    deployId: str
    endpointName: str
    modelId: str
    env: str
    status: str
    previousStatus: str | None
    reason: str
    weights: dict[str, float] = Field(description="Variant -> traffic weight.")
    resourcePath: str = Field(description="GET it: /serve/{deployId}.")


class DeploymentRolledBack(EventDetail):
    DETAIL_TYPE: ClassVar[str] = "Deployment Rolled Back"

    deployId: str
    endpointName: str
    modelId: str
    restoredModelId: str | None
    reason: str


class DatasetRegistered(EventDetail):
    """A dataset version the registry now holds: the reference other records cite."""

    DETAIL_TYPE: ClassVar[str] = "Dataset Registered"

    datasetId: str
    name: str
    version: str
    digest: str = Field(description="SHA-256 root digest of the dataset's files.")
    artifactId: str
    license: str
    piiFlags: list[str]
    parents: list[str] = Field(description="Dataset ids it was derived from.")
    createdBy: str
    resourcePath: str = Field(description="GET it: /dataset/{datasetId}.")


class ModelRegistered(EventDetail):
    DETAIL_TYPE: ClassVar[str] = "Model Registered"

    modelId: str
    family: str
    version: str
    rootDigest: str = Field(description="SHA-256 root digest of the model's files.")
    artifactId: str
    datasets: list[str]
    parentModels: list[str]
    createdBy: str
    trainingJobId: str | None
    resourcePath: str = Field(description="GET it: /models/{modelId}.")


class ModelStageChanged(EventDetail):
    """A version moved on the ladder (promotion, demotion or deprecation)."""

    DETAIL_TYPE: ClassVar[str] = "Model Stage Changed"

    modelId: str
    family: str
    version: str
    fromStage: str
    toStage: str
    changedBy: str
    promotionId: str | None = Field(description="The signed promotion, for a promotion.")
    signatureKeyId: str | None = Field(description="The KMS key that signed its statement.")
    rootDigest: str
    resourcePath: str = Field(description="GET it: /models/{modelId}/provenance.")


class PromotionAwaitingApproval(EventDetail):
    """A high-risk promotion passed its gates and waits for M-of-N approver signatures over
    ``statement`` (Kernel relays them: POST .../approve with the approver's signature)."""

    DETAIL_TYPE: ClassVar[str] = "Promotion Awaiting Approval"

    promotionId: str
    modelId: str
    family: str
    version: str
    targetStage: str
    statement: str = Field(description="The exact bytes approvers sign (Ed25519).")
    approvalsRequired: int
    requestedBy: str
    resourcePath: str = Field(description="GET it: /models/{modelId}/promotions/{promotionId}.")


RecommendedAction = Literal["promote", "hold", "demote", "retrain", "quarantine"]


class Recommendation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    action: RecommendedAction
    currentStage: str
    targetStage: str | None = Field(description="The stage a promotion would move it to.")
    reasons: list[str]


class EvaluationCompleted(EventDetail):
    """An evaluation ended: its trace (what was evaluated, on which test sets, by which
    evaluator, with which results digest), its metrics and what the gates make of them."""

    DETAIL_TYPE: ClassVar[str] = "Evaluation Completed"

    evaluationId: str
    modelId: str
    family: str
    version: str
    modelRootDigest: str
    status: Literal["COMPLETED", "FAILED"]
    statusReason: str
    testsets: list[str] = Field(description="Dataset ids of the test sets.")
    evaluatorDigest: str
    configDigest: str
    resultsDigest: str | None
    resultsArtifactId: str | None
    metrics: dict[str, float]
    safetyPassed: bool | None
    completedAt: datetime | None
    recommendation: Recommendation | None = Field(
        description="What the next rung's gates make of this evaluation (None if it failed)."
    )
    resourcePath: str = Field(description="GET it: /eval/{evaluationId}.")


class ModelRecommendation(EventDetail):
    """The Eval Engine's and the drift monitor's advice about a version: promote or hold
    (after an evaluation); retrain, quarantine or, for a prod version, demote (after drift).
    Advice only: nothing moves until someone requests it."""

    DETAIL_TYPE: ClassVar[str] = "Model Recommendation"

    modelId: str
    family: str
    version: str
    source: Literal["evaluation", "drift"]
    sourceId: str = Field(description="The evaluation or drift alert it came from.")
    recommendation: Recommendation


class AuditEventRecorded(EventDetail):
    """An audit event sealed in the ledger at ``stream``/``seq`` with record hash ``hash``."""

    DETAIL_TYPE: ClassVar[str] = "ModelOps Audit Event"

    stream: str
    seq: int
    hash: str
    event: AuditEvent


class AuditCheckpointSigned(Checkpoint, EventDetail):
    """A signed Merkle checkpoint over records ``fromSeq``..``toSeq`` of ``stream``."""

    DETAIL_TYPE: ClassVar[str] = "ModelOps Audit Checkpoint"


EVENT_TYPES: tuple[type[EventDetail], ...] = (
    TrainingJobStateChange,
    TrainingJobUsage,
    DriftDetected,
    DeploymentStateChange,
    DeploymentRolledBack,
    DatasetRegistered,
    ModelRegistered,
    ModelStageChanged,
    PromotionAwaitingApproval,
    EvaluationCompleted,
    ModelRecommendation,
    AuditEventRecorded,
    AuditCheckpointSigned,
)
EVENTS: dict[str, type[EventDetail]] = {event.DETAIL_TYPE: event for event in EVENT_TYPES}


@dataclass(frozen=True)
class Integration:
    """An ILLUVRSE service that receives a set of our events on its own EventBridge bus
    (its ARN is a deployment setting: ``integrations.<name>`` in ``cdk.json``)."""

    name: str
    description: str
    detail_types: tuple[str, ...]

    @property
    def rule_id(self) -> str:
        """The forwarding rule's construct id (its dead-letter queue's is this + ``Dlq``)."""
        return "To" + "".join(part.capitalize() for part in self.name.split("-")) + "Rule"


LIFECYCLE = (
    ModelRegistered,
    ModelStageChanged,
    PromotionAwaitingApproval,
    TrainingJobStateChange,
    DeploymentStateChange,
    DeploymentRolledBack,
)
INTEGRATIONS: tuple[Integration, ...] = (
    Integration(
        "kernel",
        "Kernel: the model lifecycle, approvals to relay, and every audit record and checkpoint.",
        tuple(e.DETAIL_TYPE for e in (*LIFECYCLE, AuditEventRecorded, AuditCheckpointSigned)),
    ),
    Integration(
        "reasoning-graph",
        "Reasoning Graph and Memory Layer: evaluation traces, drift findings with their "
        "evidence, dataset references (each event names the API path that returns it).",
        tuple(e.DETAIL_TYPE for e in (EvaluationCompleted, DriftDetected, DatasetRegistered)),
    ),
    Integration(
        "eval-engine",
        "Eval Engine: evaluation metrics, and promotion and demotion recommendations.",
        tuple(
            e.DETAIL_TYPE
            for e in (EvaluationCompleted, ModelRecommendation, ModelRegistered, ModelStageChanged)
        ),
    ),
)
