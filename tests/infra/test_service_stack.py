"""ServiceStack: functions, their permissions and the REST API, as the platform declares them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import CfnElement
from aws_cdk.assertions import Match, Template
from constructs import IConstruct

from modelops import platform
from stacks.constructs import grants
from stacks.constructs.python_function import PythonFunction
from stacks.data_stack import DataStack
from stacks.service_stack import ServiceStack

from .conftest import REPO_ROOT, Synthesized

SPECS = pytest.mark.parametrize("spec", platform.FUNCTIONS, ids=lambda s: s.name)

# Actions a READ grant must never carry.
WRITE_ACTIONS = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "s3:PutObject",
    "s3:DeleteObject*",
    "s3:Abort*",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
}


def _service(synth: Synthesized) -> ServiceStack:
    stack = synth.stack("service")
    assert isinstance(stack, ServiceStack)
    return stack


def _data(synth: Synthesized) -> DataStack:
    stack = synth.stack("data")
    assert isinstance(stack, DataStack)
    return stack


def _logical_id(synth: Synthesized, construct: IConstruct) -> str:
    child = construct if isinstance(construct, CfnElement) else construct.node.default_child
    assert isinstance(child, CfnElement)
    return _service(synth).get_logical_id(child)


def _function(synth: Synthesized, spec: platform.FunctionSpec) -> PythonFunction:
    return _service(synth).functions[spec.name]


def _resources(template: Template) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template.to_json()["Resources"]
    return resources


def _import_values(value: Any) -> Iterator[str]:
    """Every ``Fn::ImportValue`` name inside a CloudFormation value."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Fn::ImportValue" and isinstance(inner, str):
                yield inner
            else:
                yield from _import_values(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _import_values(inner)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_statements(template: Template, role_id: str) -> list[dict[str, Any]]:
    """All statements of all policies attached to a role (inline or AWS::IAM::Policy)."""
    statements = []
    role = _resources(template)[role_id]
    for inline in role["Properties"].get("Policies", []):
        statements += inline["PolicyDocument"]["Statement"]
    for policy in template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


# --- Lambda functions -------------------------------------------------------------------


def test_every_lambda_runs_python312_on_arm64_with_active_tracing_and_the_layer(
    synth: Synthesized, service_template: Template
) -> None:
    layer_id = _logical_id(synth, _service(synth).layer)
    service_template.all_resources_properties(
        "AWS::Lambda::Function",
        Match.object_like(
            {
                "Runtime": "python3.12",
                "Architectures": ["arm64"],
                "TracingConfig": {"Mode": "Active"},
                "Layers": [{"Ref": layer_id}],
            }
        ),
    )


def test_layer_is_declared_for_python312_on_arm64(service_template: Template) -> None:
    service_template.all_resources_properties(
        "AWS::Lambda::LayerVersion",
        Match.object_like(
            {"CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["arm64"]}
        ),
    )


@SPECS
def test_function_handler_memory_and_timeout_come_from_its_spec(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    props = _resources(service_template)[_logical_id(synth, _function(synth, spec).function)][
        "Properties"
    ]

    assert props["Handler"] == spec.handler
    assert props["MemorySize"] == spec.memory_mb
    assert props["Timeout"] == spec.timeout_s
    assert props["Description"] == spec.description


@SPECS
def test_function_logs_json_to_its_own_log_group_with_a_retention(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    fn = _function(synth, spec)
    resources = _resources(service_template)
    props = resources[_logical_id(synth, fn.function)]["Properties"]
    log_group_id = _logical_id(synth, fn.log_group)

    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert props["LoggingConfig"]["LogGroup"] == {"Ref": log_group_id}
    assert resources[log_group_id]["Properties"]["RetentionInDays"] > 0


@SPECS
def test_function_environment_is_platform_function_environment_with_imported_names(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    data = _data(synth)
    service = _service(synth)
    variables = _resources(service_template)[_logical_id(synth, _function(synth, spec).function)][
        "Properties"
    ]["Environment"]["Variables"]
    names: dict[str, Any] = {
        logical_id: {"Fn::ImportValue": data.export_name(logical_id, "Name")}
        for logical_id in [*spec.tables, *spec.buckets, *spec.bucket_names, *spec.buses]
    }
    names |= {
        logical_id: {"Fn::ImportValue": data.export_name(logical_id, "Arn")}
        for logical_id in spec.keys
    }
    names |= {
        logical_id: {"Fn::GetAtt": [_logical_id(synth, role.role), "Arn"]}
        for logical_id, role in service.sagemaker_roles.items()
    }
    names |= {
        logical_id: {"Ref": _logical_id(synth, machine.state_machine)}
        for logical_id, machine in service.state_machines.items()
    }
    names |= {
        name: {"Ref": _logical_id(synth, service.functions[name].function)} for name in spec.invokes
    }
    parameters = {name: service.resolve(value) for name, value in data.settings.parameters.items()}
    # The same function the local cloud uses, fed with what CloudFormation resolves.
    expected = platform.function_environment(spec, names, data.settings.role_bindings, parameters)

    assert variables == expected
    for logical_id in spec.keys:
        assert str(platform.key(logical_id).env_var) in variables
    for logical_id in spec.buses:
        assert platform.bus(logical_id).env_var in variables
    assert set(spec.parameters) <= set(variables)


# --- Permissions --------------------------------------------------------------------------


@SPECS
def test_function_policies_reference_only_the_resources_its_spec_names(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    data = _data(synth)
    role_id = _logical_id(synth, _function(synth, spec).role)
    statements = _role_statements(service_template, role_id)

    referenced = {name for s in statements for name in _import_values(s["Resource"])}
    declared = {data.export_name(logical_id, "Name") for logical_id in spec.tables}
    declared |= {data.export_name(logical_id, "Name") for logical_id in spec.buckets}
    # Tables are encrypted with the data key, each bucket with the key its spec names
    # (EXPIRE deletes objects without ever decrypting or encrypting one: no key).
    if spec.tables:
        declared.add(data.export_name(platform.DATA_KEY.logical_id, "Arn"))
    declared |= {
        data.export_name(platform.bucket(b).key, "Arn")
        for b, access in spec.buckets.items()
        if access is not platform.Access.EXPIRE
    }
    declared |= {data.export_name(logical_id, "Arn") for logical_id in spec.keys}
    declared |= {data.export_name(logical_id, "Name") for logical_id in spec.buses}
    assert referenced == declared


def _statements_with(statements: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    return [s for s in statements if action in _as_list(s["Action"])]


@SPECS
def test_function_signs_with_the_keys_its_spec_grants_sign_and_no_other(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    data = _data(synth)
    role_id = _logical_id(synth, _function(synth, spec).role)
    statements = _role_statements(service_template, role_id)

    signing = _statements_with(statements, "kms:Sign")
    signed_keys = {name for s in signing for name in _import_values(s["Resource"])}
    granted = {
        data.export_name(logical_id, "Arn")
        for logical_id, access in spec.keys.items()
        if access is platform.Access.SIGN
    }
    assert signed_keys == granted
    for statement in signing:
        assert set(_as_list(statement["Action"])) == {"kms:Sign", "kms:GetPublicKey"}
        assert statement["Effect"] == "Allow"
    assert not _statements_with(statements, "kms:Verify")


@SPECS
def test_function_publishes_only_to_the_buses_its_spec_names(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    data = _data(synth)
    role_id = _logical_id(synth, _function(synth, spec).role)
    publishing = _statements_with(_role_statements(service_template, role_id), "events:PutEvents")

    buses = {name for s in publishing for name in _import_values(s["Resource"])}
    assert buses == {data.export_name(logical_id, "Name") for logical_id in spec.buses}
    for statement in publishing:
        assert _as_list(statement["Action"]) == ["events:PutEvents"]


def test_ledger_writers_hold_the_ledger_the_audit_bucket_the_signing_key_and_the_bus() -> None:
    for spec in (platform.REGISTRY_API, platform.AUDIT_API, platform.AUDIT_CHECKPOINTS):
        assert spec.tables[platform.LEDGER_TABLE.logical_id] is platform.Access.READ_WRITE
        assert spec.buckets[platform.AUDIT_BUCKET.logical_id] is platform.Access.READ_WRITE
        assert spec.keys[platform.SIGNING_KEY.logical_id] is platform.Access.SIGN
        assert spec.buses == (platform.EVENT_BUS.logical_id,)


def test_only_the_registry_signs_model_bundles() -> None:
    signers = [
        spec.name
        for spec in platform.FUNCTIONS
        if spec.keys.get(platform.MODEL_SIGNING_KEY.logical_id) is platform.Access.SIGN
    ]
    assert signers == [platform.REGISTRY_API.name]


def test_scheduled_functions_get_a_rule_with_their_schedule_and_retries(
    synth: Synthesized, service_template: Template
) -> None:
    scheduled = {spec.name: spec.schedule for spec in platform.FUNCTIONS if spec.schedule}
    assert scheduled == {
        platform.AUDIT_CHECKPOINTS.name: "rate(15 minutes)",
        platform.COMPUTE_RECONCILE.name: "rate(5 minutes)",
        platform.DRIFT_MONITOR.name: "rate(1 hour)",
        platform.RETENTION_RUN.name: "rate(1 day)",
    }
    rules = service_template.find_resources("AWS::Events::Rule").values()
    for name, schedule in scheduled.items():
        fn = _function(synth, platform.function(name)).function
        function_arn = {"Fn::GetAtt": [_logical_id(synth, fn), "Arn"]}
        (rule,) = (
            r["Properties"] for r in rules if r["Properties"]["Targets"][0]["Arn"] == function_arn
        )
        assert rule["ScheduleExpression"] == schedule
        assert rule["State"] == "ENABLED"
        (target,) = rule["Targets"]
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2


# AWS services whose actions a function may hold: its data grants, and those of its grants.
DATA_SERVICES = {"logs", "xray", "dynamodb", "s3", "kms", "events"}
# Functions others invoke asynchronously send their failed invocations to a queue.
INVOKED = set(platform.invoked_asynchronously())  # their DLQ: sqs:SendMessage
GRANT_SERVICES = {
    platform.Grant.TRAINING_JOBS: {"sagemaker", "iam"},
    platform.Grant.TRAINING_STATUS: {"sagemaker"},
    platform.Grant.TRAINING_IMAGES: {"ecr"},
    platform.Grant.TRAINING_LOGS: {"logs"},
    platform.Grant.TRAIN_WORKFLOW: {"states"},
    platform.Grant.TRAIN_WORKFLOW_STATUS: {"states"},
    platform.Grant.SERVING: {"sagemaker", "iam", "application-autoscaling"},
    platform.Grant.SERVING_METRICS: {"cloudwatch"},
    platform.Grant.SERVING_STATUS: {"sagemaker"},
    platform.Grant.DEPLOY_WORKFLOW: {"states"},
}
# Actions that support no resource ARN known when the policy is written, by the grant that
# holds them on "*" (acknowledged in stacks/nag.py with the reason).
GRANT_WILDCARD_ACTIONS = {
    platform.Grant.SERVING: set(grants.AUTOSCALING_WRITE_ACTIONS + grants.AUTOSCALING_READ_ACTIONS),
    platform.Grant.SERVING_METRICS: {"cloudwatch:GetMetricStatistics"},
}


def test_every_grant_declares_its_services() -> None:
    assert set(GRANT_SERVICES) == set(platform.Grant)


@SPECS
def test_function_has_no_wildcard_resource_except_for_xray_and_unscoped_grant_actions(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    role_id = _logical_id(synth, _function(synth, spec).role)
    services = DATA_SERVICES.union(*(GRANT_SERVICES[grant] for grant in spec.grants))
    if spec.queue or spec.name in INVOKED:
        services.add("sqs")
    if spec.invokes:
        services.add("lambda")
    unscoped = set().union(*(GRANT_WILDCARD_ACTIONS.get(grant, set()) for grant in spec.grants))

    for statement in _role_statements(service_template, role_id):
        actions = _as_list(statement["Action"])
        if "*" in _as_list(statement["Resource"]):
            assert all(a.startswith("xray:") or a in unscoped for a in actions), statement
        for action in actions:
            assert action.split(":")[0] in services, action
            assert not action.endswith(":*"), action


def test_autoscaling_writes_are_limited_to_sagemaker_variants_instance_counts(
    synth: Synthesized, service_template: Template
) -> None:
    for fn in _service(synth).functions.values():
        for statement in _role_statements(service_template, _logical_id(synth, fn.role)):
            actions = set(_as_list(statement["Action"]))
            if actions & set(grants.AUTOSCALING_WRITE_ACTIONS):
                assert platform.Grant.SERVING in fn.spec.grants, fn.spec.name
                assert actions == set(grants.AUTOSCALING_WRITE_ACTIONS), statement
                assert statement["Condition"] == {
                    "StringEquals": {
                        "application-autoscaling:service-namespace": "sagemaker",
                        "application-autoscaling:scalable-dimension": (
                            "sagemaker:variant:DesiredInstanceCount"
                        ),
                    }
                }


@SPECS
def test_function_logs_permissions_are_its_own_log_group_and_granted_training_log_reads(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    fn = _function(synth, spec)
    service = _service(synth)
    log_group_arn = {"Fn::GetAtt": [_logical_id(synth, fn.log_group), "Arn"]}
    training_logs = {
        "logs:DescribeLogStreams": [service.resolve(grants.training_log_group_arn(service))],
        "logs:GetLogEvents": [service.resolve(grants.training_log_streams_arn(service))],
    }

    for statement in _role_statements(service_template, _logical_id(synth, fn.role)):
        actions = [a for a in _as_list(statement["Action"]) if a.startswith("logs:")]
        if not actions:
            continue
        resources = _as_list(statement["Resource"])
        if resources == [log_group_arn]:
            assert set(actions) == {"logs:CreateLogStream", "logs:PutLogEvents"}
        else:
            assert platform.Grant.TRAINING_LOGS in spec.grants, statement
            (action,) = _as_list(statement["Action"])
            assert resources == training_logs[action], statement


@SPECS
def test_read_only_access_grants_no_write_actions(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    data = _data(synth)
    read_only = {
        data.export_name(logical_id, "Name")
        for logical_id, access in {**spec.tables, **spec.buckets}.items()
        if access is platform.Access.READ
    }
    role_id = _logical_id(synth, _function(synth, spec).role)

    for statement in _role_statements(service_template, role_id):
        if read_only & set(_import_values(statement["Resource"])):
            assert not WRITE_ACTIONS & set(_as_list(statement["Action"])), statement


def test_function_roles_carry_no_managed_policies(
    synth: Synthesized, service_template: Template
) -> None:
    resources = _resources(service_template)
    for fn in _service(synth).functions.values():
        role = resources[_logical_id(synth, fn.role)]["Properties"]
        assert "ManagedPolicyArns" not in role


# --- REST API ------------------------------------------------------------------------------


def test_every_api_method_requires_iam_authorization(service_template: Template) -> None:
    service_template.all_resources_properties(
        "AWS::ApiGateway::Method", Match.object_like({"AuthorizationType": "AWS_IAM"})
    )
    for method in service_template.find_resources("AWS::ApiGateway::Method").values():
        assert method["Properties"]["HttpMethod"] != "OPTIONS"


def test_every_api_method_validates_request_body_and_parameters(
    service_template: Template,
) -> None:
    validators = service_template.find_resources("AWS::ApiGateway::RequestValidator")
    for logical_id, method in service_template.find_resources("AWS::ApiGateway::Method").items():
        validator_ref = method["Properties"].get("RequestValidatorId")
        assert validator_ref is not None, logical_id
        validator = validators[validator_ref["Ref"]]["Properties"]
        assert validator["ValidateRequestBody"] is True
        assert validator["ValidateRequestParameters"] is True


@SPECS
def test_api_routes_of_a_spec_proxy_any_method_to_its_function(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    api_id = _logical_id(synth, _service(synth).api)
    function_arn = {"Fn::GetAtt": [_logical_id(synth, _function(synth, spec).function), "Arn"]}
    resources = service_template.find_resources("AWS::ApiGateway::Resource")
    methods = service_template.find_resources("AWS::ApiGateway::Method").values()
    root = {"Fn::GetAtt": [api_id, "RootResourceId"]}

    for segment in spec.api_routes:
        (top_id,) = (
            rid
            for rid, r in resources.items()
            if r["Properties"]["PathPart"] == segment and r["Properties"]["ParentId"] == root
        )
        (proxy_id,) = (
            rid
            for rid, r in resources.items()
            if r["Properties"]["PathPart"] == "{proxy+}"
            and r["Properties"]["ParentId"] == {"Ref": top_id}
        )
        for resource_id in (top_id, proxy_id):
            (method,) = (
                m["Properties"]
                for m in methods
                if m["Properties"]["ResourceId"] == {"Ref": resource_id}
            )
            assert method["HttpMethod"] == "ANY"
            assert method["Integration"]["Type"] == "AWS_PROXY"
            assert function_arn in method["Integration"]["Uri"]["Fn::Join"][1]


def test_api_stage_writes_json_access_logs_traces_and_logs_every_method(
    synth: Synthesized, service_template: Template
) -> None:
    service = _service(synth)
    access_logs_id = _logical_id(synth, service.access_log_group)
    (stage,) = service_template.find_resources("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]

    # The log group's ARN, joined from its name (no trailing ":*").
    assert {"Ref": access_logs_id} in props["AccessLogSetting"]["DestinationArn"]["Fn::Join"][1]
    access_log_fields = json.loads(props["AccessLogSetting"]["Format"])
    assert {"requestId", "userArn", "status"} <= set(access_log_fields)
    assert props["TracingEnabled"] is True
    assert props["StageName"] == "v1"
    service_template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {
                            "HttpMethod": "*",
                            "ResourcePath": "/*",
                            "LoggingLevel": "INFO",
                            "MetricsEnabled": True,
                            "DataTraceEnabled": False,
                            "ThrottlingRateLimit": Match.any_value(),
                            "ThrottlingBurstLimit": Match.any_value(),
                        }
                    )
                ]
            )
        },
    )
    assert _resources(service_template)[access_logs_id]["Properties"]["RetentionInDays"] > 0


# --- Code assets -----------------------------------------------------------------------------


def _asset_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@SPECS
def test_function_code_is_the_functions_directory_without_bytecode(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    props = _resources(service_template)[_logical_id(synth, _function(synth, spec).function)][
        "Properties"
    ]
    asset = synth.outdir / f"asset.{props['Code']['S3Key'].removesuffix('.zip')}"
    source = {
        name
        for name in _asset_files(REPO_ROOT / "functions")
        if "__pycache__" not in name and not name.endswith(".pyc")
    }

    assert _asset_files(asset) == source
    assert (asset / Path(*spec.handler.split(".")[:-1])).with_suffix(".py").is_file()


def test_layer_asset_is_the_built_layer_only(
    synth: Synthesized, service_template: Template, layer_site: Path
) -> None:
    (layer,) = service_template.find_resources("AWS::Lambda::LayerVersion").values()
    asset = synth.outdir / f"asset.{layer['Properties']['Content']['S3Key'].removesuffix('.zip')}"

    assert [p.name for p in asset.iterdir()] == ["python"]
    assert _asset_files(asset / "python") == _asset_files(layer_site)


@SPECS
def test_only_roles_granted_sign_carry_the_signer_tag_of_that_key(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    role = _function(synth, spec).role
    role_id = _logical_id(synth, role)
    tags = {
        t["Key"]: t["Value"]
        for t in _resources(service_template)[role_id]["Properties"].get("Tags", [])
    }
    signer_tags = {k for k in tags if k.startswith("modelops-signer-")}
    expected = {
        platform.signer_tag(key)
        for key, access in spec.keys.items()
        if access is platform.Access.SIGN
    }
    assert signer_tags == expected
