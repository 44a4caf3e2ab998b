"""The SentinelNet HTTP client against a stub SentinelNet on 127.0.0.1: it sends the
canonical request, maps answers, and fails closed on everything else."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest

from modelops.adapters.sentinelnet_http import UNAVAILABLE, SentinelNetClient
from modelops.domain.digests import canonical_json
from modelops.domain.entities import PiiFlag
from modelops.domain.policy import DatasetFacts, PolicyEngine, PolicyRequest
from tests.integration.local_http import Received, received, serving, unreachable_url

POLICY_SET = hashlib.sha256(b"sentinelnet policies v7").hexdigest()
REQUEST = PolicyRequest(
    action="deploy",
    principal="arn:aws:iam::123456789012:user/alice",
    roles=("ml-engineer",),
    modelFamily="iris-classifier",
    riskTier="high",
    targetEnv="prod",
    region="eu-west-1",
    purpose="inference",
    datasets=(
        DatasetFacts(datasetId="ds-a", license="CC-BY-4.0", exportRegions=("eu",)),
        DatasetFacts(datasetId="ds-b", license="MIT", piiFlags=(PiiFlag.EMAIL,)),
    ),
)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    drip_s: float = 0.0  # pause between body bytes
    headers: dict[str, str] = field(default_factory=dict)


class StubSentinelNet:
    """Answers every request with ``self.answer`` and records what it received."""

    def __init__(self) -> None:
        self.answer = Answer()
        self.received: list[Received] = []
        self.released = threading.Event()
        self.url = ""
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stub.received.append(received(self))
                answer = stub.answer
                if answer.delay_s:
                    stub.released.wait(answer.delay_s)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    if not answer.drip_s:
                        self.wfile.write(answer.body)
                    for index in range(len(answer.body) if answer.drip_s else 0):
                        self.wfile.write(answer.body[index : index + 1])
                        self.wfile.flush()
                        if stub.released.wait(answer.drip_s):
                            break
                except OSError:
                    pass  # the client gave up waiting

        self.handler = Handler

    def answer_json(self, document: object, status: int = 200) -> None:
        self.answer = Answer(status=status, body=json.dumps(document).encode())


@pytest.fixture
def stub() -> Iterator[StubSentinelNet]:
    server = StubSentinelNet()
    with serving(server.handler) as server.url:
        yield server
        server.released.set()


def refusal_reason(client: SentinelNetClient) -> str:
    decision = client.decide(REQUEST)
    assert not decision.allowed
    assert decision.policySetDigest is None
    assert decision.requestDigest == REQUEST.digest()
    assert [(d.policyId, d.datasetId) for d in decision.denials] == [(UNAVAILABLE, None)]
    return decision.denials[0].reason


def test_allow_answer_is_an_allowed_decision(stub: StubSentinelNet) -> None:
    stub.answer_json({"allowed": True, "denials": [], "policySetDigest": POLICY_SET})
    engine: PolicyEngine = SentinelNetClient(stub.url)
    decision = engine.decide(REQUEST)
    assert decision.allowed
    assert decision.denials == ()
    assert decision.engine == "sentinelnet-http"
    assert decision.policySetDigest == POLICY_SET
    assert decision.requestDigest == REQUEST.digest()


def test_the_stub_receives_the_canonical_request(stub: StubSentinelNet) -> None:
    stub.answer_json({"allowed": True, "denials": [], "policySetDigest": POLICY_SET})
    SentinelNetClient(stub.url + "/").decide(REQUEST)
    [received] = stub.received
    assert (received.method, received.path) == ("POST", "/v1/decisions")
    assert received.headers["content-type"] == "application/json"
    assert PolicyRequest.model_validate_json(received.body) == REQUEST
    assert received.body == canonical_json(REQUEST.model_dump(mode="json"))
    assert hashlib.sha256(received.body).hexdigest() == REQUEST.digest()


def test_deny_answer_keeps_every_denial_with_its_dataset(stub: StubSentinelNet) -> None:
    stub.answer_json(
        {
            "allowed": False,
            "denials": [
                {"policyId": "dataset.pii-not-approved", "reason": "PII", "datasetId": "ds-b"},
                {"policyId": "model.risk", "reason": "high risk", "datasetId": None},
                {"policyId": "model.freeze", "reason": "change freeze"},
            ],
            "policySetDigest": POLICY_SET,
            "evaluatedBy": "sentinelnet-7",  # unknown fields are ignored
        }
    )
    decision = SentinelNetClient(stub.url).decide(REQUEST)
    assert not decision.allowed
    assert decision.policySetDigest == POLICY_SET
    assert [(d.policyId, d.reason, d.datasetId) for d in decision.denials] == [
        ("dataset.pii-not-approved", "PII", "ds-b"),
        ("model.risk", "high risk", None),
        ("model.freeze", "change freeze", None),
    ]


@pytest.mark.parametrize("status", [500, 503, 403, 404])
def test_error_status_fails_closed(stub: StubSentinelNet, status: int) -> None:
    stub.answer_json({"allowed": True, "denials": [], "policySetDigest": POLICY_SET}, status)
    assert refusal_reason(SentinelNetClient(stub.url)) == f"SentinelNet answered HTTP {status}"


def test_redirect_is_not_followed_and_fails_closed(stub: StubSentinelNet) -> None:
    stub.answer = Answer(status=307, headers={"Location": stub.url + "/elsewhere"})
    assert refusal_reason(SentinelNetClient(stub.url)) == "SentinelNet answered HTTP 307"
    assert len(stub.received) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"allowed": true}',
        b'{"allowed": "true", "denials": [], "policySetDigest": "%s"}' % POLICY_SET.encode(),
        b'{"allowed": 1, "denials": [], "policySetDigest": "%s"}' % POLICY_SET.encode(),
        b'{"allowed": true, "denials": [], "policySetDigest": "not-a-digest"}',
        b'{"allowed": false, "denials": [{"reason": "r"}], "policySetDigest": "%s"}'
        % POLICY_SET.encode(),
        b'{"allowed": true, "denials": [{"policyId": "p", "reason": "r"}],'
        b' "policySetDigest": "%s"}' % POLICY_SET.encode(),
        b'{"allowed": false, "denials": [], "policySetDigest": "%s"}' % POLICY_SET.encode(),
    ],
    ids=[
        "not-json",
        "empty",
        "array",
        "no-digest",
        "allowed-string",
        "allowed-int",
        "bad-digest",
        "denial-without-policy",
        "allowed-with-denials",
        "refusal-without-denials",
    ],
)
def test_malformed_answer_fails_closed(stub: StubSentinelNet, body: bytes) -> None:
    stub.answer = Answer(body=body)
    assert refusal_reason(SentinelNetClient(stub.url)).startswith("SentinelNet answered malformed")


def test_oversized_answer_fails_closed(stub: StubSentinelNet) -> None:
    stub.answer = Answer(body=b" " * (1024 * 1024 + 1))
    assert "exceeds" in refusal_reason(SentinelNetClient(stub.url))


def test_slow_answer_beyond_the_timeout_fails_closed(stub: StubSentinelNet) -> None:
    stub.answer = Answer(
        body=json.dumps({"allowed": True, "denials": [], "policySetDigest": POLICY_SET}).encode(),
        delay_s=5.0,
    )
    started = time.monotonic()
    reason = refusal_reason(SentinelNetClient(stub.url, timeout_s=0.3))
    elapsed = time.monotonic() - started
    assert reason == "SentinelNet did not answer within 0.3 s"
    assert 0.3 <= elapsed < 2.0


def test_answer_dripping_past_the_deadline_fails_closed(stub: StubSentinelNet) -> None:
    # Every byte arrives within the socket timeout; the whole answer does not.
    stub.answer = Answer(
        body=json.dumps({"allowed": True, "denials": [], "policySetDigest": POLICY_SET}).encode(),
        drip_s=0.05,
    )
    started = time.monotonic()
    reason = refusal_reason(SentinelNetClient(stub.url, timeout_s=0.3))
    assert reason == "SentinelNet did not answer within 0.3 s"
    assert time.monotonic() - started < 1.0


def test_unreachable_service_fails_closed() -> None:
    reason = refusal_reason(SentinelNetClient(unreachable_url(), timeout_s=1.0))
    assert reason.startswith("SentinelNet is unreachable")


def test_signer_signs_the_finished_request(stub: StubSentinelNet) -> None:
    stub.answer_json({"allowed": True, "denials": [], "policySetDigest": POLICY_SET})

    def sign(http_request: urllib.request.Request) -> None:
        assert isinstance(http_request.data, bytes)
        digest = hashlib.sha256(http_request.data).hexdigest()
        http_request.add_header("X-Test-Signature", f"{http_request.get_method()} {digest}")

    assert SentinelNetClient(stub.url, signer=sign).decide(REQUEST).allowed
    [received] = stub.received
    assert received.headers["x-test-signature"] == f"POST {REQUEST.digest()}"


def test_signer_failure_fails_closed_and_sends_nothing(stub: StubSentinelNet) -> None:
    def no_credentials(http_request: urllib.request.Request) -> None:
        raise RuntimeError("no credentials")

    reason = refusal_reason(SentinelNetClient(stub.url, signer=no_credentials))
    assert "no credentials" in reason
    assert stub.received == []


@pytest.mark.parametrize(
    "base_url", ["file:///etc", "127.0.0.1:8080", "", "http://", "http://[::1"]
)
def test_base_url_must_be_http(base_url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        SentinelNetClient(base_url)
