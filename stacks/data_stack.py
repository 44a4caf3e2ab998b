"""DataStack: the stateful resources (tables, buckets, keys and event buses).

Everything here is built from ``modelops.platform.TABLES``, ``BUCKETS``, ``KEYS`` and
``BUSES``; this module adds no resource of its own beyond the access-log bucket. Event buses
live here because other systems' rules and permissions attach to them: replacing the
service stack must not replace a bus.

The stateless stacks reach these resources only through named exports (``export_name``):
table and bucket names, and the data key's ARN. Names that we choose keep the contract
between the stacks readable and stable, let the service stack be replaced on its own, and
give cdk-nag findings about grants on these resources ids that do not change between
synths (see ``stacks/nag.py``).

Encryption choice: one customer-managed KMS key (rotated yearly) encrypts every table and
every data bucket but those whose spec names a key of their own (``BucketSpec.key``:
escrow). Unlike the AWS-managed keys, its use is governed by our key policy and IAM grants,
shows up per caller in CloudTrail, and survives as a single switch to cut off access to all
registry data. The access-log bucket uses SSE-S3, because S3 server access logging cannot
deliver into a bucket whose default encryption is SSE-KMS; so does the trail bucket, whose
log files hold who called what, never object content.

Buckets with readers (``BucketSpec.readers``: escrow) add ``platform.reader_statements`` to
their bucket policy and to their key's policy, naming the readers' roles by the names
``stacks.readers`` gives them (the roles live in the service stack, which must not be
referenced from here). A CloudTrail trail records every object-level call on those buckets
(S3 data events, reads and writes) and the account's management events, which include
every KMS call (Decrypt, GenerateDataKey, GenerateMac), into a versioned, access-logged
trail bucket, with log file validation.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from modelops import platform
from stacks import readers
from stacks.environment import EnvironmentSettings


class DataStack(Stack):
    """Tables and buckets, exposed by their platform logical ids."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: EnvironmentSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.settings = settings

        self.keys: dict[str, kms.Key] = {
            spec.logical_id: kms.Key(
                self,
                spec.logical_id,
                description=spec.description,
                key_spec=kms.KeySpec(spec.key_spec),
                key_usage=kms.KeyUsage(spec.key_usage),
                enable_key_rotation=spec.rotation,
                pending_window=Duration.days(30),
                removal_policy=settings.removal_policy,
            )
            for spec in platform.KEYS
        }
        self.data_key = self.keys[platform.DATA_KEY.logical_id]
        for spec in platform.KEYS:
            if spec.key_usage == "SIGN_VERIFY":
                self._only_tagged_signers(self.keys[spec.logical_id], spec)
            if spec.users:
                self._only_key_users(spec)

        self.tables: dict[str, dynamodb.Table] = {
            spec.logical_id: self._table(spec) for spec in platform.TABLES
        }

        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=Duration.days(365),
                    noncurrent_version_expiration=Duration.days(30),
                )
            ],
            removal_policy=settings.removal_policy,
        )

        self.buckets: dict[str, s3.Bucket] = {
            spec.logical_id: self._bucket(spec) for spec in platform.BUCKETS
        }
        for bucket_spec in platform.BUCKETS:
            if bucket_spec.readers:
                self._only_readers(bucket_spec)
        self.trail_bucket, self.trail = self._trail()

        self.buses: dict[str, events.EventBus] = {
            spec.logical_id: events.EventBus(self, spec.logical_id, description=spec.description)
            for spec in platform.BUSES
        }
        for bus in self.buses.values():
            bus.apply_removal_policy(settings.removal_policy)

        for logical_id, key in self.keys.items():
            self._export(logical_id, "Arn", key.key_arn)
        for logical_id, bus in self.buses.items():
            self._export(logical_id, "Name", bus.event_bus_name)
            self._export(logical_id, "Arn", bus.event_bus_arn)
        for logical_id, table in self.tables.items():
            self._export(logical_id, "Name", table.table_name)
        for logical_id, bucket in self.buckets.items():
            self._export(logical_id, "Name", bucket.bucket_name)

    @staticmethod
    def _only_tagged_signers(key: kms.Key, spec: platform.KeySpec) -> None:
        """Key policy: kms:Sign is denied to every principal whose role does not carry the
        key's signer tag, whatever its IAM policies say, so only the functions the platform
        definition grants SIGN can sign."""
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTaggedSignersMaySign",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["kms:Sign"],
                resources=["*"],
                conditions={
                    "StringNotEquals": {
                        f"aws:PrincipalTag/{platform.signer_tag(spec.logical_id)}": "true"
                    }
                },
            )
        )

    def _only_readers(self, spec: platform.BucketSpec) -> None:
        """Bucket policy: s3:GetObject* denied, and key policy: kms:Decrypt denied, to every
        principal but the bucket's readers, whatever its IAM policies say. The readers' role
        ARNs are built from the names ``stacks.readers`` gives them, not referenced: the
        roles are the service stack's (see that module)."""
        sharing = [b.logical_id for b in platform.BUCKETS if b.key == spec.key]
        if spec.key == platform.DATA_KEY.logical_id or sharing != [spec.logical_id]:
            raise ValueError(
                f"{spec.logical_id}: a bucket with readers needs a key of its own, or its key "
                f"policy would refuse every other user of {spec.key} to decrypt"
            )
        bucket = self.buckets[spec.logical_id]
        arns = [readers.role_arn(self, self.settings, reader) for reader in spec.readers]
        on_bucket, on_key = platform.reader_statements(bucket.bucket_arn, arns)
        bucket.add_to_resource_policy(iam.PolicyStatement.from_json(on_bucket))
        self.keys[spec.key].add_to_resource_policy(iam.PolicyStatement.from_json(on_key))

    def _only_key_users(self, spec: platform.KeySpec) -> None:
        """Key policy: the key's use is denied to every principal but its users' roles
        (named by ``stacks.readers``, as the readers' are), whatever IAM says."""
        arns = [readers.role_arn(self, self.settings, user) for user in spec.users]
        statement = platform.key_user_statement(spec, arns)
        self.keys[spec.logical_id].add_to_resource_policy(iam.PolicyStatement.from_json(statement))

    def _trail(self) -> tuple[s3.Bucket, cloudtrail.Trail]:
        """The audit trail of the buckets with readers: every object-level call on them (S3
        data events, read and write), and every management event of the account, in every
        region, KMS calls included (Decrypt, GenerateDataKey and GenerateMac are management
        events), with log file validation (signed hourly digests)."""
        bucket = s3.Bucket(
            self,
            "TrailBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="TrailBucket/",
            removal_policy=self.settings.removal_policy,
        )
        trail = cloudtrail.Trail(
            self,
            "Trail",
            bucket=bucket,
            enable_file_validation=True,
            is_multi_region_trail=True,
            include_global_service_events=True,
            management_events=cloudtrail.ReadWriteType.ALL,
        )
        audited = [self.buckets[spec.logical_id] for spec in platform.BUCKETS if spec.readers]
        if audited:
            trail.add_s3_event_selector(
                [cloudtrail.S3EventSelector(bucket=b) for b in audited],
                read_write_type=cloudtrail.ReadWriteType.ALL,
                # Management events come from the trail's own selector, once.
                include_management_events=False,
            )
        return bucket, trail

    def export_name(self, logical_id: str, attribute: str) -> str:
        """The CloudFormation export that publishes ``attribute`` of ``logical_id``."""
        return f"{self.stack_name}:{logical_id}:{attribute}"

    def _export(self, logical_id: str, attribute: str, value: str) -> None:
        CfnOutput(
            self,
            f"{logical_id}{attribute}",
            value=value,
            export_name=self.export_name(logical_id, attribute),
        )

    def _table(self, spec: platform.TableSpec) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            spec.logical_id,
            partition_key=_string_attribute(spec.partition_key),
            sort_key=_string_attribute(spec.sort_key) if spec.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.data_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=spec.ttl_attribute,
            deletion_protection=self.settings.deletion_protection,
            removal_policy=self.settings.removal_policy,
        )
        for index in spec.indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_string_attribute(index.partition_key),
                sort_key=_string_attribute(index.sort_key),
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return table

    def _bucket(self, spec: platform.BucketSpec) -> s3.Bucket:
        return s3.Bucket(
            self,
            spec.logical_id,
            versioned=spec.versioned,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.keys[spec.key],
            # A bucket key saves KMS calls by reusing a bucket-level data key. Buckets with
            # readers go without: every object read and write then calls KMS with the
            # object's ARN in the encryption context, so CloudTrail shows which object each
            # Decrypt was for (their traffic is small).
            bucket_key_enabled=not spec.readers,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix=f"{spec.logical_id}/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id=rule.rule_id,
                    prefix=rule.prefix or None,
                    expiration=Duration.days(rule.expire_days) if rule.expire_days else None,
                    abort_incomplete_multipart_upload_after=(
                        Duration.days(rule.abort_multipart_days)
                        if rule.abort_multipart_days
                        else None
                    ),
                    transitions=(
                        [
                            s3.Transition(
                                storage_class=s3.StorageClass(rule.storage_class),
                                transition_after=Duration.days(rule.transition_days),
                            )
                        ]
                        if rule.transition_days and rule.storage_class
                        else None
                    ),
                )
                for rule in spec.lifecycle_rules()
            ],
            object_lock_enabled=spec.object_lock_days is not None or None,
            object_lock_default_retention=self._retention(spec),
            removal_policy=self.settings.removal_policy,
        )

    def _retention(self, spec: platform.BucketSpec) -> s3.ObjectLockRetention | None:
        if spec.object_lock_days is None:
            return None
        days = Duration.days(spec.object_lock_days)
        if self.settings.object_lock_mode == "COMPLIANCE":
            return s3.ObjectLockRetention.compliance(days)
        return s3.ObjectLockRetention.governance(days)


def _string_attribute(name: str) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=name, type=dynamodb.AttributeType.STRING)
