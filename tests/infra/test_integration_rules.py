"""The rules forwarding events to the ILLUVRSE services' buses, as synthesized: one per
configured integration, matching exactly its detail types, with a dead-letter queue; none
when an environment configures none; bad settings fail the synth naming them."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from modelops import platform
from modelops.contracts.events import INTEGRATIONS
from stacks.environment import EnvironmentSettings, project_context

from .conftest import INTEGRATION_BUSES, Synthesized, environment_context


def _forwarding(template: Template) -> dict[str, dict[str, Any]]:
    """Rules whose targets are event buses, by target bus ARN."""
    found = {}
    for rule in template.find_resources("AWS::Events::Rule").values():
        for target in rule["Properties"].get("Targets", ()):
            if ":event-bus/" in str(target["Arn"]):
                found[target["Arn"]] = {**rule["Properties"], "Target": target}
    return found


def test_each_configured_integration_gets_exactly_its_detail_types_with_a_dlq(
    synth_prod_mtls: Synthesized,
) -> None:
    template = synth_prod_mtls.template("service")
    rules = _forwarding(template)
    assert set(rules) == set(INTEGRATION_BUSES.values())
    for integration in INTEGRATIONS:
        rule = rules[INTEGRATION_BUSES[integration.name]]
        assert rule["EventPattern"] == {
            "source": [platform.EVENT_SOURCE],
            "detail-type": list(integration.detail_types),
        }
        assert "Fn::ImportValue" in str(rule["EventBusName"])  # the platform's bus
        assert "DeadLetterConfig" in rule["Target"] and "RoleArn" in rule["Target"]


def test_the_delivery_role_may_put_events_on_its_integrations_bus_only(
    synth_prod_mtls: Synthesized,
) -> None:
    template = synth_prod_mtls.template("service")
    statements = [
        statement
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "events:PutEvents"
        and str(statement["Resource"]) in str(sorted(INTEGRATION_BUSES.values()))
    ]
    assert sorted(s["Resource"] for s in statements) == sorted(INTEGRATION_BUSES.values())


def test_an_environment_without_integrations_forwards_nothing(synth: Synthesized) -> None:
    assert _forwarding(synth.template("service")) == {}


def _settings(**overrides: Any) -> EnvironmentSettings:
    context = environment_context("prod", **overrides)
    return EnvironmentSettings.from_context(
        "prod", context["environments"]["prod"], project_context()["computePools"]
    )


@pytest.mark.parametrize(
    ("integrations", "problem"),
    [
        ({"billing": INTEGRATION_BUSES["kernel"]}, "unknown \\['billing'\\]"),
        ({"kernel": "arn:aws:sqs:us-east-1:210987654321:kernel"}, "integrations.kernel"),
        (["kernel"], "must be a JSON object"),
    ],
)
def test_invalid_integrations_fail_naming_the_setting(integrations: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _settings(integrations=integrations)
