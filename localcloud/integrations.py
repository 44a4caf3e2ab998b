"""The ILLUVRSE services our events go to, stood up on this machine.

In AWS each integration (``modelops.contracts.events.INTEGRATIONS``: Kernel, the Reasoning
Graph, the Eval Engine) owns an EventBridge bus in its own account, and a rule on our bus
forwards its detail types there (``stacks/constructs/integrations.py``). Here each gets a bus
of its own and an inbox queue behind a catch-all rule on it, so a test or the demo can read
exactly what that service received (moto forwards bus-to-bus targets synchronously). A tap
(a catch-all rule on our bus) keeps every event the platform published, for the contract
check: each must validate against its JSON Schema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from modelops import platform
from modelops.contracts.events import INTEGRATIONS, Integration

TAP = "modelops-event-tap"
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "events"


def schema_file(detail_type: str) -> Path:
    return SCHEMAS / f"{detail_type.lower().replace(' ', '-')}.json"


@cache
def _validator(detail_type: str) -> Draft202012Validator:
    path = schema_file(detail_type)
    if not path.is_file():
        raise AssertionError(f"{detail_type!r} has no schema ({path.name}): no contract")
    return Draft202012Validator(json.loads(path.read_text()))


def validate_event(detail_type: str, detail: Mapping[str, Any], source: str = "") -> None:
    """The contract check: ``detail`` against ``schemas/events/<detail-type>.json`` (the
    generated JSON Schema consumers read), with jsonschema, not pydantic; AssertionError
    naming every way it breaks the schema."""
    if source and source != platform.EVENT_SOURCE:
        raise AssertionError(f"{detail_type}: source {source!r}, not {platform.EVENT_SOURCE}")
    errors = sorted(_validator(detail_type).iter_errors(detail), key=lambda e: list(e.path))
    if errors:
        problems = "; ".join(f"{'/'.join(map(str, e.path)) or '.'}: {e.message}" for e in errors)
        raise AssertionError(f"{detail_type} breaks its schema: {problems}")


def _inbox(sqs: Any, events: Any, bus: str, name: str) -> str:
    """A queue receiving every event of ``bus`` (source ours), by a catch-all rule."""
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=f"{name}-all",
        EventBusName=bus,
        EventPattern=json.dumps({"source": [platform.EVENT_SOURCE]}),
        State="ENABLED",
    )
    events.put_targets(Rule=f"{name}-all", EventBusName=bus, Targets=[{"Id": name, "Arn": arn}])
    return url


class Integrations:
    """The integrations' buses and inboxes, and the platform's event tap."""

    def __init__(self, events: Any, sqs: Any, platform_bus: str) -> None:
        self._sqs = sqs
        self.inboxes: dict[str, str] = {}
        for integration in INTEGRATIONS:
            self.inboxes[integration.name] = self._stand_up(events, platform_bus, integration)
        self.tap = _inbox(sqs, events, platform_bus, TAP)

    def _stand_up(self, events: Any, platform_bus: str, integration: Integration) -> str:
        bus_arn = events.create_event_bus(Name=f"{integration.name}-bus")["EventBusArn"]
        rule = f"modelops-to-{integration.name}"
        events.put_rule(
            Name=rule,
            EventBusName=platform_bus,
            EventPattern=json.dumps(
                {"source": [platform.EVENT_SOURCE], "detail-type": list(integration.detail_types)}
            ),
            Description=integration.description,
            State="ENABLED",
        )
        events.put_targets(
            Rule=rule,
            EventBusName=platform_bus,
            Targets=[{"Id": integration.name, "Arn": bus_arn}],
        )
        return _inbox(self._sqs, events, f"{integration.name}-bus", f"{integration.name}-inbox")

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Every event waiting in a queue (removed from it), oldest first as SQS gives them."""
        found: list[dict[str, Any]] = []
        while True:
            messages = self._sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def received(self, integration: str) -> list[dict[str, Any]]:
        """What ``integration`` received since the last call."""
        return self.drain(self.inboxes[integration])

    def published(self) -> list[dict[str, Any]]:
        """Every event the platform published since the last call."""
        return self.drain(self.tap)
