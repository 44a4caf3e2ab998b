"""boto3 clients for a test's own moto server (moto accepts any credentials)."""

from __future__ import annotations

from typing import Any

import boto3

REGION = "us-east-1"


def moto_client(service: str, endpoint: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
