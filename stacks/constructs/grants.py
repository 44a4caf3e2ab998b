"""IAM statements for ``platform.Grant``: the service permissions a function holds beyond its
tables, buckets, keys and buses, each scoped to the platform's own resources.

SageMaker training jobs are named ``modelops-<job id>`` (``modelops.domain.training``), so
job permissions name that prefix; their logs are in SageMaker's account-wide log group, in
streams named after the job. Models, endpoint configs and endpoints the platform hosts are
named with ``platform.SERVING_PREFIX`` (``modelops.domain.serving``), so hosting permissions
name that prefix too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import IConstruct

from modelops import platform

TRAINING_JOB_PREFIX = platform.TRAINING_JOB_PREFIX
TRAINING_LOG_GROUP = platform.TRAINING_LOG_GROUP
SERVING_PREFIX = platform.SERVING_PREFIX
SAGEMAKER = "sagemaker.amazonaws.com"

TRAINING_JOB_ACTIONS = (
    "sagemaker:CreateTrainingJob",
    "sagemaker:DescribeTrainingJob",
    "sagemaker:StopTrainingJob",
    # CreateTrainingJob with Tags (job id, pool, correlation id) needs AddTags as well.
    "sagemaker:AddTags",
)

# SageMaker hosting on the platform's models, endpoint configs and endpoints (one statement
# over the three resource types: IAM authorizes each action against the types it applies to).
SERVING_ACTIONS = (
    "sagemaker:CreateModel",
    "sagemaker:DescribeModel",
    "sagemaker:CreateEndpointConfig",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:CreateEndpoint",
    "sagemaker:UpdateEndpoint",
    "sagemaker:DescribeEndpoint",
    "sagemaker:UpdateEndpointWeightsAndCapacities",
    # CreateEndpointConfig with Tags (the deployment id) needs AddTags as well.
    "sagemaker:AddTags",
)
SERVING_RESOURCE_TYPES = ("model", "endpoint-config", "endpoint")
# Application Auto Scaling of the endpoints' variants. Scalable targets' ARNs carry a random
# id, unknown before registration, so the writes are limited by the condition keys the service
# offers instead: SageMaker variants' instance counts only.
AUTOSCALING_WRITE_ACTIONS = (
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:PutScheduledAction",
)
AUTOSCALING_READ_ACTIONS = (
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DescribeScheduledActions",
    "application-autoscaling:DescribeScalingActivities",
)
AUTOSCALING_CONDITIONS = {
    "StringEquals": {
        "application-autoscaling:service-namespace": "sagemaker",
        "application-autoscaling:scalable-dimension": "sagemaker:variant:DesiredInstanceCount",
    }
}
# The first RegisterScalableTarget of a SageMaker variant in an account creates this
# service-linked role.
AUTOSCALING_SERVICE = "sagemaker.application-autoscaling.amazonaws.com"
AUTOSCALING_SERVICE_LINKED_ROLE = (
    f"aws-service-role/{AUTOSCALING_SERVICE}/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)

# The grants that start a state machine, by the machine's logical id. A function holding one
# must be among the machine's starters in ``platform.STARTS`` (which gives it the ARN).
START_GRANTS = {
    platform.Grant.TRAIN_WORKFLOW: platform.TRAIN_STATE_MACHINE.logical_id,
    platform.Grant.DEPLOY_WORKFLOW: platform.DEPLOY_STATE_MACHINE.logical_id,
}


@dataclass(frozen=True)
class Targets:
    """The platform resources that grants name: roles passed to services, the state machines
    functions start or whose executions they read, the repository of the default training
    image, and the functions created so far (which others may invoke), by name."""

    roles: Mapping[str, iam.IRole]
    state_machines: Mapping[str, sfn.StateMachine]
    image_repository_arn: str
    functions: Mapping[str, lambda_.IFunction] = field(default_factory=dict)

    def physical_names(self) -> dict[str, str]:
        """logical id -> ARN (function name -> name), for ``platform.function_environment``."""
        names = {logical_id: role.role_arn for logical_id, role in self.roles.items()}
        names |= {
            logical_id: machine.state_machine_arn
            for logical_id, machine in self.state_machines.items()
        }
        names |= {name: function.function_name for name, function in self.functions.items()}
        return names


def invoke_statements(
    function: platform.FunctionSpec, targets: Targets
) -> list[iam.PolicyStatement]:
    """lambda:InvokeFunction of exactly the functions ``function`` invokes (unqualified ARNs:
    the asynchronous invocations name the function, never a version or alias)."""
    missing = [name for name in function.invokes if name not in targets.functions]
    if missing:
        raise ValueError(
            f"{function.name}: invokes {', '.join(missing)}, which must be created before it"
        )
    if not function.invokes:
        return []
    return [
        iam.PolicyStatement(
            actions=["lambda:InvokeFunction"],
            resources=[targets.functions[name].function_arn for name in function.invokes],
        )
    ]


def training_jobs_arn(scope: IConstruct) -> str:
    """Every training job the platform creates, and no other."""
    return Stack.of(scope).format_arn(
        service="sagemaker", resource="training-job", resource_name=f"{TRAINING_JOB_PREFIX}*"
    )


def serving_arn(scope: IConstruct, resource_type: str) -> str:
    """Every SageMaker ``resource_type`` (model, endpoint-config, endpoint) the platform
    creates, and no other."""
    if resource_type not in SERVING_RESOURCE_TYPES:
        raise ValueError(f"not a hosting resource type: {resource_type!r}")
    return Stack.of(scope).format_arn(
        service="sagemaker", resource=resource_type, resource_name=f"{SERVING_PREFIX}*"
    )


def endpoints_arn(scope: IConstruct) -> str:
    """Every SageMaker endpoint the platform creates, and no other."""
    return serving_arn(scope, "endpoint")


def autoscaling_service_linked_role_arn(scope: IConstruct) -> str:
    """The service-linked role Application Auto Scaling uses for SageMaker variants."""
    return Stack.of(scope).format_arn(
        service="iam", region="", resource="role", resource_name=AUTOSCALING_SERVICE_LINKED_ROLE
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
    scope: IConstruct,
    function: platform.FunctionSpec,
    grant: platform.Grant,
    targets: Targets,
) -> list[iam.PolicyStatement]:
    """The statements of one of ``function``'s grants."""
    if grant is platform.Grant.TRAINING_JOBS:
        return [
            iam.PolicyStatement(
                actions=list(TRAINING_JOB_ACTIONS), resources=[training_jobs_arn(scope)]
            ),
            _pass_training_role(targets),
            # Jobs an approver allowed to use a raw PII dataset run as the raw-PII job role.
            _pass_role(targets, platform.RAW_PII_JOB_ROLE),
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
    if grant in START_GRANTS:
        machine = _state_machine(grant, targets, START_GRANTS[grant])
        if function.name not in platform.STARTS.get(START_GRANTS[grant], ()):
            raise ValueError(
                f"{function.name}: {grant} without being a starter of {START_GRANTS[grant]} in "
                "platform.STARTS (which gives starters the machine's ARN)"
            )
        return [
            iam.PolicyStatement(
                actions=["states:StartExecution"], resources=[machine.state_machine_arn]
            )
        ]
    if grant is platform.Grant.TRAIN_WORKFLOW_STATUS:
        machine = _state_machine(grant, targets, platform.TRAIN_STATE_MACHINE.logical_id)
        return [
            iam.PolicyStatement(
                actions=["states:DescribeExecution"], resources=[executions_arn(scope, machine)]
            )
        ]
    if grant is platform.Grant.SERVING:
        return [
            iam.PolicyStatement(
                actions=list(SERVING_ACTIONS),
                resources=[serving_arn(scope, kind) for kind in SERVING_RESOURCE_TYPES],
            ),
            _pass_training_role(targets),
            # No resource-level permissions that can be named before registration (scalable
            # targets' ARNs carry a random id): "*", with the service's condition keys.
            iam.PolicyStatement(
                actions=list(AUTOSCALING_WRITE_ACTIONS),
                resources=["*"],
                conditions=AUTOSCALING_CONDITIONS,
            ),
            # Describe* supports neither resource-level permissions nor those condition keys.
            iam.PolicyStatement(actions=list(AUTOSCALING_READ_ACTIONS), resources=["*"]),
            iam.PolicyStatement(
                actions=["iam:CreateServiceLinkedRole"],
                resources=[autoscaling_service_linked_role_arn(scope)],
                conditions={"StringLike": {"iam:AWSServiceName": AUTOSCALING_SERVICE}},
            ),
        ]
    if grant is platform.Grant.SERVING_STATUS:
        return [
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig"],
                resources=[serving_arn(scope, kind) for kind in ("endpoint-config", "endpoint")],
            )
        ]
    if grant is platform.Grant.SERVING_METRICS:
        # GetMetricStatistics supports no resource-level permissions and no namespace condition.
        return [iam.PolicyStatement(actions=["cloudwatch:GetMetricStatistics"], resources=["*"])]
    raise ValueError(f"unsupported grant {grant!r}")


def _pass_training_role(targets: Targets) -> iam.PolicyStatement:
    """iam:PassRole of the TrainingRole (training jobs' and hosted models' execution role),
    to SageMaker only."""
    return _pass_role(targets, platform.TRAINING_ROLE)


def _pass_role(targets: Targets, spec: platform.RoleSpec) -> iam.PolicyStatement:
    """iam:PassRole of one of the SageMaker roles of ``platform.ROLES``, to SageMaker only."""
    if spec.service != SAGEMAKER:
        raise ValueError(f"{spec.logical_id} is not a role SageMaker assumes")
    return iam.PolicyStatement(
        actions=["iam:PassRole"],
        resources=[targets.roles[spec.logical_id].role_arn],
        conditions={"StringEquals": {"iam:PassedToService": SAGEMAKER}},
    )


def executions_arn(scope: IConstruct, machine: sfn.StateMachine) -> str:
    """Every execution of ``machine`` (``execution:<machine name>:<execution name>``), and
    no other machine's."""
    return Stack.of(scope).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{machine.state_machine_name}:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def _state_machine(grant: platform.Grant, targets: Targets, logical_id: str) -> sfn.StateMachine:
    machine = targets.state_machines.get(logical_id)
    if machine is None:
        raise ValueError(
            f"{grant}: the function must be created after the {logical_id} state machine (it "
            "cannot be one of its tasks)"
        )
    return machine
