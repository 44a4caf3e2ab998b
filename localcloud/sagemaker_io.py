"""What a training instance exchanges with the rest of AWS, for the local training executor.

* S3 downloads of channels (``S3Prefix``, full replication or ``ShardedByS3Key``) and of a
  checkpoint prefix, refusing keys that would land outside the target directory;
* :class:`CheckpointSync`: the checkpoint directory mirrored to ``CheckpointConfig.S3Uri``
  (new or changed files are uploaded; names starting with ``.`` are in-progress temporary
  files and skipped; nothing is deleted from S3), as SageMaker's checkpoint sync does;
* :class:`LogShipper`: stdout/stderr lines to CloudWatch Logs (group
  ``/aws/sagemaker/TrainingJobs`` unless told otherwise), in batches within ``PutLogEvents``
  limits;
* :class:`MetricParser`: ``AlgorithmSpecification.MetricDefinitions`` applied to every line
  (the first capture group is the value), the last value of each metric kept.

Every AWS call goes through boto3 clients of the endpoint the executor was given
(:class:`LocalAws`, shared by the training and the endpoint executors).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from localcloud.sagemaker_container import Channel, S3Location, channel_relative_path

__all__ = [
    "LOG_GROUP",
    "CheckpointSync",
    "DataError",
    "LocalAws",
    "LogShipper",
    "MetricParser",
    "download_channel",
]

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# PutLogEvents limits: events per batch, bytes per batch (message bytes + 26 per event),
# bytes per event.
_MAX_BATCH_EVENTS = 10_000
_MAX_BATCH_BYTES = 1_048_576
_EVENT_OVERHEAD = 26
_MAX_EVENT_BYTES = 262_144 - _EVENT_OVERHEAD
# The executors' own identity towards moto (its default account); never given to scripts.
_CREDENTIALS = {"aws_access_key_id": "AKIALOCALSAGEMAKER00", "aws_secret_access_key": "local"}

logger = logging.getLogger(__name__)


class LocalAws:
    """boto3 clients of the local cloud's endpoint, one per (service, region), shared by the
    executor's threads (boto3 clients are thread-safe)."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str], Any] = {}

    def client(self, service: str, region: str) -> Any:
        with self._lock:
            key = (service, region)
            if key not in self._clients:
                session = boto3.session.Session(region_name=region, **_CREDENTIALS)
                self._clients[key] = session.client(
                    service,
                    endpoint_url=self.endpoint_url,
                    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
                )
            return self._clients[key]


class DataError(Exception):
    """Data that cannot be brought onto the instance (missing, or a key escaping its directory)."""


def _list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return sorted(keys)


def _inside(directory: Path, relative: str) -> Path:
    target = (directory / relative).resolve()
    if not relative or not target.is_relative_to(directory.resolve()):
        raise DataError(f"S3 key {relative!r} would land outside {directory.name}/")
    return target


def _download(s3: Any, bucket: str, key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    s3.download_file(bucket, key, str(target))


def download_channel(
    s3: Any, channel: Channel, directory: Path, host_index: int, host_count: int
) -> list[str]:
    """Download the channel's objects (this host's shard if sharded) into ``directory``."""
    keys = _list_keys(s3, channel.source.bucket, channel.source.key)
    if channel.sharded:
        keys = keys[host_index::host_count]
    for key in keys:
        relative = channel_relative_path(channel.source.key, key)
        _download(s3, channel.source.bucket, key, _inside(directory, relative))
    return keys


def _signature(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


class CheckpointSync:
    """One host's checkpoint directory and its S3 prefix."""

    def __init__(self, s3: Any, location: S3Location, directory: Path) -> None:
        self._s3 = s3
        self._location = location
        self._prefix = location.key.rstrip("/") + "/" if location.key.strip("/") else ""
        self._directory = directory
        self._synced: dict[str, tuple[int, int]] = {}

    def restore(self) -> int:
        """Download every object under the prefix into the (fresh) directory."""
        keys = _list_keys(self._s3, self._location.bucket, self._prefix)
        for key in keys:
            relative = key[len(self._prefix) :]
            target = _inside(self._directory, relative)
            _download(self._s3, self._location.bucket, key, target)
            self._synced[relative] = _signature(target)
        return len(keys)

    def sync(self, uploaded: Callable[[str], bool] | None = None) -> bool:
        """Upload new and changed files. ``uploaded(key)`` is called after each upload; if it
        returns True, syncing stops there and True is returned (the instance is gone)."""
        for path in sorted(self._directory.rglob("*")):
            relative = path.relative_to(self._directory).as_posix()
            if any(part.startswith(".") for part in relative.split("/")) or not path.is_file():
                continue
            location = self._location.child(relative)
            try:
                signature = _signature(path)
                if self._synced.get(relative) == signature:
                    continue
                self._s3.upload_file(str(path), location.bucket, location.key)
            except FileNotFoundError:
                continue  # replaced or removed meanwhile: the next pass sees what is there
            self._synced[relative] = signature
            if uploaded is not None and uploaded(location.uri):
                return True
        return False


class LogShipper:
    """Buffers a job's log lines and sends them to CloudWatch Logs on :meth:`flush`."""

    def __init__(self, logs: Any, send_lock: threading.Lock, group: str = LOG_GROUP) -> None:
        self._logs = logs
        self._group = group
        self._send_lock = send_lock  # one PutLogEvents at a time in this executor
        self._lock = threading.Lock()
        self._pending: list[tuple[str, int, str]] = []
        self._streams: set[str] = set()

    def open(self, stream: str) -> None:
        """Create the group (once) and the stream; an existing stream is reused."""
        for create, kwargs in (
            (self._logs.create_log_group, {"logGroupName": self._group}),
            (self._logs.create_log_stream, {"logGroupName": self._group, "logStreamName": stream}),
        ):
            with contextlib.suppress(self._logs.exceptions.ResourceAlreadyExistsException):
                create(**kwargs)
        with self._lock:
            self._streams.add(stream)

    def add(self, stream: str, timestamp: float, message: str) -> None:
        if not message:
            return  # CloudWatch refuses empty events
        encoded = message.encode("utf-8")
        if len(encoded) > _MAX_EVENT_BYTES:
            message = encoded[:_MAX_EVENT_BYTES].decode("utf-8", "ignore")
        with self._lock:
            self._pending.append((stream, int(timestamp * 1000), message))

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        by_stream: dict[str, list[dict[str, Any]]] = {}
        for stream, timestamp, message in sorted(pending, key=lambda e: e[1]):
            by_stream.setdefault(stream, []).append({"timestamp": timestamp, "message": message})
        for stream, events in by_stream.items():
            for batch in _batches(events):
                try:
                    with self._send_lock:
                        self._logs.put_log_events(
                            logGroupName=self._group, logStreamName=stream, logEvents=batch
                        )
                except Exception as exc:  # logs are best effort: the job goes on
                    logger.warning("dropped %d log events of %s: %r", len(batch), stream, exc)


def _batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for event in events:
        event_size = len(event["message"].encode("utf-8")) + _EVENT_OVERHEAD
        if len(batches[-1]) == _MAX_BATCH_EVENTS or size + event_size > _MAX_BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(event)
        size += event_size
    return [b for b in batches if b]


@dataclass(frozen=True)
class _Observation:
    value: float
    timestamp: datetime


class MetricParser:
    """The last value of each metric, by MetricDefinitions order."""

    def __init__(self, definitions: Sequence[tuple[str, re.Pattern[str]]]) -> None:
        self._definitions = definitions
        self._lock = threading.Lock()
        self._last: dict[str, _Observation] = {}

    def observe(self, line: str, timestamp: float) -> None:
        for name, pattern in self._definitions:
            match = pattern.search(line)
            if match is None or match.group(1) is None:
                continue
            try:
                value = float(match.group(1))
            except ValueError:
                continue
            if math.isfinite(value):
                when = datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)
                with self._lock:
                    self._last[name] = _Observation(value, when)

    def final(self) -> list[dict[str, Any]] | None:
        """FinalMetricDataList entries, or None before any metric was seen."""
        with self._lock:
            found = [
                {"MetricName": name, "Value": seen.value, "Timestamp": seen.timestamp}
                for name, _ in self._definitions
                if (seen := self._last.get(name)) is not None
            ]
        return found or None
