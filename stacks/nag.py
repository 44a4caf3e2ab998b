"""Every cdk-nag acknowledgement of the app, each with its reason.

The AwsSolutions and Serverless packs run on every synth (``app.py``); a finding that is
not acknowledged here fails the synth. Acknowledgements name one finding each
(``Rule[Finding]`` where the rule reports findings), are attached to the narrowest
construct that produces it, and the ones about grants are derived from the same
``FunctionSpec`` that produced the grants, so a new table, bucket or function cannot slip
past the packs unseen.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnElement, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from modelops import platform
from stacks.constructs import grants
from stacks.constructs.break_glass_role import BreakGlassRole
from stacks.constructs.event_queues import EventQueues
from stacks.constructs.integrations import IntegrationRules
from stacks.constructs.python_function import PythonFunction
from stacks.constructs.state_machine import WorkflowStateMachine
from stacks.constructs.training_role import (
    ENDPOINT_LOG_GROUP_PREFIX,
    METRICS_NAMESPACES,
    TrainingRole,
    read_prefixes,
    write_prefixes,
)
from stacks.data_stack import DataStack
from stacks.service_stack import ServiceStack
from stacks.truststore_stack import TruststoreStack

# The wildcard actions that CDK's grant methods write (grant_read / grant_read_write on a
# bucket, grant_read_write_data on a table encrypted with the data key). Each is one action
# family in a statement scoped to a named bucket, table or the data key, never to "*".
_S3_READ_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*")
_S3_WRITE_ACTIONS = ("s3:DeleteObject*", "s3:Abort*")
_KMS_WRITE_ACTIONS = ("kms:ReEncrypt*", "kms:GenerateDataKey*")
_ACTION_REASONS = {
    "s3:GetObject*": "Object reads (GetObject, GetObjectVersion, GetObjectTagging...) from "
    "CDK's bucket grant, limited to the objects of the buckets the FunctionSpec names.",
    "s3:GetBucket*": "Bucket metadata reads (GetBucketLocation, GetBucketVersioning...) from "
    "CDK's bucket grant, limited to the buckets the FunctionSpec names.",
    "s3:List*": "Listing (ListBucket, ListBucketVersions, ListMultipartUploadParts) from "
    "CDK's bucket grant, limited to the buckets the FunctionSpec names.",
    "s3:DeleteObject*": "Deleting objects, versions and tags from CDK's grant_read_write, for "
    "buckets the FunctionSpec grants READ_WRITE only.",
    "s3:Abort*": "AbortMultipartUpload from CDK's grant_read_write, for buckets the "
    "FunctionSpec grants READ_WRITE only.",
    "kms:ReEncrypt*": "ReEncryptFrom/ReEncryptTo from CDK's read-write grants on resources "
    "encrypted with the data key; the statement names the data key only.",
    "kms:GenerateDataKey*": "Data keys for writes to resources encrypted with the data key "
    "(CDK's read-write grants); the statement names the data key only.",
}


def _arn(service: str, resource: str) -> str:
    """A regional ARN in this account as cdk-nag writes it in finding ids."""
    return f"arn:<AWS::Partition>:{service}:<AWS::Region>:<AWS::AccountId>:{resource}"


_TRAINING_JOBS = _arn("sagemaker", f"training-job/{grants.TRAINING_JOB_PREFIX}*")
_TRAINING_LOG_GROUP = _arn("logs", f"log-group:{grants.TRAINING_LOG_GROUP}:*")
_TRAINING_LOG_STREAMS = _arn(
    "logs", f"log-group:{grants.TRAINING_LOG_GROUP}:log-stream:{grants.TRAINING_JOB_PREFIX}*"
)
_TRAINING_JOBS_REASON = (
    "The platform's SageMaker training jobs only: each is named modelops-<job id> when it is "
    "submitted, so the name prefix is the narrowest resource known when the policy is written."
)
_LOG_GROUP_REASON = (
    "SageMaker's training log group only: CloudWatch Logs authorizes group-level actions "
    "(CreateLogGroup, DescribeLogStreams) against the group's ARN with its ':*' suffix."
)
_LOG_STREAMS_REASON = (
    "The log streams of the platform's training jobs only: SageMaker names them "
    "<job name>/algo-<n>-<epoch>, and job names are modelops-<job id>."
)
_SERVING_NAMES = {
    "model": "models (modelops-<model id>)",
    "endpoint-config": "endpoint configs (modelops-<route>-<env>-<deploy id>)",
    "endpoint": "endpoints (modelops-<route>-<env>)",
}
# The platform's SageMaker models, endpoint configs and endpoints, by resource type.
_SERVING = {
    kind: (
        _arn("sagemaker", f"{kind}/{grants.SERVING_PREFIX}*"),
        f"The platform's SageMaker {_SERVING_NAMES[kind]} only: each is named when a "
        "deployment is requested, so the name prefix is the narrowest resource known when the "
        "policy is written.",
    )
    for kind in grants.SERVING_RESOURCE_TYPES
}
_AUTOSCALING_REASON = (
    "Application Auto Scaling of the endpoints' variants: scalable targets' ARNs carry an id "
    "the service assigns at registration, so no resource can be named when the policy is "
    "written. RegisterScalableTarget, PutScalingPolicy and PutScheduledAction are conditioned "
    "on the sagemaker namespace and the variants' DesiredInstanceCount dimension; the "
    "Describe actions (DescribeScalableTargets, DescribeScalingPolicies, "
    "DescribeScheduledActions, DescribeScalingActivities) support no resource-level "
    "permissions. Registering also needs the caller's DescribeEndpoint, DescribeEndpointConfig "
    "and UpdateEndpointWeightsAndCapacities, which name the platform's endpoints only."
)
_METRICS_READ_REASON = (
    "cloudwatch:GetMetricStatistics supports no resource-level permissions and no namespace "
    "condition; it reads the canary's AWS/SageMaker per-variant metrics (invocations, errors, "
    "latency) and is this statement's only action."
)
# Wildcard resources of each grant (stacks/constructs/grants.py), with their reasons.
_GRANT_WILDCARDS = {
    platform.Grant.TRAINING_JOBS: {_TRAINING_JOBS: _TRAINING_JOBS_REASON},
    platform.Grant.TRAINING_STATUS: {_TRAINING_JOBS: _TRAINING_JOBS_REASON},
    platform.Grant.TRAINING_LOGS: {
        _TRAINING_LOG_GROUP: _LOG_GROUP_REASON,
        _TRAINING_LOG_STREAMS: _LOG_STREAMS_REASON,
    },
    platform.Grant.SERVING: {**dict(_SERVING.values()), "*": _AUTOSCALING_REASON},
    platform.Grant.SERVING_METRICS: {"*": _METRICS_READ_REASON},
    # Describe only: which model each variant of the platform's endpoints serves now.
    platform.Grant.SERVING_STATUS: dict(_SERVING[kind] for kind in ("endpoint-config", "endpoint")),
}
# What the training role reads or writes under each prefix of the artifact bucket.
_PREFIX_USES = {
    "inputs/": "the job's input channels, staged per job under inputs/<artifact id>/",
    "blobs/": "the job's source archive, content-addressed under blobs/sha256/",
    "training/": "the job's outputs and checkpoints (written by it, read back when a spot "
    "job resumes), under training/<job name>/",
    "serving/": "hosted models' archives (model.tar.gz, read by SageMaker when an endpoint "
    "starts), under serving/<artifact id>/; read only",
    "capture/": "endpoints' data capture, which SageMaker writes with the endpoint's "
    "execution role under capture/<endpoint>/<variant>/<date path>/; written only, never "
    "read (the canary analysis reads it with its own function's grant)",
    "": "the datasets a job reads in place from a bucket it may only read (escrow: raw "
    "datasets as uploaded, under raw/<artifact id>/)",
}
_ENDPOINT_LOG_GROUPS = _arn(
    "logs", f"log-group:{ENDPOINT_LOG_GROUP_PREFIX}{grants.SERVING_PREFIX}*"
)
# Wildcard resources of the AWS SDK integrations state machines may use.
_SDK_WILDCARDS = {
    "sagemaker:DescribeTrainingJob": {_TRAINING_JOBS: _TRAINING_JOBS_REASON},
    "sagemaker:DescribeEndpoint": dict([_SERVING["endpoint"]]),
}


def _grant_wildcards(service: ServiceStack) -> dict[platform.Grant, dict[str, str]]:
    """_GRANT_WILDCARDS, and the grants whose wildcard names a resource of the service stack
    (cdk-nag writes a generated name as ``<logical id.attribute>``)."""
    machine = service.state_machines[platform.TRAIN_STATE_MACHINE.logical_id]
    cfn_machine = machine.state_machine.node.default_child
    if not isinstance(cfn_machine, CfnElement):
        raise TypeError(f"{machine.node.path}: no CloudFormation resource")
    name = f"<{service.get_logical_id(cfn_machine)}.Name>"
    return _GRANT_WILDCARDS | {
        platform.Grant.TRAIN_WORKFLOW_STATUS: {
            _arn("states", f"execution:{name}:*"): "The executions of the "
            f"{machine.spec.logical_id} state machine only: execution names are per job, "
            "not known when the policy is written, and DescribeExecution is authorized "
            "against the execution's ARN."
        }
    }


def acknowledge(data: DataStack, service: ServiceStack) -> None:
    """Attach every acknowledgement of the app to its construct."""
    grant_wildcards = _grant_wildcards(service)
    for fn in service.functions.values():
        _acknowledge_function(data, fn, grant_wildcards)
    for rule in service.schedules.values():
        _ack(
            rule,
            "Serverless-EventBusDLQ",
            "A schedule tick carries no payload, and a run that fails after Lambda's retries "
            "lands in the function's own invocation dead-letter queue (its DeadLetterConfig), "
            "from which `modelops ops replay` runs it again; a second queue on the rule's "
            "target would only hold ticks EventBridge could not hand to Lambda at all.",
        )
    _acknowledge_event_queues(service.event_queues, service.integration_rules)
    for role in service.sagemaker_roles.values():
        _acknowledge_training_role(data, role)
    for people in service.people_roles.values():
        _acknowledge_break_glass_role(data, people)
    for machine in service.state_machines.values():
        _acknowledge_state_machine(machine)
    _acknowledge_api(service)


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def _acknowledge_function(
    data: DataStack, fn: PythonFunction, grant_wildcards: dict[platform.Grant, dict[str, str]]
) -> None:
    spec = fn.spec
    _ack(
        fn.xray_policy,
        "AwsSolutions-IAM5[Resource::*]",
        "xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level "
        "permissions; this dedicated policy holds only those two actions.",
    )
    runtime_reason = (
        "python3.12 is the platform's pinned runtime: the Lambda layer is built from "
        "cp312 manylinux2014_aarch64 wheels (scripts/build_layer.py). Moving to a newer "
        "runtime is one deliberate change to the layer build and PythonFunction together."
    )
    _ack(fn.function, "AwsSolutions-L1", runtime_reason)
    _ack(fn.function, "Serverless-LambdaLatestVersion", runtime_reason)
    if spec.api_routes:
        _ack(
            fn.function,
            "Serverless-LambdaDLQ",
            "Invoked only synchronously by API Gateway (Lambda proxy integration): a failed "
            "request returns its error to the caller, and there is no asynchronous "
            "invocation whose event a dead-letter queue could keep.",
        )
    elif fn.function.dead_letter_queue is not None:
        pass  # invoked asynchronously by other functions: it has a dead-letter queue
    elif spec.queue:
        _ack(
            fn.function,
            "Serverless-LambdaDLQ",
            f"Invoked only by the event source mapping of {spec.queue}, which Lambda polls "
            "and invokes synchronously: a message the function fails (batchItemFailures or "
            "an error) returns to the queue, and moves to the queue's own dead-letter queue "
            "after the queue's maxReceiveCount; there is no asynchronous invocation whose "
            "event a function dead-letter queue could keep.",
        )
    elif spec.schedule:
        _ack(
            fn.function,
            "Serverless-LambdaDLQ",
            f"Invoked only by its schedule ({spec.schedule}) with an empty event: the next "
            "run redoes whatever a failed run left undone, so a dead-letter queue would keep "
            "nothing worth replaying.",
        )
    else:
        (machine,) = (m.logical_id for m in platform.STATE_MACHINES if spec.name in m.tasks)
        _ack(
            fn.function,
            "Serverless-LambdaDLQ",
            f"Invoked only synchronously by the {machine} state machine (lambda:invoke, "
            "request-response): a failure returns to the execution, which retries transient "
            "errors and catches the rest into its compensation path; there is no asynchronous "
            "invocation whose event a dead-letter queue could keep.",
        )

    policy = fn.role.node.try_find_child("DefaultPolicy")
    if not isinstance(policy, iam.Policy):
        return
    actions: set[str] = set()
    for logical_id, access in spec.tables.items():
        if platform.table(logical_id).indexes:
            arn = (
                "arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/"
                f"{data.export_name(logical_id, 'Name')}/index/*"
            )
            _ack(
                policy,
                f"AwsSolutions-IAM5[Resource::{arn}]",
                f"The global secondary indexes of {logical_id} only (declared in "
                "modelops.platform), which the function queries.",
            )
        if access is platform.Access.READ_WRITE:
            actions.update(_KMS_WRITE_ACTIONS)
    for logical_id, access in spec.buckets.items():
        arn = f"arn:<AWS::Partition>:s3:::{data.export_name(logical_id, 'Name')}/*"
        _ack(
            policy,
            f"AwsSolutions-IAM5[Resource::{arn}]",
            f"The objects of {logical_id} only, the bucket the FunctionSpec names; object "
            "keys are data (content digests), not known when the policy is written.",
        )
        if access is platform.Access.WRITE:
            continue  # s3:PutObject, named
        actions.update(_S3_READ_ACTIONS)
        if access is platform.Access.READ_WRITE:
            actions.update(_S3_WRITE_ACTIONS + _KMS_WRITE_ACTIONS)
    for action in sorted(actions):
        _ack(policy, f"AwsSolutions-IAM5[Action::{action}]", _ACTION_REASONS[action])
    wildcards: dict[str, list[str]] = {}
    for grant in spec.grants:
        for resource, reason in grant_wildcards.get(grant, {}).items():
            wildcards.setdefault(resource, []).append(reason)
    # Grants naming the same wildcard (e.g. "*") are acknowledged once, with every reason.
    _ack_resources(
        policy,
        {resource: " ".join(dict.fromkeys(reasons)) for resource, reasons in wildcards.items()},
    )


def _ack_resources(scope: IConstruct, reasons: dict[str, str]) -> None:
    for resource, reason in reasons.items():
        _ack(scope, f"AwsSolutions-IAM5[Resource::{resource}]", reason)


def _default_policy(role: iam.IRole) -> iam.Policy:
    policy = role.node.find_child("DefaultPolicy")
    if not isinstance(policy, iam.Policy):
        raise TypeError(f"{role.node.path}: no default policy")
    return policy


def _acknowledge_event_queues(event_queues: EventQueues, integrations: IntegrationRules) -> None:
    # Each dead-letter queue, with what it keeps and how that is replayed.
    dead_letter_queues = {
        **{
            q: f"of {logical_id}: messages its consumer failed, replayed into {logical_id} with "
            "StartMessageMoveTask"
            for logical_id, q in event_queues.dead_letter_queues.items()
        },
        **{
            q: f"of the {logical_id} rule's target: events EventBridge could not deliver to "
            "its queue (the message body is the event), replayed by sending the body to the "
            "queue"
            for logical_id, q in event_queues.delivery_dlqs.items()
        },
        **{
            q: f"of the {name} function: asynchronous invocations that failed after Lambda's "
            "retries (the message body is the payload), replayed by invoking it again"
            for name, q in event_queues.invocation_dlqs.items()
        },
        **{
            q: f"of the rule forwarding to {name}'s event bus: events EventBridge could not "
            "deliver there, replayed by putting them on that bus again"
            for name, q in integrations.delivery_dlqs.items()
        },
    }
    for queue, keeps in dead_letter_queues.items():
        _ack(
            queue,
            "Serverless-SQSRedrivePolicy",
            f"The dead-letter queue {keeps}. It is the last stop, which nothing consumes, so "
            "there is no further queue to redrive to; messages are kept 14 days.",
        )
    delivery_dlqs = {
        **{
            f"the {logical_id} EventBridge rule's SQS target": q
            for logical_id, q in event_queues.delivery_dlqs.items()
        },
        **{
            f"the EventBridge rule forwarding to {name}'s event bus": q
            for name, q in integrations.delivery_dlqs.items()
        },
    }
    for target, queue in delivery_dlqs.items():
        _ack(
            queue,
            "AwsSolutions-SQS3",
            f"This queue is a dead-letter queue: the DeadLetterConfig of {target}, a use the "
            "SQS3 check does not recognise (it only looks for queues and functions that name "
            "the queue as their dead-letter queue).",
        )
    for logical_id, mapping in event_queues.mappings.items():
        _ack(
            mapping,
            "Serverless-LambdaEventSourceMappingDestination",
            "SQS event source mappings support no on-failure destination (Lambda supports "
            f"one for stream and Kafka sources only): a message from {logical_id} that its "
            "consumer fails is received again, and moves to the queue's dead-letter queue "
            "after its maxReceiveCount (the queue's redrive policy).",
        )


def _acknowledge_training_role(data: DataStack, training_role: TrainingRole) -> None:
    spec = training_role.spec
    reasons = {
        f"arn:<AWS::Partition>:s3:::{data.export_name(logical_id, 'Name')}/{prefix}*": (
            f"Objects under {prefix} of {logical_id} only: {_PREFIX_USES[prefix]}; object keys "
            "are per job, deployment or content digest, not known when the policy is written."
            if prefix
            else f"The objects of {logical_id}: {_PREFIX_USES[prefix]}; which ones a job reads "
            "is decided per job (its approved datasets), not when the policy is written."
        )
        for logical_id, access in spec.buckets.items()
        for prefix in dict.fromkeys(read_prefixes(logical_id) + write_prefixes(logical_id, access))
    }
    reasons |= {
        _TRAINING_LOG_GROUP: _LOG_GROUP_REASON,
        _TRAINING_LOG_STREAMS: _LOG_STREAMS_REASON,
        _ENDPOINT_LOG_GROUPS: "The log groups of the platform's endpoints only "
        f"({ENDPOINT_LOG_GROUP_PREFIX}<endpoint name>, endpoint names being "
        f"{grants.SERVING_PREFIX}<route>-<env>), and their streams, which SageMaker names "
        "after each variant and instance when the endpoint starts.",
        "*": "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level "
        "permissions. PutMetricData is conditioned on SageMaker's training and endpoint "
        f"namespaces ({', '.join(METRICS_NAMESPACES)}); image layers can be pulled from the "
        "default training image's repository only.",
    }
    _ack_resources(_default_policy(training_role.role), reasons)


def _acknowledge_break_glass_role(data: DataStack, people: BreakGlassRole) -> None:
    _ack_resources(
        _default_policy(people.role),
        {
            f"arn:<AWS::Partition>:s3:::{data.export_name(logical_id, 'Name')}/*": (
                f"Reading any object (GetObject, GetObjectVersion) of {logical_id}, which is "
                "what break-glass is for: the object to read is chosen at the time, under MFA, "
                "for an hour at most, and CloudTrail records every read and every decrypt."
            )
            for logical_id in people.spec.buckets
        },
    )


def _acknowledge_state_machine(machine: WorkflowStateMachine) -> None:
    reasons = {
        "*": "Step Functions' log delivery actions (logs:CreateLogDelivery, "
        "logs:PutResourcePolicy...) and the X-Ray write actions support no resource-level "
        "permissions; CDK writes them for the execution logging and tracing this state "
        "machine has on.",
    }
    for action in machine.sdk_actions:
        reasons |= _SDK_WILDCARDS.get(action, {})
    _ack_resources(_default_policy(machine.state_machine.role), reasons)


def _acknowledge_api(service: ServiceStack) -> None:
    api = service.api
    _ack(
        api,
        "AwsSolutions-COG4",
        "Callers are services (Kernel) that sign requests with SigV4: every method uses "
        "AWS_IAM authorization. Cognito user pools authenticate end users, which this API "
        "does not serve.",
    )
    cloud_watch_role = api.node.try_find_child("CloudWatchRole")
    if cloud_watch_role is not None:
        _ack(
            cloud_watch_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role; AWS maintains this service-role "
            "policy for exactly this purpose and it grants CloudWatch Logs writes only.",
        )


def acknowledge_truststore(truststore: TruststoreStack) -> None:
    """The truststore stack's acknowledgements (it exists with a custom domain only)."""
    _ack(
        truststore.bucket,
        "AwsSolutions-S1",
        "The bucket holds the mTLS truststore only: public CA certificates that operators "
        "upload by hand and API Gateway reads when the domain is deployed. It is versioned "
        "(every change is kept), and the account's CloudTrail management events record "
        "changes to its configuration; access logs would record nothing worth keeping.",
    )
