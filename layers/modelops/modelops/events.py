"""The one way events leave the platform: ``Events.publish`` takes an event contract
(``modelops.contracts.events``), never a free-form dict, and hands its JSON to the
``EventPublisher`` port (EventBridge PutEvents; a recorder in tests)."""

from __future__ import annotations

from modelops.contracts.events import EventDetail
from modelops.ports import EventPublisher


class Events:
    def __init__(self, port: EventPublisher) -> None:
        self._port = port

    def publish(self, event: EventDetail) -> None:
        self._port.publish(type(event).DETAIL_TYPE, event.model_dump(mode="json"))
