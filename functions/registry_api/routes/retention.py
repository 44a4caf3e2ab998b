"""POST /retention/run; GET /retention/tombstones[/{id}]; GET, PUT, DELETE
/legal-holds[/{kind}/{targetId}]."""

from __future__ import annotations

from typing import Annotated, cast

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from modelops import wiring
from modelops.api import JSON, caller, read_responses, write_responses
from modelops.contracts.retention import (
    LegalHoldList,
    LegalHoldRequest,
    LegalHoldResponse,
    RetentionRunRequest,
    RetentionRunResponse,
    TombstoneList,
    TombstoneResponse,
)
from modelops.domain.retention import HOLD_KINDS, HoldKind

router = Router()
metrics = Metrics()

Kind = Annotated[str, Path(pattern=f"^({'|'.join(HOLD_KINDS)})$")]


@router.post(
    "/retention/run",
    summary="Expire what is past its retention period now, leaving signed tombstones "
    "(platform-admin; asOf moves the clock the periods are judged by).",
    responses=read_responses(),
    tags=["retention"],
)
def run(request: RetentionRunRequest) -> RetentionRunResponse:
    report = wiring.retention_service().run(request, caller(router))
    metrics.add_metric(name="RetentionExpired", unit=MetricUnit.Count, value=report.expired)
    return report


@router.get(
    "/retention/tombstones",
    summary="Tombstones of expired objects, newest first.",
    responses=read_responses(),
    tags=["retention"],
)
def tombstones(limit: Annotated[int, Query(ge=1, le=100)] = 50) -> TombstoneList:
    return TombstoneList(tombstones=wiring.retention_service().tombstones(limit))


@router.get(
    "/retention/tombstones/<tombstone_id>",
    summary="A tombstone with its proof: ledger record, signed checkpoint, Merkle audit path.",
    responses=read_responses(),
    tags=["retention"],
)
def tombstone(tombstone_id: str) -> TombstoneResponse:
    return wiring.retention_service().tombstone(tombstone_id)


@router.get(
    "/legal-holds",
    summary="Legal holds, newest first.",
    responses=read_responses(),
    tags=["retention"],
)
def holds(limit: Annotated[int, Query(ge=1, le=100)] = 100) -> LegalHoldList:
    return LegalHoldList(holds=wiring.retention_service().holds(limit))


@router.get(
    "/legal-holds/<kind>/<target_id>",
    summary="The legal hold on an artifact, dataset or training job.",
    responses=read_responses(),
    tags=["retention"],
)
def hold(kind: Kind, target_id: str) -> LegalHoldResponse:
    return LegalHoldResponse(hold=wiring.retention_service().hold(cast(HoldKind, kind), target_id))


@router.put(
    "/legal-holds/<kind>/<target_id>",
    summary="Place a legal hold: retention never expires what it names (approver or "
    "platform-admin; a reason is required).",
    responses=write_responses(),
    tags=["retention"],
)
def place_hold(kind: Kind, target_id: str, request: LegalHoldRequest) -> LegalHoldResponse:
    placed = wiring.retention_service().place_hold(
        cast(HoldKind, kind), target_id, request, caller(router)
    )
    return LegalHoldResponse(hold=placed)


@router.delete(
    "/legal-holds/<kind>/<target_id>",
    summary="Release a legal hold (approver or platform-admin).",
    responses={
        **{code: text for code, text in read_responses().items() if code != 200},
        204: {"description": "Released."},
    },
    tags=["retention"],
)
def release_hold(kind: Kind, target_id: str) -> Response[str]:
    wiring.retention_service().release_hold(cast(HoldKind, kind), target_id, caller(router))
    return Response(status_code=204, content_type=JSON, body="")
