"""``EventPublisher`` over EventBridge (boto3 PutEvents on the platform's bus)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modelops import platform

SOURCE = platform.EVENT_SOURCE


class EventBridgePublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._events = client
        self._bus = bus_name

    def publish(self, detail_type: str, detail: Mapping[str, Any]) -> None:
        response = self._events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, separators=(",", ":")),
                    "EventBusName": self._bus,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            entry = response["Entries"][0]
            raise RuntimeError(
                f"EventBridge refused the event: {entry.get('ErrorCode')}: "
                f"{entry.get('ErrorMessage')}"
            )
