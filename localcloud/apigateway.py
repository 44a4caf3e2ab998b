"""The local cloud's API Gateway: a REST API with AWS_IAM auth and Lambda proxy integration.

One HTTP server on 127.0.0.1 stands in for a deployed REST API stage. Every method of
every resource is authorised with AWS_IAM: the request must carry a SigV4 signature for
service ``execute-api`` in the gateway's region, made with a key ``lookup`` knows. The
caller's principal then appears in ``requestContext.identity`` exactly where Lambda
handlers find it behind the real service.

Routing. ``routes`` maps the first path segment to a Lambda function name; each entry
stands for the two resources ``/{segment}`` and ``/{segment}/{proxy+}`` with an ``ANY``
method. A path whose first segment has no route is answered like real API Gateway answers
a path without a resource: 403 ``MissingAuthenticationTokenException``
``{"message":"Missing Authentication Token"}``, whether or not the request is signed.

URL and stage. ``url`` is the base URL clients use, e.g. ``http://127.0.0.1:PORT``, and
paths carry NO stage prefix (``/models``, not ``/local/models``), as behind a custom
domain name mapped to the stage. The stage is still reported: ``requestContext.stage`` is
the stage name and ``requestContext.path`` is ``/{stage}{path}`` as the default
``execute-api`` endpoint reports it. ``/local/models`` is an unknown route here.

Proxy event (REST API payload format 1.0): ``headers`` and ``queryStringParameters``
hold the last value per name, the ``multiValue*`` fields all values; query names and
values are URL-decoded (``+`` is a space); empty maps are ``None``. API Gateway adds
``X-Forwarded-For``, ``X-Forwarded-Port``, ``X-Forwarded-Proto`` and ``X-Amzn-Trace-Id``
headers, and so does this gateway. The body is passed as text when the media type is
textual (``text/*``, JSON, XML, form data; a missing Content-Type counts as JSON) and
the bytes are valid UTF-8; otherwise it is base64 with ``isBase64Encoded: true``, which
is how a REST API whose ``binaryMediaTypes`` covers every non-text type behaves.

Proxy response: ``statusCode`` (required), ``headers``, ``multiValueHeaders`` (merged;
``multiValueHeaders`` wins for a name in both), ``body`` (string) and
``isBase64Encoded``. Anything else, or an exception from ``invoke``, gives API Gateway's
502 ``{"message":"Internal server error"}``. ``Content-Type`` defaults to
``application/json`` as in REST APIs. Every response carries ``x-amzn-RequestId``,
``x-amz-apigw-id`` and ``Content-Length`` (except 1xx/204/304, which have no body).

Signature checks allow 5 minutes of clock skew, like API Gateway. Request bodies above
10 MiB are refused with 413, API Gateway's payload limit. Connections are kept alive
(HTTP/1.1).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import secrets
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote, unquote_plus, urlsplit

from localcloud.sigv4 import Credential, SignatureError, SignatureFailure, verify

logger = logging.getLogger(__name__)

Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
Lookup = Callable[[str], Credential | None]

SERVICE = "execute-api"
API_GATEWAY_MAX_SKEW = timedelta(minutes=5)
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024

_MISSING_TOKEN = "Missing Authentication Token"

_ALPHANUMERIC = string.ascii_lowercase + string.digits
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TEXT_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/x-www-form-urlencoded",
        "application/javascript",
        "application/x-yaml",
        "application/yaml",
        "application/graphql",
    }
)
_RESPONSE_KEYS = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
)
# Hop-by-hop and framing headers are the gateway's to set, not the function's.
_DROPPED_RESPONSE_HEADERS = frozenset(
    {"connection", "content-length", "keep-alive", "transfer-encoding", "upgrade"}
)
_ERROR_TYPES = {
    SignatureFailure.MISSING_AUTHORIZATION: "MissingAuthenticationTokenException",
    SignatureFailure.UNSUPPORTED_ALGORITHM: "IncompleteSignatureException",
    SignatureFailure.MALFORMED_AUTHORIZATION: "IncompleteSignatureException",
    SignatureFailure.MISSING_DATE: "IncompleteSignatureException",
    SignatureFailure.HOST_NOT_SIGNED: "IncompleteSignatureException",
    SignatureFailure.UNKNOWN_ACCESS_KEY: "UnrecognizedClientException",
    SignatureFailure.INVALID_SECURITY_TOKEN: "UnrecognizedClientException",
}


def error_type_for(reason: SignatureFailure) -> str:
    """The ``x-amzn-ErrorType`` API Gateway sends for a refused signature."""
    return _ERROR_TYPES.get(reason, "InvalidSignatureException")


class MalformedProxyResponseError(ValueError):
    """The function's result is not a valid Lambda proxy response."""


@dataclass(frozen=True)
class _Request:
    method: str
    raw_path: str  # as sent, percent-encoded
    raw_query: str
    headers: list[tuple[str, str]]  # every header line, in order
    body: bytes
    source_ip: str
    protocol: str

    @property
    def path(self) -> str:
        return unquote(self.raw_path)


@dataclass(frozen=True)
class _RequestIds:
    request_id: str
    extended_id: str
    trace_id: str


@dataclass(frozen=True)
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class LocalApiGateway:
    """A REST API stage on 127.0.0.1 with AWS_IAM authorization and Lambda proxy routes."""

    def __init__(
        self,
        routes: Mapping[str, str],
        invoke: Invoke,
        lookup: Lookup,
        *,
        region: str,
        account_id: str,
        api_id: str | None = None,
        stage: str = "local",
        host: str = "127.0.0.1",
        port: int = 0,
        max_skew: timedelta = API_GATEWAY_MAX_SKEW,
    ) -> None:
        self.routes = dict(routes)
        self.invoke = invoke
        self.lookup = lookup
        self.region = region
        self.account_id = account_id
        self.api_id = api_id or "".join(secrets.choice(_ALPHANUMERIC) for _ in range(10))
        self.stage = stage
        self.max_skew = max_skew
        self.deployment_id = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(6))
        self._host = host
        self._port = port
        self._server: _GatewayServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the stage, e.g. ``http://127.0.0.1:PORT`` (no stage prefix)."""
        if self._server is None:
            raise RuntimeError("the gateway is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        if self._server is not None:
            return
        server = _GatewayServer((self._host, self._port), _GatewayHandler, self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"apigateway-{self.api_id}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> LocalApiGateway:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _resource_id(self, resource: str) -> str:
        """A stable id per resource, shaped like API Gateway's."""
        return hashlib.sha256(f"{self.api_id}{resource}".encode()).hexdigest()[:6]

    def _handle(self, request: _Request) -> _Response:
        """Route, authorise, build the proxy event, invoke and translate one request."""
        ids = _RequestIds(
            request_id=str(uuid.uuid4()),
            extended_id=base64.b64encode(secrets.token_bytes(11)).decode("ascii"),
            trace_id=_header(request.headers, "x-amzn-trace-id") or _new_trace_id(),
        )
        common = [
            ("x-amzn-RequestId", ids.request_id),
            ("x-amz-apigw-id", ids.extended_id),
            ("X-Amzn-Trace-Id", ids.trace_id),
        ]
        first, _, rest = request.path.lstrip("/").partition("/")
        function_name = self.routes.get(first) if first else None
        if function_name is None:
            return _error(403, "MissingAuthenticationTokenException", _MISSING_TOKEN, common)

        try:
            credential = verify(
                request.method,
                request.raw_path,
                request.raw_query,
                request.headers,
                request.body,
                lookup=self.lookup,
                region=self.region,
                service=SERVICE,
                max_skew=self.max_skew,
            )
        except SignatureError as refused:
            return _error(403, error_type_for(refused.reason), refused.message, common)

        event = self._event(request, first, rest, credential, ids)
        try:
            result = self.invoke(function_name, event)
            return _proxy_response(result, common)
        except Exception:
            logger.exception(
                "integration %s failed for %s %s", function_name, request.method, request.path
            )
            return _error(502, "InternalServerErrorException", "Internal server error", common)

    def _event(
        self, request: _Request, first: str, rest: str, credential: Credential, ids: _RequestIds
    ) -> dict[str, Any]:
        resource = f"/{first}/{{proxy+}}" if rest else f"/{first}"
        host = _header(request.headers, "host") or (
            f"{self.api_id}.{SERVICE}.{self.region}.amazonaws.com"
        )
        forwarded = [
            ("X-Forwarded-For", request.source_ip),
            ("X-Forwarded-Port", _port_of(host)),
            ("X-Forwarded-Proto", "http"),
            ("X-Amzn-Trace-Id", ids.trace_id),
        ]
        replaced = {name.lower() for name, _ in forwarded}
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers:
            if name.lower() not in replaced:
                multi_headers.setdefault(name, []).append(value)
        for name, value in forwarded:
            multi_headers[name] = [value]
        multi_query = _parse_query(request.raw_query)
        event_body, is_base64 = _event_body(request.body, _header(request.headers, "content-type"))
        now = datetime.now(UTC)
        principal_id = credential.user_id or credential.principal_arn.rpartition("/")[2]
        return {
            "resource": resource,
            "path": request.path,
            "httpMethod": request.method,
            "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
            "multiValueHeaders": multi_headers or None,
            "queryStringParameters": (
                {name: values[-1] for name, values in multi_query.items()} or None
            ),
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": {"proxy": rest} if rest else None,
            "stageVariables": None,
            "requestContext": {
                "accountId": self.account_id,
                "apiId": self.api_id,
                "resourceId": self._resource_id(resource),
                "resourcePath": resource,
                "httpMethod": request.method,
                "extendedRequestId": ids.extended_id,
                "requestTime": _request_time(now),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "path": f"/{self.stage}{request.path}",
                "protocol": request.protocol,
                "stage": self.stage,
                "domainPrefix": self.api_id,
                "domainName": host,
                "deploymentId": self.deployment_id,
                "requestId": ids.request_id,
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "cognitoIdentityId": None,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "principalOrgId": None,
                    "apiKey": None,
                    "apiKeyId": None,
                    "clientCert": None,
                    "accessKey": credential.access_key_id,
                    "accountId": credential.account_id,
                    "caller": principal_id,
                    "user": principal_id,
                    "userArn": credential.principal_arn,
                    "sourceIp": request.source_ip,
                    "userAgent": _header(request.headers, "user-agent"),
                },
            },
            "body": event_body,
            "isBase64Encoded": is_base64,
        }


class _GatewayServer(ThreadingHTTPServer):
    """Tracks open connections so that stopping also ends kept-alive ones."""

    daemon_threads = True
    allow_reuse_address = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        gateway: LocalApiGateway,
    ) -> None:
        super().__init__(address, handler)
        self.gateway = gateway
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "localcloud-apigateway"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        gateway = cast(_GatewayServer, self.server).gateway
        request_id = [("x-amzn-RequestId", str(uuid.uuid4()))]
        try:
            body = self._read_body()
        except _PayloadTooLargeError:
            self.close_connection = True
            self._send(
                _error(413, "RequestEntityTooLargeException", "Request Too Long", request_id)
            )
            return
        except (ValueError, OSError):
            self.close_connection = True
            self._send(_error(400, "BadRequestException", "Bad Request", request_id))
            return
        try:
            raw_path, _, raw_query = self.path.partition("?")
            response = gateway._handle(
                _Request(
                    method=self.command,
                    raw_path=raw_path,
                    raw_query=raw_query,
                    headers=list(self.headers.items()),
                    body=body,
                    source_ip=self.client_address[0],
                    protocol=self.request_version,
                )
            )
        except Exception:
            logger.exception("local API Gateway failed on %s %s", self.command, self.path)
            response = _error(
                500, "InternalServerErrorException", "Internal server error", request_id
            )
        self._send(response)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > MAX_PAYLOAD_BYTES:
            raise _PayloadTooLargeError
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(65537)
            chunk_size = int(line.split(b";", 1)[0].strip(), 16)
            if chunk_size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            size += chunk_size
            if size > MAX_PAYLOAD_BYTES:
                raise _PayloadTooLargeError
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(65537)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        has_body = response.status >= 200 and response.status not in (204, 304)
        if has_body:
            self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if has_body and self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()


class _PayloadTooLargeError(Exception):
    pass


def _error(status: int, error_type: str, message: str, common: list[tuple[str, str]]) -> _Response:
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type), *common]
    return _Response(status, headers, body)


def _proxy_response(result: object, common: list[tuple[str, str]]) -> _Response:
    if not isinstance(result, dict):
        raise MalformedProxyResponseError(f"result is {type(result).__name__}, not an object")
    unexpected = set(result) - _RESPONSE_KEYS
    if unexpected:
        raise MalformedProxyResponseError(f"unexpected keys {sorted(unexpected)}")
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponseError(f"invalid statusCode {status!r}")

    merged: dict[str, list[str]] = {}
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResponseError("headers must be objects")
    for name, value in single.items():
        merged[str(name)] = [_header_text(value)]
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponseError(f"multiValueHeaders[{name!r}] is not a list")
        merged[str(name)] = [_header_text(value) for value in values]

    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise MalformedProxyResponseError("body must be a string")
    elif result.get("isBase64Encoded") is True:
        try:
            payload = base64.b64decode(body, validate=True)
        except binascii.Error as error:
            raise MalformedProxyResponseError("body is not valid base64") from error
    else:
        payload = body.encode("utf-8")

    headers = [
        (name, value)
        for name, values in merged.items()
        if name.lower() not in _DROPPED_RESPONSE_HEADERS
        for value in values
    ]
    if not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    own = {name.lower() for name, _ in common}
    headers = [(name, value) for name, value in headers if name.lower() not in own] + common
    return _Response(status, headers, payload)


def _header_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise MalformedProxyResponseError(f"header value {value!r} is not a scalar")


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    found = None
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found


def _port_of(host: str) -> str:
    try:
        return str(urlsplit(f"//{host}").port or 80)
    except ValueError:
        return "80"


def _parse_query(raw_query: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for pair in raw_query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        parsed.setdefault(unquote_plus(name), []).append(unquote_plus(value))
    return parsed


def _event_body(body: bytes, content_type: str | None) -> tuple[str | None, bool]:
    if not body:
        return None, False
    media_type = (content_type or "application/json").split(";", 1)[0].strip().lower()
    textual = (
        media_type.startswith("text/")
        or media_type in _TEXT_MEDIA_TYPES
        or media_type.endswith(("+json", "+xml"))
    )
    if textual:
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _request_time(now: datetime) -> str:
    """API Gateway's CLF-style request time, e.g. ``09/Apr/2015:12:34:56 +0000``."""
    return f"{now.day:02d}/{_MONTHS[now.month - 1]}/{now:%Y:%H:%M:%S} +0000"


def _new_trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"
