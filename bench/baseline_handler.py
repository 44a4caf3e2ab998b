"""The cold-start peer: a bare Powertools REST resolver plus a boto3 DynamoDB client, serving
one route that reads one item. Our handlers are measured against this."""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayRestResolver

app = APIGatewayRestResolver()
_client: Any = None


@app.get("/models/<model_id>")
def get_model(model_id: str) -> dict[str, Any]:
    global _client  # noqa: PLW0603 - lazily created, like our wiring
    if _client is None:
        _client = boto3.client("dynamodb")
    item = _client.get_item(
        TableName=os.environ["REGISTRY_TABLE"],
        Key={"pk": {"S": f"MODEL#{model_id}"}, "sk": {"S": "MODEL"}},
    ).get("Item")
    return {"found": item is not None}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
