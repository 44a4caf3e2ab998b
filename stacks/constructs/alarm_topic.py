"""An encrypted SNS topic that this account's CloudWatch alarms may publish to: the quota
alarms' and the operators' topics are both built here."""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

CLOUDWATCH = "cloudwatch.amazonaws.com"


def alarm_topic(
    scope: Construct, *, purpose: str, removal_policy: RemovalPolicy
) -> tuple[kms.Key, sns.Topic]:
    """``scope``'s ``Key`` (rotated yearly) and ``Topic`` it encrypts, for ``purpose``
    ("quota", "operations") alarm notifications."""
    key = kms.Key(
        scope,
        "Key",
        description=f"Encrypts the ModelOps {purpose} alarm notifications (SNS).",
        enable_key_rotation=True,
        pending_window=Duration.days(30),
        removal_policy=removal_policy,
    )
    # What SNS does for CloudWatch when an alarm publishes to the encrypted topic.
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(CLOUDWATCH)],
            actions=["kms:Decrypt", "kms:GenerateDataKey*"],
            resources=["*"],
            conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
        )
    )
    topic = sns.Topic(
        scope,
        "Topic",
        display_name=f"ModelOps {purpose} alarms",
        master_key=key,
        enforce_ssl=True,
    )
    # The topic policy CDK writes (TLS only) replaces SNS's default one: this account's
    # alarms are admitted explicitly.
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(CLOUDWATCH)],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                "ArnLike": {
                    "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:"
                    f"{Aws.ACCOUNT_ID}:alarm:*"
                },
            },
        )
    )
    return key, topic
