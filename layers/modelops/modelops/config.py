"""The only reader of ``os.environ``: the settings a function was deployed with."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from modelops import platform


@dataclass(frozen=True)
class Settings:
    region: str
    registry_table: str | None = None
    idempotency_table: str | None = None
    artifact_bucket: str | None = None
    # Raw PII datasets (escrow) and the HMAC key of sanitized datasets' pseudonyms.
    escrow_bucket: str | None = None
    pseudonym_key_arn: str | None = None
    # The HMAC key whose MACs seed model watermarks (modelops.services.watermark).
    watermark_key_arn: str | None = None
    raw_pii_job_role_arn: str | None = None
    # The audit ledger and where its events go (modelops.services.audit).
    ledger_table: str | None = None
    audit_bucket: str | None = None
    event_bus_name: str | None = None
    # The ledger stream this function's mutating calls are recorded in: its name without
    # "-api" ("registry-api" -> "registry").
    audit_stream: str | None = None
    signing_key_arn: str | None = None
    model_signing_key_arn: str | None = None
    # An external SentinelNet's base URL; empty: the embedded Cedar engine decides.
    sentinelnet_url: str | None = None
    # The external Resource Allocator's base URL; empty: the embedded quota ledger allocates.
    resource_allocator_url: str | None = None
    # Files larger than this are uploaded in parts (S3 multipart).
    multipart_threshold_bytes: int = 100 * 1024 * 1024
    multipart_part_bytes: int = 64 * 1024 * 1024
    presign_expiry_seconds: int = 3600
    idempotency_ttl_seconds: int = 24 * 3600
    # "virtual" in AWS; endpoints addressed by IP (the local cloud) need "path".
    s3_addressing_style: str = "virtual"
    # Training: the state machine, SageMaker's execution role, the default image and how
    # often the workflow polls SageMaker.
    train_state_machine_arn: str | None = None
    deploy_state_machine_arn: str | None = None
    training_role_arn: str | None = None
    training_image_uri: str | None = None
    training_poll_seconds: int = 60
    # Compute pools and team bindings as JSON (modelops.domain.pools).
    compute_pools_json: str = "{}"
    team_bindings_json: str = "{}"
    # principal ARN pattern -> role names (modelops.domain.access)
    role_bindings: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Functions this one may invoke: platform name -> physical name.
    function_names: Mapping[str, str] = field(default_factory=dict)

    def require(self, name: str) -> str:
        value = getattr(self, name)
        if not value:
            raise RuntimeError(f"setting {name} is not configured for this function")
        return str(value)


def _audit_stream(service_name: str | None) -> str | None:
    return service_name.removesuffix("-api") if service_name else None


@cache
def settings() -> Settings:
    env = os.environ
    return Settings(
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        registry_table=env.get(platform.REGISTRY_TABLE.env_var),
        idempotency_table=env.get(platform.IDEMPOTENCY_TABLE.env_var),
        artifact_bucket=env.get(platform.ARTIFACT_BUCKET.env_var),
        escrow_bucket=env.get(platform.ESCROW_BUCKET.env_var),
        pseudonym_key_arn=env.get(str(platform.PSEUDONYM_KEY.env_var)),
        watermark_key_arn=env.get(str(platform.WATERMARK_KEY.env_var)),
        raw_pii_job_role_arn=env.get(platform.RAW_PII_JOB_ROLE.env_var),
        ledger_table=env.get(platform.LEDGER_TABLE.env_var),
        audit_bucket=env.get(platform.AUDIT_BUCKET.env_var),
        event_bus_name=env.get(platform.EVENT_BUS.env_var),
        audit_stream=_audit_stream(env.get("POWERTOOLS_SERVICE_NAME")),
        signing_key_arn=env.get(str(platform.SIGNING_KEY.env_var)),
        model_signing_key_arn=env.get(str(platform.MODEL_SIGNING_KEY.env_var)),
        sentinelnet_url=env.get("SENTINELNET_URL") or None,
        resource_allocator_url=env.get("RESOURCE_ALLOCATOR_URL") or None,
        s3_addressing_style=env.get("S3_ADDRESSING_STYLE", "virtual"),
        train_state_machine_arn=env.get(platform.TRAIN_STATE_MACHINE.env_var),
        deploy_state_machine_arn=env.get(platform.DEPLOY_STATE_MACHINE.env_var),
        training_role_arn=env.get(platform.TRAINING_ROLE.env_var),
        training_image_uri=env.get(platform.TRAINING_IMAGE_PARAMETER),
        training_poll_seconds=int(env.get(platform.TRAINING_POLL_PARAMETER) or 60),
        compute_pools_json=env.get(platform.COMPUTE_POOLS_PARAMETER) or "{}",
        team_bindings_json=env.get(platform.TEAM_BINDINGS_PARAMETER) or "{}",
        role_bindings={
            pattern: tuple(roles)
            for pattern, roles in json.loads(env.get(platform.ROLE_BINDINGS_ENV) or "{}").items()
        },
        function_names={
            fn.name: env[platform.invoke_env_var(fn.name)]
            for fn in platform.FUNCTIONS
            if env.get(platform.invoke_env_var(fn.name))
        },
    )
