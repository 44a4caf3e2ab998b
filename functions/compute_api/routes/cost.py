"""GET /compute/pools, GET /cost/report, GET /cost/models/{modelId}."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.openapi.types import (
    OpenAPIResponse,
    OpenAPIResponseContentSchema,
)

from modelops import wiring
from modelops.api import read_responses
from modelops.contracts.compute import CostReport, ModelCost, PoolsView
from modelops.domain.pools import GroupBy
from modelops.services.compute import report_csv

router = Router()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@router.get(
    "/compute/pools",
    summary="Compute pools: instance types, quotas, rates, and this month's usage per team.",
    responses=read_responses(),
    tags=["compute"],
)
def pools() -> PoolsView:
    return wiring.compute_service().pools()


def _report_responses() -> dict[int, OpenAPIResponse]:
    """JSON by default; ``format=csv`` answers text/csv (one row per group, then the total)."""
    responses = read_responses()
    csv_content: OpenAPIResponseContentSchema = {"schema": {"type": "string"}}
    responses[200] = {
        "description": "OK: the report as JSON, or as CSV with format=csv.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CostReport"}},
            "text/csv": csv_content,
        },
    }
    return responses


@router.get(
    "/cost/report",
    summary="Chargeback: GPU-hours, instance-hours and USD grouped by model, job, team or pool.",
    responses=_report_responses(),
    tags=["compute"],
)
def report(
    groupBy: Annotated[GroupBy, Query()] = "model",  # noqa: N803
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response[CostReport | str]:
    result = wiring.compute_service().report(
        groupBy, _utc(start) or EPOCH, _utc(end) or datetime.now(UTC)
    )
    if format == "csv":
        return Response(status_code=200, content_type="text/csv", body=report_csv(result))
    return Response(status_code=200, content_type="application/json", body=result)


@router.get(
    "/cost/models/<model_id>",
    summary="What producing a model version cost: its training jobs' usage records.",
    responses=read_responses(),
    tags=["compute"],
)
def model_cost(model_id: str) -> ModelCost:
    return wiring.compute_service().model_cost(model_id)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
