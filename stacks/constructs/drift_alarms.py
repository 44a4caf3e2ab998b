"""DriftAlarms: the CloudWatch alarm on the drift monitor's features at alarm.

Every run of the drift monitor (hourly) emits ``platform.DRIFT_ALARM_METRIC`` (namespace
``platform.METRICS_NAMESPACE``, EMF) with the Powertools ``service`` dimension only: the
number of features, over every model, past their alarm threshold in that run. Alarms
cannot be declared per model ahead of time (models come later), so there is one alarm, on
that total. It is named ``platform.DRIFT_ALARM_PREFIX`` + the environment, which
``platform``'s DriftAlarmRule matches: CloudWatch puts every alarm state change on the
account's default event bus, so the alarm needs no action of its own to reach the drift
alert handler (through the DriftAlertQueue).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from modelops import platform

PERIOD = Duration.hours(1)  # the monitor's schedule: one datapoint per period
THRESHOLD = 1  # features at alarm


def alarm_name(environment: str) -> str:
    return f"{platform.DRIFT_ALARM_PREFIX}{environment}"


class DriftAlarms(Construct):
    """``alarm``: in ALARM while the last run found at least one feature at alarm."""

    def __init__(self, scope: Construct, construct_id: str, *, environment: str) -> None:
        super().__init__(scope, construct_id)
        self.metric = cloudwatch.Metric(
            namespace=platform.METRICS_NAMESPACE,
            metric_name=platform.DRIFT_ALARM_METRIC,
            dimensions_map={"service": platform.DRIFT_MONITOR.name},
            statistic=cloudwatch.Stats.MAXIMUM,
            period=PERIOD,
        )
        self.alarm = self.metric.create_alarm(
            self,
            "Alarm",
            alarm_name=alarm_name(environment),
            alarm_description=(
                "The drift monitor found features past their alarm threshold in its last run "
                "(DriftDetected events name them). State changes reach the drift alert handler "
                "through the default event bus."
            ),
            threshold=THRESHOLD,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            # No run in an hour (no models with data capture yet) is no drift.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
