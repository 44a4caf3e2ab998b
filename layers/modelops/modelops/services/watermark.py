"""Watermarks of model versions: embedded when training registers a model, kept in the
watermark registry, verified against a suspect artifact (docs/watermarking.md).

The seed of a version is KMS ``GenerateMac`` of its message with the watermark key: one
KMS call per embedding and per candidate version compared; seeds are never stored or
cached, and the HMAC key never leaves KMS.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modelops.contracts.watermark import (
    VerifyWatermarkRequest,
    WatermarkCandidate,
    WatermarkRecord,
    WatermarkSource,
    WatermarkSuspect,
    WatermarkVerification,
)
from modelops.domain import watermark as scheme
from modelops.domain.access import Caller, Permission
from modelops.domain.archive import extract_targz
from modelops.domain.entities import Artifact
from modelops.domain.ledger import AuditEvent, Outcome
from modelops.errors import (
    Escrowed,
    NotFound,
    NotWatermarked,
    ReferenceNotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from modelops.ports import BlobStore, Clock, RegistryRepository, WatermarkRepository
from modelops.services.artifacts import blob_key

MODEL_FILE = "model.json"
MAX_SUSPECT_BYTES = 64 * 1024 * 1024
AUDIT_STREAM = "training"

Mac = Callable[[bytes], bytes]


@dataclass(frozen=True)
class Mark:
    """A model.json just watermarked, before its artifact is recorded."""

    path: str
    message: str
    parameters: int
    sha256: str


class WatermarkService:
    def __init__(
        self,
        *,
        registry: RegistryRepository,
        watermarks: WatermarkRepository,
        blobs: BlobStore,
        key_arn: str | None,
        mac_for: Callable[[str], Mac],
        audit: Callable[[AuditEvent], object],
        clock: Clock,
    ) -> None:
        """``key_arn``: the watermark key new marks use (None: this function embeds
        nothing); ``mac_for(key_arn)``: GenerateMac with a recorded key."""
        self._registry = registry
        self._watermarks = watermarks
        self._blobs = blobs
        self._key_arn = key_arn
        self._mac_for = mac_for
        self._audit = audit
        self._clock = clock

    # --- embedding (training registers a model) --------------------------------------------

    def mark(self, root: Path, family: str, version: str) -> Mark | None:
        """Watermark ``root/model.json`` in place when it is a model the scheme marks (other
        model kinds are registered as they are). Deterministic: a reproduction of the run
        gives the same bytes."""
        if self._key_arn is None:
            return None
        path = root / MODEL_FILE
        if not path.is_file():
            return None
        data = path.read_bytes()
        if not scheme.is_watermarkable(data):
            return None
        message = scheme.seed_message(family, version)
        marked = scheme.embed(data, self._seed(self._key_arn, message))
        path.write_bytes(marked)
        return Mark(
            path=MODEL_FILE,
            message=message.decode(),
            parameters=scheme.parameter_count(marked),
            sha256=hashlib.sha256(marked).hexdigest(),
        )

    def record(
        self,
        mark: Mark,
        *,
        model_id: str,
        family: str,
        version: str,
        artifact_id: str,
        principal: str,
        correlation_id: str,
    ) -> WatermarkRecord:
        """Keep ``mark`` in the watermark registry for the version it was made for, and
        audit it (a retried step records the same watermark again)."""
        if self._key_arn is None:
            raise ServiceUnavailable("this function has no watermark key")
        total = mark.parameters * scheme.LOW_BITS
        record = WatermarkRecord(
            modelId=model_id,
            family=family,
            version=version,
            scheme=scheme.SCHEME,
            keyArn=self._key_arn,
            message=mark.message,
            lowBits=scheme.LOW_BITS,
            parameters=mark.parameters,
            totalBits=total,
            threshold=scheme.threshold(total),
            path=mark.path,
            sha256=mark.sha256,
            artifactId=artifact_id,
            createdAt=self._clock.now(),
        )
        self._watermarks.put_watermark(record)
        self._audit(
            AuditEvent(
                stream=AUDIT_STREAM,
                eventId=str(uuid.uuid4()),
                time=record.createdAt,
                principal=principal,
                action="models.watermark.embed",
                resources=(model_id, artifact_id),
                requestId=correlation_id[:128],
                correlationId=correlation_id[:128],
                outcome=Outcome.SUCCEEDED,
                status=200,
                details={
                    "scheme": record.scheme,
                    "keyArn": record.keyArn,
                    "totalBits": str(total),
                    "sha256": mark.sha256,
                },
            )
        )
        return record

    # --- the registry and verification -----------------------------------------------------

    def get(self, model_id: str) -> WatermarkRecord | None:
        return self._watermarks.get_watermark(model_id)

    def verify(
        self, model_id: str, request: VerifyWatermarkRequest, caller: Caller
    ) -> WatermarkVerification:
        """Compare the suspect with every watermarked version of the model's family; the
        version whose pattern it matches (at most one, but for a chance below 2**-40 per
        version) is where it came from."""
        # Each answer tells how many bits match: an oracle; only those who may register
        # models (and so upload suspects) may ask, and every call is audited.
        caller.require(Permission.REGISTER)
        model = self._registry.get_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id} does not exist")
        records = self._watermarks.watermarks_of(model.family)
        if not records:
            raise NotWatermarked(
                f"no version of {model.family} is watermarked: nothing to compare with"
            )
        artifact = self._suspect_artifact(request.artifactId)
        path, data = self._suspect_model(artifact)
        try:
            parameters = scheme.parameter_count(data)
        except scheme.WatermarkError as exc:
            raise ValidationFailed(
                f"{path} of artifact {artifact.artifactId} is not a model the scheme reads: {exc}",
                details=[{"field": "artifactId", "message": str(exc)}],
            ) from None
        candidates = [self._compare(record, data, parameters) for record in records]
        best_at = max(
            range(len(records)),
            key=lambda i: (candidates[i].matched, _fraction(candidates[i])),
        )
        best, best_record = candidates[best_at], records[best_at]
        return WatermarkVerification(
            matched=best.matched,
            source=WatermarkSource(
                modelId=best_record.modelId,
                family=best_record.family,
                version=best_record.version,
                artifactId=best_record.artifactId,
            )
            if best.matched
            else None,
            scheme=scheme.SCHEME,
            family=model.family,
            suspect=WatermarkSuspect(
                artifactId=artifact.artifactId,
                path=path,
                sha256=hashlib.sha256(data).hexdigest(),
            ),
            matchedBits=best.matchedBits,
            totalBits=best.totalBits,
            threshold=best.threshold,
            falseMatchProbability=scheme.false_match_probability(best.totalBits, best.matchedBits),
            comparedVersions=len(records),
            candidates=candidates,
        )

    def _compare(self, record: WatermarkRecord, data: bytes, parameters: int) -> WatermarkCandidate:
        if parameters != record.parameters:  # another shape: no KMS call
            detection = scheme.Detection(0, 0, record.threshold)
        else:
            seed = self._seed(record.keyArn, record.message.encode())
            detection = scheme.detect(data, seed, record.parameters, record.lowBits)
        return WatermarkCandidate(
            modelId=record.modelId,
            version=record.version,
            matchedBits=detection.matched_bits,
            totalBits=detection.total_bits,
            threshold=detection.threshold,
            matched=detection.matched,
        )

    def _seed(self, key_arn: str, message: bytes) -> bytes:
        return self._mac_for(key_arn)(message)

    def _suspect_artifact(self, artifact_id: str) -> Artifact:
        artifact = self._registry.get_artifact(artifact_id)
        if artifact is None:
            raise ReferenceNotFound(
                f"artifact {artifact_id} does not exist; upload the suspect first",
                details=[{"field": "artifactId", "message": "unknown artifact"}],
            )
        if artifact.storage == "escrow":
            raise Escrowed(
                f"artifact {artifact_id} is raw personal data in escrow, not a model",
                details=[{"field": "artifactId", "message": "escrowed"}],
            )
        return artifact

    def _suspect_model(self, artifact: Artifact) -> tuple[str, bytes]:
        """The artifact's model.json (the shallowest one), else the one in its model.tar.gz."""
        by_depth = sorted(
            (f for f in artifact.files if PurePosixPath(f.path).name == MODEL_FILE),
            key=lambda f: (f.path.count("/"), f.path),
        )
        archives = [f for f in artifact.files if f.path.endswith(".tar.gz")]
        chosen = by_depth[0] if by_depth else archives[0] if len(archives) == 1 else None
        if chosen is None:
            raise ValidationFailed(
                f"artifact {artifact.artifactId} holds no {MODEL_FILE} and no single model.tar.gz",
                details=[{"field": "artifactId", "message": f"no {MODEL_FILE}"}],
            )
        if chosen.size > MAX_SUSPECT_BYTES:
            raise ValidationFailed(
                f"{chosen.path} is larger than {MAX_SUSPECT_BYTES} bytes",
                details=[{"field": "artifactId", "message": "too large"}],
            )
        data = self._blobs.get_bytes(blob_key(chosen.sha256))
        if data is None:
            raise ServiceUnavailable(f"the bytes of {chosen.path} are not in the artifact store")
        if chosen in by_depth:
            return chosen.path, data
        return _from_archive(chosen.path, data)


def _from_archive(name: str, data: bytes) -> tuple[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="modelops-suspect-") as scratch:
        try:
            paths = extract_targz(io.BytesIO(data), Path(scratch))
        except (OSError, ValueError) as exc:
            raise ValidationFailed(
                f"{name} is not a readable tar.gz: {exc}",
                details=[{"field": "artifactId", "message": "unreadable archive"}],
            ) from None
        found = sorted(
            (p for p in paths if PurePosixPath(p).name == MODEL_FILE),
            key=lambda p: (p.count("/"), p),
        )
        if not found:
            raise ValidationFailed(
                f"{name} holds no {MODEL_FILE}",
                details=[{"field": "artifactId", "message": f"no {MODEL_FILE}"}],
            )
        return f"{name}!{found[0]}", (Path(scratch) / found[0]).read_bytes()


def _fraction(candidate: WatermarkCandidate) -> float:
    return candidate.matchedBits / candidate.totalBits if candidate.totalBits else 0.0
