"""Cached factories: nothing is built at import time, everything at most once per process."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from modelops.config import settings
from modelops.services.artifacts import ArtifactService
from modelops.services.lineage import LineageService
from modelops.services.registry import RegistryService

if TYPE_CHECKING:
    from modelops.adapters.dynamodb import RegistryTable
    from modelops.adapters.quota import DynamoQuotaLedger
    from modelops.contracts.events import EventDetail
    from modelops.domain.pools import PoolConfig
    from modelops.events import Events
    from modelops.services.audit import AuditService
    from modelops.services.compute import ComputeService
    from modelops.services.drift import DriftService, Retraining
    from modelops.services.evaluation import EvaluationResults, EvaluationService
    from modelops.services.governance import Governance
    from modelops.services.promotion import EvidenceGates, PromotionService
    from modelops.services.retention import RetentionService
    from modelops.services.sanitization import SanitizationService
    from modelops.services.serving import DeploymentService
    from modelops.services.training import TrainingService
    from modelops.services.watermark import WatermarkService


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class _LazyClient:
    """A boto3 client created on first use: building one loads its service model (tens of
    milliseconds), which a request that never calls the service should not pay."""

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(boto_client(self._service), name)


def client(service: str) -> Any:
    return _LazyClient(service)


@cache
def boto_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    s3_style = {"addressing_style": settings().s3_addressing_style}
    config = Config(
        retries={"mode": "standard", "max_attempts": 4},
        signature_version="s3v4" if service == "s3" else None,
        s3=s3_style if service == "s3" else None,
    )
    return boto3.session.Session().client(service, region_name=settings().region, config=config)


@cache
def registry_repository() -> RegistryTable:
    from modelops.adapters.dynamodb import RegistryTable

    return RegistryTable(settings().require("registry_table"), settings().region)


@cache
def blob_store() -> Any:
    from modelops.adapters.s3 import S3BlobStore

    return S3BlobStore(client("s3"), settings().artifact_bucket)


@cache
def escrow_store() -> Any:
    """The escrow bucket (raw PII), in functions granted it; else None."""
    from modelops.adapters.s3 import S3BlobStore

    bucket = settings().escrow_bucket
    return S3BlobStore(client("s3"), bucket) if bucket else None


@cache
def artifact_service() -> ArtifactService:
    return ArtifactService(
        registry_repository(),
        blob_store(),
        SystemClock(),
        settings(),
        escrow=escrow_store(),
        retention=retention_repository(),
    )


@cache
def registry_service() -> RegistryService:
    return RegistryService(registry_repository(), SystemClock(), publish)


@cache
def lineage_service() -> LineageService:
    return LineageService(registry_repository())


@cache
def statement_signer() -> Any:
    """The Ed25519 KMS key: promotion statements and ledger checkpoints."""
    from modelops.adapters.kms import KmsSigner

    return KmsSigner(client("kms"), settings().require("signing_key_arn"))


@cache
def model_signer() -> Any:
    """The P-256 KMS key: OpenSSF model-signing bundles."""
    from modelops.adapters.kms import KmsSigner

    return KmsSigner(client("kms"), settings().require("model_signing_key_arn"))


@cache
def policy_engine() -> Any:
    """SentinelNet: an external service when configured, else the embedded Cedar policies."""
    url = settings().sentinelnet_url
    if url:
        from modelops.adapters.sentinelnet_http import SentinelNetClient

        return SentinelNetClient(url)
    from modelops.adapters.cedar_policy import CedarPolicyEngine

    return CedarPolicyEngine()


@cache
def sanitization_service() -> SanitizationService:
    from modelops.adapters.kms import KmsMac
    from modelops.adapters.lambda_invoke import LambdaInvoker
    from modelops.services.sanitization import SanitizationService

    key = settings().pseudonym_key_arn
    return SanitizationService(
        registry=registry_repository(),
        runs=registry_repository(),
        registry_service=registry_service(),
        artifacts=artifact_service(),
        blobs=blob_store(),
        escrow=escrow_store(),
        mac=KmsMac(client("kms"), key) if key else None,
        invoker=LambdaInvoker(client("lambda"), settings().function_names),
        audit=lambda event: audit_service().record(event),
        clock=SystemClock(),
    )


@cache
def watermark_service() -> WatermarkService:
    """Watermarks: embedded with this function's watermark key (if it has one), verified
    with the key each version's record names."""
    from modelops.adapters.kms import KmsMac
    from modelops.services.watermark import WatermarkService

    return WatermarkService(
        registry=registry_repository(),
        watermarks=registry_repository(),
        blobs=blob_store(),
        key_arn=settings().watermark_key_arn,
        mac_for=lambda key_arn: KmsMac(client("kms"), key_arn),
        audit=lambda event: audit_service().record(event),
        clock=SystemClock(),
    )


@cache
def governance() -> Governance:
    from modelops.services.governance import Governance

    return Governance(
        registry_repository(),
        lineage_service(),
        registry_repository(),
        policy_engine(),
        SystemClock(),
    )


@cache
def evidence_gates() -> EvidenceGates:
    from modelops.services.promotion import EvidenceGates

    repository = registry_repository()
    return EvidenceGates(
        registry=repository, promotions=repository, evaluations=repository, monitoring=repository
    )


@cache
def promotion_service() -> PromotionService:
    from modelops.services.promotion import PromotionService

    return PromotionService(
        registry=registry_repository(),
        promotions=registry_repository(),
        lineage=lineage_service(),
        policy=policy_engine(),
        signer=statement_signer(),
        model_signer=model_signer(),
        blobs=blob_store(),
        evaluations=registry_repository(),
        monitoring=registry_repository(),
        clock=SystemClock(),
        region=settings().region,
        publish=publish,
    )


@cache
def idempotency_store() -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(
        table_name=settings().require("idempotency_table"), boto3_client=boto_client("dynamodb")
    )


@cache
def ledger_store() -> Any:
    from modelops.adapters.ledger import DynamoLedgerStore

    return DynamoLedgerStore(
        client("dynamodb"),
        client("s3"),
        settings().require("ledger_table"),
        settings().require("audit_bucket"),
    )


@cache
def events() -> Events:
    """The one publisher: event contracts to the platform's bus."""
    from modelops.adapters.eventbridge import EventBridgePublisher
    from modelops.events import Events

    return Events(EventBridgePublisher(client("events"), settings().require("event_bus_name")))


def publish(event: EventDetail) -> None:
    events().publish(event)


@cache
def audit_service() -> AuditService:
    """The audit ledger; imported on first use, so only mutating calls pay for it."""
    from modelops.services.audit import AuditService

    return AuditService(ledger_store(), statement_signer(), publish, SystemClock())


@cache
def training_service() -> TrainingService:
    from modelops.adapters.cloudwatch_logs import CloudWatchLogs
    from modelops.adapters.ecr import EcrImages
    from modelops.adapters.sagemaker import SageMakerTraining
    from modelops.adapters.stepfunctions import StepFunctionsWorkflow
    from modelops.services.training import TrainingService, TrainingSettings

    config = settings()
    return TrainingService(
        jobs=registry_repository(),
        registry=registry_repository(),
        promotions=registry_repository(),
        registry_service=registry_service(),
        artifacts=artifact_service(),
        lineage=lineage_service(),
        blobs=blob_store(),
        backend=SageMakerTraining(client("sagemaker")),
        workflow=StepFunctionsWorkflow(client("stepfunctions"), config.train_state_machine_arn),
        images=EcrImages(client("ecr")),
        logs=CloudWatchLogs(client("logs")),
        compute_pool=compute_allocator(),
        usage=quota_ledger(),
        pools=pool_config(),
        policy=policy_engine(),
        signer=statement_signer(),
        evaluations=evaluation_results(),
        publish=publish,
        audit=lambda event: audit_service().record(event),
        clock=SystemClock(),
        watermarks=watermark_service(),
        settings=TrainingSettings(
            bucket=config.artifact_bucket or "",
            region=config.region,
            role_arn=config.training_role_arn or "",
            default_image=config.training_image_uri or "",
            poll_seconds=config.training_poll_seconds,
            escrow_bucket=config.escrow_bucket,
            raw_pii_role_arn=config.raw_pii_job_role_arn,
        ),
    )


@cache
def evaluation_results() -> EvaluationResults:
    from modelops.services.evaluation import EvaluationResults

    return EvaluationResults(
        evaluations=registry_repository(),
        blobs=blob_store(),
        clock=SystemClock(),
        audit=lambda event: audit_service().record(event),
        publish=publish,
        recommend=lambda record: evidence_gates().recommend(record),
    )


@cache
def evaluation_service() -> EvaluationService:
    from modelops.services.evaluation import EvaluationService

    return EvaluationService(
        evaluations=registry_repository(),
        registry=registry_repository(),
        jobs=training_service(),
        clock=SystemClock(),
    )


@cache
def drift_service() -> DriftService:
    from modelops.adapters.lambda_invoke import LambdaInvoker
    from modelops.adapters.sagemaker_hosting import SageMakerVariants
    from modelops.services.drift import DriftService, DriftSettings

    return DriftService(
        monitoring=registry_repository(),
        registry=registry_repository(),
        promotions=registry_repository(),
        deployments=registry_repository(),
        variants=SageMakerVariants(client("sagemaker")),
        jobs=registry_repository(),
        usage=quota_ledger(),
        blobs=blob_store(),
        invoker=LambdaInvoker(client("lambda"), settings().function_names),
        signer=statement_signer(),
        publish=publish,
        audit=lambda event: audit_service().record(event),
        clock=SystemClock(),
        settings=DriftSettings(region=settings().region),
        governance=governance(),
    )


@cache
def retraining() -> Retraining:
    from modelops.services.drift import Retraining

    service = training_service()
    return Retraining(
        monitoring=registry_repository(),
        submit=service.submit,
        get_job=service.get,
    )


@cache
def pool_config() -> PoolConfig:
    from modelops.domain.pools import PoolConfig

    config = settings()
    return PoolConfig.parse(config.compute_pools_json, config.team_bindings_json)


@cache
def quota_ledger() -> DynamoQuotaLedger:
    from modelops.adapters.quota import DynamoQuotaLedger

    return DynamoQuotaLedger(
        client("dynamodb"), settings().require("registry_table"), pool_config(), SystemClock()
    )


@cache
def compute_allocator() -> Any:
    """The Resource Allocator: an external service when configured, else the embedded
    quota ledger."""
    url = settings().resource_allocator_url
    if url:
        from modelops.adapters.outbound_http import sigv4_signer
        from modelops.adapters.resource_allocator_http import ResourceAllocatorClient

        return ResourceAllocatorClient(url, SystemClock(), signer=sigv4_signer(settings().region))
    return quota_ledger()


@cache
def compute_service() -> ComputeService:
    from modelops.services.compute import ComputeService

    return ComputeService(pool_config(), quota_ledger(), registry_repository(), SystemClock())


@cache
def deployment_service() -> DeploymentService:
    from modelops.adapters.sagemaker_hosting import SageMakerHosting, SageMakerTelemetry
    from modelops.adapters.stepfunctions import StepFunctionsWorkflow
    from modelops.services.serving import DeploymentService, ServingSettings
    from modelops.services.serving_gate import DeploymentGate

    config = settings()
    return DeploymentService(
        deployments=registry_repository(),
        registry=registry_repository(),
        gate=DeploymentGate(
            registry_repository(),
            registry_repository(),
            blob_store(),
            statement_signer(),
            registry_repository(),
            governance=governance(),
            region=config.region,
        ),
        blobs=blob_store(),
        backend=SageMakerHosting(client("sagemaker"), client("application-autoscaling")),
        telemetry=SageMakerTelemetry(
            client("cloudwatch"), client("s3"), config.artifact_bucket or ""
        ),
        workflow=StepFunctionsWorkflow(client("stepfunctions"), config.deploy_state_machine_arn),
        publish=publish,
        audit=lambda event: audit_service().record(event),
        clock=SystemClock(),
        settings=ServingSettings(
            bucket=config.artifact_bucket or "",
            role_arn=config.training_role_arn or "",
            image=config.training_image_uri or "",
            poll_seconds=config.training_poll_seconds,
        ),
    )


@cache
def retention_repository() -> Any:
    from modelops.adapters.retention import RetentionTable

    registry_repository()  # binds the table RetentionTable shares
    return RetentionTable()


@cache
def retention_service() -> RetentionService:
    from modelops.services.retention import RetentionService

    return RetentionService(
        registry=registry_repository(),
        jobs=registry_repository(),
        stages=registry_repository(),
        retention=retention_repository(),
        lineage=lineage_service(),
        audit=audit_service(),
        objects=blob_store(),
        clock=SystemClock(),
        escrow=escrow_store(),
    )


def own_principal() -> str:
    """This function's own IAM principal (its execution role's session): who acts in
    scheduled runs that no caller asked for."""
    return str(client("sts").get_caller_identity()["Arn"])
