"""Pools with their usage and chargeback reports, from usage records in memory."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from modelops.domain.pools import usage_record
from modelops.errors import NotFound, ValidationFailed
from modelops.services.compute import ComputeService, report_csv
from tests.unit.fakes import FixedClock, MemoryPlatform, MemoryQuotaLedger
from tests.unit.test_training_service import POOLS

START = datetime(2026, 11, 1, tzinfo=UTC)


def _records(ledger: MemoryQuotaLedger) -> None:
    for index, (model, team, pool, instance, seconds, spot) in enumerate(
        [
            ("mdl-a", "ml", "gpu", "ml.g5.xlarge", 3600, True),
            ("mdl-a", "ml", "gpu", "ml.g5.12xlarge", 1800, False),
            ("mdl-b", "kernel", "cpu", "ml.m5.large", 7200, False),
            (None, "ml", "gpu", "ml.g5.xlarge", 600, False),
        ]
    ):
        ledger.put_usage(
            usage_record(
                pool=POOLS.pools[pool],
                job_id=f"trn-{index:024d}",
                model_id=model,
                family="iris",
                version=f"1.0.{index}",
                team=team,
                instance_type=instance,
                instance_count=1,
                spot=spot,
                status="COMPLETED" if model else "FAILED",
                billable_seconds=seconds,
                training_seconds=seconds * 2 if spot else seconds,
                ended_at=START + timedelta(days=index),
                correlation_id="c",
            )
        )


@pytest.fixture
def service() -> ComputeService:
    clock = FixedClock()
    ledger = MemoryQuotaLedger(POOLS, clock)
    _records(ledger)
    return ComputeService(POOLS, ledger, MemoryPlatform(), clock)


def test_report_groups_by_model_and_its_total_is_the_sum_of_every_record(
    service: ComputeService,
) -> None:
    report = service.report("model", START, START + timedelta(days=30))
    by_key = {row.key: row for row in report.rows}
    assert by_key["mdl-a"].costUsd == Decimal("0.5") + Decimal("3.5")  # spot 1 h + 0.5 h on demand
    assert by_key["mdl-a"].gpuHours == Decimal(1) + Decimal(2)  # 1 GPU x 1 h + 4 GPUs x 0.5 h
    assert by_key["mdl-b"].gpuHours == 0 and by_key["mdl-b"].costUsd == Decimal("0.2")
    assert report.records == 4 and report.total.jobs == 4
    assert report.total.costUsd == sum((row.costUsd for row in report.rows), Decimal(0))


@pytest.mark.parametrize(
    ("group_by", "keys"), [("team", {"ml", "kernel"}), ("pool", {"gpu", "cpu"})]
)
def test_report_groups_by_team_or_pool(
    service: ComputeService, group_by: str, keys: set[str]
) -> None:
    report = service.report(group_by, START, START + timedelta(days=30))  # type: ignore[arg-type]
    assert {row.key for row in report.rows} == keys


def test_report_keeps_only_records_that_ended_in_the_range(service: ComputeService) -> None:
    report = service.report("job", START + timedelta(days=1), START + timedelta(days=2))
    assert [row.key for row in report.rows] == [f"trn-{1:024d}", f"trn-{2:024d}"]


def test_report_refuses_a_range_that_ends_before_it_starts(service: ComputeService) -> None:
    with pytest.raises(ValidationFailed):
        service.report("model", START, START - timedelta(days=1))


def test_csv_has_a_row_per_group_and_the_total_last(service: ComputeService) -> None:
    rows = list(
        csv.reader(
            io.StringIO(report_csv(service.report("pool", START, START + timedelta(days=30))))
        )
    )
    assert rows[0] == ["pool", "jobs", "gpu_hours", "instance_hours", "cost_usd"]
    assert [r[0] for r in rows[1:]] == ["cpu", "gpu", "total"]
    assert Decimal(rows[-1][4]) == sum(Decimal(r[4]) for r in rows[1:-1])


def test_pools_show_quotas_rates_and_this_months_commitments(service: ComputeService) -> None:
    view = {p.pool.name: p for p in service.pools().pools}
    gpu = view["gpu"]
    assert gpu.gpusPerInstance == {"ml.g5.xlarge": 1, "ml.g5.12xlarge": 4}
    teams = {t.team: t for t in gpu.teams}
    assert teams["ml"].limitGpuHours == 100 and teams["unassigned"].limitGpuHours == 10


def test_model_cost_needs_a_registered_model(service: ComputeService) -> None:
    with pytest.raises(NotFound):
        service.model_cost("mdl-" + "0" * 24)
