"""TrainingRole: the execution role SageMaker training jobs run with (``platform.TRAINING_ROLE``).

Only SageMaker may assume it, and only for the platform's own training jobs in this account.
It holds what a job does and nothing else (``modelops.services.training``):

- reads its input channels (``inputs/``) and its source archive (``blobs/``) from the
  buckets its spec names, writes its outputs and checkpoints under ``training/`` and reads
  checkpoints back when a spot job resumes; lists only those prefixes;
- decrypts and generates data keys with the keys its spec names, only through S3;
- writes its logs to SageMaker's training log group, in streams named after its job, and
  its metrics to SageMaker's training namespace;
- pulls the default training image from its ECR repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from modelops import platform
from stacks.constructs import grants

# Object key prefixes by access: SageMaker reads channels under inputs/ and the source
# archive under blobs/, and writes (and reads back) outputs and checkpoints under training/.
READ_PREFIXES = ("inputs/", "blobs/", "training/")
WRITE_PREFIXES = ("training/",)
KEY_ACTIONS = {
    platform.Access.READ: ("kms:Decrypt",),
    platform.Access.READ_WRITE: ("kms:Decrypt", "kms:GenerateDataKey"),
}
# SageMaker publishes training metrics (and the job's MetricDefinitions) in this namespace.
METRICS_NAMESPACE = "/aws/sagemaker/TrainingJobs"
ECR_PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
)


class TrainingRole(Construct):
    """An IAM role SageMaker assumes to run the platform's training jobs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: platform.RoleSpec,
        buckets: Mapping[str, s3.IBucket],
        keys: Mapping[str, kms.IKey],
        image_repository_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        if spec.service != grants.SAGEMAKER:
            raise ValueError(f"{spec.logical_id}: a training role is assumed by SageMaker")
        self.spec = spec
        self.role = iam.Role(
            self,
            "Role",
            description=spec.description,
            # Confused-deputy guard: SageMaker acting for this account's platform jobs only.
            assumed_by=iam.ServicePrincipal(
                spec.service,
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": grants.training_jobs_arn(self)},
                },
            ),
        )
        for logical_id, access in spec.buckets.items():
            self._grant_bucket(buckets[logical_id], access)
        for logical_id, access in spec.keys.items():
            self._add(
                KEY_ACTIONS[access],
                [keys[logical_id].key_arn],
                {"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            )
        self._add(
            ["logs:CreateLogGroup", "logs:DescribeLogStreams"],
            [grants.training_log_group_arn(self)],
        )
        self._add(
            ["logs:CreateLogStream", "logs:PutLogEvents"], [grants.training_log_streams_arn(self)]
        )
        # No resource-level permissions for these two: conditions and repositories limit them.
        self._add(
            ["cloudwatch:PutMetricData"],
            ["*"],
            {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACE}},
        )
        self._add(["ecr:GetAuthorizationToken"], ["*"])
        self._add(ECR_PULL_ACTIONS, [image_repository_arn])

    def _grant_bucket(self, bucket: s3.IBucket, access: platform.Access) -> None:
        self._add(
            ["s3:ListBucket"],
            [bucket.bucket_arn],
            {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in READ_PREFIXES]}},
        )
        self._add(
            ["s3:GetObject"], [bucket.arn_for_objects(f"{prefix}*") for prefix in READ_PREFIXES]
        )
        if access is platform.Access.READ_WRITE:
            self._add(
                ["s3:PutObject"],
                [bucket.arn_for_objects(f"{prefix}*") for prefix in WRITE_PREFIXES],
            )

    def _add(
        self,
        actions: Sequence[str],
        resources: list[str],
        conditions: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=list(actions),
                resources=resources,
                conditions=dict(conditions) if conditions else None,
            )
        )
