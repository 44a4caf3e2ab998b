"""Governed promotion: ladder, metric gates, policy clearance, KMS signature, M-of-N
approvals; PII dataset approvals; approver keys; stage history."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from modelops import correlation
from modelops.contracts.events import (
    EventDetail,
    ModelStageChanged,
    PromotionAwaitingApproval,
    Recommendation,
)
from modelops.contracts.promotion import (
    ApproveRequest,
    DatasetApprovalRequest,
    FamilyPolicyRequest,
    PromoteRequest,
    PromotionResponse,
    Provenance,
    PublicKeyInfo,
    RegisterApproverRequest,
    StageHistory,
)
from modelops.domain import ids
from modelops.domain.access import Caller, Permission
from modelops.domain.crypto import is_ed25519_public_key, verify_ed25519
from modelops.domain.digests import canonical_digest, canonical_json
from modelops.domain.entities import NAME_PATTERN, Dataset, ModelStatus, ModelVersion
from modelops.domain.evaluation import EvaluationRecord
from modelops.domain.manifest import Manifest
from modelops.domain.openssf import build_bundle
from modelops.domain.openssf import statement as openssf_statement
from modelops.domain.policy import (
    PolicyDecision,
    PolicyEngine,
)
from modelops.domain.promotion import (
    STATEMENT_TYPE,
    TARGET_ENV,
    Approval,
    ApproverKey,
    DatasetApproval,
    FamilyPolicy,
    GateResult,
    Promotion,
    StageChange,
    move_kind,
    next_rung,
    version_at,
)
from modelops.domain.signing import MAX_STATEMENT_BYTES, fingerprint, sign_message
from modelops.errors import (
    Conflict,
    Forbidden,
    NotFound,
    PromotionBlocked,
    ReferenceNotFound,
    SignatureInvalid,
    ValidationFailed,
)
from modelops.ports import (
    AlreadyExists,
    BlobStore,
    Clock,
    EvaluationRepository,
    MonitoringRepository,
    PromotionPending,
    PromotionRepository,
    RegistryRepository,
    Signer,
    StaleWrite,
)
from modelops.services import governance
from modelops.services.evaluation import latest_completed
from modelops.services.governance import Governance, Use, refusal
from modelops.services.lineage import LineageService


class EvidenceGates:
    """The gates that judge a version's evidence (its evaluation, quarantine, metric rules
    against prod), for promotion requests and for the Eval Engine's recommendations. Reads
    only: no signing key is needed to judge, so the training workflow recommends with it."""

    def __init__(
        self,
        *,
        registry: RegistryRepository,
        promotions: PromotionRepository,
        evaluations: EvaluationRepository,
        monitoring: MonitoringRepository,
    ) -> None:
        self._registry = registry
        self._promotions = promotions
        self._evaluations = evaluations
        self._monitoring = monitoring

    def policy(self, family: str) -> FamilyPolicy:
        _check_family(family)
        return self._promotions.get_family_policy(family) or FamilyPolicy(family=family)

    def current(self, family: str, stage: ModelStatus) -> ModelVersion | None:
        page = self._registry.list_models(family, stage, 100, None)
        return page.items[0] if page.items else None

    def _metrics(
        self, model: ModelVersion, evaluation: EvaluationRecord | None = None
    ) -> dict[str, float]:
        """What metric rules check: the registered metrics, overlaid with those of the
        version's latest completed evaluation (fairness and safety figures included)."""
        if evaluation is None:
            evaluation = latest_completed(self._evaluations, model.modelId)
        return {**model.metrics, **(evaluation.metrics if evaluation else {})}

    def evidence(
        self,
        model: ModelVersion,
        target: ModelStatus,
        policy: FamilyPolicy,
        evaluation: EvaluationRecord | None,
        prod: ModelVersion | None,
    ) -> list[GateResult]:
        """The gates that judge the version's evidence: its evaluation, quarantine, metrics."""
        quarantine = self._monitoring.get_quarantine(model.modelId)
        failures = [
            message
            for rule in policy.gates.get(target, ())
            for message in rule.failures(
                self._metrics(model, evaluation), self._metrics(prod) if prod else None
            )
        ]
        return [
            _evaluation_gate(evaluation, target in policy.evaluationRequired),
            GateResult(
                gate="quarantine",
                passed=quarantine is None or not quarantine.active,
                message=f"quarantined since {quarantine.since.isoformat()}: {quarantine.reason}"
                if quarantine is not None and quarantine.active
                else "not quarantined",
            ),
            GateResult(
                gate="metrics",
                passed=not failures,
                message="; ".join(failures) or f"{len(policy.gates.get(target, ()))} rule(s) met",
            ),
        ]

    def recommend(self, evaluation: EvaluationRecord) -> Recommendation:
        """The Eval Engine's advice after an evaluation: promote to the next rung when the
        evidence gates would pass there, else hold, with every failing gate's reason.
        Advice only: policy clearance, approvals and the signature come with the request."""
        model = self._registry.get_model(evaluation.modelId)
        if model is None:
            raise NotFound(f"model {evaluation.modelId} does not exist")
        target = next_rung(model.status)
        if target is None:
            return Recommendation(
                action="hold",
                currentStage=model.status.value,
                targetStage=None,
                reasons=[f"{model.status.value} has no rung above it"],
            )
        gates = self.evidence(
            model,
            target,
            self.policy(model.family),
            evaluation,
            self.current(model.family, ModelStatus.PROD),
        )
        failed = [f"{g.gate}: {g.message}" for g in gates if not g.passed]
        return Recommendation(
            action="hold" if failed else "promote",
            currentStage=model.status.value,
            targetStage=target.value,
            reasons=failed or [f"{g.gate}: {g.message}" for g in gates],
        )


class PromotionService:
    def __init__(
        self,
        *,
        registry: RegistryRepository,
        promotions: PromotionRepository,
        lineage: LineageService,
        policy: PolicyEngine,
        signer: Signer,
        model_signer: Signer,
        blobs: BlobStore,
        evaluations: EvaluationRepository,
        monitoring: MonitoringRepository,
        clock: Clock,
        region: str,
        publish: Callable[[EventDetail], None],
    ) -> None:
        self._publish = publish
        self._registry = registry
        self._promotions = promotions
        self._lineage = lineage
        self._governance = Governance(registry, lineage, promotions, policy, clock)
        self._signer = signer
        self._model_signer = model_signer
        self._blobs = blobs
        self._evaluations = evaluations
        self._monitoring = monitoring
        self._gates = EvidenceGates(
            registry=registry, promotions=promotions, evaluations=evaluations, monitoring=monitoring
        )
        self._clock = clock
        self._region = region

    # --- configuration ---------------------------------------------------------------

    def set_family_policy(
        self, family: str, request: FamilyPolicyRequest, caller: Caller
    ) -> FamilyPolicy:
        caller.require(Permission.ADMINISTER)
        _check_family(family)
        try:
            policy = FamilyPolicy(
                family=family,
                riskTier=request.riskTier,
                approvalsRequired=request.approvalsRequired,
                gates={stage: tuple(rules) for stage, rules in request.gates.items()},
                evaluationRequired=tuple(request.evaluationRequired),
                updatedBy=caller.principal,
                updatedAt=self._clock.now(),
            )
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from exc
        self._promotions.put_family_policy(policy)
        return policy

    def family_policy(self, family: str) -> FamilyPolicy:
        return self._gates.policy(family)

    def register_approver(self, request: RegisterApproverRequest, caller: Caller) -> ApproverKey:
        caller.require(Permission.ADMINISTER)
        der = base64.b64decode(request.publicKey)
        if not is_ed25519_public_key(der):
            raise ValidationFailed(
                "publicKey must be an Ed25519 SubjectPublicKeyInfo (DER, base64)",
                details=[{"field": "publicKey", "message": "not an Ed25519 public key"}],
            )
        key = ApproverKey(
            keyId=ids.approver_key_id(fingerprint(der)),
            principal=request.principal,
            publicKey=request.publicKey,
            fingerprint=fingerprint(der),
            registeredBy=caller.principal,
            registeredAt=self._clock.now(),
        )
        try:
            self._promotions.put_approver_key(key)
        except AlreadyExists:
            stored = self._promotions.get_approver_key(key.keyId)
            if stored is None or stored.principal != key.principal:
                raise Conflict(f"key {key.keyId} is registered to another principal") from None
            return stored
        return key

    def approve_dataset(
        self, dataset_id: str, request: DatasetApprovalRequest, caller: Caller
    ) -> DatasetApproval:
        caller.require(Permission.APPROVE)
        dataset = self._registry.get_dataset(dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} does not exist")
        if not dataset.pii:
            raise ValidationFailed(f"dataset {dataset_id} is not flagged PII; nothing to approve")
        now = self._clock.now()
        approval = DatasetApproval(
            datasetId=dataset_id,
            approvedBy=caller.principal,
            approvedAt=now,
            purposes=tuple(sorted(set(request.purposes))),
            expiresAt=now + timedelta(days=request.validDays),
            note=request.note,
        )
        self._promotions.put_dataset_approval(approval)
        return approval

    # --- moving between stages ---------------------------------------------------------

    def promote(self, model_id: str, request: PromoteRequest, caller: Caller) -> PromotionResponse:
        caller.require(Permission.PROMOTE)
        model = self._model(model_id)
        target = request.targetStage
        kind = move_kind(model.status, target)
        if kind is None:
            raise PromotionBlocked(
                f"{model.status.value} -> {target.value} is not a move the ladder allows "
                "(draft -> staging -> prod one rung at a time, one rung down, or deprecated)",
                details=[{"field": "targetStage", "gate": "ladder", "message": "not allowed"}],
            )
        if kind != "promote":
            change = self._change(model, target, caller.principal, None)
            moved = model.model_copy(update={"status": target})
            self._move([(moved, model.status)], [change], None, None)
            return PromotionResponse(model=moved, change=change)

        policy = self.family_policy(model.family)
        datasets = self._governance.lineage_datasets([model_id])
        prod = self._gates.current(model.family, ModelStatus.PROD)
        evaluation = latest_completed(self._evaluations, model_id)
        gates = [
            GateResult(
                gate="ladder", passed=True, message=f"{model.status.value} -> {target.value}"
            ),
            *self._gates.evidence(model, target, policy, evaluation, prod),
        ]
        decision, use = self._decide(caller, model, policy, target, datasets)
        gates.append(
            GateResult(
                gate="policy",
                passed=decision.allowed,
                message=(
                    f"allowed by {decision.engine}"
                    if decision.allowed
                    else refusal(use, decision, {d.datasetId: d for d in datasets}).message
                ),
            )
        )
        failed = [g for g in gates if not g.passed]
        if failed:
            raise PromotionBlocked(
                f"{len(failed)} gate(s) failed: "
                + "; ".join(f"{g.gate}: {g.message}" for g in failed),
                details=[{"gate": g.gate, "message": g.message} for g in failed],
            )

        now = self._clock.now()
        promotion_id = f"{ids.PROMOTION}-{uuid.uuid4().hex[:24]}"
        statement = self._statement(
            promotion_id=promotion_id,
            model=model,
            target=target,
            datasets=datasets,
            evaluation=evaluation,
            decision=decision,
            caller=caller,
            now=now,
        )
        required = policy.approvalsRequired if target is ModelStatus.PROD else 0
        promotion = Promotion(
            promotionId=promotion_id,
            modelId=model_id,
            family=model.family,
            version=model.version,
            fromStage=model.status,
            toStage=target,
            requestedBy=caller.principal,
            requestedAt=now,
            status="PENDING_APPROVAL" if required else "COMPLETED",
            gates=tuple(gates),
            statement=statement.decode(),
            statementDigest=hashlib.sha256(statement).hexdigest(),
            approvalsRequired=required,
        )
        if required:
            try:
                self._promotions.create_pending_promotion(promotion)
            except PromotionPending as pending:
                raise Conflict(
                    f"promotion {pending.promotion_id} of {model_id} is already waiting for "
                    "approvals; approve it or let it lapse before requesting another"
                ) from None
            self._publish(
                PromotionAwaitingApproval(
                    promotionId=promotion.promotionId,
                    modelId=model_id,
                    family=model.family,
                    version=model.version,
                    targetStage=target.value,
                    statement=promotion.statement,
                    approvalsRequired=required,
                    requestedBy=caller.principal,
                    correlationId=correlation.current(promotion.promotionId),
                    resourcePath=f"/models/{model_id}/promotions/{promotion.promotionId}",
                )
            )
            return PromotionResponse(model=model, promotion=promotion)
        return self._complete(model, promotion, prod, caller.principal, expected_revision=None)

    def approve(
        self, model_id: str, promotion_id: str, request: ApproveRequest, caller: Caller
    ) -> PromotionResponse:
        """An approver's signature over the statement, submitted by the approver or relayed by
        Kernel (``Permission.RELAY_APPROVALS``): either way the approval is the key owner's,
        and what makes it count is the signature, checked here against their registered key."""
        relayed = not caller.holds(Permission.APPROVE) and caller.holds(Permission.RELAY_APPROVALS)
        if not relayed:
            caller.require(Permission.APPROVE)
        promotion = self.promotion(model_id, promotion_id)
        if promotion.status != "PENDING_APPROVAL":
            raise Conflict(f"promotion {promotion_id} is {promotion.status}, not pending")
        key = self._promotions.get_approver_key(request.keyId)
        if key is None:
            raise ReferenceNotFound(f"approver key {request.keyId} is not registered")
        approver = key.principal if relayed else caller.principal
        if approver == promotion.requestedBy:
            raise Forbidden("the principal that requested a promotion cannot approve it")
        if any(a.principal == approver for a in promotion.approvals):
            raise Conflict(f"{approver} has already approved {promotion_id}")
        if key.principal != approver:
            raise Forbidden(f"approver key {request.keyId} belongs to another principal")
        try:
            signature = base64.b64decode(request.signature, validate=True)
        except binascii.Error:
            signature = b""
        if not verify_ed25519(
            base64.b64decode(key.publicKey), signature, promotion.statement.encode()
        ):
            raise SignatureInvalid(
                "the signature does not verify over the promotion statement with that key",
                details=[{"field": "signature", "message": "invalid"}],
            )
        approvals = (
            *promotion.approvals,
            Approval(
                principal=approver,
                keyId=key.keyId,
                signature=request.signature,
                approvedAt=self._clock.now(),
                relayedBy=caller.principal if relayed else None,
            ),
        )
        gates = (
            *tuple(g for g in promotion.gates if g.gate != "approvals"),
            GateResult(
                gate="approvals",
                passed=len(approvals) >= promotion.approvalsRequired,
                message=f"{len(approvals)} of {promotion.approvalsRequired} approvals",
            ),
        )
        updated = promotion.model_copy(
            update={"approvals": approvals, "gates": gates, "revision": promotion.revision + 1}
        )
        model = self._model(model_id)
        if len(approvals) < promotion.approvalsRequired:
            try:
                self._promotions.save_promotion(updated, expected_revision=promotion.revision)
            except StaleWrite:
                raise Conflict("the promotion changed meanwhile; retry the approval") from None
            return PromotionResponse(model=model, promotion=updated)
        if model.status is not promotion.fromStage:
            raise Conflict(f"{model_id} moved to {model.status.value} since the request")
        prod = self._gates.current(model.family, ModelStatus.PROD)
        return self._complete(
            model, updated, prod, promotion.requestedBy, expected_revision=promotion.revision
        )

    # --- history -----------------------------------------------------------------------

    def history(self, family: str, stage: ModelStatus | None, at: datetime | None) -> StageHistory:
        _check_family(family)
        changes = sorted(self._promotions.stage_changes(family), key=lambda c: c.at)
        holder = version_at(changes, stage, at) if stage is not None and at is not None else None
        return StageHistory(family=family, changes=changes, holder=holder)

    # --- internals ---------------------------------------------------------------------

    def _model(self, model_id: str) -> ModelVersion:
        model = self._registry.get_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id} does not exist")
        return model

    def _decide(
        self,
        caller: Caller,
        model: ModelVersion,
        policy: FamilyPolicy,
        target: ModelStatus,
        datasets: list[Dataset],
    ) -> tuple[PolicyDecision, Use]:
        use = Use(
            action="promote",
            purpose=governance.INFERENCE,
            principal=caller.principal,
            roles=tuple(sorted(caller.roles)),
            family=model.family,
            risk_tier=policy.riskTier,
            target_env=TARGET_ENV[target],
            region=self._region,
        )
        return self._governance.decide(use, datasets), use

    def _statement(
        self,
        *,
        promotion_id: str,
        model: ModelVersion,
        target: ModelStatus,
        datasets: list[Dataset],
        evaluation: EvaluationRecord | None,
        decision: PolicyDecision,
        caller: Caller,
        now: datetime,
    ) -> bytes:
        """What approvers and KMS sign: digests only, at most 4096 bytes."""
        listed = [{"datasetId": d.datasetId, "checksum": d.checksum} for d in datasets]
        statement: dict[str, Any] = {
            "type": STATEMENT_TYPE,
            "promotionId": promotion_id,
            "modelId": model.modelId,
            "family": model.family,
            "version": model.version,
            "artifactId": model.artifactId,
            "rootDigest": model.rootDigest,
            "datasets": listed,
            "evaluationId": evaluation.evaluationId if evaluation else None,
            "evaluationDigest": evaluation.digest
            if evaluation is not None and evaluation.digest
            else canonical_digest({"metrics": model.metrics}),
            "policyDecision": {
                "engine": decision.engine,
                "allowed": decision.allowed,
                "requestDigest": decision.requestDigest,
                "policySetDigest": decision.policySetDigest,
            },
            "from": model.status.value,
            "to": target.value,
            "requestedBy": caller.principal,
            "requestedAt": now.isoformat(),
        }
        encoded = canonical_json(statement)
        if len(encoded) > MAX_STATEMENT_BYTES:  # a long lineage: bind its digest instead
            statement["datasets"] = {"count": len(listed), "digest": canonical_digest(listed)}
            encoded = canonical_json(statement)
        return encoded

    def _complete(
        self,
        model: ModelVersion,
        promotion: Promotion,
        prod: ModelVersion | None,
        requested_by: str,
        expected_revision: int | None,
    ) -> PromotionResponse:
        now = self._clock.now()
        signature = sign_message(self._signer, promotion.statement.encode(), requested_by, now)
        self._sign_artifact(model)
        promoted = model.model_copy(
            update={
                "status": promotion.toStage,
                "signerId": signature.keyId,
                "signature": signature.signature,
            }
        )
        moves = [(promoted, model.status)]
        changes = [self._change(model, promotion.toStage, requested_by, promotion.promotionId)]
        if (
            promotion.toStage is ModelStatus.PROD
            and prod is not None
            and prod.modelId != model.modelId
        ):
            # One prod version per family at a time: the previous one steps down.
            moves.append(
                (prod.model_copy(update={"status": ModelStatus.STAGING}), ModelStatus.PROD)
            )
            changes.append(
                self._change(prod, ModelStatus.STAGING, requested_by, promotion.promotionId)
            )
        completed = promotion.model_copy(
            update={
                "status": "COMPLETED",
                "signature": signature,
                "completedAt": now,
                "gates": (
                    *promotion.gates,
                    GateResult(
                        gate="signature", passed=True, message=f"signed by {signature.keyId}"
                    ),
                ),
            }
        )
        self._move(moves, changes, completed, expected_revision)
        return PromotionResponse(model=promoted, promotion=completed, change=changes[0])

    def _sign_artifact(self, model: ModelVersion) -> None:
        """An OpenSSF model-signing bundle of the model's files, signed by the P-256 KMS key,
        that the stock ``model_signing verify`` accepts on the downloaded model directory."""
        artifact = self._registry.get_artifact(model.artifactId)
        if artifact is None:
            raise ReferenceNotFound(f"artifact {model.artifactId} of {model.modelId} is missing")
        bundle = build_bundle(
            openssf_statement(model.family, Manifest(files=artifact.files)),
            self._model_signer.sign,
            self._model_signer.public_key(),
        )
        self._blobs.put_bytes(
            bundle_key(model.modelId),
            json.dumps(bundle, sort_keys=True).encode(),
            "application/json",
        )

    def promotion(self, model_id: str, promotion_id: str) -> Promotion:
        promotion = self._promotions.get_promotion(promotion_id)
        if promotion is None or promotion.modelId != model_id:
            raise NotFound(f"promotion {promotion_id} of {model_id} does not exist")
        return promotion

    def promotions(self, model_id: str) -> list[Promotion]:
        return self._promotions.promotions_of(model_id)

    def provenance(self, model_id: str) -> Provenance:
        model = self._model(model_id)
        stored = self._blobs.get_bytes(bundle_key(model_id))
        keys = [
            PublicKeyInfo(
                keyId=signer.key_id,
                algorithm=signer.algorithm,
                publicKeyDer=base64.b64encode(signer.public_key()).decode(),
                fingerprint=fingerprint(signer.public_key()),
            )
            for signer in (self._signer, self._model_signer)
        ]
        return Provenance(
            model=model,
            promotions=self.promotions(model_id),
            modelSigningBundle=json.loads(stored) if stored else None,
            keys=keys,
        )

    def _move(
        self,
        moves: list[tuple[ModelVersion, ModelStatus]],
        changes: list[StageChange],
        promotion: Promotion | None,
        expected_revision: int | None,
    ) -> None:
        try:
            self._promotions.move_stages(moves, changes, promotion, expected_revision)
        except StaleWrite:
            raise Conflict(
                "the model or promotion changed while this request ran; read it again and retry"
            ) from None
        signed = promotion.signature if promotion is not None else None
        for (moved, _), change in zip(moves, changes, strict=True):
            self._publish(
                ModelStageChanged(
                    modelId=moved.modelId,
                    family=moved.family,
                    version=moved.version,
                    fromStage=change.fromStage.value,
                    toStage=change.toStage.value,
                    changedBy=change.by,
                    promotionId=change.promotionId,
                    signatureKeyId=signed.keyId
                    if signed is not None
                    and promotion is not None
                    and promotion.modelId == moved.modelId
                    else None,
                    rootDigest=moved.rootDigest,
                    correlationId=correlation.current(change.promotionId or moved.modelId),
                    resourcePath=f"/models/{moved.modelId}/provenance",
                )
            )

    def _change(
        self, model: ModelVersion, target: ModelStatus, by: str, promotion_id: str | None
    ) -> StageChange:
        return StageChange(
            family=model.family,
            modelId=model.modelId,
            version=model.version,
            fromStage=model.status,
            toStage=target,
            at=self._clock.now(),
            by=by,
            promotionId=promotion_id,
        )


def _evaluation_gate(evaluation: EvaluationRecord | None, required: bool) -> GateResult:
    if evaluation is None:
        return GateResult(
            gate="evaluation",
            passed=not required,
            message="no completed evaluation"
            + ("; this stage needs one (POST /eval/run)" if required else ""),
        )
    failed = [
        f"{c.get('name')}: {c.get('message')}"
        for c in (evaluation.results or {}).get("safety", {}).get("checks", ())
        if not c.get("passed")
    ]
    passed = not (required and (failed or not evaluation.safetyPassed))
    return GateResult(
        gate="evaluation",
        passed=passed,
        message=f"{evaluation.evaluationId}: safety failed: " + "; ".join(failed)
        if failed
        else f"{evaluation.evaluationId} (sha256:{evaluation.digest}): safety checks passed",
    )


def _check_family(family: str) -> None:
    if not re.fullmatch(NAME_PATTERN, family):
        raise ValidationFailed(
            f"{family!r} is not a model family name ({NAME_PATTERN})",
            details=[{"field": "family", "message": "invalid name"}],
        )


def bundle_key(model_id: str) -> str:
    return f"signatures/{model_id}/model.sig"
