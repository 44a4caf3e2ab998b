"""What every queue consumer shares: one Lambda handler for an SQS queue fed by EventBridge
rules (``platform.EVENT_RULES``), instrumented like every function.

Each SQS record's body is one EventBridge event (``detail-type``, ``source``, ``detail``).
A record whose processing raises is reported in ``batchItemFailures`` (the event source
mapping has ``ReportBatchItemFailures``), so only it is retried, and after the queue's
``max_receives`` it goes to the dead-letter queue; the others are deleted. The event's
``detail.correlationId`` (when it has one) is the correlation id of every log line.

The same function may also be invoked directly (asynchronously, by an API function) with a
payload of its own: ``direct`` handles those.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops import correlation
from modelops.observability import instruments

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def queue_handler(
    name: str,
    on_event: Callable[[dict[str, Any]], None],
    direct: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Handler:
    logger, tracer, metrics = instruments()

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        records = event.get("Records")
        if records is None:
            if direct is None:
                raise ValueError(f"{name} only consumes its queue")
            correlation.bind(logger, str(event.get("correlationId") or ""))
            return direct(event)
        failures = []
        for record in records:
            try:
                message = json.loads(record["body"])
                correlation.bind(
                    logger,
                    str((message.get("detail") or {}).get("correlationId") or message.get("id")),
                )
                on_event(message)
            except Exception:
                logger.exception("event not processed", extra={"messageId": record["messageId"]})
                failures.append({"itemIdentifier": record["messageId"]})
        metrics.add_metric(name=f"{name}.Events", unit=MetricUnit.Count, value=len(records))
        metrics.add_metric(name=f"{name}.Failures", unit=MetricUnit.Count, value=len(failures))
        return {"batchItemFailures": failures}

    return handler
