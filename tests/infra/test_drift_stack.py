"""Drift infrastructure: event rules -> queues -> consumers, invocations, the drift alarm and
the drift routes, as ``modelops.platform`` declares them."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from modelops import platform
from stacks.constructs import event_queues
from stacks.constructs.drift_alarms import alarm_name

from .conftest import Synthesized
from .test_service_stack import (
    _as_list,
    _data,
    _function,
    _logical_id,
    _resources,
    _role_statements,
    _service,
)

RULES = pytest.mark.parametrize("rule", platform.EVENT_RULES, ids=lambda r: r.logical_id)
QUEUES = pytest.mark.parametrize("queue", platform.QUEUES, ids=lambda q: q.logical_id)
EVENTS = "events.amazonaws.com"
DLQ_RETENTION_S = 14 * 24 * 3600


def _arn(synth: Synthesized, construct: Any) -> dict[str, Any]:
    return {"Fn::GetAtt": [_logical_id(synth, construct), "Arn"]}


def _props(synth: Synthesized, template: Template, construct: Any) -> dict[str, Any]:
    props: dict[str, Any] = _resources(template)[_logical_id(synth, construct)]["Properties"]
    return props


def _queue_policy(template: Template, queue_id: str) -> list[dict[str, Any]]:
    (policy,) = (
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in template.find_resources("AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue_id}]
    )
    statements: list[dict[str, Any]] = policy
    return statements


def _queues(synth: Synthesized) -> event_queues.EventQueues:
    return _service(synth).event_queues


# --- Rules and queues -----------------------------------------------------------------------


@RULES
def test_rule_sends_events_matching_its_pattern_on_its_bus_to_its_queue(
    synth: Synthesized, service_template: Template, rule: platform.EventRuleSpec
) -> None:
    queues = _queues(synth)
    props = _props(synth, service_template, queues.rules[rule.logical_id])

    assert props["EventPattern"] == rule.pattern
    assert props["State"] == "ENABLED"
    if rule.bus is None:
        assert "EventBusName" not in props  # the account's default bus
    else:
        bus = {"Fn::ImportValue": _data(synth).export_name(rule.bus, "Name")}
        assert props["EventBusName"] == bus
    (target,) = props["Targets"]
    assert target["Arn"] == _arn(synth, queues.queues[rule.queue])


@RULES
def test_rule_retries_deliveries_then_keeps_the_event_in_its_own_dead_letter_queue(
    synth: Synthesized, service_template: Template, rule: platform.EventRuleSpec
) -> None:
    queues = _queues(synth)
    (target,) = _props(synth, service_template, queues.rules[rule.logical_id])["Targets"]
    dlq = queues.delivery_dlqs[rule.logical_id]

    assert target["DeadLetterConfig"] == {"Arn": _arn(synth, dlq)}
    assert target["RetryPolicy"] == {
        "MaximumRetryAttempts": event_queues.DELIVERY_RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": event_queues.DELIVERY_MAX_EVENT_AGE.to_seconds(),
    }
    assert _props(synth, service_template, dlq)["MessageRetentionPeriod"] == DLQ_RETENTION_S
    # Only this rule may put undeliverable events there.
    allowed = [
        s
        for s in _queue_policy(service_template, _logical_id(synth, dlq))
        if s["Effect"] == "Allow"
    ]
    assert [(s["Principal"], s["Condition"]) for s in allowed] == [
        (
            {"Service": EVENTS},
            {"ArnEquals": {"aws:SourceArn": _arn(synth, queues.rules[rule.logical_id])}},
        )
    ]


@QUEUES
def test_queue_lets_only_the_rules_that_target_it_send(
    synth: Synthesized, service_template: Template, queue: platform.QueueSpec
) -> None:
    queues = _queues(synth)
    statements = _queue_policy(
        service_template, _logical_id(synth, queues.queues[queue.logical_id])
    )
    allowed = [s for s in statements if s["Effect"] == "Allow"]

    senders = [s["Condition"]["ArnEquals"]["aws:SourceArn"] for s in allowed]
    assert senders == [
        _arn(synth, queues.rules[r.logical_id])
        for r in platform.EVENT_RULES
        if r.queue == queue.logical_id
    ]
    for statement in allowed:
        assert statement["Principal"] == {"Service": EVENTS}
        assert "sqs:SendMessage" in _as_list(statement["Action"])
        assert not {"sqs:ReceiveMessage", "sqs:DeleteMessage"} & set(_as_list(statement["Action"]))


@QUEUES
def test_queue_moves_a_message_to_its_dead_letter_queue_after_max_receives(
    synth: Synthesized, service_template: Template, queue: platform.QueueSpec
) -> None:
    queues = _queues(synth)
    props = _props(synth, service_template, queues.queues[queue.logical_id])
    dlq = queues.dead_letter_queues[queue.logical_id]

    assert props["RedrivePolicy"] == {
        "deadLetterTargetArn": _arn(synth, dlq),
        "maxReceiveCount": queue.max_receives,
    }
    assert props["VisibilityTimeout"] == queue.visibility_timeout_s
    assert _props(synth, service_template, dlq)["MessageRetentionPeriod"] == DLQ_RETENTION_S


def test_every_queue_is_encrypted_and_refuses_requests_without_tls(
    service_template: Template,
) -> None:
    queues = service_template.find_resources("AWS::SQS::Queue")
    assert queues
    for queue_id, queue in queues.items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, queue_id
        (deny,) = (s for s in _queue_policy(service_template, queue_id) if s["Effect"] == "Deny")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Action"] == "sqs:*"


# --- Consumers --------------------------------------------------------------------------------


@QUEUES
def test_queue_invokes_its_one_consumer_in_batches_of_ten_reporting_item_failures(
    synth: Synthesized, service_template: Template, queue: platform.QueueSpec
) -> None:
    (consumer,) = (f for f in platform.FUNCTIONS if f.queue == queue.logical_id)
    queue_arn = _arn(synth, _queues(synth).queues[queue.logical_id])
    mappings = [
        m["Properties"]
        for m in service_template.find_resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == queue_arn
    ]

    (mapping,) = mappings
    assert mapping["FunctionName"] == {
        "Ref": _logical_id(synth, _function(synth, consumer).function)
    }
    assert mapping["BatchSize"] == 10
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    window = mapping.get("MaximumBatchingWindowInSeconds", 0)
    assert window <= event_queues.MAX_BATCHING_WINDOW_S
    # AWS's guidance: visibility timeout >= 6 x function timeout + batching window.
    assert queue.visibility_timeout_s >= 6 * consumer.timeout_s + window


@QUEUES
def test_consumer_may_receive_and_delete_its_queues_messages_and_no_other_does(
    synth: Synthesized, service_template: Template, queue: platform.QueueSpec
) -> None:
    queue_arn = _arn(synth, _queues(synth).queues[queue.logical_id])
    for spec in platform.FUNCTIONS:
        statements = _role_statements(
            service_template, _logical_id(synth, _function(synth, spec).role)
        )
        receiving = [
            s
            for s in statements
            if "sqs:ReceiveMessage" in _as_list(s["Action"])
            and queue_arn in _as_list(s["Resource"])
        ]
        if spec.queue == queue.logical_id:
            (statement,) = receiving
            assert {"sqs:DeleteMessage", "sqs:ChangeMessageVisibility"} <= set(statement["Action"])
        else:
            assert receiving == [], spec.name


def test_only_queue_consumers_have_event_source_mappings(
    synth: Synthesized, service_template: Template
) -> None:
    mapped = {
        m["Properties"]["FunctionName"]["Ref"]
        for m in service_template.find_resources("AWS::Lambda::EventSourceMapping").values()
    }
    assert mapped == {
        _logical_id(synth, _function(synth, spec).function)
        for spec in platform.FUNCTIONS
        if spec.queue
    }


def test_a_visibility_timeout_under_six_consumer_timeouts_is_refused() -> None:
    queue = platform.QueueSpec("Q", "a queue", visibility_timeout_s=100)
    consumer = platform.FunctionSpec("f", "m.handler", "a consumer", timeout_s=20)

    with pytest.raises(ValueError, match="under six times"):
        event_queues.batching_window(queue, consumer)


# --- Invocations ------------------------------------------------------------------------------


def test_drift_api_may_invoke_exactly_the_baseline_and_the_monitor(
    synth: Synthesized, service_template: Template
) -> None:
    assert platform.DRIFT_API.invokes == (platform.DRIFT_BASELINE.name, platform.DRIFT_MONITOR.name)
    for spec in platform.FUNCTIONS:
        statements = _role_statements(
            service_template, _logical_id(synth, _function(synth, spec).role)
        )
        invoking = [s for s in statements if "lambda:InvokeFunction" in _as_list(s["Action"])]
        invoked = [r for s in invoking for r in _as_list(s["Resource"])]
        assert invoked == [
            _arn(synth, _function(synth, platform.function(n)).function) for n in spec.invokes
        ]
        for statement in invoking:
            assert _as_list(statement["Action"]) == ["lambda:InvokeFunction"]


def test_only_the_monitor_and_the_alert_handler_describe_the_platforms_endpoints(
    synth: Synthesized, service_template: Template
) -> None:
    describing = {}
    for spec in platform.FUNCTIONS:
        statements = _role_statements(
            service_template, _logical_id(synth, _function(synth, spec).role)
        )
        found = [
            s for s in statements if "sagemaker:DescribeEndpointConfig" in _as_list(s["Action"])
        ]
        if found:
            describing[spec.name] = found
    assert set(describing) == {
        platform.DRIFT_MONITOR.name,
        platform.DRIFT_ALERTS.name,
        platform.SERVING_API.name,
        *(f.name for f in platform.SERVING_FUNCTIONS if platform.Grant.SERVING in f.grants),
    }
    for name in (platform.DRIFT_MONITOR.name, platform.DRIFT_ALERTS.name):
        [statement] = describing[name]
        assert sorted(_as_list(statement["Action"])) == [
            "sagemaker:DescribeEndpoint",
            "sagemaker:DescribeEndpointConfig",
        ]
        resources = [r["Fn::Join"][1][-1] for r in _as_list(statement["Resource"])]
        assert resources == [":endpoint-config/modelops-*", ":endpoint/modelops-*"]


def test_drift_api_learns_the_names_of_the_functions_it_invokes(
    synth: Synthesized, service_template: Template
) -> None:
    variables = _props(synth, service_template, _function(synth, platform.DRIFT_API).function)[
        "Environment"
    ]["Variables"]

    for name, variable in (
        (platform.DRIFT_BASELINE.name, "DRIFT_BASELINE_FUNCTION_NAME"),
        (platform.DRIFT_MONITOR.name, "DRIFT_MONITOR_FUNCTION_NAME"),
    ):
        assert platform.invoke_env_var(name) == variable
        function = _function(synth, platform.function(name)).function
        assert variables[variable] == {"Ref": _logical_id(synth, function)}


def test_functions_invoked_asynchronously_keep_failed_invocations_in_a_dead_letter_queue(
    synth: Synthesized, service_template: Template
) -> None:
    dlqs = _queues(synth).invocation_dlqs
    invoked = set(platform.invoked_asynchronously())
    assert set(dlqs) == invoked
    assert invoked == {
        platform.DRIFT_BASELINE.name,
        platform.DRIFT_MONITOR.name,  # invoked by the drift API, and on its schedule
        platform.DATASET_SANITIZER.name,  # invoked by the registry API
        *(spec.name for spec in platform.FUNCTIONS if spec.schedule),  # their failed runs
    }
    assert {"audit-checkpoints", "train-reconcile", "retention-run"} <= invoked

    for spec in platform.FUNCTIONS:
        props = _props(synth, service_template, _function(synth, spec).function)
        if spec.name in invoked:
            assert props["DeadLetterConfig"] == {"TargetArn": _arn(synth, dlqs[spec.name])}
        else:
            assert "DeadLetterConfig" not in props, spec.name
    for dlq in dlqs.values():
        assert _props(synth, service_template, dlq)["MessageRetentionPeriod"] == DLQ_RETENTION_S


# --- Alarm, schedule, routes ------------------------------------------------------------------


def test_drift_alarm_watches_the_monitors_features_at_alarm_every_hour(
    synth: Synthesized, service_template: Template
) -> None:
    alarm = _props(synth, service_template, _service(synth).drift_alarms.alarm)

    assert alarm["AlarmName"] == f"{platform.DRIFT_ALARM_PREFIX}{_data(synth).settings.name}"
    assert alarm["Namespace"] == platform.METRICS_NAMESPACE
    assert alarm["MetricName"] == platform.DRIFT_ALARM_METRIC
    assert alarm["Dimensions"] == [{"Name": "service", "Value": platform.DRIFT_MONITOR.name}]
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Period"] == 3600
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == (
        "GreaterThanOrEqualToThreshold",
        1,
    )
    assert (alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (1, 1)
    assert alarm["TreatMissingData"] == "notBreaching"


def test_drift_alarm_state_changes_match_the_drift_alarm_rule_on_the_default_bus() -> None:
    (rule,) = (r for r in platform.EVENT_RULES if r.logical_id == "DriftAlarmRule")
    name = alarm_name("prod")

    assert rule.bus is None
    assert rule.queue == platform.DRIFT_ALERTS.queue
    (matcher,) = rule.pattern["detail"]["alarmName"]
    assert name.startswith(matcher["prefix"])
    assert rule.pattern["detail"]["state"] == {"value": ["ALARM"]}


def test_drift_monitor_runs_every_hour(synth: Synthesized, service_template: Template) -> None:
    rule = _props(synth, service_template, _service(synth).schedules[platform.DRIFT_MONITOR.name])

    assert rule["ScheduleExpression"] == "rate(1 hour)"
    (target,) = rule["Targets"]
    assert target["Arn"] == _arn(synth, _function(synth, platform.DRIFT_MONITOR).function)


@pytest.mark.parametrize(
    ("segment", "spec"),
    [("drift", platform.DRIFT_API), ("eval", platform.TRAINING_API)],
    ids=["drift", "eval"],
)
def test_drift_and_eval_routes_proxy_every_method_to_their_function_with_iam_auth(
    synth: Synthesized, service_template: Template, segment: str, spec: platform.FunctionSpec
) -> None:
    api = _service(synth).api
    function_arn = _arn(synth, _function(synth, spec).function)
    methods = [
        r["Properties"]
        for r in _resources(service_template).values()
        if r["Type"] == "AWS::ApiGateway::Method"
    ]

    assert segment in spec.api_routes
    for path in (segment, f"{segment}/{{proxy+}}"):
        resource: Any = api.root
        for part in path.split("/"):
            resource = resource.get_resource(part)
            assert resource is not None, path
        (method,) = (m for m in methods if m["ResourceId"] == {"Ref": _logical_id(synth, resource)})
        assert method["HttpMethod"] == "ANY"
        assert method["AuthorizationType"] == "AWS_IAM"
        assert method["Integration"]["Type"] == "AWS_PROXY"
        assert function_arn in method["Integration"]["Uri"]["Fn::Join"][1]
