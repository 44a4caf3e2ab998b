"""Resource-policy denies for the local cloud: S3 bucket policies and KMS key policies.

Pinned to moto 5.2.5. Re-check the hooks below when it changes.

What AWS does
-------------
Every request is evaluated against the policies of its caller and of the resource; an
explicit ``Deny`` in a bucket policy or a key policy wins over any ``Allow``, whoever the
caller is (the account's administrators and its root user too). Conditions decide for whom a
statement holds: ``aws:PrincipalArn`` is the caller's IAM user ARN, or for a role session
(STS ``AssumeRole``, a Lambda function, a SageMaker job) the ARN of the *role*
(``arn:aws:iam::<account>:role/<name>``), not of the session. S3 refuses with
``AccessDenied`` (HTTP 403; a HEAD has no body) and KMS with ``AccessDeniedException``
(HTTP 400), both saying "... with an explicit deny in a resource-based policy". Which S3
permission a request needs: ``GetObject`` and ``HeadObject`` need ``s3:GetObject``
(``s3:GetObjectVersion`` with a ``versionId``), as does the *source* of ``CopyObject`` and
``UploadPartCopy`` and ``SelectObjectContent``; ``GetObjectAttributes`` needs
``s3:GetObjectAttributes``, ``PutObject`` ``s3:PutObject``, and so on.

What moto 5.2.5 does, and what :func:`install` patches
------------------------------------------------------
moto checks IAM only when told to (it is not, here), and of a bucket policy it evaluates a
crude subset blind to callers: every object request is checked as ``s3:<Method>Object``
(``s3:GetObject`` even for ``?tagging`` or ``?attributes``, ``s3:HeadObject`` for HEAD),
principals other than ``"*"`` and conditions other than ``StringEquals`` are ignored, and a
match is a bare 403 without a body. So a statement that denies ``s3:GetObject`` to everyone
*but* some roles denies it to everyone. KMS evaluates key policies for ``DescribeKey``
only, again without principals or conditions. :func:`install` patches:

1. ``S3Response._key_response`` (every object-level request, signed, presigned or anonymous):
   the object action the request needs (above) is evaluated against the Deny statements of
   the bucket's policy, and for ``CopyObject``/``UploadPartCopy`` the source's read action
   against the source bucket's policy, for the caller; a matching Deny is answered like S3
   (403 ``AccessDenied`` with the AWS message). Only buckets with a policy pay for this (a
   dictionary lookup for the others).
2. ``FakeBucket.get_permission`` (moto's crude check): while a request patched in 1. runs,
   a DENIED verdict of moto's is ignored, 1. having decided with the caller in view. Outside
   (``DeleteObjects``, the one bucket-level request moto checks) moto's verdict stands.
3. ``KmsResponse.decrypt``, ``generate_mac`` and ``verify_mac``: ``kms:Decrypt`` on the
   ciphertext's key, ``kms:GenerateMac``/``kms:VerifyMac`` on the named key, are evaluated
   against the Deny statements of the key's policy (``AccessDeniedException``). A key
   policy is parsed once per text; keys whose policy has no Deny (moto's default policy)
   cost a cache lookup.

The caller (:func:`caller_for_access_key`) is found from the request's SigV4 access key id
(``Authorization`` header, or ``X-Amz-Credential`` of a presigned URL; SigV2 forms too) in
moto's IAM: an IAM user's access key is that user; an STS key (``AssumeRole``) is a session
of the role it assumed; any other key (moto's default credentials, the local cloud's
bootstrap and executor identities) is the account's root user, which a Deny binds too.
Signatures are not verified (moto does not verify them either).

What a statement may say (:func:`explicit_deny`): ``Effect`` (only ``Deny`` statements are
evaluated: Allow statements cannot be evaluated without identity policies, and moto does
not enforce those); ``Principal``/``NotPrincipal`` as ``"*"`` or ``{"AWS": ...}`` with
``"*"``, account ids, account root ARNs, role or user ARNs or assumed-role session ARNs
(``Service``, ``Federated`` and ``CanonicalUser`` principals never match a caller here);
``Action``/``NotAction`` (case-insensitive, ``*`` and ``?`` wildcards);
``Resource``/``NotResource`` (``*`` and ``?`` wildcards); ``Condition`` with the operators
``StringEquals``, ``StringNotEquals``, ``StringEqualsIgnoreCase``,
``StringNotEqualsIgnoreCase``, ``StringLike``, ``StringNotLike``, ``ArnEquals``,
``ArnLike``, ``ArnNotEquals``, ``ArnNotLike`` (each also with ``IfExists`` and the
``ForAnyValue:``/``ForAllValues:`` qualifiers) on the keys ``aws:PrincipalArn``,
``aws:PrincipalAccount`` and ``aws:PrincipalType``. A statement using anything else is
treated as not matching, and a warning is logged once per construct: the emulator fails
open on what it cannot judge, loudly.

Gaps: bucket-level requests (``ListObjects``, ``GetBucketPolicy``, ...) are not evaluated;
S3 does not consult the key policy when it reads an SSE-KMS object (AWS needs
``kms:Decrypt`` on the object's key for that; the bucket policy is what refuses here);
of KMS operations only ``Decrypt``, ``GenerateMac`` and ``VerifyMac`` (the key named by
``KeyId``) are evaluated; Allow statements, identity policies,
permission boundaries, SCPs, session policies, ``aws:MultiFactorAuthPresent`` and
expiry of temporary credentials are not.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import json
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from moto.core.exceptions import JsonRESTError
from moto.iam.access_control import PermissionResult
from moto.iam.models import iam_backends
from moto.kms.responses import KmsResponse
from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeBucket
from moto.s3.responses import S3Response
from moto.sts.models import sts_backends

__all__ = [
    "Caller",
    "access_key_id",
    "caller_for_access_key",
    "explicit_deny",
    "install",
    "installed",
    "known_access_key",
    "object_actions",
    "uninstall",
]

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account
_PARTITION = "aws"

logger = logging.getLogger(__name__)


# --- the caller ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as policy evaluation sees it."""

    principal_arn: str  # aws:PrincipalArn: a user's ARN, a session's role ARN, or root
    arn: str  # the identity error messages name: the user, the role session, or root
    account: str  # aws:PrincipalAccount
    kind: str  # aws:PrincipalType: "User", "AssumedRole" or "Account"

    @classmethod
    def root(cls, account: str) -> Caller:
        arn = f"arn:{_PARTITION}:iam::{account}:root"
        return cls(principal_arn=arn, arn=arn, account=account, kind="Account")

    @classmethod
    def role_session(cls, role_arn: str, session_name: str) -> Caller:
        """A session of ``role_arn`` (STS AssumeRole, or a service acting with the role)."""
        account = _arn_account(role_arn) or DEFAULT_ACCOUNT_ID
        name = role_arn.rsplit("/", 1)[-1]
        return cls(
            principal_arn=role_arn,
            arn=f"arn:{_PARTITION}:sts::{account}:assumed-role/{name}/{session_name}",
            account=account,
            kind="AssumedRole",
        )

    @classmethod
    def user(cls, user_arn: str) -> Caller:
        account = _arn_account(user_arn) or DEFAULT_ACCOUNT_ID
        return cls(principal_arn=user_arn, arn=user_arn, account=account, kind="User")


def _arn_account(arn: str) -> str | None:
    parts = arn.split(":", 5)
    return parts[4] if len(parts) == 6 and parts[4] else None


_AUTH_V4 = re.compile(r"Credential=([^/,\s]+)/")
_AUTH_V2 = re.compile(r"^AWS ([^:\s]+):")


def access_key_id(
    headers: Mapping[str, str], query: Mapping[str, Sequence[str]] | None = None
) -> str | None:
    """The access key id a request was signed with: SigV4 ``Authorization`` header or
    presigned ``X-Amz-Credential``, SigV2 header or ``AWSAccessKeyId``; None if unsigned."""
    authorization = headers.get("Authorization") or headers.get("authorization") or ""
    match = _AUTH_V4.search(authorization) or _AUTH_V2.search(authorization)
    if match:
        return match.group(1)
    for name in ("X-Amz-Credential", "AWSAccessKeyId"):
        values = (query or {}).get(name)
        if values:
            return unquote(values[0]).split("/", 1)[0] or None
    return None


def caller_for_access_key(access_key: str | None, account: str = DEFAULT_ACCOUNT_ID) -> Caller:
    """The caller holding ``access_key`` in moto's IAM and STS (see the module docstring);
    an unknown or missing key is ``account``'s root user."""
    if access_key:
        for account_id, backends in list(iam_backends.items()):
            backend = backends.get(_PARTITION)
            if backend is None:
                continue
            key = backend.access_keys.get(access_key)
            if key is None:
                continue
            if key.role_arn:
                return Caller.role_session(key.role_arn, _session_name(account_id, access_key))
            user = backend.users.get(key.user_name) if key.user_name else None
            if user is not None:
                return Caller.user(str(user.arn))
            if key.user_name:
                return Caller.user(f"arn:{_PARTITION}:iam::{account_id}:user/{key.user_name}")
    return Caller.root(account)


def _session_name(account: str, access_key: str) -> str:
    try:
        for role in list(sts_backends[account][_PARTITION].assumed_roles):
            if role.access_key_id == access_key:
                return str(role.session_name)
    except KeyError:
        pass
    return "session"


# --- statements ----------------------------------------------------------------------------

_WARNED: set[str] = set()
_WARN_LOCK = threading.Lock()


def _warn_once(what: str) -> None:
    with _WARN_LOCK:
        if what in _WARNED:
            return
        _WARNED.add(what)
    logger.warning(
        "local cloud resource policies: %s is not understood; statements using it are "
        "treated as not matching",
        what,
    )


class _Unsupported(Exception):
    """A statement uses something the evaluator does not understand."""


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )  # IAM wildcards: * any run, ? one character; nothing else is special
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _like(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).match(value) is not None


def _arn_like(pattern: str, value: str) -> bool:
    """ArnEquals/ArnLike: the six colon-separated parts matched one by one, with wildcards."""
    if pattern == "*":
        return True
    wanted, actual = pattern.split(":", 5), value.split(":", 5)
    return len(wanted) == len(actual) == 6 and all(
        _like(w, a) for w, a in zip(wanted, actual, strict=True)
    )


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _strings(value: Any, what: str) -> list[str]:
    values = _as_list(value)
    if not all(isinstance(v, str) for v in values):
        raise _Unsupported(f"a non-string value in {what}")
    return values


_OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    # operator -> (does this policy value match the request's value, negated)
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (_like, False),
    "StringNotLike": (_like, True),
    "ArnEquals": (_arn_like, False),
    "ArnLike": (_arn_like, False),
    "ArnNotEquals": (_arn_like, True),
    "ArnNotLike": (_arn_like, True),
}
_CONTEXT_KEYS = {"aws:principalarn", "aws:principalaccount", "aws:principaltype"}


def _context(caller: Caller) -> dict[str, str]:
    return {
        "aws:principalarn": caller.principal_arn,
        "aws:principalaccount": caller.account,
        "aws:principaltype": caller.kind,
    }


def _condition_holds(
    operator: str, key: str, values: list[str], context: Mapping[str, str]
) -> bool:
    qualifier, _, bare = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise _Unsupported(f"condition operator {operator!r}")
    if_exists = bare.endswith("IfExists")
    name = bare.removesuffix("IfExists")
    if name not in _OPERATORS:
        raise _Unsupported(f"condition operator {operator!r}")
    if key.lower() not in _CONTEXT_KEYS:
        raise _Unsupported(f"condition key {key!r}")
    matches, negated = _OPERATORS[name]
    actual = context.get(key.lower())
    if actual is None:  # a key absent from the request: only negated forms, IfExists and
        return if_exists or negated or qualifier == "ForAllValues"  # ForAllValues hold
    hit = any(matches(value, actual) for value in values)
    return not hit if negated else hit


def _conditions_hold(conditions: Any, context: Mapping[str, str]) -> bool:
    if conditions is None:
        return True
    if not isinstance(conditions, dict):
        raise _Unsupported("a Condition that is not an object")
    for operator, pairs in conditions.items():
        if not isinstance(pairs, dict):
            raise _Unsupported(f"condition operator {operator!r} without key/value pairs")
        for key, value in pairs.items():
            if not _condition_holds(operator, key, _strings(value, operator), context):
                return False
    return True


def _principal_matches(principal: Any, caller: Caller) -> bool:
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        raise _Unsupported(f"Principal {principal!r}")
    for kind, value in principal.items():
        if kind in ("Service", "Federated", "CanonicalUser"):
            continue  # never one of this evaluator's callers
        if kind != "AWS":
            raise _Unsupported(f"principal type {kind!r}")
        for entry in _strings(value, "Principal"):
            if entry in ("*", caller.principal_arn, caller.arn):
                return True
            if entry in (caller.account, f"arn:{_PARTITION}:iam::{caller.account}:root"):
                return True  # an account principal stands for every principal in it
    return False


def _element_matches(
    statement: Mapping[str, Any], name: str, value: str, match: Callable[[str, str], bool]
) -> bool:
    """``name`` (Action, Resource) or its Not-form; a statement must have one of the two."""
    if name in statement:
        return any(match(p, value) for p in _strings(statement[name], name))
    negated = f"Not{name}"
    if negated in statement:
        return not any(match(p, value) for p in _strings(statement[negated], negated))
    raise _Unsupported(f"a statement without {name} or {negated}")


def _statement_denies(
    statement: Mapping[str, Any], action: str, resource: str, caller: Caller
) -> bool:
    if "Principal" in statement:
        if not _principal_matches(statement["Principal"], caller):
            return False
    elif "NotPrincipal" in statement:
        if _principal_matches(statement["NotPrincipal"], caller):
            return False
    else:
        raise _Unsupported("a resource-policy statement without Principal or NotPrincipal")
    if not _element_matches(
        statement, "Action", action, lambda p, v: _like(p, v, ignore_case=True)
    ):
        return False
    if not _element_matches(statement, "Resource", resource, _like):
        return False
    return _conditions_hold(statement.get("Condition"), _context(caller))


@functools.lru_cache(maxsize=256)
def _deny_statements(policy: str) -> tuple[Mapping[str, Any], ...]:
    """The policy's Deny statements (parsed once per policy text)."""
    try:
        document = json.loads(policy)
    except ValueError:
        _warn_once("a policy that is not JSON")
        return ()
    if not isinstance(document, dict):
        _warn_once("a policy that is not a JSON object")
        return ()
    statements = [s for s in _as_list(document.get("Statement", [])) if isinstance(s, dict)]
    return tuple(s for s in statements if s.get("Effect") == "Deny")


def _policy_text(policy: str | bytes | Mapping[str, Any]) -> str:
    if isinstance(policy, bytes):
        return policy.decode("utf-8", "replace")
    if isinstance(policy, str):
        return policy
    return json.dumps(policy, sort_keys=True)


def explicit_deny(
    policy: str | bytes | Mapping[str, Any] | None,
    *,
    action: str,
    resource: str,
    caller: Caller,
) -> Mapping[str, Any] | None:
    """The first Deny statement of the resource policy that applies to ``caller`` doing
    ``action`` (``s3:GetObject``, ``kms:Decrypt``) on ``resource`` (an ARN), or None."""
    if policy is None:
        return None
    for statement in _deny_statements(_policy_text(policy)):
        try:
            if _statement_denies(statement, action, resource, caller):
                return statement
        except _Unsupported as unsupported:
            _warn_once(str(unsupported))
    return None


def _denied_message(caller: Caller, action: str, resource: str, quote: bool) -> str:
    shown = f'"{resource}"' if quote else resource
    return (
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {shown} "
        "with an explicit deny in a resource-based policy"
    )


# --- S3 --------------------------------------------------------------------------------------

# Object subresources (query parameters) -> the permission, (unversioned, versioned).
_GET = {
    "uploadId": ("s3:ListMultipartUploadParts", "s3:ListMultipartUploadParts"),
    "acl": ("s3:GetObjectAcl", "s3:GetObjectVersionAcl"),
    "tagging": ("s3:GetObjectTagging", "s3:GetObjectVersionTagging"),
    "legal-hold": ("s3:GetObjectLegalHold", "s3:GetObjectLegalHold"),
    "retention": ("s3:GetObjectRetention", "s3:GetObjectRetention"),
    "attributes": ("s3:GetObjectAttributes", "s3:GetObjectVersionAttributes"),
    "torrent": ("s3:GetObjectTorrent", "s3:GetObjectVersionTorrent"),
}
_PUT = {
    "acl": ("s3:PutObjectAcl", "s3:PutObjectVersionAcl"),
    "tagging": ("s3:PutObjectTagging", "s3:PutObjectVersionTagging"),
    "legal-hold": ("s3:PutObjectLegalHold", "s3:PutObjectLegalHold"),
    "retention": ("s3:PutObjectRetention", "s3:PutObjectRetention"),
}
_DELETE = {
    "uploadId": ("s3:AbortMultipartUpload", "s3:AbortMultipartUpload"),
    "tagging": ("s3:DeleteObjectTagging", "s3:DeleteObjectVersionTagging"),
}
_POST = {
    "select": ("s3:GetObject", "s3:GetObjectVersion"),
    "restore": ("s3:RestoreObject", "s3:RestoreObject"),
}
_READ = ("s3:GetObject", "s3:GetObjectVersion")
_DEFAULT = {
    "GET": _READ,
    "HEAD": _READ,
    "PUT": ("s3:PutObject", "s3:PutObject"),
    "DELETE": ("s3:DeleteObject", "s3:DeleteObjectVersion"),
    "POST": ("s3:PutObject", "s3:PutObject"),  # multipart create/complete
}
_SUBRESOURCES = {"GET": _GET, "HEAD": {}, "PUT": _PUT, "DELETE": _DELETE, "POST": _POST}


def object_actions(method: str, query: Mapping[str, Any]) -> str | None:
    """The S3 permission an object-level request needs (None for methods S3 does not
    authorize, such as OPTIONS)."""
    method = method.upper()
    default = _DEFAULT.get(method)
    if default is None:
        return None
    versioned = 1 if query.get("versionId") else 0
    for subresource, actions in _SUBRESOURCES[method].items():
        if subresource in query:
            return actions[versioned]
    return default[versioned]


def _copy_source(header: str) -> tuple[str, str, bool] | None:
    """(bucket, key, versioned) of an ``x-amz-copy-source`` header; None for access points."""
    source, _, query = header.partition("?")
    source = unquote(source).lstrip("/")
    if source.startswith("arn:"):
        return None
    bucket, _, key = source.partition("/")
    return bucket, key, "versionId=" in query


def _bucket_or_none(response: S3Response, name: str) -> Any:
    try:
        return response.backend.get_bucket(name)
    except S3ClientError:
        return None


def _s3_denial(response: S3Response, request: Any, full_url: str) -> tuple[str, str] | None:
    """(action, AWS's message) if a bucket policy denies this object request's caller."""
    bucket = _bucket_or_none(response, response.bucket_name)
    copy_header = request.headers.get("x-amz-copy-source")
    if (bucket is None or bucket.policy is None) and not copy_header:
        return None  # the fast path: no policy to evaluate
    query = parse_qs(urlparse(full_url).query, keep_blank_values=True)
    checks: list[tuple[Any, str, str]] = []
    if bucket is not None and bucket.policy is not None:
        action = object_actions(request.method, query)
        if action is not None:
            resource = f"arn:{_PARTITION}:s3:::{response.bucket_name}/{response.parse_key_name()}"
            checks.append((bucket, action, resource))
    if copy_header and request.method.upper() == "PUT":
        parsed = _copy_source(copy_header)
        if parsed is not None:
            source_bucket = _bucket_or_none(response, parsed[0])
            if source_bucket is not None and source_bucket.policy is not None:
                action = _READ[1] if parsed[2] else _READ[0]
                resource = f"arn:{_PARTITION}:s3:::{parsed[0]}/{parsed[1]}"
                checks.append((source_bucket, action, resource))
    if not checks:
        return None
    caller = caller_for_access_key(access_key_id(request.headers, query), response.current_account)
    for policy_bucket, action, resource in checks:
        if explicit_deny(policy_bucket.policy, action=action, resource=resource, caller=caller):
            return action, _denied_message(caller, action, resource, quote=True)
    return None


def _access_denied(method: str, message: str) -> tuple[int, dict[str, str], str]:
    request_id = uuid.uuid4().hex[:16].upper()
    headers = {"x-amz-request-id": request_id, "Content-Type": "application/xml"}
    if method.upper() == "HEAD":
        return 403, headers, ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>AccessDenied</Code><Message>{escape(message)}</Message>"
        f"<RequestId>{request_id}</RequestId>"
        f"<HostId>{base64.b64encode(uuid.uuid4().bytes).decode()}</HostId></Error>"
    )
    return 403, headers, body


# Set while a request that 1. has evaluated runs on: moto's crude verdict is then ignored.
_EVALUATED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "localcloud_resource_policy_evaluated", default=False
)
_ORIGINALS: dict[str, Any] = {}
_INSTALL_LOCK = threading.Lock()


def _key_response(self: S3Response, request: Any, full_url: str) -> Any:
    denial = _s3_denial(self, request, full_url)
    if denial is not None:
        return _access_denied(request.method, denial[1])
    token = _EVALUATED.set(True)
    try:
        return _ORIGINALS["key_response"](self, request, full_url)
    finally:
        _EVALUATED.reset(token)


def _get_permission(self: FakeBucket, action: str, resource: str) -> Any:
    verdict = _ORIGINALS["get_permission"](self, action, resource)
    if verdict == PermissionResult.DENIED and _EVALUATED.get():
        return PermissionResult.NEUTRAL
    return verdict


# --- KMS -------------------------------------------------------------------------------------

_KEY_ID_BYTES = 36  # moto's ciphertext blobs start with the key id


class KmsAccessDenied(JsonRESTError):
    """KMS's ``AccessDeniedException`` (HTTP 400), with its message (moto's own class of that
    name sends none)."""

    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("AccessDeniedException", message)


def _ciphertext_key(response: KmsResponse) -> Any:
    blob: Any = response._get_param("CiphertextBlob")
    if isinstance(blob, str):
        try:
            blob = base64.b64decode(blob)
        except ValueError:
            return None
    if isinstance(blob, bytes) and len(blob) >= _KEY_ID_BYTES:
        key_id = blob[:_KEY_ID_BYTES].decode("utf-8", "replace")
        key = response.kms_backend.keys.get(key_id)
        if key is not None:
            return key
    requested = response._get_param("KeyId")
    if requested:
        try:
            return response.kms_backend.keys.get(response.kms_backend.any_id_to_key_id(requested))
        except Exception:
            return None
    return None


def _check_key(response: KmsResponse, key: Any, action: str) -> None:
    """Refuse ``action`` with ``key`` when its key policy denies it to the caller."""
    if key is not None and key.policy and _deny_statements(_policy_text(key.policy)):
        caller = caller_for_access_key(
            access_key_id(response.headers, response.querystring), response.current_account
        )
        if explicit_deny(key.policy, action=action, resource=key.arn, caller=caller):
            raise KmsAccessDenied(_denied_message(caller, action, key.arn, quote=False))


def _decrypt(self: KmsResponse) -> Any:
    _check_key(self, _ciphertext_key(self), "kms:Decrypt")
    return _ORIGINALS["decrypt"](self)


def _named_key(response: KmsResponse) -> Any:
    try:
        backend = response.kms_backend
        return backend.keys.get(backend.any_id_to_key_id(response._get_param("KeyId")))
    except Exception:
        return None


def _generate_mac(self: KmsResponse) -> Any:
    _check_key(self, _named_key(self), "kms:GenerateMac")
    return _ORIGINALS["generate_mac"](self)


def _verify_mac(self: KmsResponse) -> Any:
    _check_key(self, _named_key(self), "kms:VerifyMac")
    return _ORIGINALS["verify_mac"](self)


# --- installation ----------------------------------------------------------------------------

_PATCHES: tuple[tuple[type, str, str, Callable[..., Any]], ...] = (
    (S3Response, "_key_response", "key_response", _key_response),
    (FakeBucket, "get_permission", "get_permission", _get_permission),
    (KmsResponse, "decrypt", "decrypt", _decrypt),
    (KmsResponse, "generate_mac", "generate_mac", _generate_mac),
    (KmsResponse, "verify_mac", "verify_mac", _verify_mac),
)


def install() -> None:
    """Evaluate bucket- and key-policy denies in moto (this process). Idempotent."""
    with _INSTALL_LOCK:
        if _ORIGINALS:
            return
        for owner, attribute, name, patched in _PATCHES:
            _ORIGINALS[name] = vars(owner)[attribute]
            setattr(owner, attribute, patched)


def uninstall() -> None:
    """Give moto its own (crude) behaviour back."""
    with _INSTALL_LOCK:
        for owner, attribute, name, _ in _PATCHES:
            if name in _ORIGINALS:
                setattr(owner, attribute, _ORIGINALS.pop(name))


def installed() -> bool:
    """Whether :func:`install` has patched moto (and :func:`uninstall` not undone it)."""
    return bool(_ORIGINALS)


def known_access_key(access_key: str) -> bool:
    """Whether moto's IAM (any account) holds this access key (users' keys and STS keys)."""
    for backends in list(iam_backends.values()):
        backend = backends.get(_PARTITION)
        if backend is not None and access_key in backend.access_keys:
            return True
    return False
