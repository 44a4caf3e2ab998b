"""TrainingRole: the execution role SageMaker training jobs run with (``platform.TRAINING_ROLE``),
and the execution role of the SageMaker models the platform hosts. The same construct builds
every SageMaker role of ``platform.ROLES``: ``RAW_PII_JOB_ROLE`` is the training role's
access plus reading escrow, for jobs an approver allowed to use a raw PII dataset.

Only SageMaker may assume it, and only for the platform's own training jobs, models, endpoint
configs and endpoints in this account. It holds what a job or an endpoint does and nothing
else (``modelops.services.training``, ``modelops.services.serving``):

- reads its input channels (``inputs/``) and its source archive (``blobs/``) from the
  artifact bucket, writes its outputs and checkpoints under ``training/`` and reads
  checkpoints back when a spot job resumes; lists only those prefixes;
- reads (and lists) any object of the other buckets its spec grants READ (escrow: raw
  datasets as they were uploaded, which approved jobs read in place), never writes them;
- reads the hosted models' archives (``serving/``), and writes the endpoints' data capture
  (``capture/``), which SageMaker writes with the endpoint's execution role;
- decrypts and generates data keys with the keys its spec names, only through S3;
- writes its logs to SageMaker's training log group, in streams named after its job, and to
  the platform endpoints' log groups; its metrics to SageMaker's training and endpoint
  namespaces;
- pulls the default training image (which also serves the models) from its ECR repository.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from modelops import platform
from stacks.constructs import grants

# Object key prefixes of the artifact bucket by access: SageMaker reads channels under
# inputs/ and the source archive under blobs/, and writes (and reads back) outputs and
# checkpoints under training/; endpoints read model archives under serving/ and write data
# capture under capture/.
READ_PREFIXES = ("inputs/", "blobs/", "training/", "serving/")
WRITE_PREFIXES = ("training/", "capture/")
# Every object of a bucket without that layout (READ only).
WHOLE_BUCKET = ("",)
KEY_ACTIONS = {
    platform.Access.READ: ("kms:Decrypt",),
    platform.Access.READ_WRITE: ("kms:Decrypt", "kms:GenerateDataKey"),
}
# SageMaker publishes training metrics (and the job's MetricDefinitions) and endpoint
# instances' metrics in these namespaces.
METRICS_NAMESPACES = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/Endpoints")
# Hosted models' containers log to /aws/sagemaker/Endpoints/<endpoint name>.
ENDPOINT_LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
ENDPOINT_LOG_ACTIONS = (
    "logs:CreateLogGroup",
    "logs:DescribeLogStreams",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
)
ECR_PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
)


def read_prefixes(bucket: str) -> tuple[str, ...]:
    """The object key prefixes a SageMaker role reads in ``bucket`` (logical id)."""
    if bucket == platform.ARTIFACT_BUCKET.logical_id:
        return READ_PREFIXES
    return WHOLE_BUCKET


def write_prefixes(bucket: str, access: platform.Access) -> tuple[str, ...]:
    """The object key prefixes a SageMaker role writes in ``bucket`` (logical id)."""
    if access is platform.Access.READ:
        return ()
    if access is platform.Access.READ_WRITE and bucket == platform.ARTIFACT_BUCKET.logical_id:
        return WRITE_PREFIXES
    raise ValueError(f"unsupported SageMaker role access {access!r} to {bucket}")


def source_arns(scope: Construct) -> list[str]:
    """What SageMaker may act for when it assumes the role: the platform's training jobs and
    its models, endpoint configs and endpoints."""
    return [
        grants.training_jobs_arn(scope),
        *(grants.serving_arn(scope, kind) for kind in grants.SERVING_RESOURCE_TYPES),
    ]


def endpoint_log_groups_arn(scope: Construct) -> str:
    """The log groups of the platform's endpoints (``/aws/sagemaker/Endpoints/modelops-*``),
    with their streams."""
    return Stack.of(scope).format_arn(
        service="logs",
        resource="log-group",
        resource_name=f"{ENDPOINT_LOG_GROUP_PREFIX}{grants.SERVING_PREFIX}*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


class TrainingRole(Construct):
    """An IAM role SageMaker assumes to run the platform's training jobs (and, for the
    TrainingRole, to host its models). ``role_name``: the name of a bucket reader's role
    (``stacks.readers``); other roles get a generated one."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: platform.RoleSpec,
        buckets: Mapping[str, s3.IBucket],
        keys: Mapping[str, kms.IKey],
        image_repository_arn: str,
        role_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if spec.service != grants.SAGEMAKER:
            raise ValueError(f"{spec.logical_id}: a training role is assumed by SageMaker")
        self.spec = spec
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            description=spec.description,
            # Confused-deputy guard: SageMaker acting for this account's platform jobs and
            # hosting resources only.
            assumed_by=iam.ServicePrincipal(
                spec.service,
                conditions={
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                    "ArnLike": {"aws:SourceArn": source_arns(self)},
                },
            ),
        )
        for logical_id, access in spec.buckets.items():
            self._grant_bucket(buckets[logical_id], logical_id, access)
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
        # The group, its ":*" form and its streams: one pattern covers them.
        self._add(ENDPOINT_LOG_ACTIONS, [endpoint_log_groups_arn(self)])
        # No resource-level permissions for these two: conditions and repositories limit them.
        self._add(
            ["cloudwatch:PutMetricData"],
            ["*"],
            {"StringEquals": {"cloudwatch:namespace": list(METRICS_NAMESPACES)}},
        )
        self._add(["ecr:GetAuthorizationToken"], ["*"])
        self._add(ECR_PULL_ACTIONS, [image_repository_arn])

    def _grant_bucket(self, bucket: s3.IBucket, logical_id: str, access: platform.Access) -> None:
        reads = read_prefixes(logical_id)
        writes = write_prefixes(logical_id, access)
        self._add(
            ["s3:ListBucket"],
            [bucket.bucket_arn],
            None
            if reads == WHOLE_BUCKET
            else {"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in reads]}},
        )
        self._add(["s3:GetObject"], [bucket.arn_for_objects(f"{prefix}*") for prefix in reads])
        if writes:
            self._add(["s3:PutObject"], [bucket.arn_for_objects(f"{prefix}*") for prefix in writes])

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
