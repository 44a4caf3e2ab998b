"""Drift statistics from summaries, checked against scipy on the raw rows: the p-value
functions, KS within its stated error, normalised Wasserstein, Jensen-Shannon, PSI and the
chi-square test; exact mergeability; and the verdicts on synthetic shifts."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelops.domain.drift import (
    CategoricalSummary,
    FeatureConstraint,
    FeatureDrift,
    NumericSummary,
    Summary,
)
from modelops.domain.drift_stats import (
    chi2_sf,
    compare,
    default_constraints,
    kolmogorov_sf,
    merge,
    reference_summary,
    summarise,
)

ROWS = 200_000
PSI_EPSILON = 1e-4  # the floor drift_stats documents for empty bins


def _rng(seed: int = 7) -> np.random.Generator:
    return np.random.default_rng(seed)


def _drift(reference: np.ndarray, current: np.ndarray) -> FeatureDrift:
    baseline = reference_summary({"x": reference})
    report = compare(baseline, summarise({"x": current}, baseline), default_constraints(baseline))
    return report.features[0]


def _assert_close(ours: Any, theirs: Any, where: str = "") -> None:
    """Equal, except floats within 1e-9 relative: sums taken in another order round
    differently."""
    if isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), where
        for key, value in ours.items():
            _assert_close(value, theirs[key], f"{where}.{key}")
    elif isinstance(ours, list | tuple):
        assert len(ours) == len(theirs), where
        for index, (value, other) in enumerate(zip(ours, theirs, strict=True)):
            _assert_close(value, other, f"{where}[{index}]")
    elif isinstance(ours, float):
        assert ours == pytest.approx(theirs, rel=1e-9, abs=0), where
    else:
        assert ours == theirs, where


def _numeric(summary: Summary, name: str = "x") -> NumericSummary:
    feature = summary.features[name]
    assert isinstance(feature, NumericSummary)
    return feature


# --- p-values -------------------------------------------------------------------------------


def test_chi2_sf_matches_scipy_over_a_grid_of_dof_and_x() -> None:
    checked = 0
    for dof in [*range(1, 31), 50, 100, 300, 1000]:
        for x in np.concatenate(
            [np.geomspace(1e-4, 1, 12), np.linspace(0.05, 5, 60) * dof, [dof * 20.0]]
        ):
            expected = stats.chi2.sf(x, dof)
            if expected > 1e-300:
                assert chi2_sf(float(x), dof) == pytest.approx(expected, rel=1e-10, abs=0)
                checked += 1
    assert checked > 2000
    assert chi2_sf(0.0, 3) == 1.0


def test_kolmogorov_sf_matches_scipy_kstwobign() -> None:
    for lam in np.concatenate([np.linspace(0.02, 18.5, 1500), [0.999999, 1.0, 1.000001]]):
        expected = stats.kstwobign.sf(lam)
        assert expected > 1e-300
        assert kolmogorov_sf(float(lam)) == pytest.approx(expected, rel=1e-12, abs=0)
    assert kolmogorov_sf(0.0) == 1.0


# --- numeric distances against scipy on the rows --------------------------------------------


SHIFTS: dict[str, tuple[float, float]] = {  # current = normal(mean, std), reference N(0, 1)
    "none": (0.0, 1.0),
    "mean 0.02 sigma": (0.02, 1.0),
    "mean 0.1 sigma": (0.1, 1.0),
    "mean 0.5 sigma": (0.5, 1.0),
    "mean 3 sigma": (3.0, 1.0),
    "variance x2": (0.0, math.sqrt(2)),
    "std x2": (0.0, 2.0),
    "std x0.5": (0.0, 0.5),
}


@pytest.mark.parametrize("shift", SHIFTS.values(), ids=SHIFTS.keys())
def test_ks_from_summaries_is_within_the_stated_error_of_scipy(shift: tuple[float, float]) -> None:
    rng = _rng()
    reference, current = rng.normal(size=ROWS), rng.normal(*shift, size=ROWS)
    ks = _drift(reference, current).ks
    assert ks is not None and ks.errorBound is not None
    exact = stats.ks_2samp(reference, current, method="asymp").statistic
    assert ks.statistic - 1e-12 <= exact <= ks.statistic + ks.errorBound + 1e-12
    assert ks.errorBound <= 0.006  # one fine bin of 200
    n_eff = ROWS * ROWS / (2 * ROWS)
    assert ks.pValue == pytest.approx(stats.kstwobign.sf(math.sqrt(n_eff) * ks.statistic))


WASSERSTEIN_CASES: dict[str, Any] = {
    **{
        name: (lambda rng, m=mean, s=std: (rng.normal(size=ROWS), rng.normal(m, s, ROWS)))
        for name, (mean, std) in SHIFTS.items()
    },
    "uniform shifted": lambda rng: (rng.uniform(size=ROWS), rng.uniform(0.05, 1.1, ROWS)),
    "exponential scaled": lambda rng: (rng.exponential(size=ROWS), rng.exponential(1.3, ROWS)),
    "lognormal": lambda rng: (rng.lognormal(size=ROWS), rng.lognormal(0.2, 1.2, ROWS)),
    "bimodal reweighted": lambda rng: (
        np.concatenate([rng.normal(-3, 1, ROWS // 2), rng.normal(3, 1, ROWS // 2)]),
        np.concatenate([rng.normal(-3, 1, ROWS // 4), rng.normal(3, 1, 3 * ROWS // 4)]),
    ),
}


@pytest.mark.parametrize("make", WASSERSTEIN_CASES.values(), ids=WASSERSTEIN_CASES.keys())
def test_wasserstein_is_within_0_01_of_scipy_normalised_by_the_reference_std(make: Any) -> None:
    reference, current = make(_rng())
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert _drift(reference, current).wasserstein == pytest.approx(expected, abs=0.01)


def _coarse_group_edges(summary: NumericSummary) -> np.ndarray:
    """The cut points that start the 10 equal-reference-mass groups as drift_stats documents
    them: fine bin i (which starts at edges[i - 1]) is in group min(10 · (count below) // n, 9)."""
    counts = np.asarray(summary.counts)
    group = np.minimum((np.cumsum(counts) - counts) * 10 // summary.count, 9)
    firsts = np.flatnonzero(np.diff(group)) + 1
    return np.concatenate([[-np.inf], np.asarray(summary.edges)[firsts - 1], [np.inf]])


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p, q = np.maximum(p, PSI_EPSILON), np.maximum(q, PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize("shift", [(0.0, 1.0), (0.2, 1.0), (0.0, 1.5)], ids=str)
def test_numeric_jensen_shannon_and_psi_equal_scipy_and_numpy_on_the_coarse_groups(
    shift: tuple[float, float],
) -> None:
    rng = _rng()
    reference, current = rng.normal(size=ROWS), rng.normal(*shift, size=ROWS)
    baseline = reference_summary({"x": reference})
    drift = compare(baseline, summarise({"x": current}, baseline), default_constraints(baseline))
    edges = _coarse_group_edges(_numeric(baseline))
    assert edges.size == 11
    # Histogram bins are [a, b): the summaries' convention.
    p = np.histogram(reference, edges)[0] / ROWS
    q = np.histogram(current, edges)[0] / ROWS
    assert p == pytest.approx(np.full(10, 0.1), abs=0.006)
    feature = drift.features[0]
    assert feature.jensenShannon == pytest.approx(float(jensenshannon(p, q)), rel=1e-9)
    assert feature.psi == pytest.approx(_psi(p, q), rel=1e-9)


# --- categorical features ---------------------------------------------------------------------


def _categories(rng: np.random.Generator, weights: list[float], size: int) -> list[str]:
    names = ["alpha", "beta", "gamma", "delta", "epsilon"][: len(weights)]
    return list(rng.choice(names, size=size, p=np.asarray(weights) / sum(weights)))


def test_categorical_distances_and_chi_square_equal_scipy_on_the_proportions() -> None:
    rng = _rng()
    reference = _categories(rng, [4, 3, 2, 1], 5_000)
    current = _categories(rng, [4, 3, 2, 1.3, 0.1], 4_000)
    baseline = reference_summary({"c": reference}, categorical={"c"})
    feature = compare(
        baseline, summarise({"c": current}, baseline), default_constraints(baseline)
    ).features[0]

    names = sorted(set(reference) | set(current))
    table = np.array([[Counter(side)[n] for n in names] for side in (reference, current)])
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert feature.jensenShannon == pytest.approx(float(jensenshannon(p, q)), rel=1e-12)
    assert feature.psi == pytest.approx(_psi(p, q), rel=1e-12)
    expected = stats.chi2_contingency(table, correction=False)
    assert feature.chiSquare is not None
    assert feature.chiSquare.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert feature.chiSquare.dof == expected.dof == 4
    assert feature.chiSquare.pValue == pytest.approx(expected.pvalue, rel=1e-9)
    assert feature.newCategories == ("epsilon",)


# --- verdicts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shift", "status"),
    [((0.0, 1.0), "ok"), ((0.5, 1.0), "alarm"), ((0.0, math.sqrt(2)), "alarm")],
    ids=["no shift is ok", "a 0.5 sigma mean shift alarms", "doubled variance alarms"],
)
def test_numeric_verdict_follows_the_normalised_wasserstein_distance(
    shift: tuple[float, float], status: str
) -> None:
    rng = _rng()
    feature = _drift(rng.normal(size=ROWS), rng.normal(*shift, size=ROWS))
    assert (feature.metric, feature.alarm, feature.status) == ("wasserstein", 0.1, status)
    assert feature.value == feature.wasserstein


def test_a_new_category_alarms_and_is_named() -> None:
    rng = _rng()
    reference = _categories(rng, [1, 1, 1], 20_000)
    baseline = reference_summary({"c": reference, "x": rng.normal(size=20_000)}, {"c"})
    same = summarise(
        {"c": _categories(rng, [1, 1, 1], 20_000), "x": rng.normal(size=20_000)}, baseline
    )
    shifted = summarise(
        {"c": _categories(rng, [1, 1, 1, 0.75], 20_000), "x": rng.normal(size=20_000)}, baseline
    )
    constraints = default_constraints(baseline)

    quiet = compare(baseline, same, constraints)
    assert [f.status for f in quiet.features] == ["ok", "ok"]
    assert (quiet.drifted, quiet.driftShare, quiet.datasetDrift) == ((), 0.0, False)

    report = compare(baseline, shifted, constraints)
    category = report.features[0]
    assert (category.metric, category.status, category.newCategories) == (
        "jensenShannon",
        "alarm",
        ("delta",),
    )
    # One feature of two at alarm: the dataset drifts (at least half, as Evidently).
    assert (report.drifted, report.driftShare, report.datasetDrift) == (("c",), 0.5, True)


def test_status_warns_between_the_thresholds_and_p_values_never_alarm() -> None:
    rng = _rng()
    reference = rng.normal(size=ROWS)
    feature = _drift(reference, rng.normal(0.07, 1, ROWS))
    # A 0.07 sigma shift: far beyond chance for KS at 200k rows, yet only a warning.
    assert feature.ks is not None and feature.ks.pValue < 1e-50
    assert 0.05 <= feature.value < 0.1
    assert feature.status == "warn"


def test_few_valued_numeric_features_are_held_to_jensen_shannon_over_their_values() -> None:
    rng = _rng()
    flag = rng.integers(0, 2, 5_000).astype(float)
    baseline = reference_summary(
        {"flag": flag, "x": rng.normal(size=5_000), "c": ["a", "b"] * 2_500}, categorical={"c"}
    )
    constraints = default_constraints(baseline)
    metrics = {name: c.metric for name, c in constraints.features.items()}
    assert metrics == {"flag": "jensenShannon", "x": "wasserstein", "c": "jensenShannon"}

    moved = (rng.random(5_000) < 0.55).astype(float)
    current = summarise({"flag": moved, "x": rng.normal(size=5_000), "c": ["a"] * 5_000}, baseline)
    feature = compare(baseline, current, constraints).features[0]
    p, q = flag.mean(), moved.mean()
    assert feature.value == pytest.approx(float(jensenshannon([1 - p, p], [1 - q, q])), rel=1e-9)
    assert feature.status == "ok"  # about 0.04, as Evidently would compute it


def test_constraint_defaults_follow_the_kind_and_wasserstein_needs_a_numeric_feature() -> None:
    assert FeatureConstraint.model_validate({"kind": "numeric"}).metric == "wasserstein"
    categorical = FeatureConstraint.model_validate({"kind": "categorical"})
    assert (categorical.metric, categorical.warn, categorical.alarm) == ("jensenShannon", 0.05, 0.1)
    with pytest.raises(ValidationError, match="numeric"):
        FeatureConstraint(kind="categorical", metric="wasserstein")
    with pytest.raises(ValidationError, match="warn"):
        FeatureConstraint(kind="numeric", metric="psi", warn=0.3, alarm=0.2)


# --- summaries ------------------------------------------------------------------------------


def test_missing_values_are_counted_and_excluded_from_everything_else() -> None:
    baseline = reference_summary(
        {
            "x": [1.0, None, float("nan"), "", "abc", float("inf"), "2.5", 4],
            "c": ["a", None, float("nan"), "", "b", "a", 3, "3"],
        },
        categorical={"c"},
    )
    x = _numeric(baseline)
    assert (x.count, x.missing, sum(x.counts), x.min, x.max, x.sum) == (3, 5, 3, 1.0, 4.0, 7.5)
    assert x.sumSquares == 1 + 6.25 + 16
    c = baseline.features["c"]
    assert isinstance(c, CategoricalSummary)
    assert (c.counts, c.count, c.missing) == ({"3": 2, "a": 2, "b": 1}, 5, 3)
    assert baseline.rows == 8


def test_a_feature_absent_from_the_data_has_every_row_missing_and_cannot_be_compared() -> None:
    rng = _rng()
    baseline = reference_summary({"x": rng.normal(size=1_000), "c": ["a"] * 1_000}, {"c"})
    current = summarise({"other": list(range(10))}, baseline)
    assert set(current.features) == {"x", "c"}
    assert all((f.count, f.missing) == (0, 10) for f in current.features.values())
    with pytest.raises(ValueError, match="no values"):
        compare(baseline, current, default_constraints(baseline))


def test_summarising_the_reference_again_reproduces_its_counts() -> None:
    rng = _rng()
    columns = {
        "normal": rng.normal(size=50_000),
        "heavy tail": rng.pareto(1.2, 50_000),
        "ties": rng.poisson(2, 50_000).astype(float),
        "constant": np.full(50_000, 3.5),
    }
    baseline = reference_summary(columns)
    # The reference counts its sorted values; summarise bins them through a lookup table.
    _assert_close(summarise(columns, baseline).model_dump(), baseline.model_dump())


@pytest.mark.parametrize("offset", [0.0, 1e12], ids=["centred", "far from zero"])
def test_values_on_and_beside_every_cut_point_land_in_the_bin_that_starts_there(
    offset: float,
) -> None:
    baseline = reference_summary({"x": offset + _rng().normal(size=50_000) * 1e-3})
    edges = np.asarray(_numeric(baseline).edges)
    values = np.concatenate([edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf)])
    counts = _numeric(summarise({"x": values}, baseline)).counts
    # Bins are (-inf, e1), [e1, e2), ..., [eK, +inf).
    expected = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    assert counts == tuple(expected)


def test_a_constant_reference_alarms_on_any_change_and_not_on_none() -> None:
    baseline = reference_summary({"x": np.full(5_000, 2.0)})
    constraints = default_constraints(baseline)
    same = compare(baseline, summarise({"x": np.full(3_000, 2.0)}, baseline), constraints)
    moved = compare(baseline, summarise({"x": np.full(3_000, 2.5)}, baseline), constraints)
    assert (same.features[0].status, moved.features[0].status) == ("ok", "alarm")


# --- merging --------------------------------------------------------------------------------


def test_24_hourly_summaries_merge_into_the_summary_of_the_whole_day() -> None:
    rng = _rng()
    baseline = reference_summary(
        {"x": rng.normal(size=20_000), "c": _categories(rng, [3, 2, 1], 20_000)}, {"c"}
    )
    day = datetime(2026, 3, 1, tzinfo=UTC)
    hours = []
    for hour in range(24):
        x = rng.normal(0.01 * hour, 1 + 0.01 * hour, 5_000)
        x[rng.random(5_000) < 0.01] = np.nan
        c = np.array(_categories(rng, [3, 2, 1, 0.1], 5_000), dtype=object)
        c[rng.random(5_000) < 0.01] = None
        hours.append({"x": x, "c": c})
    hourly = [
        summarise(h, baseline, day + timedelta(hours=i), day + timedelta(hours=i + 1))
        for i, h in enumerate(hours)
    ]
    whole = summarise(
        {name: np.concatenate([h[name] for h in hours]) for name in ("x", "c")},
        baseline,
        day,
        day + timedelta(days=1),
    )
    merged = merge(hourly)

    assert (merged.start, merged.end) == (day, day + timedelta(days=1))
    _assert_close(merged.model_dump(), whole.model_dump())
    assert merged.features["c"] == whole.features["c"]
    assert _numeric(merged).counts == _numeric(whole).counts

    constraints = default_constraints(baseline)
    _assert_close(
        compare(baseline, merged, constraints).model_dump(),
        compare(baseline, whole, constraints).model_dump(),
    )


def test_merging_summaries_of_different_edges_kinds_or_features_raises() -> None:
    rng = _rng()
    one = reference_summary({"x": rng.normal(size=1_000)})
    other = reference_summary({"x": rng.normal(size=1_000)})
    with pytest.raises(ValueError, match="different edges"):
        merge([summarise({"x": [1.0]}, one), summarise({"x": [1.0]}, other)])
    with pytest.raises(ValueError, match="do not combine"):
        merge([one, reference_summary({"x": ["a"]}, {"x"})])
    with pytest.raises(ValueError, match="different features"):
        merge([one, reference_summary({"y": [1.0]})])
    with pytest.raises(ValueError, match="different edges"):
        compare(one, summarise({"x": [1.0]}, other), default_constraints(one))
    with pytest.raises(ValueError, match="nothing"):
        merge([])
