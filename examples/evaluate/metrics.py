"""Evaluation metrics in numpy: classification, calibration, regression, fairness, robustness.

Pure, vectorised functions with the definitions scikit-learn and fairlearn use (the unit
tests hold them to ``sklearn.metrics``). Classes are integer indices ``0..k-1``; a metric that
is undefined for its input (ROC AUC without both classes, a true positive rate without
positives) is ``None`` or NaN as documented, never a made-up number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]

# --- classification -------------------------------------------------------------------------


def accuracy(y_true: Indices, y_pred: Indices) -> float:
    """The fraction of rows whose predicted class is the true class."""
    return float(np.mean(y_true == y_pred))


def _ratio(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator`` element-wise, 0 where the denominator is 0."""
    result: Array = np.divide(
        numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0
    )
    return result


def precision_recall_f1(
    y_true: Indices, y_pred: Indices, n_classes: int, positive: int | None
) -> tuple[float, float, float]:
    """Precision ``tp / (tp + fp)``, recall ``tp / (tp + fn)`` and F1
    ``2 tp / (2 tp + fp + fn)`` of class ``positive``, or, when ``positive`` is None, their
    unweighted means over all ``n_classes`` classes (macro averages, classes absent from both
    ``y_true`` and ``y_pred`` included). A ratio with a zero denominator is 0 (scikit-learn's
    ``zero_division=0``).
    """
    counts = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    confusion = counts.reshape(n_classes, n_classes).astype(np.float64)  # [true, predicted]
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    if positive is None:
        return float(precision.mean()), float(recall.mean()), float(f1.mean())
    return float(precision[positive]), float(recall[positive]), float(f1[positive])


def roc_auc(positive: Mask, score: Array) -> float | None:
    """The area under the ROC curve of ``score`` for the rows where ``positive`` holds.

    Computed as the Mann-Whitney statistic: the probability that a random positive row
    scores higher than a random negative one, a tie counting one half (tied scores share
    their average rank). None when the rows are not of both kinds (the area is undefined).
    """
    n_pos = int(np.count_nonzero(positive))
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, tie_group, counts = np.unique(score, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based ranks
    rank_sum = float(average_rank[tie_group][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def roc_auc_ovr(y_true: Indices, probabilities: Array) -> float | None:
    """One-vs-rest macro ROC AUC: the mean over the k classes of :func:`roc_auc` of class c's
    probability for the rows of class c (scikit-learn's ``multi_class="ovr",
    average="macro"``). None when some class's area is undefined (the class is absent from
    ``y_true``, or the only one present).
    """
    areas = [roc_auc(y_true == c, probabilities[:, c]) for c in range(probabilities.shape[1])]
    defined = [a for a in areas if a is not None]
    return float(np.mean(defined)) if len(defined) == len(areas) else None


def log_loss(y_true: Indices, probabilities: Array) -> float:
    """The mean of ``-ln p(true class)`` over the rows, every probability first clipped to
    ``[eps, 1 - eps]`` (eps the float64 machine epsilon), as scikit-learn clips.
    """
    eps = float(np.finfo(np.float64).eps)
    picked = probabilities[np.arange(len(y_true)), y_true]
    return float(-np.mean(np.log(np.clip(picked, eps, 1.0 - eps))))


def expected_calibration_error(y_true: Indices, probabilities: Array, bins: int) -> float:
    """Top-label expected calibration error over ``bins`` equal-width confidence bins.

    A row's confidence is its largest class probability and it is correct when that class
    (the first on a tie) is the true one. Row confidences c fall in bin
    ``min(floor(c * bins), bins - 1)``, so the bins are ``[b / bins, (b + 1) / bins)`` and
    the last also holds 1. ECE is ``sum over bins of (n_b / n) * |accuracy_b - confidence_b|``
    where ``accuracy_b`` and ``confidence_b`` are the bin's mean correctness and confidence.
    """
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y_true).astype(np.float64)
    bin_of = np.minimum((confidence * bins).astype(np.intp), bins - 1)
    gap = np.bincount(bin_of, correct, bins) - np.bincount(bin_of, confidence, bins)
    return float(np.abs(gap).sum() / len(y_true))


# --- regression -----------------------------------------------------------------------------


def mean_absolute_error(y_true: Array, y_pred: Array) -> float:
    """The mean of ``|y_true - y_pred|``."""
    return float(np.mean(np.abs(y_true - y_pred)))


def root_mean_squared_error(y_true: Array, y_pred: Array) -> float:
    """The square root of the mean of ``(y_true - y_pred) ** 2``."""
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def r2(y_true: Array, y_pred: Array) -> float:
    """The coefficient of determination ``1 - SS_res / SS_tot``; when ``y_true`` is constant
    (``SS_tot = 0``) it is 1 for perfect predictions and 0 otherwise (scikit-learn's
    ``force_finite``).
    """
    ss_res = float(np.sum((y_true - y_pred) ** 2))
    ss_tot = float(np.sum((y_true - np.mean(y_true)) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


# --- fairness -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRates:
    """Per-group rates of c binary (one class against the rest) outcomes.

    ``rows`` is (g,): the rows of each group. The others are (g, c), for group i and outcome
    j: ``selection`` is the fraction of the group's rows predicted positive;
    ``true_positive`` the fraction of its positive rows predicted positive and
    ``false_positive`` the fraction of its negative rows predicted positive, NaN where the
    group has no positive (respectively negative) rows. ``accuracy`` is (g,): the fraction of
    the group's rows whose predicted class is the true class.
    """

    rows: Array
    selection: Array
    true_positive: Array
    false_positive: Array
    accuracy: Array


def group_rates(
    true_positive: Mask, predicted_positive: Mask, correct: Mask, groups: Indices, n_groups: int
) -> GroupRates:
    """The :class:`GroupRates` of m rows in groups ``0..n_groups-1`` (``groups``, (m,)),
    from (m, c) masks of the rows that are positive and predicted positive for each of the c
    outcomes, and the (m,) mask of correctly classified rows. Every group must have rows.
    """
    membership = (groups[:, None] == np.arange(n_groups)).astype(np.float64).T  # (g, m)
    positive = true_positive.astype(np.float64)
    selected = predicted_positive.astype(np.float64)
    rows = membership.sum(axis=1)
    positives = membership @ positive
    selected_count = membership @ selected
    hits = membership @ (positive * selected)
    undefined = np.full_like(positives, np.nan)
    negatives = rows[:, None] - positives
    return GroupRates(
        rows=rows,
        selection=selected_count / rows[:, None],
        true_positive=np.divide(hits, positives, out=undefined.copy(), where=positives > 0),
        false_positive=np.divide(
            selected_count - hits, negatives, out=undefined.copy(), where=negatives > 0
        ),
        accuracy=(membership @ correct.astype(np.float64)) / rows,
    )


@dataclass(frozen=True)
class Disparities:
    """Differences between groups, (c,) arrays, one value per outcome.

    ``demographic_parity_difference``: largest minus smallest selection rate.
    ``equalized_odds_difference``: the larger of the ranges (largest minus smallest) of the
    true positive rates and of the false positive rates (fairlearn's definitions). Groups
    whose rate is undefined (NaN: no positive, or no negative, rows) are left out of that
    range; a range over fewer than two groups is 0. (fairlearn counts such a group's rate
    as 0 instead, which reports a disparity the data cannot show.)
    ``disparate_impact_ratio``: smallest over largest selection rate, 1 when no group has
    any row predicted positive.
    """

    demographic_parity_difference: Array
    equalized_odds_difference: Array
    disparate_impact_ratio: Array


def _spread(rates: Array) -> Array:
    """Per column, largest minus smallest of the defined (not NaN) rates, 0 with none."""
    defined = ~np.isnan(rates)
    top = np.max(rates, axis=0, where=defined, initial=-np.inf)
    bottom = np.min(rates, axis=0, where=defined, initial=np.inf)
    result: Array = np.where(defined.any(axis=0), top - bottom, 0.0)
    return result


def disparities(rates: GroupRates) -> Disparities:
    """The :class:`Disparities` of per-group rates."""
    top, bottom = rates.selection.max(axis=0), rates.selection.min(axis=0)
    return Disparities(
        demographic_parity_difference=top - bottom,
        equalized_odds_difference=np.maximum(
            _spread(rates.true_positive), _spread(rates.false_positive)
        ),
        disparate_impact_ratio=np.divide(bottom, top, out=np.ones_like(top), where=top > 0),
    )


# --- robustness -----------------------------------------------------------------------------


def perturbation_flip_rate(
    predict: Callable[[Array], Indices], x: Array, *, epsilon: float, trials: int, seed: int
) -> float:
    """The fraction of predictions that change when the features are perturbed.

    Each of ``trials`` copies of the (m, n) array ``x`` gets independent uniform noise in
    ``[-epsilon * s_j, epsilon * s_j)`` added to feature j, s_j being the feature's standard
    deviation over ``x`` (population, ddof 0); the noise comes from
    ``numpy.random.default_rng(seed)``, one trial after the other. The result is the fraction
    of the ``trials * m`` perturbed rows whose predicted class differs from the unperturbed
    row's.
    """
    rng = np.random.default_rng(seed)
    spread = epsilon * x.std(axis=0)
    unperturbed = predict(x)
    flips = sum(
        int(np.count_nonzero(predict(x + rng.uniform(-1.0, 1.0, x.shape) * spread) != unperturbed))
        for _ in range(trials)
    )
    return flips / (trials * len(x))
