"""CloudWatch percentiles for the local cloud.

moto's GetMetricStatistics ignores ``ExtendedStatistics`` (p50, p95, p99.9 ...), which the
canary analysis asks for (p95 ModelLatency per variant), as real CloudWatch answers. This
extension computes them from the datapoints' raw values, nearest-rank like the platform's
own analysis, and leaves every other statistic to moto.
"""

from __future__ import annotations

import math
import re
from typing import Any

from moto.cloudwatch.responses import CloudWatchResponse

_PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d{1,2})?)$")
_ORIGINAL: dict[str, Any] = {}


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return float(ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1])


def _get_metric_statistics(self: CloudWatchResponse) -> Any:
    result = _ORIGINAL["handler"](self)
    wanted = self._get_param("ExtendedStatistics") or []
    if not wanted:
        return result
    for bucket in result.result["Datapoints"]:
        values = [float(v) for v in bucket.metric_single_values_list]
        extended = {}
        for name in wanted:
            match = _PERCENTILE.match(name)
            if match and values:
                extended[name] = _percentile(values, float(match.group(1)))
        bucket.ExtendedStatistics = extended
    return result


def install() -> None:
    if "handler" not in _ORIGINAL:
        _ORIGINAL["handler"] = CloudWatchResponse.get_metric_statistics
        CloudWatchResponse.get_metric_statistics = _get_metric_statistics  # type: ignore[method-assign]


def uninstall() -> None:
    if "handler" in _ORIGINAL:
        CloudWatchResponse.get_metric_statistics = _ORIGINAL.pop("handler")  # type: ignore[method-assign]
