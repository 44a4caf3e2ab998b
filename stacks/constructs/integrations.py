"""IntegrationRules: for each ILLUVRSE service configured in the environment
(``integrations.<name>`` in ``cdk.json``: the ARN of the event bus it owns), a rule on the
platform's bus forwarding the detail types that service consumes
(``modelops.contracts.events.INTEGRATIONS``) to that bus, with a dead-letter queue of its own
for what EventBridge could not deliver after its retries (``modelops ops replay`` redrives
it). A bus in another account must allow this account to PutEvents (its resource policy);
EventBridge then delivers as the role CDK's EventBus target creates, which may put events on
that bus only. An integration that is not configured gets no rule: nothing leaves.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from modelops import platform
from modelops.contracts.events import INTEGRATIONS
from stacks.constructs.event_queues import dead_letter_queue


class IntegrationRules(Construct):
    """``rules`` and ``delivery_dlqs`` by integration name, for the configured ones."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bus: events.IEventBus,
        targets_by_name: Mapping[str, str],
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        known = {i.name for i in INTEGRATIONS}
        unknown = sorted(set(targets_by_name) - known)
        if unknown:
            raise ValueError(f"integrations: unknown {unknown}; known: {sorted(known)}")
        self.rules: dict[str, events.Rule] = {}
        self.delivery_dlqs: dict[str, sqs.Queue] = {}
        for integration in INTEGRATIONS:
            arn = targets_by_name.get(integration.name)
            if arn is None:
                continue
            name = integration.rule_id
            dlq = dead_letter_queue(self, f"{name}Dlq", removal_policy=removal_policy)
            self.delivery_dlqs[integration.name] = dlq
            self.rules[integration.name] = events.Rule(
                self,
                name,
                description=integration.description[:512],
                event_bus=bus,
                event_pattern=events.EventPattern(
                    source=[platform.EVENT_SOURCE], detail_type=list(integration.detail_types)
                ),
                targets=[
                    targets.EventBus(
                        events.EventBus.from_event_bus_arn(self, f"{name}Bus", arn),
                        dead_letter_queue=dlq,
                    )
                ],
            )
