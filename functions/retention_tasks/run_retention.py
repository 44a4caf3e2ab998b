"""Scheduled (daily): expire checkpoints and datasets past their retention period, each
after its tombstone is in a signed ledger checkpoint (``modelops.services.retention``).
POST /retention/run runs the same job on request."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops import wiring
from modelops.contracts.retention import MAX_RUN_LIMIT, RetentionRunRequest
from modelops.observability import instruments

logger, tracer, metrics = instruments()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = wiring.retention_service()
    report = service.run_as(RetentionRunRequest(limit=MAX_RUN_LIMIT), wiring.own_principal())
    metrics.add_metric(name="RetentionExpired", unit=MetricUnit.Count, value=report.expired)
    left = [o.model_dump(mode="json") for o in report.outcomes if o.action != "expired"]
    logger.info("retention run", extra={"expired": report.expired, "left": left})
    return report.model_dump(mode="json")
