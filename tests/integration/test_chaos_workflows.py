"""Chaos in the workflows on the local cloud: a task's execution environment dies right after
one of its writes (``LOCALCLOUD_CRASH_AFTER``, see ``localcloud/lambda_worker.py``), Lambda
reports ``Runtime.ExitError``, the state machine retries the task, and the retried task
finishes what the first one started: no orphan or duplicate record, no leaked reservation,
nothing stuck in a transitional status, and the audit ledger tells what happened."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.lambda_worker import CRASH_AFTER_ENV
from modelops_cli.client import ModelOpsClient
from tests.integration.test_training_api import (  # the same module fixtures and helpers
    _request,
    _train,
    engineer,
    iris,
)

pytestmark = pytest.mark.slow
__all__ = ["engineer", "iris"]


@contextmanager
def crash_after(
    cloud: LocalCloud, function: str, call: str, nth: int, directory: Path
) -> Iterator[Path]:
    """``function``'s next environment dies right after its ``nth`` ``call``
    (``service:Operation``), once; the marker file says whether it did."""
    lam = cloud.client("lambda")
    variables = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    marker = directory / f"{function}.crashed"
    lam.update_function_configuration(
        FunctionName=function,
        Environment={"Variables": {**variables, CRASH_AFTER_ENV: f"{call}:{nth}:{marker}"}},
    )
    try:
        yield marker
    finally:
        lam.update_function_configuration(
            FunctionName=function, Environment={"Variables": variables}
        )


def _task_failures(cloud: LocalCloud, execution_arn: str) -> list[str]:
    events = cloud.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=1000
    )["events"]
    return [
        str(e["taskFailedEventDetails"].get("error")) for e in events if e["type"] == "TaskFailed"
    ]


def _ledger_actions(client: ModelOpsClient, stream: str, resource: str) -> list[str]:
    """The actions of ``stream``'s ledger records that name ``resource``, in order."""
    actions: list[str] = []
    from_seq: int | None = 1
    while from_seq is not None:
        page = client.call(
            "GET", "/audit/export", query={"stream": stream, "fromSeq": from_seq, "limit": 500}
        )
        for line in page["records"]:
            event = json.loads(json.loads(line)["body"])["event"]
            if resource in event.get("resources", ()):
                actions.append(event["action"])
        from_seq = page.get("nextFromSeq")
    return actions


def test_a_training_step_that_dies_after_registering_the_model_is_retried_to_one_model(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any], tmp_path: Path
) -> None:
    request = _request(iris, seed=41, hyperparameters={"epochs": 4})
    # register-outputs: the model and its lineage go in one transaction, then the job's
    # record is written; the environment dies between the two.
    with crash_after(
        local_cloud, "train-register-outputs", "dynamodb:TransactWriteItems", 1, tmp_path
    ) as marker:
        job = _train(engineer, request)

    assert marker.exists(), "the crash was planned but never happened"
    failures = _task_failures(local_cloud, job["executionArn"])
    print(f"\ntask failures in the execution: {failures}; job {job['status']}")
    assert failures == ["Runtime.ExitError"]
    assert job["status"] == "COMPLETED" and job["modelId"]
    versions = [
        m["version"]
        for m in engineer.call("GET", "/models", query={"family": request["modelFamily"]})["items"]
        if m["version"] == request["modelVersion"]
    ]
    assert versions == [request["modelVersion"]]
    deadline = time.monotonic() + 30  # the ledger append follows the job's write
    while "train.job.completed" not in (
        actions := _ledger_actions(engineer, "training", job["jobId"])
    ):
        assert time.monotonic() < deadline, actions
        time.sleep(0.2)
    print(f"ledger for {job['jobId']}: {actions}")
    assert actions.count("train.job.completed") == 1 and actions.count("train.job.failed") == 0


def test_a_deployment_step_that_dies_after_creating_the_endpoint_ends_in_service(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any], tmp_path: Path
) -> None:
    trained = _train(engineer, _request(iris, seed=42, hyperparameters={"epochs": 4}))
    with crash_after(
        local_cloud, "deploy-create", "sagemaker:CreateEndpoint", 1, tmp_path
    ) as marker:
        started = engineer.call(
            "POST",
            "/serve/deploy",
            {"modelId": trained["modelId"], "env": "sandbox", "route": "chaos-it"},
            headers={"Idempotency-Key": f"chaos-{time.monotonic_ns()}"},
        )
        deadline = time.monotonic() + 120
        while True:
            record = engineer.call("GET", f"/serve/{started['deployId']}")
            if record["status"] in {"IN_SERVICE", "FAILED", "ROLLED_BACK", "SUPERSEDED"}:
                break
            assert time.monotonic() < deadline, f"stuck in {record['status']}"
            time.sleep(0.2)

    assert marker.exists(), "the crash was planned but never happened"
    failures = _task_failures(local_cloud, record["executionArn"])
    print(f"\ntask failures: {failures}; deployment {record['status']} {record['statusReason']}")
    assert failures == ["Runtime.ExitError"]
    assert record["status"] == "IN_SERVICE"
    endpoint = local_cloud.client("sagemaker").describe_endpoint(
        EndpointName=record["endpointName"]
    )
    assert endpoint["EndpointStatus"] == "InService"
