"""The chaos campaign: the platform's services under injected dependency faults, driven by
concurrent clients, then checked for lost, duplicated and half-written records.

Set-up (:class:`Sandbox`)
-------------------------
moto in-process (``mock_aws``, without resetting other moto state, under names unique to the
run) with the local cloud's extensions (Ed25519 and DIGEST signing in KMS, atomic DynamoDB
requests), the tables, buckets, keys and bus of ``modelops.platform``, and the environment
CDK gives ``registry-api`` (plus a compute pool). The services are the ones
``modelops.wiring`` builds from that environment; :func:`chaos.faults.platform_targets`
hooks every client they use (boto3 clients and PynamoDB's), so every DynamoDB, S3, KMS and
EventBridge call may fail.

The campaign runs in rounds (:func:`run_round`), each in a fresh sandbox, until the fault
target is reached: moto copies a whole table for every transaction, so a table that grew
for the whole campaign would slow every request after it.

Faults (:class:`chaos.faults.FaultKind`): every attempt of every call fails with the
configured rate, as a throttle, a 5xx, a connect timeout, a read timeout after the request
was applied (its answer lost), or (DynamoDB conditional writes) a lost race.

Operations (:class:`Operations`), by worker threads until the round's faults are reached
----------------------------------------------------------------------------------------
``chain``
    Upload an artifact (start, PUT to the presigned URL, complete), register a dataset
    under one of a few shared names (versions contend) and a model with lineage to it,
    through the services. A quarter of the uploads reuse content another client uploaded
    (natural-key idempotency). Each request is retried by the client, unchanged, on 5xx
    and AWS errors.
``api``
    The same chain through the registry API handler (API Gateway events, Powertools'
    resolver, Idempotency-Key on every POST; a retry resends the same key and body), and
    half the time a registration is delivered once more with its key after it succeeded
    (the replay must name the same resources). Requests go through one "Lambda
    container" at a time: Powertools keeps the current request in class attributes.
``model-race``
    Four clients register the same family and version with different content at once:
    one may win, the others must get 409.
``promotion-race``
    Four clients promote the same draft model to staging at once.
``prod-race``
    Three staging versions of a new family are promoted to prod at once.
``quota-race``
    Six jobs of a new team reserve one GPU-hour each against a 4 GPU-hour limit at once,
    then the reservations that were granted are released.
``ledger-burst``
    Four clients append five audit events each to one stream at once.

Invariants (:func:`check`), over a snapshot of storage and what the clients were told
--------------------------------------------------------------------------------------
``no-lost-records``: every artifact, dataset, model, promotion, reservation, release and
ledger event a client saw succeed is stored. ``no-duplicated-records``: no natural key
(artifact manifest, dataset name and content, model family and version, ledger event id,
promotion of a model to a stage, reserved job) has two records or two "created" answers,
and every Idempotency-Key's answers name the same resources. ``no-half-written-records``:
every artifact's blobs exist with their sizes; every dataset and model has its lineage node,
its edges and (datasets) its version slot; every node has its record; a model's stage is its
stage history's last move. ``ledger-verifies``: ``AuditService.verify`` (chains, Merkle
roots, signed checkpoints). ``ledger-never-forks``: per stream, seqs are 1..N and every
record's prevHash is its predecessor's hash. ``quota-within-limits``: each team's committed
GPU-hours are within its limit and equal the sum of its reservations, and a pool's active
GPUs are its open reservations'. ``single-winner``: raced registrations acknowledged one
content at most, the stored one; raced promotions completed once. ``one-prod-per-family``.
``failures-are-clean``: every failed operation ended in a ModelOpsError, an HTTP error
answer, a quota refusal, the ledger's loud ``LedgerUnavailable`` or an AWS error surfaced by
botocore after its bounded retries. ``retries-bounded``: no attempt beyond the configured
maximum. ``idempotency-keys-unwedged``: no Idempotency-Key is left "in progress" for good
once the requests are over. ``fault-target-reached``: at least the requested faults were
injected within the time bound.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chaos.faults import DEFAULT_MIX, FaultInjector, FaultKind, FaultStats, Plan, platform_targets

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "123456789012"
ENGINEER = f"arn:aws:iam::{ACCOUNT}:user/chaos-engineer"
POOL = "chaos-gpu"
TEAM_LIMIT_GPU_HOURS = 4
QUOTA_RACERS = 6
RACERS = 4
PROD_RACERS = 3
LEDGER_WRITERS = 4
LEDGER_EVENTS_EACH = 5
LEDGER_STREAM = "chaos-ledger"
DATASET_NAMES = ("chaos-iris", "chaos-wine", "chaos-digits", "chaos-news")
CLIENT_ATTEMPTS = 6  # tries of one request by a client (the first and 5 retries)
CLIENT_BACKOFF_S = 0.02
# Total attempts botocore may make per call: the platform's boto3 clients are configured
# with {"mode": "standard", "max_attempts": 4} (4 retries), PynamoDB's model with
# max_retry_attempts = 4; RegistryTable's transaction connection takes PynamoDB's default (3).
MAX_ATTEMPTS = 5
WEIGHTS = {
    "chain": 5,
    "api": 3,
    "model-race": 2,
    "promotion-race": 2,
    "prod-race": 1,
    "quota-race": 2,
    "ledger-burst": 2,
}
T = TypeVar("T")


@dataclass(frozen=True)
class CampaignConfig:
    """``faults``: run until at least this many faults were injected; ``rate``: probability
    that an attempt of a dependency call fails; ``threads``: concurrent workers (each race
    adds its own racers); ``max_seconds``: stop then even if the target is not reached;
    ``round_faults``: faults per round (each round starts from empty storage)."""

    faults: int = 1000
    rate: float = 0.1
    seed: int = 1
    threads: int = 8
    max_seconds: float = 240.0
    round_faults: int = 100
    mix: Mapping[FaultKind, float] = field(default_factory=lambda: dict(DEFAULT_MIX))


# --- the sandbox --------------------------------------------------------------------------


class Sandbox:
    """moto in-process with the platform's resources and the environment of the registry
    API. Other moto state of the process is left alone (no reset), names are unique to the
    sandbox, and the environment and ``modelops`` caches are restored on exit."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"chaos-{uuid.uuid4().hex[:10]}"
        self.names: dict[str, str] = {}
        self.key_arns: dict[str, str] = {}
        self._mock: Any = None
        self._environ: dict[str, str] = {}
        self._clients: dict[str, Any] = {}

    def __enter__(self) -> Sandbox:
        from moto import mock_aws

        from localcloud import dynamodb_atomic, kms_digest, kms_ed25519

        kms_ed25519.install()
        kms_digest.install()
        dynamodb_atomic.install()
        self._environ = dict(os.environ)
        self._mock = mock_aws()
        self._mock.start(reset=False)
        try:
            self._provision()
            os.environ.update(self.environment())
            forget_wiring()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        with contextlib.suppress(Exception):
            self._delete()
        forget_wiring()
        if self._mock is not None:
            self._mock.stop(remove_data=False)
            self._mock = None
        os.environ.clear()
        os.environ.update(self._environ)

    def client(self, service: str) -> Any:
        """A client of the sandbox that no fault reaches (set-up, uploads, checks)."""
        if service not in self._clients:
            config = Config(retries={"mode": "standard", "max_attempts": 4})
            self._clients[service] = boto3.session.Session(
                aws_access_key_id="chaos", aws_secret_access_key="chaos", region_name=REGION
            ).client(service, config=config)
        return self._clients[service]

    def name(self, logical_id: str) -> str:
        return self.names[logical_id]

    def environment(self) -> dict[str, str]:
        from modelops import platform

        env = platform.function_environment(
            platform.REGISTRY_API,
            {**self.names, **self.key_arns},
            {ENGINEER: ["ml-engineer"]},
        )
        pools = {
            POOL: {
                "region": REGION,
                "instanceTypes": ["ml.g5.xlarge"],
                "quota": {
                    "gpuHoursPerTeam": {"default": TEAM_LIMIT_GPU_HOURS},
                    "maxConcurrentGpus": 1_000_000,
                },
                "rates": {"ml.g5.xlarge": {"onDemand": 1.408, "spot": 0.4224}},
            }
        }
        return {
            **env,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            platform.COMPUTE_POOLS_PARAMETER: json.dumps(pools),
            platform.TEAM_BINDINGS_PARAMETER: "{}",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "CRITICAL",
        }

    def _provision(self) -> None:
        from localcloud.cloud import create_table
        from modelops import platform

        for spec in platform.TABLES:
            self.names[spec.logical_id] = f"{self.prefix}-{spec.logical_id.lower()}"
            create_table(self.client("dynamodb"), spec, self.names[spec.logical_id])
        s3 = self.client("s3")
        for bucket in platform.BUCKETS:
            name = self.names[bucket.logical_id] = f"{self.prefix}-{bucket.logical_id.lower()}"
            locked = bucket.object_lock_days is not None
            s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
            if locked:
                # Governance mode (tearable), as in dev: the sandbox deletes its objects.
                s3.put_object_lock_configuration(
                    Bucket=name,
                    ObjectLockConfiguration={
                        "ObjectLockEnabled": "Enabled",
                        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
                    },
                )
        kms = self.client("kms")
        for key in platform.KEYS:  # every key a function may name in its environment
            if key.env_var is None:
                continue
            metadata = kms.create_key(KeySpec=key.key_spec, KeyUsage=key.key_usage)["KeyMetadata"]
            self.key_arns[key.logical_id] = str(metadata["Arn"])
        for bus in platform.BUSES:
            self.names[bus.logical_id] = f"{self.prefix}-{bus.logical_id.lower()}"
            self.client("events").create_event_bus(Name=self.names[bus.logical_id])
        for invoked in platform.REGISTRY_API.invokes:  # named; the campaign invokes none
            self.names[invoked] = f"{self.prefix}-{invoked}"

    def _delete(self) -> None:
        from modelops import platform

        for spec in platform.TABLES:
            with contextlib.suppress(Exception):
                self.client("dynamodb").delete_table(TableName=self.names[spec.logical_id])
        s3 = self.client("s3")
        for bucket in platform.BUCKETS:
            name = self.names.get(bucket.logical_id)
            if name is None:
                continue
            with contextlib.suppress(Exception):
                for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
                    for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                        s3.delete_object(
                            Bucket=name,
                            Key=version["Key"],
                            VersionId=version["VersionId"],
                            BypassGovernanceRetention=True,
                        )
                s3.delete_bucket(Bucket=name)


def forget_wiring() -> None:
    """Forget every cached setting, client and service of ``modelops`` (and the API's
    idempotency store), so the next use builds them from the current environment."""
    from modelops import api, config, wiring

    for module in (config, wiring, api):
        for name in dir(module):
            factory = getattr(module, name)
            if callable(getattr(factory, "cache_clear", None)):
                factory.cache_clear()


# --- what clients saw ---------------------------------------------------------------------


@dataclass
class Outcomes:
    attempted: int = 0
    succeeded: int = 0
    failed_clean: int = 0
    failed_unclean: int = 0


@dataclass
class RaceResult:
    """One raced resource: what each racer was answered (``value`` None: a failure)."""

    key: str
    answers: list[tuple[str, Any]]


class Journal:
    """What the clients were told, thread-safe: acknowledged records, race answers and
    the outcome of every operation."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: dict[str, Outcomes] = defaultdict(Outcomes)
        self.failure_classes: Counter[str] = Counter()
        self.unclean: list[str] = []
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.datasets: dict[str, dict[str, Any]] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.promotions: dict[str, str] = {}
        self.reservations: dict[str, Decimal] = {}
        self.releases: dict[str, Decimal] = {}
        self.events: set[str] = set()
        self.created: Counter[str] = Counter()
        self.idempotent: dict[str, list[str]] = defaultdict(list)
        self.model_races: list[RaceResult] = []
        self.promotion_races: list[RaceResult] = []
        self.quota_teams: dict[str, int] = {}
        self.prod_families: set[str] = set()

    def outcome(self, operation: str, error: BaseException | None = None) -> None:
        with self._lock:
            outcome = self.outcomes[operation]
            outcome.attempted += 1
            if error is None:
                outcome.succeeded += 1
                return
            kind = failure_class(error)
            if kind is None:
                outcome.failed_unclean += 1
                self.unclean.append(f"{operation}: {type(error).__name__}: {error}"[:300])
            else:
                outcome.failed_clean += 1
                self.failure_classes[kind] += 1

    def acknowledge(self, kind: str, key: str, record: dict[str, Any], created: bool) -> None:
        with self._lock:
            getattr(self, kind)[key] = record
            if created:
                self.created[f"{kind}:{key}"] += 1

    def add(self, attribute: str, value: Any) -> None:
        with self._lock:
            target = getattr(self, attribute)
            if isinstance(target, set):
                target.add(value)
            else:
                target.append(value)

    def answered(self, idempotency_key: str, resources: str) -> None:
        with self._lock:
            self.idempotent[idempotency_key].append(resources)

    def put(self, attribute: str, key: str, value: Any) -> None:
        with self._lock:
            getattr(self, attribute)[key] = value


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def failure_class(error: BaseException) -> str | None:
    """How an operation failed, if cleanly: a ModelOpsError (its status), an HTTP error
    answer of the API, a quota refusal, the ledger's LedgerUnavailable, or an AWS error
    botocore surfaced after its retries (possibly wrapped by the caller). None: anything
    else, which the campaign reports as an unclean failure."""
    from modelops.errors import ModelOpsError
    from modelops.ports import ReservationRefused
    from modelops.services.audit import LedgerUnavailable

    if isinstance(error, HttpFailure):
        return f"http {error.status}"
    if isinstance(error, ModelOpsError):
        return f"modelops {error.status}"
    if isinstance(error, ReservationRefused):
        return "quota refused"
    if isinstance(error, LedgerUnavailable):
        return "ledger unavailable"
    if any(isinstance(e, ClientError | BotoCoreError) for e in _chain(error)):
        return "aws error"
    return None


class HttpFailure(Exception):
    """An API answer that is not a success."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body)[:200]}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str:
        return str((self.body.get("error") or {}).get("code", ""))


def _retryable(error: BaseException) -> bool:
    """What a client retries with the same request: server-side failures, AWS errors and
    requests still in progress; never a 4xx answer about the request itself."""
    from modelops.errors import ModelOpsError
    from modelops.ports import ReservationRefused
    from modelops.services.audit import LedgerUnavailable

    if isinstance(error, HttpFailure):
        return error.status >= 500 or error.code == "REQUEST_IN_PROGRESS"
    if isinstance(error, ModelOpsError):
        return error.status >= 500
    if isinstance(error, ReservationRefused):
        return False
    if isinstance(error, LedgerUnavailable):
        return True
    return failure_class(error) is not None


class Failed(Exception):
    """An operation failed for good (after the client's retries); ``error`` says how."""

    def __init__(self, operation: str, error: BaseException) -> None:
        super().__init__(f"{operation}: {error}")
        self.error = error


# --- the operations -----------------------------------------------------------------------


class Operations:
    """What the clients do; every request is retried by its client, unchanged."""

    def __init__(self, sandbox: Sandbox, journal: Journal) -> None:
        from modelops import wiring
        from modelops.domain.access import Caller, Role

        self.sandbox = sandbox
        self.journal = journal
        self.caller = Caller(ENGINEER, frozenset({Role.ML_ENGINEER}))
        self.artifacts = wiring.artifact_service()
        self.registry = wiring.registry_service()
        self.promotions = wiring.promotion_service()
        self.audit = wiring.audit_service()
        self.quota = wiring.quota_ledger()
        self.shared_content: list[bytes] = []
        self._content_lock = threading.Lock()
        self._container = threading.Lock()
        self._handler: Any = None

    # --- client plumbing -------------------------------------------------------------------

    def attempt(self, operation: str, request: Callable[[], T]) -> T:
        """``request()``, retried as a client retries the same request; the outcome goes
        to the journal; raises Failed if it did not succeed."""
        last: BaseException | None = None
        for attempt in range(CLIENT_ATTEMPTS):
            try:
                result = request()
            except Exception as error:
                last = error
                if not _retryable(error):
                    break
                time.sleep(random.random() * CLIENT_BACKOFF_S * 2**attempt)
                continue
            self.journal.outcome(operation)
            return result
        assert last is not None
        self.journal.outcome(operation, last)
        raise Failed(operation, last)

    def race(self, calls: list[Callable[[], T]]) -> list[T | None]:
        """Run ``calls`` at once (released together by a barrier); None for a failure."""
        barrier = threading.Barrier(len(calls))

        def run(call: Callable[[], T]) -> T | None:
            barrier.wait()
            try:
                return call()
            except Failed:
                return None

        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(run, calls))

    def content(self, rng: random.Random, share: float = 0.25) -> bytes:
        with self._content_lock:
            if self.shared_content and rng.random() < share:
                return rng.choice(self.shared_content)
            data = rng.randbytes(48)
            self.shared_content.append(data)
            return data

    # --- service-level requests ------------------------------------------------------------

    def upload(self, name: str, data: bytes) -> Any:
        """Start an upload, PUT the bytes to the presigned URL, complete it."""
        import requests

        from modelops.contracts.registry import CompleteUploadRequest, StartUploadRequest
        from modelops.domain.manifest import FileEntry

        entry = FileEntry(path="model.bin", size=len(data), sha256=hashlib.sha256(data).hexdigest())
        start = StartUploadRequest(name=name, files=[entry])
        started = self.attempt(
            "artifact.start", lambda: self.artifacts.start_upload(start, self.caller)
        )
        url = started.targets[0].url
        assert url is not None
        requests.put(url, data=data, timeout=30).raise_for_status()
        artifact = self.attempt(
            "artifact.complete",
            lambda: self.artifacts.complete_upload(
                started.uploadId, CompleteUploadRequest(), self.caller
            ),
        )
        self.journal.acknowledge(
            "artifacts", artifact.artifactId, artifact.model_dump(mode="json"), created=False
        )
        return artifact

    def register_dataset(self, name: str, artifact: Any) -> Any:
        from modelops.contracts.registry import RegisterDatasetRequest

        request = RegisterDatasetRequest(
            name=name,
            artifactId=artifact.artifactId,
            license="CC-BY-4.0",
            sourceRefs=[f"s3://lake/{name}.csv"],
        )
        response = self.attempt(
            "dataset.register", lambda: self.registry.register_dataset(request, self.caller)
        )
        dataset = response.dataset
        self.journal.acknowledge(
            "datasets", dataset.datasetId, dataset.model_dump(mode="json"), response.created
        )
        return dataset

    def register_model(
        self,
        family: str,
        artifact: Any,
        *,
        version: str = "1.0.0",
        code_ref: str = "git+https://example.com/chaos@1",
        datasets: tuple[str, ...] = (),
        operation: str = "model.register",
    ) -> Any:
        from modelops.contracts.registry import RegisterModelRequest

        request = RegisterModelRequest(
            family=family,
            version=version,
            artifactId=artifact.artifactId,
            codeRef=code_ref,
            lineage={"datasets": list(datasets)},
        )
        response = self.attempt(
            operation, lambda: self.registry.register_model(request, self.caller)
        )
        model = response.model
        self.journal.acknowledge(
            "models", model.modelId, model.model_dump(mode="json"), response.created
        )
        return model

    def promote(self, model_id: str, stage: str, operation: str = "model.promote") -> Any:
        from modelops.contracts.promotion import PromoteRequest
        from modelops.domain.entities import ModelStatus

        request = PromoteRequest(targetStage=ModelStatus(stage))
        response = self.attempt(
            operation, lambda: self.promotions.promote(model_id, request, self.caller)
        )
        if response.promotion is not None:
            self.journal.put("promotions", response.promotion.promotionId, model_id)
        return response

    # --- the operations --------------------------------------------------------------------

    def chain(self, rng: random.Random) -> None:
        """Artifact, dataset under a shared name, model with lineage to the dataset."""
        data_artifact = self.upload("chaos-data", self.content(rng))
        dataset = self.register_dataset(rng.choice(DATASET_NAMES), data_artifact)
        model_artifact = self.upload("chaos-model", self.content(rng, share=0.1))
        family = f"chaos-{uuid.uuid4().hex[:12]}"
        self.register_model(family, model_artifact, datasets=(dataset.datasetId,))

    def model_race(self, rng: random.Random) -> None:
        """Same family and version, different content, registered at once."""
        artifact = self.upload("chaos-race", self.content(rng, share=0.0))
        family = f"race-{uuid.uuid4().hex[:12]}"

        def register(code_ref: str) -> Callable[[], tuple[str, Any]]:
            def call() -> tuple[str, Any]:
                model = self.register_model(
                    family, artifact, code_ref=code_ref, operation="model.race"
                )
                return code_ref, model

            return call

        answers = self.race([register(f"git+https://example.com/c@{i}") for i in range(RACERS)])
        self.journal.add(
            "model_races",
            RaceResult(
                key=f"{family}@1.0.0",
                answers=[
                    (f"racer-{i}", a[1].codeRef if a else None) for i, a in enumerate(answers)
                ],
            ),
        )

    def promotion_race(self, rng: random.Random) -> None:
        """One draft model promoted to staging by several clients at once."""
        artifact = self.upload("chaos-promo", self.content(rng, share=0.0))
        model = self.register_model(f"promo-{uuid.uuid4().hex[:12]}", artifact)
        answers = self.race(
            [
                lambda: self.promote(model.modelId, "staging", "promotion.race")
                for _ in range(RACERS)
            ]
        )
        self.journal.add(
            "promotion_races",
            RaceResult(
                key=model.modelId,
                answers=[
                    (f"racer-{i}", a.promotion.promotionId if a and a.promotion else None)
                    for i, a in enumerate(answers)
                ],
            ),
        )

    def prod_race(self, rng: random.Random) -> None:
        """Staging versions of a new family promoted to prod at once."""
        family = f"prod-{uuid.uuid4().hex[:12]}"
        staged = []
        for i in range(PROD_RACERS):
            artifact = self.upload("chaos-prod", self.content(rng, share=0.0))
            model = self.register_model(family, artifact, version=f"1.{i}.0")
            self.promote(model.modelId, "staging")
            staged.append(model.modelId)
        self.journal.add("prod_families", family)
        self.race([functools.partial(self.promote, m, "prod", "prod.race") for m in staged])

    def quota_race(self, rng: random.Random) -> None:
        """Jobs of a new team reserve at once against its limit; granted ones release."""
        from modelops.domain.training import ComputeRequirements

        team = f"team-{uuid.uuid4().hex[:12]}"
        requirements = ComputeRequirements(
            pool=POOL, instanceType="ml.g5.xlarge", instanceCount=1, maxRuntimeSeconds=3600
        )
        jobs = [f"trn-{uuid.uuid4().hex[:24]}" for _ in range(QUOTA_RACERS)]
        self.journal.put("quota_teams", team, QUOTA_RACERS)

        def reserve(job: str) -> Callable[[], str]:
            def call() -> str:
                self.attempt("quota.reserve", lambda: self.quota.reserve(job, team, requirements))
                self.journal.put("reservations", job, Decimal(1))
                return job

            return call

        granted = [j for j in self.race([reserve(job) for job in jobs]) if j is not None]
        used = Decimal("0.5")
        for job in granted:
            with contextlib.suppress(Failed):
                self.attempt("quota.release", functools.partial(self.quota.release, job, used))
                self.journal.put("releases", job, used)

    def ledger_burst(self, rng: random.Random) -> None:
        """Several writers append to one stream at once; a failed append is not retried
        (a client retries the call it audits, which appends a new event)."""
        from modelops.domain.ledger import AuditEvent, Outcome

        def writer(index: int) -> Callable[[], None]:
            def call() -> None:
                for n in range(LEDGER_EVENTS_EACH):
                    event = AuditEvent(
                        stream=LEDGER_STREAM,
                        eventId=str(uuid.uuid4()),
                        time=datetime.now(UTC),
                        principal=ENGINEER,
                        action="chaos.append",
                        resources=(),
                        requestId=f"writer-{index}-{n}",
                        correlationId="chaos",
                        outcome=Outcome.SUCCEEDED,
                        status=200,
                    )
                    try:
                        self.audit.record(event)
                    except Exception as error:
                        self.journal.outcome("ledger.append", error)
                        continue
                    self.journal.outcome("ledger.append")
                    self.journal.add("events", event.eventId)

            return call

        self.race([writer(i) for i in range(LEDGER_WRITERS)])

    # --- the API path ----------------------------------------------------------------------

    def api(self, rng: random.Random) -> None:
        """The chain through the registry API with Idempotency-Keys."""
        data = self.content(rng)
        sha = hashlib.sha256(data).hexdigest()
        files = [{"path": "model.bin", "size": len(data), "sha256": sha}]
        started = self.api_call(
            "api.artifact.start", "/artifact/upload", {"name": "api", "files": files}
        )
        import requests

        requests.put(started["targets"][0]["url"], data=data, timeout=30).raise_for_status()
        completed = self.api_call(
            "api.artifact.complete", f"/artifact/upload/{started['uploadId']}/complete", {}
        )
        artifact = completed["artifact"]
        self.journal.acknowledge("artifacts", artifact["artifactId"], artifact, created=False)
        name = rng.choice(DATASET_NAMES)
        body = {
            "name": name,
            "artifactId": artifact["artifactId"],
            "license": "CC-BY-4.0",
            "sourceRefs": [f"s3://lake/{name}.csv"],
        }
        registered = self.api_call("api.dataset.register", "/dataset/register", body, rng=rng)
        dataset = registered["dataset"]
        self.journal.acknowledge(
            "datasets", dataset["datasetId"], dataset, bool(registered["created"])
        )
        body = {
            "family": f"api-{uuid.uuid4().hex[:12]}",
            "version": "1.0.0",
            "artifactId": artifact["artifactId"],
            "codeRef": "git+https://example.com/api@1",
            "lineage": {"datasets": [dataset["datasetId"]]},
        }
        registered = self.api_call("api.model.register", "/models/register", body, rng=rng)
        model = registered["model"]
        self.journal.acknowledge("models", model["modelId"], model, bool(registered["created"]))

    def api_call(
        self, operation: str, path: str, body: dict[str, Any], rng: random.Random | None = None
    ) -> dict[str, Any]:
        """POST ``body`` with a fresh Idempotency-Key, retried with the same key and body;
        with ``rng``, half the time delivered once more after it succeeded."""
        key = str(uuid.uuid4())

        def call() -> dict[str, Any]:
            status, answer = self.invoke("POST", path, body, key)
            if status >= 300:
                raise HttpFailure(status, answer)
            self.journal.answered(key, _resources_of(answer))
            return answer

        answer = self.attempt(operation, call)
        if rng is not None and rng.random() < 0.5:
            with contextlib.suppress(Failed):
                self.attempt(f"{operation}.replay", call)
        return answer

    def invoke(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        key: str | None,
        *,
        remaining_ms: int = 29_000,
    ) -> tuple[int, dict[str, Any]]:
        """One API Gateway proxy event through the registry API's handler, in a Lambda
        context with ``remaining_ms`` left (API Gateway's limit by default)."""
        handler = self._registry_handler()
        first, _, rest = path.strip("/").partition("/")
        resource = f"/{first}/{{proxy+}}" if rest else f"/{first}"
        request_id = str(uuid.uuid4())
        headers = {"Host": "chaos", "Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        event = {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": None,
            "multiValueQueryStringParameters": None,
            "pathParameters": {"proxy": rest} if rest else None,
            "stageVariables": None,
            "requestContext": {
                "requestId": request_id,
                "stage": "chaos",
                "httpMethod": method,
                "path": f"/chaos{path}",
                "resourcePath": resource,
                "identity": {"userArn": ENGINEER, "sourceIp": "127.0.0.1"},
            },
            "body": json.dumps(body) if body is not None else None,
            "isBase64Encoded": False,
        }
        context = SimpleNamespace(
            function_name="registry-api",
            function_version="$LATEST",
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:registry-api",
            memory_limit_in_mb=1024,
            aws_request_id=request_id,
            log_group_name="/aws/lambda/registry-api",
            log_stream_name="chaos",
            get_remaining_time_in_millis=lambda: remaining_ms,
        )
        with self._container:
            response = handler.handler(event, context)
        return int(response["statusCode"]), json.loads(response.get("body") or "{}")

    def _registry_handler(self) -> Any:
        if self._handler is None:
            functions = str(ROOT / "functions")
            if functions not in sys.path:
                sys.path.insert(0, functions)
            import registry_api.handler

            self._handler = registry_api.handler
        return self._handler


def _resources_of(answer: dict[str, Any]) -> str:
    """The ids an API answer names: what a replay of the same key must name again."""
    ids = {}
    for top in answer.values():
        if isinstance(top, dict):
            for key in ("artifactId", "datasetId", "modelId", "uploadId", "version"):
                if key in top:
                    ids[key] = top[key]
    for key in ("uploadId",):
        if key in answer:
            ids[key] = answer[key]
    return json.dumps(ids, sort_keys=True)


# --- storage, as it is after the run --------------------------------------------------------


@dataclass
class Snapshot:
    """Every item of the registry, ledger and idempotency tables (plain Python values),
    the artifact bucket's blobs with their sizes, and the ledger's verification report."""

    registry: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    idempotency: list[dict[str, Any]]
    blobs: dict[str, int]
    verification: Any


def ledger_store(sandbox: Sandbox) -> Any:
    """The sandbox's ledger (a DynamoLedgerStore) through clients no fault reaches."""
    from modelops import platform
    from modelops.adapters.ledger import DynamoLedgerStore

    return DynamoLedgerStore(
        sandbox.client("dynamodb"),
        sandbox.client("s3"),
        sandbox.name(platform.LEDGER_TABLE.logical_id),
        sandbox.name(platform.AUDIT_BUCKET.logical_id),
    )


def ledger_service(sandbox: Sandbox) -> Any:
    """An AuditService on :func:`ledger_store` that signs with the sandbox's key."""
    from modelops import platform
    from modelops.adapters.kms import KmsSigner
    from modelops.services.audit import AuditService
    from modelops.wiring import SystemClock

    signer = KmsSigner(sandbox.client("kms"), sandbox.key_arns[platform.SIGNING_KEY.logical_id])
    return AuditService(ledger_store(sandbox), signer, lambda event: None, SystemClock())


def take_snapshot(sandbox: Sandbox) -> Snapshot:
    from boto3.dynamodb.types import TypeDeserializer

    from modelops import platform

    deserializer = TypeDeserializer()
    ddb = sandbox.client("dynamodb")

    def scan(logical_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        paginator = ddb.get_paginator("scan")
        for page in paginator.paginate(TableName=sandbox.name(logical_id), ConsistentRead=True):
            items += [
                {k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]
            ]
        return items

    blobs: dict[str, int] = {}
    s3 = sandbox.client("s3")
    bucket = sandbox.name(platform.ARTIFACT_BUCKET.logical_id)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="blobs/"):
        blobs |= {item["Key"]: int(item["Size"]) for item in page.get("Contents", [])}
    return Snapshot(
        registry=scan(platform.REGISTRY_TABLE.logical_id),
        ledger=scan(platform.LEDGER_TABLE.logical_id),
        idempotency=scan(platform.IDEMPOTENCY_TABLE.logical_id),
        blobs=blobs,
        verification=ledger_service(sandbox).verify(),
    )


# --- the invariants -----------------------------------------------------------------------


@dataclass
class Invariant:
    """One invariant's verdict: ``checked`` things were checked (``what``), ``problems``
    lists each violation (none: it holds)."""

    name: str
    checked: int
    what: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def detail(self) -> str:
        if self.passed:
            return f"{self.checked} {self.what}"
        shown = "; ".join(self.problems[:3])
        more = len(self.problems) - 3
        return shown + (f" (+{more} more)" if more > 0 else "")


@dataclass
class Findings:
    """The invariants' verdicts, and the lost and duplicated records among their problems."""

    invariants: list[Invariant]
    lost: list[str]
    duplicated: list[str]

    @property
    def ok(self) -> bool:
        return all(i.passed for i in self.invariants) and not self.lost and not self.duplicated

    def merged(self, other: Findings) -> Findings:
        """Both rounds' findings: counts added, problems listed together."""
        if not self.invariants:
            return other
        by_name = {i.name: i for i in other.invariants}
        invariants = []
        for mine in self.invariants:
            theirs = by_name.pop(mine.name, Invariant(mine.name, 0, mine.what))
            invariants.append(
                Invariant(
                    mine.name,
                    mine.checked + theirs.checked,
                    mine.what,
                    mine.problems + theirs.problems,
                )
            )
        invariants += by_name.values()
        return Findings(invariants, self.lost + other.lost, self.duplicated + other.duplicated)


def _doc(item: Mapping[str, Any]) -> dict[str, Any]:
    doc = item.get("doc")
    return dict(json.loads(doc)) if isinstance(doc, str) else {}


@dataclass
class _Registry:
    """The registry table's items by kind."""

    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    slots: list[tuple[str, str, str]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)
    promotions: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    reservations: dict[str, dict[str, Any]] = field(default_factory=dict)
    committed: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)
    pool_load: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def of(cls, items: list[dict[str, Any]]) -> _Registry:
        registry = cls()
        for item in items:
            pk, sk = str(item["pk"]), str(item["sk"])
            kind, _, rest = pk.partition("#")
            if kind == "ARTIFACT" and sk == "ARTIFACT":
                registry.artifacts[rest] = _doc(item)
            elif kind == "DATASET" and sk == "DATASET":
                registry.datasets[rest] = _doc(item)
            elif kind == "DSNAME":
                registry.slots.append((rest, sk, str(_doc(item).get("datasetId"))))
            elif kind == "MODEL" and sk == "MODEL":
                registry.models[rest] = _doc(item)
            elif kind == "NODE":
                registry.nodes[rest] = _doc(item)
            elif kind == "EDGE":
                registry.edges.add((rest, sk))
            elif kind == "PROMOTION":
                registry.promotions[rest] = _doc(item)
            elif kind == "FAMILY" and sk.startswith("STAGE#"):
                registry.stages.append(_doc(item))
            elif kind == "RESERVATION":
                registry.reservations[rest] = _doc(item)
            elif kind == "QUOTA":
                pool, _, team = rest.partition("#")
                period = sk.removeprefix("PERIOD#")
                registry.committed[(pool, team, period)] = Decimal(item.get("committed", 0))
            elif kind == "POOLLOAD":
                registry.pool_load[rest] = Decimal(item.get("gpus", 0))
        return registry


def check(snapshot: Snapshot, journal: Journal, stats: FaultStats) -> Findings:
    """Every invariant of the module docstring but the fault target (a campaign-wide
    figure), over ``snapshot`` and ``journal``."""
    registry = _Registry.of(snapshot.registry)
    records = [
        r
        for r in snapshot.ledger
        if not str(r["stream"]).startswith("CHECKPOINT#") and r["stream"] != "STREAMS"
    ]
    event_ids: Counter[str] = Counter()
    for record in records:
        event_ids[str(json.loads(record["body"])["event"]["eventId"])] += 1

    lost = _lost(registry, journal, event_ids)
    duplicated = _duplicated(registry, journal, event_ids)
    keys = (
        len(registry.artifacts)
        + len(registry.datasets)
        + len(registry.models)
        + len(registry.promotions)
        + len(event_ids)
        + len(journal.idempotent)
    )
    races = len(journal.model_races) + len(journal.promotion_races)
    failures = sum(o.failed_clean + o.failed_unclean for o in journal.outcomes.values())
    report = snapshot.verification
    verified: list[str] = []
    if not report.ok:
        problem = report.problem
        verified.append(f"{problem.kind}: {problem.message}"[:300])
    over = [f"{s}: attempt {n}" for s, n in stats.max_attempt.items() if n > MAX_ATTEMPTS]
    families = {str(doc.get("family")) for doc in registry.models.values()}
    invariants = [
        Invariant("no-lost-records", _acknowledged(journal), "acknowledged records stored", lost),
        Invariant("no-duplicated-records", keys, "keys with one record each", duplicated),
        Invariant(
            "no-half-written-records",
            len(registry.artifacts) + len(registry.datasets) + len(registry.models),
            "records complete (blobs, lineage, slots, stage history)",
            _half_written(registry, snapshot),
        ),
        Invariant(
            "ledger-verifies",
            report.recordsChecked,
            "records verified (chains, Merkle roots, signed checkpoints)",
            verified,
        ),
        Invariant("ledger-never-forks", len(records), "records in gapless chains", _forks(records)),
        Invariant(
            "quota-within-limits",
            len(registry.committed),
            "team counters within limits, equal to their reservations",
            _quota(registry, journal),
        ),
        Invariant(
            "single-winner", races, "races won once at most", _single_winner(registry, journal)
        ),
        Invariant(
            "one-prod-per-family", len(families), "families with one prod at most", _prod(registry)
        ),
        Invariant("failures-are-clean", failures, "failures, all typed", list(journal.unclean)),
        Invariant(
            "retries-bounded", stats.calls_total, f"attempts, none past {MAX_ATTEMPTS}", over
        ),
        Invariant(
            "idempotency-keys-unwedged",
            len(snapshot.idempotency),
            "Idempotency-Key records, none stuck in progress",
            _wedged(snapshot),
        ),
    ]
    return Findings(invariants, lost, duplicated)


def _acknowledged(journal: Journal) -> int:
    return (
        len(journal.artifacts)
        + len(journal.datasets)
        + len(journal.models)
        + len(journal.promotions)
        + len(journal.reservations)
        + len(journal.releases)
        + len(journal.events)
    )


def _lost(registry: _Registry, journal: Journal, event_ids: Counter[str]) -> list[str]:
    lost = [f"artifact {a}" for a in journal.artifacts if a not in registry.artifacts]
    lost += [f"dataset {d}" for d in journal.datasets if d not in registry.datasets]
    lost += [f"model {m}" for m in journal.models if m not in registry.models]
    lost += [f"promotion {p}" for p in journal.promotions if p not in registry.promotions]
    lost += [f"reservation {j}" for j in journal.reservations if j not in registry.reservations]
    lost += [
        f"release of {j}"
        for j in journal.releases
        if registry.reservations.get(j, {}).get("status") != "RELEASED"
    ]
    lost += [f"ledger event {e}" for e in journal.events if e not in event_ids]
    return lost


def _duplicated(registry: _Registry, journal: Journal, event_ids: Counter[str]) -> list[str]:
    found = [f"ledger event {e} x{n}" for e, n in event_ids.items() if n > 1]

    def groups(kind: str, records: Mapping[str, dict[str, Any]], *names: str) -> None:
        by_key: dict[tuple[Any, ...], list[str]] = defaultdict(list)
        for record_id, doc in records.items():
            by_key[tuple(doc.get(n) for n in names)].append(record_id)
        found.extend(f"{kind} {key}: {ids}" for key, ids in by_key.items() if len(ids) > 1)

    groups("artifact", registry.artifacts, "manifestDigest")
    groups("dataset", registry.datasets, "name", "checksum")
    groups("model", registry.models, "family", "version")
    slots: dict[str, list[str]] = defaultdict(list)
    for name, version, dataset_id in registry.slots:
        slots[dataset_id].append(f"{name}/{version}")
    found += [f"dataset {d} in version slots {s}" for d, s in slots.items() if len(s) > 1]
    completed: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for promotion_id, doc in registry.promotions.items():
        if doc.get("status") == "COMPLETED":
            completed[(doc["modelId"], doc["fromStage"], doc["toStage"])].append(promotion_id)
    found += [f"promotion {k}: {v}" for k, v in completed.items() if len(v) > 1]
    moves: Counter[tuple[str, str, str]] = Counter(
        (c["modelId"], c["fromStage"], c["toStage"]) for c in registry.stages
    )
    found += [f"stage move {k} x{n}" for k, n in moves.items() if n > 1]
    found += [f"created twice: {k}" for k, n in journal.created.items() if n > 1]
    found += [
        f"Idempotency-Key {key} answered {sorted(set(answers))}"
        for key, answers in journal.idempotent.items()
        if len(set(answers)) > 1
    ]
    return found


def _half_written(registry: _Registry, snapshot: Snapshot) -> list[str]:
    problems: list[str] = []
    for artifact_id, doc in registry.artifacts.items():
        for entry in doc.get("files", ()):
            size = snapshot.blobs.get(f"blobs/sha256/{entry['sha256']}")
            if size != entry["size"]:
                problems.append(f"artifact {artifact_id}: blob of {entry['path']} is {size}")
    slots = {dataset_id for _, _, dataset_id in registry.slots}
    for kind, records in (("dataset", registry.datasets), ("model", registry.models)):
        for record_id in records:
            node = registry.nodes.get(record_id)
            if node is None:
                problems.append(f"{kind} {record_id} without its lineage node")
                continue
            missing = [p for p in node.get("parents", ()) if (record_id, p) not in registry.edges]
            if missing:
                problems.append(f"{kind} {record_id} without edges to {missing}")
            if kind == "dataset" and record_id not in slots:
                problems.append(f"dataset {record_id} without its version slot")
    for node_id, node in registry.nodes.items():
        kinds = {"dataset": registry.datasets, "model": registry.models}
        entities = kinds.get(str(node.get("kind", "")))
        if entities is not None and node_id not in entities:
            problems.append(f"lineage node {node_id} without its {node['kind']}")
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for change in registry.stages:
        history[change["modelId"]].append(change)
    for model_id, doc in registry.models.items():
        changes = sorted(history.get(model_id, []), key=lambda c: str(c["at"]))
        expected = changes[-1]["toStage"] if changes else "draft"
        if doc.get("status") != expected:
            problems.append(f"model {model_id} is {doc.get('status')}, history says {expected}")
    promoted = {c.get("promotionId") for c in registry.stages}
    for promotion_id, doc in registry.promotions.items():
        if doc.get("status") == "COMPLETED" and promotion_id not in promoted:
            problems.append(f"promotion {promotion_id} completed without its stage move")
    return problems


def _forks(records: list[dict[str, Any]]) -> list[str]:
    from modelops.domain.ledger import GENESIS

    problems: list[str] = []
    streams: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        streams[str(record["stream"])].append(record)
    for stream, items in streams.items():
        items.sort(key=lambda r: int(r["seq"]))
        previous = GENESIS
        for position, record in enumerate(items, start=1):
            if int(record["seq"]) != position:
                problems.append(f"{stream}: seq {int(record['seq'])} at position {position}")
                break
            if record["prevHash"] != previous:
                problems.append(f"{stream} {position}: prevHash is not its predecessor's hash")
                break
            previous = record["hash"]
    return problems


def _quota(registry: _Registry, journal: Journal) -> list[str]:
    problems: list[str] = []
    held: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    active: dict[str, Decimal] = defaultdict(Decimal)
    granted: Counter[str] = Counter()
    for doc in registry.reservations.values():
        key = (doc["pool"], doc["team"], doc["period"])
        if doc["status"] == "RESERVED":
            held[key] += Decimal(str(doc["gpuHours"]))
            active[doc["pool"]] += Decimal(doc["gpus"])
        else:
            held[key] += Decimal(str(doc.get("usedGpuHours") or 0))
        granted[doc["team"]] += 1
    for key, committed in registry.committed.items():
        if committed > TEAM_LIMIT_GPU_HOURS:
            problems.append(f"{key}: {committed} GPU-hours committed > {TEAM_LIMIT_GPU_HOURS}")
        if committed != held.get(key, Decimal(0)):
            problems.append(f"{key}: committed {committed} != reservations {held.get(key)}")
    problems += [
        f"{key}: reservations {held[key]} without a committed counter"
        for key in set(held) - set(registry.committed)
    ]
    for pool, gpus in registry.pool_load.items():
        if gpus != active.get(pool, Decimal(0)):
            problems.append(f"pool {pool}: {gpus} active GPUs != open reservations {active[pool]}")
    problems += [
        f"team {team}: {granted[team]} one-hour jobs granted"
        for team in journal.quota_teams
        if granted[team] > TEAM_LIMIT_GPU_HOURS
    ]
    return problems


def _single_winner(registry: _Registry, journal: Journal) -> list[str]:
    from modelops.domain import ids

    problems: list[str] = []
    for race in journal.model_races:
        acknowledged = {value for _, value in race.answers if value is not None}
        family, _, version = race.key.partition("@")
        stored = registry.models.get(ids.model_id(family, version), {}).get("codeRef")
        if len(acknowledged) > 1:
            problems.append(f"{race.key}: {len(acknowledged)} contents acknowledged")
        elif acknowledged and stored not in acknowledged:
            problems.append(f"{race.key}: acknowledged {acknowledged}, stored {stored}")
    for race in journal.promotion_races:
        acknowledged = {value for _, value in race.answers if value is not None}
        if len(acknowledged) > 1:
            problems.append(f"{race.key}: promoted by {len(acknowledged)} promotions")
    return problems


def _prod(registry: _Registry) -> list[str]:
    prod: dict[str, list[str]] = defaultdict(list)
    for doc in registry.models.values():
        if doc.get("status") == "prod":
            prod[str(doc["family"])].append(str(doc.get("version")))
    return [f"family {f}: prod versions {sorted(v)}" for f, v in prod.items() if len(v) > 1]


def _wedged(snapshot: Snapshot) -> list[str]:
    return [
        f"key {str(item['id'])[-40:]} in progress with no expiry"
        for item in snapshot.idempotency
        if item.get("status") == "INPROGRESS" and "in_progress_expiration" not in item
    ]


# --- running it ---------------------------------------------------------------------------


@dataclass
class Round:
    """One round: a fresh sandbox, clients until its share of faults, then the checks."""

    journal: Journal
    stats: FaultStats
    findings: Findings
    seconds: float
    logged: Counter[str]


@dataclass
class Report:
    config: CampaignConfig
    rounds: int
    seconds: float
    stats: FaultStats
    outcomes: dict[str, Outcomes]
    failure_classes: Counter[str]
    logged: Counter[str]
    findings: Findings

    @property
    def ok(self) -> bool:
        return self.findings.ok

    @property
    def totals(self) -> Outcomes:
        total = Outcomes()
        for outcome in self.outcomes.values():
            total.attempted += outcome.attempted
            total.succeeded += outcome.succeeded
            total.failed_clean += outcome.failed_clean
            total.failed_unclean += outcome.failed_unclean
        return total


class _LogCounter(logging.Handler):
    """Counts the errors the platform logged and absorbed (a failed checkpoint or
    publication must never fail the append before it)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.counts[str(record.msg).split(";")[0][:60]] += 1


@contextlib.contextmanager
def _quiet_platform_logs() -> Iterator[_LogCounter]:
    counter = _LogCounter()
    platform_log = logging.getLogger("modelops")
    service_log = logging.getLogger("registry-api")
    propagate, level = platform_log.propagate, service_log.level
    platform_log.addHandler(counter)
    platform_log.propagate = False
    service_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            # Powertools' notes about running outside Lambda (no remaining time, no
            # metrics to flush): expected here, one per request.
            warnings.filterwarnings("ignore", category=UserWarning, module="aws_lambda_powertools")
            yield counter
    finally:
        platform_log.removeHandler(counter)
        platform_log.propagate = propagate
        service_log.setLevel(level)


def run_round(
    config: CampaignConfig, sandbox: Sandbox, faults: int, deadline: float, seed: int
) -> Round:
    """Clients on ``sandbox`` until ``faults`` faults were injected or ``deadline``
    (``time.monotonic()``), then the scheduled checkpoint and the checks."""
    journal = Journal()
    operations = Operations(sandbox, journal)
    plan = Plan.uniform(config.rate, seed, mix=dict(config.mix))
    injector = FaultInjector(plan)
    stop = threading.Event()
    names = list(WEIGHTS)
    weights = [WEIGHTS[n] for n in names]

    def worker(index: int) -> None:
        rng = random.Random(seed * 7919 + index)
        while not stop.is_set():
            name = rng.choices(names, weights)[0]
            try:
                getattr(operations, name.replace("-", "_"))(rng)
            except Failed:
                continue  # its outcome is in the journal; the client moves on
            except Exception as error:
                journal.outcome(f"{name} (client)", error)

    started = time.monotonic()
    with _quiet_platform_logs() as logged:
        try:
            for target in platform_targets():
                injector.install(target)
            threads = [
                threading.Thread(target=worker, args=(i,), name=f"chaos-{i}", daemon=True)
                for i in range(config.threads)
            ]
            for thread in threads:
                thread.start()
            while time.monotonic() < deadline and injector.injected_total < faults:
                time.sleep(0.05)
            stop.set()
            for thread in threads:
                thread.join()
        finally:
            injector.uninstall()
        seconds = time.monotonic() - started
        ledger_service(sandbox).checkpoint_all()  # what the scheduled function does
    stats = injector.stats()
    findings = check(take_snapshot(sandbox), journal, stats)
    return Round(journal, stats, findings, seconds, logged.counts)


def run_campaign(config: CampaignConfig) -> Report:
    """Rounds of :func:`run_round`, each in a fresh :class:`Sandbox` (moto copies a whole
    table for every transaction, so a table that grew without bound would slow every
    round after it), until ``config.faults`` were injected or ``config.max_seconds``."""
    started = time.monotonic()
    deadline = started + config.max_seconds
    rounds: list[Round] = []
    injected = 0
    while injected < config.faults and time.monotonic() < deadline:
        share = min(config.round_faults, config.faults - injected)
        with Sandbox() as sandbox:
            rounds.append(
                run_round(config, sandbox, share, deadline, config.seed * 1000 + len(rounds))
            )
        injected += rounds[-1].stats.injected_total
    findings = Findings([], [], [])
    outcomes: dict[str, Outcomes] = defaultdict(Outcomes)
    failure_classes: Counter[str] = Counter()
    logged: Counter[str] = Counter()
    for result in rounds:
        findings = findings.merged(result.findings)
        failure_classes += result.journal.failure_classes
        logged += result.logged
        for name, outcome in result.journal.outcomes.items():
            total = outcomes[name]
            total.attempted += outcome.attempted
            total.succeeded += outcome.succeeded
            total.failed_clean += outcome.failed_clean
            total.failed_unclean += outcome.failed_unclean
    stats = merge_stats([r.stats for r in rounds])
    target = (
        []
        if stats.injected_total >= config.faults
        else [f"{stats.injected_total} injected < {config.faults} in {config.max_seconds:.0f} s"]
    )
    findings.invariants.append(
        Invariant("fault-target-reached", stats.injected_total, "faults injected", target)
    )
    return Report(
        config=config,
        rounds=len(rounds),
        seconds=time.monotonic() - started,
        stats=stats,
        outcomes=dict(sorted(outcomes.items())),
        failure_classes=failure_classes,
        logged=logged,
        findings=findings,
    )


def merge_stats(all_stats: list[FaultStats]) -> FaultStats:
    calls: Counter[tuple[str, str]] = Counter()
    injected: Counter[tuple[FaultKind, str]] = Counter()
    max_attempt: dict[str, int] = {}
    replays = 0
    for stats in all_stats:
        calls.update(stats.calls)
        injected.update(stats.injected)
        for service, attempt in stats.max_attempt.items():
            max_attempt[service] = max(max_attempt.get(service, 0), attempt)
        replays += stats.token_replays
    return FaultStats(dict(calls), dict(injected), max_attempt, replays)


def render(report: Report) -> str:
    """The campaign's result table."""
    stats, totals, config = report.stats, report.totals, report.config
    lines = [
        f"chaos campaign: rate {config.rate}, seed {config.seed}, {config.threads} threads, "
        f"{report.rounds} rounds, {report.seconds:.1f} s, "
        f"{stats.calls_total} dependency calls",
        "",
        f"{'faults injected':<34}{stats.injected_total:>8}",
    ]
    lines += [f"  {kind.value:<32}{n:>8}" for kind, n in stats.by_kind().items()]
    lines += [f"  {'on ' + service:<32}{n:>8}" for service, n in stats.by_service().items()]
    lines.append(f"  {'transactions answered by token':<32}{stats.token_replays:>8}")
    lines += [
        "",
        f"{'operation':<34}{'attempted':>10}{'succeeded':>10}{'failed':>8}{'unclean':>9}",
    ]
    for name, outcome in report.outcomes.items():
        lines.append(
            f"{name:<34}{outcome.attempted:>10}{outcome.succeeded:>10}"
            f"{outcome.failed_clean:>8}{outcome.failed_unclean:>9}"
        )
    lines.append(
        f"{'total':<34}{totals.attempted:>10}{totals.succeeded:>10}"
        f"{totals.failed_clean:>8}{totals.failed_unclean:>9}"
    )
    if report.failure_classes:
        classes = ", ".join(f"{k} {n}" for k, n in report.failure_classes.most_common())
        lines.append(f"  failed cleanly as: {classes}")
    if report.logged:
        absorbed = ", ".join(f"{k!r} {n}" for k, n in report.logged.most_common(4))
        lines.append(f"  errors logged and absorbed: {absorbed}")
    findings = report.findings
    lines += [
        "",
        f"{'records lost':<34}{len(findings.lost):>8}",
        f"{'records duplicated':<34}{len(findings.duplicated):>8}",
    ]
    lines += [f"  lost: {item}" for item in findings.lost[:5]]
    lines += [f"  duplicated: {item}" for item in findings.duplicated[:5]]
    passed = sum(i.passed for i in findings.invariants)
    lines += ["", f"invariants checked: {len(findings.invariants)}, passed: {passed}"]
    for invariant in findings.invariants:
        verdict = "pass" if invariant.passed else "FAIL"
        lines.append(f"  {verdict}  {invariant.name:<27} {invariant.detail}")
    lines += ["", "result: " + ("PASS" if report.ok else "FAIL")]
    return "\n".join(lines)
