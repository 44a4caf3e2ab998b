"""Request and response contracts of the audit API (source of ``schemas/``).

Records travel as their export lines (``LedgerRecord.to_line()``: canonical JSON, hashed
bodies untouched), so what a client downloads is byte for byte what it verifies.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modelops.domain.ledger import STREAM_PATTERN, Checkpoint, LedgerReport

MAX_EXPORT_PAGE = 1000
_CONTRACT = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class VerifyResponse(BaseModel):
    model_config = _CONTRACT
    report: LedgerReport
    keyIds: list[str] = Field(description="The keys whose public halves checked signatures.")


class ExportResponse(BaseModel):
    model_config = _CONTRACT
    stream: str = Field(pattern=STREAM_PATTERN)
    fromSeq: int = Field(ge=1)
    records: list[str] = Field(
        description="One LedgerRecord per line, canonical JSON, in seq order from fromSeq."
    )
    checkpoints: list[Checkpoint] = Field(
        description="Checkpoints covering these records; on the last page, every checkpoint "
        "from fromSeq on."
    )
    nextFromSeq: int | None = Field(default=None, description="fromSeq of the next page.")


class PublicKey(BaseModel):
    model_config = _CONTRACT
    keyId: str
    algorithm: str
    publicKeyDer: str = Field(description="Base64 DER SubjectPublicKeyInfo.")
    publicKeyPem: str
    fingerprint: str = Field(description="SHA-256 of the DER public key.")


class PublicKeys(BaseModel):
    model_config = _CONTRACT
    keys: list[PublicKey]


class Streams(BaseModel):
    model_config = _CONTRACT
    streams: list[str]


class CheckpointResponse(BaseModel):
    model_config = _CONTRACT
    stream: str = Field(pattern=STREAM_PATTERN)
    created: bool = Field(description="False when no record was left to checkpoint.")
    checkpoint: Checkpoint | None = None
