from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelops import config, wiring
from modelops.adapters.cedar_policy import CedarPolicyEngine
from modelops.adapters.sentinelnet_http import SentinelNetClient


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    config.settings.cache_clear()
    wiring.policy_engine.cache_clear()
    yield monkeypatch
    config.settings.cache_clear()
    wiring.policy_engine.cache_clear()


def test_the_embedded_cedar_engine_decides_unless_an_external_sentinelnet_is_configured(
    fresh: pytest.MonkeyPatch,
) -> None:
    fresh.delenv("SENTINELNET_URL", raising=False)
    assert isinstance(wiring.policy_engine(), CedarPolicyEngine)
    config.settings.cache_clear()
    wiring.policy_engine.cache_clear()
    fresh.setenv("SENTINELNET_URL", "https://sentinelnet.internal.example")
    assert isinstance(wiring.policy_engine(), SentinelNetClient)


def test_boto3_clients_are_not_created_until_used(fresh: pytest.MonkeyPatch) -> None:
    wiring.boto_client.cache_clear()
    lazy = wiring.client("events")
    assert wiring.boto_client.cache_info().currsize == 0
    assert callable(lazy.put_events)
    assert wiring.boto_client.cache_info().currsize == 1
