"""POST /models/register, GET /models, GET /models/{id}, lineage and OpenLineage export."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from modelops import wiring
from modelops.api import JSON, caller, read_responses, write_responses
from modelops.contracts.registry import (
    Consumers,
    LineageGraph,
    ModelDetail,
    ModelList,
    ModelResponse,
    OpenLineageExport,
    RegisterModelRequest,
)
from modelops.domain.entities import ModelStatus

router = Router()
metrics = Metrics()


@router.post(
    "/models/register",
    summary="Register a model version with lineage and metrics (idempotent; versions immutable).",
    responses=write_responses(),
    tags=["models"],
)
def register_model(request: RegisterModelRequest) -> Response[ModelResponse]:
    result = wiring.registry_service().register_model(request, caller(router))
    if result.created:
        metrics.add_metric(name="ModelsRegistered", unit=MetricUnit.Count, value=1)
    return Response(status_code=201 if result.created else 200, content_type=JSON, body=result)


@router.get(
    "/models",
    summary="List and filter model versions.",
    responses=read_responses(),
    tags=["models"],
)
def list_models(
    family: Annotated[str | None, Query(max_length=128)] = None,
    familyPrefix: Annotated[str | None, Query(max_length=128)] = None,  # noqa: N803
    status: Annotated[ModelStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    nextToken: Annotated[str | None, Query(max_length=2048)] = None,  # noqa: N803
) -> ModelList:
    return wiring.registry_service().list_models(family, status, limit, nextToken, familyPrefix)


@router.get(
    "/models/<model_id>",
    summary="A model version with its full lineage graph and effective restrictions.",
    responses=read_responses(),
    tags=["models"],
)
def get_model(model_id: str) -> ModelDetail:
    model = wiring.registry_service().get_model(model_id)
    return ModelDetail(
        model=model,
        lineage=wiring.lineage_service().ancestors(model_id),
        promotions=wiring.promotion_service().promotions(model_id),
        effectiveRestrictions=wiring.governance().restrictions(model_id),
        watermark=wiring.watermark_service().get(model_id),
    )


@router.get(
    "/models/<model_id>/lineage",
    summary="All ancestors of a model: datasets, parent models and their sources.",
    responses=read_responses(),
    tags=["lineage"],
)
def model_lineage(model_id: str) -> LineageGraph:
    wiring.registry_service().get_model(model_id)
    return wiring.lineage_service().ancestors(model_id)


@router.get(
    "/models/<model_id>/lineage/openlineage",
    summary="The model's lineage as OpenLineage RunEvents with digest, licence and PII facets.",
    responses=read_responses(),
    tags=["lineage"],
)
def model_openlineage(model_id: str) -> OpenLineageExport:
    wiring.registry_service().get_model(model_id)
    return wiring.lineage_service().openlineage(model_id)


@router.get(
    "/models/<model_id>/consumers",
    summary="Models derived directly from this one (fine-tunes, distillations).",
    responses=read_responses(),
    tags=["lineage"],
)
def model_consumers(model_id: str) -> Consumers:
    wiring.registry_service().get_model(model_id)
    return wiring.lineage_service().consumers(model_id)
