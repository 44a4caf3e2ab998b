"""Scheduled (every 5 minutes): release compute reservations no running training job holds,
and report how long each running spot job has trained without writing a checkpoint
(``TrainingService.reconcile``, one pass over the reservations). The oldest age is emitted
as ``CheckpointAgeSeconds`` (the ``service`` dimension only; nothing when no job is
measured), which CDK alarms on; each job's age is in the step's result (logged), to find
the job.
"""

from datetime import timedelta
from typing import Any

from modelops import wiring
from modelops.tasks import task_handler

CHECKPOINT_AGE_METRIC = "CheckpointAgeSeconds"
STALE_RESERVATION = timedelta(minutes=15)


def reconcile(event: dict[str, Any]) -> dict[str, Any]:
    result = wiring.training_service().reconcile(STALE_RESERVATION)
    ages: dict[str, float] = result["checkpointAgeSeconds"]
    if ages:
        result["metrics"] = [
            {
                "name": CHECKPOINT_AGE_METRIC,
                "unit": "Seconds",
                "value": max(ages.values()),
                "dimensions": {},
            }
        ]
    return result


handler = task_handler("reconcile", reconcile)
