"""Shared fixtures: one local cloud per test session for the integration and e2e tiers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

LOG_FILE = Path(__file__).resolve().parent.parent / "build" / "test-logs" / "functions.log"


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[Any]:
    from localcloud.cloud import LocalCloud

    with LocalCloud(log_file=LOG_FILE) as cloud:
        yield cloud
