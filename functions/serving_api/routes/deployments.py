"""POST /serve/deploy, GET /serve/{deployId}, POST .../scale and .../rollback."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import BaseModel, ConfigDict, Field

from modelops import wiring
from modelops.api import JSON, accepted_responses, caller, correlation_id, read_responses
from modelops.domain.serving import DeploymentRecord, DeployRequest

router = Router()
metrics = Metrics()


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    toDeployId: str | None = Field(
        default=None,
        pattern=r"^dep-[0-9a-f]{24}$",
        description="An earlier deployment of the same endpoint; default: the one replaced.",
    )


class ScaleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    weights: dict[str, float] = Field(
        min_length=1, description="Variant name -> weight (relative; 0 takes it out)."
    )


@router.post(
    "/serve/deploy",
    summary="Deploy a verified model (canary next to the live version; Idempotency-Key dedupes).",
    responses=accepted_responses("Accepted: the deployment's workflow has started."),
    tags=["serving"],
)
def deploy(request: DeployRequest) -> Response[DeploymentRecord]:
    record = wiring.deployment_service().deploy(request, caller(router), correlation_id(router))
    metrics.add_metric(name="DeploymentsRequested", unit=MetricUnit.Count, value=1)
    return Response(status_code=202, content_type=JSON, body=record)


@router.get(
    "/serve/<deploy_id>",
    summary="A deployment: status, variants and weights, canary decision, provenance.",
    responses=read_responses(),
    tags=["serving"],
)
def get_deployment(deploy_id: str) -> DeploymentRecord:
    return wiring.deployment_service().get(deploy_id)


@router.post(
    "/serve/<deploy_id>/scale",
    summary="Set the traffic weights of a deployment's variants (A/B).",
    responses=read_responses(),
    tags=["serving"],
)
def scale(deploy_id: str, request: ScaleRequest) -> DeploymentRecord:
    return wiring.deployment_service().scale(deploy_id, request.weights, caller(router))


@router.post(
    "/serve/<deploy_id>/rollback",
    summary="All traffic to an earlier version of the endpoint (a new, verified deployment).",
    responses=accepted_responses("Accepted: the rollback deployment has started."),
    tags=["serving"],
)
def rollback(deploy_id: str, request: RollbackRequest) -> Response[DeploymentRecord]:
    record = wiring.deployment_service().rollback_by_hand(
        deploy_id, caller(router), correlation_id(router), request.toDeployId
    )
    return Response(status_code=202, content_type=JSON, body=record)
