"""The local cloud routes events as ``modelops.platform`` declares: rule -> queue -> consumer.

Consumers are stand-ins here (written to a temporary functions root and run by a test
Lambda runtime in place of the local cloud's), so that what is tested is the routing, and
what moto 5.2.5 does with failures, not the drift handlers.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.lambda_runtime import LambdaRuntime
from modelops import platform

pytestmark = pytest.mark.hand_made_events
QUEUES = pytest.mark.parametrize("queue", platform.QUEUES, ids=lambda q: q.logical_id)
RULES = pytest.mark.parametrize("rule", platform.EVENT_RULES, ids=lambda r: r.logical_id)
# What every EventBridge event carries (the SQS message body is the whole event).
ENVELOPE = {
    *("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
}

# A stand-in consumer: records each record it gets in <deliveries>/<marker>.jsonl; fails
# records whose detail says "fail" (an exception), reports those that say "report" in
# batchItemFailures.
CONSUMER = """
import json
from pathlib import Path

DELIVERIES = Path({deliveries!r})


def handler(event, context):
    failures = []
    for record in event["Records"]:
        detail = json.loads(record["body"])["detail"]
        marker = detail.get("marker") or detail.get("alarmName") or "unmarked"
        with (DELIVERIES / f"{{marker}}.jsonl").open("a") as out:
            out.write(json.dumps({{"function": context.function_name, "record": record}}) + "\\n")
        if detail.get("fail"):
            raise RuntimeError("poisoned")
        if detail.get("report"):
            failures.append({{"itemIdentifier": record["messageId"]}})
    return {{"batchItemFailures": failures}}
"""


def _matching(rule: platform.EventRuleSpec, marker: str) -> dict[str, Any]:
    """A PutEvents entry that ``rule`` matches, marked with ``marker``."""
    details: dict[str, dict[str, Any]] = {
        "ModelTrainedRule": {"status": "COMPLETED", "purpose": "train", "marker": marker},
        "DriftDetectedRule": {"marker": marker},
        "DriftAlarmRule": {
            "alarmName": f"{platform.DRIFT_ALARM_PREFIX}{marker}",
            "state": {"value": "ALARM", "reason": "Threshold Crossed"},
            "previousState": {"value": "OK"},
        },
    }
    (source,) = rule.pattern["source"]
    (detail_type,) = rule.pattern["detail-type"]
    return {"Source": source, "DetailType": detail_type, "Detail": details[rule.logical_id]}


def _unmatched(rule: platform.EventRuleSpec, marker: str) -> dict[str, Any]:
    """The same event with one field the rule does not match."""
    entry = _matching(rule, marker)
    detail = dict(entry["Detail"])
    if rule.logical_id == "ModelTrainedRule":
        detail["purpose"] = "eval"
    elif rule.logical_id == "DriftAlarmRule":
        detail["alarmName"] = f"modelops-quota-{marker}"
    else:
        return {**entry, "DetailType": "Drift Resolved"}
    return {**entry, "Detail": detail}


def _put(cloud: LocalCloud, rule: platform.EventRuleSpec, entry: dict[str, Any]) -> None:
    bus = "default" if rule.bus is None else cloud.names[rule.bus]
    result = cloud.client("events").put_events(
        Entries=[{**entry, "Detail": json.dumps(entry["Detail"]), "EventBusName": bus}]
    )
    assert result["FailedEntryCount"] == 0


def _consumer(rule: platform.EventRuleSpec) -> platform.FunctionSpec:
    (consumer,) = (f for f in platform.FUNCTIONS if f.queue == rule.queue)
    return consumer


def _queue_arn(cloud: LocalCloud, url: str) -> str:
    attributes = cloud.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
    return str(attributes["Attributes"]["QueueArn"])


def _receive_all(cloud: LocalCloud, url: str) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    received: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        received += batch
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return received


def _deliveries(root: Path, marker: str, expected: int = 1) -> list[dict[str, Any]]:
    """What the stand-in consumers recorded for ``marker``, waiting up to 10 s for
    ``expected`` deliveries (moto delivers inside PutEvents; AWS would not)."""
    path = root / f"{marker}.jsonl"
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= expected or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


@pytest.fixture(scope="module")
def deliveries(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The directory the stand-in consumers record into, while they replace the drift
    handlers (the local cloud's runtime is suspended meanwhile)."""
    root = tmp_path_factory.mktemp("functions")
    out = tmp_path_factory.mktemp("deliveries")
    modules = {
        Path(f.handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
        for f in platform.FUNCTIONS
        if f.queue
    }
    for module in modules:
        (root / module).parent.mkdir(parents=True, exist_ok=True)
        (root / module).write_text(CONSUMER.format(deliveries=str(out)))
    suspended = LambdaRuntime.installed()
    if suspended is not None:
        suspended.uninstall()
    runtime = LambdaRuntime(root, endpoint_url=local_cloud.endpoint_url, region=local_cloud.region)
    runtime.install()
    try:
        yield out
    finally:
        runtime.shutdown()
        if suspended is not None:
            suspended.install()


@pytest.fixture
def empty_queues(local_cloud: LocalCloud) -> Iterator[None]:
    """Every routing queue drained before and after the test (other tests' events land in
    them too; PurgeQueue is refused more than once a minute)."""
    urls = [*local_cloud.queue_urls.values(), *local_cloud.dead_letter_queue_urls.values()]
    for url in urls:
        _receive_all(local_cloud, url)
    yield
    for url in urls:
        _receive_all(local_cloud, url)


# --- Provisioning ---------------------------------------------------------------------------


@QUEUES
def test_queue_has_its_dead_letter_queue_after_max_receives_and_its_consumers_mapping(
    local_cloud: LocalCloud, queue: platform.QueueSpec
) -> None:
    sqs = local_cloud.client("sqs")
    url = local_cloud.queue_urls[queue.logical_id]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq_url = local_cloud.dead_letter_queue_urls[queue.logical_id]
    (consumer,) = (f for f in platform.FUNCTIONS if f.queue == queue.logical_id)

    assert url.endswith(f"/{local_cloud.names[queue.logical_id]}")
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": _queue_arn(local_cloud, dlq_url),
        "maxReceiveCount": queue.max_receives,
    }
    assert int(attributes["VisibilityTimeout"]) == queue.visibility_timeout_s
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["MessageRetentionPeriod"])
    assert int(dlq["Attributes"]["MessageRetentionPeriod"]) == 14 * 24 * 3600
    mappings = local_cloud.client("lambda").list_event_source_mappings(
        EventSourceArn=attributes["QueueArn"]
    )["EventSourceMappings"]
    (mapping,) = mappings
    assert mapping["FunctionArn"].endswith(f":function:{consumer.name}")
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["State"] == "Enabled"


@RULES
def test_rule_is_on_its_bus_with_its_pattern_and_targets_its_queue(
    local_cloud: LocalCloud, rule: platform.EventRuleSpec
) -> None:
    events = local_cloud.client("events")
    bus = "default" if rule.bus is None else local_cloud.names[rule.bus]
    (found,) = [
        r
        for r in events.list_rules(EventBusName=bus)["Rules"]
        if r.get("Description") == rule.description
    ]

    assert json.loads(found["EventPattern"]) == rule.pattern
    assert found["State"] == "ENABLED"
    (target,) = events.list_targets_by_rule(Rule=found["Name"], EventBusName=bus)["Targets"]
    assert target["Arn"] == _queue_arn(local_cloud, local_cloud.queue_urls[rule.queue])


def test_invokers_learn_the_local_names_of_the_functions_they_invoke(
    local_cloud: LocalCloud,
) -> None:
    variables = local_cloud.client("lambda").get_function_configuration(
        FunctionName=platform.DRIFT_API.name
    )["Environment"]["Variables"]

    for name in platform.DRIFT_API.invokes:
        assert local_cloud.names[name] == name
        assert variables[platform.invoke_env_var(name)] == name


# --- Delivery -------------------------------------------------------------------------------


@RULES
def test_matching_event_waits_in_the_rules_queue_while_the_mapping_is_disabled(
    local_cloud: LocalCloud, rule: platform.EventRuleSpec, empty_queues: None
) -> None:
    lam = local_cloud.client("lambda")
    url = local_cloud.queue_urls[rule.queue]
    (mapping,) = lam.list_event_source_mappings(EventSourceArn=_queue_arn(local_cloud, url))[
        "EventSourceMappings"
    ]
    marker = uuid.uuid4().hex
    lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    try:
        _put(local_cloud, rule, _unmatched(rule, f"other-{marker}"))
        _put(local_cloud, rule, _matching(rule, marker))
        received = _receive_all(local_cloud, url)
    finally:
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)

    (message,) = received
    body = json.loads(message["Body"])
    assert set(body) == ENVELOPE - {"account"}  # moto's SQS targets drop "account"
    assert body["source"] in rule.pattern["source"]
    assert body["detail-type"] in rule.pattern["detail-type"]
    assert body["detail"] == _matching(rule, marker)["Detail"]


@RULES
def test_matching_event_runs_the_queues_consumer_with_the_event_as_an_sqs_record(
    local_cloud: LocalCloud, rule: platform.EventRuleSpec, deliveries: Path, empty_queues: None
) -> None:
    marker = uuid.uuid4().hex
    entry = _matching(rule, marker)
    unmatched = _unmatched(rule, f"other-{marker}")
    _put(local_cloud, rule, unmatched)
    _put(local_cloud, rule, entry)

    recorded_marker = entry["Detail"].get("marker") or entry["Detail"]["alarmName"]
    (delivery,) = _deliveries(deliveries, recorded_marker)
    assert delivery["function"] == _consumer(rule).name
    record = delivery["record"]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == _queue_arn(local_cloud, local_cloud.queue_urls[rule.queue])
    body = json.loads(record["body"])
    assert (body["source"], body["detail-type"], body["detail"]) == (
        entry["Source"],
        entry["DetailType"],
        entry["Detail"],
    )
    unmatched_marker = unmatched["Detail"].get("marker") or unmatched["Detail"]["alarmName"]
    assert _deliveries(deliveries, unmatched_marker, expected=0) == []
    assert _receive_all(local_cloud, local_cloud.queue_urls[rule.queue]) == []


# --- Failures, as moto 5.2.5 handles them (localcloud/cloud.py lists the gaps) -------------

DRIFT_DETECTED = next(r for r in platform.EVENT_RULES if r.logical_id == "DriftDetectedRule")


def _drift_detected(cloud: LocalCloud, marker: str, **detail: Any) -> None:
    entry = _matching(DRIFT_DETECTED, marker)
    _put(cloud, DRIFT_DETECTED, {**entry, "Detail": {**entry["Detail"], **detail}})


def test_message_its_consumer_keeps_failing_moves_to_the_dead_letter_queue_after_max_receives(
    local_cloud: LocalCloud, deliveries: Path, empty_queues: None
) -> None:
    queue = platform.DRIFT_ALERT_QUEUE
    poisoned, first = uuid.uuid4().hex, uuid.uuid4().hex
    _drift_detected(local_cloud, poisoned, fail=True)
    # moto has no poller: the failed message is received again with each later message.
    for n in range(queue.max_receives):
        _drift_detected(local_cloud, first if n == 0 else uuid.uuid4().hex)

    assert len(_deliveries(deliveries, poisoned)) == queue.max_receives
    (dead,) = _receive_all(local_cloud, local_cloud.dead_letter_queue_urls[queue.logical_id])
    assert json.loads(dead["Body"])["detail"]["marker"] == poisoned
    assert _receive_all(local_cloud, local_cloud.queue_urls[queue.logical_id]) == []
    # Gap: a failed invocation returns its whole received batch, so a message received with
    # the failing one ran once per later message too (AWS: once).
    assert len(_deliveries(deliveries, first, expected=queue.max_receives)) == queue.max_receives


def test_moto_ignores_batch_item_failures_and_deletes_the_reported_message(
    local_cloud: LocalCloud, deliveries: Path, empty_queues: None
) -> None:
    reported = uuid.uuid4().hex
    _drift_detected(local_cloud, reported, report=True)
    _drift_detected(local_cloud, uuid.uuid4().hex)

    # Gap: AWS would deliver the reported message again (after the visibility timeout).
    assert len(_deliveries(deliveries, reported)) == 1
    queue = platform.DRIFT_ALERT_QUEUE.logical_id
    assert _receive_all(local_cloud, local_cloud.queue_urls[queue]) == []
    assert _receive_all(local_cloud, local_cloud.dead_letter_queue_urls[queue]) == []
