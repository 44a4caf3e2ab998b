"""Who may do what. Principals (IAM ARNs, as SigV4 established them) map to roles in
configuration; each mutating use case requires a permission that some roles hold.

Bindings are ``fnmatch`` patterns so that assumed-role sessions bind by role:
``arn:aws:sts::123456789012:assumed-role/KernelRole/*``. An unbound principal has no roles
and may do nothing, not even read.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from modelops.errors import Forbidden


class Role(StrEnum):
    ML_ENGINEER = "ml-engineer"
    APPROVER = "approver"
    PLATFORM_ADMIN = "platform-admin"
    KERNEL = "kernel"


class Permission(StrEnum):
    READ = "read"
    REGISTER = "register"  # upload artifacts, register datasets and models
    PROMOTE = "promote"  # request a promotion, deprecate
    TRAIN = "train"  # submit, cancel and reproduce training jobs
    DEPLOY = "deploy"  # deploy, scale and roll back endpoints
    APPROVE = "approve"  # approve promotions and PII datasets
    RELAY_APPROVALS = "relay-approvals"  # submit approvals an approver's key signed
    ADMINISTER = "administer"  # approver keys, risk tiers, ledger checkpoints
    HOLD = "hold"  # place and release legal holds (they block retention expiry)


GRANTS: Mapping[Permission, frozenset[Role]] = {
    Permission.READ: frozenset(Role),
    Permission.REGISTER: frozenset({Role.ML_ENGINEER, Role.KERNEL, Role.PLATFORM_ADMIN}),
    Permission.PROMOTE: frozenset({Role.ML_ENGINEER, Role.KERNEL, Role.PLATFORM_ADMIN}),
    Permission.TRAIN: frozenset({Role.ML_ENGINEER, Role.KERNEL, Role.PLATFORM_ADMIN}),
    Permission.DEPLOY: frozenset({Role.ML_ENGINEER, Role.KERNEL, Role.PLATFORM_ADMIN}),
    Permission.APPROVE: frozenset({Role.APPROVER}),
    Permission.HOLD: frozenset({Role.APPROVER, Role.PLATFORM_ADMIN}),
    Permission.RELAY_APPROVALS: frozenset({Role.KERNEL}),
    Permission.ADMINISTER: frozenset({Role.PLATFORM_ADMIN}),
}


@dataclass(frozen=True)
class Caller:
    principal: str
    roles: frozenset[Role]

    def holds(self, permission: Permission) -> bool:
        return bool(self.roles & GRANTS[permission])

    def require(self, permission: Permission) -> None:
        """Raise Forbidden (before anything is written) unless a role grants ``permission``."""
        if not self.holds(permission):
            allowed = ", ".join(sorted(GRANTS[permission]))
            held = ", ".join(sorted(self.roles)) or "none"
            raise Forbidden(
                f"{permission.value} needs one of the roles {allowed}; {self.principal} has {held}"
            )


def roles_of(principal: str, bindings: Mapping[str, Sequence[str]]) -> frozenset[Role]:
    """Roles bound to ``principal``: the union over every matching pattern."""
    return frozenset(
        Role(role)
        for pattern, roles in bindings.items()
        if fnmatch.fnmatchcase(principal, pattern)
        for role in roles
    )
