"""The drift baseline of a model version: on request (the drift API invokes this function
asynchronously) and when a training job registers a model (EventBridge -> SQS)."""

from __future__ import annotations

from typing import Any

from modelops import wiring
from modelops.consumers import queue_handler
from modelops.services.drift import BaselineRequest


def _requested(event: dict[str, Any]) -> dict[str, Any]:
    baseline = wiring.drift_service().compute_baseline(
        str(event["modelId"]), BaselineRequest.model_validate(event.get("request") or {})
    )
    return {"modelId": baseline.modelId, "status": baseline.status}


def _trained(message: dict[str, Any]) -> None:
    detail = message["detail"]
    if detail.get("modelId"):
        wiring.drift_service().baseline_for_trained(
            str(detail["modelId"]), str(detail.get("correlationId") or "")
        )


handler = queue_handler("DriftBaseline", _trained, direct=_requested)
