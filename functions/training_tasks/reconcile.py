"""Scheduled (every 5 minutes): release compute reservations no running training job holds,
then report how long each running spot job has trained without writing a checkpoint.

A spot job survives an interruption by resuming from its newest checkpoint (SageMaker syncs
``/opt/ml/checkpoints`` to the job's checkpoint prefix), so a spot job that trains on
without writing one risks losing everything since. For every job that holds a reservation,
is TRAINING on a spot instance and is in SageMaker's ``Training`` secondary status now, the
age is the time since its newest checkpoint object, or since it (re)entered ``Training`` if
that is later (a job still downloading its data, or waiting for spot capacity after an
interruption, is not measured). The oldest age is reported as ``CheckpointAgeSeconds``
(the ``service`` dimension only; nothing when no job is measured), which CDK alarms on;
each job's age is in the step's result (logged), to find the job.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from modelops import wiring
from modelops.config import settings
from modelops.domain.training import JobStatus, checkpoint_prefix
from modelops.tasks import task_handler

CHECKPOINT_AGE_METRIC = "CheckpointAgeSeconds"
STALE_RESERVATION = timedelta(minutes=15)
TRAINING = "Training"  # SageMaker's secondary status while the algorithm runs


def training_since(described: Mapping[str, Any]) -> datetime | None:
    """When a described SageMaker job last entered ``Training``; None if it is not in it."""
    if described.get("SecondaryStatus") != TRAINING:
        return None
    starts = [
        transition["StartTime"]
        for transition in described.get("SecondaryStatusTransitions") or ()
        if transition.get("Status") == TRAINING and transition.get("StartTime")
    ]
    return max(starts) if starts else None


def checkpoint_age(now: datetime, since: datetime, checkpoints: Iterable[datetime]) -> float:
    """Seconds since the newest of the checkpoints' writes and ``since``."""
    return max(0.0, (now - max([since, *checkpoints])).total_seconds())


def checkpoint_ages(now: datetime) -> dict[str, float]:
    """Job id -> checkpoint age (seconds) of every running spot job in ``Training``."""
    jobs = wiring.registry_repository()
    sagemaker = wiring.client("sagemaker")
    s3 = wiring.client("s3")
    bucket = settings().artifact_bucket
    ages: dict[str, float] = {}
    for reservation in wiring.compute_allocator().open_reservations(limit=100):
        job = jobs.get_training_job(reservation.jobId)
        if job is None or job.status is not JobStatus.TRAINING:
            continue
        if not job.computeRequirements.spot:
            continue
        since = training_since(sagemaker.describe_training_job(TrainingJobName=job.trainingJobName))
        if since is None:
            continue
        prefix = checkpoint_prefix(job.trainingJobName)
        written = [
            item["LastModified"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", ())
        ]
        ages[job.jobId] = checkpoint_age(now, since, written)
    return ages


def reconcile(event: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = dict(wiring.training_service().reconcile(STALE_RESERVATION))
    ages = checkpoint_ages(datetime.now(UTC))
    result["checkpointAgeSeconds"] = ages
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
