"""POST /train/jobs, GET /train/jobs[/{jobId}[/metrics]], POST .../cancel and .../reproduce."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from modelops import wiring
from modelops.api import JSON, accepted_responses, caller, correlation_id, read_responses
from modelops.contracts.training import SubmitTrainingJobRequest, TrainingJob, TrainingJobList
from modelops.services.training import TrainingMetricHistory

router = Router()
metrics = Metrics()


@router.post(
    "/train/jobs",
    summary="Submit a training job (checked before anything starts; Idempotency-Key dedupes).",
    responses=accepted_responses("Accepted: the job's workflow has started."),
    tags=["training"],
)
def submit(request: SubmitTrainingJobRequest) -> Response[TrainingJob]:
    job = wiring.training_service().submit(request, caller(router), correlation_id(router))
    metrics.add_metric(name="TrainingJobsSubmitted", unit=MetricUnit.Count, value=1)
    return Response(status_code=202, content_type=JSON, body=job)


@router.get(
    "/train/jobs",
    summary="List training jobs, newest family first.",
    responses=read_responses(),
    tags=["training"],
)
def list_jobs(
    family: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    nextToken: Annotated[str | None, Query(max_length=2048)] = None,  # noqa: N803
) -> TrainingJobList:
    return wiring.training_service().list_jobs(family, limit, nextToken)


@router.get(
    "/train/jobs/<job_id>",
    summary="A training job: status, metrics, artifacts, usage and reproducibility record.",
    responses=read_responses(),
    tags=["training"],
)
def get_job(job_id: str) -> TrainingJob:
    return wiring.training_service().get(job_id)


@router.get(
    "/train/jobs/<job_id>/metrics",
    summary="A job's metrics per epoch, parsed from its log lines by its MetricDefinitions.",
    responses=read_responses(),
    tags=["training"],
)
def get_metrics(job_id: str) -> TrainingMetricHistory:
    return wiring.training_service().metric_history(job_id)


@router.post(
    "/train/jobs/<job_id>/cancel",
    summary="Cancel a job: SageMaker stops it; it ends CANCELLED with its checkpoints kept.",
    responses=accepted_responses("Accepted: the job is being cancelled."),
    tags=["training"],
)
def cancel(job_id: str) -> Response[TrainingJob]:
    job = wiring.training_service().cancel(job_id, caller(router))
    return Response(status_code=202, content_type=JSON, body=job)


@router.post(
    "/train/jobs/<job_id>/reproduce",
    summary="Re-run a completed job from its recorded inputs; the new job attests the result.",
    responses=accepted_responses("Accepted: the reproduction job has started."),
    tags=["training"],
)
def reproduce(job_id: str) -> Response[TrainingJob]:
    job = wiring.training_service().reproduce(job_id, caller(router), correlation_id(router))
    metrics.add_metric(name="TrainingReproductionsSubmitted", unit=MetricUnit.Count, value=1)
    return Response(status_code=202, content_type=JSON, body=job)
