"""Deployments: verify, create the endpoint's variants, bake the canary, analyse, promote or
roll back, and scale and roll back by hand.

``deploy`` runs the gate (``services.serving_gate``) before anything is written. The state
machine (``statemachines/deploy_model.asl.json``) then calls one method per Task state:
``create`` (models, endpoint config, endpoint, autoscaling), ``analyse`` after each bake,
``promote`` (the next traffic step, or done), ``rollback`` and ``fail``. A deployment that
replaces a live one starts as a canary next to it (the baseline); the first one on an
endpoint takes all traffic at once. Every write of a record is conditional on its revision;
status changes are audited and published with the deployment's correlation id.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from modelops.contracts.events import DeploymentRolledBack, DeploymentStateChange, EventDetail
from modelops.domain import ids
from modelops.domain.access import Caller, Permission
from modelops.domain.archive import write_targz
from modelops.domain.ledger import AuditEvent, Outcome
from modelops.domain.serving import (
    DeploymentRecord,
    DeploymentStatus,
    DeployRequest,
    StatusChange,
    VariantState,
    analyse,
    endpoint_name,
    sagemaker_model_name,
    traffic_steps,
)
from modelops.errors import (
    Conflict,
    InvalidState,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)
from modelops.ports import (
    BlobStore,
    Clock,
    DeploymentRepository,
    EndpointBackend,
    RegistryRepository,
    ServingTelemetry,
    Workflow,
)
from modelops.services.artifacts import blob_key
from modelops.services.revisions import revise
from modelops.services.serving_gate import DeploymentGate

AUDIT_STREAM = "serving"
MAX_ANALYSES = 4  # bake windows without enough canary traffic before giving up


@dataclass(frozen=True)
class ServingSettings:
    bucket: str
    role_arn: str
    image: str
    poll_seconds: int


class DeploymentService:
    def __init__(
        self,
        *,
        deployments: DeploymentRepository,
        registry: RegistryRepository,
        gate: DeploymentGate,
        blobs: BlobStore,
        backend: EndpointBackend,
        telemetry: ServingTelemetry,
        workflow: Workflow,
        publish: Callable[[EventDetail], None],
        audit: Callable[[AuditEvent], object],
        clock: Clock,
        settings: ServingSettings,
    ) -> None:
        self._deployments = deployments
        self._registry = registry
        self._gate = gate
        self._blobs = blobs
        self._backend = backend
        self._telemetry = telemetry
        self._workflow = workflow
        self._publish = publish
        self._audit = audit
        self._clock = clock
        self._settings = settings

    # --- the API -------------------------------------------------------------------------

    def deploy(
        self, request: DeployRequest, caller: Caller, correlation_id: str
    ) -> DeploymentRecord:
        caller.require(Permission.DEPLOY)
        model = self._model(request.modelId, "modelId")
        provenance = self._gate.verify(model, request.env)
        self._gate.check_data(model, request.env, caller)
        for variant in request.variants:
            other = self._model(variant.modelId, "variants")
            self._gate.verify(other, request.env)
            self._gate.check_data(other, request.env, caller)
        if request.shadow is not None:  # a shadow sees the traffic, never answers it
            shadow = self._model(request.shadow.modelId, "shadow")
            self._gate.verify(shadow, "sandbox")
            self._gate.check_data(shadow, request.env, caller)
        endpoint = endpoint_name(request.route, request.env)
        live_id = self._deployments.live_deployment(endpoint)
        live = self._deployments.get_deployment(live_id) if live_id else None
        deploy_id = ids.deployment_id(uuid.uuid4().hex)
        # A canary beside the live version, unless there is none or the rollout is all at once.
        beside = live if live is not None and request.canary.type != "ALL_AT_ONCE" else None
        first_share = traffic_steps(request.canary)[0] if beside else 100
        variants = [
            VariantState(
                name="canary",
                modelId=model.modelId,
                version=model.version,
                role="canary",
                weight=float(first_share),
                sagemakerModel=sagemaker_model_name(model.modelId),
            )
        ]
        if beside is not None:
            serving = beside.canary
            variants.append(
                serving.model_copy(
                    update={
                        "name": "baseline",
                        "role": "baseline",
                        "weight": float(100 - first_share),
                    }
                )
            )
        for spec in request.variants:
            ab = self._model(spec.modelId, "variants")
            variants.append(
                VariantState(
                    name=spec.name,
                    modelId=ab.modelId,
                    version=ab.version,
                    role="ab",
                    weight=spec.weight,
                    sagemakerModel=sagemaker_model_name(ab.modelId),
                )
            )
        now = self._clock.now()
        record = DeploymentRecord(
            deployId=deploy_id,
            modelId=model.modelId,
            family=model.family,
            version=model.version,
            env=request.env,
            route=request.route,
            endpointName=endpoint,
            endpointConfigName=f"{endpoint}-{deploy_id}",
            status=DeploymentStatus.CREATING,
            instanceType=request.instanceType,
            instanceCount=request.instanceCount,
            autoscaling=request.autoscaling,
            canaryConfig=request.canary,
            variants=tuple(variants),
            shadow=request.shadow,
            shadowModel=sagemaker_model_name(request.shadow.modelId) if request.shadow else None,
            dataCapturePercent=request.dataCapturePercent,
            baselineDeployId=live.deployId if live else None,
            provenance=provenance,
            metricsEndpoint=f"cloudwatch://AWS/SageMaker?EndpointName={endpoint}",
            captureUri=f"s3://{self._settings.bucket}/capture/",
            createdAt=now,
            createdBy=caller.principal,
            correlationId=correlation_id or deploy_id,
            executionArn=self._workflow.execution_arn(deploy_id),
            history=(StatusChange(status=DeploymentStatus.CREATING, at=now),),
        )
        self._deployments.create_deployment(record)
        self._record(record, "requested")
        try:
            self._workflow.start(
                deploy_id,
                {
                    "deployId": deploy_id,
                    "endpointName": endpoint,
                    "correlationId": record.correlationId,
                    "pollSeconds": self._settings.poll_seconds,
                    "bakeSeconds": request.canary.bakeSeconds if beside else 0,
                },
            )
        except Exception as exc:
            self._transition(deploy_id, DeploymentStatus.FAILED, "the workflow could not start")
            raise ServiceUnavailable(
                f"the deployment workflow could not be started; {deploy_id} is FAILED"
            ) from exc
        return record

    def get(self, deploy_id: str) -> DeploymentRecord:
        record = self._deployments.get_deployment(deploy_id)
        if record is None:
            raise NotFound(f"deployment {deploy_id} does not exist")
        return record

    def scale(
        self, deploy_id: str, weights: Mapping[str, float], caller: Caller
    ) -> DeploymentRecord:
        """Set the A/B weights (and the canary's share) of a deployment in service."""
        caller.require(Permission.DEPLOY)
        record = self.get(deploy_id)
        if record.status is not DeploymentStatus.IN_SERVICE:
            raise InvalidState(f"deployment {deploy_id} is {record.status.value}, not IN_SERVICE")
        names = {v.name for v in record.variants}
        unknown = sorted(set(weights) - names)
        if unknown:
            raise ValidationFailed(
                f"no such variants: {', '.join(unknown)} (variants: {', '.join(sorted(names))})",
                details=[
                    {"field": f"weights.{name}", "message": "unknown variant"} for name in unknown
                ],
            )
        merged = {v.name: weights.get(v.name, v.weight) for v in record.variants}
        if not any(merged.values()):
            raise ValidationFailed("at least one variant must keep traffic")
        self._backend.set_weights(record.endpointName, merged)
        return self._update(
            deploy_id,
            lambda r: {
                "variants": tuple(
                    v.model_copy(update={"weight": merged[v.name]}) for v in r.variants
                )
            },
        )

    def rollback_by_hand(
        self,
        deploy_id: str,
        caller: Caller,
        correlation_id: str,
        to_deploy_id: str | None = None,
    ) -> DeploymentRecord:
        """All traffic to a prior version of the same endpoint (default: the one this
        deployment replaced), as a new deployment: all at once, verified like any other."""
        caller.require(Permission.DEPLOY)
        record = self.get(deploy_id)
        target = to_deploy_id or record.baselineDeployId
        if target is None:
            raise InvalidState(
                f"deployment {deploy_id} replaced nothing: there is no prior version"
            )
        prior = self.get(target)
        if prior.endpointName != record.endpointName or prior.createdAt >= record.createdAt:
            raise ValidationFailed(
                f"{target} is not an earlier deployment of {record.endpointName}",
                details=[{"field": "toDeployId", "message": "not a prior version here"}],
            )
        request = DeployRequest(
            modelId=prior.modelId,
            env=record.env,
            route=record.route,
            instanceType=prior.instanceType,
            instanceCount=prior.instanceCount,
            canary=prior.canaryConfig.model_copy(update={"type": "ALL_AT_ONCE"}),
            dataCapturePercent=prior.dataCapturePercent,
            autoscaling=prior.autoscaling,
        )
        if not record.status.terminal:
            self._transition(
                deploy_id, DeploymentStatus.ROLLED_BACK, f"rolled back by {caller.principal}"
            )
        return self.deploy(request, caller, correlation_id)

    # --- the workflow's steps -----------------------------------------------------------

    def create(self, deploy_id: str) -> None:
        record = self.get(deploy_id)
        self._gate.verify(self._model(record.modelId, "modelId"), record.env)
        models = {v.sagemakerModel: v.modelId for v in record.variants}
        if record.shadow is not None and record.shadowModel:
            models[record.shadowModel] = record.shadow.modelId
        for name, model_id in models.items():
            self._backend.ensure_model(
                name,
                self._settings.image,
                self._model_archive(model_id),
                self._settings.role_arn,
                self._provenance_environment(model_id, record),
            )
        variant = {
            "InstanceType": record.instanceType,
            "InitialInstanceCount": record.instanceCount,
        }
        config: dict[str, Any] = {
            "EndpointConfigName": record.endpointConfigName,
            "ProductionVariants": [
                {
                    "VariantName": v.name,
                    "ModelName": v.sagemakerModel,
                    "InitialVariantWeight": v.weight,
                    **variant,
                }
                for v in record.variants
            ],
            "DataCaptureConfig": {
                "EnableCapture": record.dataCapturePercent > 0,
                "InitialSamplingPercentage": record.dataCapturePercent,
                "DestinationS3Uri": record.captureUri.rstrip("/"),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
            },
            "Tags": [{"Key": "modelops:deploy-id", "Value": deploy_id}],
        }
        if record.shadow is not None:
            config["ShadowProductionVariants"] = [
                {
                    "VariantName": "shadow",
                    "ModelName": record.shadowModel,
                    "InitialVariantWeight": float(record.shadow.samplingPercent),
                    **variant,
                }
            ]
        self._backend.create_endpoint_config(config)
        self._backend.deploy(record.endpointName, record.endpointConfigName)
        for state in record.variants:
            self._backend.autoscale(record.endpointName, state.name, record.autoscaling)

    def start_bake(self, deploy_id: str) -> None:
        """The endpoint serves the new variants: the bake window (and its metrics) starts."""
        if self.get(deploy_id).status is DeploymentStatus.CREATING:
            self._transition(deploy_id, DeploymentStatus.BAKING, "endpoint in service, baking")

    def analyse(self, deploy_id: str, attempt: int) -> dict[str, Any]:
        """After a bake window: promote, roll back, or bake again."""
        record = self.get(deploy_id)
        baseline = record.baseline
        if baseline is None:
            return {"verdict": "promote"}
        since = record.history[-1].at
        now = self._clock.now() + timedelta(seconds=1)
        decision = analyse(
            self._telemetry.variant_stats(record.endpointName, baseline.name, since, now),
            self._telemetry.variant_stats(record.endpointName, "canary", since, now),
            record.canaryConfig.thresholds,
        )
        if decision.verdict == "wait" and attempt >= MAX_ANALYSES:
            decision = decision.model_copy(
                update={
                    "verdict": "rollback",
                    "reasons": (
                        *decision.reasons,
                        f"still too little traffic after {attempt} bakes",
                    ),
                }
            )
        self._update(deploy_id, lambda r: {"decision": decision})
        self._audit_decision(
            record, decision.verdict, "; ".join(decision.reasons), decision.evidence
        )
        return {"verdict": decision.verdict, "attempt": attempt + 1}

    def promote(self, deploy_id: str) -> dict[str, Any]:
        """The canary's next traffic step; at 100% the deployment is in service."""
        record = self.get(deploy_id)
        steps = traffic_steps(record.canaryConfig) if record.baseline else [100]
        share = record.canary.weight
        following = [s for s in steps if s > share]
        target = following[0] if following else 100
        weights = {v.name: v.weight for v in record.variants}
        weights["canary"] = float(target)
        if record.baseline is not None:
            weights["baseline"] = float(100 - target)
        if weights != {v.name: v.weight for v in record.variants}:
            self._backend.set_weights(record.endpointName, weights)
            self._update(
                deploy_id,
                lambda r: {
                    "variants": tuple(
                        v.model_copy(update={"weight": weights[v.name]}) for v in r.variants
                    )
                },
            )
        if target < 100:
            return {"next": "bake"}
        reason = "canary promoted to all traffic" if record.baseline else "serving all traffic"
        self._transition(deploy_id, DeploymentStatus.IN_SERVICE, reason)
        if record.baselineDeployId:
            previous = self.get(record.baselineDeployId)
            if not previous.status.terminal:
                self._transition(
                    previous.deployId, DeploymentStatus.SUPERSEDED, f"replaced by {deploy_id}"
                )
        self._deployments.set_live_deployment(record.endpointName, deploy_id)
        return {"next": "done"}

    def rollback(self, deploy_id: str) -> dict[str, Any]:
        """All traffic back to the baseline; the canary keeps none."""
        record = self.get(deploy_id)
        reason = "; ".join(record.decision.reasons) if record.decision else "rolled back"
        self._restore_baseline(record)
        self._transition(deploy_id, DeploymentStatus.ROLLED_BACK, reason)
        self._publish(
            DeploymentRolledBack(
                deployId=deploy_id,
                endpointName=record.endpointName,
                modelId=record.modelId,
                restoredModelId=record.baseline.modelId if record.baseline else None,
                reason=reason,
                correlationId=record.correlationId,
            )
        )
        return {"status": DeploymentStatus.ROLLED_BACK.value}

    def fail(self, deploy_id: str, error: Mapping[str, Any] | None) -> dict[str, Any]:
        record = self.get(deploy_id)
        if record.status.terminal:
            return {"status": record.status.value}
        self._restore_baseline(record)
        reason = str((error or {}).get("Cause") or (error or {}).get("Error") or "failed")[:1024]
        self._transition(deploy_id, DeploymentStatus.FAILED, reason)
        return {"status": DeploymentStatus.FAILED.value}

    # --- internals ------------------------------------------------------------------------

    def _restore_baseline(self, record: DeploymentRecord) -> None:
        """All traffic to the baseline, if the endpoint runs this deployment's config (if an
        update never took, the previous config still serves and nothing is to be done)."""
        if record.baseline is None:
            return
        described = self._backend.describe(record.endpointName) or {}
        if described.get("EndpointConfigName") != record.endpointConfigName:
            return
        weights = {v.name: 0.0 if v.role == "canary" else v.weight for v in record.variants}
        weights["baseline"] = 100.0
        self._backend.set_weights(record.endpointName, weights)

    def _provenance_environment(self, model_id: str, record: DeploymentRecord) -> dict[str, str]:
        """What the model's container reports with every response: which model version it
        is, its artifact's root digest, and the key that signed it for this stage."""
        model = self._model(model_id, "modelId")
        signer = record.provenance.signatureKeyId if model_id == record.modelId else None
        return {
            "MODELOPS_MODEL_ID": model.modelId,
            "MODELOPS_VERSION": model.version,
            "MODELOPS_ROOT_DIGEST": model.rootDigest,
            "MODELOPS_SIGNER": (signer or model.signerId or "unsigned").rsplit("/", 1)[-1],
        }

    def _model_archive(self, model_id: str) -> str:
        """The model's files as SageMaker's model.tar.gz, built once per artifact (byte-stable,
        so rebuilding gives the same object)."""
        model = self._model(model_id, "modelId")
        key = f"serving/{model.artifactId}/model.tar.gz"
        if not self._blobs.exists(key):
            artifact = self._registry.get_artifact(model.artifactId)
            if artifact is None:
                raise NotFound(f"artifact {model.artifactId} of {model_id} does not exist")
            with tempfile.TemporaryDirectory(prefix="modelops-serve-") as scratch:
                root = Path(scratch) / "model"
                for entry in artifact.files:
                    target = root / entry.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    if not self._blobs.download(blob_key(entry.sha256), target):
                        raise NotFound(f"{entry.path} of {model_id} is missing from storage")
                archive = Path(scratch) / "model.tar.gz"
                with archive.open("wb") as handle:
                    write_targz(root, handle)
                self._blobs.upload(archive, key)
        return f"s3://{self._settings.bucket}/{key}"

    def _model(self, model_id: str, field: str) -> Any:
        model = self._registry.get_model(model_id)
        if model is None:
            raise NotFound(
                f"model {model_id} does not exist",
                details=[{"field": field, "message": "unknown model"}],
            )
        return model

    def _update(
        self, deploy_id: str, change: Callable[[DeploymentRecord], Mapping[str, Any]]
    ) -> DeploymentRecord:
        _, updated = revise(
            lambda: self.get(deploy_id),
            self._deployments.save_deployment,
            change,
            lambda: Conflict(f"deployment {deploy_id} is being changed concurrently; retry"),
        )
        return updated

    def _transition(
        self, deploy_id: str, status: DeploymentStatus, reason: str
    ) -> DeploymentRecord:
        record = self.get(deploy_id)
        if record.status.terminal:
            raise InvalidState(f"deployment {deploy_id} already ended {record.status.value}")
        now = self._clock.now()
        updated = self._update(
            deploy_id,
            lambda r: {
                "status": status,
                "statusReason": reason,
                "history": (*r.history, StatusChange(status=status, at=now, reason=reason)),
            },
        )
        self._record(updated, status.value.lower().replace("_", ""), previous=record.status)
        return updated

    def _record(
        self, record: DeploymentRecord, action: str, previous: DeploymentStatus | None = None
    ) -> None:
        self._publish(
            DeploymentStateChange(
                deployId=record.deployId,
                endpointName=record.endpointName,
                modelId=record.modelId,
                env=record.env,
                status=record.status.value,
                previousStatus=previous.value if previous else None,
                reason=record.statusReason,
                weights={v.name: v.weight for v in record.variants},
                correlationId=record.correlationId,
                resourcePath=f"/serve/{record.deployId}",
            )
        )
        self._audit_event(record, f"serve.deployment.{action}", record.statusReason, {})

    def _audit_decision(
        self, record: DeploymentRecord, verdict: str, reason: str, evidence: Mapping[str, float]
    ) -> None:
        details = {k: f"{v:.6g}" for k, v in evidence.items()}
        self._audit_event(record, f"serve.canary.{verdict}", reason, details)

    def _audit_event(
        self, record: DeploymentRecord, action: str, reason: str, details: Mapping[str, str]
    ) -> None:
        self._audit(
            AuditEvent(
                stream=AUDIT_STREAM,
                eventId=str(uuid.uuid4()),
                time=self._clock.now(),
                principal=record.createdBy,
                action=action,
                resources=(record.deployId, record.modelId),
                requestId=record.executionArn or record.deployId,
                correlationId=record.correlationId[:128],
                outcome=Outcome.FAILED
                if record.status is DeploymentStatus.FAILED
                else Outcome.SUCCEEDED,
                status=200,
                reason=reason[:1024],
                details={"actor": "deploy-workflow", "status": record.status.value, **details},
            )
        )
