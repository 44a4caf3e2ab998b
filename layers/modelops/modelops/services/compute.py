"""Compute pools with their current usage, and chargeback reports from usage records."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import datetime
from decimal import Decimal

from modelops.contracts.compute import (
    CostReport,
    CostRow,
    ModelCost,
    PoolsView,
    PoolView,
    TeamUsage,
)
from modelops.domain import compute
from modelops.domain.pools import DEFAULT_TEAM, GroupBy, PoolConfig, group_key, period_of
from modelops.errors import NotFound, ValidationFailed
from modelops.ports import Clock, RegistryRepository, UsageLedger


class ComputeService:
    def __init__(
        self, pools: PoolConfig, usage: UsageLedger, registry: RegistryRepository, clock: Clock
    ) -> None:
        self._pools = pools
        self._usage = usage
        self._registry = registry
        self._clock = clock

    def pools(self) -> PoolsView:
        period = period_of(self._clock.now())
        teams = sorted(
            {DEFAULT_TEAM, *self._pools.teamBindings.values()}
            | {t for p in self._pools.pools.values() for t in p.quota.gpuHoursPerTeam} - {"default"}
        )
        views = []
        for name in sorted(self._pools.pools):
            pool = self._pools.pools[name]
            usage = []
            for team in teams:
                limit = pool.quota.team_limit(team)
                committed = self._usage.committed(name, team, period)
                usage.append(
                    TeamUsage(
                        team=team,
                        limitGpuHours=limit,
                        committedGpuHours=committed,
                        remainingGpuHours=max(Decimal(0), limit - committed),
                    )
                )
            views.append(
                PoolView(
                    pool=pool,
                    gpusPerInstance={t: compute.INSTANCE_TYPES[t].gpus for t in pool.instanceTypes},
                    activeGpus=self._usage.active_gpus(name),
                    period=period,
                    teams=usage,
                )
            )
        return PoolsView(pools=views)

    def report(self, group_by: GroupBy, start: datetime, end: datetime) -> CostReport:
        if end < start:
            raise ValidationFailed(
                "to must not be before from", details=[{"field": "to", "message": "before from"}]
            )
        records = self._usage.usage_between(start, end)
        groups: dict[str, list[CostRow]] = defaultdict(list)
        for record in records:
            groups[group_key(record, group_by)].append(
                CostRow(
                    key=group_key(record, group_by),
                    jobs=1,
                    gpuHours=record.gpuHours,
                    instanceHours=record.instanceHours,
                    costUsd=record.costUsd,
                )
            )
        rows = [_sum(key, parts) for key, parts in sorted(groups.items())]
        return CostReport(
            groupBy=group_by,
            start=start,
            end=end,
            rows=rows,
            total=_sum("total", rows),
            records=len(records),
        )

    def model_cost(self, model_id: str) -> ModelCost:
        if self._registry.get_model(model_id) is None:
            raise NotFound(f"model {model_id} does not exist")
        records = self._usage.usage_of_model(model_id)
        rows = [
            CostRow(
                key=r.jobId,
                jobs=1,
                gpuHours=r.gpuHours,
                instanceHours=r.instanceHours,
                costUsd=r.costUsd,
            )
            for r in records
        ]
        return ModelCost(modelId=model_id, usage=records, total=_sum("total", rows))


def _sum(key: str, rows: list[CostRow]) -> CostRow:
    return CostRow(
        key=key,
        jobs=sum(r.jobs for r in rows),
        gpuHours=sum((r.gpuHours for r in rows), Decimal(0)),
        instanceHours=sum((r.instanceHours for r in rows), Decimal(0)),
        costUsd=sum((r.costUsd for r in rows), Decimal(0)),
    )


def report_csv(report: CostReport) -> str:
    """The report as CSV: one row per group, then the total."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([report.groupBy, "jobs", "gpu_hours", "instance_hours", "cost_usd"])
    for row in [*report.rows, report.total]:
        writer.writerow([row.key, row.jobs, row.gpuHours, row.instanceHours, row.costUsd])
    return out.getvalue()
