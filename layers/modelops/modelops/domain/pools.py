"""Compute pools, quotas, rates and the cost of what a job used.

Pools are configuration (cdk.json per environment; the local cloud uses the dev one): the
region, the instance types a pool offers, per-team GPU-hour quotas for each calendar month
(UTC), the most GPUs the pool runs at once, and the on-demand and spot rates per
instance-hour. Teams are bound to principals by pattern, as roles are.

A job reserves its worst case before it starts: instances x GPUs x maximum runtime. When it
ends the reservation becomes what SageMaker billed, so quota consumption is exact and a
finished job never holds quota it did not use.
"""

from __future__ import annotations

import fnmatch
import json
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelops.domain import compute
from modelops.domain.entities import NAME_PATTERN

DEFAULT_TEAM = "unassigned"
HOURS = Decimal("0.000001")
MONEY = Decimal("0.000001")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Rate(_Model):
    onDemand: Decimal = Field(ge=0, description="USD per instance-hour.")
    spot: Decimal = Field(ge=0, description="USD per instance-hour on managed spot.")


class Quota(_Model):
    gpuHoursPerTeam: dict[str, Decimal] = Field(
        description='GPU-hours per calendar month per team; "default" for teams not listed.'
    )
    maxConcurrentGpus: int = Field(ge=0, description="GPUs the pool runs at once, all teams.")

    def team_limit(self, team: str) -> Decimal:
        return self.gpuHoursPerTeam.get(team, self.gpuHoursPerTeam.get("default", Decimal(0)))


class Pool(_Model):
    name: str = Field(pattern=NAME_PATTERN)
    region: str
    instanceTypes: tuple[str, ...] = Field(min_length=1)
    quota: Quota
    rates: dict[str, Rate]

    @model_validator(mode="after")
    def _consistent(self) -> Pool:
        unknown = [t for t in self.instanceTypes if t not in compute.INSTANCE_TYPES]
        if unknown:
            raise ValueError(f"pool {self.name}: unknown instance types {unknown}")
        unpriced = [t for t in self.instanceTypes if t not in self.rates]
        if unpriced:
            raise ValueError(f"pool {self.name}: no rate for {unpriced}")
        return self


class PoolConfig(_Model):
    pools: dict[str, Pool]
    teamBindings: dict[str, str] = Field(
        default_factory=dict, description="Principal ARN pattern -> team."
    )

    @classmethod
    def parse(cls, pools_json: str, team_bindings_json: str) -> PoolConfig:
        pools = json.loads(pools_json or "{}")
        return cls.model_validate(
            {
                "pools": {name: {"name": name, **spec} for name, spec in pools.items()},
                "teamBindings": json.loads(team_bindings_json or "{}"),
            }
        )

    def team_of(self, principal: str) -> str:
        """The first binding (in pattern order) that matches; DEFAULT_TEAM otherwise."""
        for pattern in sorted(self.teamBindings):
            if fnmatch.fnmatchcase(principal, pattern):
                return self.teamBindings[pattern]
        return DEFAULT_TEAM


def period_of(at: datetime) -> str:
    """The quota period (calendar month, UTC) a moment falls in: ``2026-11``."""
    return f"{at.year:04d}-{at.month:02d}"


def hours(value: Decimal | float | int) -> Decimal:
    return Decimal(str(value)).quantize(HOURS, rounding=ROUND_HALF_EVEN)


def reserved_gpu_hours(
    instance_type: str, instance_count: int, max_runtime_seconds: int
) -> Decimal:
    """A job's worst case: every GPU busy for the whole maximum runtime."""
    gpus = compute.INSTANCE_TYPES[instance_type].gpus
    return hours(Decimal(instance_count * gpus * max_runtime_seconds) / 3600)


class Reservation(_Model):
    """Quota held by one job from admission until it ends."""

    jobId: str
    pool: str
    team: str
    period: str
    gpus: int = Field(ge=0, description="GPUs held while the job runs (concurrency).")
    gpuHours: Decimal = Field(ge=0, description="GPU-hours held against the team's quota.")
    status: Literal["RESERVED", "RELEASED"] = "RESERVED"
    createdAt: datetime
    releasedAt: datetime | None = None
    usedGpuHours: Decimal | None = None


class QuotaDenial(_Model):
    """Why a reservation was refused, with what is left."""

    pool: str
    team: str
    quota: Literal["gpuHoursPerTeam", "maxConcurrentGpus"]
    requested: Decimal
    limit: Decimal
    remaining: Decimal
    period: str

    def message(self) -> str:
        unit = "GPU-hours this month" if self.quota == "gpuHoursPerTeam" else "concurrent GPUs"
        return (
            f"pool {self.pool}: team {self.team} asked for {self.requested} {unit}, "
            f"{self.remaining} of {self.limit} left ({self.quota}, {self.period})"
        )


class UsageRecord(_Model):
    """What a finished job used and cost: immutable, linked to the job and its model."""

    jobId: str
    modelId: str | None
    modelFamily: str
    modelVersion: str
    team: str
    pool: str
    instanceType: str
    instanceCount: int
    spot: bool
    status: str
    billableSeconds: int
    trainingSeconds: int
    instanceHours: Decimal
    gpuHours: Decimal
    spotSavings: Decimal = Field(description="1 - billable / training time (0 on demand).")
    costUsd: Decimal = Field(description="Instance-hours at the pool's rate.")
    rateUsdPerInstanceHour: Decimal
    endedAt: datetime
    correlationId: str


def usage_record(
    *,
    pool: Pool,
    job_id: str,
    model_id: str | None,
    family: str,
    version: str,
    team: str,
    instance_type: str,
    instance_count: int,
    spot: bool,
    status: str,
    billable_seconds: int,
    training_seconds: int,
    ended_at: datetime,
    correlation_id: str,
) -> UsageRecord:
    rate = pool.rates[instance_type]
    per_hour = rate.spot if spot else rate.onDemand
    instance_hours = hours(Decimal(instance_count * billable_seconds) / 3600)
    gpus = compute.INSTANCE_TYPES[instance_type].gpus
    savings = (
        Decimal(1) - Decimal(billable_seconds) / Decimal(training_seconds)
        if spot and training_seconds
        else Decimal(0)
    )
    return UsageRecord(
        jobId=job_id,
        modelId=model_id,
        modelFamily=family,
        modelVersion=version,
        team=team,
        pool=pool.name,
        instanceType=instance_type,
        instanceCount=instance_count,
        spot=spot,
        status=status,
        billableSeconds=billable_seconds,
        trainingSeconds=training_seconds,
        instanceHours=instance_hours,
        gpuHours=hours(instance_hours * gpus),
        spotSavings=max(Decimal(0), savings).quantize(Decimal("0.0001")),
        costUsd=(instance_hours * per_hour).quantize(MONEY, rounding=ROUND_HALF_EVEN),
        rateUsdPerInstanceHour=per_hour,
        endedAt=ended_at,
        correlationId=correlation_id,
    )


GroupBy = Literal["model", "job", "team", "pool"]


def group_key(record: UsageRecord, group_by: GroupBy) -> str:
    if group_by == "model":
        return record.modelId or f"{record.modelFamily}@{record.modelVersion} (no model)"
    if group_by == "job":
        return record.jobId
    return record.team if group_by == "team" else record.pool
