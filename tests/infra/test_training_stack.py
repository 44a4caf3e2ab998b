"""Training in the service stack: the TrainModel state machine, SageMaker's training role, the
functions' training grants and the deployment parameters, as the platform declares them."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Template

from modelops import platform
from modelops.domain.training import sagemaker_job_name
from modelops.services.artifacts import blob_key
from modelops.services.training import LOG_GROUP
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


def _machine_props(synth: Synthesized, template: Template) -> dict[str, Any]:
    machine = _service(synth).state_machines[MACHINE.logical_id]
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


# --- The TrainModel state machine -----------------------------------------------------------


def test_train_model_definition_is_its_file_with_every_placeholder_filled_by_its_task(
    synth: Synthesized, service_template: Template
) -> None:
    props = _machine_props(synth, service_template)
    definition = props["DefinitionString"]
    substitutions = props["DefinitionSubstitutions"]

    assert definition == (REPO_ROOT / "statemachines" / MACHINE.definition).read_text()
    assert substitutions == {
        platform.placeholder(task): _function_arn(synth, task) for task in MACHINE.tasks
    }
    filled = PLACEHOLDER.sub(lambda m: "arn" if m[1] in substitutions else m[0], definition)
    assert "${" not in filled


def test_train_model_definition_times_out_after_its_specs_timeout(
    synth: Synthesized, service_template: Template
) -> None:
    definition = json.loads(_machine_props(synth, service_template)["DefinitionString"])
    assert definition["TimeoutSeconds"] == MACHINE.timeout_s


def test_train_model_is_standard_traced_and_logs_all_with_data_to_its_own_log_group(
    synth: Synthesized, service_template: Template
) -> None:
    machine = _service(synth).state_machines[MACHINE.logical_id]
    props = _machine_props(synth, service_template)
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


def test_training_role_trusts_only_sagemaker_acting_for_this_accounts_platform_jobs(
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
                "ArnLike": {"aws:SourceArn": JOBS},
            },
        }
    ]
    assert "ManagedPolicyArns" not in role
    assert "Policies" not in role


def test_training_role_holds_exactly_what_a_training_job_does(
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
            {"StringLike": {"s3:prefix": ["inputs/*", "blobs/*", "training/*"]}},
        ),
        _permission("s3:GetObject", objects("inputs/")),
        _permission("s3:GetObject", objects("blobs/")),
        _permission("s3:GetObject", objects("training/")),
        _permission("s3:PutObject", objects("training/")),
        _permission("kms:Decrypt", data_key, via_s3),
        _permission("kms:GenerateDataKey", data_key, via_s3),
        _permission("logs:CreateLogGroup", LOG_GROUP_ARN),
        _permission("logs:DescribeLogStreams", LOG_GROUP_ARN),
        _permission("logs:CreateLogStream", LOG_STREAMS),
        _permission("logs:PutLogEvents", LOG_STREAMS),
        _permission(
            "cloudwatch:PutMetricData",
            "*",
            {"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}},
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


# --- The functions' training grants ---------------------------------------------------------


def _grant_permissions(synth: Synthesized, grant: platform.Grant) -> set[Permission]:
    service = _service(synth)
    if grant is platform.Grant.TRAINING_JOBS:
        role_arn = {"Fn::GetAtt": [_logical_id(synth, service.training_role.role), "Arn"]}
        return {
            *(
                _permission(f"sagemaker:{action}", JOBS)
                for action in ("CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob")
            ),
            _permission("sagemaker:AddTags", JOBS),
            _permission(
                "iam:PassRole",
                role_arn,
                {"StringEquals": {"iam:PassedToService": SAGEMAKER}},
            ),
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
    machine_id = _logical_id(synth, service.state_machines[MACHINE.logical_id].state_machine)
    if grant is platform.Grant.TRAIN_WORKFLOW_STATUS:
        return {_permission("states:DescribeExecution", _executions_arn(machine_id))}
    assert grant is platform.Grant.TRAIN_WORKFLOW
    return {_permission("states:StartExecution", {"Ref": machine_id})}


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

    held = {
        p
        for p in _permissions(statements, {"sagemaker", "iam", "ecr", "states", "logs", "lambda"})
        if p[1] != own_logs
    }
    assert held == set().union(*(_grant_permissions(synth, grant) for grant in spec.grants))


def test_only_the_training_api_starts_the_train_model_machine() -> None:
    starters = [s.name for s in platform.FUNCTIONS if platform.Grant.TRAIN_WORKFLOW in s.grants]
    assert starters == list(platform.STARTS[MACHINE.logical_id]) == [platform.TRAINING_API.name]


def test_only_the_reconciler_describes_executions_and_only_train_models(
    synth: Synthesized, service_template: Template
) -> None:
    machine_id = _logical_id(
        synth, _service(synth).state_machines[MACHINE.logical_id].state_machine
    )
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
