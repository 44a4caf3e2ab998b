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
(:class:`LocalAws`, shared by the training and the endpoint executors): as the executors'
own identity (moto's default account), or, for what SageMaker does with a job's or a
model's execution role (S3 data, code, checkpoints, outputs, model data), as a session of
that role (STS ``AssumeRole``, session name ``SageMaker``), so that bucket and key policies
(:mod:`localcloud.resource_policies`) judge the role as AWS does. An S3 error while
downloading names its code, HTTP status and object (:class:`DataError`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.resource_policies import known_access_key
from localcloud.sagemaker_container import Channel, S3Location, channel_relative_path
from modelops.domain.training import metric_value

__all__ = [
    "LOG_GROUP",
    "CheckpointSync",
    "DataError",
    "LocalAws",
    "LogShipper",
    "MetricParser",
    "download_channel",
    "s3_error",
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
# How SageMaker names the sessions of execution roles it assumes.
ROLE_SESSION_NAME = "SageMaker"
_ROLE_SESSION_SECONDS = 3600
_ROLE_SESSION_RENEW_SECONDS = 3000  # a new session well before the hour is up
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
_CHUNK = 1024 * 1024

logger = logging.getLogger(__name__)


class LocalAws:
    """boto3 clients of the local cloud's endpoint, one per (service, region, role), shared
    by the executor's threads (boto3 clients are thread-safe)."""

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url
        self._lock = threading.Lock()
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._sessions: dict[str, tuple[str, float]] = {}  # role ARN -> (key id, assumed at)

    def client(self, service: str, region: str, role_arn: str | None = None) -> Any:
        """A client as the executor itself, or with ``role_arn`` (an IAM role ARN) as a
        session of that role; anything else in ``role_arn`` means the executor itself."""
        if role_arn is not None and not _ROLE_ARN.match(role_arn):
            role_arn = None
        with self._lock:
            if role_arn is not None:
                self._forget_if_stale(role_arn)
            key = (service, region, role_arn)
            if key not in self._clients:
                credentials = _CREDENTIALS if role_arn is None else self._assume(role_arn, region)
                self._clients[key] = self._new_client(service, region, credentials)
            return self._clients[key]

    def _new_client(self, service: str, region: str, credentials: dict[str, str]) -> Any:
        session = boto3.session.Session(region_name=region, **credentials)
        return session.client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def _forget_if_stale(self, role_arn: str) -> None:
        """Drop the role's clients once its session is old, or unknown to moto (a reset)."""
        held = self._sessions.get(role_arn)
        if held is None:
            return
        access_key, assumed_at = held
        fresh = time.monotonic() - assumed_at < _ROLE_SESSION_RENEW_SECONDS
        if fresh and known_access_key(access_key):
            return
        del self._sessions[role_arn]
        for key in [k for k in self._clients if k[2] == role_arn]:
            del self._clients[key]

    def _assume(self, role_arn: str, region: str) -> dict[str, str]:
        """Credentials of a new session of the role (the lock is held)."""
        own = (("sts", region, None), _CREDENTIALS)
        if own[0] not in self._clients:
            self._clients[own[0]] = self._new_client("sts", region, own[1])
        credentials = self._clients[own[0]].assume_role(
            RoleArn=role_arn,
            RoleSessionName=ROLE_SESSION_NAME,
            DurationSeconds=_ROLE_SESSION_SECONDS,
        )["Credentials"]
        self._sessions[role_arn] = (credentials["AccessKeyId"], time.monotonic())
        return {
            "aws_access_key_id": credentials["AccessKeyId"],
            "aws_secret_access_key": credentials["SecretAccessKey"],
            "aws_session_token": credentials["SessionToken"],
        }


class DataError(Exception):
    """Data that cannot be brought onto the instance (refused, missing, or a key escaping its
    directory)."""


def s3_error(exc: ClientError, uri: str) -> str:
    """``<Code> (<HTTP status>) reading <uri>: <message>``, as SageMaker reports S3 errors."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
    code = str(error.get("Code") or status)
    if code == "403":  # a HEAD has no body: S3's code for a refusal
        code = "AccessDenied"
    message = error.get("Message") or "Access Denied"
    return f"{code} ({status}) reading {uri}: {message}"


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
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        with body, target.open("wb") as handle:
            shutil.copyfileobj(body, handle, _CHUNK)
    except ClientError as exc:
        raise DataError(s3_error(exc, f"s3://{bucket}/{key}")) from None


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
            value = metric_value(pattern, line)
            if value is not None:
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
