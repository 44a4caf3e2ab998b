"""Training in the service stack: the TrainModel state machine, SageMaker's training role, the
functions' grants (training, serving, workflows) and the deployment parameters, as the
platform declares them."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Template

from modelops import platform
from modelops.domain.training import sagemaker_job_name
from modelops.services.artifacts import blob_key
from modelops.services.training import LOG_GROUP
from stacks.constructs import grants
from stacks.environment import EnvironmentSettings, TrainingImage, project_context

from .conftest import REPO_ROOT, Synthesized
from .test_service_stack import (
    SPECS,
    _as_list,
    _data,
    _logical_id,
    _resources,
    _role_statements,
    _service,
)

MACHINE = platform.TRAIN_STATE_MACHINE
SAGEMAKER = "sagemaker.amazonaws.com"
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/modelops/python-training"


def _arn(service: str, resource: str) -> dict[str, Any]:
    """A regional ARN in the deployment's account, as CloudFormation receives it."""
    parts = [
        "arn:",
        {"Ref": "AWS::Partition"},
        f":{service}:",
        {"Ref": "AWS::Region"},
        ":",
        {"Ref": "AWS::AccountId"},
        f":{resource}",
    ]
    return {"Fn::Join": ["", parts]}


JOBS = _arn("sagemaker", "training-job/modelops-*")
LOG_GROUP_ARN = _arn("logs", "log-group:/aws/sagemaker/TrainingJobs:*")
LOG_STREAMS = _arn("logs", "log-group:/aws/sagemaker/TrainingJobs:log-stream:modelops-*")
MODELS = _arn("sagemaker", "model/modelops-*")
ENDPOINT_CONFIGS = _arn("sagemaker", "endpoint-config/modelops-*")
ENDPOINTS = _arn("sagemaker", "endpoint/modelops-*")
ENDPOINT_LOG_GROUPS = _arn("logs", "log-group:/aws/sagemaker/Endpoints/modelops-*")
AUTOSCALING_SERVICE_LINKED_ROLE = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":iam::",
            {"Ref": "AWS::AccountId"},
            ":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
            "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
        ],
    ]
}
# Services whose actions are grants' (every other action a function holds is a data grant's).
GRANT_SERVICES = {
    "sagemaker",
    "iam",
    "ecr",
    "states",
    "logs",
    "lambda",
    "application-autoscaling",
    "cloudwatch",
}

Permission = tuple[str, str, str]


def _permission(action: str, resource: Any, condition: Any = None) -> Permission:
    return action, json.dumps(resource, sort_keys=True), json.dumps(condition, sort_keys=True)


def _permissions(statements: list[dict[str, Any]], services: set[str]) -> set[Permission]:
    """(action, resource, condition) of every allowed action of ``services``."""
    assert all(s["Effect"] == "Allow" for s in statements)
    return {
        _permission(action, resource, s.get("Condition"))
        for s in statements
        for action in _as_list(s["Action"])
        if action.split(":")[0] in services
        for resource in _as_list(s["Resource"])
    }


def _machine_props(
    synth: Synthesized, template: Template, spec: platform.StateMachineSpec = MACHINE
) -> dict[str, Any]:
    machine = _service(synth).state_machines[spec.logical_id]
    props: dict[str, Any] = _resources(template)[_logical_id(synth, machine.state_machine)][
        "Properties"
    ]
    return props


def _function_arn(synth: Synthesized, name: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [_logical_id(synth, _service(synth).functions[name].function), "Arn"]}


def _repository_arn(synth: Synthesized) -> dict[str, Any]:
    image = _data(synth).settings.training_image
    return {
        "Fn::Sub": f"arn:${{AWS::Partition}}:ecr:{image.region}:{image.account}:"
        f"repository/{image.repository}"
    }


# --- The state machines (TrainModel, DeployModel) -------------------------------------------

MACHINES = pytest.mark.parametrize("spec", platform.STATE_MACHINES, ids=lambda m: m.logical_id)


@MACHINES
def test_state_machine_definition_is_its_file_with_every_placeholder_filled_by_its_task(
    synth: Synthesized, service_template: Template, spec: platform.StateMachineSpec
) -> None:
    props = _machine_props(synth, service_template, spec)
    definition = props["DefinitionString"]
    substitutions = props["DefinitionSubstitutions"]

    assert definition == (REPO_ROOT / "statemachines" / spec.definition).read_text()
    assert substitutions == {
        platform.placeholder(task): _function_arn(synth, task) for task in spec.tasks
    }
    filled = PLACEHOLDER.sub(lambda m: "arn" if m[1] in substitutions else m[0], definition)
    assert "${" not in filled


@MACHINES
def test_state_machine_definition_times_out_after_its_specs_timeout(
    synth: Synthesized, service_template: Template, spec: platform.StateMachineSpec
) -> None:
    definition = json.loads(_machine_props(synth, service_template, spec)["DefinitionString"])
    assert definition["TimeoutSeconds"] == spec.timeout_s


@MACHINES
def test_state_machine_is_standard_traced_and_logs_all_with_data_to_its_own_log_group(
    synth: Synthesized, service_template: Template, spec: platform.StateMachineSpec
) -> None:
    machine = _service(synth).state_machines[spec.logical_id]
    props = _machine_props(synth, service_template, spec)
    log_group_id = _logical_id(synth, machine.log_group)

    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"] == {
        "Destinations": [
            {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": [log_group_id, "Arn"]}}}
        ],
        "IncludeExecutionData": True,
        "Level": "ALL",
    }
    assert _resources(service_template)[log_group_id]["Properties"]["RetentionInDays"] > 0


def test_train_model_role_invokes_exactly_its_tasks_and_describes_only_platform_jobs(
    synth: Synthesized, service_template: Template
) -> None:
    role = _service(synth).state_machines[MACHINE.logical_id].state_machine.role
    statements = _role_statements(service_template, _logical_id(synth, role))

    assert len(MACHINE.tasks) == 8
    assert _permissions(statements, {"lambda", "sagemaker", "states", "iam"}) == {
        *(_permission("lambda:InvokeFunction", _function_arn(synth, t)) for t in MACHINE.tasks),
        _permission("sagemaker:DescribeTrainingJob", JOBS),
    }


# --- SageMaker's training role --------------------------------------------------------------


def _training_role(synth: Synthesized, template: Template) -> tuple[str, dict[str, Any]]:
    role_id = _logical_id(synth, _service(synth).training_role.role)
    return role_id, _resources(template)[role_id]["Properties"]


def test_training_role_trusts_only_sagemaker_acting_for_this_accounts_platform_resources(
    synth: Synthesized, service_template: Template
) -> None:
    _, role = _training_role(synth, service_template)

    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": SAGEMAKER},
            "Condition": {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                # Training jobs, and the hosted models' endpoints (it is their execution role).
                "ArnLike": {"aws:SourceArn": [JOBS, MODELS, ENDPOINT_CONFIGS, ENDPOINTS]},
            },
        }
    ]
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role


def test_training_role_holds_exactly_what_a_training_job_or_a_hosted_model_does(
    synth: Synthesized, service_template: Template
) -> None:
    data = _data(synth)
    role_id, _ = _training_role(synth, service_template)
    bucket = data.export_name(platform.ARTIFACT_BUCKET.logical_id, "Name")
    bucket_arn = {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Fn::ImportValue": bucket}]]
    }

    def objects(prefix: str) -> dict[str, Any]:
        joined = bucket_arn["Fn::Join"][1]
        return {"Fn::Join": ["", [*joined, f"/{prefix}*"]]}

    via_s3 = {
        "StringEquals": {
            "kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
        }
    }
    data_key = {"Fn::ImportValue": data.export_name(platform.DATA_KEY.logical_id, "Arn")}
    repository = _repository_arn(synth)
    statements = _role_statements(service_template, role_id)
    services = {a.split(":")[0] for s in statements for a in _as_list(s["Action"])}

    assert _permissions(statements, services) == {
        _permission(
            "s3:ListBucket",
            bucket_arn,
            {"StringLike": {"s3:prefix": ["inputs/*", "blobs/*", "training/*", "serving/*"]}},
        ),
        _permission("s3:GetObject", objects("inputs/")),
        _permission("s3:GetObject", objects("blobs/")),
        _permission("s3:GetObject", objects("training/")),
        _permission("s3:GetObject", objects("serving/")),  # model archives
        _permission("s3:PutObject", objects("training/")),
        _permission("s3:PutObject", objects("capture/")),  # endpoints' data capture
        _permission("kms:Decrypt", data_key, via_s3),
        _permission("kms:GenerateDataKey", data_key, via_s3),
        _permission("logs:CreateLogGroup", LOG_GROUP_ARN),
        _permission("logs:DescribeLogStreams", LOG_GROUP_ARN),
        _permission("logs:CreateLogStream", LOG_STREAMS),
        _permission("logs:PutLogEvents", LOG_STREAMS),
        *(
            _permission(f"logs:{action}", ENDPOINT_LOG_GROUPS)
            for action in (
                "CreateLogGroup",
                "DescribeLogStreams",
                "CreateLogStream",
                "PutLogEvents",
            )
        ),
        _permission(
            "cloudwatch:PutMetricData",
            "*",
            {
                "StringEquals": {
                    "cloudwatch:namespace": [
                        "/aws/sagemaker/TrainingJobs",
                        "/aws/sagemaker/Endpoints",
                    ]
                }
            },
        ),
        _permission("ecr:GetAuthorizationToken", "*"),
        _permission("ecr:BatchCheckLayerAvailability", repository),
        _permission("ecr:GetDownloadUrlForLayer", repository),
        _permission("ecr:BatchGetImage", repository),
    }


def test_training_role_names_follow_the_training_service() -> None:
    # Job names, log group and key prefixes that the role's and the grants' ARNs assume.
    assert sagemaker_job_name("job-1").startswith("modelops-")
    assert LOG_GROUP == "/aws/sagemaker/TrainingJobs"
    assert blob_key("0" * 64).startswith("blobs/")


# --- The functions' grants ------------------------------------------------------------------


def _pass_training_role(synth: Synthesized) -> Permission:
    return _pass_role(synth, platform.TRAINING_ROLE)


def _pass_role(synth: Synthesized, spec: platform.RoleSpec) -> Permission:
    role = _service(synth).sagemaker_roles[spec.logical_id].role
    role_arn = {"Fn::GetAtt": [_logical_id(synth, role), "Arn"]}
    return _permission(
        "iam:PassRole", role_arn, {"StringEquals": {"iam:PassedToService": SAGEMAKER}}
    )


SERVING_ACTIONS = (
    "CreateModel",
    "DescribeModel",
    "CreateEndpointConfig",
    "DescribeEndpointConfig",
    "CreateEndpoint",
    "UpdateEndpoint",
    "DescribeEndpoint",
    "UpdateEndpointWeightsAndCapacities",
    "AddTags",
)
AUTOSCALING_CONDITION = {
    "StringEquals": {
        "application-autoscaling:service-namespace": "sagemaker",
        "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
    }
}


def _grant_permissions(synth: Synthesized, grant: platform.Grant) -> set[Permission]:
    if grant is platform.Grant.TRAINING_JOBS:
        return {
            *(
                _permission(f"sagemaker:{action}", JOBS)
                for action in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob")
            ),
            _permission("sagemaker:AddTags", JOBS),
            _pass_training_role(synth),
            # Jobs allowed to read a raw PII dataset in escrow run as the raw-PII job role.
            _pass_role(synth, platform.RAW_PII_JOB_ROLE),
        }
    if grant is platform.Grant.SERVING:
        return {
            *(
                _permission(f"sagemaker:{action}", resource)
                for action in SERVING_ACTIONS
                for resource in (MODELS, ENDPOINT_CONFIGS, ENDPOINTS)
            ),
            _pass_training_role(synth),
            *(
                _permission(f"application-autoscaling:{action}", "*", AUTOSCALING_CONDITION)
                for action in ("RegisterScalableTarget", "PutScalingPolicy", "PutScheduledAction")
            ),
            *(
                _permission(f"application-autoscaling:{action}", "*")
                for action in (
                    "DescribeScalableTargets",
                    "DescribeScalingPolicies",
                    "DescribeScheduledActions",
                    "DescribeScalingActivities",
                )
            ),
            _permission(
                "iam:CreateServiceLinkedRole",
                AUTOSCALING_SERVICE_LINKED_ROLE,
                {
                    "StringLike": {
                        "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                    }
                },
            ),
        }
    if grant is platform.Grant.SERVING_METRICS:
        return {_permission("cloudwatch:GetMetricStatistics", "*")}
    if grant is platform.Grant.SERVING_STATUS:
        return {
            _permission(f"sagemaker:{action}", resource)
            for action in ("DescribeEndpoint", "DescribeEndpointConfig")
            for resource in (ENDPOINT_CONFIGS, ENDPOINTS)
        }
    if grant is platform.Grant.TRAINING_STATUS:
        return {_permission("sagemaker:DescribeTrainingJob", JOBS)}
    if grant is platform.Grant.TRAINING_IMAGES:
        return {_permission("ecr:DescribeImages", _repository_arn(synth))}
    if grant is platform.Grant.TRAINING_LOGS:
        return {
            _permission("logs:DescribeLogStreams", LOG_GROUP_ARN),
            _permission("logs:GetLogEvents", LOG_STREAMS),
        }
    if grant is platform.Grant.TRAIN_WORKFLOW_STATUS:
        machine_id = _machine_id(synth, MACHINE.logical_id)
        return {_permission("states:DescribeExecution", _executions_arn(machine_id))}
    # TRAIN_WORKFLOW, DEPLOY_WORKFLOW: StartExecution of the machine the grant starts.
    return {_permission("states:StartExecution", {"Ref": _machine_id(synth, STARTED[grant])})}


# The machine each start grant starts.
STARTED = {
    platform.Grant.TRAIN_WORKFLOW: platform.TRAIN_STATE_MACHINE.logical_id,
    platform.Grant.DEPLOY_WORKFLOW: platform.DEPLOY_STATE_MACHINE.logical_id,
}


def _machine_id(synth: Synthesized, logical_id: str) -> str:
    return _logical_id(synth, _service(synth).state_machines[logical_id].state_machine)


def _executions_arn(machine_id: str) -> dict[str, Any]:
    """``arn:...:states:<region>:<account>:execution:<the machine's name>:*``."""
    arn = _arn("states", "execution:")
    parts = [*arn["Fn::Join"][1], {"Fn::GetAtt": [machine_id, "Name"]}, ":*"]
    return {"Fn::Join": ["", parts]}


@SPECS
def test_function_holds_exactly_the_service_permissions_of_its_grants(
    synth: Synthesized, service_template: Template, spec: platform.FunctionSpec
) -> None:
    fn = _service(synth).functions[spec.name]
    statements = _role_statements(service_template, _logical_id(synth, fn.role))
    own_logs = json.dumps({"Fn::GetAtt": [_logical_id(synth, fn.log_group), "Arn"]})

    held = {p for p in _permissions(statements, GRANT_SERVICES) if p[1] != own_logs}
    # lambda:InvokeFunction comes with FunctionSpec.invokes, not with a grant.
    invokes = {_permission("lambda:InvokeFunction", _function_arn(synth, n)) for n in spec.invokes}
    assert held == invokes.union(*(_grant_permissions(synth, grant) for grant in spec.grants))


def test_start_grants_are_the_ones_stacks_know() -> None:
    assert STARTED == grants.START_GRANTS
    assert set(STARTED.values()) == {m.logical_id for m in platform.STATE_MACHINES}


@pytest.mark.parametrize(
    ("machine", "starter"),
    [
        (platform.TRAIN_STATE_MACHINE.logical_id, platform.TRAINING_API.name),
        (platform.DEPLOY_STATE_MACHINE.logical_id, platform.SERVING_API.name),
    ],
)
def test_only_its_api_starts_each_state_machine(
    synth: Synthesized, service_template: Template, machine: str, starter: str
) -> None:
    (grant,) = (g for g, started in STARTED.items() if started == machine)
    granted = [s.name for s in platform.FUNCTIONS if grant in s.grants]
    starting = {
        name
        for name, fn in _service(synth).functions.items()
        if _permission("states:StartExecution", {"Ref": _machine_id(synth, machine)})
        in _permissions(_role_statements(service_template, _logical_id(synth, fn.role)), {"states"})
    }

    assert granted == list(platform.STARTS[machine]) == [starter]
    assert starting == {starter}


def test_a_start_grant_without_being_a_starter_is_refused(synth: Synthesized) -> None:
    service = _service(synth)
    targets = grants.Targets(
        roles={},
        state_machines={k: m.state_machine for k, m in service.state_machines.items()},
        image_repository_arn="arn",
    )
    stranger = dataclasses.replace(platform.SERVING_API, name="deploy-create")
    with pytest.raises(ValueError, match=r"platform\.STARTS"):
        grants.statements(service, stranger, platform.Grant.DEPLOY_WORKFLOW, targets)


def test_only_the_reconciler_describes_executions_and_only_train_models(
    synth: Synthesized, service_template: Template
) -> None:
    machine_id = _machine_id(synth, MACHINE.logical_id)
    describing = {
        name: _permissions(
            _role_statements(service_template, _logical_id(synth, fn.role)), {"states"}
        )
        for name, fn in _service(synth).functions.items()
        if platform.Grant.TRAIN_WORKFLOW_STATUS in fn.spec.grants
    }

    assert describing == {
        platform.COMPUTE_RECONCILE.name: {
            _permission("states:DescribeExecution", _executions_arn(machine_id))
        }
    }


# --- Deployment parameters ------------------------------------------------------------------


@pytest.mark.parametrize("environment", sorted(project_context()["environments"]))
def test_every_environment_sets_every_deployment_parameter(environment: str) -> None:
    context = project_context()
    settings = EnvironmentSettings.from_context(
        environment, context["environments"][environment], context["computePools"]
    )

    assert set(settings.parameters) == set(platform.PARAMETERS)


@pytest.mark.parametrize(
    ("uri", "account", "region"),
    [
        (f"{IMAGE}:3.11", "123456789012", "eu-west-1"),
        (f"{IMAGE}@sha256:{'a' * 64}", "123456789012", "eu-west-1"),
        (
            "${AWS::AccountId}.dkr.ecr.${AWS::Region}.amazonaws.com/modelops/python-training:3.11",
            "${AWS::AccountId}",
            "${AWS::Region}",
        ),
    ],
)
def test_training_image_is_an_ecr_uri_whose_account_and_region_may_be_the_deployments(
    uri: str, account: str, region: str
) -> None:
    assert TrainingImage.parse(uri) == TrainingImage(
        uri, account, region, "modelops/python-training"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "python:3.11",
        "docker.io/library/python:3.11",
        "public.ecr.aws/docker/library/python:3.11",
        IMAGE,  # neither tag nor digest
        f"{IMAGE}:3.11 ",
    ],
)
def test_training_image_outside_a_private_ecr_repository_is_refused(uri: str) -> None:
    with pytest.raises(ValueError, match="trainingImage must be an ECR image URI"):
        TrainingImage.parse(uri)


@pytest.mark.parametrize("poll", [0, -60, "60", 1.5, True, None])
def test_training_poll_seconds_must_be_a_positive_integer(poll: object) -> None:
    context = project_context()
    values = {**context["environments"]["dev"], "trainingPollSeconds": poll}
    with pytest.raises(ValueError, match="trainingPollSeconds must be a positive integer"):
        EnvironmentSettings.from_context("dev", values, context["computePools"])
