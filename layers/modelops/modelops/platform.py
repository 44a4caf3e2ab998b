"""The one shared definition of the platform's resources.

The CDK stacks (``stacks/``) and the local cloud (``localcloud/``) both build what is
declared here: tables with their keys and indexes, buckets, and functions with the
resources they may touch and the API routes they serve. Neither keeps a second list that
could drift. Physical names are never written here: CloudFormation generates them in AWS,
the local cloud derives them from the logical id, and both hand them to functions through
the environment variables named here.

Stdlib only: this module is imported by CDK code, by the local cloud and (cheaply) by
handlers' configuration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Access(StrEnum):
    """What a function may do with a resource; CDK turns it into IAM grants."""

    READ = "read"
    READ_WRITE = "read_write"
    # Keys only: READ is kms:GetPublicKey (signatures are verified offline, never with
    # kms:Verify); SIGN is kms:Sign and kms:GetPublicKey.
    SIGN = "sign"
    # Buckets only: put objects (single PUTs whose SHA-256 S3 checks) and list them, never
    # read them (GetObjectAttributes and HeadObject are reads to IAM); through S3, the
    # bucket's key may encrypt but not decrypt.
    WRITE = "write"
    # HMAC keys only: kms:GenerateMac (the key never leaves KMS).
    MAC = "mac"
    # Buckets only: list object versions and delete them, never read them (the retention
    # job expiring raw personal data in escrow: the digests it records are the registry's).
    EXPIRE = "expire"


# SageMaker training jobs the platform creates are named TRAINING_JOB_PREFIX + job id, so
# IAM can name them by prefix; SageMaker writes their logs to TRAINING_LOG_GROUP.
TRAINING_JOB_PREFIX = "modelops-"
TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# SageMaker models, endpoint configs and endpoints the platform creates start with this.
SERVING_PREFIX = "modelops-"


class Grant(StrEnum):
    """Service permissions beyond tables, buckets, keys and buses; CDK turns each into
    least-privilege IAM statements (``stacks/constructs/grants.py``)."""

    # sagemaker:CreateTrainingJob/DescribeTrainingJob/StopTrainingJob/AddTags on the
    # platform's jobs (name prefix), iam:PassRole of TRAINING_ROLE to SageMaker only.
    TRAINING_JOBS = "training-jobs"
    # sagemaker:DescribeTrainingJob on the platform's jobs: read what a job produced.
    TRAINING_STATUS = "training-status"
    # ecr:DescribeImages: pin training image tags to digests.
    TRAINING_IMAGES = "training-images"
    # logs:DescribeLogStreams/GetLogEvents on SageMaker's training log group.
    TRAINING_LOGS = "training-logs"
    # states:StartExecution of the training state machine.
    TRAIN_WORKFLOW = "train-workflow"
    # states:DescribeExecution of the training state machine's executions.
    TRAIN_WORKFLOW_STATUS = "train-workflow-status"
    # SageMaker hosting on the platform's models, endpoint configs and endpoints (create,
    # describe, update, weights), Application Auto Scaling of their variants, and
    # iam:PassRole of TRAINING_ROLE (the models' execution role) to SageMaker only.
    SERVING = "serving"
    # cloudwatch:GetMetricStatistics (AWS/SageMaker per-variant metrics).
    SERVING_METRICS = "serving-metrics"
    # states:StartExecution of the deployment state machine.
    DEPLOY_WORKFLOW = "deploy-workflow"
    # sagemaker:DescribeEndpoint/DescribeEndpointConfig on the platform's endpoints: which
    # model each variant serves now (drift reads that variant's data capture).
    SERVING_STATUS = "serving-status"


@dataclass(frozen=True)
class IndexSpec:
    name: str
    partition_key: str
    sort_key: str


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    env_var: str
    partition_key: str
    sort_key: str | None = None
    indexes: tuple[IndexSpec, ...] = ()
    ttl_attribute: str | None = None


@dataclass(frozen=True)
class KeySpec:
    """A KMS key: the data key encrypts every table and bucket; asymmetric signing keys
    (private halves never leave KMS) sign statements, checkpoints and model bundles."""

    logical_id: str
    description: str
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    rotation: bool = True  # asymmetric keys cannot rotate automatically
    env_var: str | None = None  # how functions that may use the key learn its ARN
    # When set, only these functions (by name) may use the key: its policy denies its use
    # (``KEY_USE_ACTIONS``) to every other principal, whatever its IAM policies say.
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class BusSpec:
    """An EventBridge event bus: lifecycle and audit events go out on it (to Kernel,
    Finance, Resource Allocator); functions that may publish learn its name from
    ``env_var``."""

    logical_id: str
    env_var: str
    description: str = ""


@dataclass(frozen=True)
class LifecycleRule:
    rule_id: str
    prefix: str
    expire_days: int | None = None
    abort_multipart_days: int | None = None
    # Objects under the prefix move to ``storage_class`` this many days after creation.
    transition_days: int | None = None
    storage_class: str | None = None


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    env_var: str
    versioned: bool = True
    # (key prefix, days): objects under the prefix expire; incomplete multipart uploads
    # anywhere in the bucket are aborted after the shortest of these periods.
    expirations: tuple[tuple[str, int], ...] = ()
    # Object Lock default retention in days (WORM): compliance mode where the environment
    # asks for it (staging, prod), governance mode where it must be tearable (dev).
    object_lock_days: int | None = None
    # The KMS key (logical id) that encrypts its objects: the data key, unless the bucket
    # holds data that must stay apart (escrow has its own key).
    key: str = "DataKey"
    # When set, only these may read its objects: role logical ids (ROLES) and function names
    # (their execution roles). The bucket policy denies s3:GetObject, and the key policy
    # kms:Decrypt, to every other principal, whatever its IAM policies say
    # (``reader_statements``). Empty: IAM grants alone decide.
    readers: tuple[str, ...] = ()

    def lifecycle_rules(self) -> tuple[LifecycleRule, ...]:
        # The retention classes' rules on this bucket (RETENTION_CLASSES, one table for S3
        # and the retention job), after its own expirations.
        retention = tuple(
            rule
            for spec in RETENTION_CLASSES
            if spec.bucket == self.logical_id
            for rule in spec.lifecycle_rules()
        )
        if not self.expirations:
            return retention
        expiring = tuple(
            LifecycleRule(f"expire-{prefix.strip('/')}", prefix, expire_days=days)
            for prefix, days in self.expirations
        )
        shortest = min(days for _, days in self.expirations)
        return (
            *expiring,
            *retention,
            LifecycleRule("abort-incomplete-multipart", "", abort_multipart_days=shortest),
        )


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue between EventBridge rules and the one function that consumes it, with a
    dead-letter queue: an event its consumer fails ``max_receives`` times is kept there for
    inspection and replay instead of being lost."""

    logical_id: str
    description: str
    max_receives: int = 5
    # SQS redelivers a message not deleted within this; at least 6x the consumer's timeout.
    visibility_timeout_s: int = 1800


@dataclass(frozen=True)
class EventRuleSpec:
    """An EventBridge rule sending matching events to a queue. ``bus`` is one of BUSES
    (logical id), or None for the account's default bus (AWS service events such as
    CloudWatch alarm state changes)."""

    logical_id: str
    description: str
    bus: str | None
    pattern: Mapping[str, Any]
    queue: str


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function. ``handler`` is relative to ``functions/`` (the code asset root)."""

    name: str
    handler: str
    description: str
    tables: dict[str, Access] = field(default_factory=dict)
    buckets: dict[str, Access] = field(default_factory=dict)
    # Buckets (logical ids) whose names it learns without any access: to name them to a
    # service that acts with its own role (a SageMaker job reading escrow).
    bucket_names: tuple[str, ...] = ()
    # Top-level API path segments routed to this function ("models" -> /models, /models/...).
    api_routes: tuple[str, ...] = ()
    # KMS keys by logical id (Access.READ or Access.SIGN) and event buses it may publish to.
    keys: dict[str, Access] = field(default_factory=dict)
    buses: tuple[str, ...] = ()
    # An EventBridge schedule expression ("rate(15 minutes)") that invokes the function.
    schedule: str | None = None
    grants: tuple[Grant, ...] = ()
    # Deployment parameters (PARAMETERS) the function reads, by environment variable name.
    parameters: tuple[str, ...] = ()
    # The queue (QueueSpec logical id) whose messages invoke the function (batches of up to
    # 10, partial batch failures reported so only failed messages are retried).
    queue: str | None = None
    # Functions it invokes asynchronously (lambda:InvokeFunction), by name; each one's name
    # reaches it in ``invoke_env_var(name)``.
    invokes: tuple[str, ...] = ()
    memory_mb: int = 512
    timeout_s: int = 29


REGISTRY_TABLE = TableSpec(
    logical_id="RegistryTable",
    env_var="REGISTRY_TABLE",
    partition_key="pk",
    sort_key="sk",
    indexes=(IndexSpec(name="gsi1", partition_key="gsi1pk", sort_key="gsi1sk"),),
)

IDEMPOTENCY_TABLE = TableSpec(
    logical_id="IdempotencyTable",
    env_var="IDEMPOTENCY_TABLE",
    partition_key="id",
    ttl_attribute="expiration",
)

ARTIFACT_BUCKET = BucketSpec(
    logical_id="ArtifactBucket",
    env_var="ARTIFACT_BUCKET",
    expirations=(("staging/", 1),),  # uploads are verified then copied to blobs/sha256/
)


# Retention, per class of stored object: the ONE table both the artifact bucket's S3
# lifecycle rules (CDK, the local cloud) and the retention job (modelops.services.retention)
# read, so they cannot disagree. S3 acts on key prefixes alone (transitions, and expiry only
# where no record depends on the objects: captured inference data); everything the registry
# records (checkpoints, datasets) is expired by the job, which first leaves a tombstone in a
# signed ledger checkpoint, honours legal holds and never touches a prod model's lineage.
# Content-addressed blobs (blobs/sha256/) are shared between artifacts and never expired by
# S3. Logs: CloudWatch Logs retention, per environment (cdk.json ``logRetention``).
ARCHIVE_STORAGE_CLASS = "GLACIER_IR"  # archive storage that still serves GETs at once


@dataclass(frozen=True)
class RetentionClass:
    name: str
    description: str
    bucket: str = "ArtifactBucket"
    # Key prefixes S3 lifecycle rules act on (empty: none; the records' objects live in
    # shared blobs and are expired by the job alone).
    prefixes: tuple[str, ...] = ()
    # Days after creation at which S3 moves the prefixes' objects to ``storage_class``.
    archive_after_days: int | None = None
    storage_class: str = ARCHIVE_STORAGE_CLASS
    # Days after which the class expires: S3 deletes the prefixes' objects (``prefixes``
    # set), or the retention job expires the records (``prefixes`` empty), counted from the
    # record's own clock (a job's end). None: never, or per record (datasets' retentionDays).
    expire_after_days: int | None = None

    def lifecycle_rules(self) -> tuple[LifecycleRule, ...]:
        return tuple(
            LifecycleRule(
                f"retention-{self.name}-{index}",
                prefix,
                expire_days=self.expire_after_days,
                transition_days=self.archive_after_days,
                storage_class=self.storage_class if self.archive_after_days else None,
            )
            for index, prefix in enumerate(self.prefixes)
        )


RETENTION_CHECKPOINTS = RetentionClass(
    name="checkpoints",
    description="Training checkpoints: expired by the retention job 30 days after their job "
    "ended, unless held.",
    expire_after_days=30,
)
RETENTION_DATASETS = RetentionClass(
    name="datasets",
    description="Datasets: expired by the retention job when their retentionDays pass, unless "
    "held or in the lineage of a model that is or was in prod.",
)
RETENTION_ARTIFACTS = RetentionClass(
    name="artifacts",
    description="Content-addressed files of every artifact (model artifacts never expire): "
    "archived after 90 days; deleted only by the retention job with a record's tombstone.",
    prefixes=("blobs/sha256/",),
    archive_after_days=90,
)
RETENTION_TRAINING_FILES = RetentionClass(
    name="training-files",
    description="Training jobs' working files (source archives, outputs, checkpoint syncs): "
    "archived after 90 days; a job's checkpoint sync is deleted with its checkpoints.",
    prefixes=("training/",),
    archive_after_days=90,
)
RETENTION_CAPTURE = RetentionClass(
    name="captured-data",
    description="Captured inference data (SageMaker data capture): archived after 30 days, "
    "expired by S3 after 365.",
    prefixes=("capture/",),
    archive_after_days=30,
    expire_after_days=365,
)
RETENTION_CLASSES: tuple[RetentionClass, ...] = (
    RETENTION_CHECKPOINTS,
    RETENTION_DATASETS,
    RETENTION_ARTIFACTS,
    RETENTION_TRAINING_FILES,
    RETENTION_CAPTURE,
)

DATA_KEY = KeySpec(
    logical_id="DataKey",
    description="Encrypts the ModelOps registry tables and data buckets.",
)

SIGNING_KEY = KeySpec(
    logical_id="SigningKey",
    description="Ed25519 (ED25519_SHA_512, RAW): promotion statements and ledger checkpoints.",
    key_spec="ECC_NIST_EDWARDS25519",
    key_usage="SIGN_VERIFY",
    rotation=False,
    env_var="SIGNING_KEY_ARN",
)

MODEL_SIGNING_KEY = KeySpec(
    logical_id="ModelSigningKey",
    description="P-256 (ECDSA_SHA_256, DIGEST): OpenSSF model-signing bundles.",
    key_spec="ECC_NIST_P256",
    key_usage="SIGN_VERIFY",
    rotation=False,
    env_var="MODEL_SIGNING_KEY_ARN",
)

SANITIZER_FUNCTION = "dataset-sanitizer"
ESCROW_KEY = KeySpec(
    logical_id="EscrowKey",
    description="Encrypts raw PII datasets in escrow; only escrow readers may decrypt.",
)
PSEUDONYM_KEY = KeySpec(
    logical_id="PseudonymKey",
    description="HMAC-SHA-256 (GenerateMac): keyed pseudonyms of identifiers in sanitized data.",
    key_spec="HMAC_256",
    key_usage="GENERATE_VERIFY_MAC",
    rotation=False,  # HMAC keys cannot rotate automatically; a new key is a new scope
    env_var="PSEUDONYM_KEY_ARN",
    # Whoever may GenerateMac can pseudonymise a guessed e-mail address and find its rows.
    users=(SANITIZER_FUNCTION,),
)
REGISTER_OUTPUTS_FUNCTION = "train-register-outputs"
REGISTRY_API_FUNCTION = "registry-api"
WATERMARK_KEY = KeySpec(
    logical_id="WatermarkKey",
    description="HMAC-SHA-256 (GenerateMac): seeds of model watermarks (docs/watermarking.md).",
    key_spec="HMAC_256",
    key_usage="GENERATE_VERIFY_MAC",
    rotation=False,  # a new key is a new key: records name the key that marked each version
    env_var="WATERMARK_KEY_ARN",
    # Whoever may GenerateMac can compute a version's pattern: forge or strip its mark.
    users=(REGISTER_OUTPUTS_FUNCTION, REGISTRY_API_FUNCTION),
)
KEYS: tuple[KeySpec, ...] = (
    DATA_KEY,
    SIGNING_KEY,
    MODEL_SIGNING_KEY,
    ESCROW_KEY,
    PSEUDONYM_KEY,
    WATERMARK_KEY,
)
# The audit ledger: one hash chain per stream, seq zero-padded so items sort by it;
# checkpoints live under pk "CHECKPOINT#<stream>".
LEDGER_TABLE = TableSpec(
    logical_id="LedgerTable",
    env_var="LEDGER_TABLE",
    partition_key="stream",
    sort_key="seq",
)

# Signed ledger checkpoints, write-once.
AUDIT_BUCKET = BucketSpec(
    logical_id="AuditBucket",
    env_var="AUDIT_BUCKET",
    object_lock_days=3650,
)

# Raw datasets flagged as personal data (PII), apart from everything else: its own key, and
# readable only by the break-glass role, the sanitizer that derives sanitized datasets from
# them, and jobs an approver allowed to use a raw PII dataset (RAW_PII_JOB_ROLE). Uploads
# land here directly (presigned PUTs whose SHA-256 S3 checks); nothing copies them out.
ESCROW_BUCKET = BucketSpec(
    logical_id="EscrowBucket",
    env_var="ESCROW_BUCKET",
    key=ESCROW_KEY.logical_id,
    readers=("BreakGlassRole", "RawPiiJobRole", SANITIZER_FUNCTION),
)

TABLES: tuple[TableSpec, ...] = (REGISTRY_TABLE, IDEMPOTENCY_TABLE, LEDGER_TABLE)
BUCKETS: tuple[BucketSpec, ...] = (ARTIFACT_BUCKET, AUDIT_BUCKET, ESCROW_BUCKET)


# What using a key means, by its usage, for ``KeySpec.users``.
KEY_USE_ACTIONS = {
    "GENERATE_VERIFY_MAC": ("kms:GenerateMac", "kms:VerifyMac"),
    "ENCRYPT_DECRYPT": ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"),
    "SIGN_VERIFY": ("kms:Sign",),
}


def deny_all_but(
    sid: str, actions: Sequence[str], resource: str, principal_arns: Sequence[str]
) -> dict[str, Any]:
    """A resource-policy statement denying ``actions`` on ``resource`` to every principal
    but ``principal_arns`` (role ARNs; aws:PrincipalArn of a role session is its role's
    ARN). IAM policy JSON, shared by CDK and the local cloud."""
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": list(actions),
        "Resource": resource,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": sorted(principal_arns)}},
    }


def reader_statements(
    bucket_arn: str, reader_arns: Sequence[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """For a bucket with ``readers``: the bucket-policy statement and the key-policy
    statement that deny reading its objects (s3:GetObject*) and decrypting with its key
    (kms:Decrypt) to every principal but ``reader_arns``."""
    return (
        deny_all_but(
            "OnlyEscrowReadersMayRead",
            ("s3:GetObject", "s3:GetObjectVersion"),
            f"{bucket_arn}/*",
            reader_arns,
        ),
        deny_all_but("OnlyEscrowReadersMayDecrypt", ("kms:Decrypt",), "*", reader_arns),
    )


def key_user_statement(spec: KeySpec, user_arns: Sequence[str]) -> dict[str, Any]:
    """For a key with ``users``: the key-policy statement denying its use to all others."""
    return deny_all_but("OnlyKeyUsersMayUseIt", KEY_USE_ACTIONS[spec.key_usage], "*", user_arns)


EVENT_BUS = BusSpec(
    logical_id="EventBus",
    env_var="EVENT_BUS_NAME",
    description="ModelOps events out: audit events and checkpoints (source illuvrse.modelops).",
)
BUSES: tuple[BusSpec, ...] = (EVENT_BUS,)

# What every function that appends to the audit ledger holds (see modelops.services.audit).
LEDGER_WRITER_TABLES = {LEDGER_TABLE.logical_id: Access.READ_WRITE}
LEDGER_WRITER_BUCKETS = {AUDIT_BUCKET.logical_id: Access.READ_WRITE}
LEDGER_WRITER_KEYS = {SIGNING_KEY.logical_id: Access.SIGN}

REGISTRY_API = FunctionSpec(
    name=REGISTRY_API_FUNCTION,
    handler="registry_api.handler.handler",
    description="Artifacts, datasets, models and lineage: the registry's REST API.",
    tables={
        REGISTRY_TABLE.logical_id: Access.READ_WRITE,
        IDEMPOTENCY_TABLE.logical_id: Access.READ_WRITE,
        **LEDGER_WRITER_TABLES,
    },
    # Escrow: presigns the uploads of raw PII and lists what arrived, never reads them.
    buckets={
        ARTIFACT_BUCKET.logical_id: Access.READ_WRITE,
        ESCROW_BUCKET.logical_id: Access.WRITE,
        **LEDGER_WRITER_BUCKETS,
    },
    # + the P-256 key: promotions sign an OpenSSF model-signing bundle of the artifact;
    # + the watermark key: POST /models/{id}/watermark/verify recomputes versions' seeds
    keys={
        **LEDGER_WRITER_KEYS,
        MODEL_SIGNING_KEY.logical_id: Access.SIGN,
        WATERMARK_KEY.logical_id: Access.MAC,
    },
    buses=(EVENT_BUS.logical_id,),
    api_routes=("artifact", "dataset", "models", "approvers", "retention", "legal-holds"),
    invokes=(SANITIZER_FUNCTION,),
    memory_mb=1024,
)

# Reads a raw PII dataset from escrow, sanitizes it (modelops.domain.sanitize) with keyed
# pseudonyms from the HMAC key, stores the derivative as an artifact and registers it with
# lineage to the raw dataset. Invoked asynchronously by the registry API.
DATASET_SANITIZER = FunctionSpec(
    name=SANITIZER_FUNCTION,
    handler="registry_tasks.sanitize.handler",
    description="Sanitizes a raw PII dataset in escrow into a registered derivative dataset.",
    tables={REGISTRY_TABLE.logical_id: Access.READ_WRITE, **LEDGER_WRITER_TABLES},
    buckets={
        ESCROW_BUCKET.logical_id: Access.READ,
        ARTIFACT_BUCKET.logical_id: Access.READ_WRITE,
        **LEDGER_WRITER_BUCKETS,
    },
    keys={**LEDGER_WRITER_KEYS, PSEUDONYM_KEY.logical_id: Access.MAC},
    buses=(EVENT_BUS.logical_id,),
    timeout_s=900,
    memory_mb=2048,
)

AUDIT_API = FunctionSpec(
    name="audit-api",
    handler="audit_api.handler.handler",
    description="The audit ledger's REST API: verify, export, public keys, checkpoints.",
    tables={IDEMPOTENCY_TABLE.logical_id: Access.READ_WRITE, **LEDGER_WRITER_TABLES},
    buckets=dict(LEDGER_WRITER_BUCKETS),
    keys=dict(LEDGER_WRITER_KEYS),
    buses=(EVENT_BUS.logical_id,),
    api_routes=("audit",),
    memory_mb=1024,
)

# Signs a checkpoint over every stream's uncheckpointed records, every 15 minutes (the
# ledger also checkpoints every 100 records as they are appended).
AUDIT_CHECKPOINTS = FunctionSpec(
    name="audit-checkpoints",
    handler="audit_tasks.checkpoint_streams.handler",
    description="Signs a checkpoint over each audit stream's uncheckpointed records.",
    tables=dict(LEDGER_WRITER_TABLES),
    buckets=dict(LEDGER_WRITER_BUCKETS),
    keys=dict(LEDGER_WRITER_KEYS),
    buses=(EVENT_BUS.logical_id,),
    schedule="rate(15 minutes)",
    timeout_s=300,
)

# The retention job (RETENTION_CLASSES): daily, tombstones then deletes what is past its
# period. The registry (records, holds, tombstones), the artifact bucket (deletes), the
# ledger (tombstones are audit events in signed checkpoints). POST /retention/run (registry
# API) runs the same job on request.
RETENTION_RUN = FunctionSpec(
    name="retention-run",
    handler="retention_tasks.run_retention.handler",
    description="Expires records past their retention period, leaving signed tombstones.",
    tables={REGISTRY_TABLE.logical_id: Access.READ_WRITE, **LEDGER_WRITER_TABLES},
    buckets={
        ARTIFACT_BUCKET.logical_id: Access.READ_WRITE,
        ESCROW_BUCKET.logical_id: Access.EXPIRE,  # raw personal data past its retention
        **LEDGER_WRITER_BUCKETS,
    },
    keys=dict(LEDGER_WRITER_KEYS),
    buses=(EVENT_BUS.logical_id,),
    schedule="rate(1 day)",
    timeout_s=900,
)


@dataclass(frozen=True)
class RoleSpec:
    """An IAM role a service assumes on the platform's behalf (not a function's role)."""

    logical_id: str
    env_var: str
    # The service principal that assumes it; None: people of this account, with MFA, for
    # at most an hour (break-glass).
    service: str | None
    description: str
    buckets: dict[str, Access] = field(default_factory=dict)
    keys: dict[str, Access] = field(default_factory=dict)


# SageMaker's execution role for training jobs: reads inputs and source archives, writes
# outputs and checkpoints, in the artifact bucket only; writes its own logs.
TRAINING_ROLE = RoleSpec(
    logical_id="TrainingRole",
    env_var="TRAINING_ROLE_ARN",
    service="sagemaker.amazonaws.com",
    description="SageMaker training jobs of the ModelOps platform.",
    buckets={ARTIFACT_BUCKET.logical_id: Access.READ_WRITE},
    keys={DATA_KEY.logical_id: Access.READ_WRITE},
)
# The execution role of jobs whose datasets include a raw PII dataset an approver allowed
# for the job's purpose and period: the training role's access plus reading escrow. The
# platform passes it only for such jobs; every other job, evaluation and endpoint runs as
# TRAINING_ROLE, which the escrow bucket's policy refuses.
RAW_PII_JOB_ROLE = RoleSpec(
    logical_id="RawPiiJobRole",
    env_var="RAW_PII_JOB_ROLE_ARN",
    service="sagemaker.amazonaws.com",
    description="SageMaker jobs approved to read a raw PII dataset in escrow.",
    buckets={ARTIFACT_BUCKET.logical_id: Access.READ_WRITE, ESCROW_BUCKET.logical_id: Access.READ},
    keys={DATA_KEY.logical_id: Access.READ_WRITE, ESCROW_KEY.logical_id: Access.READ},
)
# People reading raw PII in escrow, under break-glass: assumed with MFA for an hour at most;
# CloudTrail data events record every object read and the key's decrypts.
BREAK_GLASS_ROLE = RoleSpec(
    logical_id="BreakGlassRole",
    env_var="BREAK_GLASS_ROLE_ARN",
    service=None,
    description="Break-glass reads of raw PII in escrow (MFA, one hour, every read logged).",
    buckets={ESCROW_BUCKET.logical_id: Access.READ},
    keys={ESCROW_KEY.logical_id: Access.READ},
)
ROLES: tuple[RoleSpec, ...] = (TRAINING_ROLE, RAW_PII_JOB_ROLE, BREAK_GLASS_ROLE)

# Deployment parameters: environment variable -> meaning. cdk.json sets them per
# environment; the local cloud sets its own.
TRAINING_IMAGE_PARAMETER = "TRAINING_IMAGE_URI"
TRAINING_POLL_PARAMETER = "TRAINING_POLL_SECONDS"
COMPUTE_POOLS_PARAMETER = "COMPUTE_POOLS"
TEAM_BINDINGS_PARAMETER = "TEAM_BINDINGS"
PARAMETERS = {
    TRAINING_IMAGE_PARAMETER: "Default training image (ECR URI with a tag or digest).",
    TRAINING_POLL_PARAMETER: "Seconds between DescribeTrainingJob polls of the workflow.",
    COMPUTE_POOLS_PARAMETER: "Compute pools as JSON: regions, instance types, quotas, rates.",
    TEAM_BINDINGS_PARAMETER: "Principal ARN pattern -> team, as JSON (quota accounting).",
}
_POOL_PARAMETERS = (COMPUTE_POOLS_PARAMETER, TEAM_BINDINGS_PARAMETER)


@dataclass(frozen=True)
class StateMachineSpec:
    """A Step Functions state machine: ``statemachines/<definition>``, whose
    ``${<Pascal name>FunctionArn}`` placeholders name the ``tasks`` it invokes and
    ``${<role logical id>Arn}`` the roles it passes. Functions that start it learn its ARN
    from ``env_var``."""

    logical_id: str
    definition: str
    env_var: str
    tasks: tuple[str, ...]
    timeout_s: int


TRAINING_TASKS = (
    "train-validate-job",
    "train-check-policy",
    "train-request-compute",
    "train-start-job",
    "train-register-outputs",
    "train-fail-job",
    "train-record-usage",
    "train-release-compute",
)

TRAIN_STATE_MACHINE = StateMachineSpec(
    logical_id="TrainModel",
    definition="train_model.asl.json",
    env_var="TRAIN_STATE_MACHINE_ARN",
    tasks=TRAINING_TASKS,
    timeout_s=30 * 24 * 3600,  # spot jobs may wait up to twice the 28-day runtime limit
)
DEPLOY_TASKS = (
    "deploy-create",
    "deploy-analyse",
    "deploy-promote",
    "deploy-rollback",
    "deploy-fail",
)

DEPLOY_STATE_MACHINE = StateMachineSpec(
    logical_id="DeployModel",
    definition="deploy_model.asl.json",
    env_var="DEPLOY_STATE_MACHINE_ARN",
    tasks=DEPLOY_TASKS,
    timeout_s=24 * 3600,
)
STATE_MACHINES: tuple[StateMachineSpec, ...] = (TRAIN_STATE_MACHINE, DEPLOY_STATE_MACHINE)


def placeholder(function_name: str) -> str:
    """ASL placeholder of a function's ARN: ``train-fail-job`` -> ``TrainFailJobFunctionArn``."""
    return "".join(part.capitalize() for part in function_name.split("-")) + "FunctionArn"


# What every training function holds: the registry (jobs, datasets, models), the ledger
# (status changes are audited) and the bus (status changes go out as events).
_TRAINING_ACCESS: dict[str, Any] = {
    "tables": {REGISTRY_TABLE.logical_id: Access.READ_WRITE, **LEDGER_WRITER_TABLES},
    "keys": dict(LEDGER_WRITER_KEYS),
    "buses": (EVENT_BUS.logical_id,),
}
_ARTIFACTS_READ = {ARTIFACT_BUCKET.logical_id: Access.READ, **LEDGER_WRITER_BUCKETS}
_ARTIFACTS_WRITE = {ARTIFACT_BUCKET.logical_id: Access.READ_WRITE, **LEDGER_WRITER_BUCKETS}


def _training_task(
    name: str,
    description: str,
    *,
    buckets: dict[str, Access],
    grants: tuple[Grant, ...] = (),
    parameters: tuple[str, ...] = (),
    timeout_s: int = 60,
    memory_mb: int = 512,
    schedule: str | None = None,
    bucket_names: tuple[str, ...] = (),
    keys: dict[str, Access] | None = None,
) -> FunctionSpec:
    module = name.removeprefix("train-").replace("-", "_")
    return FunctionSpec(
        name=name,
        handler=f"training_tasks.{module}.handler",
        description=description,
        buckets=buckets,
        bucket_names=bucket_names,
        grants=grants,
        parameters=(*parameters, *_POOL_PARAMETERS),
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        schedule=schedule,
        **{**_TRAINING_ACCESS, "keys": {**_TRAINING_ACCESS["keys"], **(keys or {})}},
    )


TRAINING_API = FunctionSpec(
    name="training-api",
    handler="training_api.handler.handler",
    description="Training and evaluation jobs: submit, inspect, cancel, reproduce, retrain.",
    tables={
        REGISTRY_TABLE.logical_id: Access.READ_WRITE,
        IDEMPOTENCY_TABLE.logical_id: Access.READ_WRITE,
        **LEDGER_WRITER_TABLES,
    },
    buckets=_ARTIFACTS_READ,
    keys=dict(LEDGER_WRITER_KEYS),
    buses=(EVENT_BUS.logical_id,),
    api_routes=("train", "eval"),
    # + the training log group: GET /train/jobs/{id}/metrics reads the per-epoch lines
    grants=(Grant.TRAIN_WORKFLOW, Grant.TRAINING_IMAGES, Grant.TRAINING_JOBS, Grant.TRAINING_LOGS),
    parameters=(TRAINING_IMAGE_PARAMETER, TRAINING_POLL_PARAMETER, *_POOL_PARAMETERS),
    memory_mb=1024,
)

COMPUTE_API = FunctionSpec(
    name="compute-api",
    handler="compute_api.handler.handler",
    description="Compute pools with their usage, and chargeback cost reports.",
    tables={REGISTRY_TABLE.logical_id: Access.READ},
    api_routes=("compute", "cost"),
    parameters=_POOL_PARAMETERS,
)

# Releases what leaked: reservations of jobs that ended, or whose workflow ended without
# ending them (a crashed or stopped execution), or that admission never recorded.
COMPUTE_RECONCILE = _training_task(
    "train-reconcile",
    "Releases compute reservations that no running training job holds any more.",
    buckets=_ARTIFACTS_WRITE,
    grants=(Grant.TRAINING_STATUS, Grant.TRAINING_LOGS, Grant.TRAIN_WORKFLOW_STATUS),
    timeout_s=300,
    schedule="rate(5 minutes)",
)

TRAINING_FUNCTIONS: tuple[FunctionSpec, ...] = (
    _training_task(
        "train-validate-job",
        "Training step: re-validate the job's inputs against what was admitted.",
        buckets=_ARTIFACTS_READ,
        grants=(Grant.TRAINING_IMAGES,),
        parameters=(TRAINING_IMAGE_PARAMETER,),
    ),
    _training_task(
        "train-check-policy",
        "Training step: SentinelNet pre-train policy check (PII approval, licences).",
        buckets=_ARTIFACTS_READ,
        grants=(Grant.TRAINING_IMAGES,),
        parameters=(TRAINING_IMAGE_PARAMETER,),
    ),
    _training_task(
        "train-request-compute",
        "Training step: request compute from the job's pool.",
        buckets=dict(LEDGER_WRITER_BUCKETS),
    ),
    _training_task(
        "train-start-job",
        "Training step: stage inputs and create the SageMaker training job.",
        buckets=_ARTIFACTS_WRITE,
        bucket_names=(ESCROW_BUCKET.logical_id,),  # approved raw-PII jobs read it in place
        grants=(Grant.TRAINING_JOBS,),
        timeout_s=300,
    ),
    _training_task(
        REGISTER_OUTPUTS_FUNCTION,
        "Training step: hash and register outputs and checkpoints, watermark and register "
        "the model.",
        buckets=_ARTIFACTS_WRITE,
        grants=(Grant.TRAINING_STATUS,),
        keys={WATERMARK_KEY.logical_id: Access.MAC},
        timeout_s=900,
        memory_mb=2048,
    ),
    _training_task(
        "train-fail-job",
        "Training step (compensation): record the failure, its log tail and checkpoints.",
        buckets=_ARTIFACTS_WRITE,
        grants=(Grant.TRAINING_STATUS, Grant.TRAINING_LOGS),
        timeout_s=300,
    ),
    _training_task(
        "train-record-usage",
        "Training step: account the job's usage and publish it.",
        buckets=dict(LEDGER_WRITER_BUCKETS),
    ),
    _training_task(
        "train-release-compute",
        "Training step: release the job's compute grant.",
        buckets=dict(LEDGER_WRITER_BUCKETS),
    ),
)

# Deployments: the registry (records), the ledger (status changes and canary decisions are
# audited), the bus, the artifact bucket (model archives, data capture) and the signing
# key's public half (the gate verifies promotion signatures).
_SERVING_ACCESS: dict[str, Any] = {
    "tables": {REGISTRY_TABLE.logical_id: Access.READ_WRITE, **LEDGER_WRITER_TABLES},
    "buckets": {ARTIFACT_BUCKET.logical_id: Access.READ_WRITE, **LEDGER_WRITER_BUCKETS},
    "keys": dict(LEDGER_WRITER_KEYS),
    "buses": (EVENT_BUS.logical_id,),
    "parameters": (TRAINING_IMAGE_PARAMETER, TRAINING_POLL_PARAMETER),
}


def _deploy_task(name: str, description: str, grants: tuple[Grant, ...]) -> FunctionSpec:
    module = name.replace("-", "_")
    return FunctionSpec(
        name=name,
        handler=f"serving_tasks.{module}.handler",
        description=description,
        grants=grants,
        timeout_s=300,
        memory_mb=1024,
        **_SERVING_ACCESS,
    )


SERVING_API = FunctionSpec(
    name="serving-api",
    handler="serving_api.handler.handler",
    description="Deployments: deploy (verified), inspect, scale, roll back.",
    api_routes=("serve",),
    grants=(Grant.DEPLOY_WORKFLOW, Grant.SERVING),
    memory_mb=1024,
    tables={
        REGISTRY_TABLE.logical_id: Access.READ_WRITE,
        IDEMPOTENCY_TABLE.logical_id: Access.READ_WRITE,
        **LEDGER_WRITER_TABLES,
    },
    buckets={ARTIFACT_BUCKET.logical_id: Access.READ_WRITE, **LEDGER_WRITER_BUCKETS},
    keys=dict(LEDGER_WRITER_KEYS),
    buses=(EVENT_BUS.logical_id,),
    parameters=(TRAINING_IMAGE_PARAMETER, TRAINING_POLL_PARAMETER),
)

SERVING_FUNCTIONS: tuple[FunctionSpec, ...] = (
    _deploy_task(
        "deploy-create",
        "Deployment step: verify, build model archives, create models, config, endpoint.",
        (Grant.SERVING,),
    ),
    _deploy_task(
        "deploy-analyse",
        "Deployment step: canary analysis (errors, p95 latency, prediction divergence).",
        (Grant.SERVING_METRICS,),
    ),
    _deploy_task(
        "deploy-promote", "Deployment step: the canary's next traffic step.", (Grant.SERVING,)
    ),
    _deploy_task(
        "deploy-rollback", "Deployment step: all traffic back to the baseline.", (Grant.SERVING,)
    ),
    _deploy_task(
        "deploy-fail",
        "Deployment step (compensation): restore the baseline, record why.",
        (Grant.SERVING,),
    ),
)

# Drift: baselines, monitoring of data capture, alerts and their remediation. The registry
# (baselines, findings, alerts, proposals, quarantines, labels), the artifact bucket
# (datasets and data capture read; statistics, constraints and summaries written), the
# ledger, the bus (DriftDetected) and the signing key (retrain proposals are signed).
_DRIFT_ACCESS: dict[str, Any] = {
    "tables": {REGISTRY_TABLE.logical_id: Access.READ_WRITE, **LEDGER_WRITER_TABLES},
    "buckets": {ARTIFACT_BUCKET.logical_id: Access.READ_WRITE, **LEDGER_WRITER_BUCKETS},
    "keys": dict(LEDGER_WRITER_KEYS),
    "buses": (EVENT_BUS.logical_id,),
    "parameters": _POOL_PARAMETERS,  # retrain proposals estimate GPU-hours and cost
}
DRIFT_BASELINE_QUEUE = QueueSpec(
    logical_id="DriftBaselineQueue",
    description="Trained models whose drift baseline is to be computed.",
)
DRIFT_ALERT_QUEUE = QueueSpec(
    logical_id="DriftAlertQueue",
    description="DriftDetected events and drift alarm state changes, for the alert handler.",
)
QUEUES: tuple[QueueSpec, ...] = (DRIFT_BASELINE_QUEUE, DRIFT_ALERT_QUEUE)

# The detail-types and alarm names the drift rules match (the publishers use these).
TRAINING_STATE_CHANGE = "Training Job State Change"
DRIFT_DETECTED = "Drift Detected"
DRIFT_ALARM_PREFIX = "modelops-drift-"
# What the drift monitor emits (EMF, namespace METRICS_NAMESPACE): per model version and
# feature, the value of the feature's constraint metric (dimensions model, feature); per
# model version, how many features are at alarm (dimension model); and over every model,
# the features at alarm in one run (dimension service only), which CDK's drift alarm
# watches: alarms cannot be declared per model ahead of time, the models come later.
DRIFT_SCORE_METRIC = "DriftScore"
DRIFTED_FEATURES_METRIC = "DriftedFeatures"
DRIFT_ALARM_METRIC = "DriftAlarmFeatures"
EVENT_SOURCE = "illuvrse.modelops"
EVENT_RULES: tuple[EventRuleSpec, ...] = (
    EventRuleSpec(
        logical_id="ModelTrainedRule",
        description="A training job registered a model: compute its drift baseline.",
        bus=EVENT_BUS.logical_id,
        pattern={
            "source": [EVENT_SOURCE],
            "detail-type": [TRAINING_STATE_CHANGE],
            "detail": {"status": ["COMPLETED"], "purpose": ["train"]},
        },
        queue=DRIFT_BASELINE_QUEUE.logical_id,
    ),
    EventRuleSpec(
        logical_id="DriftDetectedRule",
        description="The drift monitor found features past their alarm threshold.",
        bus=EVENT_BUS.logical_id,
        pattern={"source": [EVENT_SOURCE], "detail-type": [DRIFT_DETECTED]},
        queue=DRIFT_ALERT_QUEUE.logical_id,
    ),
    EventRuleSpec(
        logical_id="DriftAlarmRule",
        description="A drift CloudWatch alarm went into ALARM.",
        bus=None,
        pattern={
            "source": ["aws.cloudwatch"],
            "detail-type": ["CloudWatch Alarm State Change"],
            "detail": {
                "alarmName": [{"prefix": DRIFT_ALARM_PREFIX}],
                "state": {"value": ["ALARM"]},
            },
        },
        queue=DRIFT_ALERT_QUEUE.logical_id,
    ),
)

DRIFT_BASELINE = FunctionSpec(
    name="drift-baseline",
    handler="drift_tasks.baseline.handler",
    description="Computes a model version's drift baseline (statistics and constraints).",
    queue=DRIFT_BASELINE_QUEUE.logical_id,
    timeout_s=300,
    memory_mb=2048,
    **_DRIFT_ACCESS,
)
DRIFT_MONITOR = FunctionSpec(
    name="drift-monitor",
    handler="drift_tasks.monitor.handler",
    description="Summarises data capture per hour and compares windows with the baseline.",
    schedule="rate(1 hour)",
    grants=(Grant.SERVING_STATUS,),
    timeout_s=900,
    memory_mb=2048,
    **_DRIFT_ACCESS,
)
DRIFT_ALERTS = FunctionSpec(
    name="drift-alerts",
    handler="drift_tasks.alerts.handler",
    description="Records drift alerts and their remediation (retrain proposal, quarantine).",
    queue=DRIFT_ALERT_QUEUE.logical_id,
    grants=(Grant.SERVING_STATUS,),
    timeout_s=120,
    **_DRIFT_ACCESS,
)
DRIFT_API = FunctionSpec(
    name="drift-api",
    handler="drift_api.handler.handler",
    description="Drift: baselines, findings, labels, alerts, retrain proposals, quarantine.",
    api_routes=("drift",),
    invokes=(DRIFT_BASELINE.name, DRIFT_MONITOR.name),
    memory_mb=1024,
    **{
        **_DRIFT_ACCESS,
        "tables": {
            **_DRIFT_ACCESS["tables"],
            IDEMPOTENCY_TABLE.logical_id: Access.READ_WRITE,
        },
    },
)
DRIFT_FUNCTIONS: tuple[FunctionSpec, ...] = (DRIFT_API, DRIFT_BASELINE, DRIFT_MONITOR, DRIFT_ALERTS)

FUNCTIONS: tuple[FunctionSpec, ...] = (
    DATASET_SANITIZER,  # before the registry API, which invokes it
    REGISTRY_API,
    AUDIT_API,
    AUDIT_CHECKPOINTS,
    RETENTION_RUN,
    TRAINING_API,
    *TRAINING_FUNCTIONS,
    COMPUTE_API,
    COMPUTE_RECONCILE,
    SERVING_API,
    *SERVING_FUNCTIONS,
    *DRIFT_FUNCTIONS,
)
# Functions that start a state machine, by the machine's logical id.
STARTS = {
    TRAIN_STATE_MACHINE.logical_id: (TRAINING_API.name,),
    DEPLOY_STATE_MACHINE.logical_id: (SERVING_API.name,),
}


# Shared by every function: Powertools settings and who holds which role (principal ARN
# pattern -> roles, see modelops.domain.access). Resource variables are added per function.
METRICS_NAMESPACE = "ILLUVRSE/ModelOps"
ROLE_BINDINGS_ENV = "ROLE_BINDINGS"


def signer_tag(key_logical_id: str) -> str:
    """The IAM role tag that marks a function allowed to Sign with the key: the key's policy
    denies kms:Sign to every principal without it (CDK tags exactly the SIGN-granted roles)."""
    return f"modelops-signer-{key_logical_id}"


def table(logical_id: str) -> TableSpec:
    return next(t for t in TABLES if t.logical_id == logical_id)


def bucket(logical_id: str) -> BucketSpec:
    return next(b for b in BUCKETS if b.logical_id == logical_id)


def key(logical_id: str) -> KeySpec:
    return next(k for k in KEYS if k.logical_id == logical_id)


def bus(logical_id: str) -> BusSpec:
    return next(b for b in BUSES if b.logical_id == logical_id)


def invoke_env_var(function_name: str) -> str:
    """Where a function learns the name of one it invokes: ``drift-monitor`` ->
    ``DRIFT_MONITOR_FUNCTION_NAME``."""
    return function_name.upper().replace("-", "_") + "_FUNCTION_NAME"


def invoked_asynchronously() -> tuple[str, ...]:
    """Functions that run on asynchronous invocations (another function's, or their
    schedule's): each gets a dead-letter queue for the invocations that still fail after
    Lambda's retries (its DeadLetterConfig, ``<Function>InvocationDlq``)."""
    names = [name for fn in FUNCTIONS for name in fn.invokes]
    names += [fn.name for fn in FUNCTIONS if fn.schedule]
    return tuple(dict.fromkeys(names))


def function(name: str) -> FunctionSpec:
    return next(f for f in FUNCTIONS if f.name == name)


def function_environment(
    fn: FunctionSpec,
    physical_names: Mapping[str, str],
    role_bindings: Mapping[str, Sequence[str]],
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment variables a function gets, given logical id -> physical name (for keys,
    roles and state machines: their ARN; for buses: their name; for functions it invokes,
    by function name: their name) and the deployment's parameter values.

    CDK passes CloudFormation tokens as physical names; the local cloud passes its own.
    """
    env = {
        "POWERTOOLS_SERVICE_NAME": fn.name,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        ROLE_BINDINGS_ENV: json.dumps(
            {pattern: list(roles) for pattern, roles in sorted(role_bindings.items())},
            separators=(",", ":"),
        ),
    }
    for logical_id in fn.tables:
        env[table(logical_id).env_var] = physical_names[logical_id]
    for logical_id in (*fn.buckets, *fn.bucket_names):
        env[bucket(logical_id).env_var] = physical_names[logical_id]
    for logical_id in fn.keys:
        env_var = key(logical_id).env_var
        if env_var is None:
            raise ValueError(f"{fn.name}: key {logical_id} declares no env_var to pass its ARN")
        env[env_var] = physical_names[logical_id]
    for logical_id in fn.buses:
        env[bus(logical_id).env_var] = physical_names[logical_id]
    if {Grant.TRAINING_JOBS, Grant.SERVING} & set(fn.grants):
        env[TRAINING_ROLE.env_var] = physical_names[TRAINING_ROLE.logical_id]
    if Grant.TRAINING_JOBS in fn.grants:
        env[RAW_PII_JOB_ROLE.env_var] = physical_names[RAW_PII_JOB_ROLE.logical_id]
    for machine in STATE_MACHINES:
        if fn.name in STARTS.get(machine.logical_id, ()):
            env[machine.env_var] = physical_names[machine.logical_id]
    for name in fn.invokes:
        env[invoke_env_var(name)] = physical_names[name]
    for name in fn.parameters:
        if parameters is None or name not in parameters:
            raise ValueError(f"{fn.name}: deployment parameter {name} is not set")
        env[name] = parameters[name]
    return env
