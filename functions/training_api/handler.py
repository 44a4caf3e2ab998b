"""The training API: training jobs (submit, inspect, cancel, reproduce, retrain) and
evaluations (run, inspect)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops.api import build_resolver, run_api
from modelops.observability import instruments
from training_api.routes import evaluations, jobs

logger, tracer, metrics = instruments()

app = build_resolver(logger)
app.include_router(jobs.router)
app.include_router(evaluations.router)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_api(app, logger, event, context)
