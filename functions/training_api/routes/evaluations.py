"""POST /eval/run, GET /eval/{evaluationId}, GET /eval?modelId=, and POST /train/retrain."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field

from modelops import wiring
from modelops.api import JSON, accepted_responses, caller, correlation_id, read_responses
from modelops.domain.evaluation import EvaluationList, EvaluationRecord, RunEvaluationRequest
from modelops.domain.training import TrainingJob

router = Router()
metrics = Metrics()


class RetrainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    proposalId: str = Field(pattern=r"^rtp-[0-9a-f]{24}$")
    modelVersion: str | None = Field(
        default=None, description="Default: the proposal's (the next free patch version)."
    )


@router.post(
    "/eval/run",
    summary="Evaluate a model version on registered test sets (a job; Idempotency-Key dedupes).",
    responses=accepted_responses("Accepted: the evaluation job's workflow has started."),
    tags=["evaluation"],
)
def run(request: RunEvaluationRequest) -> Response[EvaluationRecord]:
    record = wiring.evaluation_service().run(request, caller(router), correlation_id(router))
    metrics.add_metric(name="EvaluationsSubmitted", unit=MetricUnit.Count, value=1)
    return Response(status_code=202, content_type=JSON, body=record)


@router.get(
    "/eval",
    summary="A model version's evaluations, newest first.",
    responses=read_responses(),
    tags=["evaluation"],
)
def list_evaluations(
    modelId: Annotated[str, Query(pattern=r"^mdl-[0-9a-f]{24}$")],  # noqa: N803
) -> EvaluationList:
    return wiring.evaluation_service().of_model(modelId)


@router.get(
    "/eval/<evaluation_id>",
    summary="An evaluation: status, metrics, fairness, safety, and its content digest.",
    responses=read_responses(),
    tags=["evaluation"],
)
def get_evaluation(evaluation_id: str) -> EvaluationRecord:
    return wiring.evaluation_service().get(evaluation_id)


@router.post(
    "/train/retrain",
    summary="Submit an approved retrain proposal as a training job (retries: the same job).",
    responses=accepted_responses("Accepted: the retraining job's workflow has started."),
    tags=["training"],
)
def retrain(request: RetrainRequest) -> Response[TrainingJob]:
    job = wiring.retraining().submit(
        request.proposalId, request.modelVersion, caller(router), correlation_id(router)
    )
    metrics.add_metric(name="RetrainsSubmitted", unit=MetricUnit.Count, value=1)
    return Response(status_code=202, content_type=JSON, body=job)
