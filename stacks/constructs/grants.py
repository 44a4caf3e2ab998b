"""IAM statements for ``platform.Grant``: the service permissions a function holds beyond its
tables, buckets, keys and buses, each scoped to the platform's own resources.

SageMaker training jobs are named ``modelops-<job id>`` (``modelops.domain.training``), so
job permissions name that prefix; their logs are in SageMaker's account-wide log group, in
streams named after the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import IConstruct

from modelops import platform

TRAINING_JOB_PREFIX = platform.TRAINING_JOB_PREFIX
TRAINING_LOG_GROUP = platform.TRAINING_LOG_GROUP
SAGEMAKER = "sagemaker.amazonaws.com"

TRAINING_JOB_ACTIONS = (
    "sagemaker:CreateTrainingJob",
    "sagemaker:DescribeTrainingJob",
    "sagemaker:StopTrainingJob",
    # CreateTrainingJob with Tags (job id, pool, correlation id) needs AddTags as well.
    "sagemaker:AddTags",
)


@dataclass(frozen=True)
class Targets:
    """The platform resources that grants name: roles passed to services, the state machines
    functions start or whose executions they read, and the repository of the default
    training image."""

    roles: Mapping[str, iam.IRole]
    state_machines: Mapping[str, sfn.StateMachine]
    image_repository_arn: str

    def physical_names(self) -> dict[str, str]:
        """logical id -> ARN, for ``platform.function_environment``."""
        names = {logical_id: role.role_arn for logical_id, role in self.roles.items()}
        names |= {
            logical_id: machine.state_machine_arn
            for logical_id, machine in self.state_machines.items()
        }
        return names


def training_jobs_arn(scope: IConstruct) -> str:
    """Every training job the platform creates, and no other."""
    return Stack.of(scope).format_arn(
        service="sagemaker", resource="training-job", resource_name=f"{TRAINING_JOB_PREFIX}*"
    )


def training_log_group_arn(scope: IConstruct) -> str:
    """SageMaker's training log group, in the ``:*`` form that group-level actions
    (CreateLogGroup, DescribeLogStreams) are authorized against."""
    return _log_arn(scope, f"{TRAINING_LOG_GROUP}:*")


def training_log_streams_arn(scope: IConstruct) -> str:
    """The platform's jobs' streams in that group (``<job name>/algo-<n>-<epoch>``)."""
    return _log_arn(scope, f"{TRAINING_LOG_GROUP}:log-stream:{TRAINING_JOB_PREFIX}*")


def _log_arn(scope: IConstruct, resource_name: str) -> str:
    return Stack.of(scope).format_arn(
        service="logs",
        resource="log-group",
        resource_name=resource_name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def statements(
    scope: IConstruct, grant: platform.Grant, targets: Targets
) -> list[iam.PolicyStatement]:
    """The statements of one grant."""
    if grant is platform.Grant.TRAINING_JOBS:
        return [
            iam.PolicyStatement(
                actions=list(TRAINING_JOB_ACTIONS), resources=[training_jobs_arn(scope)]
            ),
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[targets.roles[platform.TRAINING_ROLE.logical_id].role_arn],
                conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER}},
            ),
        ]
    if grant is platform.Grant.TRAINING_STATUS:
        return [
            iam.PolicyStatement(
                actions=["sagemaker:DescribeTrainingJob"], resources=[training_jobs_arn(scope)]
            )
        ]
    if grant is platform.Grant.TRAINING_IMAGES:
        # Tags are pinned to digests in the default image's repository, the only one the
        # training role may pull from.
        return [
            iam.PolicyStatement(
                actions=["ecr:DescribeImages"], resources=[targets.image_repository_arn]
            )
        ]
    if grant is platform.Grant.TRAINING_LOGS:
        return [
            iam.PolicyStatement(
                actions=["logs:DescribeLogStreams"], resources=[training_log_group_arn(scope)]
            ),
            iam.PolicyStatement(
                actions=["logs:GetLogEvents"], resources=[training_log_streams_arn(scope)]
            ),
        ]
    if grant is platform.Grant.TRAIN_WORKFLOW:
        return [
            iam.PolicyStatement(
                actions=["states:StartExecution"],
                resources=[_train_state_machine(grant, targets).state_machine_arn],
            )
        ]
    if grant is platform.Grant.TRAIN_WORKFLOW_STATUS:
        return [
            iam.PolicyStatement(
                actions=["states:DescribeExecution"],
                resources=[executions_arn(scope, _train_state_machine(grant, targets))],
            )
        ]
    raise ValueError(f"unsupported grant {grant!r}")


def executions_arn(scope: IConstruct, machine: sfn.StateMachine) -> str:
    """Every execution of ``machine`` (``execution:<machine name>:<execution name>``), and
    no other machine's."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{machine.state_machine_name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def _train_state_machine(grant: platform.Grant, targets: Targets) -> sfn.StateMachine:
    machine = targets.state_machines.get(platform.TRAIN_STATE_MACHINE.logical_id)
    if machine is None:
        raise ValueError(
            f"{grant}: the function must be created after the "
            f"{platform.TRAIN_STATE_MACHINE.logical_id} state machine (it cannot be one of its "
            "tasks)"
        )
    return machine
