"""Training jobs: the request, the training spec a source archive declares, the job record
and its reproducibility record.

A job's code is a registered *source artifact* of two files: ``sourcedir.tar.gz`` (the
byte-stable archive of the training directory, see ``modelops.domain.archive``) and
``training.json``, the spec the code declares: entry point, hyperparameters with their
types and bounds, channels, and the MetricDefinitions SageMaker parses from the logs.
Hyperparameters are checked against the spec before anything starts.

Status moves QUEUED -> TRAINING -> COMPLETED, or to FAILED / CANCELLED from any
non-terminal status (CANCELLING in between while SageMaker stops). Terminal records never
change: every write of a job is conditional on the status it read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelops import platform
from modelops.domain import compute
from modelops.domain.digests import SHA256_HEX
from modelops.domain.entities import NAME_PATTERN, SEMVER, Entity
from modelops.domain.ids import TRAINING_JOB_PATTERN
from modelops.domain.signing import ManifestSignature

SOURCE_ARCHIVE = "sourcedir.tar.gz"
SPEC_FILE = "training.json"
SPEC_FORMAT = "modelops.training-spec/1"
CHANNEL_PATTERN = r"^[A-Za-z0-9.\-_]{1,64}$"  # SageMaker's ChannelName
PARENT_CHANNEL = "parent"
# An evaluation job gets the model under evaluation in this channel (see domain.evaluation).
MODEL_CHANNEL = "model"
Purpose = Literal["train", "evaluate"]
# SageMaker: at most 100 hyperparameters, keys <= 256 and values <= 2500 characters.
MAX_HYPERPARAMETERS = 100
MAX_HP_KEY, MAX_HP_VALUE = 256, 2500
RESERVED_PREFIX = "sagemaker_"
SHA256_PATTERN = SHA256_HEX.pattern
GIT_COMMIT = r"^([0-9a-f]{40}|[0-9a-f]{64}|uncommitted)$"
IMAGE_URI = r"^[a-z0-9.-]+(:[0-9]+)?/[a-z0-9._/-]+(:[A-Za-z0-9._-]{1,128}|@sha256:[0-9a-f]{64})$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


# --- the spec a source artifact declares ------------------------------------------------------


class HyperparameterSpec(_Model):
    type: Literal["integer", "number", "string", "boolean"]
    minimum: float | None = None
    maximum: float | None = None
    exclusiveMinimum: float | None = None
    enum: tuple[str, ...] | None = None
    default: str | int | float | bool | None = None


class ChannelSpec(_Model):
    required: bool = False


class MetricDefinition(_Model):
    """As SageMaker's AlgorithmSpecification.MetricDefinitions: the first group is the value."""

    Name: str = Field(min_length=1, max_length=255, pattern=r"^.+$")
    Regex: str = Field(min_length=1, max_length=500)

    @field_validator("Regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            if re.compile(value).groups < 1:
                raise ValueError("the regex needs a capture group for the value")
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from exc
        return value


class TrainingSpec(_Model):
    format: Literal["modelops.training-spec/1"]
    entryPoint: str = Field(pattern=r"^[A-Za-z0-9_./-]+\.py$")
    seedHyperparameter: str = Field(min_length=1, max_length=MAX_HP_KEY)
    hyperparameters: dict[str, HyperparameterSpec]
    channels: dict[str, ChannelSpec] = Field(min_length=1)
    metricDefinitions: tuple[MetricDefinition, ...] = Field(default=(), max_length=40)

    @model_validator(mode="after")
    def _seed_declared(self) -> TrainingSpec:
        seed = self.hyperparameters.get(self.seedHyperparameter)
        if seed is None or seed.type != "integer":
            raise ValueError(
                f"seedHyperparameter {self.seedHyperparameter!r} must be declared as integer"
            )
        return self

    @classmethod
    def parse(cls, data: bytes) -> TrainingSpec:
        """Raise ValueError with a readable reason if ``data`` is not a valid spec."""
        try:
            return cls.model_validate(json.loads(data))
        except (ValueError, ValidationError) as exc:
            raise ValueError(f"{SPEC_FILE} is not a valid training spec: {exc}") from None

    def hyperparameter_strings(
        self, given: dict[str, str | int | float | bool], seed: int
    ) -> tuple[dict[str, str], list[dict[str, str]]]:
        """The hyperparameters SageMaker gets (defaults filled, the seed set, every value a
        string), and the problems found, one per field."""
        problems: list[dict[str, str]] = []
        values: dict[str, str] = {}
        for key in sorted(given):
            if key not in self.hyperparameters:
                known = ", ".join(sorted(self.hyperparameters))
                problems.append(
                    {"field": f"hyperparameters.{key}", "message": f"unknown (known: {known})"}
                )
        if self.seedHyperparameter in given:
            problems.append(
                {
                    "field": f"hyperparameters.{self.seedHyperparameter}",
                    "message": "the seed is set by the request's seed field",
                }
            )
        for key, spec in sorted(self.hyperparameters.items()):
            raw = seed if key == self.seedHyperparameter else given.get(key, spec.default)
            if raw is None:
                problems.append({"field": f"hyperparameters.{key}", "message": "required"})
                continue
            problem = _check_value(spec, raw)
            if problem:
                problems.append({"field": f"hyperparameters.{key}", "message": problem})
            else:
                values[key] = _as_string(raw)
        return values, problems


def _as_string(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _number(spec: HyperparameterSpec, value: str | int | float | bool) -> float | None:
    if isinstance(value, bool):
        return None
    if spec.type == "integer":
        if isinstance(value, float):
            return value if value.is_integer() else None
        text = str(value).strip()
        return float(int(text)) if re.fullmatch(r"-?\d{1,30}", text) else None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _check_value(spec: HyperparameterSpec, value: str | int | float | bool) -> str | None:
    if spec.type == "boolean":
        ok = isinstance(value, bool) or str(value).lower() in {"true", "false"}
        return None if ok else f"expected a boolean, got {value!r}"
    if spec.type == "string":
        text = _as_string(value)
        if spec.enum is not None and text not in spec.enum:
            return f"must be one of {', '.join(spec.enum)}"
        return None if len(text) <= MAX_HP_VALUE else f"longer than {MAX_HP_VALUE} characters"
    number = _number(spec, value)
    if number is None:
        wanted = "an integer" if spec.type == "integer" else "a finite number"
        return f"expected {wanted}, got {value!r}"
    if spec.minimum is not None and number < spec.minimum:
        return f"must be >= {spec.minimum:g}"
    if spec.exclusiveMinimum is not None and number <= spec.exclusiveMinimum:
        return f"must be > {spec.exclusiveMinimum:g}"
    if spec.maximum is not None and number > spec.maximum:
        return f"must be <= {spec.maximum:g}"
    return None


# --- the request ------------------------------------------------------------------------------


class DatasetInput(_Model):
    datasetId: str = Field(pattern=r"^ds-[0-9a-f]{24}$")
    channel: str = Field(default="train", pattern=CHANNEL_PATTERN)


class ComputeRequirements(_Model):
    pool: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="Compute pool; default: the first pool (by name) offering instanceType, "
        "in the platform's region if one does.",
    )
    instanceType: str = Field(default="ml.m5.large", description="A SageMaker ml.* type.")
    instanceCount: int = Field(default=1, ge=1, le=compute.MAX_INSTANCE_COUNT)
    gpusPerInstance: int = Field(
        default=0, ge=0, le=16, description="GPUs each instance must have (0: any)."
    )
    spot: bool = Field(default=True, description="Managed spot training (checkpointed).")
    maxRuntimeSeconds: int = Field(default=3600, ge=1, le=compute.MAX_RUNTIME_SECONDS)
    maxWaitSeconds: int | None = Field(
        default=None,
        ge=1,
        description="Spot only: runtime plus time waiting for capacity; default 2x runtime.",
    )
    volumeSizeGb: int = Field(default=30, ge=1, le=compute.MAX_VOLUME_GB)

    @model_validator(mode="after")
    def _possible(self) -> ComputeRequirements:
        instance = compute.INSTANCE_TYPES.get(self.instanceType)
        if instance is None:
            raise ValueError(
                f"instanceType {self.instanceType!r} is not offered; choose one of "
                f"{', '.join(sorted(compute.INSTANCE_TYPES))}"
            )
        if self.gpusPerInstance > instance.gpus:
            raise ValueError(
                f"{self.instanceType} has {instance.gpus} GPU(s); {self.gpusPerInstance} "
                "per instance were asked"
            )
        if self.maxWaitSeconds is not None:
            if not self.spot:
                raise ValueError("maxWaitSeconds applies to spot training only")
            if self.maxWaitSeconds < self.maxRuntimeSeconds:
                raise ValueError("maxWaitSeconds must be >= maxRuntimeSeconds (SageMaker)")
        return self

    @property
    def wait_seconds(self) -> int | None:
        if not self.spot:
            return None
        return self.maxWaitSeconds or 2 * self.maxRuntimeSeconds


class CodeRef(_Model):
    sourceArtifactId: str = Field(
        pattern=r"^art-[0-9a-f]{32}$",
        description=f"A registered artifact holding {SOURCE_ARCHIVE} and {SPEC_FILE}.",
    )
    gitCommit: str = Field(pattern=GIT_COMMIT, description="Commit the archive was packed from.")
    repository: str = Field(default="", max_length=512)


class RetryPolicy(_Model):
    maxAttempts: int = Field(
        default=1, ge=1, le=30, description="SageMaker RetryStrategy on internal errors."
    )


class SubmitTrainingJobRequest(_Model):
    modelFamily: str = Field(pattern=NAME_PATTERN)
    modelVersion: str = Field(description="Version the trained model is registered as.")
    datasets: tuple[DatasetInput, ...] = Field(min_length=1, max_length=20)
    code: CodeRef
    image: str | None = Field(
        default=None,
        pattern=IMAGE_URI,
        description="Training image (tag or @sha256 digest); default: the platform's image.",
    )
    dependencyLockDigest: str = Field(
        pattern=SHA256_PATTERN,
        description="SHA-256 of the dependency lock the image was built from.",
    )
    seed: int = Field(ge=0, le=2**32 - 1)
    hyperparameters: dict[str, str | int | float | bool] = Field(
        default_factory=dict, max_length=MAX_HYPERPARAMETERS
    )
    compute: ComputeRequirements = Field(default_factory=ComputeRequirements)
    parentModelId: str | None = Field(
        default=None, pattern=r"^mdl-[0-9a-f]{24}$", description="Fine-tune from this model."
    )
    retryPolicy: RetryPolicy = Field(default_factory=RetryPolicy)
    retrainReason: str | None = Field(default=None, max_length=1024)
    description: str = Field(default="", max_length=2048)

    @field_validator("modelVersion")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not SEMVER.match(value):
            raise ValueError("modelVersion must be a semantic version such as 1.2.0")
        return value

    @field_validator("hyperparameters")
    @classmethod
    def _sagemaker_limits(
        cls, value: dict[str, str | int | float | bool]
    ) -> dict[str, str | int | float | bool]:
        for key, item in value.items():
            if not 1 <= len(key) <= MAX_HP_KEY or key.startswith(RESERVED_PREFIX):
                raise ValueError(
                    f"hyperparameter name {key[:40]!r}: 1-{MAX_HP_KEY} characters, not "
                    f"starting with {RESERVED_PREFIX!r}"
                )
            if len(_as_string(item)) > MAX_HP_VALUE:
                raise ValueError(f"hyperparameter {key}: longer than {MAX_HP_VALUE} characters")
        return value

    @field_validator("datasets")
    @classmethod
    def _one_dataset_per_channel(cls, value: tuple[DatasetInput, ...]) -> tuple[DatasetInput, ...]:
        channels = [d.channel for d in value]
        if len(set(channels)) != len(channels):
            raise ValueError("each channel takes one dataset")
        if PARENT_CHANNEL in channels:
            raise ValueError(f"channel {PARENT_CHANNEL!r} is the parent model's (parentModelId)")
        return value


# --- the record ---------------------------------------------------------------------------------


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    TRAINING = "TRAINING"
    CANCELLING = "CANCELLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}


# The location of an escrowed dataset's files, resolved to the escrow bucket when the job
# is created (the function that creates it is the one told the bucket's name).
ESCROW_SCHEME = "escrow://"


class DatasetRef(Entity):
    datasetId: str
    channel: str
    artifactId: str
    checksum: str = Field(description="The dataset's root digest (OpenSSF, over its files).")
    manifestDigest: str
    s3Uri: str = Field(
        description="Where the channel's files are laid out for SageMaker; escrow:// for raw "
        "PII read in place from the escrow bucket (only by the raw-PII job role)."
    )

    @property
    def escrowed(self) -> bool:
        return self.s3Uri.startswith(ESCROW_SCHEME)


class ParentModelRef(Entity):
    modelId: str
    artifactId: str
    rootDigest: str
    s3Uri: str


class Reproducibility(Entity):
    """Everything a bit-identical re-run needs, pinned."""

    gitCommit: str
    repository: str
    sourceArtifactId: str
    sourceArchiveDigest: str = Field(description=f"SHA-256 of {SOURCE_ARCHIVE}.")
    specDigest: str = Field(description=f"SHA-256 of {SPEC_FILE}.")
    entryPoint: str
    imageUri: str = Field(description="The image pinned by digest (repository@sha256:...).")
    imageDigest: str
    dependencyLockDigest: str
    seed: int
    datasetChecksums: dict[str, str]
    parentModelDigest: str | None = None
    hyperparameters: dict[str, str]
    compute: ComputeRequirements


class ArtifactRef(Entity):
    kind: Literal["model", "checkpoints", "output"]
    artifactId: str
    rootDigest: str
    files: int
    archiveSha256: str | None = Field(
        default=None, description="SHA-256 of the tar.gz SageMaker wrote, when there was one."
    )


class FileDiff(Entity):
    path: str
    change: Literal["changed", "added", "removed"]
    originalSha256: str | None = None
    reproducedSha256: str | None = None


class ReproductionReport(Entity):
    originalJobId: str
    reproductionJobId: str
    identical: bool
    originalRootDigest: str
    reproducedRootDigest: str
    differences: tuple[FileDiff, ...] = ()
    statement: str = Field(description="The in-toto statement (canonical JSON) that was signed.")
    signature: ManifestSignature


class Usage(Entity):
    billableSeconds: int
    trainingSeconds: int
    instanceHours: float
    gpuHours: float
    spot: bool
    spotInterruptions: int = Field(default=0, description="Times spot capacity was reclaimed.")


class Failure(Entity):
    reason: str
    logTail: tuple[str, ...] = ()


class TrainingJob(Entity):
    jobId: str = Field(pattern=TRAINING_JOB_PATTERN)
    purpose: Purpose = Field(
        default="train",
        description="train: registers a model; evaluate: scores parentModel (an evaluation).",
    )
    evaluationId: str | None = None
    modelFamily: str
    modelVersion: str
    request: SubmitTrainingJobRequest
    datasetRefs: tuple[DatasetRef, ...]
    parentModel: ParentModelRef | None = None
    hyperparameters: dict[str, str]
    metricDefinitions: tuple[MetricDefinition, ...]
    computeRequirements: ComputeRequirements
    reproducibility: Reproducibility
    status: JobStatus
    statusReason: str = ""
    createdAt: datetime
    createdBy: str
    createdByRoles: tuple[str, ...] = Field(
        default=(), description="The submitter's roles, as the policy check saw them."
    )
    correlationId: str
    startTs: datetime | None = None
    endTs: datetime | None = None
    trainingJobName: str
    executionArn: str | None = None
    team: str = Field(description="The submitter's team, whose quota the job uses.")
    policyDecision: dict[str, Any] | None = None
    logsRef: str | None = None
    artifactRefs: tuple[ArtifactRef, ...] = ()
    metrics: dict[str, float] = Field(default_factory=dict)
    modelId: str | None = Field(
        default=None, description="The model the job registered (train) or evaluated."
    )
    retryPolicy: RetryPolicy
    retrainReason: str | None = None
    reproductionOf: str | None = None
    reproduction: ReproductionReport | None = None
    usage: Usage | None = None
    failure: Failure | None = None
    revision: int = 0


def sagemaker_job_name(job_id: str) -> str:
    """SageMaker TrainingJobName: ``^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``, unique per account."""
    return f"{platform.TRAINING_JOB_PREFIX}{job_id}"


def metric_value(pattern: re.Pattern[str], line: str) -> float | None:
    """A MetricDefinition's value in one log line, as SageMaker reads it: the first group of
    the regex's first match, if it parses to a finite number."""
    match = pattern.search(line)
    if match is None or match.group(1) is None:
        return None
    try:
        value = float(match.group(1))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def checkpoint_prefix(training_job_name: str) -> str:
    """Where SageMaker syncs a job's checkpoints in the artifact bucket (CheckpointConfig)."""
    return f"training/{training_job_name}/checkpoints/"


TRAINING_SECONDARY_STATUS = "Training"  # SageMaker's secondary status while the algorithm runs


def training_since(described: Mapping[str, Any]) -> datetime | None:
    """When a described SageMaker job last entered ``Training``; None if it is not in it."""
    if described.get("SecondaryStatus") != TRAINING_SECONDARY_STATUS:
        return None
    starts = [
        transition["StartTime"]
        for transition in described.get("SecondaryStatusTransitions") or ()
        if transition.get("Status") == TRAINING_SECONDARY_STATUS and transition.get("StartTime")
    ]
    return max(starts) if starts else None


def checkpoint_age(now: datetime, since: datetime, checkpoints: Iterable[datetime]) -> float:
    """Seconds since the newest of the checkpoints' writes and ``since``."""
    return max(0.0, (now - max([since, *checkpoints])).total_seconds())
