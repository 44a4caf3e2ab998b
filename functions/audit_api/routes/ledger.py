"""GET /audit/verify, /audit/export, /audit/keys, /audit/streams; POST /audit/checkpoint."""

from __future__ import annotations

import base64
from typing import Annotated

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.metrics import MetricUnit

from modelops import wiring
from modelops.api import JSON, caller, read_responses, write_responses
from modelops.contracts.audit import (
    MAX_EXPORT_PAGE,
    CheckpointResponse,
    ExportResponse,
    PublicKey,
    PublicKeys,
    Streams,
    VerifyResponse,
)
from modelops.domain.ledger import SIGNING_ALGORITHM, STREAM_PATTERN
from modelops.domain.signing import fingerprint, public_key_pem

router = Router()
metrics = Metrics()

StreamName = Annotated[str, Query(pattern=STREAM_PATTERN)]


@router.get(
    "/audit/verify",
    summary="Recompute chains, Merkle roots and signatures; report the first bad record.",
    responses=read_responses(),
    tags=["audit"],
)
def verify(stream: Annotated[str | None, Query(pattern=STREAM_PATTERN)] = None) -> VerifyResponse:
    service = wiring.audit_service()
    report = service.verify(stream)
    metrics.add_metric(
        name="LedgerRecordsVerified", unit=MetricUnit.Count, value=report.recordsChecked
    )
    if not report.ok:
        metrics.add_metric(name="LedgerVerificationFailures", unit=MetricUnit.Count, value=1)
    return VerifyResponse(report=report, keyIds=sorted(service.public_keys()))


@router.get(
    "/audit/export",
    summary="A page of a stream's records (export lines) and the checkpoints covering them.",
    responses=read_responses(),
    tags=["audit"],
)
def export(
    stream: StreamName,
    fromSeq: Annotated[int, Query(ge=1)] = 1,  # noqa: N803
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT_PAGE)] = 500,
) -> ExportResponse:
    page = wiring.audit_service().export(stream, fromSeq, limit)
    return ExportResponse(
        stream=stream,
        fromSeq=fromSeq,
        records=[record.to_line() for record in page.records],
        checkpoints=page.checkpoints,
        nextFromSeq=page.next_from_seq,
    )


@router.get(
    "/audit/keys",
    summary="Public keys that sign checkpoints: all an offline verifier needs.",
    responses=read_responses(),
    tags=["audit"],
)
def keys() -> PublicKeys:
    return PublicKeys(
        keys=[
            PublicKey(
                keyId=key_id,
                algorithm=SIGNING_ALGORITHM,
                publicKeyDer=base64.b64encode(der).decode(),
                publicKeyPem=public_key_pem(der),
                fingerprint=fingerprint(der),
            )
            for key_id, der in sorted(wiring.audit_service().public_keys().items())
        ]
    )


@router.get(
    "/audit/streams",
    summary="The ledger's streams.",
    responses=read_responses(),
    tags=["audit"],
)
def streams() -> Streams:
    return Streams(streams=wiring.audit_service().streams())


@router.post(
    "/audit/checkpoint",
    summary="Sign a checkpoint over a stream's uncheckpointed records now (platform-admin).",
    responses=write_responses(),
    tags=["audit"],
)
def checkpoint(stream: StreamName) -> Response[CheckpointResponse]:
    made = wiring.audit_service().force_checkpoint(stream, caller(router))
    body = CheckpointResponse(stream=stream, created=made is not None, checkpoint=made)
    return Response(status_code=201 if made else 200, content_type=JSON, body=body)
