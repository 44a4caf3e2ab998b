"""EventQueues: the platform's SQS queues (``platform.QUEUES``), the EventBridge rules that
fill them (``platform.EVENT_RULES``), and the dead-letter queues that keep what could not be
delivered or processed.

Each queue has one consumer function (``FunctionSpec.queue``, subscribed by the service
stack once the function exists) and a dead-letter queue: a message its consumer fails
``max_receives`` times moves there and is kept DLQ_RETENTION for inspection and replay
(StartMessageMoveTask back to the queue). Each rule sends to its queue with a retry
policy and a dead-letter queue of its own, for events EventBridge could not deliver; the
queue's policy lets exactly the rules that target it send. Functions invoked
asynchronously (by another function, ``FunctionSpec.invokes``, or by their schedule) get a
dead-letter queue for the invocations that still fail after Lambda's two retries
(``invocation_dlqs``, the functions' DeadLetterConfig; a failed scheduled run lands there
with the scheduler's event, and ``modelops ops replay`` runs it again).

Encryption: SQS-managed (SSE-SQS), TLS enforced by every queue's policy. The messages are
EventBridge events (identifiers, statuses and drift summaries); what they point to lives in
the tables and buckets encrypted with the data key. SSE-SQS needs no key policy for
EventBridge or Lambda to send: with a customer managed key, a key policy gap makes
EventBridge fail every delivery, including the one to a dead-letter queue encrypted alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from modelops import platform

DLQ_RETENTION = Duration.days(14)  # SQS's longest retention
# EventBridge retries a failed delivery to SQS with backoff until either limit; an SQS
# target failing for an hour is a configuration fault (queue policy, queue gone), and the
# delivery DLQ keeps the event for replay once it is fixed.
DELIVERY_RETRY_ATTEMPTS = 8
DELIVERY_MAX_EVENT_AGE = Duration.hours(1)
# Consumers get batches of up to BATCH_SIZE messages and report the ones they failed
# (ReportBatchItemFailures), so only those are received again.
BATCH_SIZE = 10
# Lambda waits up to this long to fill a batch, within the slack the queue's visibility
# timeout leaves above six times the consumer's timeout (AWS's guidance: visibility timeout
# >= 6 x function timeout + MaximumBatchingWindowInSeconds).
MAX_BATCHING_WINDOW_S = 5
# Event pattern keys (EventBridge's JSON names) -> events.EventPattern's arguments.
_PATTERN_FIELDS = {
    "version": "version",
    "id": "id",
    "detail-type": "detail_type",
    "source": "source",
    "account": "account",
    "time": "time",
    "region": "region",
    "resources": "resources",
    "detail": "detail",
}


def event_pattern(pattern: Mapping[str, object]) -> events.EventPattern:
    """An EventRuleSpec's pattern as CDK's EventPattern (which renders the same JSON)."""
    unknown = set(pattern) - set(_PATTERN_FIELDS)
    if unknown:
        raise ValueError(f"unsupported event pattern fields: {sorted(unknown)}")
    return events.EventPattern(
        **{_PATTERN_FIELDS[name]: value for name, value in pattern.items()}  # type: ignore[arg-type]
    )


def dead_letter_queue(
    scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy
) -> sqs.Queue:
    """A queue that keeps what failed for DLQ_RETENTION; nothing consumes it."""
    return sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=DLQ_RETENTION,
        removal_policy=removal_policy,
    )


class EventQueues(Construct):
    """``queues`` and ``dead_letter_queues`` by QueueSpec logical id, ``rules`` and
    ``delivery_dlqs`` by EventRuleSpec logical id, ``invocation_dlqs`` by function name."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        buses: Mapping[str, events.IEventBus],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        self.queues: dict[str, sqs.Queue] = {}
        for spec in platform.QUEUES:
            dlq = dead_letter_queue(self, f"{spec.logical_id}Dlq", removal_policy=removal_policy)
            self.dead_letter_queues[spec.logical_id] = dlq
            self.queues[spec.logical_id] = sqs.Queue(
                self,
                spec.logical_id,
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                visibility_timeout=Duration.seconds(spec.visibility_timeout_s),
                dead_letter_queue=sqs.DeadLetterQueue(
                    queue=dlq, max_receive_count=spec.max_receives
                ),
                removal_policy=removal_policy,
            )

        self.delivery_dlqs: dict[str, sqs.Queue] = {}
        self.rules: dict[str, events.Rule] = {}
        for rule in platform.EVENT_RULES:
            delivery_dlq = dead_letter_queue(
                self, f"{rule.logical_id}Dlq", removal_policy=removal_policy
            )
            self.delivery_dlqs[rule.logical_id] = delivery_dlq
            # CDK's SqsQueue target adds to the queue's (and the DLQ's) policy a statement
            # letting events.amazonaws.com send on behalf of this rule's ARN only.
            self.rules[rule.logical_id] = events.Rule(
                self,
                rule.logical_id,
                description=rule.description,
                event_bus=None if rule.bus is None else buses[rule.bus],
                event_pattern=event_pattern(rule.pattern),
                targets=[
                    targets.SqsQueue(
                        self.queues[rule.queue],
                        dead_letter_queue=delivery_dlq,
                        retry_attempts=DELIVERY_RETRY_ATTEMPTS,
                        max_event_age=DELIVERY_MAX_EVENT_AGE,
                    )
                ],
            )

        self.invocation_dlqs: dict[str, sqs.Queue] = {
            name: dead_letter_queue(
                self, f"{_pascal_case(name)}InvocationDlq", removal_policy=removal_policy
            )
            for name in platform.invoked_asynchronously()
        }
        self.mappings: dict[str, lambda_.EventSourceMapping] = {}

    def subscribe(
        self,
        functions: Mapping[str, lambda_.IFunction],
        max_concurrency: Mapping[str, int] | None = None,
    ) -> None:
        """Each queue's consumer (by function name in ``functions``) gets an event source
        mapping on it and the permissions to receive and delete its messages. A consumer
        with reserved concurrency (``max_concurrency``, by function name) gets a mapping
        capped at it: Lambda then stops polling instead of being throttled, so messages
        wait in the queue rather than use up their receives towards the dead-letter
        queue."""
        consumer_of = consumers()
        for spec in platform.QUEUES:
            consumer = consumer_of[spec.logical_id]
            queue = self.queues[spec.logical_id]
            self.mappings[spec.logical_id] = lambda_.EventSourceMapping(
                self,
                f"{spec.logical_id}Mapping",
                target=functions[consumer.name],
                event_source_arn=queue.queue_arn,
                batch_size=BATCH_SIZE,
                max_batching_window=batching_window(spec, consumer),
                report_batch_item_failures=True,
                max_concurrency=(max_concurrency or {}).get(consumer.name),
            )
            queue.grant_consume_messages(functions[consumer.name])


def batching_window(spec: platform.QueueSpec, consumer: platform.FunctionSpec) -> Duration | None:
    """How long Lambda may wait to fill a batch from ``spec``'s queue (None: not at all)."""
    slack = spec.visibility_timeout_s - 6 * consumer.timeout_s
    if slack < 0:
        raise ValueError(
            f"{spec.logical_id}: visibility timeout {spec.visibility_timeout_s} s is under six "
            f"times {consumer.name}'s timeout ({consumer.timeout_s} s): messages would be "
            "received again while their first delivery still runs"
        )
    window = min(MAX_BATCHING_WINDOW_S, slack)
    return Duration.seconds(window) if window else None


def consumers() -> dict[str, platform.FunctionSpec]:
    """Each queue's consumer, by queue logical id; a queue must have exactly one."""
    found: dict[str, list[platform.FunctionSpec]] = {q.logical_id: [] for q in platform.QUEUES}
    for fn in platform.FUNCTIONS:
        if fn.queue is not None:
            if fn.queue not in found:
                raise ValueError(f"{fn.name}: unknown queue {fn.queue}")
            found[fn.queue].append(fn)
    for queue, specs in found.items():
        if len(specs) != 1:
            raise ValueError(f"queue {queue} has {len(specs)} consumers, not one")
    return {queue: specs[0] for queue, specs in found.items()}


def _pascal_case(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
