"""The local cloud's resource-policy evaluator, without a server: which Deny statements bind
which callers (localcloud.resource_policies)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from localcloud import resource_policies
from localcloud.resource_policies import (
    Caller,
    access_key_id,
    caller_for_access_key,
    explicit_deny,
    object_actions,
)
from modelops import platform

ACCOUNT = "123456789012"
BUCKET_ARN = "arn:aws:s3:::escrow-bucket"
OBJECT = f"{BUCKET_ARN}/raw/people.csv"
READER = f"arn:aws:iam::{ACCOUNT}:role/RawPiiJobRole-role"
TRAINER = f"arn:aws:iam::{ACCOUNT}:role/TrainingRole-role"


def session(role_arn: str) -> Caller:
    return Caller.role_session(role_arn, "SageMaker")


def deny(**statement: Any) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", **statement}]}


def denied(policy: dict[str, Any], caller: Caller, action: str, resource: str = OBJECT) -> bool:
    return explicit_deny(policy, action=action, resource=resource, caller=caller) is not None


ESCROW_BUCKET_STATEMENT, ESCROW_KEY_STATEMENT = platform.reader_statements(BUCKET_ARN, [READER])
ESCROW_POLICY = {"Version": "2012-10-17", "Statement": [ESCROW_BUCKET_STATEMENT]}
KEY_POLICY = {
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        ESCROW_KEY_STATEMENT,
    ]
}


def test_the_escrow_statement_denies_reading_to_everyone_but_its_readers() -> None:
    assert denied(ESCROW_POLICY, session(TRAINER), "s3:GetObject")
    assert denied(ESCROW_POLICY, session(TRAINER), "s3:GetObjectVersion")
    assert denied(ESCROW_POLICY, Caller.root(ACCOUNT), "s3:GetObject")
    assert denied(ESCROW_POLICY, Caller.user(f"arn:aws:iam::{ACCOUNT}:user/admin"), "s3:GetObject")
    assert not denied(ESCROW_POLICY, session(READER), "s3:GetObject")
    # It says nothing about writing, attributes, or other buckets.
    assert not denied(ESCROW_POLICY, session(TRAINER), "s3:PutObject")
    assert not denied(ESCROW_POLICY, session(TRAINER), "s3:GetObjectAttributes")
    assert not denied(ESCROW_POLICY, session(TRAINER), "s3:GetObject", "arn:aws:s3:::other/x")


def test_the_escrow_key_statement_denies_decrypt_only_and_ignores_allow_statements() -> None:
    key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234"
    assert denied(KEY_POLICY, session(TRAINER), "kms:Decrypt", key)
    assert not denied(KEY_POLICY, session(READER), "kms:Decrypt", key)
    assert not denied(KEY_POLICY, session(TRAINER), "kms:Encrypt", key)
    assert not denied(KEY_POLICY, session(TRAINER), "kms:GenerateDataKey", key)


def test_actions_match_case_insensitively_with_wildcards() -> None:
    policy = deny(Principal="*", Action="S3:Get*Version", Resource="*")
    assert denied(policy, session(TRAINER), "s3:GetObjectVersion")
    assert not denied(policy, session(TRAINER), "s3:GetObject")
    single = deny(Principal="*", Action="s3:?etObject", Resource="*")
    assert denied(single, session(TRAINER), "s3:GetObject")
    assert not denied(single, session(TRAINER), "s3:PutObjectAcl")


def test_resources_match_case_sensitively_with_wildcards() -> None:
    policy = deny(Principal="*", Action="s3:GetObject", Resource=f"{BUCKET_ARN}/raw/*.csv")
    assert denied(policy, session(TRAINER), "s3:GetObject")
    assert not denied(policy, session(TRAINER), "s3:GetObject", f"{BUCKET_ARN}/RAW/people.csv")
    assert not denied(policy, session(TRAINER), "s3:GetObject", f"{BUCKET_ARN}/clean/a.json")
    one = deny(Principal="*", Action="s3:GetObject", Resource=f"{BUCKET_ARN}/raw/people.cs?")
    assert denied(one, session(TRAINER), "s3:GetObject")


def test_not_action_and_not_resource_invert_their_match() -> None:
    policy = deny(Principal="*", NotAction="s3:GetObjectAttributes", NotResource="*/public/*")
    assert denied(policy, session(TRAINER), "s3:GetObject")
    assert not denied(policy, session(TRAINER), "s3:GetObjectAttributes")
    assert not denied(policy, session(TRAINER), "s3:GetObject", f"{BUCKET_ARN}/public/a")


def test_arn_like_conditions_match_each_arn_part_with_wildcards() -> None:
    policy = deny(
        Principal={"AWS": "*"},
        Action="s3:GetObject",
        Resource="*",
        Condition={"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:role/RawPii*"}},
    )
    assert denied(policy, session(TRAINER), "s3:GetObject")
    assert not denied(policy, session(READER), "s3:GetObject")
    like = deny(
        Principal="*",
        Action="s3:GetObject",
        Resource="*",
        Condition={"ArnLike": {"aws:PrincipalArn": ["arn:aws:iam::*:role/Training*"]}},
    )
    assert denied(like, session(TRAINER), "s3:GetObject")
    assert not denied(like, session(READER), "s3:GetObject")
    # ArnEquals compares the role ARN, not the session's assumed-role ARN.
    session_arn = session(TRAINER).arn
    assert session_arn.startswith("arn:aws:sts::")
    exact = deny(
        Principal="*",
        Action="s3:GetObject",
        Resource="*",
        Condition={"ArnEquals": {"aws:PrincipalArn": session_arn}},
    )
    assert not denied(exact, session(TRAINER), "s3:GetObject")


def test_string_conditions_on_account_and_principal_type() -> None:
    other_account = Caller.role_session("arn:aws:iam::999999999999:role/Intruder", "x")
    policy = deny(
        Principal="*",
        Action="s3:*",
        Resource="*",
        Condition={"StringNotEquals": {"aws:PrincipalAccount": ACCOUNT}},
    )
    assert denied(policy, other_account, "s3:GetObject")
    assert not denied(policy, session(TRAINER), "s3:GetObject")
    users = deny(
        Principal="*",
        Action="s3:*",
        Resource="*",
        Condition={
            "StringEquals": {"aws:PrincipalType": "User"},
            "StringLikeIfExists": {"aws:PrincipalArn": "*:user/ad*"},
        },
    )
    assert denied(users, Caller.user(f"arn:aws:iam::{ACCOUNT}:user/admin"), "s3:GetObject")
    assert not denied(users, Caller.user(f"arn:aws:iam::{ACCOUNT}:user/bob"), "s3:GetObject")
    assert not denied(users, session(TRAINER), "s3:GetObject")


def test_principals_name_roles_sessions_and_accounts() -> None:
    by_role = deny(Principal={"AWS": [TRAINER]}, Action="s3:GetObject", Resource="*")
    assert denied(by_role, session(TRAINER), "s3:GetObject")
    assert not denied(by_role, session(READER), "s3:GetObject")
    by_account = deny(Principal={"AWS": ACCOUNT}, Action="s3:GetObject", Resource="*")
    assert denied(by_account, session(READER), "s3:GetObject")
    other = Caller.role_session("arn:aws:iam::999999999999:role/x", "y")
    assert not denied(by_account, other, "s3:GetObject")
    services = deny(
        Principal={"Service": "sagemaker.amazonaws.com"}, Action="s3:GetObject", Resource="*"
    )
    assert not denied(services, session(TRAINER), "s3:GetObject")
    everyone_but = deny(NotPrincipal={"AWS": [READER]}, Action="s3:GetObject", Resource="*")
    assert denied(everyone_but, session(TRAINER), "s3:GetObject")
    assert not denied(everyone_but, session(READER), "s3:GetObject")


def test_what_it_does_not_understand_does_not_match_and_is_reported_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resource_policies, "_WARNED", set())  # as in a fresh process
    policy = deny(
        Principal="*",
        Action="s3:GetObject",
        Resource="*",
        Condition={"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
    )
    with caplog.at_level(logging.WARNING, logger="localcloud.resource_policies"):
        assert not denied(policy, session(TRAINER), "s3:GetObject")
        assert not denied(policy, session(TRAINER), "s3:GetObject")
    warnings = [r for r in caplog.records if "DateGreaterThan" in r.getMessage()]
    assert len(warnings) == 1
    unknown_key = deny(
        Principal="*",
        Action="s3:GetObject",
        Resource="*",
        Condition={"StringEquals": {"aws:SourceVpce": "vpce-1"}},
    )
    assert not denied(unknown_key, session(TRAINER), "s3:GetObject")
    assert (
        explicit_deny("not json", action="s3:GetObject", resource=OBJECT, caller=session(TRAINER))
        is None
    )


@pytest.mark.parametrize(
    ("method", "query", "action"),
    [
        ("GET", {}, "s3:GetObject"),
        ("GET", {"versionId": ["v1"]}, "s3:GetObjectVersion"),
        ("HEAD", {}, "s3:GetObject"),
        ("GET", {"attributes": [""]}, "s3:GetObjectAttributes"),
        ("GET", {"tagging": [""], "versionId": ["v1"]}, "s3:GetObjectVersionTagging"),
        ("PUT", {}, "s3:PutObject"),
        ("PUT", {"partNumber": ["1"], "uploadId": ["u"]}, "s3:PutObject"),
        ("DELETE", {"versionId": ["v1"]}, "s3:DeleteObjectVersion"),
        ("POST", {"select": [""], "select-type": ["2"]}, "s3:GetObject"),
        ("OPTIONS", {}, None),
    ],
)
def test_object_requests_need_the_permission_s3_documents(
    method: str, query: dict[str, list[str]], action: str | None
) -> None:
    assert object_actions(method, query) == action


def test_the_access_key_comes_from_the_signature_header_or_a_presigned_url() -> None:
    v4 = (
        "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE123/20260101/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=abc"
    )
    assert access_key_id({"Authorization": v4}) == "ASIAEXAMPLE123"
    assert access_key_id({"Authorization": "AWS AKIAOLD:c2ln"}) == "AKIAOLD"
    presigned = {"X-Amz-Credential": ["AKIAPRESIGNED%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"]}
    assert access_key_id({}, presigned) == "AKIAPRESIGNED"
    assert access_key_id({}, {"AWSAccessKeyId": ["AKIAV2"]}) == "AKIAV2"
    assert access_key_id({}, {}) is None


def test_unknown_credentials_are_the_account_root() -> None:
    caller = caller_for_access_key("AKIANOBODYKNOWSTHIS0", ACCOUNT)
    assert caller == Caller.root(ACCOUNT)
    assert caller.principal_arn == f"arn:aws:iam::{ACCOUNT}:root"
    assert caller_for_access_key(None, ACCOUNT).kind == "Account"
