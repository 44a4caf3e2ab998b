"""The drift API: baselines, checks, findings, ground-truth labels, alerts, retrain
proposals and quarantine."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from drift_api.routes import drift
from modelops.api import build_resolver, run_api
from modelops.observability import instruments

logger, tracer, metrics = instruments()

app = build_resolver(logger)
app.include_router(drift.router)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_api(app, logger, event, context)
