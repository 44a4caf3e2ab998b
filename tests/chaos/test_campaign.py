"""The chaos campaign, bounded: concurrent clients under injected faults lose and duplicate
nothing and keep every invariant; the checker catches a planted duplicate and a planted
lost record (so a campaign cannot pass vacuously); and deterministic reproductions of the
platform bugs the campaign found.

Runs against moto in-process without resetting it (a local cloud of the same test session
keeps its state), under names unique to each sandbox."""

from __future__ import annotations

import functools
import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chaos.campaign import (
    LEDGER_STREAM,
    CampaignConfig,
    Journal,
    Operations,
    Report,
    Sandbox,
    check,
    failure_class,
    ledger_store,
    render,
    run_campaign,
    run_round,
    take_snapshot,
)
from chaos.faults import FaultKind, Plan, Rule, inject, platform_targets
from modelops import platform, wiring
from modelops.domain.ledger import AuditEvent, Outcome, seal
from modelops.errors import Conflict, ModelOpsError

CAMPAIGN = CampaignConfig(faults=150, rate=0.1, seed=11, threads=6, max_seconds=50)


@pytest.fixture(scope="module")
def report() -> Report:
    return run_campaign(CAMPAIGN)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as opened:
        yield opened


# --- the bounded campaign -------------------------------------------------------------------


def test_a_bounded_campaign_loses_and_duplicates_nothing_and_keeps_every_invariant(
    report: Report,
) -> None:
    findings = report.findings
    assert report.ok, render(report)
    assert findings.lost == []
    assert findings.duplicated == []
    assert all(i.passed for i in findings.invariants)
    assert report.seconds < 60


def test_the_bounded_campaign_injected_every_kind_of_fault_into_real_work(report: Report) -> None:
    stats = report.stats
    assert stats.injected_total >= CAMPAIGN.faults
    assert all(n > 0 for n in stats.by_kind().values()), stats.by_kind()
    assert {"dynamodb", "s3"} <= set(stats.by_service())
    totals = report.totals
    assert totals.succeeded > 100 and totals.failed_unclean == 0
    # Races ran and were refused for their losers.
    for race in ("model.race", "promotion.race", "quota.reserve", "ledger.append"):
        assert report.outcomes[race].attempted > 0, race
    assert report.failure_classes["modelops 409"] > 0
    assert len(report.findings.invariants) == 12


def test_the_campaign_table_reports_faults_outcomes_records_and_invariants(report: Report) -> None:
    table = render(report)
    for line in (
        "faults injected",
        "condition-race",
        "records lost",
        "records duplicated",
        "invariants checked: 12",
        "no-lost-records",
        "result: ",
    ):
        assert line in table


# --- the checker is not vacuous -------------------------------------------------------------


def test_the_checker_detects_a_planted_duplicate_and_a_planted_lost_record(
    sandbox: Sandbox,
) -> None:
    config = CampaignConfig(faults=30, rate=0.1, threads=4)
    result = run_round(config, sandbox, 30, time.monotonic() + 30, seed=5)
    journal = result.journal
    # Make sure there is an acknowledged model and ledger event to tamper with.
    operations = Operations(sandbox, journal)
    operations.chain(random.Random(5))
    operations.ledger_burst(random.Random(5))
    before = check(take_snapshot(sandbox), journal, result.stats)

    store = ledger_store(sandbox)
    event_id = sorted(journal.events)[0]
    original = next(
        r for r in store.records(LEDGER_STREAM, 1, 10_000).items if r.event().eventId == event_id
    )
    store.append(seal(original.event(), store.head(LEDGER_STREAM)))  # chained, verifiable

    model_id = sorted(journal.models)[0]
    ddb = sandbox.client("dynamodb")
    registry = sandbox.name(platform.REGISTRY_TABLE.logical_id)
    node = ddb.get_item(TableName=registry, Key=_key(f"NODE#{model_id}", "NODE"))["Item"]
    for parent in _parents(node):
        ddb.delete_item(TableName=registry, Key=_key(f"EDGE#{model_id}", parent))
    ddb.delete_item(TableName=registry, Key=_key(f"NODE#{model_id}", "NODE"))
    ddb.delete_item(TableName=registry, Key=_key(f"MODEL#{model_id}", "MODEL"))

    after = check(take_snapshot(sandbox), journal, result.stats)
    assert f"model {model_id}" in after.lost
    assert f"model {model_id}" not in before.lost
    assert f"ledger event {event_id} x2" in after.duplicated
    failed = {i.name for i in after.invariants if not i.passed}
    assert {"no-lost-records", "no-duplicated-records"} <= failed
    # The planted record is chained properly: only the duplicate check can see it.
    verdicts = {i.name: i.passed for i in after.invariants}
    assert verdicts["ledger-never-forks"] and verdicts["ledger-verifies"]
    assert not after.ok


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _parents(node: dict[str, Any]) -> list[str]:
    return list(json.loads(node["doc"]["S"]).get("parents", []))


def test_a_failure_is_clean_only_when_typed_or_surfaced_by_botocore() -> None:
    assert failure_class(Conflict("taken")) == "modelops 409"
    aws = ClientError({"Error": {"Code": "InternalServerError"}}, "PutItem")
    try:
        try:
            raise aws
        except ClientError as error:
            raise RuntimeError("wrapped by the caller") from error
    except RuntimeError as wrapped:
        assert failure_class(wrapped) == "aws error"
    assert failure_class(ValueError("a bug")) is None
    assert isinstance(Conflict("x"), ModelOpsError)


# --- reproductions of the platform bugs the campaign found ----------------------------------


def _event(action: str = "chaos.append") -> AuditEvent:
    return AuditEvent(
        stream=LEDGER_STREAM,
        eventId=str(uuid.uuid4()),
        time=datetime.now(UTC),
        principal="arn:aws:iam::123456789012:user/chaos-engineer",
        action=action,
        resources=(),
        requestId=str(uuid.uuid4()),
        correlationId="repro",
        outcome=Outcome.SUCCEEDED,
        status=200,
    )


def test_an_audit_append_whose_answer_was_lost_is_recorded_once(sandbox: Sandbox) -> None:
    """DynamoLedgerStore.append puts seq N with attribute_not_exists; the put is stored
    but its answer lost (read timeout), botocore retries it and gets
    ConditionalCheckFailed, the store says SequenceTaken, AuditService re-reads the head
    (its own record) and seals the same event again at N + 1."""
    audit = wiring.audit_service()
    audit.record(_event())  # seq 1 (a transaction); the bug is in the puts after it
    ledger = sandbox.name(platform.LEDGER_TABLE.logical_id)
    lost_answer = Rule(FaultKind.READ_TIMEOUT, "dynamodb", "PutItem", nth=1, table=ledger)
    second = _event()
    with inject(platform_targets(), Plan((lost_answer,))) as faults:
        audit.record(second)
    assert faults.stats().injected_total == 1
    records = ledger_store(sandbox).records(LEDGER_STREAM, 1, 100).items
    assert [r.event().eventId for r in records].count(second.eventId) == 1


class _ReadsTogether:
    """The registry, but ``list_models`` (how promotion finds the family's prod version)
    returns only once every racer has read: the interleaving the race needs."""

    def __init__(self, registry: Any, racers: int) -> None:
        self._registry = registry
        self._barrier = threading.Barrier(racers, timeout=10)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)

    def list_models(self, *args: Any, **kwargs: Any) -> Any:
        page = self._registry.list_models(*args, **kwargs)
        self._barrier.wait()
        return page


def test_two_versions_promoted_to_prod_at_once_leave_one_prod_version(sandbox: Sandbox) -> None:
    """PromotionService reads the family's prod version (none yet), then commits a
    transaction conditioned on the promoted model's own status only: two promotions that
    both read "no prod" both commit, and the family has two prod versions."""
    from modelops.services.promotion import PromotionService
    from modelops.wiring import SystemClock

    operations = Operations(sandbox, Journal())
    rng = random.Random(3)
    family = f"prod-{uuid.uuid4().hex[:12]}"
    staged = []
    for version in ("1.0.0", "2.0.0"):
        artifact = operations.upload("repro", operations.content(rng, share=0.0))
        model = operations.register_model(family, artifact, version=version)
        operations.promote(model.modelId, "staging")
        staged.append(model.modelId)
    repository = wiring.registry_repository()
    racing = PromotionService(
        registry=_ReadsTogether(repository, len(staged)),
        promotions=repository,
        lineage=wiring.lineage_service(),
        policy=wiring.policy_engine(),
        signer=wiring.statement_signer(),
        model_signer=wiring.model_signer(),
        blobs=wiring.blob_store(),
        evaluations=repository,
        monitoring=repository,
        clock=SystemClock(),
        region="us-east-1",
        publish=wiring.publish,
    )
    operations.promotions = racing
    operations.race([functools.partial(operations.promote, m, "prod") for m in staged])
    prod = [m for m in staged if getattr(repository.get_model(m), "status", None) == "prod"]
    assert len(prod) == 1, f"prod versions of {family}: {prod}"


@pytest.mark.filterwarnings("ignore::UserWarning")  # Powertools outside a real Lambda
def test_an_idempotency_key_whose_answer_was_lost_is_usable_once_its_request_is_over(
    sandbox: Sandbox,
) -> None:
    """Powertools stores the key's INPROGRESS record; its answer is lost and botocore's
    retry meets the record (ConditionalCheckFailed, the old item returned): "in
    progress". modelops.api never registers the Lambda context, so the record carries no
    in-progress expiry and the key answers 409 until the record's 24-hour TTL."""
    operations = Operations(sandbox, Journal())
    idempotency = sandbox.name(platform.IDEMPOTENCY_TABLE.logical_id)
    body = {"name": "repro", "files": [{"path": "a.bin", "size": 1, "sha256": "a" * 64}]}
    key = str(uuid.uuid4())
    operations.invoke("GET", "/models", None, None)  # warm the handler before hooking
    lost_answer = Rule(FaultKind.READ_TIMEOUT, "dynamodb", "PutItem", nth=1, table=idempotency)
    with inject(platform_targets(), Plan((lost_answer,))):
        status, answer = operations.invoke("POST", "/artifact/upload", body, key, remaining_ms=1000)
    assert (status, answer["error"]["code"]) == (409, "REQUEST_IN_PROGRESS")
    time.sleep(1.2)  # the invocation that stored the record has timed out by now
    status, answer = operations.invoke("POST", "/artifact/upload", body, key, remaining_ms=1000)
    assert status == 201, answer
