"""A moto server with the local cloud's KMS extensions, for the KMS-level tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from localcloud import kms_digest, kms_ed25519
from tests.integration.moto_clients import moto_client

REGION = "us-east-1"


def kms_client() -> Iterator[Any]:
    """Yields a KMS client of a fresh moto server (the order LocalCloud.start() installs)."""
    kms_ed25519.install()
    kms_digest.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield moto_client("kms", f"http://{host}:{port}")
    finally:
        server.stop()


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    """(code, message, HTTP status) of the KMS error a test caught."""
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )
