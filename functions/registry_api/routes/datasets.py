"""POST /dataset/register, GET /dataset, GET /dataset/{id}, its lineage, consumers and
effective restrictions, and the sanitization of raw PII datasets (POST
/dataset/{id}/sanitize, GET /dataset/{id}/sanitizations/{runId})."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from modelops import wiring
from modelops.api import (
    JSON,
    accepted_responses,
    caller,
    correlation_id,
    read_responses,
    write_responses,
)
from modelops.contracts.registry import (
    Consumers,
    DatasetList,
    DatasetResponse,
    LineageGraph,
    RegisterDatasetRequest,
)
from modelops.domain.entities import Dataset
from modelops.domain.governance import SanitizationRun, SanitizeRequest
from modelops.domain.restrictions import EffectiveRestrictions
from modelops.errors import NotFound

router = Router()
metrics = Metrics()


@router.post(
    "/dataset/register",
    summary="Register a dataset version with lineage, licence and PII flags (idempotent).",
    responses=write_responses(),
    tags=["datasets"],
)
def register_dataset(request: RegisterDatasetRequest) -> Response[DatasetResponse]:
    result = wiring.registry_service().register_dataset(request, caller(router))
    if result.created:
        metrics.add_metric(name="DatasetsRegistered", unit=MetricUnit.Count, value=1)
    return Response(status_code=201 if result.created else 200, content_type=JSON, body=result)


@router.get(
    "/dataset", summary="List dataset versions.", responses=read_responses(), tags=["datasets"]
)
def list_datasets(
    name: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    nextToken: Annotated[str | None, Query(max_length=2048)] = None,  # noqa: N803
) -> DatasetList:
    return wiring.registry_service().list_datasets(name, limit, nextToken)


@router.get(
    "/dataset/<dataset_id>",
    summary="One dataset version.",
    responses=read_responses(),
    tags=["datasets"],
)
def get_dataset(dataset_id: str) -> Dataset:
    return wiring.registry_service().get_dataset(dataset_id)


@router.get(
    "/dataset/<dataset_id>/lineage",
    summary="All ancestors of a dataset (sources and upstream datasets).",
    responses=read_responses(),
    tags=["lineage"],
)
def dataset_lineage(dataset_id: str) -> LineageGraph:
    wiring.registry_service().get_dataset(dataset_id)
    return wiring.lineage_service().ancestors(dataset_id)


@router.get(
    "/dataset/<dataset_id>/consumers",
    summary="Datasets and models derived directly from this dataset (impact analysis).",
    responses=read_responses(),
    tags=["lineage"],
)
def dataset_consumers(dataset_id: str) -> Consumers:
    wiring.registry_service().get_dataset(dataset_id)
    return wiring.lineage_service().consumers(dataset_id)


@router.get(
    "/dataset/<dataset_id>/restrictions",
    summary="What the dataset's lineage obliges it to: licences, commercial use, purposes, "
    "regions, retention, PII (the union over its ancestors).",
    responses=read_responses(),
    tags=["governance"],
)
def dataset_restrictions(dataset_id: str) -> EffectiveRestrictions:
    wiring.registry_service().get_dataset(dataset_id)
    return wiring.governance().restrictions(dataset_id)


@router.post(
    "/dataset/<dataset_id>/sanitize",
    summary="Sanitize a raw PII dataset in escrow into a registered derivative (202; "
    "idempotent per dataset, name and configuration).",
    responses=accepted_responses("Accepted: the sanitizer runs; poll the run for its outcome."),
    tags=["governance"],
)
def sanitize_dataset(dataset_id: str, request: SanitizeRequest) -> Response[SanitizationRun]:
    run, created = wiring.sanitization_service().request(
        dataset_id, request, caller(router), correlation_id(router)
    )
    if created:
        metrics.add_metric(name="SanitizationsRequested", unit=MetricUnit.Count, value=1)
    return Response(status_code=202 if created else 200, content_type=JSON, body=run)


@router.get(
    "/dataset/<dataset_id>/sanitizations/<run_id>",
    summary="A sanitization run: status, uniqueness report, the derivative dataset.",
    responses=read_responses(),
    tags=["governance"],
)
def sanitization(dataset_id: str, run_id: str) -> SanitizationRun:
    run = wiring.sanitization_service().get(run_id)
    if run.datasetId != dataset_id:
        raise NotFound(f"sanitization {run_id} is not of dataset {dataset_id}")
    return run
