"""How an API call becomes an AuditEvent: action names from route templates, resources,
outcomes, reasons, digests and principals."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from modelops import api_audit
from modelops.config import Settings
from modelops.domain.ledger import Outcome

ENGINEER = "arn:aws:iam::123456789012:user/ml-engineer"
UPLOAD = "upl-0123456789abcdef0123456789abcdef"
MODEL = "mdl-0123456789abcdef01234567"


@pytest.fixture(scope="module")
def app() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver()
    routes = [
        ("POST", "/artifact/upload"),
        ("POST", "/artifact/upload/<upload_id>/complete"),
        ("POST", "/models/register"),
        ("POST", "/models/<model_id>/promote"),
        ("POST", "/models"),
        ("DELETE", "/models/<model_id>"),
        ("GET", "/models/<model_id>"),
        ("PUT", "/approvers/<approver_id>"),
        ("PATCH", "/dataset/<dataset_id>/pii-approval"),
    ]
    for method, path in routes:
        app.route(path, method=method)(lambda **_: {})
    return app


@pytest.fixture(autouse=True)
def registry_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        api_audit, "settings", lambda: Settings(region="us-east-1", audit_stream="registry")
    )


@pytest.mark.parametrize(
    ("method", "path", "action"),
    [
        ("POST", "/artifact/upload", "artifact.upload"),
        ("POST", f"/artifact/upload/{UPLOAD}/complete", "artifact.upload.complete"),
        ("POST", "/models/register", "models.register"),
        ("POST", f"/models/{MODEL}/promote", "models.promote"),
        ("POST", "/models", "models.create"),
        ("DELETE", f"/models/{MODEL}", "models.delete"),
        ("PUT", "/approvers/alice", "approvers.put"),
        ("PATCH", "/dataset/ds-1/pii-approval", "dataset.piiApproval.update"),
        ("POST", "/models/x/unknown/route", "models.unrouted"),
        ("POST", "/Weird-Path/x", "weirdPath.unrouted"),
        ("POST", "/", "api.unrouted"),
    ],
)
def test_action_names_come_from_the_method_and_route_template_never_ids(
    app: APIGatewayRestResolver, method: str, path: str, action: str
) -> None:
    template, _ = api_audit.route_of(app, method, path)
    assert api_audit.action_name(method, template, path) == action


def test_static_routes_win_over_dynamic_ones_as_the_resolver_matches(
    app: APIGatewayRestResolver,
) -> None:
    assert api_audit.route_of(app, "POST", "/models/register") == ("/models/register", {})
    assert api_audit.route_of(app, "POST", f"/models/{MODEL}/promote") == (
        "/models/<model_id>/promote",
        {"model_id": MODEL},
    )


def _event(method: str, path: str, body: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "httpMethod": method,
        "path": path,
        "body": body,
        "headers": extra.pop("headers", {}),
        "requestContext": {
            "requestId": "req-42",
            "identity": {"userArn": extra.pop("principal", ENGINEER), "sourceIp": "10.0.0.1"},
        },
        **extra,
    }


def _response(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "body": json.dumps(body)}


def test_a_successful_call_names_path_and_response_ids_and_digests_its_body(
    app: APIGatewayRestResolver,
) -> None:
    body = '{"parts": {}}'
    answer = {"artifact": {"artifactId": "art-" + "1" * 32, "uploadId": UPLOAD}, "created": True}
    event = api_audit.build_event(
        app,
        _event("POST", f"/artifact/upload/{UPLOAD}/complete", body),
        None,
        _response(201, answer),
        "corr-7",
    )
    assert event.stream == "registry" and event.principal == ENGINEER
    assert event.action == "artifact.upload.complete"
    assert event.resources == (UPLOAD, "art-" + "1" * 32)
    assert (event.outcome, event.status, event.reason) == (Outcome.SUCCEEDED, 201, "")
    assert event.inputDigest == hashlib.sha256(body.encode()).hexdigest()
    assert (event.requestId, event.correlationId) == ("req-42", "corr-7")
    assert event.details["route"] == "/artifact/upload/<upload_id>/complete"


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (403, "FORBIDDEN", Outcome.REJECTED),
        (409, "CONFLICT", Outcome.REJECTED),
        (422, "DIGEST_MISMATCH", Outcome.REJECTED),
        (500, "INTERNAL", Outcome.FAILED),
    ],
)
def test_a_rejected_or_failed_call_records_its_error_code_and_message(
    app: APIGatewayRestResolver, status: int, code: str, outcome: Outcome
) -> None:
    answer = {"error": {"code": code, "message": "no"}}
    event = api_audit.build_event(
        app, _event("POST", "/models/register", "{}"), None, _response(status, answer), ""
    )
    assert (event.outcome, event.status, event.reason) == (outcome, status, f"{code}: no")
    assert event.resources == () and event.correlationId == "req-42"


def test_a_caller_without_a_principal_is_recorded_as_unauthenticated(
    app: APIGatewayRestResolver,
) -> None:
    missing = api_audit.build_event(
        app, _event("POST", "/models/register", principal=None), None, _response(403, {}), ""
    )
    assert missing.principal == api_audit.UNAUTHENTICATED and missing.inputDigest == ""
    odd = api_audit.build_event(
        app, _event("POST", "/models/register", principal="someone"), None, _response(403, {}), ""
    )
    assert odd.principal == api_audit.UNAUTHENTICATED
    assert odd.details["claimedPrincipal"] == "someone" and odd.reason == "HTTP 403"


def test_base64_bodies_are_digested_as_the_caller_sent_them() -> None:
    raw = b"\x00binary\xff"
    event = {"body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    assert api_audit.input_digest(event) == hashlib.sha256(raw).hexdigest()
    assert api_audit.input_digest({"body": ""}) == ""


def test_the_idempotency_key_is_kept_with_the_event(app: APIGatewayRestResolver) -> None:
    event = api_audit.build_event(
        app,
        _event("POST", "/artifact/upload", "{}", headers={"Idempotency-Key": "k-1"}),
        None,
        _response(201, {"uploadId": UPLOAD}),
        "",
    )
    assert event.details["idempotencyKey"] == "k-1" and event.resources == (UPLOAD,)


def test_every_call_but_reads_is_audited_and_a_failed_append_answers_500(
    app: APIGatewayRestResolver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    from aws_lambda_powertools import Logger

    from modelops.api import run_api

    recorded: list[tuple[str, int]] = []

    def record(app: Any, event: Any, context: Any, response: Any, correlation_id: str) -> None:
        recorded.append((event["httpMethod"], response["statusCode"]))

    monkeypatch.setattr(api_audit, "record", record)
    logger = Logger(service="test")
    context: Any = SimpleNamespace(aws_request_id="r-1")
    for method, path in [("GET", f"/models/{MODEL}"), ("POST", "/models/register")]:
        assert run_api(app, logger, _event(method, path, "{}"), context)["statusCode"] == 200
    assert recorded == [("POST", 200)]

    def failing(*_: Any) -> None:
        raise RuntimeError("the ledger is down")

    monkeypatch.setattr(api_audit, "record", failing)
    response = run_api(app, logger, _event("POST", "/models/register", "{}"), context)
    assert response["statusCode"] == 500
    assert json.loads(response["body"])["error"]["code"] == "AUDIT_FAILED"
    assert "audit append failed" in capsys.readouterr().out
