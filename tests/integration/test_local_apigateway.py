"""The local API Gateway authorises like AWS_IAM and speaks the REST Lambda proxy protocol."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch
from urllib.parse import urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from localcloud.apigateway import LocalApiGateway
from localcloud.sigv4 import Credential
from modelops_cli.client import SigV4RequestAuth
from tests.sigv4_principals import KERNEL, KNOWN, SESSION

REGION = "eu-central-1"
API_ACCOUNT = "444455556666"
CONCURRENCY = 20


def signed_as(credential: Credential, region: str = REGION) -> SigV4RequestAuth:
    """Signs ``requests`` with botocore as a Kernel service would (the platform client's auth)."""
    keys = Credentials(
        credential.access_key_id, credential.secret_access_key, credential.session_token
    )
    return SigV4RequestAuth(keys, region)


class FakeLambda:
    """Stands in for the Lambda service: echoes events back, or misbehaves on request."""

    def __init__(self) -> None:
        self.barrier = threading.Barrier(CONCURRENCY, timeout=20)

    def __call__(self, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
        if function_name == "boom-fn":
            raise RuntimeError("function crashed")
        if function_name == "malformed-fn":
            return {"statusCode": 200, "body": {"not": "a string"}}
        if function_name == "bytes-fn":
            return {
                "statusCode": 201,
                "multiValueHeaders": {"Content-Type": ["image/png"], "X-Tag": ["a", "b"]},
                "body": base64.b64encode(b"\x89PNG\x00\xff").decode(),
                "isBase64Encoded": True,
            }
        if function_name == "barrier-fn":
            self.barrier.wait()
        return {"statusCode": 200, "body": json.dumps({"function": function_name, "event": event})}


@pytest.fixture(scope="module")
def gateway() -> Iterator[LocalApiGateway]:
    routes = {
        "models": "registry-fn",
        "artifact": "artifact-fn",
        "boom": "boom-fn",
        "malformed": "malformed-fn",
        "bytes": "bytes-fn",
        "barrier": "barrier-fn",
    }
    with LocalApiGateway(
        routes, FakeLambda(), KNOWN.get, region=REGION, account_id=API_ACCOUNT
    ) as started:
        yield started


def signed_get(gateway: LocalApiGateway, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(f"{gateway.url}{path}", auth=signed_as(KERNEL), timeout=10, **kwargs)


def echoed(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    payload: dict[str, Any] = response.json()
    return payload


def send_raw(
    gateway: LocalApiGateway, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> tuple[int, bytes]:
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# --- the proxy event ------------------------------------------------------------------------


def test_signed_request_reaches_the_routed_function_as_a_rest_proxy_event(
    gateway: LocalApiGateway,
) -> None:
    payload = echoed(signed_get(gateway, "/models/resnet/versions/3"))
    event = payload["event"]

    assert payload["function"] == "registry-fn"
    assert event["resource"] == "/models/{proxy+}"
    assert event["path"] == "/models/resnet/versions/3"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"proxy": "resnet/versions/3"}
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "local"
    assert context["path"] == "/local/models/resnet/versions/3"
    assert context["resourcePath"] == "/models/{proxy+}"
    assert context["accountId"] == API_ACCOUNT
    assert context["apiId"] == gateway.api_id
    assert context["httpMethod"] == "GET"
    assert context["protocol"] == "HTTP/1.1"
    assert context["requestId"]
    assert context["extendedRequestId"]
    assert isinstance(context["requestTimeEpoch"], int)


def test_identity_carries_the_signing_principal(gateway: LocalApiGateway) -> None:
    identity = echoed(signed_get(gateway, "/models"))["event"]["requestContext"]["identity"]

    assert identity["userArn"] == KERNEL.principal_arn
    assert identity["accessKey"] == KERNEL.access_key_id
    assert identity["accountId"] == KERNEL.account_id
    assert identity["caller"] == identity["user"] == KERNEL.user_id
    assert identity["sourceIp"] == "127.0.0.1"
    assert identity["userAgent"].startswith("python-requests/")
    assert identity["cognitoIdentityId"] is None


def test_resource_root_has_no_proxy_parameter_and_no_query(gateway: LocalApiGateway) -> None:
    event = echoed(signed_get(gateway, "/models"))["event"]

    assert event["resource"] == "/models"
    assert event["pathParameters"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None


def test_first_path_segment_selects_the_function(gateway: LocalApiGateway) -> None:
    payload = echoed(signed_get(gateway, "/artifact/a1"))

    assert payload["function"] == "artifact-fn"
    assert payload["event"]["resource"] == "/artifact/{proxy+}"


def test_query_parameters_are_decoded_keeping_last_and_all_values(
    gateway: LocalApiGateway,
) -> None:
    params = [("tag", "vision"), ("tag", "team a/b"), ("q", "x+y=z"), ("empty", "")]

    event = echoed(signed_get(gateway, "/models", params=params))["event"]

    assert event["queryStringParameters"] == {"tag": "team a/b", "q": "x+y=z", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {
        "tag": ["vision", "team a/b"],
        "q": ["x+y=z"],
        "empty": [""],
    }


def test_encoded_path_is_decoded_in_path_and_proxy_parameter(gateway: LocalApiGateway) -> None:
    event = echoed(signed_get(gateway, "/artifact/model%20v1/caf%C3%A9"))["event"]

    assert event["path"] == "/artifact/model v1/café"
    assert event["pathParameters"] == {"proxy": "model v1/café"}


def test_headers_are_passed_with_forwarding_headers_added(gateway: LocalApiGateway) -> None:
    event = echoed(signed_get(gateway, "/models", headers={"X-Tenant": "alpha"}))["event"]

    assert event["headers"]["X-Tenant"] == "alpha"
    assert event["multiValueHeaders"]["X-Tenant"] == ["alpha"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["headers"]["Authorization"].startswith("AWS4-HMAC-SHA256 ")


def botocore_signed(
    url: str, method: str, headers: list[tuple[str, str]], body: bytes = b""
) -> list[tuple[str, str]]:
    """Header lines for a raw request, signed by botocore (repeated names kept)."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers[name] = value  # botocore's HTTPHeaders appends repeated names
    SigV4Auth(
        Credentials(KERNEL.access_key_id, KERNEL.secret_access_key), "execute-api", REGION
    ).add_auth(request)
    return [("Host", urlsplit(url).netloc), *request.headers.items()]


def test_repeated_request_header_keeps_last_value_and_all_values(
    gateway: LocalApiGateway,
) -> None:
    # Given a request carrying X-Multi twice, signed over both values
    headers = botocore_signed(
        f"{gateway.url}/models", "GET", [("X-Multi", "first"), ("X-Multi", "second")]
    )

    # When it is sent
    status, body = send_raw(gateway, "GET", "/models", headers, b"")

    # Then the event has the last value in headers and both in multiValueHeaders
    assert status == 200
    event = json.loads(body)["event"]
    assert event["headers"]["X-Multi"] == "second"
    assert event["multiValueHeaders"]["X-Multi"] == ["first", "second"]


def test_chunked_request_body_is_reassembled_before_verification(
    gateway: LocalApiGateway,
) -> None:
    body = b'{"name": "sent in chunks"}'
    headers = botocore_signed(
        f"{gateway.url}/models", "POST", [("Content-Type", "application/json")], body
    )
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:9], body[9:])
    )

    status, reply = send_raw(
        gateway,
        "POST",
        "/models",
        [*headers, ("Transfer-Encoding", "chunked")],
        chunked + b"0\r\n\r\n",
    )

    assert status == 200
    assert json.loads(reply)["event"]["body"] == body.decode()


def test_json_body_round_trips_as_text(gateway: LocalApiGateway) -> None:
    document = {"name": "resnet", "note": "café", "tags": ["vision"]}

    response = requests.post(
        f"{gateway.url}/models", json=document, auth=signed_as(KERNEL), timeout=10
    )

    event = echoed(response)["event"]
    assert event["httpMethod"] == "POST"
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == document


def test_binary_body_is_passed_base64_encoded(gateway: LocalApiGateway) -> None:
    blob = bytes(range(256))

    response = requests.put(
        f"{gateway.url}/artifact/a1/file",
        data=blob,
        headers={"Content-Type": "application/octet-stream"},
        auth=signed_as(KERNEL),
        timeout=10,
    )

    event = echoed(response)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == blob


def test_session_credentials_with_security_token_are_accepted(gateway: LocalApiGateway) -> None:
    response = requests.delete(f"{gateway.url}/models/m1", auth=signed_as(SESSION), timeout=10)

    identity = echoed(response)["event"]["requestContext"]["identity"]
    assert identity["userArn"] == SESSION.principal_arn
    assert identity["caller"] == SESSION.user_id


def test_every_supported_method_is_routed(gateway: LocalApiGateway) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        response = requests.request(
            method, f"{gateway.url}/models/m1", auth=signed_as(KERNEL), timeout=10
        )
        assert echoed(response)["event"]["httpMethod"] == method


# --- the proxy response ---------------------------------------------------------------------


def test_response_has_request_id_default_json_content_type_and_length(
    gateway: LocalApiGateway,
) -> None:
    response = signed_get(gateway, "/models")

    assert response.headers["x-amzn-RequestId"]
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_request_id_header_matches_the_event_request_id(gateway: LocalApiGateway) -> None:
    response = signed_get(gateway, "/models")

    assert (
        response.headers["x-amzn-RequestId"]
        == echoed(response)["event"]["requestContext"]["requestId"]
    )


def test_base64_response_is_decoded_and_multi_value_headers_are_sent(
    gateway: LocalApiGateway,
) -> None:
    response = signed_get(gateway, "/bytes")

    assert response.status_code == 201
    assert response.content == b"\x89PNG\x00\xff"
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["X-Tag"] == "a, b"
    assert response.headers["Content-Length"] == "6"


def test_head_request_gets_headers_and_length_but_no_body(gateway: LocalApiGateway) -> None:
    response = requests.head(f"{gateway.url}/models", auth=signed_as(KERNEL), timeout=10)

    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) > 0
    assert response.content == b""


def test_function_raising_gives_502_internal_server_error(gateway: LocalApiGateway) -> None:
    response = signed_get(gateway, "/boom")

    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}
    assert response.headers["x-amzn-RequestId"]


def test_malformed_proxy_response_gives_502_internal_server_error(
    gateway: LocalApiGateway,
) -> None:
    response = signed_get(gateway, "/malformed")

    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


# --- authorisation --------------------------------------------------------------------------


def test_unsigned_request_is_refused_with_missing_authentication_token(
    gateway: LocalApiGateway,
) -> None:
    response = requests.get(f"{gateway.url}/models", timeout=10)

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert response.json() == {"message": "Missing Authentication Token"}
    assert response.headers["x-amzn-RequestId"]


def test_unknown_route_is_refused_with_missing_authentication_token_even_when_signed(
    gateway: LocalApiGateway,
) -> None:
    for path in ("/nothing-here", "/", "/local/models"):
        response = signed_get(gateway, path)

        assert response.status_code == 403, path
        assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
        assert response.json() == {"message": "Missing Authentication Token"}


def test_authorization_without_date_is_refused_with_incomplete_signature(
    gateway: LocalApiGateway,
) -> None:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KERNEL.access_key_id}/20240101/{REGION}/execute-api/"
        f"aws4_request, SignedHeaders=host, Signature={'0' * 64}"
    )

    response = requests.get(
        f"{gateway.url}/models", headers={"Authorization": authorization}, timeout=10
    )

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "IncompleteSignatureException"
    assert (
        "requires existence of either a 'X-Amz-Date' or a 'Date' header"
        in (response.json()["message"])
    )


def test_wrong_secret_is_refused_with_invalid_signature(gateway: LocalApiGateway) -> None:
    impostor = Credential(
        access_key_id=KERNEL.access_key_id,
        secret_access_key="guessed-secret",
        principal_arn=KERNEL.principal_arn,
        account_id=KERNEL.account_id,
    )

    response = requests.get(f"{gateway.url}/models", auth=signed_as(impostor), timeout=10)

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert response.json()["message"].startswith(
        "The request signature we calculated does not match the signature you provided."
    )


def test_body_changed_after_signing_is_refused_with_invalid_signature(
    gateway: LocalApiGateway,
) -> None:
    prepared = requests.Request(
        "POST", f"{gateway.url}/models", data=b'{"stage": "dev"}', auth=signed_as(KERNEL)
    ).prepare()
    prepared.body = b'{"stage": "prd"}'

    with requests.Session() as session:
        response = session.send(prepared, timeout=10)

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"


def test_unknown_access_key_is_refused_with_unrecognized_client(gateway: LocalApiGateway) -> None:
    stranger = Credential(
        access_key_id="AKIASTRANGER00000000",
        secret_access_key="stranger-secret",
        principal_arn="arn:aws:iam::999999999999:user/stranger",
        account_id="999999999999",
    )

    response = requests.get(f"{gateway.url}/models", auth=signed_as(stranger), timeout=10)

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
    assert response.json() == {"message": "The security token included in the request is invalid."}


def test_signature_for_another_region_is_refused_with_invalid_signature(
    gateway: LocalApiGateway,
) -> None:
    response = requests.get(
        f"{gateway.url}/models", auth=signed_as(KERNEL, region="us-west-2"), timeout=10
    )

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert response.json() == {
        "message": "Credential should be scoped to a valid region, not 'us-west-2'. "
    }


def test_signature_older_than_five_minutes_is_refused_as_expired(
    gateway: LocalApiGateway,
) -> None:
    six_minutes_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=6)

    with patch("botocore.auth.get_current_datetime", return_value=six_minutes_ago):
        prepared = requests.Request(
            "GET", f"{gateway.url}/models", auth=signed_as(KERNEL)
        ).prepare()
    with requests.Session() as session:
        response = session.send(prepared, timeout=10)

    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert response.json()["message"].startswith("Signature expired: ")
    assert response.json()["message"].endswith(" - 5 min.)")


# --- transport ------------------------------------------------------------------------------


def test_concurrent_requests_are_all_answered(gateway: LocalApiGateway) -> None:
    # The function waits until all CONCURRENCY invocations are in flight at once, so a
    # gateway serving requests one at a time would answer 502 (barrier timeout).
    def call(index: int) -> int:
        return signed_get(gateway, f"/barrier/{index}").status_code

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        statuses = list(pool.map(call, range(CONCURRENCY)))

    assert statuses == [200] * CONCURRENCY


def test_connection_is_kept_alive_across_requests(gateway: LocalApiGateway) -> None:
    parts = urlsplit(gateway.url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    statuses = []
    sockets = []
    for _ in range(3):
        connection.request("GET", "/models")
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        sockets.append(connection.sock)

    assert statuses == [403, 403, 403]
    assert sockets[0] is not None
    assert all(sock is sockets[0] for sock in sockets)
    connection.close()


def test_declared_body_over_ten_mebibytes_is_refused_with_413(gateway: LocalApiGateway) -> None:
    parts = urlsplit(gateway.url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as raw:
        raw.sendall(b"POST /models HTTP/1.1\r\nHost: x\r\nContent-Length: 10485761\r\n\r\n{}")
        reply = raw.makefile("rb").readline()

    assert reply.startswith(b"HTTP/1.1 413 ")


def test_stopped_gateway_no_longer_accepts_connections() -> None:
    gateway = LocalApiGateway(
        {"models": "fn"}, FakeLambda(), KNOWN.get, region=REGION, account_id=API_ACCOUNT
    )
    gateway.start()
    url = gateway.url

    gateway.stop()

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/models", timeout=2)


def test_stopping_ends_kept_alive_connections() -> None:
    gateway = LocalApiGateway(
        {"models": "fn"}, FakeLambda(), KNOWN.get, region=REGION, account_id=API_ACCOUNT
    )
    gateway.start()
    parts = urlsplit(gateway.url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10) as raw:
        reader = raw.makefile("rb")
        raw.sendall(b"GET /models HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reader.readline().startswith(b"HTTP/1.1 403 ")

        gateway.stop()

        assert reader.read().endswith(b"}")  # the rest of the answer, then end of stream
