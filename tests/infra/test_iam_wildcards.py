"""No IAM statement of any stack grants an action on Resource "*", but the actions that
AWS authorizes on "*" only, each listed here with its reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Synthesized

_SFN_LOG_DELIVERY = (
    "Step Functions' execution logging (CDK writes it for the log group each state machine "
    "has): CloudWatch Logs' log-delivery actions support no resource-level permissions, and "
    "AWS's documented policy for Step Functions logging grants them on '*'."
)
_AUTOSCALING_DESCRIBE = (
    "Application Auto Scaling's Describe actions support no resource-level permissions; the "
    "serving functions read the endpoints' variants' scaling with them."
)
_AUTOSCALING_WRITE = (
    "Scalable targets' ARNs carry an id the service assigns at registration, so none can be "
    "named when the policy is written; conditioned on the sagemaker namespace and the "
    "variants' DesiredInstanceCount dimension (REQUIRED_CONDITIONS)."
)
_XRAY = (
    "X-Ray's trace and sampling actions support no resource-level permissions (functions and "
    "state machines trace actively)."
)
# action -> why it is allowed on Resource "*".
WILDCARD_ACTIONS: dict[str, str] = {
    "xray:PutTraceSegments": _XRAY,
    "xray:PutTelemetryRecords": _XRAY,
    "xray:GetSamplingRules": _XRAY,
    "xray:GetSamplingTargets": _XRAY,
    "cloudwatch:PutMetricData": "No resource-level permissions; the training role's "
    "statement is conditioned on SageMaker's namespaces (REQUIRED_CONDITIONS).",
    "cloudwatch:GetMetricStatistics": "No resource-level permissions and no namespace "
    "condition key: the canary analysis reads its endpoint variants' metrics with it.",
    "ecr:GetAuthorizationToken": "Returns a registry login token, authorized on '*' only; "
    "pulling layers is granted on the training image's repository alone.",
    "logs:CreateLogDelivery": _SFN_LOG_DELIVERY,
    "logs:DeleteLogDelivery": _SFN_LOG_DELIVERY,
    "logs:GetLogDelivery": _SFN_LOG_DELIVERY,
    "logs:ListLogDeliveries": _SFN_LOG_DELIVERY,
    "logs:UpdateLogDelivery": _SFN_LOG_DELIVERY,
    "logs:DescribeLogGroups": _SFN_LOG_DELIVERY,
    "logs:DescribeResourcePolicies": _SFN_LOG_DELIVERY,
    "logs:PutResourcePolicy": _SFN_LOG_DELIVERY,
    "application-autoscaling:DescribeScalableTargets": _AUTOSCALING_DESCRIBE,
    "application-autoscaling:DescribeScalingActivities": _AUTOSCALING_DESCRIBE,
    "application-autoscaling:DescribeScalingPolicies": _AUTOSCALING_DESCRIBE,
    "application-autoscaling:DescribeScheduledActions": _AUTOSCALING_DESCRIBE,
    "application-autoscaling:RegisterScalableTarget": _AUTOSCALING_WRITE,
    "application-autoscaling:PutScalingPolicy": _AUTOSCALING_WRITE,
    "application-autoscaling:PutScheduledAction": _AUTOSCALING_WRITE,
}
# Allowed actions whose "*" statements must be narrowed by these condition keys.
REQUIRED_CONDITIONS: dict[str, tuple[str, ...]] = {
    "cloudwatch:PutMetricData": ("cloudwatch:namespace",),
    **{
        action: (
            "application-autoscaling:service-namespace",
            "application-autoscaling:scalable-dimension",
        )
        for action in (
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "application-autoscaling:PutScheduledAction",
        )
    },
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(synth: Synthesized) -> Iterator[tuple[str, dict[str, Any]]]:
    """(stack/logical id, statement) of every IAM policy, managed policy and inline policy."""
    for stack in synth.assembly.stacks:
        for logical_id, resource in stack.template.get("Resources", {}).items():
            props = resource.get("Properties", {})
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                documents = [props["PolicyDocument"]]
            elif resource["Type"] == "AWS::IAM::Role":
                documents = [policy["PolicyDocument"] for policy in props.get("Policies", [])]
            else:
                continue
            for document in documents:
                for statement in _as_list(document["Statement"]):
                    yield f"{stack.stack_name}/{logical_id}", statement


def _wildcard_statements(synth: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    return [
        (where, statement)
        for where, statement in _statements(synth)
        if statement.get("Effect", "Allow") == "Allow"
        and "*" in _as_list(statement.get("Resource", []))
    ]


@pytest.fixture(scope="module", params=["dev", "prod-mtls"])
def synthesized(
    request: pytest.FixtureRequest, synth: Synthesized, synth_prod_mtls: Synthesized
) -> Synthesized:
    return synth if request.param == "dev" else synth_prod_mtls


def test_no_statement_allows_an_action_on_every_resource_unless_aws_requires_it(
    synthesized: Synthesized,
) -> None:
    offending = [
        (where, action)
        for where, statement in _wildcard_statements(synthesized)
        for action in _as_list(statement.get("Action", []))
        if action not in WILDCARD_ACTIONS
    ]
    assert offending == []
    # NotAction / NotResource would slip past the list above.
    assert [w for w, s in _statements(synthesized) if "NotAction" in s or "NotResource" in s] == []


def test_wildcard_statements_carry_their_required_conditions(synthesized: Synthesized) -> None:
    unconditioned = [
        (where, action, key)
        for where, statement in _wildcard_statements(synthesized)
        for action in _as_list(statement["Action"])
        for key in REQUIRED_CONDITIONS.get(action, ())
        if not any(key in keys for keys in statement.get("Condition", {}).values())
    ]
    assert unconditioned == []


def test_every_allowed_wildcard_action_is_used(synth: Synthesized) -> None:
    used = {
        action
        for _, statement in _wildcard_statements(synth)
        for action in _as_list(statement["Action"])
    }
    assert set(WILDCARD_ACTIONS) - used == set()
