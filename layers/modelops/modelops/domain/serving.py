"""Serving: what a deployment asks for, the SageMaker requests it becomes, and our own
canary analysis.

A deployment puts one model version behind an endpoint, optionally next to named A/B
variants and one shadow variant, with data capture. The canary analysis compares the new
version (canary) with the version it replaces (baseline) over the bake window: error rate,
p95 latency, and how far apart their prediction distributions are (Jensen-Shannon
divergence of the predicted labels, from data capture). Any threshold passed means
rollback; the decision carries the evidence that led to it.

Stdlib and pydantic only (no numpy): handlers import this.
"""

from __future__ import annotations

import base64
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelops import platform
from modelops.domain import compute

VARIANT_NAME = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
Env = Literal["sandbox", "staging", "prod"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Thresholds(_Model):
    """When a canary is rolled back: any one passed is enough."""

    maxErrorRate: float = Field(default=0.01, ge=0, le=1, description="5xx / invocations.")
    maxP95LatencyRatio: float = Field(
        default=1.5, gt=0, description="Canary p95 over baseline p95."
    )
    minLatencyRegressionMs: float = Field(
        default=25.0,
        ge=0,
        description="A p95 regression smaller than this is noise, whatever the ratio.",
    )
    maxPredictionDivergence: float = Field(
        default=0.1, ge=0, le=1, description="Jensen-Shannon divergence (base 2) of labels."
    )
    minInvocations: int = Field(
        default=50, ge=1, description="Canary requests needed before a verdict."
    )


class CanaryConfig(_Model):
    type: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = "CANARY"
    canaryPercent: int = Field(default=10, ge=1, le=50, description="SageMaker allows <= 50%.")
    linearStepPercent: int = Field(default=25, ge=10, le=50)
    bakeSeconds: int = Field(default=300, ge=0, le=3600)
    thresholds: Thresholds = Field(default_factory=Thresholds)


class VariantSpec(_Model):
    name: str = Field(pattern=VARIANT_NAME)
    modelId: str = Field(pattern=r"^mdl-[0-9a-f]{24}$")
    weight: float = Field(gt=0, le=1000)


class ShadowSpec(_Model):
    modelId: str = Field(pattern=r"^mdl-[0-9a-f]{24}$")
    samplingPercent: int = Field(default=100, ge=1, le=100)


class Autoscaling(_Model):
    """Application Auto Scaling target tracking on invocations per instance, plus an
    optional pre-warm: a higher minimum ahead of a batch window."""

    minInstances: int = Field(default=1, ge=1, le=100)
    maxInstances: int = Field(default=2, ge=1, le=100)
    targetInvocationsPerInstance: int = Field(default=100, ge=1)
    prewarm: list[dict[str, Any]] = Field(
        default_factory=list,
        description='Scheduled minimums: [{"at": "cron(0 8 * * ? *)", "minInstances": 4}].',
    )

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.maxInstances < self.minInstances:
            raise ValueError("maxInstances must be >= minInstances")
        return self


class DeployRequest(_Model):
    modelId: str = Field(pattern=r"^mdl-[0-9a-f]{24}$")
    env: Env
    route: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,40}$", description="Endpoint base name.")
    instanceType: str = "ml.m5.large"
    instanceCount: int = Field(default=1, ge=1, le=100)
    canary: CanaryConfig = Field(default_factory=CanaryConfig)
    variants: tuple[VariantSpec, ...] = Field(
        default=(), max_length=9, description="A/B variants served next to the model."
    )
    shadow: ShadowSpec | None = None
    dataCapturePercent: int = Field(default=100, ge=0, le=100)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)

    @model_validator(mode="after")
    def _possible(self) -> DeployRequest:
        if self.instanceType not in compute.INSTANCE_TYPES:
            raise ValueError(f"instanceType {self.instanceType!r} is not offered")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or "primary" in names:
            raise ValueError("variant names must be unique and not 'primary'")
        return self


class DeploymentStatus(StrEnum):
    CREATING = "CREATING"
    BAKING = "BAKING"
    IN_SERVICE = "IN_SERVICE"
    ROLLED_BACK = "ROLLED_BACK"
    SUPERSEDED = "SUPERSEDED"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        return self in {
            DeploymentStatus.ROLLED_BACK,
            DeploymentStatus.SUPERSEDED,
            DeploymentStatus.FAILED,
        }


# --- the canary analysis ------------------------------------------------------------------


class VariantStats(_Model):
    """What one variant did during the bake window."""

    invocations: int = Field(ge=0)
    errors5xx: int = Field(ge=0)
    p95Ms: float = Field(default=0.0, ge=0, description="p95 ModelLatency in milliseconds.")
    labels: dict[str, int] = Field(default_factory=dict, description="Predicted label counts.")

    @property
    def error_rate(self) -> float:
        return self.errors5xx / self.invocations if self.invocations else 0.0


class CanaryDecision(_Model):
    verdict: Literal["promote", "rollback", "wait"]
    reasons: tuple[str, ...]
    evidence: dict[str, float]


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def js_divergence(p: Mapping[str, int], q: Mapping[str, int]) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two label count distributions."""
    total_p, total_q = sum(p.values()), sum(q.values())
    if not total_p or not total_q:
        return 0.0
    divergence = 0.0
    for label in set(p) | set(q):
        a, b = p.get(label, 0) / total_p, q.get(label, 0) / total_q
        m = (a + b) / 2
        if a:
            divergence += 0.5 * a * math.log2(a / m)
        if b:
            divergence += 0.5 * b * math.log2(b / m)
    return max(0.0, min(1.0, divergence))


def analyse(baseline: VariantStats, canary: VariantStats, thresholds: Thresholds) -> CanaryDecision:
    """Promote, roll back, or wait for more canary traffic."""
    evidence = {
        "canaryInvocations": float(canary.invocations),
        "baselineInvocations": float(baseline.invocations),
        "canaryErrorRate": canary.error_rate,
        "baselineErrorRate": baseline.error_rate,
        "canaryP95Ms": canary.p95Ms,
        "baselineP95Ms": baseline.p95Ms,
        "predictionDivergence": js_divergence(baseline.labels, canary.labels),
    }
    reasons = []
    if canary.error_rate > thresholds.maxErrorRate:
        reasons.append(f"error rate {canary.error_rate:.3f} > {thresholds.maxErrorRate:.3f}")
    slower = canary.p95Ms - baseline.p95Ms >= thresholds.minLatencyRegressionMs
    if baseline.p95Ms and slower and canary.p95Ms > thresholds.maxP95LatencyRatio * baseline.p95Ms:
        reasons.append(
            f"p95 latency {canary.p95Ms:.1f} ms > {thresholds.maxP95LatencyRatio:g}x "
            f"baseline {baseline.p95Ms:.1f} ms"
        )
    if evidence["predictionDivergence"] > thresholds.maxPredictionDivergence:
        reasons.append(
            f"prediction divergence {evidence['predictionDivergence']:.3f} > "
            f"{thresholds.maxPredictionDivergence:.3f}"
        )
    if reasons:
        return CanaryDecision(verdict="rollback", reasons=tuple(reasons), evidence=evidence)
    if canary.invocations < thresholds.minInvocations:
        return CanaryDecision(
            verdict="wait",
            reasons=(f"{canary.invocations} of {thresholds.minInvocations} canary requests",),
            evidence=evidence,
        )
    return CanaryDecision(verdict="promote", reasons=("within every threshold",), evidence=evidence)


def captured_body(part: Mapping[str, Any]) -> bytes:
    """A captured body: JSON and CSV as text, anything else base64 (SageMaker's encodings)."""
    data = str(part.get("data") or "")
    return base64.b64decode(data) if part.get("encoding") == "BASE64" else data.encode()


def captured_rows(
    line: str,
) -> tuple[str | None, list[list[float]], list[str]]:
    """One data-capture record: its inferenceId, the request's instances (JSON
    ``{"instances": [[...]]}`` or CSV rows) and the predicted labels of the response
    (``{"predictions": [{"label"}]}``). A part that is missing or unreadable yields no rows
    or labels rather than an error: capture is evidence, not a contract."""
    record = json.loads(line)
    data = record.get("captureData") or {}
    inference_id = (record.get("eventMetadata") or {}).get("inferenceId")
    rows: list[list[float]] = []
    labels: list[str] = []
    request = data.get("endpointInput") or {}
    try:
        body = captured_body(request).decode("utf-8")
        if "csv" in str(request.get("observedContentType", "")):
            rows = [[float(v) for v in r.split(",")] for r in body.splitlines() if r.strip()]
        else:
            rows = [[float(v) for v in r] for r in json.loads(body).get("instances") or ()]
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        rows = []
    response = data.get("endpointOutput") or {}
    try:
        predictions = json.loads(captured_body(response)).get("predictions") or ()
        labels = [str(p.get("label")) for p in predictions]
    except (ValueError, TypeError, AttributeError):
        labels = []
    return inference_id, rows, labels


def label_counts(predictions: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Predicted labels counted from captured responses (``{"predictions": [{"label"}]}``)."""
    counts: Counter[str] = Counter()
    for response in predictions:
        for prediction in response.get("predictions") or ():
            counts[str(prediction.get("label"))] += 1
    return dict(counts)


def traffic_steps(config: CanaryConfig) -> list[int]:
    """The canary's share of traffic at each step, ending at 100."""
    if config.type == "ALL_AT_ONCE":
        return [100]
    if config.type == "CANARY":
        return [config.canaryPercent, 100]
    steps = list(range(config.linearStepPercent, 100, config.linearStepPercent))
    return [*steps, 100]


# --- the gate: what may be deployed where ---------------------------------------------------

# The stages a model must have reached (by a completed, signed promotion) for each env.
REQUIRED_STAGES: dict[str, tuple[str, ...]] = {
    "sandbox": (),
    "staging": ("staging", "prod"),
    "prod": ("prod",),
}


class DeployProvenance(_Model):
    """Why a deployment was allowed: the artifact's digest, recomputed from the stored bytes,
    equals the one in the promotion statement the platform's key signed."""

    artifactRootDigest: str
    promotionId: str | None = None
    statementDigest: str | None = None
    signatureKeyId: str | None = None
    signedStage: str | None = None


class VariantState(_Model):
    """One production variant of the endpoint as this deployment configured it."""

    name: str
    modelId: str
    version: str
    role: Literal["baseline", "canary", "ab"]
    weight: float = Field(ge=0)
    sagemakerModel: str


class StatusChange(_Model):
    status: DeploymentStatus
    at: datetime
    reason: str = ""


class DeploymentRecord(_Model):
    deployId: str = Field(pattern=r"^dep-[0-9a-f]{24}$")
    modelId: str
    family: str
    version: str
    env: Env
    route: str
    endpointName: str
    endpointConfigName: str
    status: DeploymentStatus
    statusReason: str = ""
    instanceType: str
    instanceCount: int
    autoscaling: Autoscaling
    canaryConfig: CanaryConfig
    variants: tuple[VariantState, ...]
    shadow: ShadowSpec | None = None
    shadowModel: str | None = None
    dataCapturePercent: int
    baselineDeployId: str | None = Field(
        default=None, description="The deployment this one replaces (rollback target)."
    )
    provenance: DeployProvenance
    decision: CanaryDecision | None = None
    metricsEndpoint: str = Field(description="Where the per-variant metrics are.")
    captureUri: str = Field(description="Where data capture writes (SageMaker's layout).")
    createdAt: datetime
    createdBy: str
    correlationId: str
    executionArn: str | None = None
    history: tuple[StatusChange, ...] = ()
    revision: int = 0

    @property
    def canary(self) -> VariantState:
        return next(v for v in self.variants if v.role == "canary")

    @property
    def baseline(self) -> VariantState | None:
        return next((v for v in self.variants if v.role == "baseline"), None)


def endpoint_name(route: str, env: str) -> str:
    return f"{platform.SERVING_PREFIX}{route}-{env}"


def sagemaker_model_name(model_id: str) -> str:
    """One SageMaker Model per registered model version (names are unique per account)."""
    return f"{platform.SERVING_PREFIX}{model_id}"
