"""The benchmarks still run (tiny sizes): a broken bench is a promise without proof."""

from __future__ import annotations

import pytest

from bench import coldstart, drift, ingest, ledger, router, training


@pytest.mark.parametrize(
    "rows",
    [
        lambda: ingest.run(size=8 * 1024 * 1024, runs=1),
        lambda: coldstart.run(samples=1),
        lambda: ledger.run(count=2_000, every=500, runs=1),
        lambda: training.run({"short": {"epochs": 2}}),
        lambda: router.run(requests=40, threads=2, moto_requests=10),
        lambda: drift.run(rows=20_000, features=3, runs=1),
    ],
    ids=["ingest", "coldstart", "ledger", "training", "router", "drift"],
)
def test_benchmark_runs_and_reports_a_ratio_against_its_peer(rows) -> None:  # type: ignore[no-untyped-def]
    for row in rows():
        assert row["peer"] and float(str(row["ratio"])) > 0
        assert str(row["target"]).split()[0] in {">=", "<="}
