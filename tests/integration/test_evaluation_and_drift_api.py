"""Evaluation and drift on the local cloud, end to end over signed HTTP: an evaluation job
through the training workflow, the baseline computed when a model is trained (EventBridge
-> SQS -> drift-baseline), a drift check over real data capture, and the alert path
(Drift Detected or the drift alarm -> EventBridge -> SQS -> drift-alerts) to a signed
retrain proposal that an approver approves and the engineer submits."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.domain.crypto import verify_ed25519
from modelops_cli import evaluation
from modelops_cli.client import ApiError, ModelOpsClient
from modelops_cli.demo import iris_rows
from modelops_cli.demo_monitoring import (
    EVALUATION_CONFIG,
    drifted_rows,
    holdout_with_site,
    wait_for,
)
from tests.integration.test_training_api import (  # the same module fixtures and helpers
    _request,
    _train,
    engineer,
    iris,
)

pytestmark = pytest.mark.slow
__all__ = ["engineer", "iris"]


@pytest.fixture(scope="module")
def trained(engineer: ModelOpsClient, iris: dict[str, Any]) -> dict[str, Any]:
    job = _train(engineer, _request(iris, seed=31, hyperparameters={"epochs": 6}))
    assert job["status"] == "COMPLETED", job.get("failure")
    return job


@pytest.fixture(scope="module")
def holdout(
    engineer: ModelOpsClient, iris: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> str:
    return holdout_with_site(
        engineer, iris["datasetId"], iris["split"] / "test.csv", tmp_path_factory.mktemp("h")
    )


def test_an_evaluation_job_scores_the_model_and_its_record_binds_what_was_evaluated(
    engineer: ModelOpsClient, trained: dict[str, Any], holdout: str, tmp_path: Path
) -> None:
    model_id = trained["modelId"]

    record = evaluation.run(
        engineer, model_id, [holdout], EVALUATION_CONFIG, tmp_path, say=lambda _: None
    )

    assert record["status"] == "COMPLETED", record["statusReason"]
    results = record["results"]
    assert results["rows"] == 30 and record["metrics"]["accuracy"] > 0.8
    assert set(results["fairness"]["site"]["groups"]) == {"north", "south"}
    assert record["safetyPassed"] and {c["name"] for c in results["safety"]["checks"]} == {
        "probabilities_valid",
        "allowed_labels",
        "perturbation_robustness",
    }
    model = engineer.get_model(model_id)["model"]
    dataset = engineer.get_dataset(holdout)
    assert record["modelRootDigest"] == model["rootDigest"]
    assert record["testsets"] == [
        {"datasetId": holdout, "checksum": dataset["checksum"], "channel": "test"}
    ]
    assert len(record["digest"]) == 64
    job = engineer.get_training(record["jobId"])
    assert (job["purpose"], job["evaluationId"], job["modelId"]) == (
        "evaluate",
        record["evaluationId"],
        model_id,
    )
    listed = engineer.call("GET", "/eval", query={"modelId": model_id})["items"]
    assert record["evaluationId"] in {e["evaluationId"] for e in listed}


def test_bad_evaluation_requests_are_refused_before_anything_runs(
    engineer: ModelOpsClient, trained: dict[str, Any], holdout: str, iris: dict[str, Any]
) -> None:
    good = {
        "modelId": trained["modelId"],
        "testsets": [holdout],
        "config": EVALUATION_CONFIG,
        "evaluator": {"sourceArtifactId": iris["source"], "gitCommit": "uncommitted"},
        "dependencyLockDigest": iris["lock"],
    }
    cases = {
        "unknown model": ({"modelId": "mdl-" + "0" * 24}, 404, "NOT_FOUND"),
        "unknown test set": ({"testsets": ["ds-" + "0" * 24]}, 422, "REFERENCE_NOT_FOUND"),
        "unknown task": (
            {"config": {**EVALUATION_CONFIG, "task": "ranking"}},
            400,
            "VALIDATION_FAILED",
        ),
        # the training code declares no model or test channel: not an evaluator
        "training code as the evaluator": ({}, 400, "VALIDATION_FAILED"),
    }
    for label, (change, status, code) in cases.items():
        got, body = engineer.request("POST", "/eval/run", {**good, **change})
        assert (got, body["error"]["code"]) == (status, code), label


def test_drift_on_shifted_traffic_raises_an_alert_with_a_signed_retrain_proposal(
    local_cloud: LocalCloud, engineer: ModelOpsClient, trained: dict[str, Any]
) -> None:
    model_id = trained["modelId"]
    baseline = wait_for(
        lambda: engineer.call("GET", f"/drift/{model_id}")["baseline"],
        lambda b: b is not None and b["status"] == "READY",
    )
    assert baseline["labelColumn"] == "species" and baseline["rows"] == 120
    deployed = engineer.call(
        "POST",
        "/serve/deploy",
        {"modelId": model_id, "env": "sandbox", "route": "drift-it"},
        headers={"Idempotency-Key": f"drift-it-{time.monotonic_ns()}"},
    )
    wait_for(
        lambda: engineer.call("GET", f"/serve/{deployed['deployId']}")["status"],
        lambda status: status in {"IN_SERVICE", "FAILED"},
    )
    endpoint = deployed["endpointName"]
    runtime = local_cloud.client("sagemaker-runtime")

    def send(rows: list[list[float]], inference_id: str = "") -> None:
        extra = {"InferenceId": inference_id} if inference_id else {}
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            Body=json.dumps({"instances": rows}),
            ContentType="application/json",
            **extra,
        )

    normal = iris_rows()
    for start in range(0, len(normal), 10):
        send(normal[start : start + 10])
    labels = []
    for i, row in enumerate(drifted_rows(40, seed=3)):
        send([row], f"drift-it-{i}")
        labels.append({"inferenceId": f"drift-it-{i}", "label": "setosa"})
    for batch in range(12):
        send(drifted_rows(25, seed=50 + batch))
    engineer.call("POST", f"/drift/{model_id}/labels", {"labels": labels})

    def checked() -> dict[str, Any]:
        before = {f["findingId"] for f in engineer.call("GET", f"/drift/{model_id}")["findings"]}
        engineer.call("POST", f"/drift/{model_id}/check", {"hours": 1})
        view = wait_for(
            lambda: engineer.call("GET", f"/drift/{model_id}"),
            lambda v: any(f["findingId"] not in before for f in v["findings"]),
        )
        return dict(view["findings"][0])

    finding = wait_for(checked, lambda f: f["rows"] >= 150 + 340, 60)  # capture lands in batches
    assert finding["status"] == "alarm"
    assert {"petal_length", "petal_width"} <= set(finding["drifted"])
    assert not {"sepal_length", "sepal_width"} & set(finding["drifted"])
    assert finding["performance"]["labelled"] == 40
    assert finding["performance"]["accuracy"] < 0.5  # the labels say setosa; it says virginica
    evidence = finding["evidence"]
    bucket = local_cloud.names[platform.ARTIFACT_BUCKET.logical_id]
    window = local_cloud.client("s3").get_object(Bucket=bucket, Key=evidence["window"]["key"])
    assert json.loads(window["Body"].read())["rows"] == finding["rows"]

    alerts = wait_for(
        lambda: engineer.call("GET", f"/drift/{model_id}")["alerts"],
        lambda found: any(a["findingId"] == finding["findingId"] for a in found),
    )
    alert = next(a for a in alerts if a["findingId"] == finding["findingId"])
    assert alert["source"] == "monitor" and alert["remediation"] == ["retrain"]
    proposal = engineer.call("GET", f"/drift/proposals/{alert['proposalId']}")
    keys = engineer.call("GET", "/audit/keys")["keys"]
    key = next(k for k in keys if k["keyId"] == proposal["signature"]["keyId"])
    assert verify_ed25519(
        base64.b64decode(key["publicKeyDer"]),
        base64.b64decode(proposal["signature"]["signature"]),
        proposal["statement"].encode(),
    )
    assert proposal["previousJobId"] == trained["jobId"]
    assert proposal["estimate"]["gpuHours"] >= 0 and proposal["status"] == "PROPOSED"

    _the_alarm_lands_on_the_same_alert(local_cloud, engineer, model_id, alert)
    _an_approved_proposal_is_submitted_once(local_cloud, engineer, proposal, alert)


def _the_alarm_lands_on_the_same_alert(
    local_cloud: LocalCloud, engineer: ModelOpsClient, model_id: str, alert: dict[str, Any]
) -> None:
    """The drift alarm's state change (CloudWatch -> default bus) finds the same finding."""
    local_cloud.client("events").put_events(
        Entries=[
            {
                "Source": "aws.cloudwatch",
                "DetailType": "CloudWatch Alarm State Change",
                "Detail": json.dumps(
                    {
                        "alarmName": f"{platform.DRIFT_ALARM_PREFIX}local",
                        "state": {"value": "ALARM"},
                    }
                ),
                "EventBusName": "default",
            }
        ]
    )
    again = engineer.call("GET", f"/drift/{model_id}")["alerts"]
    assert [a["alertId"] for a in again if a["findingId"] == alert["findingId"]] == [
        alert["alertId"]
    ]


def _an_approved_proposal_is_submitted_once(
    local_cloud: LocalCloud,
    engineer: ModelOpsClient,
    proposal: dict[str, Any],
    alert: dict[str, Any],
) -> None:
    approver = local_cloud.principals["approver"]
    approving = ModelOpsClient(local_cloud.api_url, approver.session(local_cloud.region))
    with pytest.raises(ApiError) as early:
        engineer.call("POST", "/train/retrain", {"proposalId": proposal["proposalId"]})
    assert early.value.status == 409
    with pytest.raises(ApiError) as not_an_approver:
        engineer.call("POST", f"/drift/proposals/{proposal['proposalId']}/approve")
    assert not_an_approver.value.status == 403
    approving.call("POST", f"/drift/proposals/{proposal['proposalId']}/approve")
    job = engineer.call("POST", "/train/retrain", {"proposalId": proposal["proposalId"]})
    retried = engineer.call("POST", "/train/retrain", {"proposalId": proposal["proposalId"]})
    assert retried["jobId"] == job["jobId"]
    assert alert["alertId"] in job["retrainReason"]
    engineer.call("POST", f"/train/jobs/{job['jobId']}/cancel")


def test_drift_api_refuses_bad_input_with_the_field_to_fix(
    engineer: ModelOpsClient, trained: dict[str, Any]
) -> None:
    model_id = trained["modelId"]
    unknown = "mdl-" + "0" * 24
    cases = [
        ("GET", f"/drift/{unknown}", None, 404),
        ("POST", f"/drift/{unknown}/check", {"hours": 1}, 404),
        ("POST", f"/drift/{model_id}/check", {"hours": 0}, 400),
        ("POST", f"/drift/{model_id}/labels", {"labels": []}, 400),
        ("POST", "/drift/alert", {"modelId": model_id, "remediation": ["delete"]}, 400),
        ("POST", "/drift/alert", {"modelId": model_id, "findingId": "dft-" + "0" * 24}, 404),
        ("POST", f"/drift/{model_id}/quarantine/release", None, 403),
    ]
    for method, path, body, status in cases:
        got, answer = engineer.request(method, path, body)
        assert got == status, (method, path, answer)
        assert answer["error"]["code"] and answer["error"]["message"]


def test_a_baseline_on_request_is_computed_by_the_baseline_function_from_the_named_dataset(
    engineer: ModelOpsClient, trained: dict[str, Any], holdout: str
) -> None:
    model_id = trained["modelId"]
    wait_for(  # the one computed when the model was trained, first
        lambda: engineer.call("GET", f"/drift/{model_id}")["baseline"],
        lambda b: b is not None and b["status"] == "READY",
    )

    pending = engineer.call(
        "POST",
        f"/drift/{model_id}/baseline",
        {"datasetId": holdout, "labelColumn": "species", "bins": 20},
    )

    assert pending["status"] == "PENDING" and pending["datasetId"] == holdout
    done = wait_for(
        lambda: engineer.call("GET", f"/drift/{model_id}")["baseline"],
        lambda b: b["datasetId"] == holdout and b["status"] != "PENDING",
    )
    assert done["status"] == "READY" and done["rows"] == 30
    assert done["categorical"] == ["site"]  # not numeric: summarised as counts
    assert "site" in done["features"] and done["labelColumn"] == "species"
