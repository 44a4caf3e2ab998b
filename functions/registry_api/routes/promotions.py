"""Promotion, approvals, family policies, stage history, approver keys, PII approvals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from modelops import wiring
from modelops.api import JSON, caller, read_responses, write_responses
from modelops.config import settings
from modelops.contracts.promotion import (
    ApproveRequest,
    ApproverResponse,
    DatasetApprovalRequest,
    FamilyPolicyRequest,
    FamilyPolicyResponse,
    ModelPackage,
    PromoteRequest,
    PromotionResponse,
    Provenance,
    RegisterApproverRequest,
    StageHistory,
)
from modelops.domain.entities import ModelStatus
from modelops.domain.promotion import DatasetApproval, Promotion

router = Router()
metrics = Metrics()


def _answer(result: PromotionResponse) -> Response[PromotionResponse]:
    pending = result.promotion is not None and result.promotion.status == "PENDING_APPROVAL"
    if result.change is not None:
        metrics.add_metric(name="StageChanges", unit=MetricUnit.Count, value=1)
    return Response(status_code=202 if pending else 200, content_type=JSON, body=result)


@router.post(
    "/models/<model_id>/promote",
    summary="Move a version up (gated, signed), down, or to deprecated.",
    responses={
        200: {"description": "Moved (and signed when promoted)."},
        202: {"description": "Gates passed; waiting for approvals (high-risk family)."},
        **{k: v for k, v in write_responses().items() if k >= 400},
    },
    tags=["promotion"],
)
def promote(model_id: str, request: PromoteRequest) -> Response[PromotionResponse]:
    return _answer(wiring.promotion_service().promote(model_id, request, caller(router)))


@router.get(
    "/models/<model_id>/promotions/<promotion_id>",
    summary="A promotion: gates, the statement approvers sign, approvals, signature.",
    responses=read_responses(),
    tags=["promotion"],
)
def get_promotion(model_id: str, promotion_id: str) -> Promotion:
    return wiring.promotion_service().promotion(model_id, promotion_id)


@router.get(
    "/models/<model_id>/provenance",
    summary="Signed provenance: promotions with statements and signatures, the OpenSSF "
    "model-signing bundle, and the public keys that verify them offline.",
    responses=read_responses(),
    tags=["promotion"],
)
def provenance(model_id: str) -> Provenance:
    return wiring.promotion_service().provenance(model_id)


@router.get(
    "/models/<model_id>/package",
    summary="For agent runtimes: short-lived download URLs of the model's files, their "
    "digests and the signed provenance to verify them against before loading.",
    responses=read_responses(),
    tags=["promotion"],
)
def package(model_id: str) -> ModelPackage:
    provenance = wiring.promotion_service().provenance(model_id)
    files = wiring.artifact_service().get(provenance.model.artifactId, download=True)
    return ModelPackage(
        provenance=provenance,
        files=list(files.artifact.files),
        downloads=files.downloads or {},
        expiresAt=datetime.now(UTC) + timedelta(seconds=settings().presign_expiry_seconds),
    )


@router.post(
    "/models/<model_id>/promotions/<promotion_id>/approve",
    summary="Approve with an Ed25519 signature over the promotion statement.",
    responses={
        200: {"description": "Quorum reached: promoted and signed."},
        202: {"description": "Approval recorded; more are needed."},
        **{k: v for k, v in write_responses().items() if k >= 400},
    },
    tags=["promotion"],
)
def approve(
    model_id: str, promotion_id: str, request: ApproveRequest
) -> Response[PromotionResponse]:
    service = wiring.promotion_service()
    return _answer(service.approve(model_id, promotion_id, request, caller(router)))


@router.post(
    "/models/families/<family>/policy",
    summary="Set a family's risk tier, approvals needed for prod and metric gates.",
    responses=write_responses(),
    tags=["promotion"],
)
def set_family_policy(family: str, request: FamilyPolicyRequest) -> FamilyPolicyResponse:
    policy = wiring.promotion_service().set_family_policy(family, request, caller(router))
    return FamilyPolicyResponse(policy=policy)


@router.get(
    "/models/families/<family>/policy",
    summary="A family's promotion policy (the defaults when none was set).",
    responses=read_responses(),
    tags=["promotion"],
)
def get_family_policy(family: str) -> FamilyPolicyResponse:
    return FamilyPolicyResponse(policy=wiring.promotion_service().family_policy(family))


@router.get(
    "/models/families/<family>/history",
    summary="Every stage move of a family; with stage and at, which version held it then.",
    responses=read_responses(),
    tags=["promotion"],
)
def history(
    family: str,
    stage: Annotated[ModelStatus | None, Query()] = None,
    at: Annotated[datetime | None, Query()] = None,
) -> StageHistory:
    return wiring.promotion_service().history(family, stage, at)


@router.post(
    "/approvers",
    summary="Register an approver's Ed25519 public key (platform-admin).",
    responses=write_responses(),
    tags=["promotion"],
)
def register_approver(request: RegisterApproverRequest) -> ApproverResponse:
    key = wiring.promotion_service().register_approver(request, caller(router))
    return ApproverResponse(approver=key)


@router.post(
    "/dataset/<dataset_id>/approve",
    summary="Allow a PII dataset's use (approver).",
    responses=write_responses(),
    tags=["datasets"],
)
def approve_dataset(dataset_id: str, request: DatasetApprovalRequest) -> DatasetApproval:
    return wiring.promotion_service().approve_dataset(dataset_id, request, caller(router))
