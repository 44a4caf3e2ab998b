"""A second cold-start peer: the baseline plus what every function of ours must carry by
house rules (Powertools Logger, Tracer and Metrics; pydantic request/response validation).
Our handlers against this one show what our own code adds."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel

from bench.peer_lookup import model_exists

logger = Logger()
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)


class Found(BaseModel):
    found: bool


@app.get("/models/<model_id>")
def get_model(model_id: str) -> Found:
    return Found(found=model_exists(model_id))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
