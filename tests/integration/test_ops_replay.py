"""``modelops ops replay`` on the local cloud: deliveries that really fail (the consumer's
code is broken), a fix, a replay, and the work done.

- Queue DLQ: a ``Training Job State Change`` event goes bus -> ModelTrainedRule ->
  DriftBaselineQueue -> drift-baseline, which fails; SQS moves the message to the queue's
  DLQ after ``max_receives`` receives; after the fix the replay sends it back to the queue
  and the consumer computes the model's drift baseline.
- Invocation DLQ: ``POST /drift/{id}/baseline`` invokes drift-baseline asynchronously and
  the invocation fails; Lambda would put the payload on the function's invocation DLQ after
  its retries, which the local cloud neither provisions nor does (see localcloud/cloud.py),
  so the test does both as Lambda would; the replay invokes the function again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from localcloud.cloud import LocalCloud, physical_name
from modelops import platform
from modelops.contracts.events import TrainingJobStateChange
from modelops.services.drift import BaselineRequest
from modelops_cli.cli import wait_for
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import _write_iris, stratified_split
from modelops_cli.main import main as modelops
from modelops_cli.ops import INVOCATION, dead_letter_queues

pytestmark = pytest.mark.slow

BASELINE = platform.DRIFT_BASELINE


@pytest.fixture(scope="module")
def engineer(local_cloud: LocalCloud) -> ModelOpsClient:
    principal = local_cloud.principals["ml-engineer"]
    return ModelOpsClient(local_cloud.api_url, principal.session(local_cloud.region))


@pytest.fixture(scope="module")
def model(engineer: ModelOpsClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A registered model whose lineage names the Iris split (its baseline dataset)."""
    base = tmp_path_factory.mktemp("ops-replay")
    split_dir = stratified_split(_write_iris(base / "raw"), base / "split")
    split_artifact = engineer.upload_artifact(split_dir, "ops-replay-iris")
    split = engineer.register_dataset(
        name=f"ops-replay-iris-{uuid.uuid4().hex[:8]}",
        artifactId=split_artifact["artifactId"],
        license="CC-BY-4.0",
    )["dataset"]
    (base / "model").mkdir()
    (base / "model" / "weights.json").write_text('{"w": [1, 2, 3]}')
    artifact = engineer.upload_artifact(base / "model", "ops-replay-model")
    registered = engineer.register_model(
        family="ops-replay",
        version=f"1.0.0-{uuid.uuid4().hex[:8]}",
        artifactId=artifact["artifactId"],
        codeRef="tests/integration/test_ops_replay.py",
        metrics={"accuracy": 0.9},
        lineage={"datasets": [split["datasetId"]]},
    )
    return {**registered["model"], "datasetId": split["datasetId"]}


@pytest.fixture
def operator(local_cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The platform admin's AWS keys in the environment; the options that select the local
    cloud's AWS endpoint."""
    admin = local_cloud.principals["platform-admin"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_cloud.region)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MODELOPS_STACK"):
        monkeypatch.delenv(name, raising=False)
    return ["--local", "--endpoint-url", local_cloud.endpoint_url, "--output", "json"]


def ops(capsys: pytest.CaptureFixture[str], *argv: str, expect: int = 0) -> Any:
    code = modelops(["ops", *argv])
    out, err = capsys.readouterr()
    assert code == expect, f"exit {code}, stderr:\n{err}"
    return json.loads(out)


@contextmanager
def broken(cloud: LocalCloud, function: str) -> Iterator[None]:
    """``function``'s handler does not exist until the block ends: every invocation fails."""
    lam = cloud.client("lambda")
    handler = lam.get_function_configuration(FunctionName=function)["Handler"]
    lam.update_function_configuration(FunctionName=function, Handler=f"{handler}_missing")
    try:
        yield
    finally:
        lam.update_function_configuration(FunctionName=function, Handler=handler)


def depth(cloud: LocalCloud, url: str) -> int:
    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def baseline(engineer: ModelOpsClient, model_id: str) -> dict[str, Any] | None:
    found = engineer.call("GET", f"/drift/{model_id}")["baseline"]
    return None if found is None else dict(found)


def test_an_event_its_consumer_failed_is_replayed_from_the_queue_dlq_and_processed(
    local_cloud: LocalCloud,
    engineer: ModelOpsClient,
    model: dict[str, Any],
    operator: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqs = local_cloud.client("sqs")
    queue = local_cloud.queue_urls[platform.DRIFT_BASELINE_QUEUE.logical_id]
    dlq = local_cloud.dead_letter_queue_urls[platform.DRIFT_BASELINE_QUEUE.logical_id]
    assert depth(local_cloud, dlq) == 0
    correlation = f"ops-replay-{uuid.uuid4().hex[:8]}"
    job_id = f"trn-{uuid.uuid4().hex[:24]}"  # the event a training job would publish

    # Given the training event reached the baseline consumer while its code was broken,
    # until SQS gave up on it: moto has no poller, so the test receives it again as Lambda's
    # poller would after each failed delivery (each receive counts), and SQS moves it.
    with broken(local_cloud, BASELINE.name):
        local_cloud.client("events").put_events(
            Entries=[
                {
                    "EventBusName": local_cloud.names[platform.EVENT_BUS.logical_id],
                    "Source": platform.EVENT_SOURCE,
                    "DetailType": platform.TRAINING_STATE_CHANGE,
                    "Detail": TrainingJobStateChange(
                        correlationId=correlation,
                        jobId=job_id,
                        status="COMPLETED",
                        previousStatus="TRAINING",
                        modelFamily=model["family"],
                        modelVersion=model["version"],
                        modelId=model["modelId"],
                        reason="",
                        resourcePath=f"/train/jobs/{job_id}",
                    ).model_dump_json(),
                }
            ]
        )
        for _ in range(platform.DRIFT_BASELINE_QUEUE.max_receives + 1):
            if depth(local_cloud, dlq):
                break
            sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)
    assert depth(local_cloud, dlq) == 1 and depth(local_cloud, queue) == 0
    assert baseline(engineer, model["modelId"]) is None  # the consumer never did its work

    listed = {row["name"]: row for row in ops(capsys, "dlq", *operator)}
    row = listed["DriftBaselineQueueDlq"]
    assert row["depth"] == 1 and row["oldestAgeSeconds"] is not None
    assert listed["ModelTrainedRuleDlq"]["provisioned"] is False  # the local cloud has none

    dry = ops(capsys, "replay", "DriftBaselineQueueDlq", "--dry-run", *operator)
    assert dry["messages"][0]["status"] == "would-replay" and depth(local_cloud, dlq) == 1

    # When the fault is gone (the handler restored), the replay sends it back to its queue.
    replayed = ops(capsys, "replay", "DriftBaselineQueueDlq", *operator)

    assert (replayed["replayed"], replayed["failed"]) == (1, 0)
    assert replayed["messages"][0]["target"] == f"sqs:{queue}"
    assert (
        json.loads(
            sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        == 0
    )
    done = wait_for(
        lambda: baseline(engineer, model["modelId"]),
        lambda b: b is not None and b["status"] != "PENDING",
    )
    assert done["status"] == "READY" and done["datasetId"] == model["datasetId"]


def test_a_failed_async_invocation_is_replayed_from_its_invocation_dlq(
    local_cloud: LocalCloud,
    engineer: ModelOpsClient,
    model: dict[str, Any],
    operator: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqs = local_cloud.client("sqs")
    (name,) = [
        d.name for d in dead_letter_queues() if (d.kind, d.source) == (INVOCATION, BASELINE.name)
    ]
    dlq = sqs.create_queue(QueueName=physical_name(name))["QueueUrl"]  # as CDK declares it
    request = BaselineRequest(datasetId=model["datasetId"])
    try:
        with broken(local_cloud, BASELINE.name):
            pending = engineer.call(
                "POST", f"/drift/{model['modelId']}/baseline", request.model_dump(mode="json")
            )
            assert pending["status"] == "PENDING"
            # Lambda, after its two retries: the invocation's payload on the function's DLQ.
            sqs.send_message(
                QueueUrl=dlq,
                MessageBody=json.dumps(
                    {
                        "modelId": model["modelId"],
                        "request": request.model_dump(mode="json"),
                        "correlationId": "ops-replay-invocation",
                    }
                ),
                MessageAttributes={
                    "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
                    "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                    "ErrorMessage": {"DataType": "String", "StringValue": "handler not found"},
                },
            )
        assert baseline(engineer, model["modelId"])["status"] == "PENDING"  # type: ignore[index]

        replayed = ops(capsys, "replay", name, *operator)

        (message,) = replayed["messages"]
        assert message["status"] == "replayed" and message["target"] == f"lambda:{BASELINE.name}"
        assert message["reason"] == {"ErrorCode": "200", "ErrorMessage": "handler not found"}
        assert depth(local_cloud, dlq) == 0
        done = wait_for(
            lambda: baseline(engineer, model["modelId"]),
            lambda b: b is not None and b["status"] != "PENDING",
        )
        assert done["status"] == "READY" and done["datasetId"] == model["datasetId"]
    finally:
        sqs.delete_queue(QueueUrl=dlq)


def test_replay_of_an_unprovisioned_dlq_exits_3_and_says_so(
    operator: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = modelops(["ops", "replay", "DriftAlarmRuleDlq", *operator])
    assert code == 3 and "not provisioned" in capsys.readouterr().err


def test_every_local_queue_dlq_is_found_through_its_queues_redrive_policy(
    local_cloud: LocalCloud, operator: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    listed = {row["name"]: row for row in ops(capsys, "dlq", *operator)}
    for spec in platform.QUEUES:
        assert (
            listed[f"{spec.logical_id}Dlq"]["queueUrl"]
            == (local_cloud.dead_letter_queue_urls[spec.logical_id])
        )
