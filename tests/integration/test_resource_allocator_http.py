"""The Resource Allocator HTTP client against a fake allocator on 127.0.0.1 that enforces
quotas under a lock and checks every request's SigV4 signature: reservations round-trip,
retries are no-ops, denials keep their fields, and an allocator that fails is a 503."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from botocore.credentials import Credentials

from localcloud.sigv4 import Credential, SignatureError, verify
from modelops.adapters.outbound_http import sigv4_signer
from modelops.adapters.resource_allocator_http import ResourceAllocatorClient
from modelops.domain.pools import QuotaDenial, period_of, reserved_gpu_hours
from modelops.domain.training import ComputeRequirements
from modelops.errors import ServiceUnavailable
from modelops.ports import ComputeAllocator, ReservationRefused
from tests.integration.local_http import Received, received, serving, unreachable_url
from tests.sigv4_principals import KERNEL, KNOWN, SESSION
from tests.unit.fakes import FixedClock

REGION = "us-east-1"
POOL = "gpu-east"
TEAM = "vision"
# ml.g5.12xlarge: 4 GPUs; two instances for an hour hold 8 GPUs and 8 GPU-hours.
TWO_G5 = ComputeRequirements(pool=POOL, instanceType="ml.g5.12xlarge", instanceCount=2)
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/\d{8}/us-east-1/execute-api/aws4_request,"
    r" SignedHeaders=(?P<signed>[a-z0-9-]+(;[a-z0-9-]+)*), Signature=[0-9a-f]{64}"
)


class FakeResourceAllocator:
    """The contract in ``modelops.adapters.resource_allocator_http``, in memory: every team
    may hold ``gpu_hours_per_team`` GPU-hours a period, the pool ``max_concurrent_gpus``.

    Requests whose SigV4 signature does not verify are answered 403; ``failures`` are
    answers given (first to last) before any request is served."""

    def __init__(self, gpu_hours_per_team: Decimal, max_concurrent_gpus: int) -> None:
        self.gpu_hours_per_team = gpu_hours_per_team
        self.max_concurrent_gpus = max_concurrent_gpus
        self.lock = threading.Lock()
        self.reservations: dict[str, dict[str, Any]] = {}
        self.committed: dict[tuple[str, str, str], Decimal] = {}
        self.active: dict[str, int] = {}
        self.received: list[Received] = []
        self.signers: list[str] = []
        self.failures: list[tuple[int, dict[str, Any]]] = []
        self.url = ""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.serve(self)

            def do_PUT(self) -> None:
                fake.serve(self)

            def do_POST(self) -> None:
                fake.serve(self)

        self.handler = Handler

    def serve(self, handler: BaseHTTPRequestHandler) -> None:
        request = received(handler)
        path, _, query = request.path.partition("?")
        with self.lock:
            self.received.append(request)
            try:
                signer = verify(
                    request.method,
                    path,
                    query,
                    request.headers,
                    request.body,
                    lookup=KNOWN.get,
                    region=REGION,
                )
            except SignatureError as exc:
                status, document = 403, {"message": exc.message}
            else:
                self.signers.append(signer.principal_arn)
                status, document = (
                    self.failures.pop(0) if self.failures else self.route(request, path, query)
                )
        body = json.dumps(document).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def route(self, request: Received, path: str, query: str) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if request.method == "GET" and parts == ["reservations"]:
            params = urllib.parse.parse_qs(query)
            assert params["status"] == ["open"]
            held = [r for r in self.reservations.values() if r["status"] == "RESERVED"]
            return 200, {"items": held[: int(params["limit"][0])]}
        document = json.loads(request.body)
        if request.method == "PUT" and len(parts) == 2:
            return self.reserve(parts[1], document)
        if request.method == "POST" and len(parts) == 3 and parts[2] == "release":
            return self.release(parts[1], document)
        return 404, {"message": "no such route"}

    def reserve(self, job_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if job_id in self.reservations:
            return 200, self.reservations[job_id]
        if not isinstance(body["gpuHours"], str):
            return 400, {"message": "gpuHours must be a decimal string"}
        pool, team, period = body["pool"], body["team"], body["period"]
        gpu_hours, gpus = Decimal(body["gpuHours"]), body["gpus"]
        committed = self.committed.get((pool, team, period), Decimal(0))
        active = self.active.get(pool, 0)
        if committed + gpu_hours > self.gpu_hours_per_team:
            quota, requested, limit, remaining = (
                "gpuHoursPerTeam",
                gpu_hours,
                self.gpu_hours_per_team,
                self.gpu_hours_per_team - committed,
            )
        elif active + gpus > self.max_concurrent_gpus:
            quota, requested, limit, remaining = (
                "maxConcurrentGpus",
                Decimal(gpus),
                Decimal(self.max_concurrent_gpus),
                Decimal(self.max_concurrent_gpus - active),
            )
        else:
            self.committed[pool, team, period] = committed + gpu_hours
            self.active[pool] = active + gpus
            self.reservations[job_id] = {
                "jobId": job_id,
                "pool": pool,
                "team": team,
                "period": period,
                "gpus": gpus,
                "gpuHours": body["gpuHours"],
                "status": "RESERVED",
                "createdAt": datetime.now(UTC).isoformat(),
                "releasedAt": None,
                "usedGpuHours": None,
                "instanceType": body["instanceType"],  # a field the client does not know
            }
            return 201, self.reservations[job_id]
        denial = {
            "quota": quota,
            "requested": str(requested),
            "limit": str(limit),
            "remaining": str(max(Decimal(0), remaining)),
            "period": period,
            "pool": pool,
            "team": team,
        }
        return 429, {"denial": denial, "message": "quota exceeded"}

    def release(self, job_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        reservation = self.reservations.get(job_id)
        if reservation is None:
            return 404, {"message": f"no reservation of {job_id}"}
        if reservation["status"] == "RESERVED":
            used = Decimal(body["usedGpuHours"])
            key = (reservation["pool"], reservation["team"], reservation["period"])
            self.committed[key] += used - Decimal(reservation["gpuHours"])
            self.active[reservation["pool"]] -= reservation["gpus"]
            reservation.update(
                status="RELEASED",
                releasedAt=datetime.now(UTC).isoformat(),
                usedGpuHours=body["usedGpuHours"],
            )
        return 200, reservation

    def held(self, period: str) -> tuple[Decimal, int]:
        """GPU-hours the team holds this period, and GPUs the pool holds."""
        return self.committed.get((POOL, TEAM, period), Decimal(0)), self.active.get(POOL, 0)


@pytest.fixture
def fake() -> Iterator[FakeResourceAllocator]:
    allocator = FakeResourceAllocator(gpu_hours_per_team=Decimal(20), max_concurrent_gpus=16)
    with serving(allocator.handler) as allocator.url:
        yield allocator


def allocator(
    url: str, clock: FixedClock | None = None, credential: Credential | None = KERNEL
) -> ResourceAllocatorClient:
    signer = None
    if credential is not None:
        keys = Credentials(
            credential.access_key_id, credential.secret_access_key, credential.session_token
        )
        signer = sigv4_signer(REGION, credentials=keys)
    return ResourceAllocatorClient(
        url, clock or FixedClock(), signer=signer, timeout_s=1.0, backoff_s=0.0
    )


def test_reserve_and_release_round_trip(fake: FakeResourceAllocator) -> None:
    clock = FixedClock()
    client: ComputeAllocator = allocator(fake.url, clock)
    period = period_of(clock.current)
    client.reserve("trn-1", TEAM, TWO_G5)

    put = fake.received[0]
    assert (put.method, put.path) == ("PUT", "/reservations/trn-1")
    assert json.loads(put.body) == {
        "team": TEAM,
        "pool": POOL,
        "instanceType": "ml.g5.12xlarge",
        "instanceCount": 2,
        "gpus": 8,
        "gpuHours": "8.000000",
        "period": period,
    }
    assert Decimal("8") == reserved_gpu_hours("ml.g5.12xlarge", 2, 3600)
    assert fake.held(period) == (Decimal(8), 8)

    [held] = client.open_reservations(limit=10)
    assert (held.jobId, held.pool, held.team, held.period) == ("trn-1", POOL, TEAM, period)
    assert (held.gpus, held.gpuHours, held.status) == (8, Decimal(8), "RESERVED")
    assert fake.received[1].path == "/reservations?status=open&limit=10"

    client.release("trn-1", Decimal("2.5"))
    release = fake.received[2]
    assert (release.method, release.path) == ("POST", "/reservations/trn-1/release")
    assert json.loads(release.body) == {"usedGpuHours": "2.500000"}
    assert fake.held(period) == (Decimal("2.5"), 0)
    assert client.open_reservations(limit=10) == []


def test_reserving_and_releasing_again_change_nothing(fake: FakeResourceAllocator) -> None:
    clock = FixedClock()
    client = allocator(fake.url, clock)
    period = period_of(clock.current)
    client.reserve("trn-1", TEAM, TWO_G5)
    client.reserve("trn-1", TEAM, TWO_G5)  # 200: already held
    assert fake.held(period) == (Decimal(8), 8)
    assert len(client.open_reservations(limit=10)) == 1

    client.release("trn-1", Decimal(3))
    client.release("trn-1", Decimal(7))  # 200: the first release stands
    client.release("trn-never-reserved", Decimal(1))  # 404: nothing to release
    assert fake.held(period) == (Decimal(3), 0)
    assert fake.reservations["trn-1"]["usedGpuHours"] == "3.000000"


def test_open_reservations_are_bounded_by_the_limit(fake: FakeResourceAllocator) -> None:
    client = allocator(fake.url)
    small = TWO_G5.model_copy(update={"instanceCount": 1})
    for index in range(3):
        client.reserve(f"trn-{index}", TEAM, small)
    assert [r.jobId for r in client.open_reservations(limit=2)] == ["trn-0", "trn-1"]


def test_team_quota_denial_is_a_refusal_with_its_fields(fake: FakeResourceAllocator) -> None:
    clock = FixedClock()
    client = allocator(fake.url, clock)
    client.reserve("trn-1", TEAM, TWO_G5.model_copy(update={"maxRuntimeSeconds": 7200}))
    with pytest.raises(ReservationRefused) as refused:
        client.reserve("trn-2", TEAM, TWO_G5.model_copy(update={"maxRuntimeSeconds": 7200}))
    assert refused.value.denial == QuotaDenial(
        pool=POOL,
        team=TEAM,
        quota="gpuHoursPerTeam",
        requested=Decimal(16),
        limit=Decimal(20),
        remaining=Decimal(4),
        period=period_of(clock.current),
    )
    assert "team vision asked for 16" in str(refused.value)
    assert [r.jobId for r in client.open_reservations(limit=10)] == ["trn-1"]


def test_pool_concurrency_denial_is_a_refusal(fake: FakeResourceAllocator) -> None:
    client = allocator(fake.url)
    client.reserve("trn-1", "team-a", TWO_G5)
    client.reserve("trn-2", "team-b", TWO_G5)
    with pytest.raises(ReservationRefused) as refused:
        client.reserve("trn-3", "team-c", TWO_G5)
    denial = refused.value.denial
    assert (denial.quota, denial.team) == ("maxConcurrentGpus", "team-c")
    assert (denial.requested, denial.limit, denial.remaining) == (
        Decimal(8),
        Decimal(16),
        Decimal(0),
    )


def test_concurrent_reservations_take_no_more_than_the_quota(
    fake: FakeResourceAllocator,
) -> None:
    clock = FixedClock()
    client = allocator(fake.url, clock)
    one_gpu = ComputeRequirements(pool=POOL, instanceType="ml.g5.xlarge", maxRuntimeSeconds=7200)

    def reserve(index: int) -> bool:
        try:
            client.reserve(f"trn-{index}", TEAM, one_gpu)
        except ReservationRefused:
            return False
        return True

    with ThreadPoolExecutor(max_workers=12) as pool:
        accepted = sum(pool.map(reserve, range(24)))
    assert accepted == 10  # 2 GPU-hours each against 20
    assert fake.held(period_of(clock.current)) == (Decimal(20), 10)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_is_retried(fake: FakeResourceAllocator, status: int) -> None:
    fake.failures = [(status, {"message": "busy"}), (status, {"message": "busy"})]
    client = allocator(fake.url)
    client.reserve("trn-1", TEAM, TWO_G5)
    assert [r.method for r in fake.received] == ["PUT"] * 3
    client.release("trn-1", Decimal(1))
    assert fake.reservations["trn-1"]["status"] == "RELEASED"


def test_throttling_without_a_denial_is_retried_not_refused(
    fake: FakeResourceAllocator,
) -> None:
    fake.failures = [(429, {"message": "Too Many Requests"})]
    allocator(fake.url).reserve("trn-1", TEAM, TWO_G5)
    assert len(fake.received) == 2
    assert "trn-1" in fake.reservations


def test_a_server_error_on_every_attempt_is_service_unavailable(
    fake: FakeResourceAllocator,
) -> None:
    fake.failures = [(503, {"message": "down"})] * 5
    with pytest.raises(
        ServiceUnavailable, match=r"answered HTTP 503 \(GET /reservations, 3 attempt\(s\)\)"
    ) as caught:
        allocator(fake.url).open_reservations(limit=10)
    assert caught.value.status == 503
    assert len(fake.received) == 3


def test_an_unreachable_allocator_is_service_unavailable() -> None:
    client = allocator(unreachable_url())
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="Resource Allocator is unreachable"):
        client.reserve("trn-1", TEAM, TWO_G5)
    with pytest.raises(ServiceUnavailable):
        client.release("trn-1", Decimal(0))
    with pytest.raises(ServiceUnavailable):
        client.open_reservations(limit=10)
    assert time.monotonic() - started < 3.0


def test_an_allocator_that_does_not_answer_in_time_is_service_unavailable() -> None:
    class Silent(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            time.sleep(0.6)

    with serving(Silent) as url:
        client = ResourceAllocatorClient(url, FixedClock(), timeout_s=0.2, attempts=2)
        with pytest.raises(
            ServiceUnavailable,
            match=r"did not answer within 0.2 s \(PUT /reservations/trn-1, 2 attempt",
        ):
            client.reserve("trn-1", TEAM, TWO_G5)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((200, {"reservations": []}), "malformed: 'items'"),
        ((200, {"items": [{"jobId": "trn-1"}]}), "malformed: pool: Field required"),
        ((403, {"message": "forbidden"}), "answered GET with HTTP 403"),
    ],
)
def test_an_answer_outside_the_contract_is_service_unavailable(
    fake: FakeResourceAllocator, answer: tuple[int, dict[str, Any]], message: str
) -> None:
    fake.failures = [answer]
    with pytest.raises(ServiceUnavailable, match=message):
        allocator(fake.url).open_reservations(limit=10)
    assert len(fake.received) == 1


@pytest.mark.parametrize("credential", [KERNEL, SESSION], ids=["user", "assumed-role"])
def test_every_request_is_sigv4_signed(fake: FakeResourceAllocator, credential: Credential) -> None:
    client = allocator(fake.url, credential=credential)
    fake.failures = [(503, {"message": "busy"})]  # a retry is signed afresh
    client.reserve("trn-1", TEAM, TWO_G5)
    client.open_reservations(limit=10)
    client.release("trn-1", Decimal(1))
    assert fake.signers == [credential.principal_arn] * 4
    for request in fake.received:
        shape = AUTHORIZATION.fullmatch(request.headers["authorization"])
        assert shape is not None, request.headers["authorization"]
        assert shape["key"] == credential.access_key_id
        assert {"host", "x-amz-date"} <= set(shape["signed"].split(";"))
        assert request.headers.get("x-amz-security-token") == credential.session_token


def test_an_unsigned_request_is_refused_and_not_retried(fake: FakeResourceAllocator) -> None:
    with pytest.raises(ServiceUnavailable, match="answered PUT with HTTP 403"):
        allocator(fake.url, credential=None).reserve("trn-1", TEAM, TWO_G5)
    assert len(fake.received) == 1
    assert fake.reservations == {}


def test_a_signer_without_credentials_sends_nothing(fake: FakeResourceAllocator) -> None:
    def no_credentials(request: object) -> None:
        raise RuntimeError("no AWS credentials to sign with")

    client = ResourceAllocatorClient(fake.url, FixedClock(), signer=no_credentials)
    with pytest.raises(ServiceUnavailable, match="no AWS credentials"):
        client.reserve("trn-1", TEAM, TWO_G5)
    assert fake.received == []


@pytest.mark.parametrize("base_url", ["file:///etc", "127.0.0.1:8080", "", "http://"])
def test_base_url_must_be_http(base_url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        ResourceAllocatorClient(base_url, FixedClock())
