"""The fault harness injects exactly what its plan says, and botocore handles the injected
faults as it handles real ones: standard retry mode retries throttles, 5xx and timeouts up
to its bounded attempts, then surfaces the error; a condition race is never retried.

Runs against moto in-process without resetting it (a local cloud of the same test session
keeps its state), under names unique to each test."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from moto import mock_aws

from chaos.faults import FaultInjector, FaultKind, Plan, Rule, inject, platform_targets

REGION = "us-east-1"
# What the platform configures (modelops.wiring): standard mode, 4 retries = 5 attempts.
PLATFORM_RETRIES = Config(retries={"mode": "standard", "max_attempts": 4})
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


@pytest.fixture
def aws() -> Iterator[None]:
    mock = mock_aws()
    mock.start(reset=False)
    try:
        yield
    finally:
        mock.stop(remove_data=False)


def client(service: str, config: Config = PLATFORM_RETRIES) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


@pytest.fixture
def table(aws: None) -> Iterator[str]:
    name = f"faults-{uuid.uuid4().hex[:10]}"
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield name
    ddb.delete_table(TableName=name)


def put(ddb: Any, table: str, key: str, *, conditional: bool = False) -> dict[str, Any]:
    args: dict[str, Any] = {"TableName": table, "Item": {"pk": {"S": key}}}
    if conditional:
        args["ConditionExpression"] = "attribute_not_exists(pk)"
    response: dict[str, Any] = ddb.put_item(**args)
    return response


def stored(table: str, key: str) -> bool:
    return "Item" in client("dynamodb").get_item(TableName=table, Key={"pk": {"S": key}})


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return str(excinfo.value.response["Error"]["Code"])


# --- injecting exactly what the plan says ---------------------------------------------------


def test_an_nth_call_rule_fails_exactly_the_attempts_it_names(table: str) -> None:
    ddb = client("dynamodb", NO_RETRIES)
    plan = Plan((Rule(FaultKind.SERVER_ERROR, "dynamodb", "PutItem", nth=2, times=2),))
    failed = []
    with inject(ddb, plan) as faults:
        for n in range(1, 6):
            try:
                put(ddb, table, f"k{n}")
            except ClientError:
                failed.append(n)
    assert failed == [2, 3]
    stats = faults.stats()
    assert stats.injected == {(FaultKind.SERVER_ERROR, "dynamodb"): 2}
    assert stats.calls == {("dynamodb", "PutItem"): 5}
    assert [stored(table, f"k{n}") for n in range(1, 6)] == [True, False, False, True, True]


def test_a_rate_rule_fails_about_that_share_of_calls_and_its_seed_reproduces_them(
    table: str,
) -> None:
    ddb = client("dynamodb", NO_RETRIES)

    def failures(seed: int) -> list[int]:
        plan = Plan((Rule(FaultKind.THROTTLE, "dynamodb", "GetItem", rate=0.3),), seed=seed)
        failed = []
        with inject(ddb, plan) as faults:
            for n in range(200):
                try:
                    ddb.get_item(TableName=table, Key={"pk": {"S": "absent"}})
                except ClientError as error:
                    assert (
                        error.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
                    )
                    failed.append(n)
        assert faults.stats().injected_total == len(failed)
        return failed

    first = failures(seed=7)
    assert 35 <= len(first) <= 85  # 60 expected; the bounds are over 4 standard deviations
    assert failures(seed=7) == first
    assert failures(seed=8) != first


def test_rules_match_service_operation_and_table_patterns(table: str) -> None:
    ddb = client("dynamodb", NO_RETRIES)
    plan = Plan(
        (
            Rule(FaultKind.SERVER_ERROR, "dynamodb", "Put*", rate=1.0, table="elsewhere-*"),
            Rule(FaultKind.THROTTLE, "s3", "*", rate=1.0),
        )
    )
    with inject(ddb, plan) as faults:
        put(ddb, table, "untouched")
    assert faults.stats().injected_total == 0
    assert stored(table, "untouched")


def test_a_paused_injector_lets_every_call_through_and_still_counts_it(table: str) -> None:
    ddb = client("dynamodb", NO_RETRIES)
    with inject(ddb, Plan((Rule(FaultKind.SERVER_ERROR, rate=1.0),))) as faults:
        faults.pause()
        put(ddb, table, "through")
        faults.resume()
        with pytest.raises(ClientError):
            put(ddb, table, "refused")
    assert faults.stats().calls == {("dynamodb", "PutItem"): 2}
    assert faults.stats().injected_total == 1


# --- botocore's standard retry mode handles injected faults like real ones ------------------


@pytest.mark.parametrize(
    "kind",
    [
        FaultKind.THROTTLE,
        FaultKind.SERVER_ERROR,
        FaultKind.CONNECT_TIMEOUT,
        FaultKind.READ_TIMEOUT,
    ],
)
def test_standard_retry_mode_retries_an_injected_fault_and_the_call_then_succeeds(
    table: str, kind: FaultKind
) -> None:
    ddb = client("dynamodb")
    with inject(ddb, Plan((Rule(kind, "dynamodb", "PutItem", nth=1, times=2),))) as faults:
        response = put(ddb, table, "retried")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert faults.stats().calls == {("dynamodb", "PutItem"): 3}
    assert faults.stats().max_attempt == {"dynamodb": 3}
    assert stored(table, "retried")


def test_retries_are_bounded_and_the_last_error_surfaces(table: str) -> None:
    ddb = client("dynamodb")
    plan = Plan((Rule(FaultKind.SERVER_ERROR, "dynamodb", "PutItem", nth=1, times=100),))
    with inject(ddb, plan) as faults, pytest.raises(ClientError) as excinfo:
        put(ddb, table, "never")
    assert error_code(excinfo) in {"InternalServerError", "ServiceUnavailable"}
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 4
    assert faults.stats().calls == {("dynamodb", "PutItem"): 5}
    assert not stored(table, "never")


def test_a_connect_timeout_that_persists_surfaces_as_a_timeout_after_bounded_attempts(
    table: str,
) -> None:
    ddb = client("dynamodb")
    plan = Plan((Rule(FaultKind.CONNECT_TIMEOUT, "dynamodb", "PutItem", nth=1, times=100),))
    with inject(ddb, plan) as faults, pytest.raises(ConnectTimeoutError):
        put(ddb, table, "never")
    assert faults.stats().calls == {("dynamodb", "PutItem"): 5}
    assert not stored(table, "never")


def test_a_lost_response_was_applied_and_its_retry_meets_the_write_it_made(table: str) -> None:
    ddb = client("dynamodb")
    plan = Plan((Rule(FaultKind.READ_TIMEOUT, "dynamodb", "PutItem", nth=1),))
    with inject(ddb, plan), pytest.raises(ClientError) as excinfo:
        put(ddb, table, "ambiguous", conditional=True)
    # The first attempt stored the item; botocore's retry finds it: the caller must tell
    # its own earlier write from a concurrent writer's.
    assert error_code(excinfo) == "ConditionalCheckFailedException"
    assert stored(table, "ambiguous")


def test_a_lost_response_without_retries_surfaces_as_a_read_timeout(table: str) -> None:
    ddb = client("dynamodb", NO_RETRIES)
    with (
        inject(ddb, Plan((Rule(FaultKind.READ_TIMEOUT, "dynamodb", "PutItem", nth=1),))),
        pytest.raises(ReadTimeoutError),
    ):
        put(ddb, table, "applied")
    assert stored(table, "applied")


def test_a_transaction_retried_after_a_lost_response_gets_its_first_answer_by_token(
    table: str,
) -> None:
    ddb = client("dynamodb")
    item = {"TableName": table, "ConditionExpression": "attribute_not_exists(pk)"}
    transaction = [
        {"Put": {**item, "Item": {"pk": {"S": "tx-a"}}}},
        {"Put": {**item, "Item": {"pk": {"S": "tx-b"}}}},
    ]
    plan = Plan((Rule(FaultKind.READ_TIMEOUT, "dynamodb", "TransactWriteItems", nth=1),))
    with inject(ddb, plan) as faults:
        response = ddb.transact_write_items(TransactItems=transaction)
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert faults.stats().token_replays == 1
    assert stored(table, "tx-a") and stored(table, "tx-b")


# --- condition races: not retried, handled by the caller ------------------------------------


def test_a_condition_race_fails_a_conditional_write_once_without_retry_or_effect(
    table: str,
) -> None:
    ddb = client("dynamodb")
    plan = Plan((Rule(FaultKind.CONDITION_RACE, "dynamodb", rate=1.0),))
    with inject(ddb, plan) as faults:
        with pytest.raises(ClientError) as excinfo:
            put(ddb, table, "raced", conditional=True)
        put(ddb, table, "unconditional")  # no condition: no race to lose
    assert error_code(excinfo) == "ConditionalCheckFailedException"
    assert excinfo.value.response["ResponseMetadata"]["RetryAttempts"] == 0
    assert faults.stats().calls == {("dynamodb", "PutItem"): 2}
    assert faults.stats().injected_total == 1
    assert not stored(table, "raced")
    assert stored(table, "unconditional")


def test_a_raced_transaction_is_cancelled_with_a_conflict_on_its_first_conditioned_item(
    table: str,
) -> None:
    ddb = client("dynamodb")
    transaction = [
        {"Put": {"TableName": table, "Item": {"pk": {"S": "plain"}}}},
        {
            "Put": {
                "TableName": table,
                "Item": {"pk": {"S": "guarded"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ]
    plan = Plan((Rule(FaultKind.CONDITION_RACE, "dynamodb", nth=1),))
    with inject(ddb, plan) as faults, pytest.raises(ClientError) as excinfo:
        ddb.transact_write_items(TransactItems=transaction)
    assert error_code(excinfo) == "TransactionCanceledException"
    reasons = [r["Code"] for r in excinfo.value.response["CancellationReasons"]]
    assert reasons == ["None", "TransactionConflict"]
    assert faults.stats().calls == {("dynamodb", "TransactWriteItems"): 1}
    assert not stored(table, "plain") and not stored(table, "guarded")


# --- service-appropriate errors -------------------------------------------------------------


def test_s3_throttles_with_slow_down_and_head_errors_carry_only_their_status(aws: None) -> None:
    s3 = client("s3", NO_RETRIES)
    bucket = f"faults-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    plan = Plan(
        (
            Rule(FaultKind.THROTTLE, "s3", "PutObject", nth=1),
            Rule(FaultKind.SERVER_ERROR, "s3", "HeadObject", nth=1),
        ),
        seed=1,
    )
    with inject(s3, plan):
        with pytest.raises(ClientError) as put_error:
            s3.put_object(Bucket=bucket, Key="k", Body=b"x")
        with pytest.raises(ClientError) as head_error:
            s3.head_object(Bucket=bucket, Key="k")
    assert error_code(put_error) == "SlowDown"
    assert put_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert error_code(head_error) in {"500", "503"}
    s3.delete_bucket(Bucket=bucket)


@pytest.mark.parametrize(
    ("service", "call", "throttle", "server_errors"),
    [
        ("kms", "list_keys", "ThrottlingException", {"KMSInternalException"}),
        ("events", "list_event_buses", "ThrottlingException", {"InternalException"}),
        (
            "sagemaker",
            "list_training_jobs",
            "ThrottlingException",
            {"InternalFailure", "ServiceUnavailable"},
        ),
        (
            "stepfunctions",
            "list_state_machines",
            "ThrottlingException",
            {"InternalFailure", "ServiceUnavailable"},
        ),
    ],
)
def test_each_service_fails_with_its_own_error_codes(
    aws: None, service: str, call: str, throttle: str, server_errors: set[str]
) -> None:
    target = client(service, NO_RETRIES)
    plan = Plan(
        (
            Rule(FaultKind.THROTTLE, service, nth=1),
            Rule(FaultKind.SERVER_ERROR, service, nth=2),
        )
    )
    with inject(target, plan) as faults:
        with pytest.raises(ClientError) as throttled:
            getattr(target, call)()
        with pytest.raises(ClientError) as failed:
            getattr(target, call)()
        getattr(target, call)()  # the third call goes through
    assert error_code(throttled) == throttle
    assert error_code(failed) in server_errors
    assert faults.stats().by_service() == {service: 2}


# --- installation ---------------------------------------------------------------------------


def test_uninstalling_gives_the_client_back_its_own_send_path(table: str) -> None:
    ddb = client("dynamodb", NO_RETRIES)
    plan = Plan((Rule(FaultKind.SERVER_ERROR, rate=1.0),))
    with inject(ddb, plan) as faults, pytest.raises(RuntimeError):
        faults.install(ddb)  # one injector per client
    put(ddb, table, "after")
    assert stored(table, "after")
    with inject(ddb, Plan(())) as again:  # installable again
        put(ddb, table, "again")
    assert again.stats().calls == {("dynamodb", "PutItem"): 1}


def test_a_session_hook_reaches_the_clients_it_creates(table: str) -> None:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    with inject(session, Plan((Rule(FaultKind.THROTTLE, "dynamodb", nth=1),))) as faults:
        ddb = session.client("dynamodb", config=NO_RETRIES)
        with pytest.raises(ClientError):
            put(ddb, table, "first")
        put(ddb, table, "second")
    assert faults.stats().calls == {("dynamodb", "PutItem"): 2}


def test_the_platform_clients_and_pynamodb_are_hooked_and_retry_in_bounded_standard_mode() -> None:
    from chaos.campaign import MAX_ATTEMPTS, Sandbox
    from modelops import wiring
    from modelops.adapters.dynamodb import RegistryItem

    with Sandbox():
        targets = platform_targets()
        for target in targets:
            retries = target.meta.config.retries
            assert retries["mode"] == "standard", target
            total = retries.get("total_max_attempts", retries.get("max_attempts", 0) + 1)
            assert 1 < total <= MAX_ATTEMPTS, (target.meta.service_model.service_name, retries)
        repository = wiring.registry_repository()
        plan = Plan((Rule(FaultKind.SERVER_ERROR, "dynamodb", "GetItem", nth=1, times=2),))
        with inject(targets, plan) as faults:
            started = time.monotonic()
            assert repository.get_model("mdl-" + "0" * 24) is None  # through PynamoDB
            assert time.monotonic() - started < 5
            with pytest.raises(RuntimeError):  # wiring's lazy client is the one hooked
                faults.install(wiring.client("kms"))
        assert faults.stats().injected_total == 2
        assert faults.stats().calls[("dynamodb", "GetItem")] == 3
        assert RegistryItem.Meta.max_retry_attempts == 4


def test_a_fault_injector_refuses_what_holds_no_botocore_client() -> None:
    with pytest.raises(TypeError):
        FaultInjector(Plan(())).install(object())


def test_rules_reject_impossible_settings() -> None:
    with pytest.raises(ValueError):
        Rule(FaultKind.THROTTLE, rate=1.5)
    with pytest.raises(ValueError):
        Rule(FaultKind.THROTTLE, nth=0)


def test_a_uniform_plan_spreads_its_rate_over_the_mix() -> None:
    plan = Plan.uniform(0.2, seed=3, services=("dynamodb", "s3"))
    kinds = {(r.service, r.kind) for r in plan.rules}
    assert ("s3", FaultKind.CONDITION_RACE) not in kinds  # races are DynamoDB's
    assert ("dynamodb", FaultKind.CONDITION_RACE) in kinds
    # The chance that some rule of a service fires on an attempt is the rate.
    for service in ("dynamodb", "s3"):
        passed = 1.0
        for rule in plan.rules:
            if rule.service == service:
                passed *= 1 - rule.rate
        assert 1 - passed == pytest.approx(0.2)
