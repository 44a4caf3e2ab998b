"""Client for the external ILLUVRSE Resource Allocator (stdlib ``urllib``; SigV4 by botocore).

The ``ComputeAllocator`` port over HTTP, with the semantics of the embedded
``DynamoQuotaLedger``: a job holds its worst case (``reserved_gpu_hours``: instances x GPUs
x maximum runtime) against its team's GPU-hours in the quota period (the calendar month,
UTC, that the client's clock is in when it reserves: ``period_of``) and its GPUs against its
pool's concurrent GPUs, both or neither. Reserving again and releasing again change nothing.
The allocator owns the quotas: the client sends what the job asks for, never a limit.

Contract
--------
JSON bodies (``Content-Type: application/json``), camelCase names. Decimals travel as
strings (``"16.000000"``), never as JSON numbers; times are ISO 8601 with an offset. Every
request is SigV4-signed (service ``execute-api``, as behind API Gateway with IAM auth).

``PUT /reservations/{jobId}``
    body ``{"team", "pool", "instanceType", "instanceCount", "gpus", "gpuHours", "period"}``
    (``gpus`` = instanceCount x the instance type's GPUs, ``gpuHours`` the worst case).

    - ``201``: reserved; the body is the Reservation.
    - ``200``: the job already holds a reservation (whatever this body says; the first one
      stands); the body is that Reservation.
    - ``429`` with ``{"denial": {"quota", "requested", "limit", "remaining", "period",
      "pool", "team"}}``: nothing held; ``quota`` is ``gpuHoursPerTeam`` (GPU-hours this
      period) or ``maxConcurrentGpus``. The client raises ``ReservationRefused``.

``POST /reservations/{jobId}/release``
    body ``{"usedGpuHours"}``: the reservation becomes what the job used.

    - ``200``: released, also when it was released before (the first release's usage stands).
    - ``404``: no such reservation: nothing to release, a no-op.

``GET /reservations?status=open&limit=N``
    ``200`` with ``{"items": [Reservation, ...]}``: at most N reservations not yet released,
    oldest first.

A Reservation is ``{"jobId", "pool", "team", "period", "gpus", "gpuHours", "status"
("RESERVED" | "RELEASED"), "createdAt", "releasedAt", "usedGpuHours"}``
(``modelops.domain.pools.Reservation``); unknown fields are ignored, here and in a denial.

Failures
--------
Every call is idempotent, so the client retries one that may not have happened or may be
worth another try: a connection that fails, no whole answer within ``timeout_s`` (or one
over 1 MiB), a ``5xx``, or a ``429`` without a denial (API Gateway's throttling), up to
``attempts`` times with doubling pauses. When none succeeds, or the answer is anything else
the contract does not name (another status, a redirect, a body that does not parse), or the
request cannot be signed, the call raises ``modelops.errors.ServiceUnavailable``: HTTP 503
to an API caller, and an error the training workflow retries. A reservation the allocator
made although its answer was lost is the job's on the next try (reserving again is a
no-op), and reconciliation releases it if the job was never recorded.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from modelops.adapters import outbound_http
from modelops.domain import compute
from modelops.domain.pools import QuotaDenial, Reservation, hours, period_of, reserved_gpu_hours
from modelops.domain.training import ComputeRequirements
from modelops.errors import ServiceUnavailable
from modelops.ports import Clock, ReservationRefused

SERVICE = "Resource Allocator"

_M = TypeVar("_M", bound=BaseModel)


class ResourceAllocatorClient:
    """``ComputeAllocator`` backed by the external Resource Allocator.

    ``timeout_s`` is the socket timeout of the connection and of every read, and the
    deadline for each whole answer. ``attempts`` bounds the tries of one call; the pauses
    between them start at ``backoff_s`` and double. ``signer`` (``outbound_http.sigv4_signer``)
    adds its headers to each finished request just before it is sent.
    """

    def __init__(
        self,
        base_url: str,
        clock: Clock,
        *,
        signer: outbound_http.Signer | None = None,
        timeout_s: float = 2.0,
        attempts: int = 3,
        backoff_s: float = 0.1,
    ) -> None:
        if not outbound_http.is_http_url(base_url):
            raise ValueError(f"Resource Allocator base URL must be http(s)://host...: {base_url!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._clock = clock
        self._signer = signer
        self._opener = outbound_http.opener()

    def reserve(self, job_id: str, team: str, requirements: ComputeRequirements) -> None:
        if requirements.pool is None:
            raise ValueError(f"job {job_id}: resolve the compute pool before reserving")
        gpus = compute.INSTANCE_TYPES[requirements.instanceType].gpus
        body = {
            "team": team,
            "pool": requirements.pool,
            "instanceType": requirements.instanceType,
            "instanceCount": requirements.instanceCount,
            "gpus": requirements.instanceCount * gpus,
            "gpuHours": str(
                reserved_gpu_hours(
                    requirements.instanceType,
                    requirements.instanceCount,
                    requirements.maxRuntimeSeconds,
                )
            ),
            "period": period_of(self._clock.now()),
        }
        status, answer = self._call("PUT", _reservation_path(job_id), body)
        if status in {200, 201}:
            return
        denial = _denial(status, answer)
        if denial is None:
            raise _unexpected("PUT", status)
        raise ReservationRefused(denial)

    def release(self, job_id: str, used_gpu_hours: Decimal) -> None:
        body = {"usedGpuHours": str(hours(used_gpu_hours))}
        status, _ = self._call("POST", _reservation_path(job_id) + "/release", body)
        if status not in {200, 404}:
            raise _unexpected("POST", status)

    def open_reservations(self, limit: int) -> list[Reservation]:
        query = urllib.parse.urlencode({"status": "open", "limit": limit})
        status, answer = self._call("GET", f"/reservations?{query}", None)
        if status != 200:
            raise _unexpected("GET", status)
        try:
            document = json.loads(answer)
            items = document["items"]
            if not isinstance(items, list):
                raise TypeError("items is not a list")
            return [_parse(Reservation, item) for item in items[:limit]]
        except (ValueError, TypeError, KeyError) as exc:  # ValidationError is a ValueError
            raise ServiceUnavailable(
                f"the {SERVICE} answered GET /reservations malformed: {_why(exc)}"
            ) from exc

    # --- transport --------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None) -> tuple[int, bytes]:
        """The first answer that is not worth retrying, as (status, body)."""
        reason = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                status, answer = self._send(method, path, body)
            except outbound_http.NoAnswer as exc:
                reason = str(exc)
                continue
            if not _retryable(status, answer):
                return status, answer
            reason = f"answered HTTP {status}"
        raise ServiceUnavailable(
            f"the {SERVICE} {reason} ({method} {path.partition('?')[0]}, "
            f"{self.attempts} attempt(s)); retry later"
        )

    def _send(self, method: str, path: str, body: Mapping[str, Any] | None) -> tuple[int, bytes]:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
            method=method,
        )
        if self._signer is not None:
            try:
                self._signer(request)
            except Exception as exc:  # no request unsigned, whatever the signer raised
                raise ServiceUnavailable(f"signing the {SERVICE} request failed: {exc!r}") from exc
        return outbound_http.exchange(self._opener, request, self.timeout_s)


def _reservation_path(job_id: str) -> str:
    return "/reservations/" + urllib.parse.quote(job_id, safe="")


def _retryable(status: int, answer: bytes) -> bool:
    return status >= 500 or (status == 429 and _denial(status, answer) is None)


def _denial(status: int, answer: bytes) -> QuotaDenial | None:
    """The quota denial a 429 carries; None for any other answer (a throttle, say)."""
    if status != 429:
        return None
    try:
        return _parse(QuotaDenial, json.loads(answer)["denial"])
    except (ValueError, TypeError, KeyError):
        return None


def _parse(model: type[_M], document: Any) -> _M:
    """``model`` from a JSON object, ignoring the names it does not know."""
    if not isinstance(document, dict):
        raise TypeError(f"expected an object, got {type(document).__name__}")
    return model.model_validate({k: v for k, v in document.items() if k in model.model_fields})


def _unexpected(method: str, status: int) -> ServiceUnavailable:
    return ServiceUnavailable(f"the {SERVICE} answered {method} with HTTP {status}")


def _why(exc: Exception) -> str:
    return outbound_http.first_error(exc) if isinstance(exc, ValidationError) else str(exc)
