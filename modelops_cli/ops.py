"""``modelops ops``: operator commands that act on the deployment's AWS resources directly
(SQS, Lambda, CloudFormation), with the operator's own AWS credentials; not API routes.

``modelops ops dlq`` lists every dead-letter queue of the deployment: its depth, the age of
its oldest message and what it feeds back to. ``modelops ops replay DLQ`` redrives its
messages to where they failed:

- a queue's DLQ (``<Queue>Dlq``, messages its consumer failed ``max_receives`` times): each
  message is sent back to the queue with its body and message attributes;
- an EventBridge rule target's DLQ (``<Rule>Dlq``, events EventBridge could not deliver):
  each event is re-delivered to the target named by the message's ``TARGET_ARN`` attribute
  (an SQS queue: SendMessage; a Lambda function: asynchronous Invoke), the rule's queue
  when the attribute is missing; other rules' targets do not get the event again;
- a function's invocation DLQ (``<Function>InvocationDlq``, asynchronous invocations that
  failed after Lambda's retries): the function is invoked again asynchronously with the
  original payload (the message body).

Messages are received, delivered, and deleted from the DLQ only after their delivery
succeeded: a delivery that fails leaves its message in the DLQ (visible again when the
command ends), and nothing is lost; a message whose deletion fails after its delivery may
be delivered twice (at least once, as SQS itself). moto does not implement SQS's
StartMessageMoveTask, so queue DLQs are redriven the same way, in AWS too.

Where names come from: the DLQs are those ``stacks/constructs/event_queues.py`` declares
for ``modelops.platform`` (queues, EVENT_RULES, functions others invoke), by construct id.
``--stack NAME`` (or $MODELOPS_STACK) finds their physical names in the CloudFormation
service stack (resources by their ``aws:cdk:path``); ``--local`` in the local cloud
(``localcloud.cloud.physical_name``; it provisions only the queues' DLQs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelops import platform
from modelops.contracts.events import INTEGRATIONS
from modelops_cli import cli

QUEUE = "queue"
RULE = "rule-target"
INVOCATION = "invocation"
# How long a received message stays invisible while this command holds it; messages not
# deleted are made visible again when the command ends.
HOLD_S = 300
RECEIVE_BATCH = 10  # SQS's maximum per ReceiveMessage
# Where EventBridge and Lambda say why a message was dead-lettered.
REASON_ATTRIBUTES = ("ERROR_CODE", "ERROR_MESSAGE", "ErrorCode", "ErrorMessage")
LAMBDA_EVENT_ACCEPTED = 202


def now() -> float:
    return time.time()


@dataclass(frozen=True)
class DeadLetterQueue:
    """A DLQ of the deployment: ``name`` is its construct id (``DlqDepth-<name>`` alarms),
    ``source`` the queue or rule logical id, or the function name, it keeps failures of."""

    name: str
    kind: str
    source: str
    feeds: str
    construct: str = "EventQueues"  # the service stack construct that holds it


def dead_letter_queues() -> list[DeadLetterQueue]:
    """Every DLQ the stacks declare for the platform (stacks/constructs/event_queues.py)."""
    consumer = {fn.queue: fn.name for fn in platform.FUNCTIONS if fn.queue is not None}
    found = [
        DeadLetterQueue(
            f"{q.logical_id}Dlq",
            QUEUE,
            q.logical_id,
            f"queue {q.logical_id} (consumer {consumer.get(q.logical_id, '-')})",
        )
        for q in platform.QUEUES
    ]
    found += [
        DeadLetterQueue(
            f"{r.logical_id}Dlq", RULE, r.logical_id, f"rule {r.logical_id} -> queue {r.queue}"
        )
        for r in platform.EVENT_RULES
    ]
    found += [
        DeadLetterQueue(
            f"{pascal_case(name)}InvocationDlq", INVOCATION, name, f"function {name} (async)"
        )
        for name in platform.invoked_asynchronously()
    ]
    found += [
        DeadLetterQueue(
            f"{i.rule_id}Dlq",
            RULE,
            i.name,
            f"rule {i.rule_id} -> {i.name}'s event bus",
            construct="Integrations",
        )
        for i in INTEGRATIONS
    ]
    return found


def pascal_case(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def find_dlq(name: str) -> DeadLetterQueue:
    known = dead_letter_queues()
    for dlq in known:
        if dlq.name.lower() == name.lower():
            return dlq
    raise cli.CliError(
        cli.EXIT_USAGE,
        "USAGE",
        f"no dead-letter queue {name!r}; the deployment's are: " + ", ".join(d.name for d in known),
    )


# --- where the deployment's resources are ----------------------------------------------


class Deployment(Protocol):
    def queue_url(self, logical_id: str, construct: str = "EventQueues") -> str | None:
        """The URL of a platform queue or DLQ (by logical/construct id, in ``construct``);
        None: not there."""

    def function_name(self, name: str) -> str | None:
        """The physical name of a platform function (by its spec name)."""


class StackDeployment:
    """Physical names from the CloudFormation service stack: each resource's
    ``aws:cdk:path`` (template metadata) joined with its physical id."""

    def __init__(self, cloudformation: Any, stack_name: str) -> None:
        self._cfn = cloudformation
        self.stack_name = stack_name
        self._by_path: dict[str, str] | None = None

    def _paths(self) -> dict[str, str]:
        if self._by_path is None:
            body = self._cfn.get_template(StackName=self.stack_name, TemplateStage="Original")[
                "TemplateBody"
            ]
            template = json.loads(body) if isinstance(body, str) else body
            path_of = {
                logical_id: str((resource.get("Metadata") or {}).get("aws:cdk:path", ""))
                for logical_id, resource in (template.get("Resources") or {}).items()
            }
            physical: dict[str, str] = {}
            pages = self._cfn.get_paginator("list_stack_resources").paginate(
                StackName=self.stack_name
            )
            for page in pages:
                for summary in page["StackResourceSummaries"]:
                    path = path_of.get(summary["LogicalResourceId"], "")
                    if path and summary.get("PhysicalResourceId"):
                        # Without the stack's own construct id, which is its name by default.
                        physical[path.split("/", 1)[-1]] = summary["PhysicalResourceId"]
            self._by_path = physical
        return self._by_path

    def queue_url(self, logical_id: str, construct: str = "EventQueues") -> str | None:
        return self._paths().get(f"{construct}/{logical_id}/Resource")

    def function_name(self, name: str) -> str | None:
        return self._paths().get(f"{pascal_case(name)}/Function/Resource")


class LocalDeployment:
    """Physical names of the local cloud (``localcloud.cloud.physical_name``); a queue's DLQ
    is the one its RedrivePolicy names, as SQS keeps it."""

    def __init__(self, sqs: Any) -> None:
        self._sqs = sqs

    def _url(self, name: str) -> str | None:
        try:
            return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except self._sqs.exceptions.QueueDoesNotExist:
            return None

    def queue_url(self, logical_id: str, construct: str = "EventQueues") -> str | None:
        from localcloud.cloud import physical_name

        source = next(
            (q.logical_id for q in platform.QUEUES if f"{q.logical_id}Dlq" == logical_id), None
        )
        if source is None:
            return self._url(physical_name(logical_id))
        url = self._url(physical_name(source))
        if url is None:
            return None
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])[
            "Attributes"
        ]
        policy = json.loads(attributes.get("RedrivePolicy") or "{}")
        target = policy.get("deadLetterTargetArn")
        return self._url(str(target).rsplit(":", 1)[-1]) if target else None

    def function_name(self, name: str) -> str | None:
        return name


# --- replay ---------------------------------------------------------------------------


class DeliveryError(Exception):
    """A message could not be delivered to its target (it stays in the DLQ)."""


@dataclass
class Target:
    """Where a message goes back to: ``kind`` is ``sqs`` (``address`` a queue URL),
    ``lambda`` (a function name or ARN) or ``events`` (an event bus ARN)."""

    kind: str
    address: str

    def describe(self) -> str:
        return f"{self.kind}:{self.address}"


class Replayer:
    """Redrives one DLQ's messages (see the module's docstring)."""

    def __init__(
        self,
        sqs: Any,
        lambda_: Any,
        deployment: Deployment,
        *,
        events: Any = None,
        say: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._sqs = sqs
        self._lambda = lambda_
        self._events = events
        self._deployment = deployment
        self._say = say
        self._clock = clock or now

    # listing

    def status(self, dlq: DeadLetterQueue) -> dict[str, Any]:
        url = self._deployment.queue_url(dlq.name, dlq.construct)
        row: dict[str, Any] = {
            "name": dlq.name,
            "kind": dlq.kind,
            "feeds": dlq.feeds,
            "provisioned": url is not None,
            "depth": None,
            "inFlight": None,
            "oldestAgeSeconds": None,
            "queueUrl": url,
        }
        if url is None:
            return row
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        row["depth"] = int(attributes.get("ApproximateNumberOfMessages", 0))
        row["inFlight"] = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
        if row["depth"]:
            row["oldestAgeSeconds"] = self._oldest_age(url, row["depth"])
        return row

    def _oldest_age(self, url: str, depth: int) -> int | None:
        """Seconds since the oldest of the messages seen (up to 100) was sent to the DLQ
        (SentTimestamp), peeking without holding them (visibility 0)."""
        oldest: int | None = None
        for _ in range(min(10, math.ceil(depth / RECEIVE_BATCH))):
            messages = self._sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=RECEIVE_BATCH,
                VisibilityTimeout=0,
                WaitTimeSeconds=0,
                AttributeNames=["SentTimestamp"],
            ).get("Messages", [])
            for message in messages:
                sent = int((message.get("Attributes") or {}).get("SentTimestamp", 0))
                if sent and (oldest is None or sent < oldest):
                    oldest = sent
            if not messages:
                break
        return None if oldest is None else max(0, int(self._clock() - oldest / 1000))

    # replaying

    def replay(
        self, dlq: DeadLetterQueue, *, limit: int | None = None, dry_run: bool = False
    ) -> dict[str, Any]:
        url = self._deployment.queue_url(dlq.name, dlq.construct)
        if url is None:
            raise cli.CliError(
                cli.EXIT_NOT_FOUND, "NOT_FOUND", f"{dlq.name} is not provisioned in this deployment"
            )
        results: list[dict[str, Any]] = []
        held: list[str] = []  # receipt handles of messages left in the DLQ
        seen: set[str] = set()
        try:
            while limit is None or len(results) < limit:
                wanted = (
                    RECEIVE_BATCH if limit is None else min(RECEIVE_BATCH, limit - len(results))
                )
                messages = self._sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=wanted,
                    VisibilityTimeout=HOLD_S,
                    WaitTimeSeconds=0,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                fresh = [m for m in messages if m["MessageId"] not in seen]
                held += [m["ReceiptHandle"] for m in messages if m["MessageId"] in seen]
                if not fresh:
                    break
                for message in fresh:
                    seen.add(message["MessageId"])
                    result = self._replay_one(url, dlq, message, dry_run)
                    results.append(result)
                    if result["status"] != "replayed":
                        held.append(message["ReceiptHandle"])
                    self._say(f"{result['status']} {result['messageId']} -> {result['target']}")
        finally:
            for handle in held:  # back to visible: the next replay (or reader) sees them
                with contextlib.suppress(Exception):
                    self._sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0
                    )
        count = {s: sum(r["status"] == s for r in results) for s in _STATUSES}
        return {
            "dlq": dlq.name,
            "kind": dlq.kind,
            "feeds": dlq.feeds,
            "dryRun": dry_run,
            "replayed": count["replayed"],
            "failed": count["failed"] + count["replayed-not-deleted"],
            "messages": results,
        }

    def _replay_one(
        self, url: str, dlq: DeadLetterQueue, message: Mapping[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        attributes = message.get("MessageAttributes") or {}
        result: dict[str, Any] = {
            "messageId": message["MessageId"],
            "target": None,
            "reason": {
                name: attributes[name].get("StringValue")
                for name in REASON_ATTRIBUTES
                if name in attributes
            },
        }
        try:
            target = self._target(dlq, attributes)
            result["target"] = target.describe()
            if dry_run:
                return {**result, "status": "would-replay"}
            self._deliver(target, dlq, message)
        except DeliveryError as error:
            return {**result, "status": "failed", "error": str(error)}
        try:
            self._sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as error:  # delivered; a later replay delivers it again
            return {
                **result,
                "status": "replayed-not-deleted",
                "error": f"delivered, but not deleted from the DLQ: {_describe(error)}",
            }
        return {**result, "status": "replayed"}

    def _target(self, dlq: DeadLetterQueue, attributes: Mapping[str, Any]) -> Target:
        if dlq.kind == QUEUE:
            return Target("sqs", self._required_queue(dlq.source))
        if dlq.kind == INVOCATION:
            name = self._deployment.function_name(dlq.source)
            if name is None:
                raise DeliveryError(f"function {dlq.source} is not in this deployment")
            return Target("lambda", name)
        arn = (attributes.get("TARGET_ARN") or {}).get("StringValue")
        if not arn:  # not put there by EventBridge: the rule's own target
            rule = next((r for r in platform.EVENT_RULES if r.logical_id == dlq.source), None)
            if rule is None:
                raise DeliveryError("no TARGET_ARN attribute: which event bus it failed on")
            return Target("sqs", self._required_queue(rule.queue))
        service, resource = _arn_parts(arn)
        if service == "sqs":
            account = arn.split(":")[4]
            try:
                url = self._sqs.get_queue_url(QueueName=resource, QueueOwnerAWSAccountId=account)
            except Exception as error:
                raise DeliveryError(f"target {arn}: {_describe(error)}") from error
            return Target("sqs", str(url["QueueUrl"]))
        if service == "lambda":
            return Target("lambda", arn)
        if service == "events" and resource.startswith("event-bus/"):
            return Target("events", arn)
        raise DeliveryError(f"target {arn}: replaying to {service} targets is not supported")

    def _required_queue(self, logical_id: str) -> str:
        url = self._deployment.queue_url(logical_id)
        if url is None:
            raise DeliveryError(f"queue {logical_id} is not in this deployment")
        return url

    def _deliver(self, target: Target, dlq: DeadLetterQueue, message: Mapping[str, Any]) -> None:
        body = message["Body"]
        try:
            if target.kind == "sqs":
                kept = {}
                if dlq.kind == QUEUE:  # SQS redrive keeps the message's own attributes
                    kept = _sendable(message.get("MessageAttributes") or {})
                self._sqs.send_message(
                    QueueUrl=target.address, MessageBody=body, MessageAttributes=kept
                )
                return
            if target.kind == "events":
                self._put_event(target.address, json.loads(body))
                return
            answer = self._lambda.invoke(
                FunctionName=target.address, InvocationType="Event", Payload=body.encode()
            )
        except DeliveryError:
            raise
        except Exception as error:
            raise DeliveryError(_describe(error)) from error
        if answer.get("StatusCode") != LAMBDA_EVENT_ACCEPTED:
            raise DeliveryError(f"Lambda answered {answer.get('StatusCode')}, not 202")

    def _put_event(self, bus_arn: str, event: Mapping[str, Any]) -> None:
        """The event EventBridge could not deliver (the message body), put on the bus again."""
        answer = self._events.put_events(
            Entries=[
                {
                    "EventBusName": bus_arn,
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": list(event.get("resources") or ()),
                }
            ]
        )
        if answer.get("FailedEntryCount"):
            entry = answer["Entries"][0]
            raise DeliveryError(f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")


_STATUSES = ("replayed", "failed", "replayed-not-deleted", "would-replay")


def _sendable(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Message attributes as SendMessage takes them (what ReceiveMessage returned)."""
    sendable = {}
    for name, value in attributes.items():
        kept = {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        if "DataType" in kept:
            sendable[name] = kept
    return sendable


def _arn_parts(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        raise DeliveryError(f"TARGET_ARN {arn!r} is not an ARN")
    return parts[2], parts[-1]


def _describe(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return f"{type(error).__name__}: {error}"


# --- the commands -----------------------------------------------------------------------


@dataclass
class Connection:
    sqs: Any
    lambda_: Any
    deployment: Deployment
    events: Any = None


def aws_options() -> argparse.ArgumentParser:
    """The options of commands that call AWS services directly (not the platform's API)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--stack",
        default=os.environ.get("MODELOPS_STACK"),
        help="the deployed service stack, e.g. modelops-dev-service (default: $MODELOPS_STACK)",
    )
    where.add_argument(
        "--local", action="store_true", help="the local cloud (modelops local up) instead"
    )
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="AWS endpoint for SQS/Lambda/CloudFormation (the local cloud's AWS endpoint)",
    )
    group.add_argument("--profile", help="AWS profile whose credentials are used")
    group.add_argument("--region", help="AWS region (default: the profile's or environment's)")
    group.add_argument(
        "--output", choices=["json", "table"], default="table", help="json or table (default)"
    )
    group.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return common


def connect(args: argparse.Namespace) -> Connection:
    """Clients and the deployment's names from the options (tests replace this function)."""
    import boto3
    from botocore.exceptions import BotoCoreError

    if not args.local and not args.stack:
        raise cli.CliError(
            cli.EXIT_USAGE, "USAGE", "give --stack (or set MODELOPS_STACK), or --local"
        )
    try:
        session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    except BotoCoreError as error:  # e.g. ProfileNotFound
        raise cli.CliError(cli.EXIT_USAGE, "CONFIGURATION", str(error)) from error
    if session.get_credentials() is None:
        raise cli.CliError(cli.EXIT_USAGE, "NO_CREDENTIALS", "no AWS credentials found")

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=args.endpoint_url)

    sqs = client("sqs")
    deployment: Deployment = (
        LocalDeployment(sqs)
        if args.local
        else StackDeployment(client("cloudformation"), args.stack)
    )
    return Connection(sqs, client("lambda"), deployment, client("events"))


@contextlib.contextmanager
def aws_errors() -> Iterator[None]:
    """AWS errors as CLI errors with the exit codes of cli.py."""
    from botocore.exceptions import ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError as error:
        raise cli.CliError(cli.EXIT_USAGE, "NO_CREDENTIALS", str(error)) from error
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", "ClientError"))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        message = str(error.response.get("Error", {}).get("Message", error))
        if code in ("ValidationError",) and "does not exist" in message:
            status = 404  # CloudFormation: Stack with id ... does not exist
        raise cli.CliError(cli.exit_code_for_status(status), code, message) from error


def _dlq_view(rows: Sequence[Mapping[str, Any]]) -> str:
    shown = [
        {**row, "depth": row["depth"] if row["provisioned"] else "not provisioned"} for row in rows
    ]
    return cli.render_table(shown, ["name", "kind", "depth", "oldestAgeSeconds", "feeds"])


def _replay_view(result: Mapping[str, Any]) -> str:
    head = (
        f"{result['dlq']} ({result['kind']}, {result['feeds']}): "
        + ("dry run, " if result["dryRun"] else "")
        + f"{result['replayed']} replayed, {result['failed']} failed"
    )
    columns = ["messageId", "status", "target", "reason", "error"]
    if not result["messages"]:
        return head
    return head + "\n" + cli.render_table(result["messages"], columns)


def run_dlq(args: argparse.Namespace) -> int:
    with aws_errors():
        connection = connect(args)
        replayer = Replayer(connection.sqs, connection.lambda_, connection.deployment)
        rows = [replayer.status(dlq) for dlq in dead_letter_queues()]
    cli.emit(args, rows, _dlq_view)
    return cli.EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    dlq = find_dlq(args.dlq)
    if args.max is not None and args.max < 1:
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", "--max takes a positive number")
    with aws_errors():
        connection = connect(args)
        replayer = Replayer(
            connection.sqs,
            connection.lambda_,
            connection.deployment,
            events=connection.events,
            say=cli.progress_for(args),
        )
        result = replayer.replay(dlq, limit=args.max, dry_run=args.dry_run)
    cli.emit(args, result, _replay_view)
    return cli.EXIT_ERROR if result["failed"] else cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser | None = None) -> None:
    """``modelops ops``; its commands take ``aws_options()``, not the API's options."""
    del common  # these commands call AWS directly, not the API
    options = aws_options()
    ops = commands.add_parser(
        "ops", help="operator tools on the deployment's AWS resources (DLQs, replay)"
    ).add_subparsers(dest="action", required=True)
    dlq = ops.add_parser(
        "dlq",
        parents=[options],
        help="every dead-letter queue: depth, oldest message age, what it feeds back to",
    )
    dlq.set_defaults(run=run_dlq)
    replay = ops.add_parser(
        "replay",
        parents=[options],
        help="redrive a dead-letter queue's messages to where they failed",
        description="Redrive a DLQ's messages: a queue's DLQ back to the queue, a rule "
        "target's DLQ to the target in TARGET_ARN, an invocation DLQ by invoking the function "
        "asynchronously with the original payload. A message is deleted from the DLQ only "
        "after its delivery succeeded. Exit 1 when any message was not replayed.",
    )
    replay.add_argument("dlq", help="the DLQ's name as `modelops ops dlq` lists it")
    replay.add_argument("--max", type=int, metavar="N", help="replay at most N messages")
    replay.add_argument(
        "--dry-run", action="store_true", help="say what would be replayed; change nothing"
    )
    replay.set_defaults(run=run_replay)
