"""Escrow of raw PII: its own key, reads only by its readers, uploads without reads, the
break-glass and raw-PII job roles, the pseudonym key, and the trail that records it all.

The readers' roles are the service stack's and the policies that name them the data stack's,
joined by role names (``stacks.readers``), so these tests render both templates' values
with the same account and region and compare the ARNs as AWS would see them.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk import CfnElement
from aws_cdk.assertions import Template
from constructs import IConstruct

from modelops import platform
from stacks import readers
from stacks.environment import EnvironmentSettings, project_context

from .conftest import Synthesized
from .test_service_stack import (
    _as_list,
    _data,
    _import_values,
    _logical_id,
    _resources,
    _role_statements,
    _service,
)
from .test_training_stack import _permission, _permissions

ESCROW = platform.ESCROW_BUCKET
ACCOUNT = "123456789012"
REGION = "eu-west-1"
PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::URLSuffix": "amazonaws.com",
}
# Whoever may read escrow, as the platform means it (not derived from ESCROW.readers).
EXPECTED_READERS = (
    platform.BREAK_GLASS_ROLE.logical_id,
    platform.RAW_PII_JOB_ROLE.logical_id,
    platform.DATASET_SANITIZER.name,
)
# Functions that alone may use a key (KeySpec.users): their roles are named the same way, so
# the data stack's key policies can name them (the sanitizer and the watermark key's users).
KEY_USERS = frozenset(user for key in platform.KEYS for user in key.users)
ENVIRONMENTS = pytest.mark.parametrize("environment", [None, "prod"])


def _render(value: Any) -> Any:
    """A CloudFormation value with intrinsics rendered as text, as deployed in ACCOUNT and
    REGION: ``Fn::GetAtt`` as ``<logical id.attribute>``, imports as ``<import name>``."""
    if isinstance(value, list):
        return [_render(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return PSEUDO_PARAMETERS.get(argument, f"<{argument}>")
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(_render(part)) for part in parts)
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Fn::ImportValue":
            return f"<import {_render(argument)}>"
        if function.startswith("Fn::"):
            raise AssertionError(f"cannot render {value!r}")
    return {key: _render(inner) for key, inner in value.items()}


def _data_id(synth: Synthesized, construct: IConstruct) -> str:
    child = construct.node.default_child
    assert isinstance(child, CfnElement)
    return _data(synth).get_logical_id(child)


def _role_arn(template: Template, role_id: str) -> str:
    """The ARN of a role of ``template``: it must have a name we chose."""
    props = _resources(template)[role_id]["Properties"]
    assert "RoleName" in props, f"{role_id} has a generated name no policy can know"
    return f"arn:aws:iam::{ACCOUNT}:role{props.get('Path', '/')}{_render(props['RoleName'])}"


def _reader_role_ids(synth: Synthesized) -> dict[str, str]:
    service = _service(synth)
    roles = {
        platform.BREAK_GLASS_ROLE.logical_id: service.people_roles[
            platform.BREAK_GLASS_ROLE.logical_id
        ].role,
        platform.RAW_PII_JOB_ROLE.logical_id: service.sagemaker_roles[
            platform.RAW_PII_JOB_ROLE.logical_id
        ].role,
        platform.DATASET_SANITIZER.name: service.functions[platform.DATASET_SANITIZER.name].role,
    }
    return {reader: _logical_id(synth, role) for reader, role in roles.items()}


def _reader_arns(synth: Synthesized) -> set[str]:
    """The ARNs of the roles that may read escrow, from the service template."""
    template = synth.template("service")
    return {_role_arn(template, role_id) for role_id in _reader_role_ids(synth).values()}


def _escrow_bucket_id(synth: Synthesized) -> str:
    return _data_id(synth, _data(synth).buckets[ESCROW.logical_id])


def _key_id(synth: Synthesized, logical_id: str) -> str:
    return _data_id(synth, _data(synth).keys[logical_id])


def _bucket_policy(template: Template, bucket_id: str) -> list[dict[str, Any]]:
    (policy,) = (
        p["Properties"]["PolicyDocument"]
        for p in template.find_resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": bucket_id}
    )
    statements: list[dict[str, Any]] = policy["Statement"]
    return statements


def _key_policy(synth: Synthesized, template: Template, logical_id: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = _resources(template)[_key_id(synth, logical_id)][
        "Properties"
    ]["KeyPolicy"]["Statement"]
    return statements


def _by_sid(statements: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    (statement,) = (s for s in statements if s.get("Sid") == sid)
    return statement


def _with_sorted_readers(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement as synthesized, comparable with what ``platform`` declares: readers
    sorted, actions a list (CloudFormation renders a single action as a string)."""
    rendered: dict[str, Any] = _render(statement)
    arns = rendered["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]
    rendered["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] = sorted(arns)
    rendered["Action"] = _as_list(rendered["Action"])
    return rendered


def _import(synth: Synthesized, logical_id: str, attribute: str) -> str:
    return _data(synth).export_name(logical_id, attribute)


def _escrow_object_statements(
    synth: Synthesized, statements: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The statements that name the escrow bucket or its objects."""
    name = _import(synth, ESCROW.logical_id, "Name")
    return [s for s in statements if name in set(_import_values(s["Resource"]))]


def _key_statements(
    synth: Synthesized, statements: list[dict[str, Any]], logical_id: str
) -> list[dict[str, Any]]:
    arn = _import(synth, logical_id, "Arn")
    return [s for s in statements if arn in set(_import_values(s["Resource"]))]


def _allows(statement: dict[str, Any], action: str) -> bool:
    """Whether an Allow statement's actions (wildcards included) cover ``action``."""
    return statement["Effect"] == "Allow" and any(
        fnmatch.fnmatchcase(action.lower(), pattern.lower())
        for pattern in _as_list(statement["Action"])
    )


def _function_statements(
    synth: Synthesized, template: Template, spec: platform.FunctionSpec
) -> list[dict[str, Any]]:
    role = _service(synth).functions[spec.name].role
    return _role_statements(template, _logical_id(synth, role))


# --- The escrow bucket and its key ------------------------------------------------------------


def test_escrow_bucket_is_encrypted_with_its_own_key_not_the_data_key(
    synth: Synthesized, data_template: Template
) -> None:
    props = _resources(data_template)[_escrow_bucket_id(synth)]["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]

    escrow_key = _key_id(synth, platform.ESCROW_KEY.logical_id)
    assert ESCROW.key == platform.ESCROW_KEY.logical_id != platform.DATA_KEY.logical_id
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [escrow_key, "Arn"]},
    }
    # No bucket key: every object read is a kms:Decrypt of its own, in CloudTrail.
    assert rule["BucketKeyEnabled"] is False
    assert _resources(data_template)[escrow_key]["Properties"]["EnableKeyRotation"] is True


def test_only_the_escrow_bucket_uses_the_escrow_key(
    synth: Synthesized, data_template: Template
) -> None:
    # Its policy refuses kms:Decrypt to everyone else: no table or other bucket may use it.
    key_id = _key_id(synth, platform.ESCROW_KEY.logical_id)
    users = [
        logical_id
        for logical_id, resource in _resources(data_template).items()
        if logical_id != key_id and f'"{key_id}"' in json.dumps(resource)
    ]
    assert users == [_escrow_bucket_id(synth)]


@ENVIRONMENTS
def test_escrow_bucket_policy_denies_reading_objects_to_every_principal_but_its_readers(
    synth_env: Callable[[str | None], Synthesized], environment: str | None
) -> None:
    synth = synth_env(environment)
    bucket_id = _escrow_bucket_id(synth)
    deny = _by_sid(_bucket_policy(synth.template("data"), bucket_id), "OnlyEscrowReadersMayRead")
    readers_arns = _reader_arns(synth)

    # The readers are exactly the break-glass role, the raw-PII job role and the sanitizer's
    # execution role, as the service stack names them.
    assert len(readers_arns) == len(EXPECTED_READERS) == 3
    expected, _ = platform.reader_statements(f"<{bucket_id}.Arn>", sorted(readers_arns))
    assert _with_sorted_readers(deny) == expected
    assert deny["Effect"] == "Deny" and deny["Principal"] == {"AWS": "*"}
    assert {"s3:GetObject", "s3:GetObjectVersion"} <= set(_as_list(deny["Action"]))


@ENVIRONMENTS
def test_escrow_key_policy_denies_decrypt_to_every_principal_but_the_readers(
    synth_env: Callable[[str | None], Synthesized], environment: str | None
) -> None:
    synth = synth_env(environment)
    statements = _key_policy(synth, synth.template("data"), platform.ESCROW_KEY.logical_id)
    deny = _by_sid(statements, "OnlyEscrowReadersMayDecrypt")

    _, expected = platform.reader_statements("unused", sorted(_reader_arns(synth)))
    assert _with_sorted_readers(deny) == _render(expected)
    assert deny["Effect"] == "Deny" and _as_list(deny["Action"]) == ["kms:Decrypt"]
    assert deny["Principal"] == {"AWS": "*"} and deny["Resource"] == "*"


def test_reader_roles_are_named_per_environment_and_region(synth: Synthesized) -> None:
    arns = _reader_arns(synth)
    assert arns == {
        f"arn:aws:iam::{ACCOUNT}:role/modelops-dev-{REGION}-{reader}" for reader in EXPECTED_READERS
    }
    assert set(EXPECTED_READERS) | KEY_USERS == readers.READERS


def test_reader_role_names_are_refused_when_iam_could_not_hold_them() -> None:
    context = project_context()
    long_name = EnvironmentSettings.from_context(
        "x" * 40, context["environments"]["dev"], context["computePools"]
    )
    with pytest.raises(ValueError, match="may exceed 64"):
        readers.role_name(long_name, platform.DATASET_SANITIZER.name)
    dev = EnvironmentSettings.from_context(
        "dev", context["environments"]["dev"], context["computePools"]
    )
    with pytest.raises(ValueError, match="neither a role"):
        readers.role_name(dev, "registry-apii")


def test_only_reader_and_key_user_roles_have_names_we_chose(
    synth: Synthesized, service_template: Template
) -> None:
    functions = _service(synth).functions
    reader_ids = set(_reader_role_ids(synth).values()) | {
        _logical_id(synth, functions[user].role) for user in KEY_USERS
    }
    named = {
        role_id
        for role_id, role in service_template.find_resources("AWS::IAM::Role").items()
        if "RoleName" in role["Properties"]
    }
    assert named == reader_ids


# --- Who holds what on escrow -----------------------------------------------------------------


def test_training_role_holds_nothing_on_the_escrow_bucket_or_key(
    synth: Synthesized, service_template: Template
) -> None:
    # Training and evaluation jobs without an approved raw PII dataset, and every endpoint,
    # run as the TrainingRole.
    role_id = _logical_id(synth, _service(synth).training_role.role)
    statements = _role_statements(service_template, role_id)

    assert _escrow_object_statements(synth, statements) == []
    assert _key_statements(synth, statements, platform.ESCROW_KEY.logical_id) == []
    assert "RoleName" not in _resources(service_template)[role_id]["Properties"]


def test_endpoints_can_only_be_given_the_training_role(
    synth: Synthesized, service_template: Template
) -> None:
    raw_pii_role = _service(synth).sagemaker_roles[platform.RAW_PII_JOB_ROLE.logical_id].role
    raw_pii_arn = {"Fn::GetAtt": [_logical_id(synth, raw_pii_role), "Arn"]}
    passing = {
        spec.name
        for spec in platform.FUNCTIONS
        for statement in _function_statements(synth, service_template, spec)
        if _allows(statement, "iam:PassRole") and raw_pii_arn in _as_list(statement["Resource"])
    }

    # Only the TRAINING_JOBS holders, which create training jobs and no model or endpoint.
    assert passing == {
        spec.name for spec in platform.FUNCTIONS if platform.Grant.TRAINING_JOBS in spec.grants
    }
    assert passing == {platform.TRAINING_API.name, "train-start-job"}
    for name in passing:
        assert platform.Grant.SERVING not in platform.function(name).grants


def test_raw_pii_job_role_passes_to_sagemaker_only(
    synth: Synthesized, service_template: Template
) -> None:
    raw_pii_role = _service(synth).sagemaker_roles[platform.RAW_PII_JOB_ROLE.logical_id].role
    raw_pii_arn = {"Fn::GetAtt": [_logical_id(synth, raw_pii_role), "Arn"]}
    for spec in platform.FUNCTIONS:
        for statement in _function_statements(synth, service_template, spec):
            if raw_pii_arn in _as_list(statement["Resource"]):
                assert _as_list(statement["Action"]) == ["iam:PassRole"], spec.name
                assert statement["Condition"] == {
                    "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
                }


def test_registry_api_may_upload_and_check_escrow_objects_but_never_read_or_decrypt_them(
    synth: Synthesized, service_template: Template
) -> None:
    statements = _function_statements(synth, service_template, platform.REGISTRY_API)
    on_escrow = _escrow_object_statements(synth, statements)
    on_key = _key_statements(synth, statements, platform.ESCROW_KEY.logical_id)
    escrow_bucket = [
        "arn:",
        {"Ref": "AWS::Partition"},
        ":s3:::",
        {"Fn::ImportValue": _import(synth, ESCROW.logical_id, "Name")},
    ]
    escrow_objects = {"Fn::Join": ["", [*escrow_bucket, "/*"]]}
    via_s3 = {
        "StringEquals": {
            "kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
        }
    }
    escrow_key = {"Fn::ImportValue": _import(synth, platform.ESCROW_KEY.logical_id, "Arn")}

    assert _permissions(on_escrow, {"s3"}) == {
        _permission("s3:PutObject", escrow_objects),
        # Uploads are confirmed by listing: their SHA-256 was signed into the PUT.
        _permission("s3:ListBucket", {"Fn::Join": ["", escrow_bucket]}),
    }
    assert _permissions(on_key, {"kms"}) == {_permission("kms:GenerateDataKey", escrow_key, via_s3)}
    for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject"):
        assert not any(_allows(s, action) for s in on_escrow), action
    assert not any(_allows(s, "kms:Decrypt") for s in on_key)
    # Not a reader either: the bucket policy would refuse it whatever IAM said.
    role_id = _logical_id(synth, _service(synth).functions[platform.REGISTRY_API.name].role)
    assert _role_arn(service_template, role_id) not in _reader_arns(synth)


def test_only_escrow_readers_and_writers_hold_anything_on_escrow(
    synth: Synthesized, service_template: Template
) -> None:
    holders = {
        spec.name
        for spec in platform.FUNCTIONS
        if _escrow_object_statements(synth, _function_statements(synth, service_template, spec))
        or _key_statements(
            synth,
            _function_statements(synth, service_template, spec),
            platform.ESCROW_KEY.logical_id,
        )
    }
    assert holders == {
        platform.REGISTRY_API.name,
        platform.DATASET_SANITIZER.name,
        platform.RETENTION_RUN.name,
    }


def test_retention_run_may_delete_escrow_objects_but_never_read_or_decrypt_them(
    synth: Synthesized, service_template: Template
) -> None:
    statements = _function_statements(synth, service_template, platform.RETENTION_RUN)
    on_escrow = _escrow_object_statements(synth, statements)
    escrow_bucket = [
        "arn:",
        {"Ref": "AWS::Partition"},
        ":s3:::",
        {"Fn::ImportValue": _import(synth, ESCROW.logical_id, "Name")},
    ]
    escrow_objects = {"Fn::Join": ["", [*escrow_bucket, "/*"]]}

    assert _permissions(on_escrow, {"s3"}) == {
        _permission("s3:DeleteObject", escrow_objects),
        _permission("s3:DeleteObjectVersion", escrow_objects),
        _permission("s3:ListBucket", {"Fn::Join": ["", escrow_bucket]}),
        _permission("s3:ListBucketVersions", {"Fn::Join": ["", escrow_bucket]}),
    }
    for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"):
        assert not any(_allows(s, action) for s in on_escrow), action
    assert _key_statements(synth, statements, platform.ESCROW_KEY.logical_id) == []


def test_sanitizer_reads_escrow_objects_and_decrypts_them(
    synth: Synthesized, service_template: Template
) -> None:
    statements = _function_statements(synth, service_template, platform.DATASET_SANITIZER)

    assert any(_allows(s, "s3:GetObject") for s in _escrow_object_statements(synth, statements))
    assert any(
        _allows(s, "kms:Decrypt")
        for s in _key_statements(synth, statements, platform.ESCROW_KEY.logical_id)
    )
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not any(_allows(s, action) for s in _escrow_object_statements(synth, statements))


# --- The pseudonym key ------------------------------------------------------------------------


def test_pseudonym_key_is_an_hmac_key(synth: Synthesized, data_template: Template) -> None:
    props = _resources(data_template)[_key_id(synth, platform.PSEUDONYM_KEY.logical_id)][
        "Properties"
    ]
    assert props["KeySpec"] == "HMAC_256"
    assert props["KeyUsage"] == "GENERATE_VERIFY_MAC"


def test_sanitizer_may_generate_macs_with_the_pseudonym_key_and_nothing_else_on_it(
    synth: Synthesized, service_template: Template
) -> None:
    key = platform.PSEUDONYM_KEY.logical_id
    holders: dict[str, list[dict[str, Any]]] = {}
    for spec in platform.FUNCTIONS:
        statements = _key_statements(
            synth, _function_statements(synth, service_template, spec), key
        )
        if statements:
            holders[spec.name] = statements

    assert list(holders) == [platform.DATASET_SANITIZER.name]
    (statement,) = holders[platform.DATASET_SANITIZER.name]
    assert statement["Effect"] == "Allow"
    assert _as_list(statement["Action"]) == ["kms:GenerateMac"]
    assert statement["Resource"] == {"Fn::ImportValue": _import(synth, key, "Arn")}


def test_pseudonym_key_policy_denies_macs_to_every_principal_but_the_sanitizer(
    synth: Synthesized,
) -> None:
    statements = _key_policy(synth, synth.template("data"), platform.PSEUDONYM_KEY.logical_id)
    deny = _by_sid(statements, "OnlyKeyUsersMayUseIt")
    sanitizer_role = _reader_role_ids(synth)[platform.DATASET_SANITIZER.name]
    sanitizer_arn = _role_arn(synth.template("service"), sanitizer_role)
    expected = platform.key_user_statement(platform.PSEUDONYM_KEY, [sanitizer_arn])
    assert _with_sorted_readers(deny) == _render(expected)
    assert _as_list(deny["Action"]) == ["kms:GenerateMac", "kms:VerifyMac"]


# --- The break-glass role -----------------------------------------------------------------------


def _break_glass_role_id(synth: Synthesized) -> str:
    return _reader_role_ids(synth)[platform.BREAK_GLASS_ROLE.logical_id]


def test_break_glass_role_is_assumed_by_this_account_with_mfa_for_an_hour_at_most(
    synth: Synthesized, service_template: Template
) -> None:
    props = _resources(service_template)[_break_glass_role_id(synth)]["Properties"]

    assert _render(props["AssumeRolePolicyDocument"]["Statement"]) == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    ]
    assert props["MaxSessionDuration"] == 3600
    assert "ManagedPolicyArns" not in props and "Policies" not in props


def test_break_glass_role_only_reads_escrow_objects_and_decrypts_with_the_escrow_key(
    synth: Synthesized, service_template: Template
) -> None:
    statements = _role_statements(service_template, _break_glass_role_id(synth))
    bucket = _import(synth, ESCROW.logical_id, "Name")
    objects = f"arn:aws:s3:::<import {bucket}>/*"
    key = f"<import {_import(synth, platform.ESCROW_KEY.logical_id, 'Arn')}>"
    via_s3 = {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}}

    held = {
        (action, _render(s["Resource"]), json.dumps(_render(s.get("Condition"))))
        for s in statements
        for action in _as_list(s["Action"])
    }
    assert all(s["Effect"] == "Allow" for s in statements)
    assert held == {
        ("s3:GetObject", objects, "null"),
        ("s3:GetObjectVersion", objects, "null"),
        ("kms:Decrypt", key, json.dumps(via_s3)),
    }


# --- The raw-PII job role ---------------------------------------------------------------------


def test_raw_pii_job_role_is_the_training_role_plus_reading_escrow(
    synth: Synthesized, service_template: Template
) -> None:
    service = _service(synth)
    resources = _resources(service_template)
    training_id = _logical_id(synth, service.training_role.role)
    raw_pii_id = _reader_role_ids(synth)[platform.RAW_PII_JOB_ROLE.logical_id]

    def held(role_id: str) -> set[tuple[str, str, str]]:
        statements = _role_statements(service_template, role_id)
        services = {a.split(":")[0] for s in statements for a in _as_list(s["Action"])}
        return _permissions(statements, services)

    assert (
        resources[raw_pii_id]["Properties"]["AssumeRolePolicyDocument"]
        == resources[training_id]["Properties"]["AssumeRolePolicyDocument"]
    )
    escrow = _import(synth, ESCROW.logical_id, "Name")
    bucket_arn = {
        "Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":s3:::", {"Fn::ImportValue": escrow}]]
    }
    objects = {"Fn::Join": ["", [*bucket_arn["Fn::Join"][1], "/*"]]}
    via_s3 = {
        "StringEquals": {
            "kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
        }
    }
    escrow_key = {"Fn::ImportValue": _import(synth, platform.ESCROW_KEY.logical_id, "Arn")}
    assert held(raw_pii_id) == held(training_id) | {
        _permission("s3:ListBucket", bucket_arn),
        _permission("s3:GetObject", objects),
        _permission("kms:Decrypt", escrow_key, via_s3),
    }


# --- The trail --------------------------------------------------------------------------------


def _trail(synth: Synthesized, template: Template) -> dict[str, Any]:
    props: dict[str, Any] = _resources(template)[_data_id(synth, _data(synth).trail)]["Properties"]
    return props


def test_trail_logs_every_read_and_write_of_escrow_objects(
    synth: Synthesized, data_template: Template
) -> None:
    selectors = _trail(synth, data_template)["EventSelectors"]
    escrow_objects = {"Fn::Join": ["", [{"Fn::GetAtt": [_escrow_bucket_id(synth), "Arn"]}, "/"]]}

    (data_events,) = (s for s in selectors if s.get("DataResources"))
    assert data_events["DataResources"] == [{"Type": "AWS::S3::Object", "Values": [escrow_objects]}]
    assert data_events["ReadWriteType"] == "All"


def test_trail_logs_every_management_event_kms_calls_included(
    synth: Synthesized, data_template: Template
) -> None:
    trail = _trail(synth, data_template)
    management = [s for s in trail["EventSelectors"] if s.get("IncludeManagementEvents", True)]

    # KMS Decrypt, GenerateDataKey and GenerateMac are management events: none excluded.
    assert management == [{"IncludeManagementEvents": True, "ReadWriteType": "All"}]
    assert trail["IsMultiRegionTrail"] is True
    assert trail["IncludeGlobalServiceEvents"] is True
    assert trail["IsLogging"] is True
    assert trail["EnableLogFileValidation"] is True


def test_trail_bucket_is_private_encrypted_versioned_and_access_logged(
    synth: Synthesized, data_template: Template
) -> None:
    data = _data(synth)
    trail_bucket_id = _data_id(synth, data.trail_bucket)
    props = _resources(data_template)[trail_bucket_id]["Properties"]

    assert _trail(synth, data_template)["S3BucketName"] == {"Ref": trail_bucket_id}
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": _data_id(synth, data.access_log_bucket)
    }
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_trail_bucket_outlives_the_stack_outside_dev(
    synth_env: Callable[[str | None], Synthesized], environment: str
) -> None:
    synth = synth_env(environment)
    resource = _resources(synth.template("data"))[_data_id(synth, _data(synth).trail_bucket)]
    assert resource["DeletionPolicy"] == "Retain"
