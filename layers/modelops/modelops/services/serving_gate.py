"""The deployment gate: verify a model version before anything serves it.

For staging and prod the model must carry a completed promotion to that stage (or beyond)
whose statement names the model's root digest and whose KMS signature verifies with the
platform's public key; and the artifact's root digest, recomputed from the bytes in
storage, must equal the signed one. So an unsigned model never reaches prod and a tampered
artifact is refused, even if the registry record was left untouched. Sandbox needs only
the recomputed digest to match the registry's. A version of a high-risk family that drift
quarantined is refused everywhere until an approver releases it (human sign-off). And the
data policies must allow serving it here (``check_data``): a model inherits the
restrictions of every dataset in its lineage.
"""

from __future__ import annotations

import json

from modelops.domain.access import Caller
from modelops.domain.digests import root_digest
from modelops.domain.entities import ModelVersion
from modelops.domain.serving import REQUIRED_STAGES, DeployProvenance, Env
from modelops.domain.signing import verify_statement
from modelops.errors import DeploymentRefused
from modelops.ports import (
    BlobStore,
    MonitoringRepository,
    PromotionRepository,
    RegistryRepository,
    Signer,
)
from modelops.services import governance
from modelops.services.artifacts import blob_key, each
from modelops.services.governance import Governance, Use


class DeploymentGate:
    def __init__(
        self,
        registry: RegistryRepository,
        promotions: PromotionRepository,
        blobs: BlobStore,
        signer: Signer,
        monitoring: MonitoringRepository,
        *,
        governance: Governance,
        region: str,
    ) -> None:
        self._governance = governance
        self._region = region
        self._registry = registry
        self._promotions = promotions
        self._blobs = blobs
        self._signer = signer
        self._monitoring = monitoring

    def verify(self, model: ModelVersion, env: Env) -> DeployProvenance:
        quarantine = self._monitoring.get_quarantine(model.modelId)
        policy = self._promotions.get_family_policy(model.family)
        if quarantine is not None and quarantine.active and policy and policy.riskTier == "high":
            raise DeploymentRefused(
                f"{model.modelId} of high-risk family {model.family} is quarantined "
                f"({quarantine.reason}); an approver must release it first "
                f"(POST /drift/{model.modelId}/quarantine/release)",
                details=[{"field": "modelId", "message": "quarantined"}],
            )
        stored = self._stored_root_digest(model)
        if stored != model.rootDigest:
            raise DeploymentRefused(
                f"{model.modelId}: the stored files' root digest {stored[:16]}... is not the "
                f"registered {model.rootDigest[:16]}...: the artifact was altered",
                details=[{"field": "modelId", "message": "artifact digest mismatch"}],
            )
        stages = REQUIRED_STAGES[env]
        if not stages:
            return DeployProvenance(artifactRootDigest=stored)
        key = self._signer.public_key()
        problems = []
        for promotion in sorted(
            self._promotions.promotions_of(model.modelId),
            key=lambda p: p.completedAt or p.requestedAt,
            reverse=True,
        ):
            if promotion.status != "COMPLETED" or promotion.toStage.value not in stages:
                continue
            if promotion.signature is None:
                problems.append(f"promotion {promotion.promotionId} carries no signature")
                continue
            statement = json.loads(promotion.statement)
            if statement.get("rootDigest") != stored:
                problems.append(f"promotion {promotion.promotionId} signed another digest")
                continue
            if not verify_statement(promotion.signature, promotion.statement.encode(), key):
                problems.append(f"promotion {promotion.promotionId}: signature does not verify")
                continue
            return DeployProvenance(
                artifactRootDigest=stored,
                promotionId=promotion.promotionId,
                statementDigest=promotion.statementDigest,
                signatureKeyId=promotion.signature.keyId,
                signedStage=promotion.toStage.value,
            )
        reason = "; ".join(problems) or f"no completed promotion to {' or '.join(stages)}"
        raise DeploymentRefused(
            f"{model.modelId} may not serve in {env}: {reason}",
            details=[{"field": "env", "message": reason}],
        )

    def check_data(self, model: ModelVersion, env: Env, caller: Caller) -> None:
        """The data policies for serving ``model`` in ``env`` from this region: every
        dataset of its lineage (export regions, commercial use in prod, PII approvals for
        inference, retention). PolicyDenied names the dataset, restriction and policy."""
        policy = self._promotions.get_family_policy(model.family)
        use = Use(
            action="deploy",
            purpose=governance.INFERENCE,
            principal=caller.principal,
            roles=tuple(sorted(caller.roles)),
            family=model.family,
            risk_tier=policy.riskTier if policy else "low",
            target_env=env,
            region=self._region,
        )
        self._governance.require(use, self._governance.lineage_datasets([model.modelId]))

    def _stored_root_digest(self, model: ModelVersion) -> str:
        artifact = self._registry.get_artifact(model.artifactId)
        if artifact is None:
            raise DeploymentRefused(f"{model.modelId}: its artifact {model.artifactId} is gone")
        keys = [blob_key(f.sha256) for f in artifact.files]
        observed = each(self._blobs.sha256_of, keys)
        missing = [f.path for f, seen in zip(artifact.files, observed, strict=True) if seen is None]
        if missing:
            raise DeploymentRefused(
                f"{model.modelId}: files missing from storage: {', '.join(missing[:5])}"
            )
        return root_digest(
            (f.path, seen[0]) for f, seen in zip(artifact.files, observed, strict=True) if seen
        )
