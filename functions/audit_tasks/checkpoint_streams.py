"""Scheduled (every 15 minutes): sign a checkpoint over each audit stream's uncheckpointed
records, so that no record waits longer than that for a signature."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops import wiring
from modelops.observability import instruments

logger, tracer, metrics = instruments()


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    made = wiring.audit_service().checkpoint_all()
    signed = {stream: cp.toSeq for stream, cp in made.items() if cp is not None}
    metrics.add_metric(name="LedgerCheckpointsSigned", unit=MetricUnit.Count, value=len(signed))
    logger.info("checkpoints signed", extra={"checkpoints": signed})
    return {"checkpointed": signed, "streams": sorted(made)}
