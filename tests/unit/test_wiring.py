from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelops import config, wiring
from modelops.adapters.cedar_policy import CedarPolicyEngine
from modelops.adapters.quota import DynamoQuotaLedger
from modelops.adapters.resource_allocator_http import ResourceAllocatorClient
from modelops.adapters.sentinelnet_http import SentinelNetClient


def forget_settings() -> None:
    for factory in (
        config.settings,
        wiring.policy_engine,
        wiring.compute_allocator,
        wiring.quota_ledger,
        wiring.pool_config,
    ):
        factory.cache_clear()


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    forget_settings()
    yield monkeypatch
    forget_settings()


def test_the_embedded_cedar_engine_decides_unless_an_external_sentinelnet_is_configured(
    fresh: pytest.MonkeyPatch,
) -> None:
    fresh.delenv("SENTINELNET_URL", raising=False)
    assert isinstance(wiring.policy_engine(), CedarPolicyEngine)
    forget_settings()
    fresh.setenv("SENTINELNET_URL", "https://sentinelnet.internal.example")
    assert isinstance(wiring.policy_engine(), SentinelNetClient)


def test_the_embedded_quota_ledger_allocates_unless_an_external_resource_allocator_is_configured(
    fresh: pytest.MonkeyPatch,
) -> None:
    fresh.setenv("REGISTRY_TABLE", "registry")
    fresh.delenv("RESOURCE_ALLOCATOR_URL", raising=False)
    assert isinstance(wiring.compute_allocator(), DynamoQuotaLedger)
    forget_settings()
    fresh.setenv("RESOURCE_ALLOCATOR_URL", "https://allocator.internal.example/v1")
    allocator = wiring.compute_allocator()
    assert isinstance(allocator, ResourceAllocatorClient)
    assert allocator.base_url == "https://allocator.internal.example/v1"


def test_boto3_clients_are_not_created_until_used(fresh: pytest.MonkeyPatch) -> None:
    wiring.boto_client.cache_clear()
    lazy = wiring.client("events")
    assert wiring.boto_client.cache_info().currsize == 0
    assert callable(lazy.put_events)
    assert wiring.boto_client.cache_info().currsize == 1
