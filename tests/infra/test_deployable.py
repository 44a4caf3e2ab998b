"""`cdk deploy` per environment: termination protection, retention, WAF, the mutual TLS
custom domain, throttling, reserved concurrency and X-Ray, as synthesized."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import CfnElement, Stack
from aws_cdk.assertions import Match, Template
from constructs import IConstruct

from modelops import platform
from stacks.constructs.api_firewall import (
    MANAGED_RULE_GROUPS,
    RATE_LIMIT_RULE,
    REDACTED_HEADERS,
    waf_log_group_name,
)
from stacks.environment import EnvironmentSettings, project_context
from stacks.service_stack import ServiceStack
from stacks.truststore_stack import TruststoreStack

from .conftest import CUSTOM_DOMAIN, Synthesized, environment_context

STATEFUL_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::S3::Bucket",
    "AWS::KMS::Key",
    "AWS::Logs::LogGroup",
)
ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"


@pytest.fixture(scope="module")
def outside_dev(
    synth_env: Callable[[str | None], Synthesized], synth_prod_mtls: Synthesized
) -> dict[str, Synthesized]:
    return {
        "staging": synth_env("staging"),
        "prod": synth_env("prod"),
        "prod-mtls": synth_prod_mtls,
    }


def _settings(environment: str, **overrides: Any) -> EnvironmentSettings:
    context = environment_context(environment, **overrides)
    return EnvironmentSettings.from_context(
        environment, context["environments"][environment], project_context()["computePools"]
    )


def _templates(synth: Synthesized) -> dict[str, Template]:
    """Every stack's template, by stack name."""
    return {stack.stack_name: Template.from_json(stack.template) for stack in synth.assembly.stacks}


def _service(synth: Synthesized) -> ServiceStack:
    stack = synth.stack("service")
    assert isinstance(stack, ServiceStack)
    return stack


def _logical_id(stack: Stack, construct: IConstruct) -> str:
    """The logical id of an L2 construct's CloudFormation resource in ``stack``."""
    child = construct.node.default_child
    assert isinstance(child, CfnElement), construct.node.path
    return stack.get_logical_id(child)


def _only(template: Template, resource_type: str) -> dict[str, Any]:
    (resource,) = template.find_resources(resource_type).values()
    props: dict[str, Any] = resource["Properties"]
    return props


# --- Termination protection and retention ----------------------------------------------------


@pytest.mark.parametrize("environment", ["staging", "prod", "prod-mtls"])
def test_stateful_stacks_are_termination_protected_outside_dev(
    outside_dev: dict[str, Synthesized], environment: str
) -> None:
    synth = outside_dev[environment]
    protected = {stack.stack_name: stack.termination_protection for stack in synth.assembly.stacks}

    stateful = {name for name in protected if name.endswith(("-data", "-truststore"))}
    assert {name for name, on in protected.items() if on} == stateful
    assert any(name.endswith("-truststore") for name in stateful) == (environment == "prod-mtls")


def test_dev_stacks_can_be_deleted(synth: Synthesized) -> None:
    assert [s.stack_name for s in synth.assembly.stacks if s.termination_protection] == []


@pytest.mark.parametrize("environment", ["staging", "prod", "prod-mtls"])
def test_every_table_bucket_key_and_log_group_is_retained_outside_dev(
    outside_dev: dict[str, Synthesized], environment: str
) -> None:
    deleted = [
        f"{stack_name}/{logical_id} ({resource_type})"
        for stack_name, template in _templates(outside_dev[environment]).items()
        for resource_type in STATEFUL_TYPES
        for logical_id, resource in template.find_resources(resource_type).items()
        if (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy"))
        != ("Retain", "Retain")
    ]
    assert deleted == []


def test_termination_protection_must_be_a_boolean() -> None:
    with pytest.raises(ValueError, match="terminationProtection must be true or false"):
        _settings("prod", terminationProtection="false")


# --- WAF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_api_is_behind_a_regional_web_acl_with_managed_rules_and_a_rate_limit(
    synth_env: Callable[[str | None], Synthesized], environment: str
) -> None:
    template = synth_env(environment).template("service")
    props = _only(template, "AWS::WAFv2::WebACL")

    assert props["Scope"] == "REGIONAL"
    assert props["Name"] == f"modelops-{environment}-api"
    assert props["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in props["Rules"]}
    for name, _ in MANAGED_RULE_GROUPS:
        statement = rules[name]["Statement"]["ManagedRuleGroupStatement"]
        assert (statement["VendorName"], statement["Name"]) == ("AWS", name)
        assert rules[name]["OverrideAction"] == {"None": {}}
    assert {name for name, _ in MANAGED_RULE_GROUPS} >= {
        "AWSManagedRulesCommonRuleSet",
        "AWSManagedRulesKnownBadInputsRuleSet",
        "AWSManagedRulesAmazonIpReputationList",
    }
    rate = rules[RATE_LIMIT_RULE]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
        "Limit": _settings(environment).waf_rate_limit,
    }
    assert sorted(rule["Priority"] for rule in props["Rules"]) == list(range(len(rules)))
    assert all(rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] for rule in props["Rules"])


def test_only_the_body_size_rule_of_the_common_rule_set_is_relaxed_to_count(
    service_template: Template,
) -> None:
    rules = _only(service_template, "AWS::WAFv2::WebACL")["Rules"]
    overrides = {
        rule["Name"]: rule["Statement"]["ManagedRuleGroupStatement"].get("RuleActionOverrides")
        for rule in rules
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }
    assert overrides == {
        "AWSManagedRulesAmazonIpReputationList": None,
        "AWSManagedRulesKnownBadInputsRuleSet": None,
        "AWSManagedRulesCommonRuleSet": [
            {"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}
        ],
    }


def test_web_acl_is_associated_with_the_api_stage(
    synth: Synthesized, service_template: Template
) -> None:
    service = _service(synth)
    stage_id = _logical_id(service, service.api.deployment_stage)
    api_id = _logical_id(service, service.api)
    (acl_id,) = service_template.find_resources("AWS::WAFv2::WebACL")
    props = _only(service_template, "AWS::WAFv2::WebACLAssociation")

    assert props["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    arn = props["ResourceArn"]["Fn::Join"][1]
    assert {"Ref": api_id} in arn and {"Ref": stage_id} in arn
    assert "/stages/" in arn


def test_waf_logs_blocked_and_counted_requests_to_its_log_group_without_sigv4_headers(
    synth: Synthesized, service_template: Template
) -> None:
    service = _service(synth)
    log_group_id = _logical_id(service, service.firewall.log_group)
    (acl_id,) = service_template.find_resources("AWS::WAFv2::WebACL")
    log_group = service_template.to_json()["Resources"][log_group_id]
    props = _only(service_template, "AWS::WAFv2::LoggingConfiguration")

    assert log_group["Properties"]["LogGroupName"] == waf_log_group_name("dev")
    assert log_group["Properties"]["LogGroupName"].startswith("aws-waf-logs-")
    assert log_group["Properties"]["RetentionInDays"] > 0
    assert props["ResourceArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    (destination,) = props["LogDestinationConfigs"]
    parts = destination["Fn::Join"][1]
    assert parts[-2:] == [":log-group:", {"Ref": log_group_id}]  # no trailing ":*"
    assert props["RedactedFields"] == [
        {"SingleHeader": {"Name": header}} for header in REDACTED_HEADERS
    ]
    assert props["LoggingFilter"]["DefaultBehavior"] == "DROP"
    (kept,) = props["LoggingFilter"]["Filters"]
    assert kept["Behavior"] == "KEEP"
    assert {c["ActionCondition"]["Action"] for c in kept["Conditions"]} >= {"BLOCK", "COUNT"}


def test_no_nag_acknowledgement_excuses_a_missing_waf(synth: Synthesized) -> None:
    acknowledged = [
        (construct.node.path, rule)
        for construct in synth.app.node.find_all()
        for entry in construct.node.metadata
        if entry.type == ACKNOWLEDGED_RULES
        for rule in entry.data
        if "APIG3" in rule
    ]
    assert acknowledged == []


# --- Mutual TLS custom domain ---------------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_environments_in_cdk_json_have_no_custom_domain(
    synth_env: Callable[[str | None], Synthesized], environment: str
) -> None:
    synth = synth_env(environment)
    template = synth.template("service")

    assert template.find_resources("AWS::ApiGateway::DomainName") == {}
    assert _only(template, "AWS::ApiGateway::RestApi").get("DisableExecuteApiEndpoint") in (
        None,
        False,
    )
    assert [
        s.stack_name for s in synth.assembly.stacks if s.stack_name.endswith("-truststore")
    ] == []


def test_mtls_domain_uses_the_certificate_and_the_truststore_in_the_truststore_stack(
    synth_prod_mtls: Synthesized,
) -> None:
    truststore = synth_prod_mtls.stack("truststore")
    assert isinstance(truststore, TruststoreStack)
    props = _only(synth_prod_mtls.template("service"), "AWS::ApiGateway::DomainName")

    assert props["DomainName"] == CUSTOM_DOMAIN["domainName"]
    assert props["RegionalCertificateArn"] == CUSTOM_DOMAIN["certificateArn"]
    assert props["EndpointConfiguration"] == {"Types": ["REGIONAL"]}
    assert props["SecurityPolicy"] == "TLS_1_2"
    mtls = props["MutualTlsAuthentication"]
    assert mtls["TruststoreUri"] == {
        "Fn::Join": [
            "",
            ["s3://", {"Fn::ImportValue": truststore.export_name()}, "/truststore.pem"],
        ]
    }
    assert mtls["TruststoreVersion"] == CUSTOM_DOMAIN["truststoreVersion"]
    outputs = synth_prod_mtls.template("truststore").to_json()["Outputs"]
    assert [o["Export"]["Name"] for o in outputs.values()] == [truststore.export_name()]


def test_mtls_disables_the_execute_api_endpoint_and_maps_the_stage_at_the_domain_root(
    synth_prod_mtls: Synthesized,
) -> None:
    service = _service(synth_prod_mtls)
    template = synth_prod_mtls.template("service")
    (domain_id,) = template.find_resources("AWS::ApiGateway::DomainName")

    assert _only(template, "AWS::ApiGateway::RestApi")["DisableExecuteApiEndpoint"] is True
    mapping = _only(template, "AWS::ApiGateway::BasePathMapping")
    assert mapping == {
        "DomainName": {"Ref": domain_id},
        "RestApiId": {"Ref": _logical_id(service, service.api)},
        "Stage": {"Ref": _logical_id(service, service.api.deployment_stage)},
    }


def test_truststore_bucket_is_versioned_encrypted_private_ssl_only_and_deployed_first(
    synth_prod_mtls: Synthesized,
) -> None:
    template = synth_prod_mtls.template("truststore")
    props = _only(template, "AWS::S3::Bucket")

    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )
    service = synth_prod_mtls.stack("service")
    assert synth_prod_mtls.stack("truststore") in service.dependencies


@pytest.mark.parametrize(
    ("custom_domain", "problem"),
    [
        ({**CUSTOM_DOMAIN, "truststoreUri": "s3://x/y"}, "unknown settings"),
        ({**CUSTOM_DOMAIN, "domainName": "API.Example.com"}, "domainName"),
        ({**CUSTOM_DOMAIN, "certificateArn": "arn:aws:iam::1:server-certificate/x"}, "ACM"),
        ({**CUSTOM_DOMAIN, "truststoreKey": "/truststore.pem"}, "truststoreKey"),
        ("api.example.com", "JSON object"),
    ],
)
def test_invalid_custom_domain_fails_naming_the_setting(
    custom_domain: object, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _settings("prod", customDomain=custom_domain)


# --- Throttling ------------------------------------------------------------------------------


def _escaped(path: str) -> str:
    return path.replace("/", "~1")


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_throttled_methods_get_their_own_stage_limits_with_logging_and_metrics(
    synth_env: Callable[[str | None], Synthesized], environment: str
) -> None:
    settings = _settings(environment)
    stage = _only(synth_env(environment).template("service"), "AWS::ApiGateway::Stage")
    method_settings = {(m["ResourcePath"], m["HttpMethod"]): m for m in stage["MethodSettings"]}

    assert settings.method_throttling
    for throttle in settings.method_throttling:
        assert method_settings[("/" + _escaped(throttle.path), throttle.http_method)] == {
            "ResourcePath": "/" + _escaped(throttle.path),
            "HttpMethod": throttle.http_method,
            "ThrottlingRateLimit": throttle.rate_limit,
            "ThrottlingBurstLimit": throttle.burst_limit,
            "LoggingLevel": "INFO",
            "MetricsEnabled": True,
            "DataTraceEnabled": False,
        }
    assert method_settings[("/*", "*")]["ThrottlingRateLimit"] == settings.throttling_rate_limit
    assert len(method_settings) == len(settings.method_throttling) + 1


def test_a_throttled_method_and_any_on_its_path_proxy_to_the_routes_function(
    synth: Synthesized, service_template: Template
) -> None:
    service = _service(synth)
    resources = service_template.to_json()["Resources"]
    for throttle in _settings("dev").method_throttling:
        segment = throttle.path.split("/")[1]
        (spec,) = [s for s in platform.FUNCTIONS if segment in s.api_routes]
        function_id = _logical_id(service, service.functions[spec.name].function)
        resource = service.api.root.resource_for_path(throttle.path.lstrip("/"))
        resource_id = _logical_id(service, resource)
        methods = {
            props["HttpMethod"]: props
            for r in resources.values()
            if r["Type"] == "AWS::ApiGateway::Method"
            and (props := r["Properties"])["ResourceId"] == {"Ref": resource_id}
        }

        assert set(methods) == {"ANY", throttle.http_method}, throttle.path
        for method in methods.values():
            assert method["AuthorizationType"] == "AWS_IAM"
            uri = json.dumps(method["Integration"]["Uri"])
            assert f'"{function_id}"' in uri, (throttle.path, method["HttpMethod"])


@pytest.mark.parametrize(
    ("method_throttling", "problem"),
    [
        ({"POST /train/job": {"rateLimit": 1, "burstLimit": 1}}, "no such method"),
        ({"DELETE /train/jobs": {"rateLimit": 1, "burstLimit": 1}}, "no such method"),
        (
            {"POST /serve/{deploy_id}/rollback": {"rateLimit": 1, "burstLimit": 1}},
            "only static paths",
        ),
        ({"POST /train/jobs": {"rateLimit": 1000, "burstLimit": 1}}, "at most the stage's"),
        ({"POST /train/jobs": {"rateLimit": 1, "burstLimit": 100000}}, "at most the stage's"),
        ({"POST /train/jobs": {"rateLimit": 1}}, "rateLimit, burstLimit"),
    ],
)
def test_invalid_method_throttling_fails_naming_the_route(
    method_throttling: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _settings("prod", methodThrottling=method_throttling)


# --- Reserved concurrency --------------------------------------------------------------------


def _function_ids(service: ServiceStack) -> dict[str, str]:
    return {name: _logical_id(service, fn.function) for name, fn in service.functions.items()}


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_functions_reserve_the_concurrency_their_environment_gives_them(
    synth_env: Callable[[str | None], Synthesized], environment: str
) -> None:
    synth = synth_env(environment)
    resources = synth.template("service").to_json()["Resources"]
    reserved = {
        name: resources[logical_id]["Properties"].get("ReservedConcurrentExecutions")
        for name, logical_id in _function_ids(_service(synth)).items()
    }

    expected = _settings(environment).reserved_concurrency
    assert {name: n for name, n in reserved.items() if n is not None} == expected
    assert bool(expected) == (environment != "dev")


def test_queue_consumers_mappings_are_capped_at_their_reserved_concurrency(
    synth_env: Callable[[str | None], Synthesized],
) -> None:
    synth = synth_env("prod")
    service = _service(synth)
    reserved = _settings("prod").reserved_concurrency
    ids = _function_ids(service)
    mappings = synth.template("service").find_resources("AWS::Lambda::EventSourceMapping")

    consumers = [s for s in platform.FUNCTIONS if s.queue]
    assert consumers
    for spec in consumers:
        (mapping,) = [
            m["Properties"]
            for m in mappings.values()
            if m["Properties"]["FunctionName"] == {"Ref": ids[spec.name]}
        ]
        assert mapping["ScalingConfig"] == {"MaximumConcurrency": reserved[spec.name]}


def test_reserved_concurrency_for_an_unknown_function_fails_the_synth_naming_it() -> None:
    from app import build_app

    context = environment_context("prod", reservedConcurrency={"no-such-function": 1})
    with pytest.raises(ValueError, match="unknown functions \\['no-such-function'\\]"):
        build_app(context=context)


@pytest.mark.parametrize(
    ("reserved", "problem"),
    [
        ({"audit-checkpoints": 0}, "positive integer"),
        ({"audit-checkpoints": True}, "positive integer"),
        ({"drift-alerts": 1}, "queue consumer needs at least 2"),
    ],
)
def test_invalid_reserved_concurrency_fails_naming_the_function(
    reserved: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        _settings("prod", reservedConcurrency=reserved)


# --- X-Ray -----------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_api_stage_traces_requests_with_xray(
    synth_env: Callable[[str | None], Synthesized], environment: str
) -> None:
    stage = _only(synth_env(environment).template("service"), "AWS::ApiGateway::Stage")
    assert stage["TracingEnabled"] is True


# --- Environment settings ---------------------------------------------------------------------


@pytest.mark.parametrize("limit", [9, 2_000_000_001, "100"])
def test_waf_rate_limit_outside_what_waf_accepts_fails(limit: object) -> None:
    with pytest.raises(ValueError, match="wafRateLimit"):
        _settings("prod", wafRateLimit=limit)
