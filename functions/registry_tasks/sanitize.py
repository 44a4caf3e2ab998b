"""Sanitizes a raw PII dataset in escrow into a registered derivative: invoked
asynchronously by the registry API (POST /dataset/{id}/sanitize) with the run's id."""

from __future__ import annotations

from typing import Any

from modelops import wiring
from modelops.tasks import task_handler


def _sanitize(event: dict[str, Any]) -> dict[str, Any]:
    run = wiring.sanitization_service().run(str(event["runId"]))
    return {"runId": run.runId, "status": run.status, "derivedDatasetId": run.derivedDatasetId}


handler = task_handler("dataset-sanitizer", _sanitize)
