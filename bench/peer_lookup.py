"""The one DynamoDB read both cold-start peers serve (a boto3 client, created lazily)."""

from __future__ import annotations

import os
from typing import Any

import boto3

_client: Any = None


def model_exists(model_id: str) -> bool:
    global _client  # noqa: PLW0603 - lazily created, like our wiring
    if _client is None:
        _client = boto3.client("dynamodb")
    key = {"pk": {"S": f"MODEL#{model_id}"}, "sk": {"S": "MODEL"}}
    return "Item" in _client.get_item(TableName=os.environ["REGISTRY_TABLE"], Key=key)
