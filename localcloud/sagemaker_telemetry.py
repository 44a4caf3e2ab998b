"""What a SageMaker endpoint reports about its invocations, for the local endpoint executor.

* :class:`CaptureConfig` and :class:`CaptureWriter`: data capture as SageMaker writes it.
  One JSON record a line (``captureData.endpointInput``/``endpointOutput`` with
  ``observedContentType``, ``mode``, ``data`` and ``encoding``; ``eventMetadata`` with
  ``eventId``, ``inferenceId`` when the caller gave one, and ``inferenceTime``;
  ``eventVersion`` ``"0"``), in objects
  ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<uuid>.jsonl`` (the hour of the
  inference, UTC). ``InitialSamplingPercentage`` of the requests are captured, each with the
  parts ``CaptureOptions`` names. Content types listed in ``CaptureContentTypeHeader``'s
  ``CsvContentTypes``/``JsonContentTypes`` are written as text with encoding ``CSV``/
  ``JSON``; any other is ``BASE64`` (SageMaker's default when no header is configured).
  Records are buffered and written in batches: one object per endpoint, variant and hour
  each time the buffer is flushed.
* :class:`MetricAggregator`: the per-variant invocation metrics of namespace
  ``AWS/SageMaker`` (dimensions ``EndpointName``, ``VariantName``): ``Invocations``,
  ``Invocation4XXErrors``, ``Invocation5XXErrors`` (counts) and ``ModelLatency``,
  ``OverheadLatency`` (microseconds, as statistic sets), aggregated between flushes and sent
  with ``PutMetricData``.

Both are thread-safe; recording only appends under a lock, the AWS calls happen in
:meth:`flush`, which the executor calls from its own thread.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from localcloud.sagemaker_container import InvalidRequest, S3Location
from localcloud.sagemaker_io import LocalAws

__all__ = ["CaptureConfig", "CaptureWriter", "MetricAggregator", "capture_record"]

NAMESPACE = "AWS/SageMaker"
_MAX_DISTINCT_VALUES = 150  # CloudWatch's limit for Values in one datum
_MAX_METRIC_DATA = 1000  # PutMetricData: metric data items per call
_ENCODINGS = {"CsvContentTypes": "CSV", "JsonContentTypes": "JSON"}

logger = logging.getLogger(__name__)


def _media_type(content_type: str) -> str:
    return content_type.split(";", maxsplit=1)[0].strip().lower()


@dataclass(frozen=True)
class CaptureConfig:
    """An endpoint config's ``DataCaptureConfig`` with capture enabled."""

    destination: S3Location
    sampling_percentage: float
    modes: frozenset[str]
    encodings: Mapping[str, str] = field(default_factory=dict)  # media type -> CSV | JSON

    @classmethod
    def from_request(cls, raw: Mapping[str, Any] | None) -> CaptureConfig | None:
        """None without capture (no config, or ``EnableCapture`` false); InvalidRequest with
        the ValidationException message for a config SageMaker refuses."""
        if not raw or raw.get("EnableCapture") is False:
            return None
        sampling = raw.get("InitialSamplingPercentage")
        if not isinstance(sampling, int | float) or not 0 <= sampling <= 100:
            raise InvalidRequest("DataCaptureConfig.InitialSamplingPercentage must be 0 to 100")
        modes = {str(o.get("CaptureMode")) for o in raw.get("CaptureOptions") or []}
        if not modes or not modes <= {"Input", "Output"}:
            raise InvalidRequest(
                "DataCaptureConfig.CaptureOptions must hold CaptureMode Input and/or Output"
            )
        header = raw.get("CaptureContentTypeHeader") or {}
        encodings = {
            _media_type(str(content_type)): encoding
            for key, encoding in _ENCODINGS.items()
            for content_type in header.get(key) or []
        }
        return cls(
            destination=S3Location.parse(raw.get("DestinationS3Uri"), "DestinationS3Uri"),
            sampling_percentage=float(sampling),
            modes=frozenset(modes),
            encodings=encodings,
        )

    def describe(self) -> dict[str, Any]:
        """DescribeEndpoint's ``DataCaptureConfig`` summary."""
        return {
            "EnableCapture": True,
            "CaptureStatus": "Started",
            "CurrentSamplingPercentage": int(self.sampling_percentage),
            "DestinationS3Uri": self.destination.uri,
        }

    def part(self, mode: str, content_type: str, data: bytes) -> dict[str, str]:
        encoding = self.encodings.get(_media_type(content_type), "BASE64")
        if encoding == "BASE64":
            text = base64.b64encode(data).decode("ascii")
        else:
            text = data.decode("utf-8", "replace")
        return {
            "observedContentType": content_type,
            "mode": mode.upper(),
            "data": text,
            "encoding": encoding,
        }


def capture_record(
    config: CaptureConfig,
    *,
    request: tuple[str, bytes],
    response: tuple[str, bytes],
    inference_id: str | None,
    when: datetime,
) -> dict[str, Any]:
    """One data-capture record; ``request``/``response`` are (content type, body)."""
    capture: dict[str, Any] = {}
    if "Input" in config.modes:
        capture["endpointInput"] = config.part("Input", *request)
    if "Output" in config.modes:
        capture["endpointOutput"] = config.part("Output", *response)
    metadata = {"eventId": str(uuid.uuid4())}
    if inference_id:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"}


class CaptureWriter:
    """Buffers capture records and writes them as JSONL objects on :meth:`flush`."""

    def __init__(self, aws: LocalAws, batch_records: int, wake: threading.Event) -> None:
        self._aws = aws
        self._batch_records = batch_records
        self._wake = wake  # set when a full batch is waiting
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str], list[str]] = {}
        self._count = 0

    def add(
        self,
        config: CaptureConfig,
        *,
        region: str,
        endpoint: str,
        variant: str,
        record: dict[str, Any],
        when: datetime,
    ) -> None:
        prefix = config.destination.key.strip("/")
        folder = f"{endpoint}/{variant}/{when.astimezone(UTC):%Y/%m/%d/%H}"
        folder = f"{prefix}/{folder}" if prefix else folder
        line = json.dumps(record, separators=(",", ":"))
        with self._lock:
            self._pending.setdefault((region, config.destination.bucket, folder), []).append(line)
            self._count += 1
            full = self._count >= self._batch_records
        if full:
            self._wake.set()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending, self._count = self._pending, {}, 0
        for (region, bucket, folder), lines in pending.items():
            key = f"{folder}/{uuid.uuid4()}.jsonl"
            try:
                self._aws.client("s3", region).put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=("\n".join(lines) + "\n").encode("utf-8"),
                    ContentType="application/jsonlines",
                )
            except Exception as exc:  # capture is best effort: invocations go on
                logger.warning(
                    "dropped %d capture records for s3://%s/%s: %r", len(lines), bucket, key, exc
                )


@dataclass
class _VariantStats:
    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_us: list[float] = field(default_factory=list)
    overhead_us: list[float] = field(default_factory=list)


class MetricAggregator:
    """Per-variant invocation metrics, sent to CloudWatch on :meth:`flush`."""

    def __init__(self, aws: LocalAws) -> None:
        self._aws = aws
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str, str], _VariantStats] = {}

    def record(
        self,
        *,
        region: str,
        endpoint: str,
        variant: str,
        status: int,
        model_us: float | None,
        overhead_us: float,
    ) -> None:
        with self._lock:
            stats = self._stats.setdefault((region, endpoint, variant), _VariantStats())
            stats.invocations += 1
            stats.errors_4xx += 400 <= status < 500
            stats.errors_5xx += status >= 500
            if model_us is not None:
                stats.model_us.append(model_us)
            stats.overhead_us.append(overhead_us)

    def flush(self) -> None:
        with self._lock:
            collected, self._stats = self._stats, {}
        now = datetime.now(UTC)
        by_region: dict[str, list[dict[str, Any]]] = {}
        for (region, endpoint, variant), stats in collected.items():
            dimensions = [
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ]
            data = by_region.setdefault(region, [])
            for name, count in (
                ("Invocations", stats.invocations),
                ("Invocation4XXErrors", stats.errors_4xx),
                ("Invocation5XXErrors", stats.errors_5xx),
            ):
                data.append(
                    {
                        "MetricName": name,
                        "Dimensions": dimensions,
                        "Timestamp": now,
                        "Value": float(count),
                        "Unit": "Count",
                    }
                )
            for name, values in (
                ("ModelLatency", stats.model_us),
                ("OverheadLatency", stats.overhead_us),
            ):
                # Values and Counts (a distribution, up to 150 distinct values a datum),
                # not a statistic set: percentiles (p95 for the canary analysis) need them.
                counted = sorted(Counter(round(v) for v in values).items())
                for start in range(0, len(counted), _MAX_DISTINCT_VALUES):
                    chunk = counted[start : start + _MAX_DISTINCT_VALUES]
                    data.append(
                        {
                            "MetricName": name,
                            "Dimensions": dimensions,
                            "Timestamp": now,
                            "Values": [float(value) for value, _ in chunk],
                            "Counts": [float(count) for _, count in chunk],
                            "Unit": "Microseconds",
                        }
                    )
        for region, data in by_region.items():
            for start in range(0, len(data), _MAX_METRIC_DATA):
                try:
                    self._aws.client("cloudwatch", region).put_metric_data(
                        Namespace=NAMESPACE, MetricData=data[start : start + _MAX_METRIC_DATA]
                    )
                except Exception as exc:  # metrics are best effort: invocations go on
                    logger.warning("dropped %d SageMaker metric data: %r", len(data), exc)
