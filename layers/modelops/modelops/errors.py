"""Typed errors. Each class carries one machine-readable code and one HTTP status.

``ERROR_STATUS`` is the single code -> HTTP status table; handlers map errors with it and
Step Functions match on the class names (``ErrorEquals``).
"""

from __future__ import annotations

from typing import Any, ClassVar


class ModelOpsError(Exception):
    """Base of every error the platform reports to a caller."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return {"error": body}


class ValidationFailed(ModelOpsError):
    """The request is malformed or breaks a rule; the message says what to fix."""

    code = "VALIDATION_FAILED"
    status = 400


class PiiNotEscrowed(ValidationFailed):
    """Raw personal data registered outside escrow."""

    code = "PII_NOT_ESCROWED"


class Forbidden(ModelOpsError):
    code = "FORBIDDEN"
    status = 403


class Escrowed(Forbidden):
    """Raw personal data in escrow: not downloadable, not readable by jobs."""

    code = "ESCROWED"


class NotFound(ModelOpsError):
    code = "NOT_FOUND"
    status = 404


class Conflict(ModelOpsError):
    """The write conflicts with what is stored (immutable record, concurrent writer)."""

    code = "CONFLICT"
    status = 409


class UploadNotComplete(ModelOpsError):
    code = "UPLOAD_NOT_COMPLETE"
    status = 409


class ReferenceNotFound(ModelOpsError):
    """A referenced dataset, model or artifact does not exist."""

    code = "REFERENCE_NOT_FOUND"
    status = 422


class DigestMismatch(ModelOpsError):
    """Uploaded bytes do not hash to the SHA-256 the client declared."""

    code = "DIGEST_MISMATCH"
    status = 422


class PromotionBlocked(ModelOpsError):
    """A promotion gate failed; ``details`` lists every failed gate."""

    code = "PROMOTION_BLOCKED"
    status = 409


class SignatureInvalid(ModelOpsError):
    code = "SIGNATURE_INVALID"
    status = 422


class IdempotencyKeyReused(ModelOpsError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422


class RequestInProgress(ModelOpsError):
    code = "REQUEST_IN_PROGRESS"
    status = 409


class AuditFailed(ModelOpsError):
    """The call's audit record could not be appended; nothing is answered unaudited."""

    code = "AUDIT_FAILED"
    status = 500


class LedgerCorrupt(ModelOpsError):
    """A stored audit record or checkpoint does not parse; ``GET /audit/verify`` names it."""

    code = "LEDGER_CORRUPT"
    status = 409


class PolicyDenied(ModelOpsError):
    """SentinelNet's policies refuse the intended use (the details name each denial)."""

    code = "POLICY_DENIED"
    status = 403


class JobCancelled(ModelOpsError):
    """The training job was cancelled while this step ran; the workflow winds it down."""

    code = "JOB_CANCELLED"
    status = 409


class InvalidState(ModelOpsError):
    """The resource is not in a state that allows this (e.g. cancelling a finished job)."""

    code = "INVALID_STATE"
    status = 409


class ServiceUnavailable(ModelOpsError):
    """A service the call depends on could not be reached; nothing was left half-done."""

    code = "SERVICE_UNAVAILABLE"
    status = 503


class QuotaExceeded(ModelOpsError):
    """The job would pass its team's GPU-hour quota or its pool's concurrent GPUs; the
    details say which quota and how much is left."""

    code = "QUOTA_EXCEEDED"
    status = 429


class DeploymentRefused(ModelOpsError):
    """The model may not serve in that environment: unsigned for it, or its stored bytes
    do not match the signed digest."""

    code = "DEPLOYMENT_REFUSED"
    status = 403


class TrainingOutputMissing(ModelOpsError):
    """SageMaker reported success but the model archive is not where it said."""

    code = "TRAINING_OUTPUT_MISSING"
    status = 502


class NotWatermarked(ModelOpsError):
    """No version of the model's family carries a watermark to compare a suspect with."""

    code = "NOT_WATERMARKED"
    status = 409


class Gone(ModelOpsError):
    """The record stays but its objects were expired by retention: the details name the
    tombstone that proves what they were (GET /retention/tombstones/{id})."""

    code = "GONE"
    status = 410


def _all_error_classes() -> list[type[ModelOpsError]]:
    seen: list[type[ModelOpsError]] = [ModelOpsError]
    stack: list[type[ModelOpsError]] = [ModelOpsError]
    while stack:
        for sub in stack.pop().__subclasses__():
            seen.append(sub)
            stack.append(sub)
    return seen


ERROR_STATUS: dict[str, int] = {cls.code: cls.status for cls in _all_error_classes()}
