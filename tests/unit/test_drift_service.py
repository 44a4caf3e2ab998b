"""The drift service against in-memory ports: baselines from the training data, hourly
summaries of data capture merged into windows, findings with their evidence, performance
drift from ground truth, alerts with signed retrain proposals and quarantine."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import timedelta
from typing import Any

import pytest

from modelops import platform
from modelops.adapters.cedar_policy import CedarPolicyEngine
from modelops.contracts.registry import RegisterDatasetRequest
from modelops.domain.crypto import verify_ed25519
from modelops.domain.monitoring import GroundTruth
from modelops.domain.promotion import FamilyPolicy
from modelops.errors import Forbidden, InvalidState
from modelops.services.drift import (
    AlertRequest,
    BaselineRequest,
    DriftService,
    DriftSettings,
    LabelsRequest,
    Retraining,
)
from modelops.services.governance import Governance
from modelops.services.lineage import LineageService
from tests.unit.fakes import FakeInvoker, MemoryDeployments, MemoryPublisher
from tests.unit.test_training_service import APPROVER, ENGINEER, Setup

HEADER = "sepal_length,sepal_width,petal_length,petal_width,species"
SPECIES = ("setosa", "versicolor", "virginica")
ENDPOINT, VARIANT = "modelops-iris-prod", "v-abc"


def iris_like(count: int, seed: int, petal_shift: float = 0.0) -> list[list[float]]:
    rng = random.Random(seed)
    return [
        [
            round(rng.gauss(5.8, 0.8), 2),
            round(rng.gauss(3.0, 0.4), 2),
            round(rng.uniform(1.0, 6.9) + petal_shift, 2),
            round(rng.uniform(0.1, 2.5), 2),
        ]
        for _ in range(count)
    ]


class FakeVariants:
    def __init__(self, serving: dict[str, dict[str, str]]) -> None:
        self.endpoints = serving

    def serving(self, endpoint: str) -> dict[str, str]:
        return self.endpoints.get(endpoint, {})


class Drift:
    def __init__(self) -> None:
        self.setup = setup = Setup()
        rows = iris_like(600, seed=1)
        csv = "\n".join(
            [HEADER, *(",".join([*map(str, r), SPECIES[i % 3]]) for i, r in enumerate(rows))]
        )
        artifact = setup.artifact({"train.csv": csv.encode() + b"\n"})
        dataset = setup.registry.register_dataset(
            RegisterDatasetRequest.model_validate(
                {"name": "iris-train", "artifactId": artifact.artifactId, "license": "MIT"}
            ),
            ENGINEER,
        ).dataset
        job = setup.finish(setup.service.submit(setup.request(dataset.datasetId), ENGINEER, "c"))
        setup.service.record_usage(job.jobId)
        self.job = job
        self.model_id = str(job.modelId)
        self.deployments = MemoryDeployments()
        self.deployments.set_live_deployment(ENDPOINT, "dep-" + "1" * 24)
        self.invoker = FakeInvoker()
        self.publisher = MemoryPublisher()
        self.events = self.publisher.published
        self.service = DriftService(
            monitoring=setup.repo,
            registry=setup.repo,
            promotions=setup.repo,
            deployments=self.deployments,
            variants=FakeVariants({ENDPOINT: {VARIANT: self.model_id}}),
            jobs=setup.repo,
            usage=setup.compute,
            blobs=setup.blobs,
            invoker=self.invoker,
            signer=setup.signer,
            publish=self.publisher,
            audit=setup.audit.append,
            clock=setup.clock,
            settings=DriftSettings(window_hours=3),
            governance=Governance(
                setup.repo, LineageService(setup.repo), setup.repo, CedarPolicyEngine(), setup.clock
            ),
        )

    def capture(self, hours_ago: int, rows: list[list[float]], prefix: str = "req") -> None:
        """One capture object per request row in the hour ``hours_ago`` before now."""
        hour = self.setup.clock.current - timedelta(hours=hours_ago)
        lines = []
        for i, row in enumerate(rows):
            request = json.dumps({"instances": [row]})
            label = SPECIES[2] if row[2] > 5.0 else SPECIES[i % 2]
            response = json.dumps({"predictions": [{"label": label}]})
            lines.append(
                json.dumps(
                    {
                        "captureData": {
                            "endpointInput": {
                                "observedContentType": "application/json",
                                "mode": "INPUT",
                                "data": request,
                                "encoding": "JSON",
                            },
                            "endpointOutput": {
                                "observedContentType": "application/json",
                                "mode": "OUTPUT",
                                "data": response,
                                "encoding": "JSON",
                            },
                        },
                        "eventMetadata": {"eventId": f"e{i}", "inferenceId": f"{prefix}-{i}"},
                        "eventVersion": "0",
                    }
                )
            )
        key = f"capture/{ENDPOINT}/{VARIANT}/{hour.strftime('%Y/%m/%d/%H')}/{prefix}.jsonl"
        self.setup.blobs.put(key, "\n".join(lines).encode())

    def baseline(self) -> None:
        self.service.baseline_for_trained(self.model_id, "corr")


@pytest.fixture
def drift() -> Drift:
    return Drift()


def test_baseline_summarises_the_training_data_and_its_labels_once(drift: Drift) -> None:
    drift.baseline()
    drift.baseline()  # the event again: nothing recomputed

    baseline = drift.setup.repo.get_baseline(drift.model_id)
    assert baseline is not None and baseline.status == "READY"
    assert baseline.features == ("sepal_length", "sepal_width", "petal_length", "petal_width")
    assert baseline.labelColumn == "species" and baseline.rows == 600
    assert baseline.statistics is not None and baseline.constraints is not None
    stored = json.loads(drift.setup.blobs.get_bytes(baseline.statistics.key) or b"")
    assert set(stored["features"]) == {*baseline.features, "prediction"}
    assert [e.action for e in drift.setup.audit].count("drift.baseline.ready") == 1


def test_a_baseline_on_request_is_pending_until_the_baseline_function_computes_it(
    drift: Drift,
) -> None:
    pending = drift.service.request_baseline(
        drift.model_id, BaselineRequest(labelColumn="species"), ENGINEER, "corr"
    )

    assert pending.status == "PENDING"
    assert drift.invoker.invoked[0][0] == platform.DRIFT_BASELINE.name
    done = drift.service.compute_baseline(drift.model_id, BaselineRequest(labelColumn="species"))
    assert done.status == "READY"
    failed = drift.service.compute_baseline(
        drift.model_id, BaselineRequest(features=("petal_area",))
    )
    assert failed.status == "FAILED" and "petal_area" in failed.statusReason


def test_shifted_traffic_is_an_alarm_on_the_features_that_moved_with_their_evidence(
    drift: Drift,
) -> None:
    drift.baseline()
    drift.capture(2, iris_like(150, seed=2, petal_shift=2.5), "a")
    drift.capture(1, iris_like(150, seed=3, petal_shift=2.5), "b")

    findings, metrics = drift.service.monitor(None, None, "corr-check")

    [finding] = findings
    assert finding.status == "alarm" and finding.rows == 300
    assert "petal_length" in finding.drifted
    assert not {"sepal_length", "sepal_width"} & set(finding.drifted)
    moved = next(f for f in finding.features if f.feature == "petal_length")
    assert moved.metric == "wasserstein" and moved.value >= moved.alarm
    assert moved.ks is not None and moved.ks.pValue < 1e-6
    hours = [key for key in finding.evidence if key.startswith("hour:")]
    assert len(hours) == 2 and {"statistics", "constraints", "window"} <= set(finding.evidence)
    assert drift.events == [
        (
            platform.DRIFT_DETECTED,
            {
                "findingId": finding.findingId,
                "modelId": drift.model_id,
                "endpoint": ENDPOINT,
                "drifted": list(finding.drifted),
                "performance": "unknown",
                "windowStart": finding.windowStart.isoformat(),
                "windowEnd": finding.windowEnd.isoformat(),
                "evidence": {k: e.model_dump() for k, e in finding.evidence.items()},
                "correlationId": "corr-check",
                "schemaVersion": "1",
                "resourcePath": f"/drift/findings/{finding.findingId}",
            },
        )
    ]
    alarm = next(m for m in metrics if m["name"] == platform.DRIFT_ALARM_METRIC)
    assert alarm["value"] == len(finding.drifted) and alarm["dimensions"] == {}
    scores = {m["dimensions"]["feature"] for m in metrics if m["name"] == "DriftScore"}
    assert "petal_length" in scores


def test_unshifted_traffic_is_ok_and_publishes_nothing(drift: Drift) -> None:
    drift.baseline()
    drift.capture(1, iris_like(400, seed=5), "a")

    [finding], _ = drift.service.monitor(drift.model_id, 2, "corr")

    assert finding.status in {"ok", "warn"} and finding.drifted == ()
    assert drift.events == []


def test_an_hour_that_ended_is_summarised_once_and_reused_by_later_windows(drift: Drift) -> None:
    drift.baseline()
    drift.capture(2, iris_like(200, seed=2, petal_shift=2.5), "a")
    [first], _ = drift.service.monitor(None, None, "corr")
    drift.capture(2, iris_like(200, seed=9), "a")  # the hour's capture rewritten: not re-read

    [second], _ = drift.service.monitor(None, None, "corr")

    assert second.rows == first.rows
    hour = next(k for k in first.evidence if k.startswith("hour:"))
    assert second.evidence[hour] == first.evidence[hour]
    assert "petal_length" in second.drifted


def test_ground_truth_labels_measure_performance_drift(drift: Drift) -> None:
    drift.baseline()
    rows = iris_like(60, seed=4)
    drift.capture(1, rows, "p")
    wrong = [GroundTruth(inferenceId=f"p-{i}", label="setosa") for i in range(60)]
    drift.service.post_labels(drift.model_id, LabelsRequest(labels=tuple(wrong)), ENGINEER)

    [finding], _ = drift.service.monitor(None, None, "corr")

    performance = finding.performance
    assert performance is not None and performance.labelled == 60
    assert performance.accuracy is not None and performance.accuracy < 0.5
    if performance.referenceAccuracy is not None:
        assert performance.status == "alarm" and finding.status == "alarm"


def test_an_alert_on_a_finding_records_a_signed_retrain_proposal_once(drift: Drift) -> None:
    drift.baseline()
    drift.capture(1, iris_like(300, seed=2, petal_shift=2.5), "a")
    [finding], _ = drift.service.monitor(None, None, "corr")
    request = AlertRequest(modelId=drift.model_id, findingId=finding.findingId)

    alert = drift.service.alert(request, "drift-monitor", "monitor", "corr")
    again = drift.service.alert(request, "cloudwatch-alarm", "alarm", "corr")

    assert again == alert and alert.remediation == ("retrain",) and not alert.quarantined
    assert alert.proposalId is not None
    proposal = drift.service.proposal(alert.proposalId)
    signed = base64.b64decode(proposal.signature.signature)
    assert verify_ed25519(drift.setup.signer.public_key(), signed, proposal.statement.encode())
    statement = json.loads(proposal.statement)
    assert statement["previousJobId"] == drift.job.jobId
    assert statement["driftedFeatures"] == list(finding.drifted)
    assert proposal.request.modelVersion == "1.0.1"
    assert proposal.request.retrainReason is not None
    assert proposal.estimate.gpuHours > 0 and proposal.estimate.costUsd > 0
    captured = proposal.datasetManifest["capture"]["objects"]
    key = f"capture/{ENDPOINT}/{VARIANT}/"
    assert [o["key"].startswith(key) for o in captured] == [True]
    data = drift.setup.blobs.get_bytes(captured[0]["key"]) or b""
    assert captured[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert proposal.reproducibility["seed"] == drift.job.reproducibility.seed


def test_a_high_risk_family_is_quarantined_and_only_an_approver_releases_it(drift: Drift) -> None:
    drift.setup.repo.put_family_policy(
        FamilyPolicy(family="iris", riskTier="high", approvalsRequired=1)
    )

    alert = drift.service.raise_alert(
        AlertRequest(modelId=drift.model_id, reason="labels drifted"), ENGINEER, "corr"
    )

    assert alert.quarantined and "quarantine" in alert.remediation
    quarantine = drift.setup.repo.get_quarantine(drift.model_id)
    assert quarantine is not None and quarantine.active
    with pytest.raises(Forbidden):
        drift.service.release_quarantine(drift.model_id, ENGINEER)
    released = drift.service.release_quarantine(drift.model_id, APPROVER)
    assert not released.active and released.releasedBy == APPROVER.principal


def test_an_approved_proposal_is_submitted_once_as_a_training_job(drift: Drift) -> None:
    alert = drift.service.raise_alert(AlertRequest(modelId=drift.model_id), ENGINEER, "corr")
    assert alert.proposalId is not None
    retraining = Retraining(
        monitoring=drift.setup.repo,
        submit=drift.setup.service.submit,
        get_job=drift.setup.service.get,
    )
    with pytest.raises(InvalidState):
        retraining.submit(alert.proposalId, None, ENGINEER, "corr")
    with pytest.raises(Forbidden):
        drift.service.approve_proposal(alert.proposalId, ENGINEER)
    drift.service.approve_proposal(alert.proposalId, APPROVER)

    job = retraining.submit(alert.proposalId, None, ENGINEER, "corr")
    retried = retraining.submit(alert.proposalId, None, ENGINEER, "corr")

    assert retried.jobId == job.jobId and job.modelVersion == "1.0.1"
    assert job.retrainReason is not None and alert.alertId in job.retrainReason
    assert drift.service.proposal(alert.proposalId).status == "SUBMITTED"


def test_the_variants_checked_are_those_serving_now_not_those_a_record_named(
    drift: Drift,
) -> None:
    drift.baseline()
    drift.capture(1, iris_like(200, seed=2, petal_shift=2.5), "a")
    variants = drift.service._variants
    assert isinstance(variants, FakeVariants)
    variants.endpoints[ENDPOINT] = {"baseline": drift.model_id}  # a rollback switched configs

    findings, _ = drift.service.monitor(None, None, "corr")

    assert findings == []  # nothing captured under the variant that serves the model now


def test_the_drift_alarm_alerts_on_each_model_whose_latest_finding_is_at_alarm(
    drift: Drift,
) -> None:
    drift.baseline()
    drift.capture(1, iris_like(300, seed=2, petal_shift=2.5), "a")
    [finding], _ = drift.service.monitor(None, None, "corr")

    [alert] = drift.service.alert_from_alarm("alarm-event-1")
    again = drift.service.alert_from_alarm("alarm-event-2")

    assert (alert.source, alert.findingId, alert.raisedBy) == (
        "alarm",
        finding.findingId,
        "cloudwatch-alarm",
    )
    assert again == [alert]  # the same finding: the same alert
    audit = [e for e in drift.setup.audit if e.action == "drift.alert"]
    model = drift.setup.repo.get_model(drift.model_id)
    assert model is not None and len(audit) == 1 and audit[0].principal == model.createdBy


class Crashed(Exception):
    """The alert handler's environment died between its two writes."""


def test_an_alert_handler_that_dies_between_proposal_and_alert_lands_on_one_of_each(
    drift: Drift, monkeypatch: pytest.MonkeyPatch
) -> None:
    drift.baseline()
    drift.capture(1, iris_like(300, seed=2, petal_shift=2.5), "a")
    [finding], _ = drift.service.monitor(None, None, "corr")
    request = AlertRequest(modelId=drift.model_id, findingId=finding.findingId)
    repo = drift.setup.repo
    create_alert = repo.create_alert

    def die(alert: Any) -> None:
        monkeypatch.setattr(repo, "create_alert", create_alert)
        raise Crashed()

    monkeypatch.setattr(repo, "create_alert", die)
    with pytest.raises(Crashed):
        drift.service.alert(request, "drift-monitor", "monitor", "corr")
    assert len(repo.proposals.items) == 1 and not repo.alerts.items

    alert = drift.service.alert(request, "drift-monitor", "monitor", "corr")  # the redelivery

    assert list(repo.alerts.items) == [alert.alertId]
    assert list(repo.proposals.items) == [alert.proposalId]
