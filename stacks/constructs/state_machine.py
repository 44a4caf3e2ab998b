"""WorkflowStateMachine: a Step Functions state machine from a ``platform.StateMachineSpec``.

The definition is ``statemachines/<definition>`` as written (the local cloud runs the same
file); CloudFormation fills its ``${...FunctionArn}`` placeholders with the task functions'
ARNs (``DefinitionSubstitutions``). It is inline in the template, so ``cdk diff`` shows a
changed definition. The role may invoke exactly the spec's task functions, and call the AWS
SDK integrations the definition uses on the platform's resources only. Every execution is
traced (X-Ray) and logged at level ALL with its data to its own log group.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, IConstruct

from modelops import platform
from stacks.constructs import grants

_SDK_RESOURCE_PREFIX = "arn:aws:states:::aws-sdk:"
# AWS SDK integrations a definition may use: the IAM action and the resources it may touch.
SDK_PERMISSIONS: dict[str, tuple[str, Callable[[IConstruct], str]]] = {
    "sagemaker:describeTrainingJob": ("sagemaker:DescribeTrainingJob", grants.training_jobs_arn),
    "sagemaker:describeEndpoint": ("sagemaker:DescribeEndpoint", grants.endpoints_arn),
}


class WorkflowStateMachine(Construct):
    """A STANDARD state machine invoking the task functions its spec names."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: platform.StateMachineSpec,
        definitions_dir: Path,
        functions: Mapping[str, lambda_.IFunction],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        definition = (definitions_dir / spec.definition).read_text(encoding="utf-8")
        tasks = [functions[name] for name in spec.tasks]

        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=removal_policy
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(definition),
            definition_substitutions={
                platform.placeholder(name): fn.function_arn
                for name, fn in zip(spec.tasks, tasks, strict=True)
            },
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[fn.function_arn for fn in tasks]
            )
        )
        # IAM actions of the AWS SDK integrations the definition uses.
        self.sdk_actions: list[str] = []
        for integration in sorted(set(_sdk_integrations(json.loads(definition)))):
            if integration not in SDK_PERMISSIONS:
                raise ValueError(
                    f"{spec.definition}: no permission is declared for {integration} "
                    "(stacks.constructs.state_machine.SDK_PERMISSIONS)"
                )
            action, resource = SDK_PERMISSIONS[integration]
            self.sdk_actions.append(action)
            self.state_machine.add_to_role_policy(
                iam.PolicyStatement(actions=[action], resources=[resource(self)])
            )


def _sdk_integrations(node: Any) -> Iterator[str]:
    """``<service>:<apiAction>`` of every ``arn:aws:states:::aws-sdk:`` task resource."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Resource" and isinstance(value, str):
                if value.startswith(_SDK_RESOURCE_PREFIX):
                    yield value.removeprefix(_SDK_RESOURCE_PREFIX)
            else:
                yield from _sdk_integrations(value)
    elif isinstance(node, list):
        for value in node:
            yield from _sdk_integrations(value)
