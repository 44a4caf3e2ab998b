"""What every REST function shares: the resolver, error mapping, the caller's principal,
correlation ids and Idempotency-Key handling. Routes stay thin: parse, call one service
method, return a contract."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentSchema,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops import correlation, wiring
from modelops.config import settings
from modelops.domain.access import Caller, Permission, roles_of
from modelops.errors import (
    AuditFailed,
    Forbidden,
    IdempotencyKeyReused,
    ModelOpsError,
    NotFound,
    RequestInProgress,
    ValidationFailed,
)

JSON = "application/json"
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_ERRORS = (
    (400, "The request is invalid; the error names the field."),
    (403, "The caller may not do this."),
    (404, "No such resource."),
    (409, "Conflicts with what is stored."),
    (422, "A reference or digest does not check out."),
)


def _responses(success: dict[int, str]) -> dict[int, OpenAPIResponse]:
    """A fresh OpenAPI responses map per route (the resolver fills success content in)."""
    documented: dict[int, OpenAPIResponse] = {
        code: {"description": text} for code, text in success.items()
    }
    for code, text in _ERRORS:
        error: OpenAPIResponseContentSchema = {
            "schema": {"$ref": "#/components/schemas/ErrorResponse"}
        }
        documented[code] = {"description": text, "content": {JSON: error}}
    return documented


def read_responses() -> dict[int, OpenAPIResponse]:
    return _responses({200: "OK."})


def write_responses() -> dict[int, OpenAPIResponse]:
    return _responses({201: "Created.", 200: "Already existed (an identical retry)."})


def accepted_responses(text: str) -> dict[int, OpenAPIResponse]:
    return _responses({202: text})


def error_response(error: ModelOpsError) -> Response[dict[str, Any]]:
    return Response(status_code=error.status, content_type=JSON, body=error.to_body())


def build_resolver(logger: Logger) -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True)

    def _bound_principals_only(
        resolver: APIGatewayRestResolver, next_middleware: NextMiddleware
    ) -> Response[Any]:
        # Every route, reads included, is for principals that configuration binds to a
        # role; mutating routes check their own permission in the service they call.
        caller(resolver).require(Permission.READ)
        return next_middleware(resolver)

    app.use(middlewares=[_bound_principals_only])

    @app.exception_handler(ModelOpsError)
    def _typed(error: ModelOpsError) -> Response[dict[str, Any]]:
        logger.info("request rejected", extra={"code": error.code, "status": error.status})
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    def _invalid(error: RequestValidationError) -> Response[dict[str, Any]]:
        details = [
            {
                "field": ".".join(str(part) for part in e.get("loc", ()) if part != "body"),
                "message": e.get("msg", "invalid"),
            }
            for e in error.errors()
        ]
        fields = ", ".join(d["field"] or "body" for d in details[:5])
        return error_response(ValidationFailed(f"invalid request: check {fields}", details=details))

    @app.not_found
    def _no_route(_: Exception) -> Response[dict[str, Any]]:
        event = app.current_event
        return error_response(NotFound(f"no route for {event.http_method} {event.path}"))

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response[dict[str, Any]]:
        logger.exception("unhandled error")
        body = {
            "error": {
                "code": "INTERNAL",
                "message": "internal error; retry, or report the correlation id",
            }
        }
        return Response(status_code=500, content_type=JSON, body=body)

    return app


def caller(router: BaseRouter) -> Caller:
    """The caller: its IAM principal ARN, as API Gateway's IAM authorizer established it,
    and the roles configuration binds to it."""
    event = router.current_event
    if not isinstance(event, APIGatewayProxyEvent):
        raise Forbidden("the request did not come through the REST API")
    arn = event.request_context.identity.user_arn
    if not arn:
        raise Forbidden("the request carries no IAM principal")
    return Caller(str(arn), roles_of(str(arn), settings().role_bindings))


def _correlation_id(event: dict[str, Any]) -> str:
    """The caller's X-Correlation-Id, else API Gateway's request id."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    return str(
        headers.get("x-correlation-id") or (event.get("requestContext") or {}).get("requestId", "")
    )


def correlation_id(router: BaseRouter) -> str:
    """The correlation id of the request being routed (carried into workflows and events)."""
    return _correlation_id(router.current_event.raw_event)


class _ServerError(Exception):
    """Raised inside the idempotent call so that a 5xx response is never cached."""

    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__("server error")
        self.response = response


@cache
def _idempotency_config() -> Any:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="body",
        expires_after_seconds=settings().idempotency_ttl_seconds,
    )


@cache
def _idempotent(app: APIGatewayRestResolver) -> Callable[..., dict[str, Any]]:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function

    @idempotent_function(
        data_keyword_argument="request",
        persistence_store=wiring.idempotency_store(),
        config=_idempotency_config(),
    )
    def resolve(
        request: dict[str, Any], event: dict[str, Any], context: LambdaContext
    ) -> dict[str, Any]:
        response = app.resolve(event, context)
        if int(response["statusCode"]) >= 500:
            raise _ServerError(response)
        return response

    return cast(Callable[..., dict[str, Any]], resolve)


def _replayed(
    app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext, key: str
) -> dict[str, Any]:
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    if not IDEMPOTENCY_KEY.match(key):
        return _as_proxy(
            ValidationFailed("Idempotency-Key must be 1-255 printable ASCII characters")
        )
    identity = (event.get("requestContext") or {}).get("identity") or {}
    request = {
        "key": [identity.get("userArn"), event.get("httpMethod"), event.get("path"), key],
        "body": event.get("body"),
    }
    # An in-progress record then expires with this invocation (its remaining time): a
    # request that died after storing it (timeout, lost answer) does not wedge its key.
    _idempotency_config().register_lambda_context(context)
    try:
        return _idempotent(app)(request=request, event=event, context=context)
    except _ServerError as error:
        return error.response
    except IdempotencyValidationError:
        return _as_proxy(
            IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
        )
    except IdempotencyAlreadyInProgressError:
        return _as_proxy(
            RequestInProgress("a request with this Idempotency-Key is in progress; retry later")
        )


def _as_proxy(error: ModelOpsError) -> dict[str, Any]:
    import json

    return {
        "statusCode": error.status,
        "headers": {"Content-Type": JSON},
        "body": json.dumps(error.to_body()),
        "isBase64Encoded": False,
    }


def run_api(
    app: APIGatewayRestResolver, logger: Logger, event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    """Resolve one API Gateway event: correlation id in, POST retries deduplicated, every
    call that is not a read audited (``modelops.api_audit``)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    correlation_id = _correlation_id(event)
    correlation.bind(logger, correlation_id)
    key = headers.get("idempotency-key")
    if event.get("httpMethod") == "POST" and key is not None:
        response = _replayed(app, event, context, key)
    else:
        response = app.resolve(event, context)
    if str(event.get("httpMethod") or "").upper() not in _READS:
        response = _audited(app, logger, event, context, response, correlation_id=correlation_id)
    response.setdefault("headers", {})["X-Correlation-Id"] = correlation_id
    return response


_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def _audited(
    app: APIGatewayRestResolver,
    logger: Logger,
    event: dict[str, Any],
    context: LambdaContext,
    response: dict[str, Any],
    *,
    correlation_id: str,
) -> dict[str, Any]:
    """``response`` once its audit event is appended; a 500 if it could not be."""
    from modelops import api_audit  # only calls that are not reads load the ledger

    try:
        api_audit.record(app, event, context, response, correlation_id)
    except Exception:
        logger.exception(
            "audit append failed: answering 500 instead",
            extra={"status": response.get("statusCode"), "path": event.get("path")},
        )
        return _as_proxy(
            AuditFailed("the call's audit record could not be written; retry the request")
        )
    return response
