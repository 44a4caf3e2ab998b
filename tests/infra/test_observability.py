"""The operations dashboard and alarms (stacks/constructs/observability.py), on the
synthesized service stack, and the metrics the training tasks add for them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from modelops import platform
from stacks.constructs import observability

from .conftest import REPO_ROOT, Synthesized

ALARM = "AWS::CloudWatch::Alarm"
SOURCE_DIRS = (REPO_ROOT / "functions", REPO_ROOT / "layers" / "modelops" / "modelops")


def _resources(template: Any, kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = template.find_resources(kind)
    return found


def _get_att_arn(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return str(logical_id) if attribute == "Arn" else None
    return None


def _dead_letter_queues(template: Any) -> set[str]:
    """Logical ids of every queue something uses as a dead-letter queue: a queue's redrive
    target, a rule target's or a function's DeadLetterConfig."""
    found = set()
    for queue in _resources(template, "AWS::SQS::Queue").values():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            found.add(_get_att_arn(redrive["deadLetterTargetArn"]))
    for rule in _resources(template, "AWS::Events::Rule").values():
        for target in rule["Properties"].get("Targets", ()):
            config = target.get("DeadLetterConfig")
            if config:
                found.add(_get_att_arn(config["Arn"]))
    for function in _resources(template, "AWS::Lambda::Function").values():
        config = function["Properties"].get("DeadLetterConfig")
        if config:
            found.add(_get_att_arn(config["TargetArn"]))
    found.discard(None)
    return {str(queue) for queue in found}


def _metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """Every metric an alarm reads: its own or its metric-math inputs."""
    props = alarm["Properties"]
    if "MetricName" in props:
        return [
            {
                "Namespace": props["Namespace"],
                "MetricName": props["MetricName"],
                "Dimensions": props.get("Dimensions", []),
            }
        ]
    return [
        {**query["MetricStat"]["Metric"]}
        for query in props.get("Metrics", ())
        if "MetricStat" in query
    ]


def _dimension(metric: dict[str, Any], name: str) -> Any:
    return next((d["Value"] for d in metric.get("Dimensions", []) if d["Name"] == name), None)


@pytest.fixture(scope="module")
def alarms(service_template: Any) -> dict[str, dict[str, Any]]:
    return _resources(service_template, ALARM)


@pytest.fixture(scope="module")
def dashboard(service_template: Any) -> dict[str, Any]:
    dashboards = _resources(service_template, "AWS::CloudWatch::Dashboard")
    assert len(dashboards) == 1
    (resource,) = dashboards.values()
    props: dict[str, Any] = resource["Properties"]
    return props


@pytest.fixture(scope="module")
def dashboard_body(dashboard: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON body, CloudFormation tokens in it replaced by TOKEN."""
    body = dashboard["DashboardBody"]
    if isinstance(body, dict):
        separator, parts = body["Fn::Join"]
        body = separator.join(p if isinstance(p, str) else "TOKEN" for p in parts)
    parsed: dict[str, Any] = json.loads(body)
    return parsed


@pytest.fixture(scope="module")
def topic_id(synth: Synthesized) -> str:
    stack = synth.stack("service")
    return str(stack.get_logical_id(stack.observability.topic.node.default_child))  # type: ignore[attr-defined]


def _logical_id(synth: Synthesized, construct: Any) -> str:
    return str(synth.stack("service").get_logical_id(construct.node.default_child))


def test_the_dashboard_is_named_after_the_environment(
    dashboard: dict[str, Any], synth: Synthesized
) -> None:
    environment = synth.stack("service").stack_name.split("-")[1]
    assert dashboard["DashboardName"] == observability.dashboard_name(environment)


def test_the_dashboard_heads_every_widget_group(dashboard_body: dict[str, Any]) -> None:
    headings = {
        w["properties"]["markdown"] for w in dashboard_body["widgets"] if w["type"] == "text"
    }
    for group in (*observability.GROUPS, observability.ALARMS):
        assert f"## {group}" in headings


def test_the_dashboard_graphs_every_platform_function_and_state_machine(
    dashboard_body: dict[str, Any], service_template: Any
) -> None:
    text = json.dumps(dashboard_body)
    for spec in platform.FUNCTIONS:
        assert f'"label": "{spec.name}"' in text, spec.name
    titles = {w["properties"].get("title") for w in dashboard_body["widgets"]}
    assert {spec.logical_id for spec in platform.STATE_MACHINES} <= titles


def test_the_dashboard_searches_sagemaker_metrics_of_the_platforms_jobs_and_endpoints(
    dashboard_body: dict[str, Any],
) -> None:
    text = json.dumps(dashboard_body)
    for metric in ("GPUUtilization", "ModelLatency", "Invocation5XXErrors"):
        assert f'MetricName=\\"{metric}\\"' in text
    assert "/aws/sagemaker/TrainingJobs" in text and "Host=modelops" in text
    assert "EndpointName=modelops" in text


def test_there_is_a_depth_alarm_for_every_dead_letter_queue(
    service_template: Any, alarms: dict[str, dict[str, Any]]
) -> None:
    dlqs = _dead_letter_queues(service_template)
    assert len(dlqs) >= len(platform.QUEUES) + len(platform.EVENT_RULES)
    watched = {}
    for alarm in alarms.values():
        for metric in _metrics(alarm):
            if metric["MetricName"] == "ApproximateNumberOfMessagesVisible":
                queue = _dimension(metric, "QueueName")
                watched[queue["Fn::GetAtt"][0]] = alarm["Properties"]
    assert set(watched) == dlqs
    for props in watched.values():
        assert props["Threshold"] == 1
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_api_5xx_rate_is_alarmed(alarms: dict[str, dict[str, Any]]) -> None:
    api = [
        a
        for a in alarms.values()
        if {m["MetricName"] for m in _metrics(a)} == {"5XXError", "Count"}
    ]
    assert len(api) == 1
    assert api[0]["Properties"]["Threshold"] == observability.API_5XX_PERCENT


def test_throttles_of_every_platform_function_are_alarmed(
    service_template: Any, alarms: dict[str, dict[str, Any]]
) -> None:
    platform_functions = {
        logical_id
        for logical_id, fn in _resources(service_template, "AWS::Lambda::Function").items()
        if "POWERTOOLS_SERVICE_NAME" in fn["Properties"].get("Environment", {}).get("Variables", {})
    }
    assert len(platform_functions) == len(platform.FUNCTIONS)
    throttled = {
        _dimension(m, "FunctionName")["Ref"]
        for a in alarms.values()
        for m in _metrics(a)
        if m["MetricName"] == "Throttles"
    }
    assert throttled == platform_functions


def test_failed_and_timed_out_executions_of_every_state_machine_are_alarmed(
    service_template: Any, alarms: dict[str, dict[str, Any]]
) -> None:
    machines = set(_resources(service_template, "AWS::StepFunctions::StateMachine"))
    for machine in machines:
        watched = [
            {m["MetricName"] for m in _metrics(a)}
            for a in alarms.values()
            if any(_dimension(m, "StateMachineArn") == {"Ref": machine} for m in _metrics(a))
        ]
        assert {"ExecutionsFailed", "ExecutionsTimedOut"} in watched, machine


def test_stale_checkpoints_are_alarmed_after_30_minutes(
    alarms: dict[str, dict[str, Any]],
) -> None:
    stale = [
        a for a in alarms.values() if a["Properties"].get("MetricName") == "CheckpointAgeSeconds"
    ]
    assert len(stale) == 1
    props = stale[0]["Properties"]
    assert props["Namespace"] == platform.METRICS_NAMESPACE
    assert props["Threshold"] == 30 * 60
    assert props["TreatMissingData"] == "notBreaching"


def test_every_operations_alarm_and_exhausted_quota_alarm_notifies_the_operators_topic(
    synth: Synthesized, alarms: dict[str, dict[str, Any]], topic_id: str
) -> None:
    stack: Any = synth.stack("service")
    ours = [_logical_id(synth, a) for a in stack.observability.alarms.values()]
    exhausted = [
        _logical_id(synth, a)
        for (_, _, _, threshold), a in stack.quota_alarms.alarms.items()
        if threshold == 100
    ]
    assert ours
    for logical_id in (*ours, *exhausted):
        props = alarms[logical_id]["Properties"]
        assert {"Ref": topic_id} in props["AlarmActions"], logical_id
        assert props["AlarmDescription"]
        assert props["TreatMissingData"] == "notBreaching"


def test_the_operators_topic_is_encrypted_with_a_rotated_customer_managed_key(
    service_template: Any, topic_id: str
) -> None:
    topic = _resources(service_template, "AWS::SNS::Topic")[topic_id]
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = _resources(service_template, "AWS::KMS::Key")[key_id]
    assert key["Properties"]["EnableKeyRotation"] is True


def _our_metric_names(
    alarms: dict[str, dict[str, Any]], dashboard_body: dict[str, Any]
) -> set[str]:
    names = {
        m["MetricName"]
        for a in alarms.values()
        for m in _metrics(a)
        if m["Namespace"] == platform.METRICS_NAMESPACE
    }
    for widget in dashboard_body["widgets"]:
        for metric in widget["properties"].get("metrics", ()):
            if metric and metric[0] == platform.METRICS_NAMESPACE:
                names.add(metric[1])
            expression = metric[0].get("expression", "") if isinstance(metric[0], dict) else ""
            if platform.METRICS_NAMESPACE in expression:
                names.update(re.findall(r'MetricName=\\?"(\w+)', expression))
    return names


def test_every_metric_of_our_namespace_read_is_emitted_by_the_code(
    alarms: dict[str, dict[str, Any]], dashboard_body: dict[str, Any]
) -> None:
    names = _our_metric_names(alarms, dashboard_body)
    assert {
        "TrainingJobSeconds",
        "CheckpointAgeSeconds",
        "DriftScore",
        "RetrainsSubmitted",
    } <= names
    sources = {
        path: path.read_text()
        for directory in SOURCE_DIRS
        for path in directory.rglob("*.py")
        if path.name != "platform.py"  # declares names, emits nothing
    }
    # Powertools' add_metric, or the {"name", "unit", "value", "dimensions"} that task
    # handlers return (modelops.tasks emits them).
    emitting = {
        path: text for path, text in sources.items() if "add_metric" in text or '"unit":' in text
    }
    for name in names:
        spellings = [f'"{name}"'] + [
            f"platform.{constant}"
            for constant in dir(platform)
            if constant.isupper() and getattr(platform, constant) == name
        ]
        assert any(s in text for text in emitting.values() for s in spellings), (
            f"{name} is on the dashboard or alarmed but no code emits it"
        )


# --- the metrics the training tasks add --------------------------------------------------


def test_recording_usage_reports_the_jobs_training_time_and_cost_once() -> None:
    from training_tasks import record_usage

    record = {"pool": "gpu", "modelFamily": "iris", "trainingSeconds": 120, "costUsd": "1.5"}
    metrics = {m["name"]: m for m in record_usage.job_metrics(record)}
    assert metrics["TrainingJobSeconds"]["value"] == 120.0
    assert metrics["TrainingJobSeconds"]["dimensions"] == {"pool": "gpu"}
    assert metrics["TrainingCostUsd"]["dimensions"] == {"pool": "gpu", "modelFamily": "iris"}
