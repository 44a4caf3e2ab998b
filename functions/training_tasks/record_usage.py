"""Task RecordUsage: account the job's usage to its pool and publish it.

Besides the service's GpuHours and CostUsd (by pool and team), the first recording of a
job's usage reports, for the operations dashboard, how long it trained
(``TrainingJobSeconds``, by pool) and what it cost by model family (``TrainingCostUsd``,
by pool and modelFamily). A retried step finds the record already written and reports
nothing again.
"""

from typing import Any

from modelops import wiring
from modelops.tasks import task_handler

TRAINING_JOB_SECONDS_METRIC = "TrainingJobSeconds"
TRAINING_COST_METRIC = "TrainingCostUsd"


def job_metrics(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's metrics of one usage record (as the service returns it)."""
    return [
        {
            "name": TRAINING_JOB_SECONDS_METRIC,
            "unit": "Seconds",
            "value": float(record["trainingSeconds"]),
            "dimensions": {"pool": record["pool"]},
        },
        {
            "name": TRAINING_COST_METRIC,
            "unit": "None",
            "value": float(record["costUsd"]),
            "dimensions": {"pool": record["pool"], "modelFamily": record["modelFamily"]},
        },
    ]


def record_usage(event: dict[str, Any]) -> dict[str, Any]:
    result = wiring.training_service().record_usage(event["jobId"])
    if "metrics" in result:  # written now, not by an earlier attempt
        result["metrics"] = [*result["metrics"], *job_metrics(result)]
    return result


handler = task_handler("record_usage", record_usage)
