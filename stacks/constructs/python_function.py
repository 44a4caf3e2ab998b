"""PythonFunction: the one way this project defines a Lambda function.

Every function gets the same runtime (Python 3.12 on arm64), active X-Ray tracing, JSON
logs into its own log group with a retention, the modelops layer, and an execution role
that holds nothing but what its ``FunctionSpec`` asks for: write access to its own log
group, the X-Ray write actions, the table, bucket, key and event-bus grants derived from
the spec's ``Access`` levels (identity policies: keys and buses are named one by one), the
service permissions of its ``grants`` (``stacks/constructs/grants.py``), and
lambda:InvokeFunction of the functions it ``invokes`` (which must exist before it). A
function that others invoke asynchronously is given a dead-letter queue for the
invocations that still fail after Lambda's retries. A function may have reserved
concurrency (``reservedConcurrency`` in cdk.json): at most that many run at once, and that
many are always available to it. A function that reads a bucket with
readers gets the role name ``stacks.readers`` gives it, so the bucket's policy admits it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Aws, Duration, RemovalPolicy, Tags, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from modelops import platform
from stacks.constructs import grants

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.ARM_64

# X-Ray's write actions have no resource-level permissions: "*" is the only valid resource.
XRAY_WRITE_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")
# KMS key access: public keys are read to verify offline, so READ never includes kms:Verify.
KEY_ACTIONS = {
    platform.Access.READ: ("kms:GetPublicKey",),
    platform.Access.SIGN: ("kms:Sign", "kms:GetPublicKey"),
    # HMAC keys: keyed pseudonyms; never kms:VerifyMac (the MAC is compared as data).
    platform.Access.MAC: ("kms:GenerateMac",),
}
# Access.WRITE to a bucket: single PUTs (presigned by the function, so made with its
# credentials; the SHA-256 is signed in, so S3 refuses any other body), never a read; its
# key may generate data keys through S3 (encrypting the PUT), never decrypt. S3 authorizes
# GetObjectAttributes and HeadObject only with s3:GetObject, which a bucket with readers
# denies, so the registry confirms uploads by listing them (size, checksum algorithm:
# ``modelops.adapters.s3``), hence s3:ListBucket on the bucket.
BUCKET_WRITE_ACTIONS = ("s3:PutObject",)
BUCKET_LIST_ACTIONS = ("s3:ListBucket",)
# Access.EXPIRE to a bucket: find every version of an object and delete them all (a
# versioned bucket keeps a deleted object's bytes otherwise), never read one; no key use.
BUCKET_EXPIRE_ACTIONS = ("s3:DeleteObject", "s3:DeleteObjectVersion")
BUCKET_VERSION_LIST_ACTIONS = ("s3:ListBucket", "s3:ListBucketVersions")
# Lambda refuses a function whose environment (names and values) exceeds 4 KB. Values that
# CloudFormation fills in (the names and ARNs it generates, at most 64-character role and
# 63-character bucket names) are counted at RESOLVED_VALUE_BOUND characters each.
ENVIRONMENT_LIMIT = 4096
RESOLVED_VALUE_BOUND = 128


def environment_size(variables: Mapping[str, str]) -> int:
    """Bytes of an environment as Lambda counts them, tokens at their bound."""
    return sum(
        len(name.encode())
        + (RESOLVED_VALUE_BOUND if Token.is_unresolved(value) else len(value.encode()))
        for name, value in variables.items()
    )


class PythonFunction(Construct):
    """A Lambda function built from a ``platform.FunctionSpec``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: platform.FunctionSpec,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion,
        tables: Mapping[str, dynamodb.ITable],
        buckets: Mapping[str, s3.IBucket],
        keys: Mapping[str, kms.IKey],
        buses: Mapping[str, events.IEventBus],
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        role_bindings: Mapping[str, Sequence[str]],
        parameters: Mapping[str, str],
        targets: grants.Targets,
        dead_letter_queue: sqs.IQueue | None = None,
        role_name: str | None = None,
        reserved_concurrency: int | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.spec = spec
        # Checked first: the functions it invokes give it their names in the environment.
        invoke_statements = grants.invoke_statements(spec, targets)

        self.log_group = logs.LogGroup(
            self,
            "LogGroup",
            retention=log_retention,
            removal_policy=removal_policy,
        )

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            role_name=role_name,
            description=f"Execution role of the {spec.name} function.",
        )
        self.log_group.grant_write(self.role)

        # Kept apart from the role's default policy so that the only "*" resource the
        # function holds is this one, and it can be acknowledged on its own.
        self.xray_policy = iam.Policy(
            self,
            "XRayWritePolicy",
            roles=[self.role],
            statements=[iam.PolicyStatement(actions=list(XRAY_WRITE_ACTIONS), resources=["*"])],
        )

        # logical id -> physical name (a CloudFormation token), for the environment.
        physical_names = {name: tables[name].table_name for name in spec.tables}
        physical_names |= {name: buckets[name].bucket_name for name in spec.buckets}
        # Names only, no grant: buckets it names to services acting with their own role.
        physical_names |= {name: buckets[name].bucket_name for name in spec.bucket_names}
        physical_names |= {name: keys[name].key_arn for name in spec.keys}
        physical_names |= {name: buses[name].event_bus_name for name in spec.buses}
        physical_names |= targets.physical_names()

        environment = platform.function_environment(spec, physical_names, role_bindings, parameters)
        size = environment_size(environment)
        if size > ENVIRONMENT_LIMIT:
            largest = max(environment, key=lambda name: len(environment[name]))
            raise ValueError(
                f"{spec.name}: its environment takes about {size} bytes, over Lambda's "
                f"{ENVIRONMENT_LIMIT} (largest: {largest}); shorten cdk.json's bindings or pools"
            )

        self.function = lambda_.Function(
            self,
            "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=spec.handler,
            code=code,
            layers=[layer],
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            environment=environment,
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.INFO,
            dead_letter_queue=dead_letter_queue,
            reserved_concurrent_executions=reserved_concurrency,
        )
        # Tracing is set on the L1 resource: the L2 ``tracing`` option would also add the
        # X-Ray statement to the role's default policy, next to the data grants.
        cfn_function = self.function.node.default_child
        if not isinstance(cfn_function, lambda_.CfnFunction):
            raise TypeError(f"unexpected default child {cfn_function!r}")
        cfn_function.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
        self.function.node.add_dependency(self.xray_policy)

        for logical_id, access in spec.tables.items():
            _grant_table(tables[logical_id], access, self.role)
        for logical_id, access in spec.buckets.items():
            _grant_bucket(buckets[logical_id], access, self.role)
        for logical_id, access in spec.keys.items():
            _grant_key(keys[logical_id], access, self.role)
            if access is platform.Access.SIGN:
                Tags.of(self.role).add(platform.signer_tag(logical_id), "true")
        for logical_id in spec.buses:
            buses[logical_id].grant_put_events_to(self.role)
        for grant in spec.grants:
            for statement in grants.statements(self, spec, grant, targets):
                self.role.add_to_policy(statement)
        for statement in invoke_statements:
            self.role.add_to_policy(statement)


def _grant_table(table: dynamodb.ITable, access: platform.Access, role: iam.IRole) -> None:
    if access is platform.Access.READ:
        table.grant_read_data(role)
    elif access is platform.Access.READ_WRITE:
        table.grant_read_write_data(role)
    else:
        raise ValueError(f"unsupported table access {access!r}")


def _grant_bucket(bucket: s3.IBucket, access: platform.Access, role: iam.IRole) -> None:
    if access is platform.Access.READ:
        bucket.grant_read(role)
    elif access is platform.Access.READ_WRITE:
        bucket.grant_read_write(role)
    elif access is platform.Access.WRITE:
        if bucket.encryption_key is None:
            raise ValueError(f"{bucket.node.path}: WRITE needs the bucket's key")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(BUCKET_WRITE_ACTIONS), resources=[bucket.arn_for_objects("*")]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=list(BUCKET_LIST_ACTIONS), resources=[bucket.bucket_arn])
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["kms:GenerateDataKey"],
                resources=[bucket.encryption_key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
            )
        )
    elif access is platform.Access.EXPIRE:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(BUCKET_EXPIRE_ACTIONS), resources=[bucket.arn_for_objects("*")]
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=list(BUCKET_VERSION_LIST_ACTIONS), resources=[bucket.bucket_arn]
            )
        )
    else:
        raise ValueError(f"unsupported bucket access {access!r}")


def _grant_key(key: kms.IKey, access: platform.Access, role: iam.IRole) -> None:
    if access not in KEY_ACTIONS:
        raise ValueError(f"unsupported key access {access!r}")
    key.grant(role, *KEY_ACTIONS[access])
