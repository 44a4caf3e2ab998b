"""The embedded Resource Allocator: a quota ledger in the registry table.

Items (pk / sk):
  QUOTA#<pool>#<team> / PERIOD#<yyyy-mm>   committed GPU-hours of the team that month
  POOLLOAD#<pool> / ACTIVE                 GPUs held by running jobs of the pool
  RESERVATION#<jobId> / RESERVATION        a job's reservation  gsi1: RESERVATIONS / <time>#<job>
                                           (gsi1 removed on release: the index lists open ones)
  USAGE#<jobId> / USAGE                    a finished job's usage record  gsi1: USAGE / <time>#<job>

A reservation is one TransactWriteItems call: put the reservation if absent, add its
GPU-hours to the team's month if that stays within the limit, add its GPUs to the pool's
load if that stays within the pool's maximum. DynamoDB conditions cannot add, so each
condition compares the stored total with ``limit - requested``, computed by the caller: the
transaction either does all three or nothing, and concurrent reservations serialise on the
items they touch, so no interleaving can over-commit.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from modelops.domain import compute
from modelops.domain.pools import (
    PoolConfig,
    QuotaDenial,
    Reservation,
    UsageRecord,
    hours,
    period_of,
    reserved_gpu_hours,
)
from modelops.domain.training import ComputeRequirements
from modelops.ports import AlreadyExists, Clock, ReservationRefused


def _n(value: Decimal | int) -> dict[str, str]:
    return {"N": str(value)}


def _s(value: str) -> dict[str, str]:
    return {"S": value}


class DynamoQuotaLedger:
    """``ComputeAllocator`` and ``UsageLedger`` over the registry table."""

    def __init__(self, client: Any, table: str, pools: PoolConfig, clock: Clock) -> None:
        self._ddb = client
        self._table = table
        self._pools = pools
        self._clock = clock

    # --- reservations -----------------------------------------------------------------

    def reserve(self, job_id: str, team: str, requirements: ComputeRequirements) -> None:
        pool = self._pools.pools[str(requirements.pool)]
        now = self._clock.now()
        gpus = requirements.instanceCount * compute.INSTANCE_TYPES[requirements.instanceType].gpus
        reservation = Reservation(
            jobId=job_id,
            pool=pool.name,
            team=team,
            period=period_of(now),
            gpus=gpus,
            gpuHours=reserved_gpu_hours(
                requirements.instanceType,
                requirements.instanceCount,
                requirements.maxRuntimeSeconds,
            ),
            createdAt=now,
        )
        if self._get(f"RESERVATION#{job_id}", "RESERVATION") is not None:
            return  # a retry: the job already holds its reservation
        limit = pool.quota.team_limit(team)
        concurrency = pool.quota.maxConcurrentGpus
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._reservation_item(reservation, open_=True),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    self._add(
                        self._quota_key(reservation), "committed", reservation.gpuHours, limit
                    ),
                    self._add(
                        self._load_key(pool.name), "gpus", Decimal(gpus), Decimal(concurrency)
                    ),
                ]
            )
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or () if r]
            if "ConditionalCheckFailed" not in reasons:
                raise
            if reasons[0] == "ConditionalCheckFailed":
                return  # a concurrent retry of the same job reserved first
            if reasons[1] == "ConditionalCheckFailed":
                committed = self.committed(pool.name, team, reservation.period)
                raise ReservationRefused(
                    QuotaDenial(
                        pool=pool.name,
                        team=team,
                        quota="gpuHoursPerTeam",
                        requested=reservation.gpuHours,
                        limit=limit,
                        remaining=max(Decimal(0), limit - committed),
                        period=reservation.period,
                    )
                ) from exc
            active = self.active_gpus(pool.name)
            raise ReservationRefused(
                QuotaDenial(
                    pool=pool.name,
                    team=team,
                    quota="maxConcurrentGpus",
                    requested=Decimal(gpus),
                    limit=Decimal(concurrency),
                    remaining=Decimal(max(0, concurrency - active)),
                    period=reservation.period,
                )
            ) from exc

    def release(self, job_id: str, used_gpu_hours: Decimal) -> None:
        item = self._get(f"RESERVATION#{job_id}", "RESERVATION")
        if item is None:
            return
        reservation = Reservation.model_validate_json(item["doc"]["S"])
        if reservation.status == "RELEASED":
            return
        used = hours(used_gpu_hours)
        released = reservation.model_copy(
            update={"status": "RELEASED", "releasedAt": self._clock.now(), "usedGpuHours": used}
        )
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": self._reservation_item(released, open_=False),
                            "ConditionExpression": "#st = :reserved",
                            "ExpressionAttributeNames": {"#st": "status"},
                            "ExpressionAttributeValues": {":reserved": _s("RESERVED")},
                        }
                    },
                    self._add(
                        self._quota_key(reservation), "committed", used - reservation.gpuHours
                    ),
                    self._add(self._load_key(reservation.pool), "gpus", Decimal(-reservation.gpus)),
                ]
            )
        except ClientError as exc:
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons") or () if r]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return  # a concurrent release won
            raise

    def open_reservations(self, limit: int) -> list[Reservation]:
        items = self._ddb.query(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :open",
            ExpressionAttributeValues={":open": _s("RESERVATIONS")},
            Limit=limit,
        )["Items"]
        return [Reservation.model_validate_json(i["doc"]["S"]) for i in items]

    def get_reservation(self, job_id: str) -> Reservation | None:
        item = self._get(f"RESERVATION#{job_id}", "RESERVATION")
        return Reservation.model_validate_json(item["doc"]["S"]) if item else None

    def committed(self, pool: str, team: str, period: str) -> Decimal:
        item = self._get(f"QUOTA#{pool}#{team}", f"PERIOD#{period}")
        return Decimal(item["committed"]["N"]) if item and "committed" in item else Decimal(0)

    def active_gpus(self, pool: str) -> int:
        item = self._get(f"POOLLOAD#{pool}", "ACTIVE")
        return int(Decimal(item["gpus"]["N"])) if item and "gpus" in item else 0

    # --- usage records ----------------------------------------------------------------

    def put_usage(self, record: UsageRecord) -> None:
        """The record, and (for a job that registered a model) a copy in the model's
        partition, so a model version's cost is one query."""
        doc = _s(record.model_dump_json())
        items = [
            {
                "pk": _s(f"USAGE#{record.jobId}"),
                "sk": _s("USAGE"),
                "kind": _s("usage"),
                "doc": doc,
                "gsi1pk": _s("USAGE"),
                "gsi1sk": _s(f"{record.endedAt.isoformat()}#{record.jobId}"),
            }
        ]
        if record.modelId:
            items.append(
                {
                    "pk": _s(f"MODEL#{record.modelId}"),
                    "sk": _s(f"USAGE#{record.jobId}"),
                    "kind": _s("model-usage"),
                    "doc": doc,
                }
            )
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": item,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                    for item in items
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                raise AlreadyExists(record.jobId) from exc
            raise

    def usage_of_model(self, model_id: str) -> list[UsageRecord]:
        items = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :usage)",
            ExpressionAttributeValues={":pk": _s(f"MODEL#{model_id}"), ":usage": _s("USAGE#")},
            ConsistentRead=True,
        )["Items"]
        return [UsageRecord.model_validate_json(i["doc"]["S"]) for i in items]

    def get_usage(self, job_id: str) -> UsageRecord | None:
        item = self._get(f"USAGE#{job_id}", "USAGE")
        return UsageRecord.model_validate_json(item["doc"]["S"]) if item else None

    def usage_between(self, start: datetime, end: datetime) -> list[UsageRecord]:
        records: list[UsageRecord] = []
        arguments: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :usage AND gsi1sk BETWEEN :start AND :end",
            "ExpressionAttributeValues": {
                ":usage": _s("USAGE"),
                ":start": _s(start.isoformat()),
                ":end": _s(f"{end.isoformat()}\uffff"),
            },
        }
        while True:
            page = self._ddb.query(**arguments)
            records += [UsageRecord.model_validate_json(i["doc"]["S"]) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return records
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- internals --------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self._ddb.get_item(
            TableName=self._table, Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True
        ).get("Item")
        return dict(item) if item else None

    @staticmethod
    def _quota_key(reservation: Reservation) -> dict[str, Any]:
        return {
            "pk": _s(f"QUOTA#{reservation.pool}#{reservation.team}"),
            "sk": _s(f"PERIOD#{reservation.period}"),
        }

    @staticmethod
    def _load_key(pool: str) -> dict[str, Any]:
        return {"pk": _s(f"POOLLOAD#{pool}"), "sk": _s("ACTIVE")}

    def _add(
        self, key: dict[str, Any], attribute: str, amount: Decimal, limit: Decimal | None = None
    ) -> dict[str, Any]:
        """ADD ``amount`` to a counter; with ``limit``, only if the sum stays within it."""
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": key,
            "UpdateExpression": "ADD #v :amount SET kind = :kind",
            "ExpressionAttributeNames": {"#v": attribute},
            "ExpressionAttributeValues": {":amount": _n(amount), ":kind": _s("quota-counter")},
        }
        if limit is not None:
            update["ConditionExpression"] = "attribute_not_exists(#v) OR #v <= :room"
            update["ExpressionAttributeValues"][":room"] = _n(limit - amount)
            if amount > limit:  # more than the whole limit: refuse even an empty counter
                update["ConditionExpression"] = "attribute_exists(#v) AND #v <= :room"
        return {"Update": update}

    def _reservation_item(self, reservation: Reservation, *, open_: bool) -> dict[str, Any]:
        item = {
            "pk": _s(f"RESERVATION#{reservation.jobId}"),
            "sk": _s("RESERVATION"),
            "kind": _s("reservation"),
            "status": _s(reservation.status),
            "doc": _s(reservation.model_dump_json()),
        }
        if open_:
            item["gsi1pk"] = _s("RESERVATIONS")
            item["gsi1sk"] = _s(f"{reservation.createdAt.isoformat()}#{reservation.jobId}")
        return item
