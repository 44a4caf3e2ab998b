"""QuotaAlarms: CloudWatch alarms on each team's use of its monthly GPU-hour quota in each
compute pool, and the encrypted SNS topic they notify.

The training steps that request and release compute report the team's use as
``QuotaUsedPercent`` (namespace ``platform.METRICS_NAMESPACE``, dimensions ``service``,
``pool``, ``team``). Each reporter has its own alarms rather than one metric-math MAX over
both: every alarm then watches one metric exactly as it is emitted, a period in which only
one step reported needs no gap-filling, and the alarm names the step that saw the crossing.
A pool with no GPUs (``maxConcurrentGpus`` 0) or a team without GPU-hours there has no
alarm: its use is always 0%.

The topic is encrypted with a customer managed key of its own, because CloudWatch cannot
publish to a topic encrypted with the AWS managed SNS key (its policy does not admit
CloudWatch), and the data key is not for notifications.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from constructs import Construct

from modelops import platform
from modelops.domain.pools import PoolConfig
from stacks.constructs.alarm_topic import alarm_topic

METRIC_NAME = "QuotaUsedPercent"
# The functions that emit the metric (their Powertools service name is the dimension).
REPORTERS = ("train-request-compute", "train-release-compute")
# Percent of the team's monthly GPU-hours in the pool.
THRESHOLDS = (80, 100)
PERIOD = Duration.minutes(5)
CLOUDWATCH = "cloudwatch.amazonaws.com"


def quota_holders(pools: PoolConfig) -> list[tuple[str, str]]:
    """(pool, team) of every team with GPU-hours in a pool that has GPUs: the teams its quota
    names and the teams the environment binds principals to (they get the default)."""
    bound = set(pools.teamBindings.values())
    return [
        (name, team)
        for name, pool in pools.pools.items()
        if pool.quota.maxConcurrentGpus > 0
        for team in sorted((set(pool.quota.gpuHoursPerTeam) - {"default"}) | bound)
        if pool.quota.team_limit(team) > 0
    ]


class QuotaAlarms(Construct):
    """Alarms at THRESHOLDS percent for every (pool, team) of ``quota_holders`` and reporter,
    notifying ``topic``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pools: PoolConfig,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key, self.topic = alarm_topic(self, purpose="quota", removal_policy=removal_policy)
        action = cloudwatch_actions.SnsAction(self.topic)

        # (pool, team, reporter, threshold) -> alarm
        self.alarms: dict[tuple[str, str, str, int], cloudwatch.Alarm] = {}
        for pool, team in quota_holders(pools):
            for reporter in REPORTERS:
                metric = cloudwatch.Metric(
                    namespace=platform.METRICS_NAMESPACE,
                    metric_name=METRIC_NAME,
                    dimensions_map={"service": reporter, "pool": pool, "team": team},
                    statistic=cloudwatch.Stats.MAXIMUM,
                    period=PERIOD,
                )
                for threshold in THRESHOLDS:
                    alarm = metric.create_alarm(
                        self,
                        f"{pool}-{team}-{reporter}-{threshold}",
                        alarm_description=(
                            f"Team {team} has used {threshold}% or more of its monthly GPU-hours "
                            f"in compute pool {pool} (reported by {reporter})."
                        ),
                        threshold=threshold,
                        comparison_operator=(
                            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
                        ),
                        evaluation_periods=1,
                        datapoints_to_alarm=1,
                        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                    )
                    alarm.add_alarm_action(action)
                    self.alarms[pool, team, reporter, threshold] = alarm
