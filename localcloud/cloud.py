"""The local cloud: moto in server mode plus the extensions, provisioned from the same
definition the CDK stacks deploy (``modelops.platform``).

``LocalCloud().start()`` brings up, in this process:
1. moto's threaded server on 127.0.0.1 with Step Functions execution on;
2. the KMS Ed25519 and DIGEST extensions, atomic DynamoDB requests, the denies of
   bucket and key policies (``localcloud.resource_policies``; see "Resource policies"),
   and S3's check of a PUT's declared SHA-256 (``localcloud.s3_checksums``);
3. the Lambda runtime (warm worker processes running ``functions/`` handlers);
4. every key, table, bucket, event bus, IAM role, function and state machine of
   ``modelops.platform``, with the environment variables CDK would give each function
   (schedules are not run: what a scheduled function does is reachable through the API),
   and its event routing: each queue with its dead-letter queue, each EventBridge rule
   sending to its queue, and each queue's event source mapping to its consumer (see
   "Event routing" below);
5. SageMaker training jobs and endpoints made real (``localcloud.sagemaker_training``,
   ``localcloud.sagemaker_endpoints``): the image is this machine's Python, registered in
   ECR so that jobs pin it by digest; CloudWatch answers percentiles
   (``localcloud.cloudwatch_percentiles``);
6. IAM users for the platform's principals, with access keys;
7. the local API Gateway, verifying SigV4 and mapping access keys to those principals.

Resource policies (``BucketSpec.key``, ``BucketSpec.readers``, ``platform.reader_statements``).
Each bucket is encrypted (SSE-KMS, bucket key) with its spec's key. A bucket with
``readers`` gets the bucket policy CDK deploys, and its key the key policy (moto's default
policy, which lets the account's IAM decide, plus the Deny), once the roles and functions
exist: readers are role logical ids (``names[logical_id]`` is the role's ARN) and function
names (their execution role, ``execution_roles[name]``, ``arn:aws:iam::<account>:role/
<name>-role``). What is enforced (moto evaluates neither policy): a Deny in a bucket policy
refuses object requests (``GetObject``/``HeadObject``, the source of ``CopyObject`` and
``UploadPartCopy``, presigned URLs too) with 403 ``AccessDenied``, one in a key policy
refuses ``Decrypt`` with ``AccessDeniedException``, to every caller it names: IAM users,
sessions of roles (by the role's ARN, as ``aws:PrincipalArn``), and requests with
credentials moto does not know (the account's root). Lambda functions run with their
execution role's credentials, and SageMaker training jobs and endpoints read their data as
their ``RoleArn``/``ExecutionRoleArn`` (``localcloud.sagemaker_training``,
``localcloud.sagemaker_endpoints``), so the escrow bucket refuses the training role and
admits ``RawPiiJobRole``, ``BreakGlassRole`` and ``dataset-sanitizer`` as in AWS.
``role_session`` gives a test a session of any role. Not enforced: Allow statements and
identity policies (moto enforces no IAM here: a principal without a grant is not refused),
the MFA condition of the break-glass role's trust policy (roles whose ``service`` is None
trust the account root with ``aws:MultiFactorAuthPresent``; moto's STS checks no trust
policy), bucket-level requests, and S3's own use of the key when it reads an SSE-KMS object.

Event routing (``platform.QUEUES``, ``EVENT_RULES``, ``FunctionSpec.queue``), as moto 5.2.5
runs it. What works as in AWS: PutEvents on the local bus (or ``default``) matches each
rule's pattern (``prefix`` matchers included) and sends the event (``version``, ``id``,
``detail-type``, ``source``, ``time``, ``region``, ``resources``, ``detail``) as the
message body to the rule's queue; the queue's event source mapping
invokes the consumer with ``{"Records": [{"messageId", "receiptHandle", "body",
"attributes", "messageAttributes", "md5OfBody", "eventSource": "aws:sqs",
"eventSourceARN", "awsRegion"}]}``; a message whose consumer fails is received again, and
moves to the dead-letter queue once it has been received ``max_receives`` times. Gaps:

- Delivery is synchronous: the consumer runs inside the SendMessage that EventBridge makes
  inside the publisher's PutEvents, so PutEvents returns only when the consumer has
  finished (past the publisher's boto3 read timeout, 60 s by default, the publisher
  retries PutEvents and the event is sent again). There is no poller: a message
  returned to the queue is received again only when the next message is sent to the
  queue, not after the visibility timeout.
- Each record is its own invocation (one record per event, whatever the batch size).
  The body lacks the event's ``account``, which AWS sends. ``attributes`` are canned
  (``ApproximateReceiveCount`` is always "1", ``SentTimestamp`` is fixed) and
  ``md5OfBody`` is not the body's digest.
- ``ReportBatchItemFailures`` is recorded but not honoured: a response's
  ``batchItemFailures`` is ignored (the messages are deleted as processed); only a
  function error (an exception) returns messages to the queue, and then every message
  received in the same batch returns too, including those whose own invocation
  succeeded: they are delivered again with the next message, and can reach the
  dead-letter queue alongside the failing one. ``modelops.consumers.queue_handler``
  reports failed records instead of raising, so locally a record it fails is deleted:
  neither retried nor dead-lettered (its ``event not processed`` log line remains).
- CloudWatch alarms are not evaluated against metric data, EMF log lines do not become
  metrics, and alarm state changes (even SetAlarmState) put no event on the default bus:
  the drift alarm path (``DriftAlarmRule``) is reached locally only by putting a
  ``CloudWatch Alarm State Change`` event on the ``default`` bus yourself.
- What the CDK stacks add around the definition is not provisioned: rule targets' retry
  policies and dead-letter queues, the dead-letter queues of functions invoked
  asynchronously (the runtime does not retry asynchronous invocations), batching windows,
  encryption and queue policies.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TextIO

import boto3
from moto.core.config import default_user_config
from moto.iam.models import iam_backends
from moto.server import ThreadedMotoServer

from localcloud import (
    cloudwatch_percentiles,
    dynamodb_atomic,
    kms_digest,
    kms_ed25519,
    resource_policies,
    s3_checksums,
)
from localcloud.apigateway import LocalApiGateway
from localcloud.integrations import Integrations
from localcloud.lambda_runtime import DEFAULT_ACCOUNT_ID, LambdaRuntime, LogSink
from localcloud.sagemaker_endpoints import EndpointExecutor
from localcloud.sagemaker_training import TrainingExecutor, register_local_image
from localcloud.sigv4 import Credential
from modelops import platform
from modelops.domain.access import Role

REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_ROOT = REPO_ROOT / "functions"
# The callers of the platform: one IAM user per role, bound to it in the functions'
# configuration as CDK binds role patterns in AWS.
# Two approvers, so that M-of-N approval can be exercised.
PRINCIPALS = {role.value: role for role in Role} | {"approver-2": Role.APPROVER}
LAMBDA_RUNTIME = "python3.12"
STATEMACHINES_ROOT = REPO_ROOT / "statemachines"
# Teams of the local principals (quota accounting); the approvers belong to none.
TEAMS = {"ml-engineer": "ml-research", "kernel": "kernel", "platform-admin": "platform"}
# The workflow polls SageMaker every second here (a minute in AWS, see cdk.json).
POLL_SECONDS = 1
# As the CDK stacks deploy them (stacks/constructs/event_queues.py).
QUEUE_BATCH_SIZE = 10
DLQ_RETENTION_S = 14 * 24 * 3600


def physical_name(logical_id: str) -> str:
    """Local physical names: stable and readable (CloudFormation generates them in AWS)."""
    return f"modelops-local-{logical_id.lower()}"


@dataclass(frozen=True)
class Principal:
    name: str
    arn: str
    access_key_id: str
    secret_access_key: str

    def session(self, region: str) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=region,
        )


class LocalCloud:
    def __init__(
        self,
        *,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        moto_port: int = 0,
        api_port: int = 0,
        functions_root: Path = FUNCTIONS_ROOT,
        log_file: Path | None = None,
        work_root: Path | None = None,
    ) -> None:
        """Functions' log lines go to ``log_file`` (appended), else to stderr; each line is
        prefixed with the function's name. CloudWatch Logs gets them too. Training jobs run
        in private directories under ``work_root`` (a temporary directory by default)."""
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self._host = host
        self._moto_port = moto_port
        self._api_port = api_port
        self._functions_root = functions_root
        self._log_file = log_file
        self._log: TextIO | None = None
        self._moto: ThreadedMotoServer | None = None
        self._runtime: LambdaRuntime | None = None
        self._gateway: LocalApiGateway | None = None
        self._work_root = work_root
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.sagemaker: TrainingExecutor | None = None
        self.endpoints: EndpointExecutor | None = None
        self.parameters: dict[str, str] = {}
        self.principals: dict[str, Principal] = {}
        self.key_arns: dict[str, str] = {}
        # Function name -> its execution role's ARN (what Lambda runs it as).
        self.execution_roles: dict[str, str] = {}
        self.role_bindings: dict[str, tuple[str, ...]] = {}
        logical_ids = [t.logical_id for t in platform.TABLES] + [
            b.logical_id for b in platform.BUCKETS
        ]
        logical_ids += [b.logical_id for b in platform.BUSES]
        logical_ids += [q.logical_id for q in platform.QUEUES]
        self.names = {logical_id: physical_name(logical_id) for logical_id in logical_ids}
        # Functions that others invoke, by function name: local names are the spec names.
        self.names |= {name: name for fn in platform.FUNCTIONS for name in fn.invokes}
        self.queue_urls: dict[str, str] = {}
        self.dead_letter_queue_urls: dict[str, str] = {}

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> LocalCloud:
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        kms_ed25519.install()
        kms_digest.install()
        dynamodb_atomic.install()
        cloudwatch_percentiles.install()
        resource_policies.install()
        s3_checksums.install()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
        # moto's ASL interpreter logs every Fail state (a rolled-back canary) as an error.
        logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
        self._moto = ThreadedMotoServer(ip_address=self._host, port=self._moto_port, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        # Step Functions' aws-sdk integrations call moto at localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        self._runtime = LambdaRuntime(
            self._functions_root,
            endpoint_url=self.endpoint_url,
            region=self.region,
            extra_env={"S3_ADDRESSING_STYLE": "path"},
            log_sink=self._open_log(),
        )
        self._runtime.install()  # refuses while another LocalCloud of this process runs
        # moto's backends are process-wide: start from nothing even if an earlier LocalCloud
        # of this process left resources behind.
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST"),
            timeout=30,
        ).close()
        if self._work_root is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="modelops-local-")
        self.sagemaker = TrainingExecutor(
            endpoint_url=self.endpoint_url,
            region=self.region,
            work_root=self._work_root or Path(self._scratch.name if self._scratch else "."),
        )
        self.sagemaker.install()
        self.endpoints = EndpointExecutor(
            endpoint_url=self.endpoint_url,
            region=self.region,
            work_root=(self._work_root or Path(self._scratch.name if self._scratch else "."))
            / "endpoints",
        )
        self.endpoints.install()
        self._provision()
        self._gateway = LocalApiGateway(
            routes={route: fn.name for fn in platform.FUNCTIONS for route in fn.api_routes},
            invoke=self._invoke_for_gateway,
            lookup=self._lookup_credential,
            region=self.region,
            account_id=self.account_id,
            port=self._api_port,
        )
        self._gateway.start()
        return self

    def stop(self) -> None:
        if self._gateway is not None:
            self._gateway.stop()
        if self.sagemaker is not None:
            self.sagemaker.shutdown()
            self.sagemaker.uninstall()
        if self.endpoints is not None:
            self.endpoints.shutdown()
        if self._runtime is not None:
            self._runtime.shutdown()
        if self._moto is not None:
            self._moto.stop()
        if self._log is not None:
            self._log.close()
        if self._scratch is not None:
            self._scratch.cleanup()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        if self._gateway is None:
            raise RuntimeError("the local cloud is not started")
        return self._gateway.url

    def client(self, service: str) -> Any:
        """A boto3 client for the emulated AWS, as the platform administrator."""
        admin = self.principals["platform-admin"]
        return admin.session(self.region).client(service, endpoint_url=self.endpoint_url)

    def role_session(
        self, role_arn: str, session_name: str = "local", *, principal: str = "platform-admin"
    ) -> boto3.session.Session:
        """A boto3 session of ``role_arn`` (STS AssumeRole as ``principal``): what its
        requests may do is what resource policies allow that role (see "Resource policies").
        """
        sts = (
            self.principals[principal]
            .session(self.region)
            .client("sts", endpoint_url=self.endpoint_url)
        )
        credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name)["Credentials"]
        return boto3.session.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
            region_name=self.region,
        )

    def connection_info(self) -> dict[str, Any]:
        return {
            "apiUrl": self.api_url,
            "awsEndpointUrl": self.endpoint_url,
            "region": self.region,
            "resources": self.names,
            "principals": {
                p.name: {
                    "arn": p.arn,
                    "accessKeyId": p.access_key_id,
                    "secretAccessKey": p.secret_access_key,
                }
                for p in self.principals.values()
            },
        }

    # --- provisioning from modelops.platform -------------------------------------------

    @cached_property
    def _admin_bootstrap(self) -> boto3.session.Session:
        # Before IAM users exist, moto accepts any credentials (its default account).
        return boto3.session.Session(
            aws_access_key_id="AKIALOCALBOOTSTRAP00",
            aws_secret_access_key="bootstrap",
            region_name=self.region,
        )

    def _provision(self) -> None:
        session = self._admin_bootstrap
        kms = session.client("kms", endpoint_url=self.endpoint_url)
        for key in platform.KEYS:
            self.key_arns[key.logical_id] = self._create_key(kms, key)
        ddb = session.client("dynamodb", endpoint_url=self.endpoint_url)
        for table in platform.TABLES:
            self._create_table(ddb, table)
        s3 = session.client("s3", endpoint_url=self.endpoint_url)
        for bucket in platform.BUCKETS:
            self._create_bucket(s3, bucket)
        events = session.client("events", endpoint_url=self.endpoint_url)
        for bus in platform.BUSES:
            events.create_event_bus(Name=self.names[bus.logical_id], Description=bus.description)
        sqs = session.client("sqs", endpoint_url=self.endpoint_url)
        for queue in platform.QUEUES:
            self._create_queue(sqs, queue)
        for rule in platform.EVENT_RULES:
            self._create_rule(events, sqs, rule)
        self.integrations = Integrations(events, sqs, self.names[platform.EVENT_BUS.logical_id])
        iam = session.client("iam", endpoint_url=self.endpoint_url)
        for name, role in PRINCIPALS.items():
            user = iam.create_user(UserName=name)["User"]
            key = iam.create_access_key(UserName=name)["AccessKey"]
            self.principals[name] = Principal(
                name=name,
                arn=user["Arn"],
                access_key_id=key["AccessKeyId"],
                secret_access_key=key["SecretAccessKey"],
            )
            self.role_bindings[user["Arn"]] = (role.value,)
        for spec in platform.ROLES:
            self.names[spec.logical_id] = self._create_service_role(iam, spec)
        ecr = session.client("ecr", endpoint_url=self.endpoint_url)
        image_uri, _ = register_local_image(ecr)
        self.parameters = {
            platform.TRAINING_IMAGE_PARAMETER: image_uri,
            platform.TRAINING_POLL_PARAMETER: str(POLL_SECONDS),
            # The pools CDK deploys (cdk.json), and local principals bound to teams.
            platform.COMPUTE_POOLS_PARAMETER: json.dumps(_cdk_context()["computePools"]),
            platform.TEAM_BINDINGS_PARAMETER: json.dumps(
                {self.principals[name].arn: team for name, team in TEAMS.items()}
            ),
        }
        sfn = session.client("stepfunctions", endpoint_url=self.endpoint_url)
        for machine in platform.STATE_MACHINES:
            self.names[machine.logical_id] = self._state_machine_arn(machine)
        lam = session.client("lambda", endpoint_url=self.endpoint_url)
        for fn in platform.FUNCTIONS:
            self._create_function(iam, lam, fn)
        for fn in platform.FUNCTIONS:
            if fn.queue is not None:
                self._subscribe(sqs, lam, fn)
        for machine in platform.STATE_MACHINES:
            self._create_state_machine(iam, sfn, machine)
        for bucket in platform.BUCKETS:
            if bucket.readers:
                self._restrict_readers(s3, kms, bucket)
        for key in platform.KEYS:
            if key.users:
                self._restrict_key_users(kms, key)

    def _create_key(self, kms: Any, key: platform.KeySpec) -> str:
        metadata = kms.create_key(
            Description=key.description, KeySpec=key.key_spec, KeyUsage=key.key_usage
        )["KeyMetadata"]
        kms.create_alias(
            AliasName=f"alias/{physical_name(key.logical_id)}", TargetKeyId=metadata["KeyId"]
        )
        if key.rotation:
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        return str(metadata["Arn"])

    def _create_table(self, ddb: Any, table: platform.TableSpec) -> None:
        create_table(
            ddb,
            table,
            self.names[table.logical_id],
            kms_key_arn=self.key_arns[platform.DATA_KEY.logical_id],
        )

    def _create_bucket(self, s3: Any, bucket: platform.BucketSpec) -> None:
        name = self.names[bucket.logical_id]
        s3.create_bucket(
            Bucket=name, ObjectLockEnabledForBucket=bucket.object_lock_days is not None
        )
        if bucket.object_lock_days is not None:
            s3.put_object_lock_configuration(
                Bucket=name,
                ObjectLockConfiguration={
                    "ObjectLockEnabled": "Enabled",
                    "Rule": {
                        "DefaultRetention": {"Mode": "COMPLIANCE", "Days": bucket.object_lock_days}
                    },
                },
            )
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": self.key_arns[bucket.key],
                        },
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        if bucket.versioned:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        if bucket.lifecycle_rules():
            rules = [_lifecycle_rule(rule) for rule in bucket.lifecycle_rules()]
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": rules}
            )

    def reader_arns(self, bucket: platform.BucketSpec) -> list[str]:
        """The role ARNs of ``bucket.readers``: roles of ``platform.ROLES`` by logical id,
        functions by name (their execution roles)."""
        return self._role_arns(bucket.logical_id, bucket.readers)

    def _role_arns(self, owner: str, names: Sequence[str]) -> list[str]:
        roles = {spec.logical_id for spec in platform.ROLES}
        arns = []
        for name in names:
            if name in roles:
                arns.append(self.names[name])
            elif name in self.execution_roles:
                arns.append(self.execution_roles[name])
            else:
                raise KeyError(
                    f"{owner}: {name!r} is neither a role of platform.ROLES nor a function "
                    "of platform.FUNCTIONS"
                )
        return arns

    def _restrict_key_users(self, kms: Any, key: platform.KeySpec) -> None:
        """The key policy that denies the key's use to all but its users (KeySpec.users)."""
        statement = platform.key_user_statement(key, self._role_arns(key.logical_id, key.users))
        self._add_key_statement(kms, key.logical_id, statement)

    def _add_key_statement(self, kms: Any, logical_id: str, statement: dict[str, Any]) -> None:
        key_id = self.key_arns[logical_id]
        policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
        policy["Statement"] = [*policy.get("Statement", []), statement]
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(policy))

    def _restrict_readers(self, s3: Any, kms: Any, bucket: platform.BucketSpec) -> None:
        """The bucket policy and the key policy that deny reading to all but the readers."""
        name = self.names[bucket.logical_id]
        bucket_statement, key_statement = platform.reader_statements(
            f"arn:aws:s3:::{name}", self.reader_arns(bucket)
        )
        s3.put_bucket_policy(
            Bucket=name,
            Policy=json.dumps({"Version": "2012-10-17", "Statement": [bucket_statement]}),
        )
        self._add_key_statement(kms, bucket.key, key_statement)

    def _create_queue(self, sqs: Any, queue: platform.QueueSpec) -> None:
        """The queue and its dead-letter queue (kept 14 days), as CDK declares them."""
        name = self.names[queue.logical_id]
        dlq_url = sqs.create_queue(
            QueueName=f"{name}-dlq",
            Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_S)},
        )["QueueUrl"]
        redrive = {
            "deadLetterTargetArn": _queue_arn(sqs, dlq_url),
            "maxReceiveCount": queue.max_receives,
        }
        self.dead_letter_queue_urls[queue.logical_id] = dlq_url
        self.queue_urls[queue.logical_id] = sqs.create_queue(
            QueueName=name,
            Attributes={
                "VisibilityTimeout": str(queue.visibility_timeout_s),
                "RedrivePolicy": json.dumps(redrive),
            },
        )["QueueUrl"]

    def _create_rule(self, events: Any, sqs: Any, rule: platform.EventRuleSpec) -> None:
        """The rule on its bus (None: the default bus), sending to its queue."""
        bus = "default" if rule.bus is None else self.names[rule.bus]
        name = physical_name(rule.logical_id)
        events.put_rule(
            Name=name,
            EventBusName=bus,
            EventPattern=json.dumps(rule.pattern),
            Description=rule.description,
            State="ENABLED",
        )
        queue_arn = _queue_arn(sqs, self.queue_urls[rule.queue])
        events.put_targets(
            Rule=name, EventBusName=bus, Targets=[{"Id": rule.queue, "Arn": queue_arn}]
        )

    def _subscribe(self, sqs: Any, lam: Any, fn: platform.FunctionSpec) -> None:
        """The event source mapping through which ``fn``'s queue invokes it."""
        assert fn.queue is not None
        lam.create_event_source_mapping(
            EventSourceArn=_queue_arn(sqs, self.queue_urls[fn.queue]),
            FunctionName=fn.name,
            BatchSize=QUEUE_BATCH_SIZE,
            FunctionResponseTypes=["ReportBatchItemFailures"],
        )

    def _create_service_role(self, iam: Any, spec: platform.RoleSpec) -> str:
        if spec.service is None:
            return str(_people_role(iam, spec.logical_id, self.account_id)["Arn"])
        return str(_service_role(iam, spec.logical_id, spec.service)["Arn"])

    def _state_machine_arn(self, machine: platform.StateMachineSpec) -> str:
        name = physical_name(machine.logical_id)
        return f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{name}"

    def _create_state_machine(self, iam: Any, sfn: Any, machine: platform.StateMachineSpec) -> None:
        """The definition from ``statemachines/`` with the placeholders CDK fills."""
        arns = {
            platform.placeholder(name): (
                f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            )
            for name in machine.tasks
        }
        definition = substitute(
            (STATEMACHINES_ROOT / machine.definition).read_text(encoding="utf-8"), arns
        )
        role = _service_role(iam, f"{machine.logical_id}-states", "states.amazonaws.com")
        sfn.create_state_machine(
            name=physical_name(machine.logical_id),
            definition=definition,
            roleArn=role["Arn"],
            type="STANDARD",
        )

    def _create_function(self, iam: Any, lam: Any, fn: platform.FunctionSpec) -> None:
        role = _service_role(iam, fn.name, "lambda.amazonaws.com")
        self.execution_roles[fn.name] = str(role["Arn"])
        lam.create_function(
            FunctionName=fn.name,
            Runtime=LAMBDA_RUNTIME,
            Role=role["Arn"],
            Handler=fn.handler,
            Code={"ZipFile": _placeholder_zip()},
            Description=fn.description,
            Timeout=fn.timeout_s,
            MemorySize=fn.memory_mb,
            Architectures=["arm64"],
            Environment={"Variables": self.function_environment(fn)},
        )

    def function_environment(self, fn: platform.FunctionSpec) -> dict[str, str]:
        """What CDK would give ``fn``: physical names, key ARNs and bus names of this cloud."""
        resources = {**self.names, **self.key_arns}
        return platform.function_environment(fn, resources, self.role_bindings, self.parameters)

    def _open_log(self) -> LogSink | None:
        if self._log_file is None:
            return None
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self._log = self._log_file.open("a", buffering=1)

        def sink(function_name: str, line: str) -> None:
            log.write(f"[{function_name}] {line}\n")

        return sink

    # --- gateway plumbing --------------------------------------------------------------

    def _invoke_for_gateway(self, function_name: str, event: dict[str, Any]) -> dict[str, Any]:
        assert self._runtime is not None
        result = self._runtime.invoke(
            function_name, event, account_id=self.account_id, region=self.region
        )
        if result.function_error:
            raise RuntimeError(f"{function_name} failed: {result.payload[:500]!r}")
        response = json.loads(result.payload)
        if not isinstance(response, dict):
            raise RuntimeError(f"{function_name} returned a non-object proxy response")
        return response

    def _lookup_credential(self, access_key_id: str) -> Credential | None:
        backend = iam_backends[self.account_id]["global"]
        for user in list(backend.users.values()):
            for key in user.access_keys:
                if key.access_key_id == access_key_id and key.status == "Active":
                    return Credential(
                        access_key_id=access_key_id,
                        secret_access_key=key.secret_access_key,
                        principal_arn=user.arn,
                        account_id=self.account_id,
                    )
        return None


def _cdk_context() -> dict[str, Any]:
    return dict(json.loads((REPO_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"])


def _queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def _service_role(iam: Any, name: str, service: str) -> dict[str, Any]:
    """An IAM role that ``service`` may assume."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
        ],
    }
    return dict(
        iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=json.dumps(document))[
            "Role"
        ]
    )


def _people_role(iam: Any, name: str, account_id: str) -> dict[str, Any]:
    """An IAM role that people of this account assume, with MFA, for an hour at most (as CDK
    declares it). moto's STS checks neither the trust policy nor MFA: any caller may assume
    it locally."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
            }
        ],
    }
    return dict(
        iam.create_role(
            RoleName=f"{name}-role",
            AssumeRolePolicyDocument=json.dumps(document),
            MaxSessionDuration=3600,
        )["Role"]
    )


def substitute(definition: str, values: dict[str, str]) -> str:
    """Fill ``${Name}`` placeholders as CDK's definitionSubstitutions do; an unknown
    placeholder is an error, not a silent gap."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for placeholder ${{{name}}}")
        return values[name]

    return PLACEHOLDER.sub(fill, definition)


PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")


def _lifecycle_rule(rule: platform.LifecycleRule) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "ID": rule.rule_id,
        "Filter": {"Prefix": rule.prefix},
        "Status": "Enabled",
    }
    if rule.expire_days:
        converted["Expiration"] = {"Days": rule.expire_days}
    if rule.transition_days and rule.storage_class:
        converted["Transitions"] = [
            {"Days": rule.transition_days, "StorageClass": rule.storage_class}
        ]
    if rule.abort_multipart_days:
        converted["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": rule.abort_multipart_days
        }
    return converted


def _placeholder_zip() -> bytes:
    """The Lambda API needs a code zip; the runtime reads code from ``functions/``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code is served from the repository's functions/ directory")
    return buffer.getvalue()


def create_table(
    ddb: Any, table: platform.TableSpec, name: str, kms_key_arn: str | None = None
) -> None:
    """Create a table as its TableSpec declares (the CDK stack declares the same)."""
    keys = [(table.partition_key, "HASH")]
    if table.sort_key:
        keys.append((table.sort_key, "RANGE"))
    attributes = {attribute for attribute, _ in keys}
    indexes = []
    for index in table.indexes:
        attributes |= {index.partition_key, index.sort_key}
        indexes.append(
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        )
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": [{"AttributeName": n, "KeyType": t} for n, t in keys],
        "AttributeDefinitions": [
            {"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if kms_key_arn:
        args["SSESpecification"] = {
            "Enabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": kms_key_arn,
        }
    if indexes:
        args["GlobalSecondaryIndexes"] = indexes
    ddb.create_table(**args)
    if table.ttl_attribute:
        ddb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
