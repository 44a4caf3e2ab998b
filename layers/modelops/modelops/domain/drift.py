"""Drift documents: per-feature summaries of a window of rows, the constraints a feature is
held to, and the report comparing a window with the reference.

Summaries are mergeable: counts add, so per-hour summaries merge into any window without
re-reading rows (``modelops.domain.drift_stats.merge``). A numeric feature is summarised as
a histogram over the reference's quantile cut points plus its exact count, extremes, sum and
sum of squares; a categorical feature as its value counts. The computation lives in
``modelops.domain.drift_stats`` (numpy); this module is imported at cold start and needs only
pydantic.

Verdicts follow Evidently's defaults for large samples: normalised Wasserstein distance for
numeric features and Jensen-Shannon distance for categorical ones, drift at 0.1, dataset
drift when at least half the features drift. At a million rows a p-value flags shifts too
small to matter, so p-values (KS, chi-square) are reported and never alarmed on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import Field, model_validator

from modelops.domain.entities import Entity

SUMMARY_FORMAT: Final = "modelops.drift.summary/1"
CONSTRAINTS_FORMAT: Final = "modelops.drift.constraints/1"

Kind = Literal["numeric", "categorical"]
Metric = Literal["wasserstein", "jensenShannon", "psi"]
Status = Literal["ok", "warn", "alarm"]
DEFAULT_METRIC: dict[str, Metric] = {"numeric": "wasserstein", "categorical": "jensenShannon"}


class NumericSummary(Entity):
    """A numeric feature over a window. ``edges`` are the interior cut points e1 < ... < eK
    taken from the reference's quantiles; ``counts`` has K+1 bins: (-inf, e1), [e1, e2), ...,
    [eK, +inf). ``missing`` counts null, NaN, infinite and unparseable values, which count
    nowhere else; ``min``/``max`` are None when no value was seen."""

    kind: Literal["numeric"] = "numeric"
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    count: int
    missing: int
    min: float | None
    max: float | None
    sum: float
    sumSquares: float


class CategoricalSummary(Entity):
    """A categorical feature over a window: counts per value (as text); null, NaN and the
    empty string count as ``missing``."""

    kind: Literal["categorical"] = "categorical"
    counts: dict[str, int]
    count: int
    missing: int


FeatureSummary = Annotated[NumericSummary | CategoricalSummary, Field(discriminator="kind")]


class Summary(Entity):
    """Every monitored feature of ``rows`` rows, observed in the window [start, end)."""

    format: Literal["modelops.drift.summary/1"] = SUMMARY_FORMAT
    rows: int
    features: dict[str, FeatureSummary]
    start: datetime | None = None
    end: datetime | None = None


class FeatureConstraint(Entity):
    """The metric a feature's verdict is taken from and its thresholds: alarm when the
    value >= ``alarm``, warn when >= ``warn``. Without a metric: normalised Wasserstein for
    numeric features, Jensen-Shannon distance for categorical ones (Evidently's defaults
    above 1000 reference rows, whose threshold is 0.1)."""

    kind: Kind
    metric: Metric
    warn: float = Field(default=0.05, ge=0)
    alarm: float = Field(default=0.1, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_metric(cls, data: Any) -> Any:
        if isinstance(data, dict) and "metric" not in data and data.get("kind") in DEFAULT_METRIC:
            return {**data, "metric": DEFAULT_METRIC[data["kind"]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> FeatureConstraint:
        if self.metric == "wasserstein" and self.kind != "numeric":
            raise ValueError("the wasserstein metric needs a numeric feature")
        if self.warn > self.alarm:
            raise ValueError("warn must not exceed alarm")
        return self


class Constraints(Entity):
    """Per-feature constraints; the dataset drifts when at least ``datasetDriftShare`` of
    the features are at alarm."""

    format: Literal["modelops.drift.constraints/1"] = CONSTRAINTS_FORMAT
    features: dict[str, FeatureConstraint]
    datasetDriftShare: float = Field(default=0.5, gt=0, le=1)


class TestResult(Entity):
    """A two-sample test: its statistic and p-value; ``errorBound`` bounds |statistic - the
    statistic on the raw rows| when the statistic comes from binned summaries (KS), ``dof``
    is the degrees of freedom (chi-square)."""

    __test__ = False  # not a pytest class

    statistic: float
    pValue: float
    errorBound: float | None = None
    dof: int | None = None


class FeatureDrift(Entity):
    """One feature's comparison: every distance, the tests, and the verdict from ``metric``'s
    ``value`` against ``warn``/``alarm``. ``wasserstein`` is W1 divided by the reference's
    standard deviation (numeric only); ``newCategories`` are values of the current window
    the reference never had. ``referenceRows`` and ``currentRows`` count the values compared
    (missing values excluded)."""

    feature: str
    kind: Kind
    psi: float
    jensenShannon: float
    wasserstein: float | None
    ks: TestResult | None
    chiSquare: TestResult | None
    metric: Metric
    value: float
    warn: float
    alarm: float
    status: Status
    referenceRows: int
    currentRows: int
    newCategories: tuple[str, ...] = ()


class DriftReport(Entity):
    """Every constrained feature, those at alarm (``drifted``) and at warn (``warned``),
    the share of features at alarm, and whether that share makes the dataset drift."""

    features: tuple[FeatureDrift, ...]
    drifted: tuple[str, ...]
    warned: tuple[str, ...]
    driftShare: float
    datasetDrift: bool
