"""Drift statistics from mergeable summaries (numpy; import lazily, never at cold start).

Summaries (``modelops.domain.drift``)
    ``reference_summary`` fixes each numeric feature's cut points from the reference's n
    values: its quantiles at the levels i/B, i = 1..B-1 (B = ``bins``, default 200), and
    towards each tail at (1/B)·2^-k down to about 1/n, so that the outer bins stay thin;
    quantiles are values of the reference (``inverted_cdf``). Beyond its minimum and
    maximum come cut points at 0.25, 0.5, ..., 8 reference standard deviations, then 8·1.25^j
    (j = 1..31), so current values outside the reference's range still land in narrow
    bins. Cut points are deduplicated: a value repeated over several quantile levels gets a
    bin of its own. ``summarise`` counts new rows into the reference's bins, vectorised
    (``_bin_index``: a lookup table and a few passes instead of a binary search per row),
    and ``merge`` adds summaries exactly: counts add, extremes take their min/max, sums add
    (``math.fsum``).

Distances (``compare``), with p the reference's and q the current's proportions
    - Groups: numeric PSI and Jensen-Shannon use G = 10 groups of the fine bins of equal
      reference mass: fine bin i joins group min(floor(G · (reference count below i) / n),
      G - 1), so the first and last groups are open-ended, as deciles are.
      A numeric feature whose reference fills at most G bins (a few distinct values) keeps
      every bin as a group. Categorical features use the categories of both sides.
    - PSI = sum_i (q_i - p_i) · ln(q_i / p_i), proportions floored at ε = 1e-4 (Evidently's
      fill for empty bins), so an empty group contributes at most (1 - ε) · ln(1/ε) ≈ 9.2.
    - Jensen-Shannon distance = sqrt((KL(p || m) + KL(q || m)) / 2), m = (p + q) / 2, natural
      log (``scipy.spatial.distance.jensenshannon``); 0 · ln 0 = 0, no epsilon. At most
      sqrt(ln 2) ≈ 0.833.
    - Wasserstein (numeric) = W1 / max(std_ref, 0.001), std_ref the reference's population
      standard deviation (Evidently's normalisation and floor). W1 = ∫ |F_cur - F_ref| dx
      with both CDFs piecewise linear: values uniform within a bin, the outermost bins
      bounded by the smaller minimum and the larger maximum of the two sides. Against
      ``scipy.stats.wasserstein_distance`` on the rows this is within 0.01 (normalised) for
      smooth distributions; values sitting on a cut point (a feature of few distinct values)
      are spread over their bin, which can halve W1, hence ``default_constraints`` holds such
      features to Jensen-Shannon. std_ref comes from the sum and sum of squares
      (var = S2/n - (S/n)²), which loses about log10(mean²/var) of the 16 significant
      digits: centre features whose mean dwarfs their spread (timestamps).

Tests (reported, never alarmed on: at a million rows they flag shifts too small to matter)
    - KS: D = max over cut points e of |F_cur(e-) - F_ref(e-)|, and ``errorBound`` = max over
      bins j of min(p_j, q_j): the two-sample statistic on the rows lies in
      [D, D + errorBound]. Proof: across bin j both empirical CDFs rise monotonically, from
      F_ref = A, F_cur = C at its lower cut point to A + p_j, C + q_j at its upper one. With
      d_j = C - A and d_{j+1} = d_j + q_j - p_j the differences there, any x in the bin has
      F_cur(x) - F_ref(x) <= d_j + q_j (cur at most complete, ref not yet risen) and
      <= d_{j+1} + p_j (cur still to rise, ref already complete), hence
      <= max(d_j, d_{j+1}) + min(p_j, q_j); symmetrically >= min(d_j, d_{j+1}) - min(p_j, q_j).
      The values at the cut points are limits of values of the difference, so D is a lower
      bound. p-value = ``kolmogorov_sf(sqrt(n·m/(n+m)) · D)``, the asymptotic (Smirnov) law;
      scipy's ``ks_2samp(method="asymp")`` uses the finite-sample ``kstwo`` at
      round(n·m/(n+m)), which converges to it.
    - Chi-square test of homogeneity on the 2 x k table of category counts (k categories
      seen on either side): sum (O - E)² / E with E = row total · column total / N,
      dof = k - 1 (``scipy.stats.chi2_contingency(correction=False)``), p = ``chi2_sf``.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from modelops.domain.drift import (
    CategoricalSummary,
    Constraints,
    DriftReport,
    FeatureConstraint,
    FeatureDrift,
    FeatureSummary,
    NumericSummary,
    Status,
    Summary,
    TestResult,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
Column = Sequence[Any] | npt.NDArray[Any]

# Distances (module docstring): the coarse groups, PSI's floor, Evidently's floor on the
# normaliser, and the most distinct values a numeric feature held to Jensen-Shannon has.
GROUPS = 10
PSI_EPSILON = 1e-4
MIN_STD = 1e-3
FEW_VALUES = 5
# Cut points beyond the reference's extremes, in reference standard deviations.
EXTENSION = np.concatenate([0.25 * np.arange(1, 33), 8 * 1.25 ** np.arange(1, 32)])
# Binning: a lookup table of CELLS cells over the reference's central range (the cut points
# at CENTRAL and 1 - CENTRAL of its mass), then at most STEPS correction passes.
CELLS = 16_384
CENTRAL = 0.01
STEPS = 4
# p-values: series and continued fractions stop when a term no longer changes the result;
# TINY keeps Lentz's algorithm from dividing by zero.
PRECISION = sys.float_info.epsilon
MAX_TERMS = 100_000
TINY = 1e-300


# --- p-values -------------------------------------------------------------------------------


def chi2_sf(x: float, dof: float) -> float:
    """P(X >= x) for X ~ chi-square(dof): the regularised upper incomplete gamma function
    Q(dof/2, x/2). With a = dof/2, z = x/2 and the prefactor z^a e^-z / Γ(a) (through
    ``math.lgamma``): for z < a + 1, Q = 1 - prefactor · sum_n z^n / (a (a+1) ... (a+n));
    otherwise Q = prefactor · the continued fraction 1/(z+1-a- 1·(1-a)/(z+3-a- 2·(2-a)/...))
    (modified Lentz). Relative error about 1e-15 · max(30, dof): the rounding of the
    prefactor's exponent, which grows with dof."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive: {dof}")
    if x <= 0:
        return 1.0
    a, z = dof / 2, x / 2
    log_prefactor = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:
        term = total = 1 / a
        for n in range(1, MAX_TERMS):
            term *= z / (a + n)
            total += term
            if term < total * PRECISION:
                return max(0.0, 1 - math.exp(log_prefactor) * total)
    else:
        b = z + 1 - a
        c, d = 1 / TINY, 1 / b
        fraction = d
        for n in range(1, MAX_TERMS):
            an = -n * (n - a)
            b += 2
            d = an * d + b
            d = 1 / (d if abs(d) > TINY else TINY)
            c = b + an / c
            c = c if abs(c) > TINY else TINY
            fraction *= d * c
            if abs(d * c - 1) < PRECISION:
                return math.exp(log_prefactor) * fraction
    raise ArithmeticError(f"chi2_sf({x}, {dof}) did not converge")


def kolmogorov_sf(lam: float) -> float:
    """P(K > λ) for the Kolmogorov distribution (``scipy.stats.kstwobign``), the limit of
    sqrt(n) · D_n. For λ >= 1: 2 · sum_{k>=1} (-1)^(k-1) e^(-2 k² λ²); below, one minus the
    Jacobi-transformed CDF sqrt(2π)/λ · sum_{k>=1} e^(-(2k-1)² π² / (8 λ²)). Both series
    converge within a few terms; relative error about 1e-14."""
    if lam <= 0:
        return 1.0
    if lam < 1:
        cdf = 0.0
        for k in range(1, MAX_TERMS):
            term = math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8 * lam * lam))
            cdf += term
            if term <= cdf * PRECISION:
                break
        return 1 - math.sqrt(2 * math.pi) / lam * cdf
    sf = 0.0
    for k in range(1, MAX_TERMS):
        term = math.exp(-2 * k * k * lam * lam)
        sf += term if k % 2 else -term
        if term <= sf * PRECISION:
            break
    return 2 * sf


# --- summaries ------------------------------------------------------------------------------


def reference_summary(
    columns: Mapping[str, Column], categorical: Collection[str] = (), bins: int = 200
) -> Summary:
    """The baseline: each column summarised, numeric ones over cut points from their own
    values (``bins`` equal-mass bins, refined towards the tails and extended beyond the
    range: module docstring), those named in ``categorical`` by value."""
    if bins < 2:
        raise ValueError("bins must be at least 2")
    if unknown := set(categorical) - set(columns):
        raise ValueError(f"categorical features not in the columns: {sorted(unknown)}")
    rows = _rows(columns)
    features: dict[str, FeatureSummary] = {}
    for name, column in columns.items():
        if name in categorical:
            features[name] = _categorical(column, 0)
        else:
            values, missing = _floats(column)
            ordered = np.sort(values)
            edges = _cut_points(ordered, bins)
            below = np.searchsorted(ordered, edges, side="left")  # values < each cut point
            counts = np.diff(below, prepend=0, append=ordered.size)
            features[name] = _numeric(ordered, missing, edges, counts)
    return Summary(rows=rows, features=features)


def summarise(
    columns: Mapping[str, Column],
    reference: Summary,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Summary:
    """New rows summarised like the reference (its features, kinds and cut points); a
    feature absent from ``columns`` has every row missing, other columns are ignored."""
    rows = _rows(columns)
    features: dict[str, FeatureSummary] = {}
    for name, baseline in reference.features.items():
        column = columns.get(name)
        if isinstance(baseline, CategoricalSummary):
            features[name] = _categorical((), rows) if column is None else _categorical(column, 0)
        else:
            values, missing = (np.empty(0), rows) if column is None else _floats(column)
            edges = np.asarray(baseline.edges)
            index = _bin_index(values, edges, *_central_range(baseline))
            counts = np.bincount(index, minlength=edges.size + 1)
            features[name] = _numeric(values, missing, edges, counts)
    return Summary(rows=rows, features=features, start=start, end=end)


def merge(summaries: Sequence[Summary]) -> Summary:
    """The exact summary of the union of the summaries' rows, over the earliest start and
    the latest end. Raises ValueError unless all have the same features, kinds and edges."""
    if not summaries:
        raise ValueError("nothing to merge")
    first = summaries[0]
    for summary in summaries[1:]:
        if summary.features.keys() != first.features.keys():
            raise ValueError("summaries of different features cannot be merged")
        for name, feature in summary.features.items():
            _check_compatible(name, first.features[name], feature)
    features = {
        name: _merge_feature([s.features[name] for s in summaries]) for name in first.features
    }
    starts = [s.start for s in summaries if s.start is not None]
    ends = [s.end for s in summaries if s.end is not None]
    return Summary(
        rows=sum(s.rows for s in summaries),
        features=features,
        start=min(starts, default=None),
        end=max(ends, default=None),
    )


def default_constraints(reference: Summary) -> Constraints:
    """Every feature of the reference at its kind's default metric and thresholds, except
    that a numeric feature of at most 5 distinct reference values (non-empty bins) is held
    to Jensen-Shannon distance, as Evidently does above 1000 rows: W1 from a histogram
    misplaces values that sit on a cut point (module docstring)."""
    return Constraints(
        features={
            name: FeatureConstraint(kind="numeric", metric="jensenShannon")
            if isinstance(feature, NumericSummary)
            and np.count_nonzero(feature.counts) <= FEW_VALUES
            else FeatureConstraint.model_validate({"kind": feature.kind})
            for name, feature in reference.features.items()
        }
    )


def _rows(columns: Mapping[str, Column]) -> int:
    lengths = {len(column) for column in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns have different lengths: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _floats(column: Column) -> tuple[FloatArray, int]:
    """The finite values of a column as float64, and how many were missing (None, NaN,
    infinite, or text that is not a number)."""
    try:
        array = np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):  # mixed or unparseable entries: parse one by one
        array = np.fromiter(map(_float_or_nan, column), dtype=np.float64, count=len(column))
    if array.ndim != 1:
        raise ValueError(f"a column must be one-dimensional, not of shape {array.shape}")
    finite = np.isfinite(array)
    if finite.all():
        return array, 0
    return array[finite], int(array.size - np.count_nonzero(finite))


def _float_or_nan(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _cut_points(ordered: FloatArray, bins: int) -> FloatArray:
    """The reference's cut points (module docstring) from its sorted values: its values at
    the quantile levels, then the extension beyond its extremes, deduplicated."""
    n = ordered.size
    if n == 0:
        return np.empty(0)
    tail = 0.5 ** np.arange(1, max(0, math.ceil(math.log2(n / bins))) + 1) / bins
    levels = np.concatenate([tail[::-1], np.arange(1, bins) / bins, 1 - tail])
    quantiles = ordered[np.clip(np.ceil(levels * n).astype(np.int64) - 1, 0, n - 1)]
    offsets = max(float(np.std(ordered)), MIN_STD) * EXTENSION
    return np.unique(np.concatenate([ordered[0] - offsets, quantiles, ordered[-1] + offsets]))


def _central_range(reference: NumericSummary) -> tuple[float, float]:
    """The cut points below which the reference has CENTRAL and 1 - CENTRAL of its values
    (equal when there are none)."""
    if not reference.edges:
        return 0.0, 0.0
    below = np.cumsum(reference.counts[:-1])
    share = np.array([CENTRAL, 1 - CENTRAL]) * reference.count
    lo, hi = np.minimum(np.searchsorted(below, share), len(reference.edges) - 1)
    return reference.edges[lo], reference.edges[hi]


def _bin_index(values: FloatArray, edges: FloatArray, lo: float, hi: float) -> IntArray:
    """Each value's bin, ``np.searchsorted(edges, values, side="right")``, about three times
    faster than that binary search for values in [lo, hi] (the central range: most of them).
    A table over CELLS equal cells of [lo, hi] guesses the bin of each cell's start; up to
    STEPS vectorised passes move the guesses up while a value >= its bin's upper cut point;
    values outside [lo, hi], or whose guess is still not their bin (rounding, or more than
    STEPS cut points in a cell), are searched directly."""
    if not lo < hi:
        return np.searchsorted(edges, values, side="right")
    scale = CELLS / (hi - lo)
    position = (values - lo) * scale
    table = np.searchsorted(edges, lo + np.arange(CELLS) / scale, side="right")
    index = table[np.clip(position, 0, CELLS - 1).astype(np.intp)]
    lower, upper = np.append(-np.inf, edges), np.append(edges, np.inf)
    ahead = values >= upper[index]
    for _ in range(STEPS):
        if not ahead.any():
            break
        index += ahead
        ahead = values >= upper[index]
    wrong = ahead | (values < lower[index]) | (position < 0) | (position >= CELLS)
    misplaced = np.flatnonzero(wrong)
    index[misplaced] = np.searchsorted(edges, values[misplaced], side="right")
    return index


def _numeric(
    values: FloatArray, missing: int, edges: FloatArray, counts: IntArray
) -> NumericSummary:
    empty = values.size == 0
    return NumericSummary(
        edges=tuple(edges.tolist()),
        counts=tuple(counts.tolist()),
        count=values.size,
        missing=missing,
        min=None if empty else float(values.min()),
        max=None if empty else float(values.max()),
        sum=float(values.sum()),
        sumSquares=float(np.dot(values, values)),
    )


def _categorical(column: Iterable[Any], missing: int) -> CategoricalSummary:
    """Counts per value as text; None, NaN and "" are missing (added to ``missing``)."""
    counts: dict[str, int] = {}
    items = column.tolist() if isinstance(column, np.ndarray) else column
    for value, n in Counter(items).items():
        if (
            value is None
            or (isinstance(value, str) and not value)
            or (isinstance(value, float) and math.isnan(value))
        ):
            missing += n
        else:
            key = str(value)
            counts[key] = counts.get(key, 0) + n
    return CategoricalSummary(
        counts=dict(sorted(counts.items())), count=sum(counts.values()), missing=missing
    )


def _check_compatible(name: str, left: FeatureSummary, right: FeatureSummary) -> None:
    if left.kind != right.kind:
        raise ValueError(f"{name}: a {left.kind} and a {right.kind} summary do not combine")
    if (
        isinstance(left, NumericSummary)
        and isinstance(right, NumericSummary)
        and left.edges != right.edges
    ):
        raise ValueError(f"{name}: summaries over different edges do not combine")


def _merge_feature(parts: list[FeatureSummary]) -> FeatureSummary:
    missing = sum(part.missing for part in parts)
    count = sum(part.count for part in parts)
    numeric = [part for part in parts if isinstance(part, NumericSummary)]
    categorical = [part for part in parts if isinstance(part, CategoricalSummary)]
    if categorical:
        counts: Counter[str] = Counter()
        for part in categorical:
            counts.update(part.counts)
        return CategoricalSummary(counts=dict(sorted(counts.items())), count=count, missing=missing)
    mins = [part.min for part in numeric if part.min is not None]
    maxs = [part.max for part in numeric if part.max is not None]
    return NumericSummary(
        edges=numeric[0].edges,
        counts=tuple(int(c) for c in np.sum([part.counts for part in numeric], axis=0)),
        count=count,
        missing=missing,
        min=min(mins, default=None),
        max=max(maxs, default=None),
        sum=math.fsum(part.sum for part in numeric),
        sumSquares=math.fsum(part.sumSquares for part in numeric),
    )


# --- comparison -----------------------------------------------------------------------------


def compare(reference: Summary, current: Summary, constraints: Constraints) -> DriftReport:
    """Each constrained feature's distances, tests and verdict (module docstring), and the
    dataset verdict: drift when at least ``datasetDriftShare`` of the features are at alarm.
    Raises ValueError when a feature is missing from either summary, its kind disagrees
    with its constraint, the current summary is not over the reference's edges, or a side
    has no values for it (drift is undefined; its ``missing`` count says why)."""
    results = []
    for name, constraint in constraints.features.items():
        baseline, window = reference.features.get(name), current.features.get(name)
        if baseline is None or window is None:
            raise ValueError(f"{name}: not in both the reference and the current summary")
        _check_compatible(name, baseline, window)
        if constraint.kind != baseline.kind:
            raise ValueError(
                f"{name}: constrained as {constraint.kind}, summarised as {baseline.kind}"
            )
        if baseline.count == 0 or window.count == 0:
            raise ValueError(
                f"{name}: no values to compare (reference {baseline.count}, current {window.count})"
            )
        results.append(_feature_drift(name, baseline, window, constraint))
    drifted = tuple(r.feature for r in results if r.status == "alarm")
    share = len(drifted) / len(results) if results else 0.0
    return DriftReport(
        features=tuple(results),
        drifted=drifted,
        warned=tuple(r.feature for r in results if r.status == "warn"),
        driftShare=share,
        datasetDrift=bool(results) and share >= constraints.datasetDriftShare,
    )


def _feature_drift(
    name: str, baseline: FeatureSummary, window: FeatureSummary, constraint: FeatureConstraint
) -> FeatureDrift:
    # compare() has checked that both sides are of the same kind.
    measures = (
        _numeric_measures(baseline, cast(NumericSummary, window))
        if isinstance(baseline, NumericSummary)
        else _categorical_measures(baseline, cast(CategoricalSummary, window))
    )
    value = float(measures[constraint.metric])
    status: Status = (
        "alarm" if value >= constraint.alarm else "warn" if value >= constraint.warn else "ok"
    )
    return FeatureDrift(
        feature=name,
        kind=baseline.kind,
        metric=constraint.metric,
        value=value,
        warn=constraint.warn,
        alarm=constraint.alarm,
        status=status,
        referenceRows=baseline.count,
        currentRows=window.count,
        **measures,
    )


def _numeric_measures(baseline: NumericSummary, window: NumericSummary) -> dict[str, Any]:
    ref_counts = np.asarray(baseline.counts, dtype=np.int64)
    p = ref_counts / baseline.count
    q = np.asarray(window.counts, dtype=np.float64) / window.count
    group = (
        np.arange(ref_counts.size)
        if np.count_nonzero(ref_counts) <= GROUPS
        else np.minimum((np.cumsum(ref_counts) - ref_counts) * GROUPS // baseline.count, GROUPS - 1)
    )
    # With weights, bincount sums floats (its stubs say integers).
    grouped_p = cast(FloatArray, np.bincount(group, weights=p, minlength=GROUPS))
    grouped_q = cast(FloatArray, np.bincount(group, weights=q, minlength=GROUPS))
    # CDFs at the bin boundaries lo, e1, ..., eK, hi (F(e-): the mass below each cut point).
    diff = np.concatenate([[0.0], np.cumsum(q - p)])
    diff[-1] = 0.0  # both CDFs reach 1; keep rounding out of the last boundary
    return {
        "psi": _psi(grouped_p, grouped_q),
        "jensenShannon": _jensen_shannon(grouped_p, grouped_q),
        "wasserstein": _wasserstein(baseline, window, diff) / _std(baseline),
        "ks": _ks(diff, p, q, baseline.count, window.count),
        "chiSquare": None,
    }


def _wasserstein(baseline: NumericSummary, window: NumericSummary, diff: FloatArray) -> float:
    """∫ |F_cur - F_ref| with both CDFs linear within each bin: on a bin of width L whose
    boundary differences are a and b, L (|a| + |b|) / 2, less L |a| |b| / (|a| + |b|) when
    a and b have opposite signs (the difference crosses zero inside)."""
    lo = min(v for v in (baseline.min, window.min) if v is not None)
    hi = max(v for v in (baseline.max, window.max) if v is not None)
    widths = np.diff(np.clip(np.concatenate([[lo], baseline.edges, [hi]]), lo, hi))
    a, b = np.abs(diff[:-1]), np.abs(diff[1:])
    crossing = diff[:-1] * diff[1:] < 0
    inside = np.divide(a * b, a + b, out=np.zeros_like(a), where=crossing)
    return float(np.sum(widths * ((a + b) / 2 - inside)))


def _std(summary: NumericSummary) -> float:
    mean = summary.sum / summary.count
    variance = max(summary.sumSquares / summary.count - mean * mean, 0.0)
    return max(math.sqrt(variance), MIN_STD)


def _ks(diff: FloatArray, p: FloatArray, q: FloatArray, n: int, m: int) -> TestResult:
    statistic = float(np.max(np.abs(diff)))
    return TestResult(
        statistic=statistic,
        pValue=kolmogorov_sf(math.sqrt(n * m / (n + m)) * statistic),
        errorBound=float(np.max(np.minimum(p, q))),
    )


def _categorical_measures(
    baseline: CategoricalSummary, window: CategoricalSummary
) -> dict[str, Any]:
    categories = sorted(baseline.counts.keys() | window.counts.keys())
    table = np.array(
        [[summary.counts.get(c, 0) for c in categories] for summary in (baseline, window)],
        dtype=np.float64,
    )
    p, q = table[0] / baseline.count, table[1] / window.count
    return {
        "psi": _psi(p, q),
        "jensenShannon": _jensen_shannon(p, q),
        "wasserstein": None,
        "ks": None,
        "chiSquare": _chi_square(table),
        "newCategories": tuple(c for c, r, w in zip(categories, *table, strict=True) if r == 0 < w),
    }


def _chi_square(table: FloatArray) -> TestResult:
    """Homogeneity of the two rows of a 2 x k table of counts (no empty columns)."""
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return TestResult(statistic=statistic, pValue=chi2_sf(statistic, dof) if dof else 1.0, dof=dof)


def _psi(p: FloatArray, q: FloatArray) -> float:
    p, q = np.maximum(p, PSI_EPSILON), np.maximum(q, PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def _jensen_shannon(p: FloatArray, q: FloatArray) -> float:
    m = (p + q) / 2
    divergence = sum(float(np.sum(x[x > 0] * np.log(x[x > 0] / m[x > 0]))) for x in (p, q))
    return math.sqrt(max(divergence / 2, 0.0))
