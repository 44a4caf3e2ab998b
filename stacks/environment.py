"""Per-environment settings, read from the ``environments`` context in ``cdk.json``.

Select an environment with ``npx cdk synth -c environment=prod``; the default is the
``environment`` context value in ``cdk.json`` (``dev``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import Fn, RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct
from pydantic import ValidationError

from modelops import platform
from modelops.domain.pools import PoolConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
CDK_JSON = REPO_ROOT / "cdk.json"
# The API's routes and methods, generated from the resolvers (``make schemas``, drift-tested).
OPENAPI_JSON = REPO_ROOT / "schemas" / "openapi.json"

_REMOVAL_POLICIES = {"destroy": RemovalPolicy.DESTROY, "retain": RemovalPolicy.RETAIN}

# An ECR image URI with a tag or a digest. The account and the region may be written as
# ${AWS::AccountId} and ${AWS::Region}: CloudFormation substitutes the deployment's (Fn::Sub).
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12}|\$\{AWS::AccountId\})"
    r"\.dkr\.ecr\.(?P<region>[a-z0-9-]+|\$\{AWS::Region\})\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::[A-Za-z0-9._-]{1,128}|@sha256:[0-9a-f]{64})$"
)
# A regional ACM certificate (API Gateway's REGIONAL custom domains use one of the API's region).
_ACM_CERTIFICATE = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
_DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# AWS WAF's rate-based rules count requests per 5 minutes, between these limits.
WAF_RATE_LIMIT_RANGE = (10, 2_000_000_000)
# An event source mapping's MaximumConcurrency is at least 2 (see reserved_concurrency).
MIN_QUEUE_CONSUMER_CONCURRENCY = 2


def project_context() -> dict[str, Any]:
    """The ``context`` of ``cdk.json``.

    The CDK CLI passes it to the app itself; an app built in-process (tests, ``python
    app.py``) gets it from here. Context given on the command line still wins.
    """
    with CDK_JSON.open(encoding="utf-8") as f:
        context = json.load(f).get("context", {})
    if not isinstance(context, dict):
        raise ValueError(f"{CDK_JSON}: 'context' must be an object")
    return context


@dataclass(frozen=True)
class TrainingImage:
    """The default training image: SageMaker pulls it from ECR with the training role, whose
    pull permissions (and the functions' ecr:DescribeImages) name its repository only."""

    uri: str  # as written in cdk.json, placeholders included
    account: str
    region: str
    repository: str

    @classmethod
    def parse(cls, value: object) -> TrainingImage:
        match = _ECR_IMAGE.match(str(value))
        if match is None:
            raise ValueError(
                f"trainingImage must be an ECR image URI "
                f"(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>), not {value!r}"
            )
        return cls(str(value), match["account"], match["region"], match["repository"])

    @property
    def resolved_uri(self) -> str:
        """The URI with the deployment's account and region (a CloudFormation token)."""
        return Fn.sub(self.uri)

    @property
    def repository_arn(self) -> str:
        return Fn.sub(
            f"arn:${{AWS::Partition}}:ecr:{self.region}:{self.account}:repository/{self.repository}"
        )


@dataclass(frozen=True)
class MethodThrottle:
    """A tighter throttle on one API method (``methodThrottling``: ``"POST /train/jobs"``)."""

    http_method: str
    path: str  # static, e.g. /train/jobs
    rate_limit: float
    burst_limit: int

    @property
    def method_options_key(self) -> str:
        """The key of ``StageOptions.method_options`` (``/train/jobs/POST``)."""
        return f"{self.path}/{self.http_method}"


@dataclass(frozen=True)
class CustomDomain:
    """The API's custom domain with mutual TLS (``customDomain``). The truststore (the PEM
    bundle of the CAs whose client certificates are accepted) is ``truststore_key`` in the
    truststore stack's bucket, pinned to ``truststore_version`` when one is given."""

    domain_name: str
    certificate_arn: str
    truststore_key: str = "truststore.pem"
    truststore_version: str | None = None

    @classmethod
    def parse(cls, value: object) -> CustomDomain:
        fields = {
            "domainName": "domain_name",
            "certificateArn": "certificate_arn",
            "truststoreKey": "truststore_key",
            "truststoreVersion": "truststore_version",
        }
        if not isinstance(value, dict):
            raise ValueError(f"customDomain must be a JSON object, not {value!r}")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(f"customDomain: unknown settings {unknown}; known: {sorted(fields)}")
        domain = cls(**{fields[name]: str(v) for name, v in value.items()})
        if not _DOMAIN_NAME.match(domain.domain_name):
            raise ValueError(
                f"customDomain.domainName must be a lower-case DNS name, not {domain.domain_name!r}"
            )
        if not _ACM_CERTIFICATE.match(domain.certificate_arn):
            raise ValueError(
                "customDomain.certificateArn must be an ACM certificate ARN, not "
                f"{domain.certificate_arn!r}"
            )
        if not domain.truststore_key or domain.truststore_key.startswith("/"):
            raise ValueError(
                "customDomain.truststoreKey must be an S3 object key (no leading '/'), not "
                f"{domain.truststore_key!r}"
            )
        return domain


@dataclass(frozen=True)
class EnvironmentSettings:
    """What differs between dev, staging and prod."""

    name: str
    # DESTROY lets a dev stack be torn down; RETAIN keeps data and logs outside dev.
    removal_policy: RemovalPolicy
    deletion_protection: bool
    # CloudFormation termination protection of the stateful stacks (data, truststore).
    termination_protection: bool
    log_retention: logs.RetentionDays
    api_stage_name: str
    throttling_rate_limit: float
    throttling_burst_limit: int
    # Tighter throttles on the costly mutating methods, under the stage's.
    method_throttling: tuple[MethodThrottle, ...]
    # AWS WAF: requests per 5 minutes from one IP address before it is blocked.
    waf_rate_limit: int
    # Function name -> reserved concurrent executions (bounded, and never starved).
    reserved_concurrency: Mapping[str, int]
    # The API's mutual TLS custom domain; None: the execute-api endpoint only.
    custom_domain: CustomDomain | None
    # Integration name -> the event bus that receives its events (none: nothing forwarded).
    integrations: Mapping[str, str]
    # IAM principal ARN pattern -> roles (modelops.domain.access); every function gets them.
    role_bindings: Mapping[str, tuple[str, ...]]
    # Object Lock on the audit bucket: COMPLIANCE (nobody can delete early, not even root)
    # or GOVERNANCE (privileged deletes allowed, so a dev stack can be torn down).
    object_lock_mode: str
    training_image: TrainingImage
    # Seconds between the training workflow's DescribeTrainingJob polls.
    training_poll_seconds: int
    # The compute pools (``computePools``, shared by every environment) and this
    # environment's principal ARN pattern -> team (``teamBindings``), validated together;
    # functions get both as compact JSON (Lambda environments hold 4 KB).
    pools: PoolConfig
    compute_pools_json: str
    team_bindings_json: str

    @property
    def parameters(self) -> dict[str, str]:
        """Deployment parameter values by environment variable (``platform.PARAMETERS``)."""
        return {
            platform.TRAINING_IMAGE_PARAMETER: self.training_image.resolved_uri,
            platform.TRAINING_POLL_PARAMETER: str(self.training_poll_seconds),
            platform.COMPUTE_POOLS_PARAMETER: self.compute_pools_json,
            platform.TEAM_BINDINGS_PARAMETER: self.team_bindings_json,
        }

    @classmethod
    def from_context(
        cls, name: str, values: Mapping[str, Any], compute_pools: object
    ) -> EnvironmentSettings:
        """The settings of environment ``name`` (its ``environments`` entry), with the
        ``computePools`` context."""
        try:
            pools_json = _compact_object("computePools", compute_pools)
            team_bindings_json = _compact_object("teamBindings", values["teamBindings"])
            return cls(
                name=name,
                removal_policy=_REMOVAL_POLICIES[str(values["removalPolicy"])],
                deletion_protection=bool(values["deletionProtection"]),
                termination_protection=_boolean("terminationProtection", values),
                log_retention=logs.RetentionDays[str(values["logRetention"])],
                api_stage_name=str(values["apiStageName"]),
                throttling_rate_limit=float(values["throttlingRateLimit"]),
                throttling_burst_limit=int(values["throttlingBurstLimit"]),
                method_throttling=_method_throttling(values),
                waf_rate_limit=_waf_rate_limit(values),
                reserved_concurrency=_reserved_concurrency(values["reservedConcurrency"]),
                custom_domain=(
                    None
                    if values.get("customDomain") is None
                    else CustomDomain.parse(values["customDomain"])
                ),
                integrations=_integrations(values),
                object_lock_mode=_object_lock_mode(values["objectLockMode"]),
                training_image=TrainingImage.parse(values["trainingImage"]),
                training_poll_seconds=_positive_int("trainingPollSeconds", values),
                role_bindings={
                    str(pattern): tuple(str(r) for r in roles)
                    for pattern, roles in dict(values["roleBindings"]).items()
                },
                pools=_pool_config(pools_json, team_bindings_json),
                compute_pools_json=pools_json,
                team_bindings_json=team_bindings_json,
            )
        except KeyError as e:
            raise ValueError(f"environment {name!r}: missing or invalid setting {e}") from e

    @classmethod
    def of(cls, scope: Construct) -> EnvironmentSettings:
        """The settings of the environment selected by the ``environment`` context."""
        name = str(scope.node.try_get_context("environment") or "dev")
        environments = scope.node.try_get_context("environments")
        if not isinstance(environments, dict) or name not in environments:
            known = sorted(environments) if isinstance(environments, dict) else []
            raise ValueError(f"unknown environment {name!r}; cdk.json defines {known}")
        return cls.from_context(
            name, environments[name], scope.node.try_get_context("computePools")
        )

    def stack_name(self, role: str) -> str:
        return f"modelops-{self.name}-{role}"


def _boolean(name: str, values: Mapping[str, Any]) -> bool:
    value = values[name]
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


_EVENT_BUS_ARN = re.compile(r"^arn:aws[a-z-]*:events:[a-z0-9-]+:\d{12}:event-bus/[A-Za-z0-9._/-]+$")


def _integrations(values: Mapping[str, Any]) -> dict[str, str]:
    """``integrations`` (optional): integration name (``INTEGRATIONS`` of
    ``modelops.contracts.events``) -> the ARN of the event bus it receives our events on."""
    from modelops.contracts.events import INTEGRATIONS

    given = values.get("integrations") or {}
    if not isinstance(given, dict):
        raise ValueError(f"integrations must be a JSON object, not {given!r}")
    known = {i.name for i in INTEGRATIONS}
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"integrations names unknown {unknown}; known: {sorted(known)}")
    for name, arn in given.items():
        if not isinstance(arn, str) or not _EVENT_BUS_ARN.match(arn):
            raise ValueError(f"integrations.{name} must be an event bus ARN, not {arn!r}")
    return dict(given)


def _waf_rate_limit(values: Mapping[str, Any]) -> int:
    limit = _positive_int("wafRateLimit", values)
    low, high = WAF_RATE_LIMIT_RANGE
    if not low <= limit <= high:
        raise ValueError(f"wafRateLimit must be between {low} and {high}, not {limit}")
    return limit


def _method_throttling(values: Mapping[str, Any]) -> tuple[MethodThrottle, ...]:
    """``methodThrottling``: ``"<METHOD> <path>" -> {rateLimit, burstLimit}``. Each must be a
    method of the API (schemas/openapi.json) on a static path (API Gateway cannot put a
    path variable next to the routes' greedy ``{proxy+}``), under the stage's limits."""
    entries = values["methodThrottling"]
    if not isinstance(entries, dict):
        raise ValueError(f"methodThrottling must be a JSON object, not {entries!r}")
    paths = json.loads(OPENAPI_JSON.read_text(encoding="utf-8"))["paths"]
    routed = {segment for spec in platform.FUNCTIONS for segment in spec.api_routes}
    stage_rate, stage_burst = values["throttlingRateLimit"], values["throttlingBurstLimit"]
    throttles = []
    for route, limits in entries.items():
        http_method, _, path = str(route).partition(" ")
        where = f"methodThrottling[{route!r}]"
        if http_method.lower() not in paths.get(path, {}):
            raise ValueError(f"{where}: the API has no such method (schemas/openapi.json)")
        if "{" in path or path.split("/")[1] not in routed:
            raise ValueError(f"{where}: only static paths under a routed segment can be throttled")
        if not isinstance(limits, dict) or set(limits) != {"rateLimit", "burstLimit"}:
            raise ValueError(f"{where} must be {{rateLimit, burstLimit}}, not {limits!r}")
        throttle = MethodThrottle(
            http_method,
            path,
            float(limits["rateLimit"]),
            _positive(f"{where}.burstLimit", limits["burstLimit"]),
        )
        if not 0 < throttle.rate_limit <= stage_rate or throttle.burst_limit > stage_burst:
            raise ValueError(
                f"{where}: limits must be positive and at most the stage's "
                f"({stage_rate}/s, burst {stage_burst})"
            )
        throttles.append(throttle)
    return tuple(throttles)


def _reserved_concurrency(value: object) -> dict[str, int]:
    """``reservedConcurrency``: function name (``platform.FUNCTIONS``) -> reserved concurrent
    executions. A queue consumer's mapping is capped at the same number (its
    MaximumConcurrency, at least 2), so messages wait in the queue instead of being
    throttled into its dead-letter queue."""
    if not isinstance(value, dict):
        raise ValueError(f"reservedConcurrency must be a JSON object, not {value!r}")
    specs = {spec.name: spec for spec in platform.FUNCTIONS}
    unknown = sorted(set(value) - set(specs))
    if unknown:
        raise ValueError(
            f"reservedConcurrency names unknown functions {unknown}; "
            f"modelops.platform.FUNCTIONS has {sorted(specs)}"
        )
    reserved = {}
    for name in value:
        count = _positive(f"reservedConcurrency.{name}", value[name])
        if specs[name].queue and count < MIN_QUEUE_CONSUMER_CONCURRENCY:
            raise ValueError(
                f"reservedConcurrency.{name}: a queue consumer needs at least "
                f"{MIN_QUEUE_CONSUMER_CONCURRENCY} (its event source mapping's MaximumConcurrency)"
            )
        reserved[name] = count
    return reserved


def _object_lock_mode(value: object) -> str:
    mode = str(value).upper()
    if mode not in {"COMPLIANCE", "GOVERNANCE"}:
        raise ValueError(f"objectLockMode must be COMPLIANCE or GOVERNANCE, not {value!r}")
    return mode


def _positive_int(name: str, values: Mapping[str, Any]) -> int:
    return _positive(name, values[name])


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def _compact_object(name: str, value: object) -> str:
    """A JSON object as functions receive it: compact, in the order written."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object, not {value!r}")
    return json.dumps(value, separators=(",", ":"))


# PoolConfig's fields, by the context names they come from.
_POOL_CONTEXT_NAMES = {"pools": "computePools", "teamBindings": "teamBindings"}


def _pool_config(pools_json: str, team_bindings_json: str) -> PoolConfig:
    """The pools and team bindings as the functions will parse them; refused at synth with
    one line per problem, located as in cdk.json (``computePools.<pool>.<field>``)."""
    for pool, spec in json.loads(pools_json).items():
        if not isinstance(spec, dict):
            raise ValueError(f"computePools.{pool} must be a JSON object, not {spec!r}")
    try:
        return PoolConfig.parse(pools_json, team_bindings_json)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            field, *path = (str(part) for part in error["loc"])
            location = ".".join([_POOL_CONTEXT_NAMES.get(field, field), *path])
            problems.append(f"{location}: {error['msg']}")
        raise ValueError(f"invalid compute pools: {'; '.join(problems)}") from e
