"""The IAM roles of bucket readers (``BucketSpec.readers``), named so both stacks can name them.

A bucket with readers (escrow) denies reading its objects, and its key denies kms:Decrypt,
to every principal whose ``aws:PrincipalArn`` is not a reader's role ARN
(``platform.reader_statements``). Those policies live in the data stack, with the bucket
and the key; the reader roles live in the service stack (the break-glass role, the raw-PII
job role, the sanitizer function's execution role), which already imports the data stack's
exports. Referencing a service-stack role from the data stack would make each stack depend
on the other, which CloudFormation refuses.

So reader roles get names we choose, ``modelops-<environment>-<region>-<reader>``: the
service stack creates them with that ``role_name`` and the data stack writes their ARNs
from the same name, with no reference between the stacks. The region is in the name because
IAM names are account-wide while the stacks are regional. The ARN in a condition is a plain
string, so it holds before the role exists (the data stack deploys first) and keeps holding
if the role is replaced under the same name. Every other role keeps a generated name.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from constructs import IConstruct

from modelops import platform
from stacks.environment import EnvironmentSettings

# Every reader the platform declares (role logical ids of platform.ROLES and function
# names), and every exclusive user of a key (``KeySpec.users``: function names), whose
# ARNs the data stack's key policies name the same way.
READERS = frozenset(reader for spec in platform.BUCKETS for reader in spec.readers) | frozenset(
    user for spec in platform.KEYS for user in spec.users
)
_ROLE_IDS = frozenset(spec.logical_id for spec in platform.ROLES)
_FUNCTION_NAMES = frozenset(spec.name for spec in platform.FUNCTIONS)
# IAM's limit on role names.
ROLE_NAME_LIMIT = 64
# Longest region name (ap-southeast-5, us-isob-east-1...), to check names at synth.
_REGION_BOUND = 14


def role_name(settings: EnvironmentSettings, reader: str) -> str:
    """The name of ``reader``'s IAM role (a CloudFormation token: the region is the
    deployment's)."""
    if reader not in _ROLE_IDS | _FUNCTION_NAMES:
        raise ValueError(
            f"bucket reader {reader!r} is neither a role of platform.ROLES nor a function"
        )
    prefix = f"modelops-{settings.name}-"
    suffix = f"-{reader}"
    if len(prefix) + _REGION_BOUND + len(suffix) > ROLE_NAME_LIMIT:
        raise ValueError(f"the role name of reader {reader!r} may exceed {ROLE_NAME_LIMIT}")
    return f"{prefix}{Aws.REGION}{suffix}"


def role_arn(scope: IConstruct, settings: EnvironmentSettings, reader: str) -> str:
    """The ARN of ``reader``'s IAM role in this account (path ``/``), as
    ``aws:PrincipalArn`` presents it for the role's sessions."""
    return Stack.of(scope).format_arn(
        service="iam", region="", resource="role", resource_name=role_name(settings, reader)
    )
