"""/drift: GET /drift/{modelId}, POST .../baseline, .../check, .../labels, POST /drift/alert,
GET /drift/findings/{id}, GET/POST /drift/proposals/{id}[/approve],
POST /drift/{modelId}/quarantine/release."""

from __future__ import annotations

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
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
from modelops.domain.monitoring import (
    DriftAlert,
    DriftBaseline,
    DriftFinding,
    Quarantine,
    RetrainProposal,
)
from modelops.services.drift import (
    AlertRequest,
    BaselineRequest,
    CheckAccepted,
    CheckRequest,
    DriftView,
    LabelsAccepted,
    LabelsRequest,
)

router = Router()
metrics = Metrics()


@router.get(
    "/drift/<model_id>",
    summary="A model version's drift: baseline, latest findings, alerts, proposals, quarantine.",
    responses=read_responses(),
    tags=["drift"],
)
def view(model_id: str) -> DriftView:
    return wiring.drift_service().view(model_id)


@router.post(
    "/drift/<model_id>/baseline",
    summary="(Re)compute the baseline from the training data, or a named dataset.",
    responses=accepted_responses("Accepted: the baseline is being computed."),
    tags=["drift"],
)
def baseline(model_id: str, request: BaselineRequest) -> Response[DriftBaseline]:
    pending = wiring.drift_service().request_baseline(
        model_id, request, caller(router), correlation_id(router)
    )
    return Response(status_code=202, content_type=JSON, body=pending)


@router.post(
    "/drift/<model_id>/check",
    summary="Check the data capture of the last N hours against the baseline now.",
    responses=accepted_responses("Accepted: the check runs; GET /drift/{modelId} shows it."),
    tags=["drift"],
)
def check(model_id: str, request: CheckRequest) -> Response[CheckAccepted]:
    accepted = wiring.drift_service().request_check(
        model_id, request, caller(router), correlation_id(router)
    )
    return Response(status_code=202, content_type=JSON, body=accepted)


@router.post(
    "/drift/<model_id>/labels",
    summary="Ground truth for captured inferences (by inferenceId): performance drift.",
    responses=accepted_responses("Accepted: the labels are stored."),
    tags=["drift"],
)
def labels(model_id: str, request: LabelsRequest) -> Response[LabelsAccepted]:
    accepted = wiring.drift_service().post_labels(model_id, request, caller(router))
    metrics.add_metric(name="GroundTruthLabels", unit=MetricUnit.Count, value=accepted.accepted)
    return Response(status_code=202, content_type=JSON, body=accepted)


@router.post(
    "/drift/alert",
    summary="Raise a drift alert and its remediation (retrain proposal, quarantine).",
    responses=write_responses(),
    tags=["drift"],
)
def alert(request: AlertRequest) -> Response[DriftAlert]:
    raised = wiring.drift_service().raise_alert(request, caller(router), correlation_id(router))
    return Response(status_code=201, content_type=JSON, body=raised)


@router.get(
    "/drift/findings/<finding_id>",
    summary="A finding with every statistic and its evidence (documents and digests).",
    responses=read_responses(),
    tags=["drift"],
)
def finding(finding_id: str) -> DriftFinding:
    return wiring.drift_service().finding(finding_id)


@router.get(
    "/drift/proposals/<proposal_id>",
    summary="A signed retrain proposal.",
    responses=read_responses(),
    tags=["drift"],
)
def proposal(proposal_id: str) -> RetrainProposal:
    return wiring.drift_service().proposal(proposal_id)


@router.post(
    "/drift/proposals/<proposal_id>/approve",
    summary="Approve a retrain proposal (approver); then POST /train/retrain submits it.",
    responses=read_responses(),
    tags=["drift"],
)
def approve(proposal_id: str) -> Response[RetrainProposal]:
    approved = wiring.drift_service().approve_proposal(
        proposal_id, caller(router), correlation_id(router)
    )
    return Response(status_code=200, content_type=JSON, body=approved)


@router.post(
    "/drift/<model_id>/quarantine/release",
    summary="Release a quarantined version (approver sign-off).",
    responses=read_responses(),
    tags=["drift"],
)
def release(model_id: str) -> Response[Quarantine]:
    released = wiring.drift_service().release_quarantine(
        model_id, caller(router), correlation_id(router)
    )
    return Response(status_code=200, content_type=JSON, body=released)
