"""Drift alerts from EventBridge (via SQS): the monitor's ``Drift Detected`` events and the
drift CloudWatch alarm's state changes. Each becomes an alert with its remediation."""

from __future__ import annotations

from typing import Any

from modelops import platform, wiring
from modelops.consumers import queue_handler
from modelops.services.drift import AlertRequest


def _on_event(message: dict[str, Any]) -> None:
    detail = message.get("detail") or {}
    service = wiring.drift_service()
    if message.get("detail-type") == platform.DRIFT_DETECTED:
        service.alert(
            AlertRequest(modelId=detail["modelId"], findingId=detail["findingId"]),
            "drift-monitor",
            "monitor",
            str(detail.get("correlationId") or ""),
        )
    else:  # the drift alarm (its pattern is the only other rule on this queue)
        service.alert_from_alarm(str(message.get("id") or ""))


handler = queue_handler("DriftAlerts", _on_event)
