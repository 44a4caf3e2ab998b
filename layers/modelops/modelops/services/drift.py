"""Drift: baselines, monitoring of data capture, alerts and their remediation.

* **Baseline** (``compute_baseline``): the model's training data (the ``train`` channel of
  the job that trained it, or a dataset named in the request) summarised per feature
  (``modelops.domain.drift_stats``) plus the output distribution (the labels, as the
  ``prediction`` feature), stored as a statistics and a constraints document in S3.
* **Monitoring** (``monitor``): for every live deployment serving a model with a baseline,
  each hour of the window's data capture is summarised once (``drift/<model>/hours/...``;
  the current hour again on every run) and the hours are merged, never re-read, into the
  window's summary, compared with the baseline under the constraints. Performance drift
  joins captured inferences with ground-truth labels posted for them. A finding records
  every statistic and its evidence (keys and SHA-256 of the documents it came from); one
  at alarm is published as ``Drift Detected``.
* **Alerts** (``alert``): from the monitor's event, a CloudWatch alarm or the API; one alert
  per finding. Its remediation is a retrain proposal (signed with the KMS key: the window,
  the data to train on, the estimated GPU-hours and cost, the previous job's
  reproducibility record) and/or a quarantine (promotion of the version is blocked; for a
  high-risk family re-deployment too, until an approver releases it).

numpy is imported only inside the methods that compute (cold start).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field

from modelops import platform
from modelops.contracts.events import (
    DriftDetected,
    EventDetail,
    ModelRecommendation,
    Recommendation,
    RecommendedAction,
)
from modelops.contracts.registry import Contract
from modelops.domain import ids
from modelops.domain.access import Caller, Permission
from modelops.domain.digests import canonical_json
from modelops.domain.drift import Constraints, Summary
from modelops.domain.entities import ModelStatus, ModelVersion
from modelops.domain.ledger import AuditEvent, Outcome
from modelops.domain.monitoring import (
    MAX_LABELS_PER_CALL,
    PREDICTION_FEATURE,
    AlertSource,
    CostEstimate,
    DriftAlert,
    DriftBaseline,
    DriftFinding,
    Evidence,
    GroundTruth,
    PerformanceDrift,
    Quarantine,
    Remediation,
    RetrainProposal,
)
from modelops.domain.serving import captured_rows
from modelops.domain.signing import sign_statement
from modelops.domain.training import SubmitTrainingJobRequest, TrainingJob
from modelops.errors import (
    Conflict,
    Escrowed,
    InvalidState,
    NotFound,
    PolicyDenied,
    ReferenceNotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from modelops.ports import (
    AlreadyExists,
    AsyncInvoker,
    BlobStore,
    Clock,
    DeploymentRepository,
    MonitoringRepository,
    PromotionRepository,
    RegistryRepository,
    ServingVariants,
    Signer,
    TrainingRepository,
    UsageLedger,
)
from modelops.services import governance
from modelops.services.artifacts import blob_key, each
from modelops.services.governance import Governance, Use
from modelops.services.revisions import revise

AUDIT_STREAM = "drift"
PROPOSAL_TYPE = "modelops.retrain-proposal/v1"
# Performance drift: accuracy drop against the baseline's, with at least this many labels.
MIN_LABELLED = 30
PERFORMANCE_WARN, PERFORMANCE_ALARM = 0.05, 0.10
HOUR_FORMAT = "%Y/%m/%d/%H"


class BaselineRequest(Contract):
    datasetId: str | None = Field(
        default=None,
        pattern=r"^ds-[0-9a-f]{24}$",
        description="Default: the dataset the model was trained on (its train channel).",
    )
    labelColumn: str | None = Field(default=None, max_length=128)
    features: tuple[str, ...] | None = Field(
        default=None,
        max_length=500,
        description="Input features in the endpoint's order; default: every CSV column "
        "but the label.",
    )
    categorical: tuple[str, ...] = Field(
        default=(), max_length=500, description="Also categorical: non-numeric columns."
    )
    bins: int = Field(default=200, ge=10, le=2000)


class CheckRequest(Contract):
    hours: int = Field(default=24, ge=1, le=24 * 14, description="The window, up to now.")


class AlertRequest(Contract):
    modelId: str = Field(pattern=r"^mdl-[0-9a-f]{24}$")
    findingId: str | None = Field(default=None, pattern=r"^dft-[0-9a-f]{24}$")
    reason: str = Field(default="", max_length=1024)
    remediation: tuple[Remediation, ...] = Field(default=("retrain",), min_length=1)


class LabelsRequest(Contract):
    labels: tuple[GroundTruth, ...] = Field(min_length=1, max_length=MAX_LABELS_PER_CALL)


class DriftView(Contract):
    modelId: str
    baseline: DriftBaseline | None
    quarantine: Quarantine | None
    findings: list[DriftFinding]
    alerts: list[DriftAlert]
    proposals: list[RetrainProposal]


class CheckAccepted(Contract):
    modelId: str
    hours: int
    correlationId: str


class LabelsAccepted(Contract):
    modelId: str
    accepted: int


@dataclass(frozen=True)
class DriftSettings:
    window_hours: int = 24
    region: str = "us-east-1"  # where baselines are computed (the data is used there)


@dataclass(frozen=True)
class _Window:
    """What one deployment variant's capture in a window adds up to."""

    summary: Summary
    evidence: dict[str, Evidence]
    inference_labels: dict[str, str]  # inferenceId -> predicted label (single-row requests)


class DriftService:
    def __init__(
        self,
        *,
        monitoring: MonitoringRepository,
        registry: RegistryRepository,
        promotions: PromotionRepository,
        deployments: DeploymentRepository,
        variants: ServingVariants,
        jobs: TrainingRepository,
        usage: UsageLedger,
        blobs: BlobStore,
        invoker: AsyncInvoker,
        signer: Signer,
        publish: Callable[[EventDetail], None],
        audit: Callable[[AuditEvent], object],
        clock: Clock,
        settings: DriftSettings,
        governance: Governance,
    ) -> None:
        self._governance = governance
        self._monitoring = monitoring
        self._registry = registry
        self._promotions = promotions
        self._deployments = deployments
        self._variants = variants
        self._jobs = jobs
        self._usage = usage
        self._blobs = blobs
        self._invoker = invoker
        self._signer = signer
        self._publish = publish
        self._audit = audit
        self._clock = clock
        self._settings = settings

    # --- reading ---------------------------------------------------------------------------

    def view(self, model_id: str) -> DriftView:
        self._model(model_id)
        return DriftView(
            modelId=model_id,
            baseline=self._monitoring.get_baseline(model_id),
            quarantine=self._monitoring.get_quarantine(model_id),
            findings=self._monitoring.findings_of(model_id, 10),
            alerts=self._monitoring.alerts_of(model_id, 10),
            proposals=self._monitoring.proposals_of(model_id, 10),
        )

    def finding(self, finding_id: str) -> DriftFinding:
        found = self._monitoring.get_finding(finding_id)
        if found is None:
            raise NotFound(f"drift finding {finding_id} does not exist")
        return found

    def proposal(self, proposal_id: str) -> RetrainProposal:
        found = self._monitoring.get_proposal(proposal_id)
        if found is None:
            raise NotFound(f"retrain proposal {proposal_id} does not exist")
        return found

    # --- baselines -------------------------------------------------------------------------

    def request_baseline(
        self, model_id: str, request: BaselineRequest, caller: Caller, correlation_id: str
    ) -> DriftBaseline:
        """Record the baseline PENDING and have the baseline function compute it."""
        caller.require(Permission.TRAIN)
        baseline = self._pending_baseline(model_id, request, caller.principal, correlation_id)
        self._invoker.invoke(
            platform.DRIFT_BASELINE.name,
            {
                "modelId": model_id,
                "request": request.model_dump(mode="json"),
                "correlationId": correlation_id,
            },
        )
        return baseline

    def baseline_for_trained(self, model_id: str, correlation_id: str) -> None:
        """A training job registered ``model_id``: compute its baseline (once), on behalf of
        the principal that trained it."""
        if self._monitoring.get_baseline(model_id) is not None:
            return
        principal = self._model(model_id).createdBy
        try:
            self._pending_baseline(model_id, BaselineRequest(), principal, correlation_id)
        except (PolicyDenied, Escrowed) as denied:  # e.g. trained on approved raw PII
            self._record(
                principal,
                "drift.baseline.refused",
                (model_id,),
                correlation_id,
                {"reason": denied.message[:1024]},
            )
            return
        self.compute_baseline(model_id, BaselineRequest())

    def _pending_baseline(
        self, model_id: str, request: BaselineRequest, principal: str, correlation_id: str
    ) -> DriftBaseline:
        model = self._model(model_id)
        dataset_id = request.datasetId or self._training_dataset(model)
        dataset = self._registry.get_dataset(dataset_id)
        if dataset is None:
            raise ReferenceNotFound(
                f"dataset {dataset_id} does not exist",
                details=[{"field": "datasetId", "message": "unknown dataset"}],
            )
        if dataset.escrowed:
            raise Escrowed(
                f"dataset {dataset.datasetId} is raw personal data in escrow, which the drift "
                "functions never read: baseline on its sanitized derivative",
                details=[{"field": "datasetId", "message": "escrowed"}],
            )
        family = self._promotions.get_family_policy(model.family)
        use = Use(
            action="train",  # a baseline is built from the data, like a model
            purpose=governance.MONITORING,
            principal=principal,
            roles=(),
            family=model.family,
            risk_tier=family.riskTier if family else "low",
            target_env="sandbox",
            region=self._settings.region,
        )
        self._governance.require(use, self._governance.lineage_datasets([dataset.datasetId]))
        baseline = DriftBaseline(
            modelId=model_id,
            datasetId=dataset.datasetId,
            datasetChecksum=dataset.checksum,
            features=request.features or (),
            categorical=request.categorical,
            labelColumn=request.labelColumn,
            status="PENDING",
            requestedBy=principal,
            requestedAt=self._clock.now(),
            correlationId=correlation_id,
        )
        self._monitoring.put_baseline(baseline)
        self._record(principal, "drift.baseline.requested", (model_id, dataset_id), correlation_id)
        return baseline

    def compute_baseline(self, model_id: str, request: BaselineRequest) -> DriftBaseline:
        """Summarise the baseline dataset (numeric: quantile-edged histograms; categorical:
        counts; the label column as the output distribution) and store the documents."""
        from modelops.domain import drift_stats

        pending = self._monitoring.get_baseline(model_id)
        if pending is None:
            raise NotFound(f"model {model_id} has no baseline request")
        model = self._model(model_id)
        try:
            header, rows = self._dataset_rows(pending.datasetId)
            label = request.labelColumn or _label_column(header, rows)
            features = list(request.features or [c for c in header if c != label])
            missing = [f for f in [*features, *([label] if label else [])] if f not in header]
            if missing:
                raise ValidationFailed(
                    f"the dataset has no column {missing[0]!r} (columns: {', '.join(header)})",
                    details=[{"field": "features", "message": f"unknown column {missing[0]}"}],
                )
            columns = {name: [r[header.index(name)] for r in rows] for name in features}
            categorical = set(request.categorical) | {
                name for name, values in columns.items() if not _numeric(values)
            }
            if label:
                columns[PREDICTION_FEATURE] = [r[header.index(label)] for r in rows]
                categorical.add(PREDICTION_FEATURE)
            statistics = drift_stats.reference_summary(
                columns, categorical=sorted(categorical), bins=request.bins
            )
            constraints = drift_stats.default_constraints(statistics)
        except ValidationFailed as exc:
            failed = pending.model_copy(update={"status": "FAILED", "statusReason": exc.message})
            self._monitoring.put_baseline(failed)
            return failed
        prefix = f"drift/{model_id}/baseline/"
        ready = pending.model_copy(
            update={
                "status": "READY",
                "features": tuple(features),
                "categorical": tuple(sorted(categorical - {PREDICTION_FEATURE})),
                "labelColumn": label,
                "statistics": self._store(f"{prefix}statistics.json", statistics),
                "constraints": self._store(f"{prefix}constraints.json", constraints),
                "referenceAccuracy": _reference_accuracy(model),
                "rows": len(rows),
                "completedAt": self._clock.now(),
            }
        )
        self._monitoring.put_baseline(ready)
        self._record(
            pending.requestedBy, "drift.baseline.ready", (model_id,), pending.correlationId
        )
        return ready

    # --- monitoring ------------------------------------------------------------------------

    def request_check(
        self, model_id: str, request: CheckRequest, caller: Caller, correlation_id: str
    ) -> CheckAccepted:
        caller.require(Permission.TRAIN)
        baseline = self._monitoring.get_baseline(self._model(model_id).modelId)
        if baseline is None or baseline.status != "READY":
            raise InvalidState(
                f"model {model_id} has no ready drift baseline; POST /drift/{model_id}/baseline"
            )
        self._invoker.invoke(
            platform.DRIFT_MONITOR.name,
            {"modelId": model_id, "hours": request.hours, "correlationId": correlation_id},
        )
        return CheckAccepted(modelId=model_id, hours=request.hours, correlationId=correlation_id)

    def monitor(
        self, model_id: str | None, hours: int | None, correlation_id: str
    ) -> tuple[list[DriftFinding], list[dict[str, Any]]]:
        """Check every live deployment variant serving ``model_id`` (or any model with a
        ready baseline); returns the findings and the CloudWatch metrics to emit."""
        now = self._clock.now()
        window = timedelta(hours=hours or self._settings.window_hours)
        findings: list[DriftFinding] = []
        for endpoint, deploy_id, variant, serving in self._serving():
            if model_id is not None and serving != model_id:
                continue
            baseline = self._monitoring.get_baseline(serving)
            if baseline is None or baseline.status != "READY":
                continue
            finding = self._check(
                baseline,
                endpoint=endpoint,
                deploy_id=deploy_id,
                variant=variant,
                start=now - window,
                end=now,
                correlation_id=correlation_id,
            )
            if finding is not None:
                findings.append(finding)
        metrics: list[dict[str, Any]] = []
        for finding in findings:
            for feature in finding.features:
                metrics.append(
                    {
                        "name": platform.DRIFT_SCORE_METRIC,
                        "unit": "None",
                        "value": feature.value,
                        "dimensions": {"model": finding.modelId, "feature": feature.feature},
                    }
                )
            metrics.append(
                {
                    "name": platform.DRIFTED_FEATURES_METRIC,
                    "unit": "Count",
                    "value": float(len(finding.drifted)),
                    "dimensions": {"model": finding.modelId},
                }
            )
        metrics.append(
            {
                "name": platform.DRIFT_ALARM_METRIC,
                "unit": "Count",
                "value": float(sum(len(f.drifted) for f in findings)),
                "dimensions": {},
            }
        )
        return findings, metrics

    def _check(
        self,
        baseline: DriftBaseline,
        *,
        endpoint: str,
        deploy_id: str,
        variant: str,
        start: datetime,
        end: datetime,
        correlation_id: str,
    ) -> DriftFinding | None:
        from modelops.domain import drift_stats

        assert baseline.statistics is not None and baseline.constraints is not None
        reference = Summary.model_validate_json(self._read(baseline.statistics))
        constraints = Constraints.model_validate_json(self._read(baseline.constraints))
        window = self._window(
            baseline, reference, endpoint=endpoint, variant=variant, start=start, end=end
        )
        if window is None or window.summary.rows == 0:
            return None
        report = drift_stats.compare(reference, window.summary, constraints)
        performance = self._performance(baseline, window.inference_labels)
        status = "alarm" if report.drifted else "warn" if report.warned else "ok"
        if performance.status in ("warn", "alarm") and status != "alarm":
            status = performance.status
        finding_id = ids.fresh(ids.DRIFT_FINDING, uuid.uuid4().hex)
        merged = self._store(f"drift/{baseline.modelId}/windows/{finding_id}.json", window.summary)
        finding = DriftFinding(
            findingId=finding_id,
            modelId=baseline.modelId,
            endpoint=endpoint,
            variant=variant,
            deployId=deploy_id,
            windowStart=start,
            windowEnd=end,
            rows=window.summary.rows,
            features=report.features,
            drifted=report.drifted,
            warned=report.warned,
            datasetDrift=report.datasetDrift,
            performance=performance,
            status=status,
            evidence={
                "statistics": baseline.statistics,
                "constraints": baseline.constraints,
                "window": merged,
                **window.evidence,
            },
            checkedAt=self._clock.now(),
            correlationId=correlation_id,
        )
        self._monitoring.create_finding(finding)
        self._record(
            baseline.requestedBy,
            f"drift.check.{status}",
            (baseline.modelId, finding_id, deploy_id),
            correlation_id,
            {"actor": "drift-monitor", "drifted": ",".join(finding.drifted)},
        )
        if status == "alarm":
            detected = DriftDetected(
                findingId=finding_id,
                modelId=baseline.modelId,
                endpoint=endpoint,
                drifted=list(finding.drifted),
                performance=performance.status,
                windowStart=start.isoformat(),
                windowEnd=end.isoformat(),
                evidence=finding.evidence,
                correlationId=correlation_id,
                resourcePath=f"/drift/findings/{finding_id}",
            )
            self._publish(detected)
        return finding

    def _window(
        self,
        baseline: DriftBaseline,
        reference: Summary,
        *,
        endpoint: str,
        variant: str,
        start: datetime,
        end: datetime,
    ) -> _Window | None:
        """The window's summary, merged from hourly summaries; an hour that ended is
        summarised once and its summary reused by every later window."""
        from modelops.domain import drift_stats

        current_hour = end.replace(minute=0, second=0, microsecond=0)
        hour = start.replace(minute=0, second=0, microsecond=0)
        summaries: list[Summary] = []
        evidence: dict[str, Evidence] = {}
        inference_labels: dict[str, str] = {}
        while hour <= current_hour:
            stamp = hour.strftime(HOUR_FORMAT)
            key = f"drift/{baseline.modelId}/hours/{endpoint}/{variant}/{stamp}.json"
            cached = self._blobs.get_bytes(key) if hour < current_hour else None
            if cached is not None:
                summary = Summary.model_validate_json(cached)
                labels = json.loads(self._blobs.get_bytes(key + ".labels") or b"{}")
            else:
                summary, labels = self._summarise_hour(baseline, reference, endpoint, variant, hour)
                if summary.rows:
                    self._blobs.put_bytes(
                        key + ".labels", canonical_json(labels), "application/json"
                    )
            if summary.rows:
                evidence[f"hour:{stamp}"] = (
                    self._store(key, summary) if cached is None else _evidence(key, cached)
                )
                summaries.append(summary)
                inference_labels.update(labels)
            hour += timedelta(hours=1)
        if not summaries:
            return None
        return _Window(drift_stats.merge(summaries), evidence, inference_labels)

    def _summarise_hour(
        self,
        baseline: DriftBaseline,
        reference: Summary,
        endpoint: str,
        variant: str,
        hour: datetime,
    ) -> tuple[Summary, dict[str, str]]:
        from modelops.domain import drift_stats

        width = len(baseline.features)
        rows: list[list[float]] = []
        predicted: list[str] = []
        labels: dict[str, str] = {}
        prefix = f"capture/{endpoint}/{variant}/{hour.strftime(HOUR_FORMAT)}/"
        for key in self._blobs.list_keys(prefix):
            for line in (self._blobs.get_bytes(key) or b"").decode("utf-8").splitlines():
                inference_id, instances, outputs = captured_rows(line)
                usable = [r for r in instances if len(r) == width]
                if not usable or len(outputs) != len(instances):
                    continue
                rows.extend(usable)
                predicted.extend(outputs)
                if inference_id and len(outputs) == 1:
                    labels[inference_id] = outputs[0]
        columns: dict[str, Any] = {
            name: [r[i] for r in rows] for i, name in enumerate(baseline.features)
        }
        if PREDICTION_FEATURE in reference.features:
            columns[PREDICTION_FEATURE] = predicted
        summary = drift_stats.summarise(
            columns, reference, start=hour, end=hour + timedelta(hours=1)
        )
        return summary, labels

    def _performance(
        self, baseline: DriftBaseline, predicted: Mapping[str, str]
    ) -> PerformanceDrift:
        truth = self._monitoring.get_labels(baseline.modelId, list(predicted)) if predicted else {}
        labelled = len(truth)
        if labelled == 0:
            return PerformanceDrift(
                labelled=0,
                accuracy=None,
                referenceAccuracy=baseline.referenceAccuracy,
                drop=None,
                status="unknown",
            )
        accuracy = sum(predicted[i] == label for i, label in truth.items()) / labelled
        reference = baseline.referenceAccuracy
        drop = None if reference is None else reference - accuracy
        status: Any = "unknown"
        if drop is not None and labelled >= MIN_LABELLED:
            status = (
                "alarm"
                if drop >= PERFORMANCE_ALARM
                else "warn"
                if drop >= PERFORMANCE_WARN
                else "ok"
            )
        return PerformanceDrift(
            labelled=labelled,
            accuracy=accuracy,
            referenceAccuracy=reference,
            drop=drop,
            status=status,
        )

    def post_labels(self, model_id: str, request: LabelsRequest, caller: Caller) -> LabelsAccepted:
        caller.require(Permission.TRAIN)
        self._model(model_id)
        unique = {label.inferenceId: label for label in request.labels}  # the last one wins
        self._monitoring.put_labels(model_id, list(unique.values()))
        return LabelsAccepted(modelId=model_id, accepted=len(unique))

    # --- alerts and remediation ------------------------------------------------------------

    def raise_alert(self, request: AlertRequest, caller: Caller, correlation_id: str) -> DriftAlert:
        caller.require(Permission.TRAIN)
        return self.alert(request, caller.principal, "api", correlation_id)

    def alert(
        self, request: AlertRequest, principal: str, source: AlertSource, correlation_id: str
    ) -> DriftAlert:
        """Record an alert and its remediation; one alert per finding (a retried or
        duplicated event lands on the same alert)."""
        model = self._model(request.modelId)
        finding = self.finding(request.findingId) if request.findingId else None
        if finding is not None and finding.modelId != model.modelId:
            raise ValidationFailed(
                f"finding {finding.findingId} is about {finding.modelId}, not {model.modelId}",
                details=[{"field": "findingId", "message": "another model's finding"}],
            )
        alert_id = (
            ids.fresh(ids.DRIFT_ALERT, finding.findingId)
            if finding is not None
            else ids.fresh(ids.DRIFT_ALERT, uuid.uuid4().hex)
        )
        existing = self._monitoring.get_alert(alert_id)
        if existing is not None:
            return existing
        policy = self._promotions.get_family_policy(model.family)
        remediation = set(request.remediation)
        if policy is not None and policy.riskTier == "high":
            remediation.add("quarantine")  # a high-risk model stops where it is
        features = finding.drifted if finding else ()
        reason = request.reason or (
            f"{len(features)} feature(s) drifted: {', '.join(features)}" if finding else "alert"
        )
        now = self._clock.now()
        proposal = (
            self._propose(model, alert_id, finding, now) if "retrain" in remediation else None
        )
        quarantined = "quarantine" in remediation and self._quarantine(
            model.modelId, alert_id, reason, now
        )
        alert = DriftAlert(
            alertId=alert_id,
            modelId=model.modelId,
            findingId=finding.findingId if finding else None,
            source=source,
            reason=reason,
            features=features,
            remediation=tuple(sorted(remediation)),
            proposalId=proposal.proposalId if proposal else None,
            quarantined=quarantined,
            raisedBy=principal,
            raisedAt=now,
            correlationId=correlation_id,
        )
        try:
            self._monitoring.create_alert(alert)
        except AlreadyExists:
            stored = self._monitoring.get_alert(alert_id)
            if stored is None:
                raise ServiceUnavailable("the alert is being written; retry") from None
            return stored
        self._record(
            principal if principal.startswith("arn:") else model.createdBy,
            "drift.alert",
            tuple(x for x in (model.modelId, alert_id, alert.proposalId) if x),
            correlation_id,
            {
                "actor": principal,
                "remediation": ",".join(alert.remediation),
                "quarantined": str(quarantined),
            },
        )
        self._recommend(model, alert)
        return alert

    def _recommend(self, model: ModelVersion, alert: DriftAlert) -> None:
        """Tell the Eval Engine and Kernel what the alert advises: retrain (a proposal
        waits for approval), quarantine (already in force for high-risk families), and for a
        prod version, demotion to staging (the previous version back, until a retrain
        passes its gates)."""
        advice: list[tuple[RecommendedAction, str | None, list[str]]] = []
        if "retrain" in alert.remediation:
            waiting = [f"retrain proposal {alert.proposalId} awaits approval"]
            advice.append(("retrain", None, [alert.reason, *(waiting if alert.proposalId else [])]))
        if "quarantine" in alert.remediation:
            advice.append(("quarantine", None, [alert.reason]))
        if model.status is ModelStatus.PROD:
            advice.append(("demote", ModelStatus.STAGING.value, [alert.reason]))
        for action, target, reasons in advice:
            self._publish(
                ModelRecommendation(
                    modelId=model.modelId,
                    family=model.family,
                    version=model.version,
                    source="drift",
                    sourceId=alert.alertId,
                    recommendation=Recommendation(
                        action=action,
                        currentStage=model.status.value,
                        targetStage=target,
                        reasons=reasons,
                    ),
                    correlationId=alert.correlationId,
                )
            )

    def alert_from_alarm(self, correlation_id: str) -> list[DriftAlert]:
        """A drift CloudWatch alarm fired: alert on every model whose latest finding is at
        alarm (deduplicated with the monitor's own events by finding)."""
        alerts = []
        for model_id in sorted({serving for *_, serving in self._serving()}):
            latest = self._monitoring.findings_of(model_id, 1)
            if latest and latest[0].status == "alarm":
                alerts.append(
                    self.alert(
                        AlertRequest(modelId=model_id, findingId=latest[0].findingId),
                        "cloudwatch-alarm",
                        "alarm",
                        correlation_id,
                    )
                )
        return alerts

    def _propose(
        self, model: ModelVersion, alert_id: str, finding: DriftFinding | None, now: datetime
    ) -> RetrainProposal | None:
        job_id = model.provenance.get("trainingJobId")
        job = self._jobs.get_training_job(job_id) if job_id else None
        if job is None:
            return None  # not trained by the platform: nothing to re-run
        proposal_id = ids.fresh(ids.RETRAIN_PROPOSAL, alert_id)
        manifest = {
            "datasets": [
                {"datasetId": r.datasetId, "channel": r.channel, "checksum": r.checksum}
                for r in job.datasetRefs
            ],
            "capture": {
                "endpoint": finding.endpoint if finding else None,
                "windowStart": finding.windowStart.isoformat() if finding else None,
                "windowEnd": finding.windowEnd.isoformat() if finding else None,
                **(self._captured(finding) if finding else {}),
                "labelled": finding.performance.labelled if finding and finding.performance else 0,
            },
        }
        request = job.request.model_copy(
            update={
                "modelVersion": self._next_version(model),
                "retrainReason": f"drift alert {alert_id}"
                + (f": {', '.join(finding.drifted)}" if finding and finding.drifted else ""),
                "parentModelId": None,
            }
        )
        estimate = self._estimate(job)
        statement = {
            "type": PROPOSAL_TYPE,
            "proposalId": proposal_id,
            "modelId": model.modelId,
            "rootDigest": model.rootDigest,
            "alertId": alert_id,
            "findingId": finding.findingId if finding else None,
            "driftedFeatures": list(finding.drifted) if finding else [],
            "datasetManifestDigest": hashlib.sha256(canonical_json(manifest)).hexdigest(),
            "previousJobId": job.jobId,
            "reproducibilityDigest": hashlib.sha256(
                canonical_json(job.reproducibility.model_dump(mode="json"))
            ).hexdigest(),
            "requestDigest": hashlib.sha256(
                canonical_json(request.model_dump(mode="json"))
            ).hexdigest(),
            "estimate": estimate.model_dump(mode="json"),
            "createdAt": now.isoformat(),
        }
        message, signature = sign_statement(self._signer, statement, "drift-alerts", now)
        proposal = RetrainProposal(
            proposalId=proposal_id,
            modelId=model.modelId,
            family=model.family,
            alertId=alert_id,
            findingId=finding.findingId if finding else None,
            windowStart=finding.windowStart if finding else None,
            windowEnd=finding.windowEnd if finding else None,
            driftedFeatures=finding.drifted if finding else (),
            datasetManifest=manifest,
            previousJobId=job.jobId,
            reproducibility=job.reproducibility.model_dump(mode="json"),
            request=request,
            estimate=estimate,
            statement=message.decode(),
            signature=signature,
            status="PROPOSED",
            createdAt=now,
        )
        try:
            self._monitoring.create_proposal(proposal)
        except AlreadyExists:
            return self._monitoring.get_proposal(proposal_id)
        return proposal

    def _captured(self, finding: DriftFinding) -> dict[str, Any]:
        """The window's hourly summaries and its captured requests (key, SHA-256, size):
        the new data to label and train on."""
        hours = sorted(k for k in finding.evidence if k.startswith("hour:"))
        keys = [
            key
            for hour in hours
            for key in self._blobs.list_keys(
                f"capture/{finding.endpoint}/{finding.variant}/{hour.removeprefix('hour:')}/"
            )
        ]
        return {
            "hourlySummaries": {hour: finding.evidence[hour].model_dump() for hour in hours},
            "objects": [
                {"key": key, "sha256": found[0], "size": found[1]}
                for key, found in zip(keys, each(self._blobs.sha256_of, keys), strict=True)
                if found is not None
            ],
        }

    def _estimate(self, job: TrainingJob) -> CostEstimate:
        record = self._usage.get_usage(job.jobId)
        if record is None:
            return CostEstimate(
                gpuHours=0.0,
                instanceHours=0.0,
                costUsd=0.0,
                basis=f"job {job.jobId} recorded no usage",
            )
        return CostEstimate(
            gpuHours=float(record.gpuHours),
            instanceHours=float(record.instanceHours),
            costUsd=float(record.costUsd),
            basis=f"the usage of job {job.jobId} ({record.instanceType} x"
            f"{record.instanceCount}, {record.billableSeconds} s billable)",
        )

    def _next_version(self, model: ModelVersion) -> str:
        """The next free patch version of the family after ``model``'s."""
        major, minor, patch = (int(p) for p in model.version.split("-")[0].split(".")[:3])
        taken = {m.version for m in self._registry.list_models(model.family, None, 100, None).items}
        candidate = f"{major}.{minor}.{patch + 1}"
        while candidate in taken:
            patch += 1
            candidate = f"{major}.{minor}.{patch + 1}"
        return candidate

    def _quarantine(self, model_id: str, alert_id: str, reason: str, now: datetime) -> bool:
        current = self._monitoring.get_quarantine(model_id)
        if current is not None and current.active:
            return True
        quarantine = Quarantine(
            modelId=model_id,
            alertId=alert_id,
            reason=reason,
            since=now,
            revision=(current.revision + 1) if current else 0,
        )
        with contextlib.suppress(AlreadyExists):  # a concurrent alert quarantined it first
            self._monitoring.save_quarantine(
                quarantine, current.revision if current is not None else None
            )
        return True

    def approve_proposal(
        self, proposal_id: str, caller: Caller, correlation_id: str = ""
    ) -> RetrainProposal:
        caller.require(Permission.APPROVE)

        def approve(proposal: RetrainProposal) -> Mapping[str, Any]:
            if proposal.status != "PROPOSED":
                raise Conflict(f"proposal {proposal_id} is {proposal.status}")
            return {
                "status": "APPROVED",
                "approvedBy": caller.principal,
                "approvedAt": self._clock.now(),
            }

        _, approved = revise(
            lambda: self.proposal(proposal_id),
            self._monitoring.save_proposal,
            approve,
            lambda: ServiceUnavailable(f"proposal {proposal_id} is changing; retry"),
        )
        self._record(caller.principal, "drift.proposal.approve", (proposal_id,), correlation_id)
        return approved

    def release_quarantine(
        self, model_id: str, caller: Caller, correlation_id: str = ""
    ) -> Quarantine:
        """Human sign-off: the version may be promoted and deployed again."""
        caller.require(Permission.APPROVE)

        def release(quarantine: Quarantine) -> Mapping[str, Any]:
            if not quarantine.active:
                raise Conflict(f"model {model_id} is not quarantined")
            return {
                "active": False,
                "releasedBy": caller.principal,
                "releasedAt": self._clock.now(),
            }

        def read() -> Quarantine:
            found = self._monitoring.get_quarantine(model_id)
            if found is None:
                raise NotFound(f"model {model_id} was never quarantined")
            return found

        _, released = revise(
            read,
            self._monitoring.save_quarantine,
            release,
            lambda: ServiceUnavailable(f"the quarantine of {model_id} is changing; retry"),
        )
        self._record(caller.principal, "drift.quarantine.release", (model_id,), correlation_id)
        return released

    # --- internals -------------------------------------------------------------------------

    def _model(self, model_id: str) -> ModelVersion:
        model = self._registry.get_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id} does not exist")
        return model

    def _training_dataset(self, model: ModelVersion) -> str:
        job_id = model.provenance.get("trainingJobId")
        job = self._jobs.get_training_job(job_id) if job_id else None
        if job is not None:
            ref = next((r for r in job.datasetRefs if r.channel == "train"), job.datasetRefs[0])
            return ref.datasetId
        if model.lineage.datasets:
            return sorted(model.lineage.datasets)[0]
        raise ValidationFailed(
            f"model {model.modelId} has no training data in its lineage: name a datasetId",
            details=[{"field": "datasetId", "message": "required for this model"}],
        )

    def _dataset_rows(self, dataset_id: str) -> tuple[list[str], list[list[str]]]:
        """The dataset's CSV rows (train.csv when it has one, else every CSV file)."""
        dataset = self._registry.get_dataset(dataset_id)
        artifact = self._registry.get_artifact(dataset.artifactId) if dataset else None
        if artifact is None:
            raise ValidationFailed(f"dataset {dataset_id} has no stored files")
        csvs = [f for f in artifact.files if f.path.endswith(".csv")]
        chosen = [f for f in csvs if f.path.rsplit("/", 1)[-1] == "train.csv"] or csvs
        if not chosen:
            raise ValidationFailed(
                f"dataset {dataset_id} holds no CSV file to baseline",
                details=[{"field": "datasetId", "message": "no CSV"}],
            )
        header: list[str] = []
        rows: list[list[str]] = []
        for entry in chosen:
            data = self._blobs.get_bytes(blob_key(entry.sha256)) or b""
            reader = csv.reader(io.StringIO(data.decode("utf-8")))
            file_header = next(reader, [])
            if header and file_header != header:
                raise ValidationFailed(f"{entry.path}: its columns differ from the others'")
            header = file_header
            rows.extend(r for r in reader if r)
        return header, rows

    def _serving(self) -> Iterable[tuple[str, str, str, str]]:
        """(endpoint, live deployId, variant, model id) of every production variant that
        serves a model now: after a rollback the endpoint runs the rolled-back deployment's
        config, so the variants come from the endpoint itself, not from a record."""
        for endpoint, deploy_id in self._deployments.live_deployments():
            for variant, model_id in sorted(self._variants.serving(endpoint).items()):
                yield endpoint, deploy_id, variant, model_id

    def _store(self, key: str, document: Any) -> Evidence:
        data = document.model_dump_json().encode()
        self._blobs.put_bytes(key, data, "application/json")
        return _evidence(key, data)

    def _read(self, evidence: Evidence) -> bytes:
        data = self._blobs.get_bytes(evidence.key)
        if data is None or hashlib.sha256(data).hexdigest() != evidence.sha256:
            raise ServiceUnavailable(f"{evidence.key} is missing or changed since it was stored")
        return data

    def _record(
        self,
        principal: str,
        action: str,
        resources: Sequence[str],
        correlation_id: str,
        details: Mapping[str, str] | None = None,
    ) -> None:
        request_id = correlation_id or str(uuid.uuid4())
        self._audit(
            AuditEvent(
                stream=AUDIT_STREAM,
                eventId=str(uuid.uuid4()),
                time=self._clock.now(),
                principal=principal,
                action=action,
                resources=tuple(resources),
                requestId=request_id,
                correlationId=request_id[:128],
                outcome=Outcome.SUCCEEDED,
                status=200,
                details=dict(details or {}),
            )
        )


class Retraining:
    """Submitting an approved retrain proposal to the training workflow (training API)."""

    def __init__(
        self,
        *,
        monitoring: MonitoringRepository,
        submit: Callable[[SubmitTrainingJobRequest, Caller, str], TrainingJob],
        get_job: Callable[[str], TrainingJob],
    ) -> None:
        self._monitoring = monitoring
        self._submit = submit
        self._get_job = get_job

    def submit(
        self, proposal_id: str, model_version: str | None, caller: Caller, correlation_id: str
    ) -> TrainingJob:
        caller.require(Permission.TRAIN)
        proposal = self._monitoring.get_proposal(proposal_id)
        if proposal is None:
            raise NotFound(f"retrain proposal {proposal_id} does not exist")
        if proposal.status == "SUBMITTED" and proposal.submittedJobId:
            return self._get_job(proposal.submittedJobId)  # a retry: the same job
        if proposal.status != "APPROVED":
            raise InvalidState(
                f"proposal {proposal_id} is {proposal.status}; an approver must approve it "
                f"first (POST /drift/proposals/{proposal_id}/approve)"
            )
        request = proposal.request
        if model_version:
            request = SubmitTrainingJobRequest.model_validate(
                {**request.model_dump(mode="json"), "modelVersion": model_version}
            )
        job = self._submit(request, caller, correlation_id)
        submitted = proposal.model_copy(
            update={
                "status": "SUBMITTED",
                "submittedJobId": job.jobId,
                "revision": proposal.revision + 1,
            }
        )
        try:
            self._monitoring.save_proposal(submitted, proposal.revision)
        except Exception as exc:  # StaleWrite: a concurrent submit won; report its job
            stored = self._monitoring.get_proposal(proposal_id)
            if stored is not None and stored.submittedJobId:
                return self._get_job(stored.submittedJobId)
            raise ServiceUnavailable("the proposal changed meanwhile; retry") from exc
        return job


def _numeric(values: Sequence[str]) -> bool:
    try:
        for value in values:
            if value != "":
                float(value)
    except ValueError:
        return False
    return True


def _label_column(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str | None:
    """The label column when the request names none: a conventional name, else a last
    column that is not numeric (the usual layout of labelled CSV)."""
    for name in ("label", "target", "class", "y"):
        if name in header:
            return name
    if header and rows and not _numeric([r[-1] for r in rows if r]):
        return header[-1]
    return None


def _reference_accuracy(model: ModelVersion) -> float | None:
    for name in ("test:accuracy", "accuracy", "validation:accuracy"):
        if name in model.metrics:
            return float(model.metrics[name])
    return None


def _evidence(key: str, data: bytes) -> Evidence:
    return Evidence(key=key, sha256=hashlib.sha256(data).hexdigest())
