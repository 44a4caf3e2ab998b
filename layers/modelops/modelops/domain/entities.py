"""Registry entities. Field names are the API's (camelCase) so one model serves the
domain, storage and the contracts without a mapping layer."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from modelops.domain.digests import SHA256_HEX
from modelops.domain.manifest import FileEntry

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class Entity(BaseModel):
    # defer_build: a model's validator is built on first use, not at import (cold start).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def semver_sort_key(version: str) -> str:
    """A string that sorts like SemVer precedence for release and pre-release versions."""
    match = SEMVER.match(version)
    if match is None:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = match.group(1), match.group(2), match.group(3), match.group(4)
    # '~' sorts after every pre-release identifier, so 1.0.0 follows 1.0.0-rc.1.
    return f"{int(major):08d}.{int(minor):08d}.{int(patch):08d}.{pre or '~'}"


def canonical_license(value: str) -> str:
    from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

    try:
        return str(canonicalize_license_expression(value))
    except InvalidLicenseExpression as exc:
        raise ValueError(f"not a valid SPDX license expression: {exc}") from exc


class PiiFlag(StrEnum):
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    ADDRESS = "address"
    LOCATION = "location"
    GOVERNMENT_ID = "government_id"
    FINANCIAL = "financial"
    HEALTH = "health"
    BIOMETRIC = "biometric"
    DEMOGRAPHIC = "demographic"
    ONLINE_ID = "online_id"
    OTHER = "other"


# Where an artifact's bytes live: the artifact bucket, or escrow (raw PII, apart).
Storage = Literal["standard", "escrow"]


class UploadStatus(StrEnum):
    OPEN = "OPEN"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class ModelStatus(StrEnum):
    DRAFT = "draft"
    STAGING = "staging"
    PROD = "prod"
    DEPRECATED = "deprecated"


class UploadPart(Entity):
    file: str
    s3Key: str
    multipartUploadId: str | None = None
    partCount: int = 1
    partBytes: int | None = None


class UploadSession(Entity):
    uploadId: str
    name: str
    files: tuple[FileEntry, ...]
    parts: tuple[UploadPart, ...]
    status: UploadStatus
    createdBy: str
    createdAt: datetime
    expiresAt: datetime
    requestDigest: str
    artifactId: str | None = None
    failure: str | None = None
    escrow: bool = False


class Artifact(Entity):
    artifactId: str
    name: str
    rootDigest: str = Field(description="OpenSSF model-signing root digest (SHA-256).")
    manifestDigest: str = Field(description="SHA-256 of the canonical manifest (paths too).")
    totalSize: int
    files: tuple[FileEntry, ...]
    createdBy: str
    createdAt: datetime
    uploadId: str
    storage: Storage = Field(
        default="standard",
        description="escrow: raw personal data, readable only by escrow readers (never "
        "downloadable through the API).",
    )


class Transformation(Entity):
    name: str = Field(min_length=1, max_length=128)
    codeRef: str = Field(
        min_length=1, max_length=512, description="Code that ran, e.g. git URL at a commit."
    )
    checksum: str = Field(
        pattern=SHA256_HEX.pattern, description="SHA-256 of that code (source archive or file)."
    )
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)


class UsageRestrictions(Entity):
    commercialUse: bool = True
    permittedPurposes: tuple[str, ...] = ()
    exportRegions: tuple[str, ...] = Field(
        default=(), description="Regions data may be used in; empty means unrestricted."
    )
    retentionDays: int | None = Field(default=None, ge=1)


class LineageNode(Entity):
    """A vertex of the lineage graph as stored: its parents are its adjacency list."""

    nodeId: str
    kind: Literal["dataset", "model", "source"]
    label: str
    digest: str | None = None
    license: str | None = None
    piiFlags: tuple[PiiFlag, ...] = ()
    parents: tuple[str, ...] = ()
    createdAt: datetime | None = None


class Dataset(Entity):
    datasetId: str
    name: str
    version: int
    artifactId: str
    checksum: str = Field(description="Root digest of the dataset's manifest.")
    sourceRefs: tuple[str, ...]
    transformations: tuple[Transformation, ...]
    license: str
    piiFlags: tuple[PiiFlag, ...]
    usageRestrictions: UsageRestrictions
    description: str
    createdAt: datetime
    createdBy: str
    requestDigest: str
    storage: Storage = Field(
        default="standard", description="escrow: raw PII (only sanitized derivatives leave)."
    )
    sanitization: str | None = Field(
        default=None,
        description="The sanitization run that produced it (set by the sanitizer only): its "
        "ancestors' PII does not reach its uses, their licences and restrictions do.",
    )

    @property
    def pii(self) -> bool:
        return bool(self.piiFlags)

    @property
    def escrowed(self) -> bool:
        return self.storage == "escrow"


class ModelLineage(Entity):
    datasets: tuple[str, ...] = ()
    parentModels: tuple[str, ...] = ()


class ModelVersion(Entity):
    modelId: str
    family: str
    version: str
    codeRef: str
    artifactId: str
    rootDigest: str
    metrics: dict[str, float]
    createdAt: datetime
    createdBy: str
    status: ModelStatus
    signerId: str = ""
    signature: str = ""
    lineage: ModelLineage
    provenance: dict[str, str]
    description: str
    requestDigest: str
