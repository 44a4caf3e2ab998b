"""Canary analysis and deployment requests: the decisions, their evidence, and what is refused."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from modelops.domain.serving import (
    CanaryConfig,
    DeployRequest,
    Thresholds,
    VariantStats,
    analyse,
    js_divergence,
    label_counts,
    percentile,
    traffic_steps,
)

MODEL = "mdl-" + "a" * 24


def _stats(
    n: int, errors: int = 0, latency: float = 10.0, labels: dict[str, int] | None = None
) -> VariantStats:
    rng = random.Random(n)
    return VariantStats(
        invocations=n,
        errors5xx=errors,
        p95Ms=percentile([latency * rng.uniform(0.8, 1.2) for _ in range(n)], 95),
        labels=labels or {"setosa": n // 3, "versicolor": n // 3, "virginica": n - 2 * (n // 3)},
    )


def test_a_canary_like_its_baseline_is_promoted() -> None:
    decision = analyse(_stats(500), _stats(100), Thresholds())
    assert decision.verdict == "promote"
    assert (
        decision.evidence["canaryErrorRate"] == 0
        and decision.evidence["predictionDivergence"] < 0.01
    )


def test_a_canary_that_errors_is_rolled_back_with_the_evidence() -> None:
    decision = analyse(_stats(500), _stats(100, errors=5), Thresholds(maxErrorRate=0.01))
    assert decision.verdict == "rollback"
    assert decision.reasons == ("error rate 0.050 > 0.010",)
    assert decision.evidence["canaryErrorRate"] == 0.05


def test_a_slow_canary_is_rolled_back() -> None:
    decision = analyse(_stats(500, latency=10), _stats(100, latency=60), Thresholds())
    assert decision.verdict == "rollback" and "p95 latency" in decision.reasons[0]


def test_a_latency_regression_below_the_noise_floor_is_not_a_regression() -> None:
    decision = analyse(_stats(500, latency=1), _stats(100, latency=6), Thresholds())
    assert decision.verdict == "promote"


def test_a_canary_predicting_differently_is_rolled_back() -> None:
    skewed = _stats(100, labels={"setosa": 90, "versicolor": 10})
    decision = analyse(_stats(500), skewed, Thresholds(maxPredictionDivergence=0.1))
    assert decision.verdict == "rollback" and "prediction divergence" in decision.reasons[0]


def test_too_little_canary_traffic_means_wait() -> None:
    assert analyse(_stats(500), _stats(10), Thresholds(minInvocations=50)).verdict == "wait"


def test_js_divergence_is_zero_for_equal_and_one_for_disjoint_distributions() -> None:
    assert js_divergence({"a": 5, "b": 5}, {"a": 50, "b": 50}) == pytest.approx(0)
    assert js_divergence({"a": 5}, {"b": 5}) == pytest.approx(1)
    assert js_divergence({}, {"a": 1}) == 0


def test_percentile_is_nearest_rank() -> None:
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile([], 95) == 0


def test_labels_are_counted_from_captured_responses() -> None:
    captured = [
        {"predictions": [{"label": "setosa"}, {"label": "virginica"}]},
        {"predictions": [{"label": "setosa"}]},
    ]
    assert label_counts(captured) == {"setosa": 2, "virginica": 1}


@pytest.mark.parametrize(
    ("config", "steps"),
    [
        (CanaryConfig(type="CANARY", canaryPercent=10), [10, 100]),
        (CanaryConfig(type="LINEAR", linearStepPercent=25), [25, 50, 75, 100]),
        (CanaryConfig(type="ALL_AT_ONCE"), [100]),
    ],
)
def test_traffic_moves_in_the_configured_steps(config: CanaryConfig, steps: list[int]) -> None:
    assert traffic_steps(config) == steps


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"instanceType": "ml.x9.huge"}, "not offered"),
        ({"canary": {"canaryPercent": 60}}, "less than or equal to 50"),
        ({"variants": [{"name": "primary", "modelId": MODEL, "weight": 1}]}, "not 'primary'"),
        (
            {"autoscaling": {"minInstances": 3, "maxInstances": 2}},
            "maxInstances must be >= minInstances",
        ),
        ({"route": "Bad Route"}, "String should match pattern"),
    ],
)
def test_impossible_deploy_requests_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DeployRequest.model_validate({"modelId": MODEL, "env": "prod", "route": "iris", **fields})
