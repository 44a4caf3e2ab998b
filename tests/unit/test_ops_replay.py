"""``modelops ops dlq`` / ``ops replay`` with in-memory SQS and Lambda (no sockets): each
kind of DLQ goes back where it failed, a failed delivery leaves its message in the DLQ,
``--max`` and ``--dry-run`` hold, and exit codes follow cli.py."""

# ruff: noqa: N803 (the fakes take boto3's argument names)
from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from modelops import platform
from modelops.contracts.events import INTEGRATIONS
from modelops_cli import ops
from modelops_cli.main import main as modelops

ACCOUNT = "123456789012"
NOW = 1_800_000_000.0


class QueueDoesNotExistError(Exception):
    pass


class FakeSqs:
    """Standard queues with visibility timeouts, on a clock that stands still."""

    class exceptions:  # noqa: N801 (boto3's attribute name)
        QueueDoesNotExist = QueueDoesNotExistError

    def __init__(self) -> None:
        self.queues: dict[str, list[dict[str, Any]]] = {}
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.fail_send: Callable[[str, str], bool] = lambda url, body: False
        self.fail_delete = False
        self._ids = itertools.count(1)

    def create(self, name: str) -> str:
        url = f"https://sqs.test/{ACCOUNT}/{name}"
        self.queues[url] = []
        return url

    def put(
        self, url: str, body: str, attributes: dict[str, str] | None = None, age_s: int = 0
    ) -> None:
        attrs = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
        self.queues[url].append(
            {
                "MessageId": f"m{next(self._ids)}",
                "Body": body,
                "MessageAttributes": attrs,
                "SentTimestamp": int((NOW - age_s) * 1000),
                "visibleAt": 0.0,
                "handles": set(),
            }
        )

    def bodies(self, url: str) -> list[str]:
        return [m["Body"] for m in self.queues[url]]

    def visible(self, url: str) -> list[str]:
        return [m["Body"] for m in self.queues[url] if m["visibleAt"] <= NOW]

    def get_queue_url(
        self, QueueName: str, QueueOwnerAWSAccountId: str = ACCOUNT
    ) -> dict[str, Any]:
        url = f"https://sqs.test/{QueueOwnerAWSAccountId}/{QueueName}"
        if url not in self.queues:
            raise QueueDoesNotExistError(QueueName)
        return {"QueueUrl": url}

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        messages = self.queues[QueueUrl]
        visible = sum(m["visibleAt"] <= NOW for m in messages)
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(len(messages) - visible),
            }
        }

    def receive_message(
        self, QueueUrl: str, MaxNumberOfMessages: int, VisibilityTimeout: int, **_: Any
    ) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for message in self.queues[QueueUrl]:
            if len(out) == MaxNumberOfMessages:
                break
            if message["visibleAt"] <= NOW:
                handle = f"{message['MessageId']}-{next(self._ids)}"
                message["handles"].add(handle)
                message["visibleAt"] = NOW + VisibilityTimeout
                out.append(
                    {
                        "MessageId": message["MessageId"],
                        "ReceiptHandle": handle,
                        "Body": message["Body"],
                        "Attributes": {"SentTimestamp": str(message["SentTimestamp"])},
                        "MessageAttributes": message["MessageAttributes"],
                    }
                )
        return {"Messages": out} if out else {}

    def _find(self, url: str, handle: str) -> dict[str, Any]:
        return next(m for m in self.queues[url] if handle in m["handles"])

    def change_message_visibility(
        self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int
    ) -> None:
        self._find(QueueUrl, ReceiptHandle)["visibleAt"] = NOW + VisibilityTimeout

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        if self.fail_delete:
            raise RuntimeError("delete refused")
        self.queues[QueueUrl].remove(self._find(QueueUrl, ReceiptHandle))

    def send_message(
        self, QueueUrl: str, MessageBody: str, MessageAttributes: dict[str, Any]
    ) -> dict[str, Any]:
        if self.fail_send(QueueUrl, MessageBody):
            raise RuntimeError("send refused")
        self.sent.append((QueueUrl, MessageBody, MessageAttributes))
        self.queues[QueueUrl].append(
            {
                "MessageId": f"m{next(self._ids)}",
                "Body": MessageBody,
                "MessageAttributes": MessageAttributes,
                "SentTimestamp": int(NOW * 1000),
                "visibleAt": 0.0,
                "handles": set(),
            }
        )
        return {"MessageId": "sent"}


class FakeLambda:
    def __init__(self, status: int = 202) -> None:
        self.invocations: list[dict[str, Any]] = []
        self.status = status

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.invocations.append(request)
        return {"StatusCode": self.status}


class FakeEvents:
    def __init__(self) -> None:
        self.put: list[dict[str, Any]] = []
        self.refuse = False

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        if self.refuse:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "AccessDeniedException", "ErrorMessage": "no"}],
            }
        self.put.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"}]}


class FakeDeployment:
    def __init__(self, urls: dict[str, str], functions: dict[str, str]) -> None:
        self.urls, self.functions = urls, functions

    def queue_url(self, logical_id: str, construct: str = "EventQueues") -> str | None:
        return self.urls.get(logical_id)

    def function_name(self, name: str) -> str | None:
        return self.functions.get(name)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Every queue and DLQ of the platform, except the invocation DLQ of drift-monitor
    (not provisioned); ``modelops ops`` connects to these fakes."""
    sqs, lam = FakeSqs(), FakeLambda()
    urls = {q.logical_id: sqs.create(q.logical_id) for q in platform.QUEUES}
    for dlq in ops.dead_letter_queues():
        if dlq.name != "DriftMonitorInvocationDlq":
            urls[dlq.name] = sqs.create(dlq.name)
    functions = {fn.name: f"modelops-dev-{fn.name}-XYZ" for fn in platform.FUNCTIONS}
    events = FakeEvents()
    connection = ops.Connection(sqs, lam, FakeDeployment(urls, functions), events)
    monkeypatch.setattr(ops, "connect", lambda args: connection)
    monkeypatch.setattr(ops, "now", lambda: NOW)
    return {"sqs": sqs, "lambda": lam, "urls": urls, "functions": functions, "events": events}


def run(capsys: pytest.CaptureFixture[str], *argv: str, expect: int = 0) -> Any:
    code = modelops(["ops", *argv, "--stack", "modelops-dev-service", "--output", "json"])
    out, err = capsys.readouterr()
    assert code == expect, f"exit {code}, stderr:\n{err}"
    return json.loads(out) if out else err


def event(detail_type: str, n: int = 0) -> str:
    return json.dumps({"id": f"e{n}", "detail-type": detail_type, "detail": {"n": n}})


def test_every_queue_rule_and_async_invoked_function_has_a_listed_dlq() -> None:
    kinds = {(d.kind, d.source) for d in ops.dead_letter_queues()}
    assert {(ops.QUEUE, q.logical_id) for q in platform.QUEUES} <= kinds
    assert {(ops.RULE, r.logical_id) for r in platform.EVENT_RULES} <= kinds
    invoked = set(platform.invoked_asynchronously())
    assert {fn.name for fn in platform.FUNCTIONS if fn.schedule} <= invoked
    assert {(ops.INVOCATION, name) for name in invoked} <= kinds
    assert {(ops.RULE, i.name) for i in INTEGRATIONS} <= kinds
    assert len(kinds) == (
        len(platform.QUEUES) + len(platform.EVENT_RULES) + len(invoked) + len(INTEGRATIONS)
    )


def test_an_integration_rules_dlq_puts_each_event_back_on_the_bus_it_failed_to_reach(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, events = world["sqs"], world["events"]
    bus = "arn:aws:events:us-east-1:210987654321:event-bus/kernel"
    body = json.dumps(
        {
            "source": platform.EVENT_SOURCE,
            "detail-type": "Model Registered",
            "detail": {"modelId": "mdl-1"},
            "resources": [],
        }
    )
    dlq = world["urls"]["ToKernelRuleDlq"]
    sqs.put(dlq, body, {"TARGET_ARN": bus, "ERROR_CODE": "AccessDenied"})

    events.refuse = True
    refused = run(capsys, "replay", "ToKernelRuleDlq", expect=1)
    assert (refused["replayed"], refused["failed"]) == (0, 1)
    assert "AccessDeniedException" in refused["messages"][0]["error"]
    events.refuse = False
    result = run(capsys, "replay", "ToKernelRuleDlq")

    assert (result["replayed"], result["failed"]) == (1, 0)
    (entry,) = events.put
    assert entry["EventBusName"] == bus and entry["DetailType"] == "Model Registered"
    assert json.loads(entry["Detail"]) == {"modelId": "mdl-1"}
    assert sqs.bodies(dlq) == []


def test_queue_dlq_messages_go_back_to_their_queue_with_their_attributes(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls = world["sqs"], world["urls"]
    sqs.put(urls["DriftAlertQueueDlq"], event("Drift Detected", 1), {"trace": "t-1"})
    sqs.put(urls["DriftAlertQueueDlq"], event("Drift Detected", 2))

    result = run(capsys, "replay", "DriftAlertQueueDlq")

    assert (result["replayed"], result["failed"]) == (2, 0)
    assert sqs.bodies(urls["DriftAlertQueue"]) == [
        event("Drift Detected", 1),
        event("Drift Detected", 2),
    ]
    assert sqs.bodies(urls["DriftAlertQueueDlq"]) == []
    assert sqs.sent[0][2] == {"trace": {"DataType": "String", "StringValue": "t-1"}}
    assert {m["target"] for m in result["messages"]} == {f"sqs:{urls['DriftAlertQueue']}"}


def test_rule_target_dlq_events_go_to_the_target_eventbridge_named(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls = world["sqs"], world["urls"]
    target = f"arn:aws:sqs:us-east-1:{ACCOUNT}:DriftBaselineQueue"
    sqs.put(
        urls["ModelTrainedRuleDlq"],
        event("Training Job State Change"),
        {
            "RULE_ARN": "arn:aws:events:us-east-1:123456789012:rule/bus/ModelTrainedRule",
            "TARGET_ARN": target,
            "ERROR_CODE": "SQSQueueNotFound",
            "ERROR_MESSAGE": "queue was not found",
        },
    )

    result = run(capsys, "replay", "ModelTrainedRuleDlq")

    assert sqs.bodies(urls["DriftBaselineQueue"]) == [event("Training Job State Change")]
    assert sqs.sent[0][2] == {}  # EventBridge's DLQ attributes are not the event's
    (message,) = result["messages"]
    assert message["status"] == "replayed"
    assert message["reason"] == {
        "ERROR_CODE": "SQSQueueNotFound",
        "ERROR_MESSAGE": "queue was not found",
    }


def test_rule_target_dlq_message_without_target_arn_goes_to_the_rules_queue(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls = world["sqs"], world["urls"]
    sqs.put(urls["DriftAlarmRuleDlq"], event("CloudWatch Alarm State Change"))

    run(capsys, "replay", "driftalarmruledlq")  # names are case-insensitive

    assert sqs.bodies(urls["DriftAlertQueue"]) == [event("CloudWatch Alarm State Change")]


def test_rule_target_dlq_event_for_a_lambda_target_is_invoked_asynchronously(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls, lam = world["sqs"], world["urls"], world["lambda"]
    arn = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:modelops-dev-drift-monitor-XYZ"
    sqs.put(urls["DriftDetectedRuleDlq"], event("Scheduled Event"), {"TARGET_ARN": arn})

    run(capsys, "replay", "DriftDetectedRuleDlq")

    assert lam.invocations == [
        {
            "FunctionName": arn,
            "InvocationType": "Event",
            "Payload": event("Scheduled Event").encode(),
        }
    ]


def test_invocation_dlq_reinvokes_the_function_asynchronously_with_the_original_payload(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls, lam = world["sqs"], world["urls"], world["lambda"]
    payload = json.dumps({"modelId": "mdl-1", "request": {}})
    sqs.put(
        urls["DriftBaselineInvocationDlq"], payload, {"ErrorCode": "200", "ErrorMessage": "boom"}
    )

    result = run(capsys, "replay", "DriftBaselineInvocationDlq")

    assert lam.invocations == [
        {
            "FunctionName": world["functions"]["drift-baseline"],
            "InvocationType": "Event",
            "Payload": payload.encode(),
        }
    ]
    assert result["messages"][0]["reason"] == {"ErrorCode": "200", "ErrorMessage": "boom"}
    assert sqs.bodies(urls["DriftBaselineInvocationDlq"]) == []


def test_a_send_that_fails_leaves_its_message_in_the_dlq_visible_and_exits_1(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls = world["sqs"], world["urls"]
    for n in range(3):
        sqs.put(urls["DriftAlertQueueDlq"], event("Drift Detected", n))
    sqs.fail_send = lambda url, body: '"n": 1' in body

    result = run(capsys, "replay", "DriftAlertQueueDlq", expect=1)

    assert (result["replayed"], result["failed"]) == (2, 1)
    failed = [m for m in result["messages"] if m["status"] == "failed"]
    assert len(failed) == 1 and "send refused" in failed[0]["error"]
    assert sqs.bodies(urls["DriftAlertQueue"]) == [
        event("Drift Detected", 0),
        event("Drift Detected", 2),
    ]
    # Still in the DLQ, and visible at once for the next replay.
    assert sqs.visible(urls["DriftAlertQueueDlq"]) == [event("Drift Detected", 1)]


def test_an_async_invoke_lambda_does_not_accept_counts_as_failed(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    world["lambda"].status = 500
    urls = world["urls"]
    world["sqs"].put(urls["DatasetSanitizerInvocationDlq"], "{}")

    result = run(capsys, "replay", "DatasetSanitizerInvocationDlq", expect=1)

    assert result["messages"][0]["status"] == "failed"
    assert world["sqs"].visible(urls["DatasetSanitizerInvocationDlq"]) == ["{}"]


def test_a_message_delivered_but_not_deleted_is_reported_as_not_deleted(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls = world["sqs"], world["urls"]
    sqs.put(urls["DriftAlertQueueDlq"], event("Drift Detected"))
    sqs.fail_delete = True

    result = run(capsys, "replay", "DriftAlertQueueDlq", expect=1)

    assert result["messages"][0]["status"] == "replayed-not-deleted"
    assert result["failed"] == 1
    assert sqs.bodies(urls["DriftAlertQueue"]) == [event("Drift Detected")]


def test_max_replays_at_most_n_messages_and_leaves_the_rest_visible(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls = world["sqs"], world["urls"]
    for n in range(25):
        sqs.put(urls["DriftAlertQueueDlq"], event("Drift Detected", n))

    result = run(capsys, "replay", "DriftAlertQueueDlq", "--max", "12")

    assert result["replayed"] == 12 and len(result["messages"]) == 12
    assert len(sqs.bodies(urls["DriftAlertQueue"])) == 12
    assert len(sqs.visible(urls["DriftAlertQueueDlq"])) == 13


def test_dry_run_sends_and_deletes_nothing_and_says_where_each_would_go(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls, lam = world["sqs"], world["urls"], world["lambda"]
    sqs.put(urls["DriftBaselineInvocationDlq"], "{}")
    sqs.put(urls["DriftBaselineQueueDlq"], event("Training Job State Change"))

    result = run(capsys, "replay", "DriftBaselineQueueDlq", "--dry-run")
    invocation = run(capsys, "replay", "DriftBaselineInvocationDlq", "--dry-run")

    assert result["dryRun"] and result["replayed"] == 0
    assert result["messages"][0]["status"] == "would-replay"
    assert result["messages"][0]["target"] == f"sqs:{urls['DriftBaselineQueue']}"
    assert invocation["messages"][0]["target"] == f"lambda:{world['functions']['drift-baseline']}"
    assert sqs.sent == [] and lam.invocations == []
    assert sqs.visible(urls["DriftBaselineQueueDlq"]) == [event("Training Job State Change")]


def test_an_unknown_dlq_is_a_usage_error_and_an_unprovisioned_one_not_found(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    err = run(capsys, "replay", "NoSuchDlq", expect=2)
    assert "DriftAlertQueueDlq" in err  # names the ones there are
    err = run(capsys, "replay", "DriftMonitorInvocationDlq", expect=3)
    assert "not provisioned" in err


def test_dlq_lists_depth_oldest_age_and_what_each_feeds(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, urls = world["sqs"], world["urls"]
    sqs.put(urls["DriftAlertQueueDlq"], event("Drift Detected", 1), age_s=60)
    sqs.put(urls["DriftAlertQueueDlq"], event("Drift Detected", 2), age_s=3600)

    rows = {row["name"]: row for row in run(capsys, "dlq")}

    assert set(rows) == {d.name for d in ops.dead_letter_queues()}
    alert = rows["DriftAlertQueueDlq"]
    assert (alert["depth"], alert["oldestAgeSeconds"]) == (2, 3600)
    assert alert["feeds"] == "queue DriftAlertQueue (consumer drift-alerts)"
    assert rows["ModelTrainedRuleDlq"]["depth"] == 0
    assert (
        rows["ModelTrainedRuleDlq"]["feeds"] == "rule ModelTrainedRule -> queue DriftBaselineQueue"
    )
    assert rows["DriftMonitorInvocationDlq"]["provisioned"] is False
    # Looking did not take the messages: both are still there to replay.
    assert sqs.visible(urls["DriftAlertQueueDlq"]) == [
        event("Drift Detected", 1),
        event("Drift Detected", 2),
    ]


def test_dlq_table_output_marks_unprovisioned_queues(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert modelops(["ops", "dlq", "--stack", "modelops-dev-service"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("DriftMonitorInvocationDlq"))
    assert "not provisioned" in line


class FakeCloudFormation:
    def __init__(self, resources: dict[str, tuple[str, str]]) -> None:
        self.resources = resources  # logical id -> (cdk path, physical id)

    def get_template(self, StackName: str, TemplateStage: str) -> dict[str, Any]:
        return {
            "TemplateBody": json.dumps(
                {
                    "Resources": {
                        lid: {"Metadata": {"aws:cdk:path": path}}
                        for lid, (path, _) in self.resources.items()
                    }
                }
            )
        }

    def get_paginator(self, name: str) -> Any:
        pages = [
            {
                "StackResourceSummaries": [
                    {"LogicalResourceId": lid, "PhysicalResourceId": physical}
                    for lid, (_, physical) in self.resources.items()
                ]
            }
        ]
        return argparse.Namespace(paginate=lambda StackName: pages)


def test_stack_deployment_finds_queues_and_functions_by_their_cdk_paths() -> None:
    cfn = FakeCloudFormation(
        {
            "EventQueuesDriftAlertQueueDlq22D5D244": (
                "modelops-dev-service/EventQueues/DriftAlertQueueDlq/Resource",
                "https://sqs/123/dlq-url",
            ),
            "EventQueuesDriftAlertQueueDlqPolicy228429AD": (
                "modelops-dev-service/EventQueues/DriftAlertQueueDlq/Policy/Resource",
                "policy",
            ),
            "DriftBaselineFunction6C20CE20": (
                "modelops-dev-service/DriftBaseline/Function/Resource",
                "modelops-dev-service-DriftBaselineFunction-abc",
            ),
        }
    )
    deployment = ops.StackDeployment(cfn, "modelops-dev-service")
    assert deployment.queue_url("DriftAlertQueueDlq") == "https://sqs/123/dlq-url"
    assert deployment.queue_url("DriftAlertQueue") is None
    assert (
        deployment.function_name("drift-baseline")
        == "modelops-dev-service-DriftBaselineFunction-abc"
    )


def test_without_stack_or_local_the_command_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MODELOPS_STACK", raising=False)
    assert modelops(["ops", "dlq"]) == 2
    assert "--stack" in capsys.readouterr().err
