from __future__ import annotations

import pytest

from modelops.domain.access import GRANTS, Caller, Permission, Role, roles_of
from modelops.errors import Forbidden

BINDINGS = {
    "arn:aws:iam::123456789012:user/ann": ["approver"],
    "arn:aws:sts::123456789012:assumed-role/ModelOpsKernel/*": ["kernel"],
    "arn:aws:iam::123456789012:user/*": ["ml-engineer"],
}


def test_assumed_role_sessions_bind_by_role_pattern() -> None:
    session = "arn:aws:sts::123456789012:assumed-role/ModelOpsKernel/request-42"
    assert roles_of(session, BINDINGS) == {Role.KERNEL}
    assert roles_of("arn:aws:sts::123456789012:assumed-role/Other/x", BINDINGS) == frozenset()


def test_a_principal_holds_the_union_of_every_matching_binding() -> None:
    assert roles_of("arn:aws:iam::123456789012:user/ann", BINDINGS) == {
        Role.APPROVER,
        Role.ML_ENGINEER,
    }


def test_unknown_role_names_in_configuration_are_refused() -> None:
    with pytest.raises(ValueError, match="superuser"):
        roles_of("arn:aws:iam::1:user/x", {"arn:aws:iam::1:user/x": ["superuser"]})


@pytest.mark.parametrize("permission", list(Permission))
def test_each_permission_is_refused_to_roles_that_do_not_hold_it(permission: Permission) -> None:
    for role in Role:
        caller = Caller("arn:aws:iam::1:user/x", frozenset({role}))
        if role in GRANTS[permission]:
            caller.require(permission)
        else:
            with pytest.raises(Forbidden, match=permission.value):
                caller.require(permission)


def test_approvers_cannot_register_and_engineers_cannot_approve() -> None:
    with pytest.raises(Forbidden):
        Caller("a", frozenset({Role.APPROVER})).require(Permission.REGISTER)
    with pytest.raises(Forbidden):
        Caller("e", frozenset({Role.ML_ENGINEER})).require(Permission.APPROVE)
