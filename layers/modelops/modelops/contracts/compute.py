"""Contracts of the compute and cost API (source of ``schemas/``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import Field

from modelops.contracts.registry import Contract
from modelops.domain.pools import GroupBy, Pool, UsageRecord


class TeamUsage(Contract):
    team: str
    limitGpuHours: Decimal
    committedGpuHours: Decimal = Field(
        description="Used by finished jobs plus reserved by running ones, this period."
    )
    remainingGpuHours: Decimal


class PoolView(Contract):
    pool: Pool
    gpusPerInstance: dict[str, int]
    activeGpus: int = Field(description="GPUs held by running jobs now.")
    period: str = Field(description="The quota period (calendar month, UTC).")
    teams: list[TeamUsage]


class PoolsView(Contract):
    pools: list[PoolView]


class CostRow(Contract):
    key: str
    jobs: int
    gpuHours: Decimal
    instanceHours: Decimal
    costUsd: Decimal


class CostReport(Contract):
    groupBy: GroupBy
    start: datetime
    end: datetime
    rows: list[CostRow]
    total: CostRow = Field(description="Equals the sum over every usage record in the range.")
    records: int


class ModelCost(Contract):
    modelId: str
    usage: list[UsageRecord]
    total: CostRow


__all__ = [
    "CostReport",
    "CostRow",
    "ModelCost",
    "PoolView",
    "PoolsView",
    "TeamUsage",
    "UsageRecord",
]
