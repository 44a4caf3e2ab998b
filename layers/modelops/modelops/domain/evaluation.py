"""Evaluations: a model version scored on registered test sets by an evaluation job.

An evaluation runs as a job of the training workflow (``purpose: evaluate``): the same
admission (datasets, evaluator code and its spec, image pinned by digest, policy), compute
grant, managed spot, usage accounting and reproducibility record as training, but its code
is an *evaluator* (``examples/evaluate``), its channels are the model under evaluation
(``model``) and the test sets (``test``, ``test2``, ``test3``), and what it produces is an
evaluation document (``modelops.evaluation/1``): metrics, fairness per sensitive attribute,
safety checks, and ``flat``, every figure as ``name -> number``.

The record binds that document to what was evaluated: the model's root digest, the test
sets' checksums, the evaluator's archive digest and the config's digest. Its ``digest`` is
the SHA-256 of the canonical JSON of those bindings and the document: the evidence a
promotion statement names (``evaluationDigest``) and metric gates check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, model_validator

from modelops.domain.entities import Entity
from modelops.domain.training import IMAGE_URI, SHA256_PATTERN, CodeRef, ComputeRequirements

RESULTS_FILE = "evaluation.json"
RESULTS_FORMAT = "modelops.evaluation/1"
CONFIG_FORMAT = "modelops.evaluation-config/1"
TEST_CHANNELS = ("test", "test2", "test3")
CONFIG_HYPERPARAMETER = "config"
MODEL_ID = r"^mdl-[0-9a-f]{24}$"
DATASET_ID = r"^ds-[0-9a-f]{24}$"


class Perturbation(Entity):
    epsilon: float = Field(default=0.01, gt=0, le=1, description="Noise, x feature std.")
    trials: int = Field(default=5, ge=1, le=100)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    maxFlipRate: float = Field(default=0.05, ge=0, le=1)


class OutputRange(Entity):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> OutputRange:
        if self.min > self.max:
            raise ValueError("outputRange.min must not exceed outputRange.max")
        return self


class SafetyConfig(Entity):
    allowedLabels: tuple[str, ...] | None = None
    forbiddenLabels: tuple[str, ...] = ()
    outputRange: OutputRange | None = None
    perturbation: Perturbation | None = None


class EvaluationConfig(Entity):
    """What to compute (``evaluation.json`` the evaluator reads)."""

    format: Literal["modelops.evaluation-config/1"] = "modelops.evaluation-config/1"
    task: Literal["classification", "regression"] = "classification"
    labelColumn: str = Field(min_length=1, max_length=128)
    positiveClass: str | None = None
    sensitiveAttributes: tuple[str, ...] = Field(default=(), max_length=10)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    calibrationBins: int = Field(default=10, ge=2, le=100)


class RunEvaluationRequest(Entity):
    modelId: str = Field(pattern=MODEL_ID)
    testsets: tuple[str, ...] = Field(
        min_length=1,
        max_length=len(TEST_CHANNELS),
        description="Registered datasets (ids) holding the test rows as CSV with a header.",
    )
    config: EvaluationConfig
    evaluator: CodeRef = Field(
        description="The evaluator's source artifact (sourcedir.tar.gz and training.json)."
    )
    image: str | None = Field(default=None, pattern=IMAGE_URI)
    dependencyLockDigest: str = Field(pattern=SHA256_PATTERN)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    compute: ComputeRequirements = Field(default_factory=ComputeRequirements)

    @model_validator(mode="after")
    def _distinct(self) -> RunEvaluationRequest:
        if len(set(self.testsets)) != len(self.testsets):
            raise ValueError("testsets lists a dataset twice")
        return self


class TestsetBinding(Entity):
    datasetId: str
    checksum: str
    channel: str


EvaluationStatus = Literal["RUNNING", "COMPLETED", "FAILED"]


class EvaluationRecord(Entity):
    evaluationId: str
    modelId: str
    family: str
    version: str
    modelRootDigest: str
    jobId: str
    testsets: tuple[TestsetBinding, ...]
    config: EvaluationConfig
    configDigest: str
    evaluatorDigest: str = Field(description="SHA-256 of the evaluator's sourcedir.tar.gz.")
    status: EvaluationStatus
    statusReason: str = ""
    createdAt: datetime
    createdBy: str
    correlationId: str
    completedAt: datetime | None = None
    results: dict[str, Any] | None = Field(
        default=None, description="The evaluator's modelops.evaluation/1 document."
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Every figure as name -> number (the gates' input)."
    )
    safetyPassed: bool | None = None
    resultsArtifactId: str | None = None
    digest: str | None = Field(
        default=None, description="SHA-256 of the canonical JSON of bindings and results."
    )
    revision: int = 0

    def bindings(self) -> dict[str, Any]:
        """What the digest covers besides the results: what was evaluated, on what, how."""
        return {
            "evaluationId": self.evaluationId,
            "modelId": self.modelId,
            "modelRootDigest": self.modelRootDigest,
            "testsets": [t.model_dump(mode="json") for t in self.testsets],
            "configDigest": self.configDigest,
            "evaluatorDigest": self.evaluatorDigest,
            "jobId": self.jobId,
        }


class EvaluationList(Entity):
    items: tuple[EvaluationRecord, ...]
