"""``LogReader`` over CloudWatch Logs: the tail of a training job's newest log stream."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


class CloudWatchLogs:
    def __init__(self, client: Any) -> None:
        self._logs = client

    def tail(self, group: str, stream_prefix: str, lines: int) -> list[str]:
        try:
            streams = self._logs.describe_log_streams(
                logGroupName=group, logStreamNamePrefix=stream_prefix
            )["logStreams"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise
        if not streams:
            return []
        newest = max(streams, key=lambda s: (s.get("lastEventTimestamp") or 0, s["logStreamName"]))
        events = self._logs.get_log_events(
            logGroupName=group,
            logStreamName=newest["logStreamName"],
            limit=lines,
            startFromHead=False,
        )["events"]
        return [str(e["message"]).rstrip("\n") for e in events]
