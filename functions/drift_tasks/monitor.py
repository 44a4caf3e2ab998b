"""Drift monitoring: hourly (EventBridge schedule) over every live deployment, or now for one
model (the drift API invokes it asynchronously). Emits the drift scores as metrics."""

from __future__ import annotations

from typing import Any

from modelops import wiring
from modelops.tasks import task_handler


def _monitor(event: dict[str, Any]) -> dict[str, Any]:
    findings, metrics = wiring.drift_service().monitor(
        event.get("modelId"),
        int(event["hours"]) if event.get("hours") else None,
        str(event.get("correlationId") or event.get("id") or ""),
    )
    return {
        "findings": [
            {"findingId": f.findingId, "modelId": f.modelId, "status": f.status} for f in findings
        ],
        "metrics": metrics,
    }


handler = task_handler("drift-monitor", _monitor)
