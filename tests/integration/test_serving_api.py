"""Serving on the local cloud, end to end over signed HTTP: the deploy state machine, the
gate, real model servers behind the endpoint router, canary analysis and rollback."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.services.artifacts import blob_key
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import ROWS, Traffic, runtime_invoker
from tests.integration.test_training_api import (  # the same module fixtures and helpers
    _request,
    _train,
    engineer,
    iris,
)

pytestmark = pytest.mark.slow
__all__ = ["engineer", "iris"]
ROUTE = "iris-it"
FAST_CANARY = {
    "canaryPercent": 30,
    "bakeSeconds": 3,
    "thresholds": {"minInvocations": 10, "maxErrorRate": 0.05, "maxPredictionDivergence": 0.5},
}


def _prod_model(client: ModelOpsClient, iris: dict[str, Any], seed: int) -> str:
    trained = _train(client, _request(iris, seed=seed, hyperparameters={"epochs": 6}))
    assert trained["status"] == "COMPLETED", trained.get("failure")
    model_id = str(trained["modelId"])
    for stage in ("staging", "prod"):
        client.call("POST", f"/models/{model_id}/promote", {"targetStage": stage})
    return model_id


@pytest.fixture(scope="module")
def models(engineer: ModelOpsClient, iris: dict[str, Any]) -> list[str]:
    return [_prod_model(engineer, iris, seed) for seed in (21, 22, 23)]


def _deploy(
    client: ModelOpsClient, model_id: str, route: str = ROUTE, **fields: Any
) -> dict[str, Any]:
    return dict(
        client.call(
            "POST",
            "/serve/deploy",
            {"modelId": model_id, "env": "prod", "route": route, **fields},
            headers={"Idempotency-Key": f"{model_id}-{time.monotonic_ns()}"},
        )
    )


def _settle(
    cloud: LocalCloud, client: ModelOpsClient, deploy_id: str, timeout_s: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    sfn = cloud.client("stepfunctions")
    while True:
        record = client.call("GET", f"/serve/{deploy_id}")
        # Settled: the record says so and its workflow has ended (IN_SERVICE shows just
        # before the last step records the deployment as the endpoint's live one).
        if record["status"] in {"IN_SERVICE", "ROLLED_BACK", "FAILED", "SUPERSEDED"} and (
            sfn.describe_execution(executionArn=record["executionArn"])["status"] != "RUNNING"
        ):
            return dict(record)
        if time.monotonic() > deadline:
            history = cloud.client("stepfunctions").get_execution_history(
                executionArn=record["executionArn"], reverseOrder=True, maxResults=8
            )["events"]
            raise AssertionError(f"{deploy_id} still {record['status']}: {history}")
        time.sleep(0.2)


def _runtime(cloud: LocalCloud) -> Any:
    return cloud.client("sagemaker-runtime")


def _invoke(
    cloud: LocalCloud, endpoint: str, rows: list[list[float]]
) -> tuple[str, dict[str, Any]]:
    answer = _runtime(cloud).invoke_endpoint(
        EndpointName=endpoint,
        Body=json.dumps({"instances": rows}),
        ContentType="application/json",
    )
    return answer["InvokedProductionVariant"], json.loads(answer["Body"].read())


def _offline(
    cloud: LocalCloud, client: ModelOpsClient, model_id: str, rows: list[list[float]]
) -> list[str]:
    model = client.get_model(model_id)["model"]
    artifact = client.get_artifact(model["artifactId"])["artifact"]
    entry = next(f for f in artifact["files"] if f["path"] == "model.json")
    bucket = cloud.names[platform.ARTIFACT_BUCKET.logical_id]
    spec = json.loads(
        cloud.client("s3").get_object(Bucket=bucket, Key=blob_key(entry["sha256"]))["Body"].read()
    )
    x = (np.array(rows) - np.array(spec["standardization"]["mean"])) / np.array(
        spec["standardization"]["scale"]
    )
    logits = x @ np.array(spec["weights"]) + np.array(spec["bias"])
    return [spec["classes"][i] for i in np.argmax(logits, axis=1)]


def test_a_verified_model_is_deployed_and_serves_what_it_predicts_offline(
    local_cloud: LocalCloud, engineer: ModelOpsClient, models: list[str]
) -> None:
    record = _settle(local_cloud, engineer, _deploy(engineer, models[0])["deployId"])
    assert record["status"] == "IN_SERVICE", record["statusReason"]
    assert record["provenance"]["signedStage"] == "prod"
    answer_raw = _runtime(local_cloud).invoke_endpoint(
        EndpointName=record["endpointName"],
        Body=json.dumps({"instances": ROWS}),
        ContentType="application/json",
    )
    provenance = dict(p.split("=", 1) for p in answer_raw["CustomAttributes"].split(";"))
    assert provenance["model-id"] == models[0]
    assert provenance["root-digest"] == record["provenance"]["artifactRootDigest"]
    assert provenance["signer"] == str(record["provenance"]["signatureKeyId"]).rsplit("/", 1)[-1]
    targets = local_cloud.client("application-autoscaling").describe_scalable_targets(
        ServiceNamespace="sagemaker"
    )["ScalableTargets"]
    assert f"endpoint/{record['endpointName']}/variant/canary" in {t["ResourceId"] for t in targets}
    variant, answer = _invoke(local_cloud, record["endpointName"], ROWS)
    assert variant == "canary"
    assert [p["label"] for p in answer["predictions"]] == _offline(
        local_cloud, engineer, models[0], ROWS
    )


def test_a_good_canary_is_promoted_to_all_traffic(
    local_cloud: LocalCloud, engineer: ModelOpsClient, models: list[str]
) -> None:
    live = _settle(local_cloud, engineer, _deploy(engineer, models[0], "iris-good")["deployId"])
    with Traffic(runtime_invoker(_runtime(local_cloud)), live["endpointName"]) as traffic:
        record = _settle(
            local_cloud,
            engineer,
            _deploy(engineer, models[1], "iris-good", canary=FAST_CANARY)["deployId"],
        )
    assert record["status"] == "IN_SERVICE", record["statusReason"]
    assert record["decision"]["verdict"] == "promote"
    assert {v["name"]: v["weight"] for v in record["variants"]}["canary"] == 100
    assert traffic.lost == 0 and traffic.answered.get("canary", 0) > 0


def _bad_canary(
    cloud: LocalCloud, client: ModelOpsClient, models: list[str], route: str, **fault: float
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], Traffic]:
    """A live version, then a canary that the local cloud makes misbehave once it serves;
    traffic runs until the deployment settles."""
    live = _settle(cloud, client, _deploy(client, models[1], route)["deployId"])
    assert cloud.endpoints is not None
    started = _deploy(client, models[2], route, canary=FAST_CANARY)
    deadline = time.monotonic() + 60
    while client.call("GET", f"/serve/{started['deployId']}")["status"] != "BAKING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    cloud.endpoints.inject_fault(live["endpointName"], "canary", **fault)
    with Traffic(runtime_invoker(_runtime(cloud)), live["endpointName"]) as traffic:
        record = _settle(cloud, client, started["deployId"])
    return live, started, record, traffic


def test_a_slow_canary_is_rolled_back_within_its_bake(
    local_cloud: LocalCloud, engineer: ModelOpsClient, models: list[str]
) -> None:
    _, _, record, traffic = _bad_canary(local_cloud, engineer, models, "iris-slow", latency_ms=80)
    assert record["status"] == "ROLLED_BACK"
    assert "p95 latency" in record["statusReason"]
    assert traffic.lost == 0 and traffic.failed == 0


def test_a_canary_that_errors_is_rolled_back_within_its_bake_and_no_request_is_lost(
    local_cloud: LocalCloud, engineer: ModelOpsClient, models: list[str]
) -> None:
    live, started, record, traffic = _bad_canary(
        local_cloud, engineer, models, "iris-bad", error_rate=0.5
    )
    endpoint = live["endpointName"]
    assert record["status"] == "ROLLED_BACK"
    assert "error rate" in record["statusReason"]
    assert traffic.lost == 0 and traffic.failed > 0  # the canary's 5xx were answered
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in local_cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint)[
            "ProductionVariants"
        ]
    }
    assert weights == {"canary": 0.0, "baseline": 100.0}
    answers = [_invoke(local_cloud, endpoint, ROWS)[0] for _ in range(20)]
    assert set(answers) == {"baseline"}
    back = engineer.call("POST", f"/serve/{started['deployId']}/rollback", {})
    assert back["modelId"] == models[1] and back["canaryConfig"]["type"] == "ALL_AT_ONCE"
    status, body = engineer.request("POST", f"/serve/{live['deployId']}/rollback", {})
    assert (status, body["error"]["code"]) == (409, "INVALID_STATE")  # it replaced nothing


def test_an_unsigned_or_tampered_model_is_refused_for_prod(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any]
) -> None:
    draft = _train(engineer, _request(iris, seed=31, hyperparameters={"epochs": 2}))["modelId"]
    status, body = engineer.request(
        "POST", "/serve/deploy", {"modelId": draft, "env": "prod", "route": ROUTE}
    )
    assert (status, body["error"]["code"]) == (403, "DEPLOYMENT_REFUSED")
    signed = _prod_model(engineer, iris, 32)
    artifact = engineer.get_artifact(engineer.get_model(signed)["model"]["artifactId"])["artifact"]
    bucket = local_cloud.names[platform.ARTIFACT_BUCKET.logical_id]
    local_cloud.client("s3").put_object(
        Bucket=bucket, Key=blob_key(artifact["files"][0]["sha256"]), Body=b"tampered weights"
    )
    status, body = engineer.request(
        "POST", "/serve/deploy", {"modelId": signed, "env": "prod", "route": ROUTE}
    )
    assert (status, body["error"]["code"]) == (403, "DEPLOYMENT_REFUSED")
    assert "altered" in body["error"]["message"]
