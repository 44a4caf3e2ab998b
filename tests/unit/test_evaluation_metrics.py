"""The evaluation job's numpy metrics (examples/evaluate/metrics.py) against scikit-learn and
against hand computations on small tables."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from sklearn import metrics as sk

from examples.evaluate import metrics

K = 3
Array = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]


def _softmax(logits: Array) -> Array:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    result: Array = e / e.sum(axis=1, keepdims=True)
    return result


def _random_case(seed: int, m: int = 200) -> tuple[Indices, Indices, Array]:
    """True classes, probabilities loosely related to them, and the predicted classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, m).astype(np.intp)
    probabilities = _softmax(rng.normal(0, 1, (m, K)) + 1.5 * np.eye(K)[y])
    return y, probabilities.argmax(axis=1), probabilities


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_equals_sklearn_on_random_predictions(seed: int) -> None:
    y, predicted, _ = _random_case(seed)

    assert metrics.accuracy(y, predicted) == sk.accuracy_score(y, predicted)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positive", [None, 0, 2])
def test_precision_recall_f1_equal_sklearn_binary_for_a_class_and_macro_without(
    seed: int, positive: int | None
) -> None:
    y, predicted, _ = _random_case(seed)

    ours = metrics.precision_recall_f1(y, predicted, K, positive)

    if positive is None:
        expected = sk.precision_recall_fscore_support(
            y, predicted, labels=list(range(K)), average="macro", zero_division=0
        )[:3]
    else:
        expected = sk.precision_recall_fscore_support(
            y == positive, predicted == positive, average="binary", zero_division=0
        )[:3]
    assert ours == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    ("y", "predicted"),
    [
        pytest.param([0, 0, 1, 1], [0, 0, 0, 0], id="a-class-never-predicted"),
        pytest.param([0, 0, 0, 0], [0, 1, 0, 1], id="a-class-absent-from-the-truth"),
        pytest.param([0, 1, 1, 0], [0, 1, 1, 0], id="perfect"),
        pytest.param([2, 2, 2, 2], [2, 2, 2, 2], id="only-one-class-of-three-present"),
    ],
)
def test_precision_recall_f1_count_empty_ratios_as_zero_like_sklearn(
    y: list[int], predicted: list[int]
) -> None:
    true, pred = np.array(y, dtype=np.intp), np.array(predicted, dtype=np.intp)

    for positive in (None, 0, 1, 2):
        ours = metrics.precision_recall_f1(true, pred, K, positive)
        if positive is None:
            expected = sk.precision_recall_fscore_support(
                true, pred, labels=list(range(K)), average="macro", zero_division=0
            )[:3]
        else:
            expected = sk.precision_recall_fscore_support(
                true == positive, pred == positive, average="binary", zero_division=0
            )[:3]
        assert ours == pytest.approx(expected, abs=1e-15), positive


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("decimals", [None, 1], ids=["distinct-scores", "many-ties"])
def test_binary_roc_auc_equals_sklearn_with_and_without_ties(
    seed: int, decimals: int | None
) -> None:
    rng = np.random.default_rng(seed)
    positive = rng.random(300) < 0.3
    score = rng.random(300) + 0.4 * positive
    if decimals is not None:
        score = np.round(score, decimals)

    assert metrics.roc_auc(positive, score) == pytest.approx(
        sk.roc_auc_score(positive, score), abs=1e-12
    )


def test_binary_roc_auc_is_one_for_perfect_ranking_half_for_all_ties_none_for_one_class() -> None:
    positive = np.array([False, False, True, True])

    assert metrics.roc_auc(positive, np.array([0.1, 0.2, 0.3, 0.9])) == 1.0
    assert metrics.roc_auc(positive, np.array([0.9, 0.8, 0.3, 0.1])) == 0.0
    assert metrics.roc_auc(positive, np.full(4, 0.5)) == 0.5
    assert metrics.roc_auc(np.ones(4, dtype=bool), np.array([0.1, 0.2, 0.3, 0.9])) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_vs_rest_macro_roc_auc_equals_sklearn_ovr_macro(seed: int) -> None:
    y, _, probabilities = _random_case(seed)
    # Repeated rows: every class's scores have ties.
    y, probabilities = (
        np.concatenate([y, y[:50]]),
        np.concatenate([probabilities, probabilities[:50]]),
    )

    expected = sk.roc_auc_score(y, probabilities, multi_class="ovr", average="macro")
    assert metrics.roc_auc_ovr(y, probabilities) == pytest.approx(expected, abs=1e-12)


def test_one_vs_rest_roc_auc_is_none_when_a_class_is_absent_from_the_truth() -> None:
    y, _, probabilities = _random_case(0)

    assert metrics.roc_auc_ovr(np.where(y == 2, 1, y), probabilities) is None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_loss_equals_sklearn_on_random_probabilities(seed: int) -> None:
    y, _, probabilities = _random_case(seed)

    expected = sk.log_loss(y, probabilities, labels=list(range(K)))
    assert metrics.log_loss(y, probabilities) == pytest.approx(expected, rel=1e-12)


def test_log_loss_clips_certain_probabilities_like_sklearn() -> None:
    y = np.array([0, 1, 2, 2], dtype=np.intp)
    probabilities = np.array(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    )  # perfect but for row 2, certain and wrong

    ours = metrics.log_loss(y, probabilities)

    assert math.isfinite(ours)
    expected = sk.log_loss(y, probabilities, labels=list(range(K)))
    assert ours == pytest.approx(expected, rel=1e-12)


def test_expected_calibration_error_matches_a_hand_computation() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.35, 0.65], [0.62, 0.38], [1.0, 0.0]])
    y = np.array([0, 1, 1, 1, 0], dtype=np.intp)
    # Confidences 0.9 (right), 0.8 (wrong), 0.65 (right), 0.62 (wrong), 1.0 (right; in the
    # last bin). Ten bins: bin 9 holds 0.9 and 1.0 (accuracy 1, confidence 0.95), bin 8 holds
    # 0.8 (accuracy 0), bin 6 holds 0.65 and 0.62 (accuracy 0.5, confidence 0.635).
    ten = (2 * 0.05 + 1 * 0.8 + 2 * 0.135) / 5

    assert metrics.expected_calibration_error(y, probabilities, 10) == pytest.approx(ten)
    # One bin: |accuracy 3/5 - mean confidence 3.97/5|.
    assert metrics.expected_calibration_error(y, probabilities, 1) == pytest.approx(0.194)


def test_expected_calibration_error_is_zero_for_certain_correct_predictions() -> None:
    y = np.array([0, 1, 2], dtype=np.intp)

    assert metrics.expected_calibration_error(y, np.eye(3), 10) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_equal_sklearn_on_random_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, 100)
    predicted = y + rng.normal(0, 1, 100)

    assert metrics.mean_absolute_error(y, predicted) == pytest.approx(
        sk.mean_absolute_error(y, predicted), rel=1e-12
    )
    assert metrics.root_mean_squared_error(y, predicted) == pytest.approx(
        sk.root_mean_squared_error(y, predicted), rel=1e-12
    )
    assert metrics.r2(y, predicted) == pytest.approx(sk.r2_score(y, predicted), rel=1e-12)


@pytest.mark.parametrize(
    ("y", "predicted"),
    [
        pytest.param([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], id="perfect"),
        pytest.param([5.0, 5.0, 5.0], [5.0, 5.0, 5.0], id="constant-truth-perfect"),
        pytest.param([5.0, 5.0, 5.0], [4.0, 5.0, 6.0], id="constant-truth-imperfect"),
    ],
)
def test_regression_metrics_equal_sklearn_on_edge_cases(
    y: list[float], predicted: list[float]
) -> None:
    true, pred = np.array(y), np.array(predicted)

    assert metrics.mean_absolute_error(true, pred) == sk.mean_absolute_error(true, pred)
    assert metrics.root_mean_squared_error(true, pred) == sk.root_mean_squared_error(true, pred)
    assert metrics.r2(true, pred) == sk.r2_score(true, pred)


def _column(groups: list[list[int]]) -> npt.NDArray[np.bool_]:
    """One outcome column of the rows of the groups, in order."""
    return np.array([v for group in groups for v in group], dtype=bool)[:, None]


def test_group_rates_and_disparities_match_a_hand_computed_table() -> None:
    # Group 0: 6 rows, 2 positive (both selected), 1 of 4 negatives selected.
    # Group 1: 4 rows, 2 positive (1 selected), no negative selected.
    # Group 2: 2 rows, no positive (true positive rate undefined), none selected.
    groups = np.array([0] * 6 + [1] * 4 + [2] * 2, dtype=np.intp)
    true = _column([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0], [0, 0]])
    predicted = _column([[1, 1, 1, 0, 0, 0], [1, 0, 0, 0], [0, 0]])

    rates = metrics.group_rates(true, predicted, (true == predicted)[:, 0], groups, 3)

    assert rates.rows.tolist() == [6, 4, 2]
    assert rates.selection[:, 0].tolist() == [0.5, 0.25, 0.0]
    assert rates.true_positive[:2, 0].tolist() == [1.0, 0.5]
    assert math.isnan(rates.true_positive[2, 0])
    assert rates.false_positive[:, 0].tolist() == [0.25, 0.0, 0.0]
    assert rates.accuracy.tolist() == [5 / 6, 3 / 4, 1.0]
    found = metrics.disparities(rates)
    assert found.demographic_parity_difference.tolist() == [0.5]
    # TPR range over groups 0 and 1 only (0.5); FPR range 0.25. fairlearn, counting group
    # 2's undefined TPR as 0, would report 1.0.
    assert found.equalized_odds_difference.tolist() == [0.5]
    assert found.disparate_impact_ratio.tolist() == [0.0]


def test_disparate_impact_ratio_is_smallest_over_largest_selection_and_one_with_no_selection() -> (
    None
):
    groups = np.array([0, 0, 0, 0, 1, 1], dtype=np.intp)
    true = np.array([[1, 0], [0, 0], [1, 0], [0, 0], [1, 0], [0, 0]], dtype=bool)
    predicted = np.array([[1, 0], [0, 0], [0, 0], [0, 0], [1, 0], [0, 0]], dtype=bool)

    rates = metrics.group_rates(true, predicted, np.ones(6, dtype=bool), groups, 2)
    found = metrics.disparities(rates)

    # Column 0: selection 1/4 and 1/2. Column 1: nothing selected, no positives anywhere.
    assert found.disparate_impact_ratio.tolist() == [0.5, 1.0]
    assert found.demographic_parity_difference.tolist() == [0.25, 0.0]
    assert np.isnan(rates.true_positive[:, 1]).all()
    assert found.equalized_odds_difference.tolist() == [0.5, 0.0]  # TPR 1/2 vs 1


def test_group_true_and_false_positive_rates_equal_sklearn_recall_on_each_group() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 4, 400).astype(np.intp)
    true = rng.random((400, 2)) < 0.4
    predicted = rng.random((400, 2)) < 0.5

    rates = metrics.group_rates(true, predicted, true[:, 0] == predicted[:, 0], groups, 4)

    for g in range(4):
        rows = groups == g
        for j in range(2):
            t, p = true[rows, j], predicted[rows, j]
            assert rates.true_positive[g, j] == pytest.approx(sk.recall_score(t, p))
            assert rates.false_positive[g, j] == pytest.approx(sk.recall_score(~t, p))
            assert rates.selection[g, j] == pytest.approx(p.mean())


def _sign(x: Array) -> Indices:
    result: Indices = (x[:, 0] > 0).astype(np.intp)
    return result


def test_perturbation_flip_rate_is_zero_when_noise_cannot_cross_the_boundary() -> None:
    x = np.array([[-1.0], [1.0]])  # standard deviation 1

    assert metrics.perturbation_flip_rate(_sign, x, epsilon=0.5, trials=50, seed=0) == 0.0


def test_perturbation_flip_rate_is_the_chance_noise_crosses_the_boundary_and_seeded() -> None:
    x = np.array([[-1.0], [1.0]])  # noise uniform in [-3, 3): crosses with probability 1/3

    rate = metrics.perturbation_flip_rate(_sign, x, epsilon=3.0, trials=3000, seed=1)

    assert rate == pytest.approx(1 / 3, abs=0.02)
    assert metrics.perturbation_flip_rate(_sign, x, epsilon=3.0, trials=3000, seed=1) == rate
    assert metrics.perturbation_flip_rate(_sign, x, epsilon=3.0, trials=3000, seed=2) != rate
