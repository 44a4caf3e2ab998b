"""Shared fixtures: one local cloud per test session for the integration and e2e tiers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

LOG_DIR = Path(__file__).resolve().parent.parent / "build" / "test-logs"


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[object]:
    from localcloud.cloud import LocalCloud

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / "functions.log").open("a", buffering=1)

    def sink(function: str, line: str) -> None:
        log.write(f"[{function}] {line}\n")

    cloud = LocalCloud(log_sink=sink).start()
    try:
        yield cloud
    finally:
        cloud.stop()
        log.close()
