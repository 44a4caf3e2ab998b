"""Sanitized derivatives of raw PII datasets.

``request`` (the registry API) records a run for a raw dataset in escrow and invokes the
sanitizer function asynchronously; ``run`` (in that function, the only one besides
break-glass and approved raw-PII jobs that may read escrow) reads the raw files, checks
them against their registered SHA-256, sanitizes each CSV (``modelops.domain.sanitize``:
identifiers dropped or pseudonymised with keys derived in KMS, quasi-identifiers
generalised, uniqueness reported), stores the results as a new artifact in the artifact
bucket and registers the derivative dataset: lineage to the raw dataset (whose digest the
transformation records; its content is never copied), the raw dataset's licence and usage
restrictions, and the PII flags that remain. Runs are keyed by raw dataset, derivative name
and configuration, so a retried request, or a retried invocation, lands on the same run
and the same derivative.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from functools import cache

from modelops.contracts.registry import RegisterDatasetRequest
from modelops.domain import ids
from modelops.domain.access import Caller, Permission
from modelops.domain.digests import canonical_digest
from modelops.domain.entities import Dataset, Transformation
from modelops.domain.governance import SanitizationRun, SanitizeRequest
from modelops.domain.ledger import AuditEvent, Outcome
from modelops.domain.manifest import FileEntry
from modelops.domain.sanitize import (
    CODE_REF,
    SANITIZER_FORMAT,
    SanitizeError,
    SanitizeResult,
    code_checksum,
    sanitize_csv,
)
from modelops.errors import NotFound, ValidationFailed
from modelops.ports import (
    AlreadyExists,
    AsyncInvoker,
    BlobStore,
    Clock,
    RegistryRepository,
    SanitizationRepository,
)
from modelops.services.artifacts import ArtifactService, blob_key, escrow_prefix
from modelops.services.registry import RegistryService

AUDIT_STREAM = "registry"
SANITIZER = "dataset-sanitizer"


class SanitizationService:
    def __init__(
        self,
        *,
        registry: RegistryRepository,
        runs: SanitizationRepository,
        registry_service: RegistryService,
        artifacts: ArtifactService,
        blobs: BlobStore,
        escrow: BlobStore | None,
        mac: Callable[[bytes], bytes] | None,
        invoker: AsyncInvoker,
        audit: Callable[[AuditEvent], object],
        clock: Clock,
    ) -> None:
        """``escrow`` and ``mac`` (KMS GenerateMac with the pseudonym key) are given to the
        sanitizer function only."""
        self._registry = registry
        self._runs = runs
        self._registry_service = registry_service
        self._artifacts = artifacts
        self._blobs = blobs
        self._escrow = escrow
        self._mac = mac
        self._invoker = invoker
        self._audit = audit
        self._clock = clock

    def request(
        self, dataset_id: str, request: SanitizeRequest, caller: Caller, correlation_id: str
    ) -> tuple[SanitizationRun, bool]:
        """The run (new, or the one this request already started) and whether it is new."""
        caller.require(Permission.REGISTER)
        dataset = self._dataset(dataset_id)
        if not dataset.escrowed:
            raise ValidationFailed(
                f"dataset {dataset_id} is not raw personal data in escrow: only escrowed "
                "datasets are sanitized",
                details=[{"field": "datasetId", "message": "not escrowed"}],
            )
        artifact = self._registry.get_artifact(dataset.artifactId)
        if artifact is None:
            raise NotFound(f"artifact {dataset.artifactId} of {dataset_id} is gone")
        others = [f.path for f in artifact.files if not f.path.lower().endswith(".csv")]
        if others:
            raise ValidationFailed(
                f"the sanitizer reads CSV files; {dataset_id} also holds {', '.join(others[:5])}",
                details=[{"field": path, "message": "not a .csv file"} for path in others[:20]],
            )
        config_digest = canonical_digest(request.config.model_dump(mode="json"))
        run = SanitizationRun(
            runId=ids.sanitization_id(dataset_id, request.name, config_digest),
            datasetId=dataset_id,
            rawChecksum=dataset.checksum,
            request=request,
            configDigest=config_digest,
            status="PENDING",
            requestedBy=caller.principal,
            requestedAt=self._clock.now(),
            correlationId=correlation_id,
        )
        stored = self._runs.get_sanitization(run.runId)
        if stored is not None:
            return stored, False
        try:
            self._runs.create_sanitization(run)
        except AlreadyExists:
            return self.get(run.runId), False
        self._invoker.invoke(SANITIZER, {"runId": run.runId, "correlationId": correlation_id})
        return run, True

    def get(self, run_id: str) -> SanitizationRun:
        run = self._runs.get_sanitization(run_id)
        if run is None:
            raise NotFound(f"sanitization {run_id} does not exist")
        return run

    def run(self, run_id: str) -> SanitizationRun:
        """Sanitize and register the derivative (the sanitizer function). Idempotent."""
        run = self.get(run_id)
        if run.status != "PENDING":
            return run
        try:
            done = self._sanitize(run)
        except (SanitizeError, ValidationFailed) as exc:
            done = run.model_copy(
                update={
                    "status": "FAILED",
                    "failure": str(exc)[:2000],
                    "completedAt": self._clock.now(),
                }
            )
        self._runs.save_sanitization(done)
        self._record(done)
        return done

    def _sanitize(self, run: SanitizationRun) -> SanitizationRun:
        if self._escrow is None or self._mac is None:
            raise RuntimeError("the escrow bucket and the pseudonym key are not configured here")
        dataset = self._dataset(run.datasetId)
        artifact = self._registry.get_artifact(dataset.artifactId)
        if artifact is None:
            raise NotFound(f"artifact {dataset.artifactId} of {dataset.datasetId} is gone")
        derive = cache(self._mac)  # one KMS call per pseudonymised column, not per file
        files: list[tuple[FileEntry, str | None]] = []
        results: dict[str, SanitizeResult] = {}
        for entry in artifact.files:
            raw = self._escrow.get_bytes(f"{escrow_prefix(artifact.artifactId)}{entry.path}")
            if raw is None or hashlib.sha256(raw).hexdigest() != entry.sha256:
                raise ValidationFailed(
                    f"{entry.path} in escrow is missing or not the registered content"
                )
            result = sanitize_csv(raw, run.request.config, derive)
            digest = hashlib.sha256(result.data).hexdigest()
            self._blobs.put_bytes(blob_key(digest), result.data, "text/csv")
            files.append((FileEntry(path=entry.path, size=len(result.data), sha256=digest), None))
            results[entry.path] = result
        derived = self._artifacts.record_files(
            run.request.name, files, principal=run.requestedBy, origin=run.runId
        )
        remaining = tuple(sorted({f for r in results.values() for f in r.remainingPiiFlags}))
        registered = self._registry_service.record_dataset(
            RegisterDatasetRequest(
                name=run.request.name,
                artifactId=derived.artifactId,
                sourceRefs=[dataset.datasetId],
                transformations=[_transformation(run, dataset, results)],
                license=dataset.license,
                piiFlags=list(remaining),
                usageRestrictions=dataset.usageRestrictions,
                description=run.request.description
                or f"Sanitized derivative of {dataset.name}@v{dataset.version}.",
            ),
            run.requestedBy,
            derived,
            sanitization=run.runId,
        ).dataset
        return run.model_copy(
            update={
                "status": "COMPLETED",
                "derivedDatasetId": registered.datasetId,
                "reports": {path: r.report for path, r in results.items()},
                "remainingPiiFlags": remaining,
                "completedAt": self._clock.now(),
            }
        )

    def _dataset(self, dataset_id: str) -> Dataset:
        dataset = self._registry.get_dataset(dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} does not exist")
        return dataset

    def _record(self, run: SanitizationRun) -> None:
        request_id = run.correlationId or str(uuid.uuid4())
        self._audit(
            AuditEvent(
                stream=AUDIT_STREAM,
                eventId=str(uuid.uuid4()),
                time=self._clock.now(),
                principal=run.requestedBy,
                action="dataset.sanitize.completed"
                if run.status == "COMPLETED"
                else "dataset.sanitize.failed",
                resources=tuple(
                    r for r in (run.runId, run.datasetId, run.derivedDatasetId) if r is not None
                ),
                requestId=request_id[:128],
                correlationId=request_id[:128],
                outcome=Outcome.SUCCEEDED if run.status == "COMPLETED" else Outcome.FAILED,
                status=200 if run.status == "COMPLETED" else 422,
                reason=(run.failure or "")[:1024],
                details={"rawChecksum": run.rawChecksum, "configDigest": run.configDigest},
            )
        )


def _transformation(
    run: SanitizationRun, raw: Dataset, results: dict[str, SanitizeResult]
) -> Transformation:
    """What ran, on what: the sanitizer's code digest, the raw digest and the worst file's
    figures (the one whose quasi-identifier groups are smallest)."""
    worst = min(results.values(), key=lambda r: (r.report.kAchieved, r.report.after.minK))
    params = {
        **worst.params(),
        "files": len(results),
        "suppressedRows": sum(r.report.suppressedRows for r in results.values()),
        "kAchieved": all(r.report.kAchieved for r in results.values()),
        "rawDatasetId": raw.datasetId,
        "rawChecksum": raw.checksum,
        "runId": run.runId,
    }
    return Transformation(
        name="sanitize",
        codeRef=f"{CODE_REF}@{SANITIZER_FORMAT}",
        checksum=code_checksum(),
        params=params,
    )
