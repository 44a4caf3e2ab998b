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

_REMOVAL_POLICIES = {"destroy": RemovalPolicy.DESTROY, "retain": RemovalPolicy.RETAIN}

# An ECR image URI with a tag or a digest. The account and the region may be written as
# ${AWS::AccountId} and ${AWS::Region}: CloudFormation substitutes the deployment's (Fn::Sub).
_ECR_IMAGE = re.compile(
    r"^(?P<account>\d{12}|\$\{AWS::AccountId\})"
    r"\.dkr\.ecr\.(?P<region>[a-z0-9-]+|\$\{AWS::Region\})\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::[A-Za-z0-9._-]{1,128}|@sha256:[0-9a-f]{64})$"
)


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
class EnvironmentSettings:
    """What differs between dev, staging and prod."""

    name: str
    # DESTROY lets a dev stack be torn down; RETAIN keeps data and logs outside dev.
    removal_policy: RemovalPolicy
    deletion_protection: bool
    log_retention: logs.RetentionDays
    api_stage_name: str
    throttling_rate_limit: float
    throttling_burst_limit: int
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
                log_retention=logs.RetentionDays[str(values["logRetention"])],
                api_stage_name=str(values["apiStageName"]),
                throttling_rate_limit=float(values["throttlingRateLimit"]),
                throttling_burst_limit=int(values["throttlingBurstLimit"]),
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


def _object_lock_mode(value: object) -> str:
    mode = str(value).upper()
    if mode not in {"COMPLIANCE", "GOVERNANCE"}:
        raise ValueError(f"objectLockMode must be COMPLIANCE or GOVERNANCE, not {value!r}")
    return mode


def _positive_int(name: str, values: Mapping[str, Any]) -> int:
    value = values[name]
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
