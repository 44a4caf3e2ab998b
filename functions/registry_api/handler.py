"""The registry's REST API: artifacts, datasets, models and lineage."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops.api import build_resolver, run_api
from modelops.observability import instruments
from registry_api.routes import artifacts, datasets, models, promotions, retention, watermark

logger, tracer, metrics = instruments()

app = build_resolver(logger)
app.include_router(artifacts.router)
app.include_router(datasets.router)
app.include_router(models.router)
app.include_router(promotions.router)
app.include_router(watermark.router)
app.include_router(retention.router)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_api(app, logger, event, context)
