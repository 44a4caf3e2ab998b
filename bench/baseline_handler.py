"""The cold-start peer: a bare Powertools REST resolver plus a boto3 DynamoDB client, serving
one route that reads one item. Our handlers are measured against this."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver

from bench.peer_lookup import model_exists

app = APIGatewayRestResolver()


@app.get("/models/<model_id>")
def get_model(model_id: str) -> dict[str, Any]:
    return {"found": model_exists(model_id)}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
