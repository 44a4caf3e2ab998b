"""POST /artifact/upload, POST /artifact/upload/{uploadId}/complete, GET /artifact/{id}."""

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
    ArtifactResponse,
    CompleteUploadRequest,
    StartUploadRequest,
    StartUploadResponse,
)

router = Router()
metrics = Metrics()


@router.post(
    "/artifact/upload",
    summary="Start an upload: presigned URLs per file (multipart for large files).",
    responses=write_responses(),
    tags=["artifacts"],
)
def start_upload(request: StartUploadRequest) -> Response[StartUploadResponse]:
    started = wiring.artifact_service().start_upload(request, caller(router))
    return Response(status_code=201, content_type=JSON, body=started)


@router.post(
    "/artifact/upload/<upload_id>/complete",
    summary="Verify every file's SHA-256 server-side and register the immutable artifact.",
    responses=write_responses(),
    tags=["artifacts"],
)
def complete_upload(upload_id: str, request: CompleteUploadRequest) -> Response[ArtifactResponse]:
    artifact = wiring.artifact_service().complete_upload(upload_id, request, caller(router))
    metrics.add_metric(
        name="ArtifactBytesVerified", unit=MetricUnit.Bytes, value=artifact.totalSize
    )
    return Response(status_code=201, content_type=JSON, body=ArtifactResponse(artifact=artifact))


@router.get(
    "/artifact/<artifact_id>",
    summary="An artifact's manifest and digests; presigned download URLs on request (410 "
    "GONE with the tombstone id once retention expired its files).",
    responses={
        **read_responses(),
        410: {
            "description": "Expired by retention: the error's details name the tombstone.",
            "content": {JSON: {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
        },
    },
    tags=["artifacts"],
)
def get_artifact(artifact_id: str, download: Annotated[bool, Query()] = False) -> ArtifactResponse:
    return wiring.artifact_service().get(artifact_id, download)
