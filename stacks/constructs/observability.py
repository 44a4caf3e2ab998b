"""Observability: the operations dashboard of an environment, its alarms, and the encrypted
SNS topic that tells operators.

The dashboard (``dashboard_name(environment)``) has one group of widgets per concern, each
headed by a text widget named in GROUPS:

* the REST API's 4xx and 5xx errors and latency (its stage's metrics);
* every platform function's errors, throttles and duration;
* every state machine's failed and timed-out executions;
* training: how long finished jobs trained (``TrainingJobSeconds``, by pool) and the GPU
  utilization of the platform's jobs (SageMaker's ``/aws/sagemaker/TrainingJobs``, host
  ``<job>/algo-<n>``, searched over job names starting ``platform.TRAINING_JOB_PREFIX``);
* serving: model latency and 5xx errors per endpoint variant (``AWS/SageMaker``, searched
  over endpoints starting ``platform.SERVING_PREFIX``);
* drift: the monitor's scores per model and feature and drifted features per model;
* retrains submitted (``POST /train/retrain``) per day;
* training cost per model family and pool (``TrainingCostUsd``) and per team and pool
  (``CostUsd``);
* the depth of every dead-letter queue;
* each team's quota use per pool (``QuotaUsedPercent``), then every alarm's state.

Metrics of our namespace are the ones the functions emit (EMF, each with the Powertools
``service`` dimension): METRICS names each with its emitter. Searches stand in for
dimensions only known at run time (pools, teams, models, jobs, endpoints).

Alarms (all notify ``topic``; missing data is not breaching: no traffic, no executions, no
running spot job are no fault):

* ``Api5xx``: over 5 minutes, at least API_MIN_REQUESTS requests and API_5XX_PERCENT % or
  more of them answered 5xx (below that many requests, a single failure is no rate);
* ``Throttles-<function>``: any throttled invocation of a platform function in 5 minutes;
* ``ExecutionsFailed-<state machine>``: any execution failed or timed out in 5 minutes;
* ``DlqDepth-<queue>``: any message in a dead-letter queue;
* ``StaleCheckpoint``: a running spot job has trained CHECKPOINT_STALE_MINUTES without
  writing a checkpoint (``CheckpointAgeSeconds``, reported every 5 minutes by the
  reconciler, ``functions/training_tasks/reconcile.py``);
* quota exhaustion is QuotaAlarms' 100% alarms, which also notify ``topic`` (not duplicated).

The topic is encrypted with a customer managed key of its own, for the reason QuotaAlarms
gives (CloudWatch cannot publish to a topic under the AWS managed SNS key).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from modelops import platform
from stacks.constructs.alarm_topic import alarm_topic

PERIOD = Duration.minutes(5)
CLOUDWATCH = "cloudwatch.amazonaws.com"
NAMESPACE = platform.METRICS_NAMESPACE
WIDTH = 24  # the dashboard grid's width

API_5XX_PERCENT = 5
API_MIN_REQUESTS = 10
CHECKPOINT_STALE_MINUTES = 30
QUOTA_EXHAUSTED_PERCENT = 100

# Metric of our namespace -> the function (Powertools service) that emits it.
TRAINING_JOB_SECONDS = "TrainingJobSeconds"
TRAINING_COST = "TrainingCostUsd"
COST = "CostUsd"
RETRAINS = "RetrainsSubmitted"
CHECKPOINT_AGE = "CheckpointAgeSeconds"
QUOTA_USED = "QuotaUsedPercent"
METRICS: dict[str, str] = {
    TRAINING_JOB_SECONDS: "train-record-usage",
    TRAINING_COST: "train-record-usage",
    COST: "train-record-usage",
    RETRAINS: platform.TRAINING_API.name,
    CHECKPOINT_AGE: "train-reconcile",
    QUOTA_USED: "train-request-compute",
    platform.DRIFT_SCORE_METRIC: platform.DRIFT_MONITOR.name,
    platform.DRIFTED_FEATURES_METRIC: platform.DRIFT_MONITOR.name,
}

# The dashboard's widget groups, in order (each headed by a text widget "## <group>").
API = "API Gateway"
LAMBDA = "Lambda functions"
WORKFLOWS = "Step Functions executions"
TRAINING = "Training jobs"
SERVING = "Serving"
DRIFT = "Drift"
RETRAINING = "Retraining"
COST_GROUP = "Cost per model"
DLQ = "Dead-letter queues"
QUOTA = "Quota use"
ALARMS = "Alarms"
GROUPS = (API, LAMBDA, WORKFLOWS, TRAINING, SERVING, DRIFT, RETRAINING, COST_GROUP, DLQ, QUOTA)


def dashboard_name(environment: str) -> str:
    return f"modelops-{environment}-operations"


def search(schema: str, metric: str, statistic: str, period: Duration, *terms: str) -> str:
    """A SEARCH expression over ``schema`` (``{namespace,dimension,...}``)."""
    query = " ".join((schema, f'MetricName="{metric}"', *terms))
    return f"SEARCH('{query}', '{statistic}', {int(period.to_seconds())})"


def _ours(*dimensions: str) -> str:
    """The schema of one of our metrics: its dimensions and Powertools' ``service``."""
    return "{" + ",".join((f'"{NAMESPACE}"', *sorted((*dimensions, "service")))) + "}"


def _service(metric: str) -> str:
    return f'service="{METRICS[metric]}"'


class Observability(Construct):
    """``dashboard``, ``topic`` and ``alarms`` (by construct id) of an environment."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: str,
        api: apigw.RestApi,
        functions: Mapping[str, lambda_.IFunction],
        state_machines: Mapping[str, sfn.IStateMachine],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        quota_alarms: Mapping[tuple[str, str, str, int], cloudwatch.Alarm],
        other_alarms: Iterable[cloudwatch.IAlarm] = (),
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key, self.topic = alarm_topic(
            self, purpose="operations", removal_policy=removal_policy
        )
        action = cloudwatch_actions.SnsAction(self.topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}

        def alarm(
            alarm_id: str,
            metric: cloudwatch.Metric | cloudwatch.MathExpression,
            description: str,
            threshold: float,
            comparison: cloudwatch.ComparisonOperator = (
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
        ) -> cloudwatch.Alarm:
            created = metric.create_alarm(
                self,
                alarm_id,
                alarm_description=description,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            created.add_alarm_action(action)
            self.alarms[alarm_id] = created
            return created

        stage = api.deployment_stage
        # --- alarms ----------------------------------------------------------------------
        requests = stage.metric_count(statistic=cloudwatch.Stats.SUM, period=PERIOD)
        server_errors = stage.metric_server_error(statistic=cloudwatch.Stats.SUM, period=PERIOD)
        alarm(
            "Api5xx",
            cloudwatch.MathExpression(
                expression=(
                    f"IF(FILL(requests, 0) >= {API_MIN_REQUESTS}, "
                    "100 * FILL(errors, 0) / requests, 0)"
                ),
                using_metrics={"requests": requests, "errors": server_errors},
                label="5xx (% of requests)",
                period=PERIOD,
            ),
            f"{API_5XX_PERCENT}% or more of the ModelOps API's requests (at least "
            f"{API_MIN_REQUESTS} in 5 minutes) failed with 5xx. Look at the Lambda errors "
            "widget of the dashboard for the failing function, then at its logs (the API "
            "access log's requestId is the function log's correlation id); a 502 with no "
            "function error is an integration fault (timeout, permission).",
            API_5XX_PERCENT,
        )
        for name, function in functions.items():
            alarm(
                f"Throttles-{name}",
                function.metric_throttles(statistic=cloudwatch.Stats.SUM, period=PERIOD),
                f"Lambda throttled invocations of {name}: its callers got 429s or retried. "
                "Check the account's concurrent executions (Lambda console, account "
                "concurrency) and the function's reserved concurrency; request a higher "
                "limit or reduce the load that caused the burst.",
                1,
            )
        for logical_id, machine in state_machines.items():
            alarm(
                f"ExecutionsFailed-{logical_id}",
                cloudwatch.MathExpression(
                    expression="FILL(failed, 0) + FILL(timedOut, 0)",
                    using_metrics={
                        "failed": machine.metric_failed(
                            statistic=cloudwatch.Stats.SUM, period=PERIOD
                        ),
                        "timedOut": machine.metric_timed_out(
                            statistic=cloudwatch.Stats.SUM, period=PERIOD
                        ),
                    },
                    label="failed + timed out",
                    period=PERIOD,
                ),
                f"An execution of the {logical_id} state machine failed or timed out. Find it "
                "in the Step Functions console (status Failed / Timed out): its failed state "
                "names the step and error, the step's function logs carry the execution's "
                "correlation id. Failed jobs and deployments record the reason on their "
                "record; a CompensationFailed end left the job unaccounted: run the "
                "reconciler (train-reconcile) after fixing the cause.",
                1,
            )
        for queue_id, queue in dead_letter_queues.items():
            alarm(
                f"DlqDepth-{queue_id}",
                queue.metric_approximate_number_of_messages_visible(
                    statistic=cloudwatch.Stats.MAXIMUM, period=PERIOD
                ),
                f"Dead-letter queue {queue_id} holds messages: events or invocations that "
                "failed every retry. Read them (SQS console, poll without deleting), fix the "
                "cause in the consumer's or the invoked function's logs, then redrive them to "
                "their source (StartMessageMoveTask) or delete them. They are kept 14 days.",
                1,
            )
        self.checkpoint_age = cloudwatch.Metric(
            namespace=NAMESPACE,
            metric_name=CHECKPOINT_AGE,
            dimensions_map={"service": METRICS[CHECKPOINT_AGE]},
            statistic=cloudwatch.Stats.MAXIMUM,
            period=PERIOD,
        )
        alarm(
            "StaleCheckpoint",
            self.checkpoint_age,
            f"A running spot training job has trained {CHECKPOINT_STALE_MINUTES} minutes or "
            "more without writing a checkpoint: a spot interruption now loses that work. The "
            "train-reconcile log's checkpointAgeSeconds names the job; check that its "
            "training code writes to /opt/ml/checkpoints (and the job's logs for a hang).",
            CHECKPOINT_STALE_MINUTES * 60,
        )
        # Quota exhaustion: QuotaAlarms' 100% alarms, told to operators too.
        exhausted = [
            quota_alarm
            for (_, _, _, threshold), quota_alarm in quota_alarms.items()
            if threshold == QUOTA_EXHAUSTED_PERCENT
        ]
        for quota_alarm in exhausted:
            quota_alarm.add_alarm_action(action)

        # --- dashboard -------------------------------------------------------------------
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=dashboard_name(environment),
            default_interval=Duration.hours(24),
        )

        def group(title: str, *widgets: cloudwatch.IWidget) -> None:
            self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=f"## {title}", width=WIDTH))
            self.dashboard.add_widgets(*widgets)

        def graph(
            title: str,
            metrics: list[cloudwatch.IMetric],
            width: int = 8,
            stacked: bool = False,
        ) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(
                title=title, left=metrics, width=width, height=6, stacked=stacked
            )

        def searched(expression: str, period: Duration = PERIOD) -> cloudwatch.IMetric:
            # label "": each series keeps its own label (the dimensions SEARCH found)
            return cloudwatch.MathExpression(expression=expression, label="", period=period)

        group(
            API,
            graph("4xx errors", [stage.metric_client_error(statistic="Sum", period=PERIOD)]),
            graph("5xx errors", [server_errors]),
            graph(
                "Latency (ms)",
                [
                    stage.metric_latency(statistic="p50", period=PERIOD),
                    stage.metric_latency(statistic="p99", period=PERIOD),
                ],
            ),
        )

        def per_function(title: str, metric: str, statistic: str) -> cloudwatch.GraphWidget:
            return graph(
                title,
                [
                    fn.metric(metric, statistic=statistic, period=PERIOD, label=name)
                    for name, fn in functions.items()
                ],
            )

        group(
            LAMBDA,
            per_function("Errors", "Errors", "Sum"),
            per_function("Throttles", "Throttles", "Sum"),
            per_function("Duration p99 (ms)", "Duration", "p99"),
        )
        group(
            WORKFLOWS,
            *(
                graph(
                    logical_id,
                    [
                        machine.metric_failed(statistic="Sum", period=PERIOD, label="failed"),
                        machine.metric_timed_out(statistic="Sum", period=PERIOD, label="timed out"),
                        machine.metric_succeeded(statistic="Sum", period=PERIOD, label="succeeded"),
                    ],
                    width=WIDTH // max(1, len(state_machines)),
                )
                for logical_id, machine in state_machines.items()
            ),
        )
        hour = Duration.hours(1)
        job_prefix = platform.TRAINING_JOB_PREFIX.rstrip("-")
        group(
            TRAINING,
            graph(
                "Training job duration (s, by pool)",
                [
                    searched(
                        search(
                            _ours("pool"),
                            TRAINING_JOB_SECONDS,
                            "Maximum",
                            hour,
                            _service(TRAINING_JOB_SECONDS),
                        ),
                        hour,
                    )
                ],
                width=12,
            ),
            graph(
                "GPU utilization (%, by host)",
                [
                    searched(
                        search(
                            f'{{"{platform.TRAINING_LOG_GROUP}",Host}}',
                            "GPUUtilization",
                            "Average",
                            PERIOD,
                            f"Host={job_prefix}",
                        ),
                    )
                ],
                width=12,
            ),
            graph(
                "Stale checkpoint: oldest checkpoint age of running spot jobs (s)",
                [self.checkpoint_age],
                width=WIDTH,
            ),
        )
        endpoint_prefix = platform.SERVING_PREFIX.rstrip("-")

        def per_variant(metric: str, statistic: str) -> cloudwatch.IMetric:
            return searched(
                search(
                    '{"AWS/SageMaker",EndpointName,VariantName}',
                    metric,
                    statistic,
                    PERIOD,
                    f"EndpointName={endpoint_prefix}",
                ),
            )

        group(
            SERVING,
            graph("Model latency p99 (us, per variant)", [per_variant("ModelLatency", "p99")]),
            graph(
                "Invocation 5xx errors (per variant)", [per_variant("Invocation5XXErrors", "Sum")]
            ),
            graph("Invocations (per variant)", [per_variant("Invocations", "Sum")]),
        )

        def ours(
            metric: str, statistic: str, period: Duration, *dimensions: str
        ) -> cloudwatch.IMetric:
            return searched(
                search(_ours(*dimensions), metric, statistic, period, _service(metric)),
                period,
            )

        group(
            DRIFT,
            graph(
                "Drift score (per model and feature)",
                [ours(platform.DRIFT_SCORE_METRIC, "Maximum", hour, "model", "feature")],
                width=12,
            ),
            graph(
                "Drifted features (per model)",
                [ours(platform.DRIFTED_FEATURES_METRIC, "Maximum", hour, "model")],
                width=12,
            ),
        )
        day = Duration.days(1)
        group(
            RETRAINING,
            graph(
                "Retrains submitted per day",
                [
                    cloudwatch.Metric(
                        namespace=NAMESPACE,
                        metric_name=RETRAINS,
                        dimensions_map={"service": METRICS[RETRAINS]},
                        statistic="Sum",
                        period=day,
                        label="retrains",
                    )
                ],
                width=WIDTH,
            ),
        )
        group(
            COST_GROUP,
            graph(
                "Training cost (USD per day, by model family and pool)",
                [ours(TRAINING_COST, "Sum", day, "modelFamily", "pool")],
                width=12,
                stacked=True,
            ),
            graph(
                "Training cost (USD per day, by team and pool)",
                [ours(COST, "Sum", day, "pool", "team")],
                width=12,
                stacked=True,
            ),
        )
        group(
            DLQ,
            graph(
                "Messages in dead-letter queues",
                [
                    queue.metric_approximate_number_of_messages_visible(
                        statistic="Maximum", period=PERIOD, label=queue_id
                    )
                    for queue_id, queue in dead_letter_queues.items()
                ],
                width=WIDTH,
            ),
        )
        group(
            QUOTA,
            graph(
                "Quota used (% of monthly GPU-hours, by pool and team)",
                [ours(QUOTA_USED, "Maximum", hour, "pool", "team")],
                width=WIDTH,
            ),
        )
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=f"## {ALARMS}", width=WIDTH))
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Alarms",
                alarms=[*self.alarms.values(), *exhausted, *other_alarms],
                width=WIDTH,
                height=8,
            )
        )
