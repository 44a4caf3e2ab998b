"""Callers shared by the SigV4 verifier and gateway tests: a user and an assumed-role session."""

from __future__ import annotations

from localcloud.sigv4 import Credential

KERNEL = Credential(
    access_key_id="AKIAKERNELEXAMPLE001",
    secret_access_key="kernel/secret+key/EXAMPLEKEY0000000000001",
    principal_arn="arn:aws:iam::111122223333:user/kernel",
    account_id="111122223333",
    user_id="AIDAKERNELEXAMPLE0001",
)
SESSION = Credential(
    access_key_id="ASIASESSIONEXAMPLE01",
    secret_access_key="session/secret/EXAMPLEKEY00000000000002",
    principal_arn="arn:aws:sts::111122223333:assumed-role/kernel-role/kernel-session",
    account_id="111122223333",
    user_id="AROASESSIONEXAMPLE01:kernel-session",
    session_token="FQoGZXIvYXdzEXAMPLETOKEN//////////wEaDEXAMPLE==",
)
KNOWN = {credential.access_key_id: credential for credential in (KERNEL, SESSION)}
