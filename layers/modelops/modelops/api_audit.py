"""The audit record of an API call. Every request that is not a read (GET, HEAD, OPTIONS)
appends one ``AuditEvent`` to its function's ledger stream, whatever the answer: success,
rejection (4xx, an unbound caller included), failure (5xx) or idempotent replay.
``modelops.api.run_api`` calls ``record`` once the response is known; this module is
imported only then, so reads never load the audit machinery.

Streams: a function's mutating calls go to the stream named after it without ``-api``
(``registry-api`` -> ``registry``).

Actions are named from the method and the matched route template, never from the raw
path: the template's literal segments, camelCased, joined with dots, so
``POST /artifact/upload/{uploadId}/complete`` is ``artifact.upload.complete``. A method
other than POST appends its verb (``DELETE /models/{id}`` -> ``models.delete``, ``PUT`` ->
``put``, ``PATCH`` -> ``update``), as does a POST to a single literal segment (``POST
/models`` -> ``models.create``). A request that matches no route is
``<first segment>.unrouted``.

Resources are the path parameters' values, then the ids the response body names
(``RESOURCE_KEYS``, at the top level or in an object one level down).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops import wiring
from modelops.config import settings
from modelops.domain.ledger import PRINCIPAL_PATTERN, AuditEvent, LedgerRecord, Outcome

# Most specific first: a registered model names its modelId before its artifactId.
RESOURCE_KEYS = (
    "jobId",
    "promotionId",
    "approvalId",
    "approverId",
    "modelId",
    "datasetId",
    "artifactId",
    "uploadId",
)
# Recorded when API Gateway passed no principal (never, behind the IAM authorizer).
UNAUTHENTICATED = "arn:aws:iam::000000000000:user/unauthenticated"
_VERBS = {"PUT": "put", "PATCH": "update", "DELETE": "delete"}
_PRINCIPAL = re.compile(PRINCIPAL_PATTERN)
_SEGMENT = re.compile(r"^[a-z][a-zA-Z0-9]*$")
_MAX_RESOURCES = 32
_MAX_ID = 128


def record(
    app: APIGatewayRestResolver,
    event: Mapping[str, Any],
    context: LambdaContext | None,
    response: Mapping[str, Any],
    correlation_id: str,
) -> LedgerRecord:
    """Append the audit event of ``event`` answered by ``response``."""
    audit_event = build_event(app, event, context, response, correlation_id)
    return wiring.audit_service().record(audit_event)


def build_event(
    app: APIGatewayRestResolver,
    event: Mapping[str, Any],
    context: LambdaContext | None,
    response: Mapping[str, Any],
    correlation_id: str,
) -> AuditEvent:
    method = str(event.get("httpMethod") or "").upper()
    path = str(event.get("path") or "/")
    request_context = event.get("requestContext") or {}
    identity = request_context.get("identity") or {}
    template, parameters = route_of(app, method, path)
    status = int(response.get("statusCode") or 500)
    body = _json(response.get("body"))

    principal = str(identity.get("userArn") or "")
    details = {"method": method, "path": path[:1024], "route": template or ""}
    if not _PRINCIPAL.match(principal):
        if principal:
            details["claimedPrincipal"] = principal[:1024]
        principal = UNAUTHENTICATED
    headers = {k.lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if "idempotency-key" in headers:
        details["idempotencyKey"] = headers["idempotency-key"][:255]
    if identity.get("sourceIp"):
        details["sourceIp"] = str(identity["sourceIp"])
    request_id = str(
        request_context.get("requestId") or getattr(context, "aws_request_id", "") or "unknown"
    )[:_MAX_ID]

    return AuditEvent(
        stream=settings().require("audit_stream"),
        eventId=str(uuid.uuid4()),
        time=datetime.now(UTC),
        principal=principal,
        action=action_name(method, template, path),
        resources=_resources(parameters, body),
        requestId=request_id,
        correlationId=(correlation_id or request_id)[:_MAX_ID],
        outcome=outcome_of(status),
        status=status,
        reason=_reason(status, body),
        inputDigest=input_digest(event),
        details=details,
    )


def route_of(
    app: APIGatewayRestResolver, method: str, path: str
) -> tuple[str | None, dict[str, str]]:
    """The template of the route that ``method path`` resolves to, and its parameters.

    Static routes first, as the resolver matches them."""
    for route in (*app._static_routes, *app._dynamic_routes):
        if route.method != method:
            continue
        match = route.rule.match(path)
        if match:
            return str(route.path), {k: str(v) for k, v in match.groupdict().items()}
    return None, {}


def action_name(method: str, template: str | None, path: str) -> str:
    if template is None:
        first = path.strip("/").split("/")[0]
        first = _camel(first) if first else ""
        return f"{first if _SEGMENT.match(first) else 'api'}.unrouted"
    literals = [
        _camel(segment)
        for segment in template.strip("/").split("/")
        if segment and not segment.startswith("<")
    ]
    literals = [segment for segment in literals if _SEGMENT.match(segment)] or ["api"]
    if method in _VERBS:
        literals.append(_VERBS[method])
    elif method == "POST" and len(literals) == 1:
        literals.append("create")
    elif method != "POST":
        literals.append(_camel(method.lower()) or "call")
    return ".".join(literals)


def outcome_of(status: int) -> Outcome:
    if status >= 500:
        return Outcome.FAILED
    if status >= 400:
        return Outcome.REJECTED
    return Outcome.SUCCEEDED


def input_digest(event: Mapping[str, Any]) -> str:
    """SHA-256 of the request body as the caller sent it; '' when there is none."""
    body = event.get("body")
    if not body:
        return ""
    data = body.encode() if isinstance(body, str) else bytes(body)
    if event.get("isBase64Encoded"):
        with contextlib.suppress(binascii.Error):  # else hashed as received
            data = base64.b64decode(data, validate=True)
    return hashlib.sha256(data).hexdigest()


def _camel(segment: str) -> str:
    parts = [p for p in re.split(r"[-_.]", segment) if p]
    if not parts:
        return ""
    return parts[0][:1].lower() + parts[0][1:] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _json(body: Any) -> Any:
    if not isinstance(body, str) or not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _ids(value: Any, depth: int) -> Iterator[str]:
    if not isinstance(value, dict):
        return
    for key in RESOURCE_KEYS:
        found = value.get(key)
        if isinstance(found, str) and found:
            yield found
    if depth > 0:
        for inner in value.values():
            yield from _ids(inner, depth - 1)


def _resources(parameters: Mapping[str, str], body: Any) -> tuple[str, ...]:
    ids = [*parameters.values(), *_ids(body, 1)]
    unique = dict.fromkeys(i[:256] for i in ids if i)
    return tuple(unique)[:_MAX_RESOURCES]


def _reason(status: int, body: Any) -> str:
    if status < 400:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code"):
        return f"{error['code']}: {error.get('message', '')}"[:1024]
    return f"HTTP {status}"
