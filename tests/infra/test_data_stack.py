"""DataStack: tables and buckets as modelops.platform declares them, stored safely."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import CfnElement
from aws_cdk.assertions import Match, Template
from constructs import IConstruct

from modelops import platform
from stacks.data_stack import DataStack

from .conftest import Synthesized


def _data_stack(synth: Synthesized) -> DataStack:
    stack = synth.stack("data")
    assert isinstance(stack, DataStack)
    return stack


def _resource(synth: Synthesized, template: Template, construct: IConstruct) -> dict[str, Any]:
    """The synthesized resource of an L2 construct."""
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    logical_id = _data_stack(synth).get_logical_id(child)
    resource: dict[str, Any] = template.to_json()["Resources"][logical_id]
    return resource


@pytest.mark.parametrize("spec", platform.TABLES, ids=lambda s: s.logical_id)
def test_table_keys_indexes_and_ttl_match_the_platform_definition(
    synth: Synthesized, data_template: Template, spec: platform.TableSpec
) -> None:
    props = _resource(synth, data_template, _data_stack(synth).tables[spec.logical_id])[
        "Properties"
    ]

    expected_keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
    if spec.sort_key:
        expected_keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
    assert props["KeySchema"] == expected_keys
    assert {a["AttributeType"] for a in props["AttributeDefinitions"]} == {"S"}
    indexes = {i["IndexName"]: i for i in props.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {i.name for i in spec.indexes}
    for index in spec.indexes:
        assert indexes[index.name]["KeySchema"] == [
            {"AttributeName": index.partition_key, "KeyType": "HASH"},
            {"AttributeName": index.sort_key, "KeyType": "RANGE"},
        ]
        assert indexes[index.name]["Projection"] == {"ProjectionType": "ALL"}
    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {
            "AttributeName": spec.ttl_attribute,
            "Enabled": True,
        }
    else:
        assert "TimeToLiveSpecification" not in props


def test_every_table_has_point_in_time_recovery_and_kms_encryption_on_demand(
    data_template: Template,
) -> None:
    for logical_id, table in data_template.find_resources("AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True, logical_id
        assert props["SSESpecification"]["SSEType"] == "KMS", logical_id
        assert props["SSESpecification"]["KMSMasterKeyId"] == {
            "Fn::GetAtt": [_data_key_id(data_template), "Arn"]
        }
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id


def _data_key_id(template: Template) -> str:
    return _key_id(template, platform.DATA_KEY.logical_id)


def _key_id(template: Template, logical_id: str) -> str:
    (key_id,) = [k for k in template.find_resources("AWS::KMS::Key") if k.startswith(logical_id)]
    return key_id


def test_data_key_rotates(data_template: Template) -> None:
    data_template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


@pytest.mark.parametrize("spec", platform.KEYS, ids=lambda s: s.logical_id)
def test_keys_have_the_spec_and_usage_the_platform_declares(
    data_template: Template, spec: platform.KeySpec
) -> None:
    (key,) = [
        resource
        for logical_id, resource in data_template.find_resources("AWS::KMS::Key").items()
        if logical_id.startswith(spec.logical_id)
    ]
    props = key["Properties"]
    assert props.get("KeySpec", "SYMMETRIC_DEFAULT") == spec.key_spec
    assert props.get("KeyUsage", "ENCRYPT_DECRYPT") == spec.key_usage
    assert props.get("EnableKeyRotation", False) is spec.rotation


@pytest.mark.parametrize("spec", platform.BUCKETS, ids=lambda s: s.logical_id)
def test_data_bucket_is_versioned_kms_encrypted_private_and_logged(
    synth: Synthesized, data_template: Template, spec: platform.BucketSpec
) -> None:
    data = _data_stack(synth)
    props = _resource(synth, data_template, data.buckets[spec.logical_id])["Properties"]

    if spec.versioned:
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [_key_id(data_template, spec.key), "Arn"]},
    }
    assert props["PublicAccessBlockConfiguration"] == _BLOCK_ALL
    log_bucket = data.get_logical_id(_cfn(data.access_log_bucket))
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_bucket}


_BLOCK_ALL = {
    "BlockPublicAcls": True,
    "BlockPublicPolicy": True,
    "IgnorePublicAcls": True,
    "RestrictPublicBuckets": True,
}


def _cfn(construct: IConstruct) -> CfnElement:
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    return child


def test_every_bucket_blocks_public_access_and_is_encrypted(data_template: Template) -> None:
    for logical_id, bucket in data_template.find_resources("AWS::S3::Bucket").items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == _BLOCK_ALL, logical_id
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], logical_id


def test_every_bucket_policy_denies_requests_without_tls(data_template: Template) -> None:
    buckets = data_template.find_resources("AWS::S3::Bucket")
    policies = data_template.find_resources("AWS::S3::BucketPolicy")
    tls_only = {
        policy["Properties"]["Bucket"]["Ref"]
        for policy in policies.values()
        if any(
            statement["Effect"] == "Deny"
            and statement["Action"] == "s3:*"
            and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and statement["Principal"] == {"AWS": "*"}
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    }
    assert tls_only == set(buckets)


def test_stack_exports_what_the_service_stack_imports(
    synth: Synthesized, data_template: Template
) -> None:
    data = _data_stack(synth)
    exported = {output["Export"]["Name"] for output in data_template.find_outputs("*").values()}
    expected = {data.export_name(k.logical_id, "Arn") for k in platform.KEYS}
    expected |= {data.export_name(t.logical_id, "Name") for t in platform.TABLES}
    expected |= {data.export_name(b.logical_id, "Name") for b in platform.BUCKETS}
    expected |= {data.export_name(b.logical_id, a) for b in platform.BUSES for a in ("Name", "Arn")}
    assert exported == expected


@pytest.mark.parametrize("spec", platform.BUSES, ids=lambda s: s.logical_id)
def test_event_bus_is_declared_by_the_platform_and_kept_outside_dev(
    synth: Synthesized,
    synth_env: Callable[[str | None], Synthesized],
    data_template: Template,
    spec: platform.BusSpec,
) -> None:
    props = _resource(synth, data_template, _data_stack(synth).buses[spec.logical_id])
    assert props["Properties"]["Description"] == spec.description
    assert props["DeletionPolicy"] == "Delete"
    prod = synth_env("prod").template("data")
    prod.all_resources(
        "AWS::Events::EventBus", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    )


def test_dev_data_can_be_torn_down(data_template: Template) -> None:
    for resource_type in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::KMS::Key"):
        for logical_id, resource in data_template.find_resources(resource_type).items():
            assert resource["DeletionPolicy"] == "Delete", logical_id
    for table in data_template.find_resources("AWS::DynamoDB::Table").values():
        assert table["Properties"]["DeletionProtectionEnabled"] is False


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_data_outside_dev_is_retained_and_tables_are_deletion_protected(
    synth_env: Callable[[str | None], Synthesized], environment: str
) -> None:
    template = synth_env(environment).template("data")

    for resource_type in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::KMS::Key"):
        template.all_resources(
            resource_type, {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
        )
    template.all_resources_properties(
        "AWS::DynamoDB::Table", Match.object_like({"DeletionProtectionEnabled": True})
    )


@pytest.mark.parametrize("spec", platform.BUCKETS, ids=lambda s: s.logical_id)
def test_bucket_lifecycle_rules_match_the_platform_definition(
    synth: Synthesized, data_template: Template, spec: platform.BucketSpec
) -> None:
    props = _resource(synth, data_template, _data_stack(synth).buckets[spec.logical_id])[
        "Properties"
    ]
    configured = props.get("LifecycleConfiguration", {"Rules": []})
    rules = {rule["Id"]: rule for rule in configured["Rules"]}
    assert list(rules) == [rule.rule_id for rule in spec.lifecycle_rules()]
    for rule in spec.lifecycle_rules():
        if rule.expire_days:
            assert rules[rule.rule_id]["ExpirationInDays"] == rule.expire_days
            assert rules[rule.rule_id]["Prefix"] == rule.prefix
        if rule.abort_multipart_days:
            assert rules[rule.rule_id]["AbortIncompleteMultipartUpload"] == {
                "DaysAfterInitiation": rule.abort_multipart_days
            }


@pytest.mark.parametrize(("environment", "mode"), [(None, "GOVERNANCE"), ("prod", "COMPLIANCE")])
def test_audit_bucket_is_write_once_in_compliance_mode_outside_dev(
    synth_env: Callable[[str | None], Synthesized], environment: str | None, mode: str
) -> None:
    synth = synth_env(environment)
    data = _data_stack(synth)
    template = Template.from_stack(data)
    for spec in platform.BUCKETS:
        props = _resource(synth, template, data.buckets[spec.logical_id])["Properties"]
        if spec.object_lock_days is None:
            assert "ObjectLockConfiguration" not in props
            continue
        assert props["ObjectLockEnabled"] is True
        assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {
            "Mode": mode,
            "Days": spec.object_lock_days,
        }


@pytest.mark.parametrize(
    "spec", [k for k in platform.KEYS if k.key_usage == "SIGN_VERIFY"], ids=lambda s: s.logical_id
)
def test_signing_key_policy_denies_sign_to_roles_without_the_signer_tag(
    data_template: Template, spec: platform.KeySpec
) -> None:
    (key,) = [
        resource
        for logical_id, resource in data_template.find_resources("AWS::KMS::Key").items()
        if logical_id.startswith(spec.logical_id)
    ]
    statements = key["Properties"]["KeyPolicy"]["Statement"]
    (deny,) = [s for s in statements if s.get("Sid") == "OnlyTaggedSignersMaySign"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "kms:Sign"
    assert deny["Condition"] == {
        "StringNotEquals": {f"aws:PrincipalTag/{platform.signer_tag(spec.logical_id)}": "true"}
    }
