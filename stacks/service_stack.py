"""ServiceStack: the stateless resources (layer, functions, state machines, the roles services
assume, REST API).

Functions, routes and schedules come from ``modelops.platform.FUNCTIONS``, state machines
from ``STATE_MACHINES``, the roles services and people assume from ``ROLES`` (SageMaker's
training and raw-PII job roles, the break-glass role). Tables, buckets, keys and event buses
are the DataStack's, imported here through its named exports and looked up by the logical
ids the specs name; each bucket with the key its spec names. The roles of bucket readers
(``BucketSpec.readers``) get the names ``stacks.readers`` gives them, which the data stack's
bucket and key policies name.

Order follows the references: a state machine names its task functions' ARNs, so they are
created before it; every other function is created after the state machines, because it may
start one (``platform.STARTS``: its ARN in the environment, StartExecution) or read its
executions (``Grant.TRAIN_WORKFLOW_STATUS``); and a function that invokes others
(``FunctionSpec.invokes``: their names in its environment, InvokeFunction) is created after
them.

Queues, the EventBridge rules that fill them and their dead-letter queues
(``stacks/constructs/event_queues.py``) are created before the functions (a function
invoked asynchronously has one of them as its dead-letter queue); each queue's consumer
is subscribed to it once the functions exist.

The REST API's stage is behind AWS WAF (``stacks/constructs/api_firewall.py``), throttled
as a whole and, tighter, on the costly mutating methods the environment names
(``methodThrottling``: each gets a method of its own next to its route's ANY). With a
``customDomain`` the API is served on that domain with mutual TLS, its truststore read from
the truststore stack's bucket (``stacks/truststore_stack.py``), and the default execute-api
endpoint is disabled. Functions reserve the concurrency the environment gives them
(``reservedConcurrency``); a queue consumer's mapping is capped at the same number.

Quota alarms (``stacks/constructs/quota_alarms.py``) watch each team's GPU-hour use in each
pool of the environment's pool configuration; the drift alarm
(``stacks/constructs/drift_alarms.py``) the drift monitor's features at alarm. The
operations dashboard and the operators' alarms (``stacks/constructs/observability.py``)
watch the API, functions, state machines, dead-letter queues and training jobs; the quota
alarms at 100% notify operators too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from modelops import platform
from stacks import readers
from stacks.constructs import grants
from stacks.constructs.api_firewall import ApiFirewall
from stacks.constructs.break_glass_role import BreakGlassRole
from stacks.constructs.drift_alarms import DriftAlarms
from stacks.constructs.event_queues import EventQueues
from stacks.constructs.integrations import IntegrationRules
from stacks.constructs.observability import Observability, dashboard_name
from stacks.constructs.python_function import ARCHITECTURE, RUNTIME, PythonFunction
from stacks.constructs.quota_alarms import QuotaAlarms
from stacks.constructs.state_machine import WorkflowStateMachine
from stacks.constructs.training_role import TrainingRole
from stacks.data_stack import DataStack
from stacks.environment import REPO_ROOT, EnvironmentSettings, MethodThrottle
from stacks.truststore_stack import TruststoreStack

LAYER_DIR = REPO_ROOT / "build" / "layer"
FUNCTIONS_DIR = REPO_ROOT / "functions"
STATE_MACHINES_DIR = REPO_ROOT / "statemachines"
_CODE_EXCLUDES = ["**/__pycache__", "**/*.pyc"]

# One JSON object per request; the caller's IAM identity is what SigV4 authenticated.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": apigw.AccessLogField.context_request_id(),
        "extendedRequestId": apigw.AccessLogField.context_extended_request_id(),
        "requestTime": apigw.AccessLogField.context_request_time(),
        "httpMethod": apigw.AccessLogField.context_http_method(),
        "resourcePath": apigw.AccessLogField.context_resource_path(),
        "path": apigw.AccessLogField.context_path(),
        "protocol": apigw.AccessLogField.context_protocol(),
        "status": apigw.AccessLogField.context_status(),
        "responseLength": apigw.AccessLogField.context_response_length(),
        "integrationLatency": apigw.AccessLogField.context_integration_latency(),
        "sourceIp": apigw.AccessLogField.context_identity_source_ip(),
        "userAgent": apigw.AccessLogField.context_identity_user_agent(),
        "caller": apigw.AccessLogField.context_identity_caller(),
        "user": apigw.AccessLogField.context_identity_user(),
        "userArn": apigw.AccessLogField.context_identity_user_arn(),
        "accountId": apigw.AccessLogField.context_identity_account_id(),
        "xrayTraceId": apigw.AccessLogField.context_xray_trace_id(),
        "errorMessage": apigw.AccessLogField.context_error_message(),
    }
)


# Execution logging and metrics of every method, throttled on its own or not.
METHOD_LOGGING: dict[str, Any] = {
    "logging_level": apigw.MethodLoggingLevel.INFO,
    "data_trace_enabled": False,
    "metrics_enabled": True,
}


class ServiceStack(Stack):
    """The modelops layer, one PythonFunction per FunctionSpec, and the REST API."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: DataStack,
        settings: EnvironmentSettings,
        truststore: TruststoreStack | None = None,
        layer_dir: Path = LAYER_DIR,
        functions_dir: Path = FUNCTIONS_DIR,
        state_machines_dir: Path = STATE_MACHINES_DIR,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.add_stack_dependency(data, "imports the data stack's exports")
        if (truststore is None) != (settings.custom_domain is None):
            raise ValueError("a custom domain needs the truststore stack, and only it does")
        if truststore is not None:
            self.add_stack_dependency(truststore, "imports the truststore bucket's name")
        if not (layer_dir / "python").is_dir():
            raise FileNotFoundError(
                f"{layer_dir / 'python'} is missing: build the layer first (`make layer`)"
            )

        self.layer = lambda_.LayerVersion(
            self,
            "ModelOpsLayer",
            # The Makefile's stamp file is no part of the layer.
            code=lambda_.Code.from_asset(str(layer_dir), exclude=[".built"]),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="modelops package and its runtime dependencies (pyproject.toml).",
        )
        code = lambda_.Code.from_asset(str(functions_dir), exclude=_CODE_EXCLUDES)

        # Keys are used by ARN (identity-policy grants).
        self.keys: dict[str, kms.IKey] = {
            spec.logical_id: kms.Key.from_key_arn(
                self, spec.logical_id, Fn.import_value(data.export_name(spec.logical_id, "Arn"))
            )
            for spec in platform.KEYS
        }
        data_key = self.keys[platform.DATA_KEY.logical_id]
        self.tables: dict[str, dynamodb.ITable] = {
            spec.logical_id: dynamodb.Table.from_table_attributes(
                self,
                spec.logical_id,
                table_name=Fn.import_value(data.export_name(spec.logical_id, "Name")),
                encryption_key=data_key,
                global_indexes=[index.name for index in spec.indexes],
            )
            for spec in platform.TABLES
        }
        self.buckets: dict[str, s3.IBucket] = {
            spec.logical_id: s3.Bucket.from_bucket_attributes(
                self,
                spec.logical_id,
                bucket_name=Fn.import_value(data.export_name(spec.logical_id, "Name")),
                encryption_key=self.keys[spec.key],
            )
            for spec in platform.BUCKETS
        }
        self.buses: dict[str, events.IEventBus] = {
            spec.logical_id: events.EventBus.from_event_bus_name(
                self, spec.logical_id, Fn.import_value(data.export_name(spec.logical_id, "Name"))
            )
            for spec in platform.BUSES
        }

        image_repository_arn = settings.training_image.repository_arn

        def role_name(reader: str) -> str | None:
            return readers.role_name(settings, reader) if reader in readers.READERS else None

        # SageMaker's execution roles (passed to jobs and models), by logical id.
        self.sagemaker_roles: dict[str, TrainingRole] = {
            spec.logical_id: TrainingRole(
                self,
                spec.logical_id,
                spec=spec,
                buckets=self.buckets,
                keys=self.keys,
                image_repository_arn=image_repository_arn,
                role_name=role_name(spec.logical_id),
            )
            for spec in platform.ROLES
            if spec.service is not None
        }
        self.training_role = self.sagemaker_roles[platform.TRAINING_ROLE.logical_id]
        # Roles people assume (break-glass), by logical id: always bucket readers.
        self.people_roles: dict[str, BreakGlassRole] = {
            spec.logical_id: BreakGlassRole(
                self,
                spec.logical_id,
                spec=spec,
                buckets=self.buckets,
                keys=self.keys,
                role_name=readers.role_name(settings, spec.logical_id),
            )
            for spec in platform.ROLES
            if spec.service is None
        }
        targets = grants.Targets(
            roles={logical_id: r.role for logical_id, r in self.sagemaker_roles.items()},
            state_machines={},
            image_repository_arn=image_repository_arn,
        )
        tasks = {name for machine in platform.STATE_MACHINES for name in machine.tasks}
        self.event_queues = EventQueues(
            self, "EventQueues", buses=self.buses, removal_policy=settings.removal_policy
        )
        self.integration_rules = IntegrationRules(
            self,
            "Integrations",
            bus=self.buses[platform.EVENT_BUS.logical_id],
            targets_by_name=settings.integrations,
            removal_policy=settings.removal_policy,
        )

        def build(spec: platform.FunctionSpec, targets: grants.Targets) -> PythonFunction:
            return PythonFunction(
                self,
                _pascal_case(spec.name),
                spec=spec,
                code=code,
                layer=self.layer,
                tables=self.tables,
                buckets=self.buckets,
                keys=self.keys,
                buses=self.buses,
                log_retention=settings.log_retention,
                removal_policy=settings.removal_policy,
                role_bindings=settings.role_bindings,
                parameters=settings.parameters,
                targets=targets,
                dead_letter_queue=self.event_queues.invocation_dlqs.get(spec.name),
                role_name=role_name(spec.name),
                reserved_concurrency=settings.reserved_concurrency.get(spec.name),
            )

        built: dict[str, PythonFunction] = {}

        def build_all(specs: list[platform.FunctionSpec], targets: grants.Targets) -> None:
            """Build ``specs``, each after the functions it invokes."""
            pending = specs
            while pending:
                ready = [s for s in pending if all(name in built for name in s.invokes)]
                if not ready:
                    raise ValueError(
                        "functions invoke each other in a cycle, or a state machine task "
                        f"invokes a function created after it: {[s.name for s in pending]}"
                    )
                for spec in ready:
                    functions = {name: fn.function for name, fn in built.items()}
                    built[spec.name] = build(
                        spec, dataclasses.replace(targets, functions=functions)
                    )
                pending = [s for s in pending if s.name not in built]

        build_all([spec for spec in platform.FUNCTIONS if spec.name in tasks], targets)
        self.state_machines: dict[str, WorkflowStateMachine] = {
            spec.logical_id: WorkflowStateMachine(
                self,
                spec.logical_id,
                spec=spec,
                definitions_dir=state_machines_dir,
                functions={name: fn.function for name, fn in built.items()},
                log_retention=settings.log_retention,
                removal_policy=settings.removal_policy,
            )
            for spec in platform.STATE_MACHINES
        }
        with_machines = dataclasses.replace(
            targets,
            state_machines={
                logical_id: machine.state_machine
                for logical_id, machine in self.state_machines.items()
            },
        )
        build_all([spec for spec in platform.FUNCTIONS if spec.name not in tasks], with_machines)
        self.functions: dict[str, PythonFunction] = {
            spec.name: built[spec.name] for spec in platform.FUNCTIONS
        }
        self.event_queues.subscribe(
            {name: fn.function for name, fn in self.functions.items()},
            max_concurrency=settings.reserved_concurrency,
        )

        self.api = self._rest_api(settings)
        self.domain = None if truststore is None else self._custom_domain(settings, truststore)

        self.schedules: dict[str, events.Rule] = {
            fn.spec.name: self._schedule(fn) for fn in self.functions.values() if fn.spec.schedule
        }

        self.quota_alarms = QuotaAlarms(
            self, "QuotaAlarms", pools=settings.pools, removal_policy=settings.removal_policy
        )
        self.drift_alarms = DriftAlarms(self, "DriftAlarms", environment=settings.name)
        self.observability = Observability(
            self,
            "Observability",
            environment=settings.name,
            api=self.api,
            functions={name: fn.function for name, fn in self.functions.items()},
            state_machines={
                logical_id: machine.state_machine
                for logical_id, machine in self.state_machines.items()
            },
            # by construct id: <queue>Dlq, <rule>Dlq, <Function>InvocationDlq
            dead_letter_queues={
                queue.node.id: queue
                for dlqs in (
                    self.event_queues.dead_letter_queues,
                    self.event_queues.delivery_dlqs,
                    self.event_queues.invocation_dlqs,
                    self.integration_rules.delivery_dlqs,
                )
                for queue in dlqs.values()
            },
            quota_alarms=self.quota_alarms.alarms,
            other_alarms=[self.drift_alarms.alarm],
            removal_policy=settings.removal_policy,
        )
        CfnOutput(
            self,
            "OperationsAlarmsTopicArn",
            value=self.observability.topic.topic_arn,
            description="Operations alarms (API 5xx, throttles, failed executions, dead-letter "
            "queues, stale checkpoints, exhausted quotas) notify this SNS topic: subscribe to "
            f"it. Dashboard: {dashboard_name(settings.name)}.",
        )
        CfnOutput(
            self,
            "QuotaAlarmsTopicArn",
            value=self.quota_alarms.topic.topic_arn,
            description="Quota alarms (a team at 80% or 100% of its monthly GPU-hours in a "
            "pool) notify this SNS topic: subscribe to it.",
        )

    def _rest_api(self, settings: EnvironmentSettings) -> apigw.RestApi:
        """The REST API (IAM authorization) with a route per function's segment, and its
        stage: JSON access logs, X-Ray tracing, execution logs and metrics, throttling (the
        stage's, and the tighter limits of ``methodThrottling``) and AWS WAF."""
        self.access_log_group = logs.LogGroup(
            self,
            "ApiAccessLogs",
            retention=settings.log_retention,
            removal_policy=settings.removal_policy,
        )
        api = apigw.RestApi(
            self,
            "Api",
            description="ILLUVRSE ModelOps control plane (IAM-authenticated).",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The account-level role API Gateway needs to write execution logs. It is kept
            # when the stack goes (CDK's default): other APIs in the account rely on it.
            cloud_watch_role=True,
            # With mTLS, callers must come through the custom domain: the default
            # execute-api endpoint would let them skip the client certificate.
            disable_execute_api_endpoint=settings.custom_domain is not None,
            default_method_options=apigw.MethodOptions(
                authorization_type=apigw.AuthorizationType.IAM
            ),
            deploy_options=apigw.StageOptions(
                stage_name=settings.api_stage_name,
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
                tracing_enabled=True,
                **METHOD_LOGGING,
                throttling_rate_limit=settings.throttling_rate_limit,
                throttling_burst_limit=settings.throttling_burst_limit,
                # Tighter limits on the costly mutating methods, within the stage's.
                method_options={
                    throttle.method_options_key: apigw.MethodDeploymentOptions(
                        **METHOD_LOGGING,
                        throttling_rate_limit=throttle.rate_limit,
                        throttling_burst_limit=throttle.burst_limit,
                    )
                    for throttle in settings.method_throttling
                },
            ),
        )
        self.request_validator = api.add_request_validator(
            "RequestValidator",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        for fn in self.functions.values():
            self._route(api, fn.function, fn.spec.api_routes, settings.method_throttling)
        self.firewall = ApiFirewall(
            self,
            "ApiFirewall",
            stage=api.deployment_stage,
            environment=settings.name,
            rate_limit=settings.waf_rate_limit,
            log_retention=settings.log_retention,
            removal_policy=settings.removal_policy,
        )
        return api

    def _schedule(self, fn: PythonFunction) -> events.Rule:
        """An EventBridge rule on the default bus invoking ``fn`` on its spec's schedule."""
        return events.Rule(
            self,
            f"{_pascal_case(fn.spec.name)}Schedule",
            description=f"Invokes {fn.spec.name}: {fn.spec.schedule}.",
            schedule=events.Schedule.expression(str(fn.spec.schedule)),
            targets=[
                targets.LambdaFunction(
                    fn.function, retry_attempts=2, max_event_age=Duration.minutes(15)
                )
            ],
        )

    def _route(
        self,
        api: apigw.RestApi,
        function: lambda_.IFunction,
        segments: tuple[str, ...],
        throttles: tuple[MethodThrottle, ...],
    ) -> None:
        """``/<segment>`` and ``/<segment>/{proxy+}`` with ANY, proxied to ``function``.

        A throttled method (``/train/jobs`` POST) needs a method of its own for the stage's
        method settings to name: its path gets a resource with ANY and that method, both
        proxied to the same function (API Gateway prefers the most specific resource and
        a named method over ANY, so requests reach the function as before)."""
        integration = apigw.LambdaIntegration(function, proxy=True, allow_test_invoke=False)
        for segment in segments:
            resource = api.root.add_resource(segment)
            for target in (resource, resource.add_resource("{proxy+}")):
                self._method(target, "ANY", integration)
            for throttle in throttles:
                _, first, rest = throttle.path.split("/", 2)
                if first != segment:
                    continue
                target = resource.resource_for_path(rest)
                if target.node.try_find_child("ANY") is None:
                    self._method(target, "ANY", integration)
                self._method(target, throttle.http_method, integration)

    def _method(
        self, resource: apigw.IResource, http_method: str, integration: apigw.Integration
    ) -> None:
        resource.add_method(
            http_method,
            integration,
            authorization_type=apigw.AuthorizationType.IAM,
            request_validator=self.request_validator,
        )

    def _custom_domain(
        self, settings: EnvironmentSettings, truststore: TruststoreStack
    ) -> apigw.DomainName:
        """The API on ``customDomain`` (REGIONAL, TLS 1.2) with mutual TLS against the
        truststore stack's bucket, the stage mapped at its root."""
        domain = settings.custom_domain
        if domain is None:
            raise ValueError(f"environment {settings.name!r} has no customDomain")
        bucket = s3.Bucket.from_bucket_name(
            self, "TruststoreBucket", Fn.import_value(truststore.export_name())
        )
        api_domain = apigw.DomainName(
            self,
            "ApiDomain",
            domain_name=domain.domain_name,
            certificate=acm.Certificate.from_certificate_arn(
                self, "ApiCertificate", domain.certificate_arn
            ),
            endpoint_type=apigw.EndpointType.REGIONAL,
            security_policy=apigw.SecurityPolicy.TLS_1_2,
            mtls=apigw.MTLSConfig(
                bucket=bucket, key=domain.truststore_key, version=domain.truststore_version
            ),
        )
        api_domain.add_base_path_mapping(self.api, stage=self.api.deployment_stage)
        CfnOutput(
            self,
            "ApiDomainUrl",
            value=f"https://{domain.domain_name}/",
            description="The API's URL (mutual TLS; the execute-api endpoint is disabled).",
        )
        CfnOutput(
            self,
            "ApiDomainAliasTarget",
            value=api_domain.domain_name_alias_domain_name,
            description=f"Point {domain.domain_name} here: a Route 53 alias (hosted zone "
            "ApiDomainAliasHostedZoneId) or a CNAME record.",
        )
        CfnOutput(
            self,
            "ApiDomainAliasHostedZoneId",
            value=api_domain.domain_name_alias_hosted_zone_id,
            description="The hosted zone id of the alias target, for a Route 53 alias record.",
        )
        return api_domain


def _pascal_case(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
