"""Quotas, usage records and chargeback on the local cloud: the DynamoDB quota ledger under
concurrency, the cost API, and reconciliation after a workflow is killed mid-way."""

from __future__ import annotations

import csv
import io
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.adapters.quota import DynamoQuotaLedger
from modelops.domain.ledger import LedgerRecord
from modelops.domain.pools import PoolConfig, period_of
from modelops.domain.training import ComputeRequirements
from modelops.ports import ReservationRefused
from modelops_cli import training
from modelops_cli.client import ModelOpsClient
from tests.integration.test_training_api import (  # the same module fixtures and helpers
    _execution_status,
    _request,
    _train,
    engineer,
    iris,
)
from tests.unit.fakes import FixedClock

pytestmark = pytest.mark.slow
__all__ = ["engineer", "iris"]


def _ledger(cloud: LocalCloud, pools: PoolConfig) -> DynamoQuotaLedger:
    table = cloud.names[platform.REGISTRY_TABLE.logical_id]
    return DynamoQuotaLedger(cloud.client("dynamodb"), table, pools, FixedClock())


def _pools(limit: int) -> PoolConfig:
    return PoolConfig.model_validate(
        {
            "pools": {
                "it-gpu": {
                    "name": "it-gpu",
                    "region": "us-east-1",
                    "instanceTypes": ["ml.g5.xlarge"],
                    "quota": {"gpuHoursPerTeam": {"default": limit}, "maxConcurrentGpus": 100},
                    "rates": {"ml.g5.xlarge": {"onDemand": 1, "spot": 0.3}},
                }
            }
        }
    )


def test_fifty_concurrent_reservations_never_over_commit_the_quota(
    local_cloud: LocalCloud,
) -> None:
    ledger = _ledger(local_cloud, _pools(limit=12))
    requirements = ComputeRequirements(pool="it-gpu", instanceType="ml.g5.xlarge")

    def reserve(index: int) -> bool:
        try:
            ledger.reserve(f"trn-it-{index:020d}", "team-a", requirements)
        except ReservationRefused:
            return False
        return True

    with ThreadPoolExecutor(max_workers=25) as pool:
        accepted = sum(pool.map(reserve, range(50)))
    period = period_of(FixedClock().now())
    assert accepted == 12
    assert ledger.committed("it-gpu", "team-a", period) == Decimal(12)
    assert ledger.active_gpus("it-gpu") == 12
    for index in range(50):  # releasing (twice) gives every held GPU-hour back
        ledger.release(f"trn-it-{index:020d}", Decimal(0))
        ledger.release(f"trn-it-{index:020d}", Decimal(0))
    assert ledger.committed("it-gpu", "team-a", period) == 0
    assert ledger.active_gpus("it-gpu") == 0


def test_a_denial_names_the_quota_and_what_is_left(local_cloud: LocalCloud) -> None:
    ledger = _ledger(local_cloud, _pools(limit=3))
    big = ComputeRequirements(pool="it-gpu", instanceType="ml.g5.xlarge", maxRuntimeSeconds=7200)
    ledger.reserve("trn-it-denial-held000000", "team-b", big)
    with pytest.raises(ReservationRefused) as caught:
        ledger.reserve("trn-it-denial-refused000", "team-b", big)
    denial = caught.value.denial
    assert (denial.quota, denial.requested, denial.remaining, denial.limit) == (
        "gpuHoursPerTeam",
        Decimal(2),
        Decimal(1),
        Decimal(3),
    )


def test_a_finished_job_has_a_usage_record_in_the_cost_report_and_the_models_cost(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any]
) -> None:
    done = _train(engineer, _request(iris, compute={"instanceType": "ml.g5.xlarge", "spot": True}))
    assert done["status"] == "COMPLETED" and done["team"] == "ml-research"
    assert _execution_status(local_cloud, done)["status"] == "SUCCEEDED"  # usage recorded
    cost = engineer.call("GET", f"/cost/models/{done['modelId']}")
    (record,) = cost["usage"]
    assert record["jobId"] == done["jobId"] and record["pool"] == "gpu-us-east"
    assert Decimal(record["gpuHours"]) == Decimal(record["instanceHours"])  # one GPU
    expected = Decimal(record["instanceHours"]) * Decimal("0.4224")  # the spot rate
    assert Decimal(record["costUsd"]) == expected.quantize(Decimal("0.000001"))
    report = engineer.call("GET", "/cost/report", query={"groupBy": "pool"})
    assert Decimal(report["total"]["costUsd"]) == sum(
        Decimal(row["costUsd"]) for row in report["rows"]
    )
    response = engineer.send("GET", "/cost/report", query={"groupBy": "team", "format": "csv"})
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][0] == "team" and rows[-1][0] == "total"
    pools = engineer.call("GET", "/compute/pools")
    gpu = next(p for p in pools["pools"] if p["pool"]["name"] == "gpu-us-east")
    team = next(t for t in gpu["teams"] if t["team"] == "ml-research")
    assert Decimal(team["committedGpuHours"]) >= Decimal(record["gpuHours"])


def test_a_job_over_quota_is_refused_with_429_and_audited(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any]
) -> None:
    huge = {"instanceType": "ml.p4d.24xlarge", "instanceCount": 4, "maxRuntimeSeconds": 86400}
    status, body = engineer.request("POST", "/train/jobs", _request(iris, compute=huge))
    assert (status, body["error"]["code"]) == (429, "QUOTA_EXCEEDED")
    detail = body["error"]["details"][0]
    assert detail["quota"] == "gpuHoursPerTeam" and detail["team"] == "ml-research"
    page = engineer.call("GET", "/audit/export", query={"stream": "training", "limit": 1000})
    events = [LedgerRecord.from_line(line).event() for line in page["records"]]
    refused = [e for e in events if e.status == 429]
    assert refused and refused[-1].outcome.value == "REJECTED"
    assert refused[-1].principal == local_cloud.principals["ml-engineer"].arn


def test_reconciliation_releases_a_job_whose_workflow_was_killed_mid_way(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any]
) -> None:
    request = _request(
        iris,
        hyperparameters={"epochs": 400, "min_epoch_seconds": 0.05},
        compute={"instanceType": "ml.g5.xlarge"},
    )
    job = engineer.submit_training(**request)
    deadline = time.monotonic() + 60
    while engineer.get_training(job["jobId"])["status"] != "TRAINING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    sfn = local_cloud.client("stepfunctions")
    sfn.stop_execution(executionArn=job["executionArn"], error="Chaos", cause="killed mid-way")
    local_cloud.client("sagemaker").stop_training_job(TrainingJobName=job["trainingJobName"])
    result = local_cloud.client("lambda").invoke(FunctionName="train-reconcile", Payload=b"{}")
    assert "FunctionError" not in result
    ended = training.follow(engineer, job["jobId"], lambda _: None, timeout_s=30)
    assert ended["status"] == "FAILED" and "reconciliation" in ended["statusReason"]
    ledger = _ledger(
        local_cloud,
        PoolConfig.parse(local_cloud.parameters[platform.COMPUTE_POOLS_PARAMETER], "{}"),
    )
    assert job["jobId"] not in {r.jobId for r in ledger.open_reservations(100)}
