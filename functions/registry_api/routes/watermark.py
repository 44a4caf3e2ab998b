"""POST /models/{id}/watermark/verify: which watermarked version a suspect model came from."""

from __future__ import annotations

from aws_lambda_powertools.event_handler.api_gateway import Router

from modelops import wiring
from modelops.api import caller, read_responses
from modelops.contracts.watermark import VerifyWatermarkRequest, WatermarkVerification

router = Router()


@router.post(
    "/models/<model_id>/watermark/verify",
    summary="Compare a suspect artifact with every watermarked version of the model's family.",
    responses=read_responses(),
    tags=["models"],
)
def verify_watermark(model_id: str, request: VerifyWatermarkRequest) -> WatermarkVerification:
    return wiring.watermark_service().verify(model_id, request, caller(router))
