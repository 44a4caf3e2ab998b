"""``AsyncInvoker`` over Lambda: ``Invoke`` with ``InvocationType=Event`` (Lambda queues the
event, retries it twice on error, and answers 202 at once)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class LambdaInvoker:
    def __init__(self, client: Any, names: Mapping[str, str]) -> None:
        self._lambda = client
        self._names = names

    def invoke(self, function: str, payload: Mapping[str, Any]) -> None:
        name = self._names.get(function)
        if not name:
            raise RuntimeError(f"this function may not invoke {function} (no name configured)")
        self._lambda.invoke(
            FunctionName=name,
            InvocationType="Event",
            Payload=json.dumps(payload, separators=(",", ":")).encode(),
        )
