"""Client for an external SentinelNet policy-decision service (stdlib ``urllib`` only).

``POST {base_url}/v1/decisions`` with the request's canonical (RFC 8785) JSON, so the body's
SHA-256 is the decision's ``requestDigest``. The service answers
``{"allowed": bool, "denials": [{"policyId", "reason", "datasetId"}], "policySetDigest"}``.

The client fails closed: a signer that raises, a connection that fails, a timeout, a
redirect, a status outside 2xx, or an answer that is not exactly that shape (an allowed
answer with denials, a refusal without any, a digest that is not SHA-256 hex, a body over
1 MiB) is a refusal with one denial, ``sentinelnet.unavailable``, whose reason says what
went wrong.
"""

from __future__ import annotations

import urllib.request

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelops.adapters.outbound_http import (
    NoAnswer,
    Signer,
    exchange,
    first_error,
    is_http_url,
    opener,
)
from modelops.domain.digests import SHA256_HEX, canonical_json
from modelops.domain.policy import PolicyDecision, PolicyDenial, PolicyRequest

ENGINE = "sentinelnet-http"
UNAVAILABLE = "sentinelnet.unavailable"
DECISIONS_PATH = "/v1/decisions"


class _Unavailable(Exception):
    """No usable answer; the message is the denial's reason."""


class _AnswerDenial(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", defer_build=True)

    policyId: str = Field(min_length=1)
    reason: str
    datasetId: str | None = None


class _Answer(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", defer_build=True)

    allowed: bool
    denials: tuple[_AnswerDenial, ...] = ()
    policySetDigest: str = Field(pattern=SHA256_HEX.pattern)


class SentinelNetClient:
    """``PolicyEngine`` backed by an external SentinelNet.

    ``timeout_s`` is the socket timeout of the connection and of every read, and the
    deadline for the whole answer. ``signer`` (for example SigV4) may add headers to the
    finished request just before it is sent.
    """

    engine = ENGINE

    def __init__(self, base_url: str, timeout_s: float = 2.0, signer: Signer | None = None):
        if not is_http_url(base_url):
            raise ValueError(f"SentinelNet base URL must be http(s)://host...: {base_url!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.url = base_url.rstrip("/") + DECISIONS_PATH
        self.timeout_s = timeout_s
        self._signer = signer
        self._opener = opener()

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        request_digest = request.digest()
        try:
            answer = self._ask(request)
            return PolicyDecision(
                allowed=answer.allowed,
                denials=tuple(
                    PolicyDenial(policyId=d.policyId, reason=d.reason, datasetId=d.datasetId)
                    for d in answer.denials
                ),
                engine=ENGINE,
                policySetDigest=answer.policySetDigest,
                requestDigest=request_digest,
            )
        except ValidationError as exc:
            reason = f"SentinelNet answered malformed: {first_error(exc)}"
        except _Unavailable as exc:
            reason = str(exc)
        return PolicyDecision(
            allowed=False,
            denials=(PolicyDenial(policyId=UNAVAILABLE, reason=reason),),
            engine=ENGINE,
            requestDigest=request_digest,
        )

    def _ask(self, request: PolicyRequest) -> _Answer:
        http_request = urllib.request.Request(
            self.url,
            data=canonical_json(request.model_dump(mode="json")),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            method="POST",
        )
        if self._signer is not None:
            try:
                self._signer(http_request)
            except Exception as exc:  # fail closed, whatever the signer raised
                raise _Unavailable(f"signing the SentinelNet request failed: {exc!r}") from exc
        try:
            status, body = exchange(self._opener, http_request, self.timeout_s)
        except NoAnswer as exc:
            raise _Unavailable(f"SentinelNet {exc}") from exc
        if not 200 <= status < 300:
            raise _Unavailable(f"SentinelNet answered HTTP {status}")
        return _Answer.model_validate_json(body)
