"""Workflow step handlers: what a step reports is returned, its metrics are emitted as EMF
with their own dimensions, and the execution's correlation id is on its log lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelops.tasks import task_handler


class Context:
    function_name = "train-release-compute"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:train-release-compute"
    aws_request_id = "req-1"


def test_a_steps_metrics_are_emitted_with_their_dimensions_and_not_returned(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "train-release-compute")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ILLUVRSE/ModelOps")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")

    def step(event: dict[str, Any]) -> dict[str, Any]:
        return {
            "released": event["jobId"],
            "metrics": [
                {
                    "name": "QuotaUsedPercent",
                    "unit": "Percent",
                    "value": 85.0,
                    "dimensions": {"pool": "gpu-us-east", "team": "ml-research"},
                }
            ],
        }

    handler = task_handler("release_compute", step)
    result = handler({"jobId": "trn-1", "correlationId": "corr-9"}, Context())  # type: ignore[arg-type]
    assert result == {"released": "trn-1"}
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    (quota,) = [line for line in lines if "QuotaUsedPercent" in line]
    assert quota["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["pool", "team", "service"]]
    assert (quota["pool"], quota["team"], quota["QuotaUsedPercent"]) == (
        "gpu-us-east",
        "ml-research",
        [85.0],
    )
    logged = [line for line in lines if line.get("message") == "step done"]
    assert logged[0]["correlation_id"] == "corr-9" and logged[0]["jobId"] == "trn-1"
