"""The watermark registry (one record per watermarked model version) and the verification
of a suspect artifact (``POST /models/{id}/watermark/verify``); docs/watermarking.md."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from modelops.domain.entities import Entity


class WatermarkRecord(Entity):
    """How a model version was watermarked: enough to detect it again, never the seed."""

    modelId: str
    family: str
    version: str
    scheme: str = Field(description="The scheme (modelops.domain.watermark.SCHEME).")
    keyArn: str = Field(description="The KMS HMAC key whose GenerateMac gives the seed.")
    message: str = Field(description="What the key MACs: modelops-watermark/1|family|version.")
    lowBits: int = Field(description="Low-order mantissa bits set in each parameter.")
    parameters: int = Field(description="Parameters marked: weights (row-major), then bias.")
    totalBits: int
    threshold: int = Field(description="Matching bits needed to claim a match.")
    path: str = Field(description="The marked file in the model's artifact.")
    sha256: str = Field(description="SHA-256 of the marked file as registered.")
    artifactId: str
    createdAt: datetime


class VerifyWatermarkRequest(Entity):
    artifactId: str = Field(
        min_length=1,
        max_length=64,
        description="The suspect: an uploaded artifact holding a model.json (at any path; "
        "the one at the root if several) or a model.tar.gz with one.",
    )


class WatermarkCandidate(Entity):
    """The suspect compared with one watermarked version of the family."""

    modelId: str
    version: str
    matchedBits: int
    totalBits: int = Field(description="0 when the suspect has another number of parameters.")
    threshold: int
    matched: bool


class WatermarkSource(Entity):
    modelId: str
    family: str
    version: str
    artifactId: str


class WatermarkSuspect(Entity):
    artifactId: str
    path: str = Field(description="The model.json read (archive!member for a model.tar.gz).")
    sha256: str


class WatermarkVerification(Entity):
    matched: bool
    source: WatermarkSource | None = Field(
        default=None, description="The registered version the suspect came from, if matched."
    )
    scheme: str
    family: str
    suspect: WatermarkSuspect
    matchedBits: int = Field(description="Of the best candidate.")
    totalBits: int
    threshold: int
    falseMatchProbability: float = Field(
        description="P[Binomial(totalBits, 1/2) >= matchedBits]: the chance that a model "
        "without that version's mark matches at least this well."
    )
    comparedVersions: int = Field(description="Watermarked versions of the family compared.")
    candidates: list[WatermarkCandidate]
