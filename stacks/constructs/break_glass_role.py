"""BreakGlassRole: the role people assume to read raw PII in escrow (``platform.BREAK_GLASS_ROLE``).

A ``RoleSpec`` without a service: principals of this account may assume it, and only with
MFA (``aws:MultiFactorAuthPresent``), for one hour at most; who may is up to their own IAM
policies (sts:AssumeRole on this role). It holds nothing but what its spec grants READ:
reading the objects of its buckets (s3:GetObject, s3:GetObjectVersion; no listing, no
writes) and kms:Decrypt with its keys, through S3 only. Its name is a reader's
(``stacks.readers``), so the escrow bucket's and key's policies admit it; CloudTrail records
every object it reads and every decrypt (``DataStack`` trail).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from modelops import platform

MAX_SESSION = Duration.hours(1)
OBJECT_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
MFA_CONDITION = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


class BreakGlassRole(Construct):
    """An IAM role of this account's people, assumed with MFA, reading objects only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: platform.RoleSpec,
        buckets: Mapping[str, s3.IBucket],
        keys: Mapping[str, kms.IKey],
        role_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        if spec.service is not None:
            raise ValueError(f"{spec.logical_id}: a break-glass role is assumed by people")
        self.spec = spec
        self.role = iam.Role(
            self,
            "Role",
            role_name=role_name,
            description=spec.description,
            assumed_by=iam.AccountRootPrincipal().with_conditions(MFA_CONDITION),
            max_session_duration=MAX_SESSION,
        )
        for logical_id, access in spec.buckets.items():
            _read_only(spec, logical_id, access)
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=list(OBJECT_READ_ACTIONS),
                    resources=[buckets[logical_id].arn_for_objects("*")],
                )
            )
        for logical_id, access in spec.keys.items():
            _read_only(spec, logical_id, access)
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt"],
                    resources=[keys[logical_id].key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}
                    },
                )
            )


def _read_only(spec: platform.RoleSpec, logical_id: str, access: platform.Access) -> None:
    if access is not platform.Access.READ:
        raise ValueError(f"{spec.logical_id}: break-glass access to {logical_id} is READ only")
