"""The local cloud's DynamoDB is atomic per request, like DynamoDB: concurrent conditional
puts of one key have exactly one winner, and transactions never fail because other
requests are in flight (plain moto fails some of them: a race, so not on every run)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.cloud import LocalCloud


@pytest.fixture(scope="module")
def ddb(local_cloud: LocalCloud) -> Any:
    admin = local_cloud.principals["platform-admin"].session(local_cloud.region)
    # No client retries: a server-side failure must show, not be retried away.
    config = Config(retries={"mode": "standard", "max_attempts": 1}, max_pool_connections=32)
    return admin.client("dynamodb", endpoint_url=local_cloud.endpoint_url, config=config)


def test_concurrent_conditional_puts_of_one_key_have_exactly_one_winner(
    local_cloud: LocalCloud, ddb: Any
) -> None:
    table = local_cloud.names["LedgerTable"]
    stream = f"atomic-{uuid.uuid4().hex[:8]}"

    def put(writer: int, seq: int) -> str:
        try:
            ddb.put_item(
                TableName=table,
                Item={
                    "stream": {"S": stream},
                    "seq": {"S": f"{seq:020d}"},
                    "w": {"N": str(writer)},
                },
                ConditionExpression="attribute_not_exists(#s)",
                ExpressionAttributeNames={"#s": "seq"},
            )
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "won"

    with ThreadPoolExecutor(16) as pool:
        for seq in range(1, 21):
            outcomes = list(pool.map(lambda writer, seq=seq: put(writer, seq), range(16)))
            assert sorted(outcomes) == ["ConditionalCheckFailedException"] * 15 + ["won"], seq


def test_transactions_succeed_while_other_writes_are_in_flight(
    local_cloud: LocalCloud, ddb: Any
) -> None:
    table = local_cloud.names["LedgerTable"]
    stream = f"atomic-{uuid.uuid4().hex[:8]}"
    # A table of some size: moto copies it whole for every transaction's rollback.
    for start in range(1000, 2000, 25):
        ddb.batch_write_item(
            RequestItems={
                table: [
                    {
                        "PutRequest": {
                            "Item": {"stream": {"S": f"{stream}-fill"}, "seq": {"S": str(n)}}
                        }
                    }
                    for n in range(start, start + 25)
                ]
            }
        )

    def write(n: int) -> None:
        item = {"stream": {"S": stream}, "seq": {"S": f"{n:020d}"}}
        if n % 2:
            ddb.transact_write_items(TransactItems=[{"Put": {"TableName": table, "Item": item}}])
        else:
            ddb.put_item(TableName=table, Item=item)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(100)))  # raises on any InternalFailure
    count = ddb.query(
        TableName=table,
        KeyConditionExpression="#p = :p",
        ExpressionAttributeNames={"#p": "stream"},
        ExpressionAttributeValues={":p": {"S": stream}},
        Select="COUNT",
        ConsistentRead=True,
    )["Count"]
    assert count == 100
