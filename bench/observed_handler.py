"""A second cold-start peer: the baseline plus what every function of ours must carry by
house rules (Powertools Logger, Tracer and Metrics; pydantic request/response validation).
Our handlers against this one show what our own code adds."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from pydantic import BaseModel

logger = Logger()
tracer = Tracer(patch_modules=("botocore",))
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
_client: Any = None


class Found(BaseModel):
    found: bool


@app.get("/models/<model_id>")
def get_model(model_id: str) -> Found:
    global _client  # noqa: PLW0603 - lazily created, like our wiring
    if _client is None:
        _client = boto3.client("dynamodb")
    item = _client.get_item(
        TableName=os.environ["REGISTRY_TABLE"],
        Key={"pk": {"S": f"MODEL#{model_id}"}, "sk": {"S": "MODEL"}},
    ).get("Item")
    return Found(found=item is not None)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
