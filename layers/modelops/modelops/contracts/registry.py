"""Request and response contracts of the registry API (source of ``schemas/``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from modelops.contracts.watermark import WatermarkRecord
from modelops.domain.digests import SHA256_HEX
from modelops.domain.entities import (
    NAME_PATTERN,
    SEMVER,
    Artifact,
    Dataset,
    LineageNode,
    ModelLineage,
    ModelVersion,
    PiiFlag,
    Transformation,
    UsageRestrictions,
    canonical_license,
)
from modelops.domain.ids import ID_PATTERN
from modelops.domain.manifest import MAX_FILES, FileEntry, require_unique_paths
from modelops.domain.promotion import Promotion
from modelops.domain.restrictions import EffectiveRestrictions
from modelops.domain.retention import ArtifactRetention

MAX_PARENTS = 32
ARTIFACT_ID = r"^art-[0-9a-f]{32}$"
MiB = 1024 * 1024


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ErrorDetail(Contract):
    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)
    field: str | None = None
    message: str | None = None


class ErrorInfo(Contract):
    code: str = Field(description="Machine-readable error code (see schemas/errors.json).")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(Contract):
    error: ErrorInfo


# --- artifacts -------------------------------------------------------------------------


class StartUploadRequest(Contract):
    name: str = Field(pattern=NAME_PATTERN, description="Human name of the artifact.")
    files: list[FileEntry] = Field(min_length=1, max_length=MAX_FILES)
    partBytes: int | None = Field(
        default=None,
        ge=5 * MiB,
        le=5 * 1024 * MiB,
        description="Part size; files larger than this are uploaded in parts (S3 multipart).",
    )
    escrow: bool = Field(
        default=False,
        description="Raw personal data: store it in escrow (its own bucket and KMS key, read "
        "only by break-glass and the sanitizer). Files are single PUTs of at most 5 GiB "
        "whose SHA-256 S3 checks.",
    )

    @field_validator("files")
    @classmethod
    def _unique(cls, value: list[FileEntry]) -> list[FileEntry]:
        require_unique_paths(value)
        return value


class PresignedPart(Contract):
    partNumber: int
    url: str


class MultipartTarget(Contract):
    partBytes: int
    parts: list[PresignedPart]


class UploadTarget(Contract):
    path: str
    method: Literal["PUT"] = "PUT"
    url: str | None = Field(default=None, description="Single PUT URL (small files).")
    multipart: MultipartTarget | None = Field(
        default=None, description="Part URLs (large files); send ETags to complete."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers the PUT must carry (they are signed)."
    )


class StartUploadResponse(Contract):
    uploadId: str
    status: str
    expiresAt: str
    targets: list[UploadTarget]


class CompletedPart(Contract):
    partNumber: int = Field(ge=1, le=10000)
    etag: str = Field(min_length=1, max_length=128)


class CompleteUploadRequest(Contract):
    parts: dict[str, list[CompletedPart]] = Field(
        default_factory=dict, description="For each multipart file path, its parts' ETags."
    )


class ArtifactResponse(Contract):
    artifact: Artifact
    downloads: dict[str, str] | None = Field(
        default=None, description="Presigned GET URL per file, when download=true."
    )
    retention: ArtifactRetention | None = Field(
        default=None,
        description="Set when retention expired the artifact: its files are deleted (download "
        "answers 410 GONE) and its tombstone proves what they were.",
    )


# --- datasets --------------------------------------------------------------------------


def _check_ref(ref: str, kinds: tuple[str, ...]) -> str:
    if ID_PATTERN.match(ref):
        if ref.split("-", 1)[0] not in kinds:
            raise ValueError(f"{ref!r} is a registry id of the wrong kind (allowed: {kinds})")
        return ref
    if "ds" in kinds and "://" in ref and len(ref) <= 1024 and ref.split("://", 1)[0].isascii():
        return ref
    raise ValueError(f"{ref!r} is neither a registry id nor a URI (scheme://...)")


class RegisterDatasetRequest(Contract):
    name: str = Field(pattern=NAME_PATTERN)
    artifactId: str = Field(
        pattern=ARTIFACT_ID, description="Uploaded, verified content of the dataset."
    )
    checksum: str | None = Field(
        default=None,
        pattern=SHA256_HEX.pattern,
        description="Expected root digest; rejected if the artifact differs.",
    )
    sourceRefs: list[str] = Field(
        default_factory=list,
        max_length=MAX_PARENTS,
        description="Registered dataset ids this derives from, or external URIs.",
    )
    transformations: list[Transformation] = Field(default_factory=list, max_length=64)
    license: str = Field(
        min_length=1, max_length=256, description="SPDX license expression, e.g. 'BSD-3-Clause'."
    )
    piiFlags: list[PiiFlag] = Field(default_factory=list)
    usageRestrictions: UsageRestrictions = Field(default_factory=UsageRestrictions)
    description: str = Field(default="", max_length=4096)

    @field_validator("license")
    @classmethod
    def _license(cls, value: str) -> str:
        return canonical_license(value)

    @field_validator("sourceRefs")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("sourceRefs must be unique")
        return [_check_ref(v, ("ds",)) for v in value]


class DatasetResponse(Contract):
    dataset: Dataset
    created: bool = Field(description="False when an identical registration already existed.")


class DatasetList(Contract):
    items: list[Dataset]
    nextToken: str | None = None


# --- models ----------------------------------------------------------------------------


class RegisterModelRequest(Contract):
    family: str = Field(pattern=NAME_PATTERN)
    version: str = Field(
        max_length=128, pattern=SEMVER.pattern, description="Semantic version, e.g. 1.2.0."
    )
    artifactId: str = Field(pattern=ARTIFACT_ID)
    codeRef: str = Field(min_length=1, max_length=512)
    metrics: dict[str, float] = Field(default_factory=dict, max_length=256)
    lineage: ModelLineage = Field(default_factory=ModelLineage)
    provenance: dict[str, str] = Field(default_factory=dict, max_length=64)
    description: str = Field(default="", max_length=4096)

    @field_validator("lineage")
    @classmethod
    def _lineage(cls, value: ModelLineage) -> ModelLineage:
        refs = [*value.datasets, *value.parentModels]
        if len(refs) > MAX_PARENTS:
            raise ValueError(f"at most {MAX_PARENTS} lineage references")
        if len(set(refs)) != len(refs):
            raise ValueError("lineage references must be unique")
        for ref in value.datasets:
            if not (ID_PATTERN.match(ref) and ref.startswith("ds-")):
                raise ValueError(f"{ref!r} is not a dataset id")
        for ref in value.parentModels:
            if not (ID_PATTERN.match(ref) and ref.startswith("mdl-")):
                raise ValueError(f"{ref!r} is not a model id")
        return value


class LineageEdge(Contract):
    child: str
    parent: str


class LineageGraph(Contract):
    root: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    depth: int = Field(description="Levels of ancestors found.")
    roundTrips: int = Field(description="Storage round trips the query took.")


class Consumers(Contract):
    root: str
    consumers: list[LineageNode] = Field(
        description="Nodes derived directly from the root (at most 100)."
    )


class ModelResponse(Contract):
    model: ModelVersion
    created: bool


class ModelDetail(Contract):
    model: ModelVersion
    lineage: LineageGraph
    promotions: list[Promotion] = Field(
        default_factory=list,
        description="Signed promotions (statement, KMS signature, approvals); keys and the "
        "OpenSSF bundle at /models/{id}/provenance.",
    )
    effectiveRestrictions: EffectiveRestrictions = Field(
        description="What its lineage obliges it to: the union of every ancestor dataset's "
        "licence, usage restrictions and PII flags."
    )
    watermark: WatermarkRecord | None = Field(
        default=None,
        description="Its watermark (scheme, key, bits, threshold), if training embedded one; "
        "POST /models/{id}/watermark/verify tells which version a suspect came from.",
    )


class ModelList(Contract):
    items: list[ModelVersion]
    nextToken: str | None = None


class OpenLineageExport(Contract):
    events: list[dict[str, Any]] = Field(description="OpenLineage 2-0-2 RunEvents.")
