"""A dependency-fault harness for botocore clients: make chosen AWS calls fail the way AWS
fails them, and count what was injected.

How it hooks in
---------------
botocore emits ``before-send.<service-id>.<Operation>`` once per HTTP attempt, after the
request is signed and before it is sent; the first handler that returns a response object
replaces the HTTP exchange (``Endpoint._do_get_response``), and an exception raised there
is what the HTTP layer would have raised. Everything after that is botocore's own code: the
response is parsed into a ``ClientError``, and the client's ``needs-retry`` handler (the
standard retry mode the platform configures) decides whether to retry, how long to back
off and when to give up. An injected fault is therefore retried, counted against the retry
quota and surfaced exactly as a real one.

botocore emits ``before-send`` to *every* handler (not until the first response), so a
handler that merely returned a fault would still let a stub such as moto's apply the
request. :class:`FaultInjector` therefore takes over the ``before-send`` handlers it finds
on each target (moto's in-process stub among them), and calls them itself when the request
goes through; uninstalling puts them back.

Faults (:class:`FaultKind`)
---------------------------
``THROTTLE``
    The service refused the request for rate: DynamoDB
    ``ProvisionedThroughputExceededException`` (400), S3 ``SlowDown`` (503), KMS, SageMaker,
    Step Functions and EventBridge ``ThrottlingException`` (400). Nothing was applied.
    botocore retries it (throttling back-off).
``SERVER_ERROR``
    The service failed: DynamoDB ``InternalServerError`` (500), S3 ``InternalError`` (500)
    or ``ServiceUnavailable`` (503), KMS ``KMSInternalException`` (500), EventBridge
    ``InternalException`` (500), others ``InternalFailure`` (500) or ``ServiceUnavailable``
    (503). Nothing was applied. botocore retries it.
``CONNECT_TIMEOUT``
    ``ConnectTimeoutError``: the request never reached the service. botocore retries it.
``READ_TIMEOUT``
    ``ReadTimeoutError`` *after* the request reached the service and was applied: the
    response was lost on the way back (the ambiguous outcome every client of a remote
    service must handle). botocore retries it, so the service sees the request twice.
    DynamoDB's ``ClientRequestToken`` (botocore fills it for TransactWriteItems and keeps
    it across retries) makes a repeated transaction return the first one's answer without
    applying it again, as DynamoDB does for ten minutes; :class:`FaultInjector` emulates
    that for the requests whose answer it dropped, because moto does not.
``CONDITION_RACE``
    A concurrent writer won: DynamoDB conditional writes only (PutItem, UpdateItem,
    DeleteItem with a ``ConditionExpression``; TransactWriteItems). A single-item write
    gets ``ConditionalCheckFailedException``; a transaction gets
    ``TransactionCanceledException`` whose cancellation reason for its first conditioned
    item is ``TransactionConflict`` (another transaction held the item) and ``None`` for
    the others. Nothing was applied. botocore does not retry it: the caller's optimistic
    concurrency code must handle it.

Plans
-----
A :class:`Plan` is an ordered list of :class:`Rule`; for every attempt the first rule that
matches the service, operation (``fnmatch`` patterns) and, for DynamoDB, table, and that
fires (``rate``: with that probability from the plan's seeded RNG; ``nth``: on the Nth to
(N + times - 1)th attempt the rule matched), decides the fault.

    with inject([dynamodb, s3], Plan.uniform(rate=0.05, seed=7)) as faults:
        ...
    faults.stats().injected_total
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

__all__ = [
    "SERVICES",
    "FaultInjector",
    "FaultKind",
    "FaultStats",
    "Plan",
    "Rule",
    "inject",
    "platform_targets",
]

# The dependencies the platform calls, by botocore service name.
SERVICES = ("dynamodb", "s3", "kms", "sagemaker", "stepfunctions", "events")
# botocore's hyphenized service ids (the middle part of event names) -> service names.
_SERVICE_IDS = {"sfn": "stepfunctions", "eventbridge": "events"}
_DYNAMODB_NAMESPACE = "com.amazonaws.dynamodb.v20120810#"
_CONDITIONAL_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_ATTEMPT = re.compile(r"attempt=(\d+)")
_MARKER = "_chaos_fault_injector"


class FaultKind(StrEnum):
    """What goes wrong with one attempt; see the module docstring for each one's meaning."""

    THROTTLE = "throttle"
    SERVER_ERROR = "server-error"
    CONNECT_TIMEOUT = "connect-timeout"
    READ_TIMEOUT = "read-timeout"
    CONDITION_RACE = "condition-race"


@dataclass(frozen=True)
class _ErrorCode:
    code: str
    status: int
    message: str


_THROTTLES = {
    "dynamodb": _ErrorCode(
        "ProvisionedThroughputExceededException",
        400,
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    "s3": _ErrorCode("SlowDown", 503, "Please reduce your request rate."),
}
_DEFAULT_THROTTLE = _ErrorCode("ThrottlingException", 400, "Rate exceeded")
_SERVER_ERRORS = {
    "dynamodb": (
        _ErrorCode("InternalServerError", 500, "Internal server error"),
        _ErrorCode("ServiceUnavailable", 503, "Service unavailable"),
    ),
    "s3": (
        _ErrorCode("InternalError", 500, "We encountered an internal error. Please try again."),
        _ErrorCode("ServiceUnavailable", 503, "Service is unable to handle request."),
    ),
    "kms": (_ErrorCode("KMSInternalException", 500, "An internal error occurred."),),
    "events": (_ErrorCode("InternalException", 500, "An internal error occurred."),),
}
_DEFAULT_SERVER_ERRORS = (
    _ErrorCode("InternalFailure", 500, "The request processing has failed."),
    _ErrorCode("ServiceUnavailable", 503, "The request has failed due to a temporary failure."),
)
_CONDITIONAL = _ErrorCode("ConditionalCheckFailedException", 400, "The conditional request failed")
_CANCELLED = _ErrorCode("TransactionCanceledException", 400, "Transaction cancelled")


@dataclass(frozen=True)
class Rule:
    """Inject ``kind`` into attempts of ``service``/``operation`` (``fnmatch`` patterns over
    botocore service names such as ``dynamodb`` and operation names such as ``PutItem``),
    optionally only for DynamoDB requests naming a table that matches ``table``.

    It fires on each matching attempt with probability ``rate``, or, when ``nth`` is given,
    on matching attempts ``nth`` .. ``nth + times - 1`` (1-based) and no others; at most
    ``limit`` times in all when a limit is given. ``CONDITION_RACE`` only ever fires on
    DynamoDB conditional writes (other attempts do not count as matches for it)."""

    kind: FaultKind
    service: str = "*"
    operation: str = "*"
    rate: float = 0.0
    nth: int | None = None
    times: int = 1
    table: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, not {self.rate}")
        if self.nth is not None and self.nth < 1:
            raise ValueError("nth counts attempts from 1")
        if self.times < 1:
            raise ValueError("times is at least 1")

    def matches(self, service: str, operation: str, tables: Sequence[str]) -> bool:
        if not fnmatch.fnmatchcase(service, self.service):
            return False
        if not fnmatch.fnmatchcase(operation, self.operation):
            return False
        if self.table is not None:
            return any(fnmatch.fnmatchcase(name, self.table) for name in tables)
        return True

    def fires(self, matched: int, rng: random.Random) -> bool:
        """Whether the ``matched``-th matching attempt gets the fault."""
        if self.nth is not None:
            return self.nth <= matched < self.nth + self.times
        return self.rate > 0.0 and rng.random() < self.rate


# How often each kind is picked by Plan.uniform: mostly retryable faults, with enough
# lost responses and races to exercise every recovery path.
DEFAULT_MIX: dict[FaultKind, float] = {
    FaultKind.THROTTLE: 0.25,
    FaultKind.SERVER_ERROR: 0.25,
    FaultKind.CONNECT_TIMEOUT: 0.15,
    FaultKind.READ_TIMEOUT: 0.2,
    FaultKind.CONDITION_RACE: 0.15,
}


@dataclass(frozen=True)
class Plan:
    """Ordered rules (the first that matches and fires decides; every rule that matches
    counts the attempt for its ``nth``) and the RNG seed."""

    rules: tuple[Rule, ...]
    seed: int = 0

    @classmethod
    def uniform(
        cls,
        rate: float,
        seed: int = 0,
        *,
        services: Iterable[str] = SERVICES,
        mix: dict[FaultKind, float] | None = None,
    ) -> Plan:
        """Every attempt on ``services`` fails with probability ``rate``, the kind drawn
        from ``mix`` (weights; ``DEFAULT_MIX`` by default). Condition races are
        DynamoDB's: other services share the rate among the other kinds, and DynamoDB
        attempts that are not conditional writes (where no race can be lost) fail with
        the rate less the races' share."""
        weights = {k: w for k, w in (mix or DEFAULT_MIX).items() if w > 0}
        rules: list[Rule] = []
        for service in services:
            kinds = {
                k: w
                for k, w in weights.items()
                if k is not FaultKind.CONDITION_RACE or service == "dynamodb"
            }
            total = sum(kinds.values())
            if total <= 0:
                raise ValueError("the mix needs a positive weight")
            remaining = 1.0
            # Rules are tried in order: each one's rate is its share of what the earlier
            # ones left, so that ``kind`` fails rate * weight / total of the attempts.
            for kind, weight in kinds.items():
                share = rate * weight / total
                rules.append(Rule(kind, service=service, rate=min(1.0, share / remaining)))
                remaining -= share
        return cls(tuple(rules), seed)


@dataclass(frozen=True)
class FaultStats:
    """What an injector saw and did.

    ``calls``: attempts seen per (service, operation), retries included. ``injected``:
    faults per (kind, service). ``max_attempt``: the highest attempt number (botocore's
    ``amz-sdk-request`` header, 1-based) seen per service: with bounded retries it never
    exceeds the configured total attempts. ``token_replays``: repeated DynamoDB
    transactions answered from an earlier lost response (``ClientRequestToken``)."""

    calls: dict[tuple[str, str], int]
    injected: dict[tuple[FaultKind, str], int]
    max_attempt: dict[str, int]
    token_replays: int

    @property
    def injected_total(self) -> int:
        return sum(self.injected.values())

    @property
    def calls_total(self) -> int:
        return sum(self.calls.values())

    def by_kind(self) -> dict[FaultKind, int]:
        counts: Counter[FaultKind] = Counter()
        for (kind, _), n in self.injected.items():
            counts[kind] += n
        return {kind: counts.get(kind, 0) for kind in FaultKind}

    def by_service(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for (_, service), n in self.injected.items():
            counts[service] += n
        return dict(sorted(counts.items()))


class _Raw:
    """The ``raw`` of an ``AWSResponse``: botocore reads it through ``stream()``."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        if self._body:
            yield self._body


@dataclass
class _Installation:
    """The handlers taken over on one event emitter, to put back on uninstall."""

    emitter: Any
    owner: Any
    taken: list[Callable[..., Any]]
    handler: Callable[..., Any]
    sender: Callable[[Any], Any] | None


@dataclass
class _Fault:
    kind: FaultKind
    error: _ErrorCode | None = None
    reasons: list[dict[str, str]] | None = None


@dataclass
class _State:
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    injected: Counter[tuple[FaultKind, str]] = field(default_factory=Counter)
    max_attempt: dict[str, int] = field(default_factory=dict)
    matched: Counter[int] = field(default_factory=Counter)
    fired: Counter[int] = field(default_factory=Counter)
    token_replays: int = 0


class FaultInjector:
    """Installs on botocore clients (or sessions) and injects ``plan``'s faults into their
    attempts; thread-safe. Use :func:`inject` rather than install/uninstall by hand."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self._rng = random.Random(plan.seed)
        self._lock = threading.Lock()
        self._state = _State()
        self._installations: list[_Installation] = []
        self._answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self._enabled = True

    # --- control ---------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop injecting (attempts are still counted and still pass through)."""
        self._enabled = False

    def resume(self) -> None:
        self._enabled = True

    @property
    def enabled(self) -> bool:
        return self._enabled

    def stats(self) -> FaultStats:
        with self._lock:
            state = self._state
            return FaultStats(
                calls=dict(state.calls),
                injected=dict(state.injected),
                max_attempt=dict(state.max_attempt),
                token_replays=state.token_replays,
            )

    @property
    def injected_total(self) -> int:
        with self._lock:
            return sum(self._state.injected.values())

    # --- installation ----------------------------------------------------------------------

    def install(self, target: Any) -> None:
        """Hook ``target``: a botocore or boto3 client, anything that resolves to one (a
        PynamoDB ``Connection``, ``modelops.wiring``'s lazy clients), or a botocore or boto3
        session (clients it creates afterwards inherit the hook)."""
        owner, emitter, sender = _resolve(target)
        if getattr(owner, _MARKER, None) is not None:
            raise RuntimeError(f"{owner!r} already has a fault injector installed")
        taken = list(getattr(emitter, "_emitter", emitter)._handlers.prefix_search("before-send"))
        for handler in taken:
            emitter.unregister("before-send", handler)

        def before_send(request: Any, event_name: str, **kwargs: Any) -> Any:
            return self._before_send(request, event_name, taken, sender, kwargs)

        emitter.register_first("before-send", before_send)
        setattr(owner, _MARKER, self)
        self._installations.append(_Installation(emitter, owner, taken, before_send, sender))

    def uninstall(self) -> None:
        """Remove every hook and put back the handlers taken over."""
        while self._installations:
            installation = self._installations.pop()
            installation.emitter.unregister("before-send", installation.handler)
            for handler in installation.taken:
                installation.emitter.register("before-send", handler)
            with contextlib.suppress(AttributeError):
                delattr(installation.owner, _MARKER)
        with self._lock:
            self._answers.clear()

    # --- the hook --------------------------------------------------------------------------

    def _before_send(
        self,
        request: Any,
        event_name: str,
        downstream: list[Callable[..., Any]],
        sender: Callable[[Any], Any] | None,
        kwargs: dict[str, Any],
    ) -> Any:
        _, service_id, operation = [*event_name.split("."), "", ""][:3]
        service = _SERVICE_IDS.get(service_id, service_id)
        body = _json_body(request) if service == "dynamodb" else None
        token = body.get("ClientRequestToken") if body else None
        answer = self._answered(token, service, operation, _attempt(request))
        if answer is not None:
            status, headers, content = answer
            return AWSResponse(request.url, status, headers, _Raw(content))
        fault = self._decide(service, operation, body, _attempt(request))
        if fault is None:
            return _deliver(request, event_name, downstream, sender, kwargs, required=False)
        if fault.kind is FaultKind.CONNECT_TIMEOUT:
            raise ConnectTimeoutError(endpoint_url=request.url)
        if fault.kind is FaultKind.READ_TIMEOUT:
            response = _deliver(request, event_name, downstream, sender, kwargs, required=True)
            if isinstance(token, str) and response.status_code == 200:
                with self._lock:
                    self._answers[token] = (200, dict(response.headers), response.content)
            raise ReadTimeoutError(endpoint_url=request.url)
        assert fault.error is not None
        return _error_response(request, service, fault.error, fault.reasons)

    def _answered(
        self, token: Any, service: str, operation: str, attempt: int
    ) -> tuple[int, dict[str, str], bytes] | None:
        """The stored answer of a repeated DynamoDB transaction whose first answer was
        lost, as DynamoDB gives it for a ``ClientRequestToken`` it has seen (None: not one)."""
        if not isinstance(token, str):
            return None
        with self._lock:
            answer = self._answers.get(token)
            if answer is not None:
                state = self._state
                state.calls[(service, operation)] += 1
                state.token_replays += 1
                state.max_attempt[service] = max(state.max_attempt.get(service, 0), attempt)
            return answer

    def _decide(
        self, service: str, operation: str, body: dict[str, Any] | None, attempt: int
    ) -> _Fault | None:
        tables = _tables(body) if body else []
        with self._lock:
            state = self._state
            state.calls[(service, operation)] += 1
            state.max_attempt[service] = max(state.max_attempt.get(service, 0), attempt)
            if not self._enabled:
                return None
            chosen: Rule | None = None
            for index, rule in enumerate(self.plan.rules):
                if not rule.matches(service, operation, tables):
                    continue
                race = rule.kind is FaultKind.CONDITION_RACE
                if race and not (service == "dynamodb" and _conditional(operation, body)):
                    continue
                # Every matching rule counts the attempt (``nth`` is the Nth matching
                # attempt), but only rules before the first that fires draw from the RNG.
                state.matched[index] += 1
                if chosen is not None or not rule.fires(state.matched[index], self._rng):
                    continue
                if rule.limit is not None and state.fired[index] >= rule.limit:
                    continue
                state.fired[index] += 1
                chosen = rule
            if chosen is None:
                return None
            state.injected[(chosen.kind, service)] += 1
            return self._fault(chosen.kind, service, operation, body)

    def _fault(
        self, kind: FaultKind, service: str, operation: str, body: dict[str, Any] | None
    ) -> _Fault:
        """Called with the lock held (the RNG is shared)."""
        if kind is FaultKind.THROTTLE:
            return _Fault(kind, _THROTTLES.get(service, _DEFAULT_THROTTLE))
        if kind is FaultKind.SERVER_ERROR:
            choices = _SERVER_ERRORS.get(service, _DEFAULT_SERVER_ERRORS)
            return _Fault(kind, choices[self._rng.randrange(len(choices))])
        if kind is FaultKind.CONDITION_RACE:
            if operation == "TransactWriteItems":
                return _Fault(kind, _CANCELLED, _conflict_reasons(body or {}))
            return _Fault(kind, _CONDITIONAL)
        return _Fault(kind)


@contextlib.contextmanager
def inject(targets: Any, plan: Plan) -> Iterator[FaultInjector]:
    """Install a :class:`FaultInjector` for ``plan`` on ``targets`` (one target, or a list,
    tuple or set of them; see :meth:`FaultInjector.install`) for the ``with`` block."""
    injector = FaultInjector(plan)
    items = list(targets) if isinstance(targets, list | tuple | set) else [targets]
    try:
        for target in items:
            injector.install(target)
        yield injector
    finally:
        injector.uninstall()


def platform_targets(services: Iterable[str] = SERVICES) -> list[Any]:
    """The clients ``modelops.wiring`` builds for ``services`` (created now, the settings
    must be configured), and the botocore clients of PynamoDB's connections to the
    registry table: the model's own connection and the one ``RegistryTable`` keeps for
    transactions. Install on all of them to reach every dependency call the platform
    makes."""
    from modelops import wiring
    from modelops.adapters.dynamodb import RegistryItem

    targets: list[Any] = [wiring.boto_client(service) for service in services]
    if "dynamodb" in services:
        # The repository binds the model to the configured table first: PynamoDB makes a
        # new connection whenever the model's table name changes.
        repository = wiring.registry_repository()
        targets.append(RegistryItem._get_connection().connection.client)
        targets.append(repository._connection.client)
    return targets


# --- helpers ------------------------------------------------------------------------------


def _resolve(target: Any) -> tuple[Any, Any, Callable[[Any], Any] | None]:
    """(object to mark, its event emitter, how to send a request over HTTP)."""
    from botocore.client import BaseClient
    from botocore.session import Session as BotocoreSession

    if hasattr(target, "_session") and isinstance(target._session, BotocoreSession):
        target = target._session  # a boto3 session
    if isinstance(target, BotocoreSession):
        from botocore.httpsession import URLLib3Session

        http = URLLib3Session()
        return target, target.get_component("event_emitter"), http.send
    client = target
    if not isinstance(client, BaseClient):
        nested = getattr(target, "connection", None)  # PynamoDB TableConnection
        candidate = getattr(nested if nested is not None else target, "client", None)
        if isinstance(candidate, BaseClient):
            client = candidate
        else:
            method = getattr(target, "_make_api_call", None)  # a proxy such as _LazyClient
            client = getattr(method, "__self__", None)
    if not isinstance(client, BaseClient):
        raise TypeError(f"cannot find a botocore client in {target!r}")
    endpoint = client._endpoint
    return client, client.meta.events, endpoint.http_session.send


def _deliver(
    request: Any,
    event_name: str,
    downstream: list[Callable[..., Any]],
    sender: Callable[[Any], Any] | None,
    kwargs: dict[str, Any],
    *,
    required: bool,
) -> Any:
    """What the taken-over handlers answer; if none does and ``required``, send over HTTP
    (else None: botocore sends it)."""
    for handler in downstream:
        response = handler(request=request, event_name=event_name, **kwargs)
        if response is not None:
            return response
    if not required:
        return None
    if sender is None:
        raise RuntimeError("no way to deliver the request")
    return sender(request)


def _json_body(request: Any) -> dict[str, Any] | None:
    body = request.body
    if not isinstance(body, bytes | str) or not body:
        return None
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _tables(body: dict[str, Any]) -> list[str]:
    names: list[str] = []
    if isinstance(body.get("TableName"), str):
        names.append(body["TableName"])
    for item in body.get("TransactItems") or ():
        for action in item.values():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.append(action["TableName"])
    names.extend(body.get("RequestItems") or ())
    return names


def _conditional(operation: str, body: dict[str, Any] | None) -> bool:
    if body is None:
        return False
    if operation == "TransactWriteItems":
        return True
    return operation in _CONDITIONAL_WRITES and "ConditionExpression" in body


def _conflict_reasons(body: dict[str, Any]) -> list[dict[str, str]]:
    items = body.get("TransactItems") or [{}]
    conditioned = [
        i
        for i, item in enumerate(items)
        if any(isinstance(a, dict) and "ConditionExpression" in a for a in item.values())
    ]
    loser = conditioned[0] if conditioned else 0
    return [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        if i == loser
        else {"Code": "None"}
        for i in range(len(items))
    ]


def _attempt(request: Any) -> int:
    header = request.headers.get("amz-sdk-request")
    if isinstance(header, bytes):
        header = header.decode()
    match = _ATTEMPT.search(header or "")
    return int(match.group(1)) if match else 1


def _error_response(
    request: Any, service: str, error: _ErrorCode, reasons: list[dict[str, str]] | None
) -> AWSResponse:
    """The error as the service's protocol puts it on the wire."""
    request_id = uuid.uuid4().hex.upper()
    if service == "s3":
        headers = {"x-amz-request-id": request_id, "Content-Type": "application/xml"}
        body = b""
        if request.method != "HEAD":  # S3 answers HEAD errors with the status alone
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{error.code}</Code><Message>{error.message}</Message>"
                f"<RequestId>{request_id}</RequestId><HostId>chaos</HostId></Error>"
            ).encode()
        return AWSResponse(request.url, error.status, headers, _Raw(body))
    code = _DYNAMODB_NAMESPACE + error.code if service == "dynamodb" else error.code
    document: dict[str, Any] = {"__type": code, "message": error.message}
    if reasons is not None:
        document["CancellationReasons"] = reasons
        codes = ", ".join(r["Code"] for r in reasons)
        document["message"] = (
            f"{error.message}, please refer cancellation reasons for specific reasons [{codes}]"
        )
    content_type = "application/x-amz-json-1.0"
    if service in {"kms", "events", "sagemaker"}:
        content_type = "application/x-amz-json-1.1"
    headers = {"x-amzn-RequestId": request_id, "Content-Type": content_type}
    return AWSResponse(request.url, error.status, headers, _Raw(json.dumps(document).encode()))
