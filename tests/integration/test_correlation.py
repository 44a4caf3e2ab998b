"""One correlation id through a training flow on the local cloud: the caller's
``X-Correlation-Id`` on ``POST /train/jobs`` reaches the training state machine's execution
input, every task's input and log lines, every event the flow publishes, and every audit
record of the flow."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.services.training import AUDIT_STREAM as TRAINING_STREAM
from modelops_cli import training
from modelops_cli.cli import wait_for
from modelops_cli.client import ModelOpsClient
from tests.integration.test_training_api import (  # the same module fixtures and helpers
    _request,
    engineer,
    iris,
)

pytestmark = pytest.mark.slow
__all__ = ["engineer", "iris"]

CAPTURE = "modelops-test-correlation-capture"
# Steps every successful training run goes through.
TASKS_OF_A_SUCCESS = (
    "train-validate-job",
    "train-check-policy",
    "train-request-compute",
    "train-start-job",
    "train-register-outputs",
    "train-record-usage",
    "train-release-compute",
)


@pytest.fixture(scope="module")
def published(local_cloud: LocalCloud) -> Iterator[Any]:
    """Everything published on the platform's bus from now on, in a queue of the test's."""
    events, sqs = local_cloud.client("events"), local_cloud.client("sqs")
    bus = local_cloud.names[platform.EVENT_BUS.logical_id]
    url = sqs.create_queue(QueueName=CAPTURE)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=CAPTURE, EventBusName=bus, EventPattern=json.dumps({"source": [{"prefix": ""}]})
    )
    events.put_targets(Rule=CAPTURE, EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])

    def drain() -> list[dict[str, Any]]:
        found = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    try:
        yield drain
    finally:
        events.remove_targets(Rule=CAPTURE, EventBusName=bus, Ids=["capture"])
        events.delete_rule(Name=CAPTURE, EventBusName=bus)
        sqs.delete_queue(QueueUrl=url)


@pytest.fixture(scope="module")
def flow(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any], published: Any
) -> dict[str, Any]:
    """A training job submitted with a correlation id of the caller's, run to its end."""
    correlation_id = f"corr-{uuid.uuid4().hex}"
    submitted = engineer.call(
        "POST",
        "/train/jobs",
        _request(iris, seed=23, hyperparameters={"epochs": 3}),
        headers={"Idempotency-Key": str(uuid.uuid4()), "X-Correlation-Id": correlation_id},
    )
    job = training.follow(engineer, submitted["jobId"], lambda _: None, timeout_s=180)
    assert job["status"] == "COMPLETED", job.get("failure")
    # The job is COMPLETED before its workflow's last steps (usage, release) have run.
    sfn = local_cloud.client("stepfunctions")
    wait_for(
        lambda: sfn.describe_execution(executionArn=job["executionArn"])["status"],
        lambda status: status != "RUNNING",
    )
    return {"correlationId": correlation_id, "job": job, "events": published()}


def _history(cloud: LocalCloud, execution_arn: str) -> list[dict[str, Any]]:
    return list(
        cloud.client("stepfunctions").get_execution_history(
            executionArn=execution_arn, maxResults=1000
        )["events"]
    )


def test_the_callers_correlation_id_is_the_jobs_and_answered_back(
    engineer: ModelOpsClient, flow: dict[str, Any]
) -> None:
    assert flow["job"]["correlationId"] == flow["correlationId"]


def test_the_execution_input_and_every_task_input_carry_the_correlation_id(
    local_cloud: LocalCloud, flow: dict[str, Any]
) -> None:
    arn = flow["job"]["executionArn"]
    described = local_cloud.client("stepfunctions").describe_execution(executionArn=arn)
    assert json.loads(described["input"])["correlationId"] == flow["correlationId"]

    payloads = _task_inputs(local_cloud, arn)
    assert set(TASKS_OF_A_SUCCESS) <= set(payloads)
    missing = {
        name: p for name, p in payloads.items() if p.get("correlationId") != flow["correlationId"]
    }
    assert not missing, f"task inputs without the correlation id: {sorted(missing)}"


def _task_inputs(cloud: LocalCloud, execution_arn: str) -> dict[str, dict[str, Any]]:
    """Each Lambda task's input payload (its last), by function name."""
    payloads = {}
    for event in _history(cloud, execution_arn):
        details = event.get("taskScheduledEventDetails")
        if details and details.get("resourceType") == "lambda":
            parameters = json.loads(details["parameters"])
            name = str(parameters["FunctionName"]).rsplit(":", 1)[-1]
            payloads[name] = parameters.get("Payload") or {}
    return payloads


def _log_lines(cloud: LocalCloud, function: str) -> list[dict[str, Any]]:
    """The function's structured (JSON) log lines in CloudWatch Logs, every stream."""
    logs = cloud.client("logs")
    group = f"/aws/lambda/{function}"
    lines: list[dict[str, Any]] = []
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        return lines  # the function never ran
    for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
        token = None
        while True:
            page = logs.get_log_events(
                logGroupName=group,
                logStreamName=stream["logStreamName"],
                startFromHead=True,
                **({"nextToken": token} if token else {}),
            )
            for event in page["events"]:
                try:
                    line = json.loads(event["message"])
                except ValueError:
                    continue  # START/END/REPORT lines of the runtime
                if isinstance(line, dict) and "level" in line:
                    lines.append(line)
            if not page["events"] or page.get("nextForwardToken") in (None, token):
                break
            token = page["nextForwardToken"]
    return lines


def test_every_task_log_line_of_the_job_carries_the_correlation_id(
    local_cloud: LocalCloud, flow: dict[str, Any]
) -> None:
    job_id = flow["job"]["jobId"]
    ran = set(_task_inputs(local_cloud, flow["job"]["executionArn"]))
    assert set(TASKS_OF_A_SUCCESS) <= ran

    def correlation_ids() -> dict[str, set[Any]]:
        seen = {}
        for function in ran:
            lines = [x for x in _log_lines(local_cloud, function) if x.get("jobId") == job_id]
            if any(line.get("message") == "step done" for line in lines):
                seen[function] = {line.get("correlation_id") for line in lines}
        return seen

    # Lines reach CloudWatch Logs as the runtime reads them: wait for each step's last one.
    seen = wait_for(correlation_ids, lambda found: set(found) == ran, timeout_s=30)
    assert all(ids == {flow["correlationId"]} for ids in seen.values()), seen


def test_every_event_the_flow_published_carries_the_correlation_id(
    flow: dict[str, Any],
) -> None:
    job, correlation_id = flow["job"], flow["correlationId"]
    ours = [
        e
        for e in flow["events"]
        if job["jobId"] in json.dumps(e) or correlation_id in json.dumps(e)
    ]
    kinds = {e["detail-type"] for e in ours}
    assert platform.TRAINING_STATE_CHANGE in kinds, sorted(
        {e["detail-type"] for e in flow["events"]}
    )
    without = [
        (e["detail-type"], e["detail"].get("correlationId"))
        for e in ours
        if e["detail"].get("correlationId") != correlation_id
    ]
    assert not without, f"events of the flow without its correlation id: {without}"


def _records(client: ModelOpsClient, stream: str) -> Iterator[dict[str, Any]]:
    from_seq: int | None = 1
    while from_seq is not None:
        page = client.call(
            "GET", "/audit/export", query={"stream": stream, "fromSeq": from_seq, "limit": 500}
        )
        for line in page["records"]:
            yield json.loads(json.loads(line)["body"])["event"]
        from_seq = page.get("nextFromSeq")


def test_every_audit_record_of_the_flow_carries_the_correlation_id(
    engineer: ModelOpsClient, flow: dict[str, Any]
) -> None:
    job = flow["job"]
    ids = {job["jobId"], job["modelId"]}
    # The flow's stream: the training API's calls and the workflow's steps both write to it.
    # (Other streams are other tests', some with records planted corrupt on purpose.)
    assert TRAINING_STREAM in [
        s["stream"] if isinstance(s, dict) else s for s in _streams(engineer)
    ]
    records = [
        (TRAINING_STREAM, record)
        for record in _records(engineer, TRAINING_STREAM)
        if ids & set(record.get("resources", ()))
    ]
    actions = {record["action"] for _, record in records}
    assert any(a.startswith("training") or "train" in a for a in actions), actions
    without = [
        (stream, record["action"], record["correlationId"])
        for stream, record in records
        if record["correlationId"] != flow["correlationId"]
    ]
    assert not without, f"audit records of the flow without its correlation id: {without}"


def _streams(client: ModelOpsClient) -> list[Any]:
    answer = client.call("GET", "/audit/streams")
    return list(answer["streams"])
