"""What every Step Functions task function shares: one Lambda handler per workflow step,
instrumented like every function, with the execution's correlation id on every log line.

A step raises the typed errors of ``modelops.errors``; the Lambda runtime reports the class
name as the error type, which the state machine's ``Retry`` and ``Catch`` match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from modelops import correlation
from modelops.observability import instruments

Step = Callable[[dict[str, Any]], Any]
Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def task_handler(step_name: str, step: Step) -> Handler:
    """The handler of one workflow step: ``step(event)`` returns what the step reports
    (a dict, or None for nothing). Under ``metrics`` it may list CloudWatch metrics with
    their own dimensions (``name``, ``unit``, ``value``, ``dimensions``): they are emitted
    (EMF) and not returned."""
    logger, tracer, metrics = instruments()

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        correlation.bind(logger, str(event.get("correlationId") or event.get("jobId") or ""))
        logger.append_keys(jobId=event.get("jobId"), step=step_name)
        result = dict(step(event) or {})
        for metric in result.pop("metrics", ()):
            with single_metric(
                name=metric["name"], unit=MetricUnit(metric["unit"]), value=metric["value"]
            ) as emitted:
                for dimension, value in metric["dimensions"].items():
                    emitted.add_dimension(dimension, value)
        metrics.add_metric(name=f"TrainingStep.{step_name}", unit=MetricUnit.Count, value=1)
        logger.info("step done", extra={"result": result})
        return result

    return handler
