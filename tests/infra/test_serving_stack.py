"""Serving in the service stack: the DeployModel state machine, who may start it, the serving
API's routes, and what SageMaker's execution role holds for hosted models, as the platform
declares them. ``test_training_stack.py`` checks what every state machine has in common
(definition, placeholders, timeout, logging) and every function's exact grant permissions,
DEPLOY_WORKFLOW, SERVING and SERVING_METRICS included."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Template

from modelops import platform
from modelops.domain.serving import endpoint_name, sagemaker_model_name
from stacks.constructs import grants

from .conftest import Synthesized
from .test_nag import _acknowledgements
from .test_service_stack import (
    _data,
    _function,
    _logical_id,
    _resources,
    _role_statements,
    _service,
)
from .test_training_stack import (
    ENDPOINTS,
    Permission,
    _function_arn,
    _permission,
    _permissions,
    _training_role,
)

MACHINE = platform.DEPLOY_STATE_MACHINE
SERVING_FUNCTIONS = pytest.mark.parametrize(
    "spec", [platform.SERVING_API, *platform.SERVING_FUNCTIONS], ids=lambda s: s.name
)


# --- The DeployModel state machine ----------------------------------------------------------


def test_deploy_model_tasks_are_the_five_deploy_functions() -> None:
    assert MACHINE in platform.STATE_MACHINES
    assert MACHINE.tasks == (
        "deploy-create",
        "deploy-analyse",
        "deploy-promote",
        "deploy-rollback",
        "deploy-fail",
    )
    for task in MACHINE.tasks:
        assert platform.function(task).handler == f"serving_tasks.{task.replace('-', '_')}.handler"


def test_deploy_model_role_invokes_exactly_its_tasks_and_describes_only_platform_endpoints(
    synth: Synthesized, service_template: Template
) -> None:
    role = _service(synth).state_machines[MACHINE.logical_id].state_machine.role
    statements = _role_statements(service_template, _logical_id(synth, role))

    assert _permissions(statements, {"lambda", "sagemaker", "states", "iam"}) == {
        *(_permission("lambda:InvokeFunction", _function_arn(synth, t)) for t in MACHINE.tasks),
        _permission("sagemaker:DescribeEndpoint", ENDPOINTS),
    }


def test_deploy_model_endpoint_wildcard_is_acknowledged_with_its_reason(synth: Synthesized) -> None:
    role = _service(synth).state_machines[MACHINE.logical_id].state_machine.role
    policy = role.node.find_child("DefaultPolicy")
    rule = (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:sagemaker:<AWS::Region>:"
        "<AWS::AccountId>:endpoint/modelops-*]"
    )

    assert "endpoints" in _acknowledgements(synth.app)[(policy.node.path, rule)]


# --- Who deploys ----------------------------------------------------------------------------


def test_serve_routes_proxy_every_method_to_the_serving_api(
    synth: Synthesized, service_template: Template
) -> None:
    api = _service(synth).api
    function_arn = {
        "Fn::GetAtt": [_logical_id(synth, _function(synth, platform.SERVING_API).function), "Arn"]
    }
    methods = [
        r["Properties"]
        for r in _resources(service_template).values()
        if r["Type"] == "AWS::ApiGateway::Method"
    ]

    assert platform.SERVING_API.api_routes == ("serve",)
    for path in ("serve", "serve/{proxy+}"):
        resource: Any = api.root
        for part in path.split("/"):
            resource = resource.get_resource(part)
            assert resource is not None, path
        (method,) = (m for m in methods if m["ResourceId"] == {"Ref": _logical_id(synth, resource)})
        assert method["HttpMethod"] == "ANY"
        assert method["AuthorizationType"] == "AWS_IAM"
        assert function_arn in method["Integration"]["Uri"]["Fn::Join"][1]


@SERVING_FUNCTIONS
def test_serving_functions_learn_the_models_execution_role_and_only_the_api_the_machine(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    service = _service(synth)
    variables = _resources(service_template)[_logical_id(synth, _function(synth, spec).function)][
        "Properties"
    ]["Environment"]["Variables"]
    machine_ref = {
        "Ref": _logical_id(synth, service.state_machines[MACHINE.logical_id].state_machine)
    }

    if platform.Grant.SERVING in spec.grants:
        assert variables[platform.TRAINING_ROLE.env_var] == {
            "Fn::GetAtt": [_logical_id(synth, service.training_role.role), "Arn"]
        }
    if spec is platform.SERVING_API:
        assert variables[MACHINE.env_var] == machine_ref
    else:
        assert MACHINE.env_var not in variables


@SERVING_FUNCTIONS
def test_serving_functions_verify_with_the_signing_keys_public_half(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    key = {"Fn::ImportValue": _data(synth).export_name(platform.SIGNING_KEY.logical_id, "Arn")}
    statements = _role_statements(service_template, _logical_id(synth, _function(synth, spec).role))

    assert _permission("kms:GetPublicKey", key) in _permissions(statements, {"kms"})


def test_unscoped_serving_actions_are_acknowledged_with_their_reasons(synth: Synthesized) -> None:
    acknowledgements = _acknowledgements(synth.app)
    reasons = {
        name: acknowledgements.get(
            (fn.role.node.find_child("DefaultPolicy").node.path, "AwsSolutions-IAM5[Resource::*]")
        )
        for name, fn in _service(synth).functions.items()
        if {platform.Grant.SERVING, platform.Grant.SERVING_METRICS} & set(fn.spec.grants)
    }

    assert set(reasons) == {platform.SERVING_API.name, *platform.DEPLOY_TASKS}
    for name, reason in reasons.items():
        assert reason is not None, name
        if platform.Grant.SERVING in platform.function(name).grants:
            assert "Application Auto Scaling" in reason, name
        if platform.Grant.SERVING_METRICS in platform.function(name).grants:
            assert "GetMetricStatistics" in reason, name


# --- SageMaker's execution role for hosted models -------------------------------------------


def _objects(synth: Synthesized, prefix: str) -> dict[str, Any]:
    bucket = _data(synth).export_name(platform.ARTIFACT_BUCKET.logical_id, "Name")
    parts = ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Fn::ImportValue": bucket}]
    return {"Fn::Join": ["", [*parts, f"/{prefix}*"]]}


def _object_permissions(synth: Synthesized, template: Template) -> set[Permission]:
    role_id, _ = _training_role(synth, template)
    return {
        p for p in _permissions(_role_statements(template, role_id), {"s3"}) if "Object" in p[0]
    }


def test_training_role_reads_model_archives_and_only_writes_data_capture(
    synth: Synthesized, service_template: Template
) -> None:
    held = _object_permissions(synth, service_template)

    assert _permission("s3:GetObject", _objects(synth, "serving/")) in held
    assert _permission("s3:PutObject", _objects(synth, "capture/")) in held
    # SageMaker never overwrites archives, and data capture is read by the analysis only.
    assert _permission("s3:PutObject", _objects(synth, "serving/")) not in held
    assert _permission("s3:GetObject", _objects(synth, "capture/")) not in held


def test_training_role_serving_prefixes_are_acknowledged_with_their_use(
    synth: Synthesized,
) -> None:
    policy = _service(synth).training_role.role.node.find_child("DefaultPolicy")
    bucket = _data(synth).export_name(platform.ARTIFACT_BUCKET.logical_id, "Name")
    acknowledgements = _acknowledgements(synth.app)

    for prefix, use in (("serving/", "archives"), ("capture/", "data capture")):
        rule = f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket}/{prefix}*]"
        assert use in acknowledgements[(policy.node.path, rule)]


def test_hosting_names_follow_the_serving_prefix() -> None:
    # Endpoint and model names that the grants', the trust policy's and the logs' ARNs assume.
    assert grants.SERVING_PREFIX == platform.SERVING_PREFIX == "modelops-"
    assert endpoint_name("fraud", "prod") == "modelops-fraud-prod"
    assert sagemaker_model_name("mdl-1").startswith(platform.SERVING_PREFIX)
