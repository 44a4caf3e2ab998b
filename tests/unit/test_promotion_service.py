from __future__ import annotations

import base64
import hashlib
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from modelops.adapters.cedar_policy import CedarPolicyEngine
from modelops.contracts.promotion import (
    ApproveRequest,
    DatasetApprovalRequest,
    FamilyPolicyRequest,
    PromoteRequest,
    RegisterApproverRequest,
)
from modelops.contracts.registry import RegisterDatasetRequest, RegisterModelRequest
from modelops.domain.access import Caller, Role
from modelops.domain.entities import Artifact, ModelStatus, Storage
from modelops.domain.manifest import FileEntry, Manifest
from modelops.domain.promotion import MetricRule
from modelops.domain.signing import ManifestSignature, verify_statement
from modelops.errors import Conflict, Forbidden, PromotionBlocked, SignatureInvalid
from modelops.services.governance import Governance
from modelops.services.lineage import LineageService
from modelops.services.promotion import PromotionService
from modelops.services.registry import RegistryService
from modelops.services.serving_gate import DeploymentGate
from tests.unit.fakes import (
    FixedClock,
    MemoryBlobStore,
    MemoryEcdsaSigner,
    MemoryPlatform,
    MemoryPublisher,
    MemorySigner,
)

ENGINEER = Caller("arn:aws:iam::123456789012:user/eng", frozenset({Role.ML_ENGINEER}))
ADMIN = Caller("arn:aws:iam::123456789012:user/admin", frozenset({Role.PLATFORM_ADMIN}))
APPROVERS = [
    Caller(f"arn:aws:iam::123456789012:user/approver-{i}", frozenset({Role.APPROVER}))
    for i in range(3)
]


class Setup:
    def __init__(self) -> None:
        self.repo = MemoryPlatform()
        self.clock = FixedClock()
        self.signer = MemorySigner()
        self.blobs = MemoryBlobStore()
        self.publisher = MemoryPublisher()
        self.registry = RegistryService(self.repo, self.clock, self.publisher)
        self.service = PromotionService(
            registry=self.repo,
            promotions=self.repo,
            lineage=LineageService(self.repo),
            policy=CedarPolicyEngine(),
            signer=self.signer,
            model_signer=MemoryEcdsaSigner(),
            blobs=self.blobs,
            evaluations=self.repo,
            monitoring=self.repo,
            clock=self.clock,
            region="us-east-1",
            publish=self.publisher,
        )
        self.approver_keys: dict[str, tuple[Ed25519PrivateKey, str]] = {}
        self.governance = Governance(
            self.repo, LineageService(self.repo), self.repo, CedarPolicyEngine(), self.clock
        )

    def gate(self, signer: MemorySigner | None = None) -> DeploymentGate:
        return DeploymentGate(
            self.repo,
            self.repo,
            self.blobs,
            signer or self.signer,
            self.repo,
            governance=self.governance,
            region="us-east-1",
        )

    def artifact(self, content: bytes, storage: Storage = "standard") -> Artifact:
        entry = FileEntry(path="m", size=len(content), sha256=hashlib.sha256(content).hexdigest())
        manifest = Manifest(files=(entry,))
        artifact = Artifact(
            artifactId=f"art-{manifest.manifest_digest[:32]}",
            name="a",
            rootDigest=manifest.root_digest,
            manifestDigest=manifest.manifest_digest,
            totalSize=len(content),
            files=manifest.files,
            createdBy=ENGINEER.principal,
            createdAt=self.clock.now(),
            uploadId="upl-" + "0" * 32,
            storage=storage,
        )
        self.repo.create_artifact(artifact)
        return artifact

    def dataset(self, name: str, **fields: Any) -> str:
        request = RegisterDatasetRequest.model_validate(
            {
                "name": name,
                "artifactId": self.artifact(
                    name.encode(), "escrow" if fields.get("piiFlags") else "standard"
                ).artifactId,
                "license": "MIT",
                **fields,
            }
        )
        return self.registry.register_dataset(request, ENGINEER).dataset.datasetId

    def model(self, version: str, accuracy: float, datasets: tuple[str, ...] = ()) -> str:
        request = RegisterModelRequest.model_validate(
            {
                "family": "clf",
                "version": version,
                "artifactId": self.artifact(version.encode()).artifactId,
                "codeRef": "c",
                "metrics": {"accuracy": accuracy},
                "lineage": {"datasets": list(datasets)},
            }
        )
        return self.registry.register_model(request, ENGINEER).model.modelId

    def promote(self, model_id: str, stage: ModelStatus, caller: Caller = ENGINEER) -> Any:
        return self.service.promote(model_id, PromoteRequest(targetStage=stage), caller)

    def approver(self, caller: Caller) -> str:
        private = Ed25519PrivateKey.generate()
        der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        key = self.service.register_approver(
            RegisterApproverRequest(
                principal=caller.principal, publicKey=base64.b64encode(der).decode()
            ),
            ADMIN,
        )
        self.approver_keys[caller.principal] = (private, key.keyId)
        return key.keyId

    def approve(self, model_id: str, promotion_id: str, caller: Caller) -> Any:
        private, key_id = self.approver_keys[caller.principal]
        promotion = self.repo.get_promotion(promotion_id)
        assert promotion is not None
        signature = base64.b64encode(private.sign(promotion.statement.encode())).decode()
        return self.service.approve(
            model_id, promotion_id, ApproveRequest(keyId=key_id, signature=signature), caller
        )


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_ladder_is_climbed_one_rung_at_a_time_and_each_promotion_is_signed(setup: Setup) -> None:
    model_id = setup.model("1.0.0", 0.9)
    with pytest.raises(PromotionBlocked) as skipped:
        setup.promote(model_id, ModelStatus.PROD)
    assert skipped.value.details[0]["gate"] == "ladder"
    staged = setup.promote(model_id, ModelStatus.STAGING)
    assert staged.model.status is ModelStatus.STAGING
    prod = setup.promote(model_id, ModelStatus.PROD)
    assert prod.model.status is ModelStatus.PROD
    signature: ManifestSignature = prod.promotion.signature
    assert prod.model.signerId == signature.keyId and prod.model.signature == signature.signature
    assert verify_statement(signature, prod.promotion.statement.encode(), setup.signer.public_key())
    statement = prod.promotion.statement
    for bound in (
        model_id,
        prod.model.rootDigest,
        '"to":"prod"',
        '"from":"staging"',
        "policyDecision",
    ):
        assert bound in statement


def test_metric_gates_compare_with_the_current_prod_version(setup: Setup) -> None:
    setup.service.set_family_policy(
        "clf",
        FamilyPolicyRequest(
            gates={
                ModelStatus.PROD: [
                    MetricRule(metric="accuracy", threshold=0.8, minAbsoluteChange=0.02)
                ]
            }
        ),
        ADMIN,
    )
    champion = setup.model("1.0.0", 0.90)
    setup.promote(champion, ModelStatus.STAGING)
    setup.promote(champion, ModelStatus.PROD)
    challenger = setup.model("1.1.0", 0.91)
    setup.promote(challenger, ModelStatus.STAGING)
    with pytest.raises(PromotionBlocked, match=r"improves on prod's 0\.9 by 0\.01") as blocked:
        setup.promote(challenger, ModelStatus.PROD)
    assert [d["gate"] for d in blocked.value.details] == ["metrics"]
    better = setup.model("1.2.0", 0.95)
    setup.promote(better, ModelStatus.STAGING)
    setup.promote(better, ModelStatus.PROD)
    assert setup.repo.get_model(champion).status is ModelStatus.STAGING  # the old prod steps down
    assert setup.repo.get_model(better).status is ModelStatus.PROD


def test_unapproved_pii_dataset_blocks_promotion_until_an_approver_allows_it(setup: Setup) -> None:
    pii = setup.dataset("customers", piiFlags=["email"])
    model_id = setup.model("1.0.0", 0.9, (pii,))
    with pytest.raises(PromotionBlocked, match=r"dataset\.pii-not-approved") as blocked:
        setup.promote(model_id, ModelStatus.STAGING)
    assert blocked.value.details == [
        {"gate": "policy", "message": blocked.value.details[0]["message"]}
    ]
    allow = DatasetApprovalRequest(purposes=["inference"], validDays=30, note="DPIA-7")
    with pytest.raises(Forbidden):
        setup.service.approve_dataset(pii, allow, ENGINEER)
    setup.service.approve_dataset(pii, allow, APPROVERS[0])
    assert setup.promote(model_id, ModelStatus.STAGING).model.status is ModelStatus.STAGING


def test_a_pii_approval_covers_only_its_purposes_and_period(setup: Setup) -> None:
    pii = setup.dataset("customers", piiFlags=["email"])
    model_id = setup.model("1.0.0", 0.9, (pii,))
    training_only = DatasetApprovalRequest(purposes=["training"], validDays=30)
    setup.service.approve_dataset(pii, training_only, APPROVERS[0])
    with pytest.raises(PromotionBlocked, match=r"dataset\.pii-not-approved"):
        setup.promote(model_id, ModelStatus.STAGING)
    serving = DatasetApprovalRequest(purposes=["inference", "training"], validDays=1)
    setup.service.approve_dataset(pii, serving, APPROVERS[0])
    setup.clock.current += timedelta(days=2)
    with pytest.raises(PromotionBlocked, match=r"dataset\.pii-not-approved"):
        setup.promote(model_id, ModelStatus.STAGING)


def test_non_commercial_data_can_reach_staging_but_not_prod(setup: Setup) -> None:
    research = setup.dataset("research", license="CC-BY-NC-4.0")
    model_id = setup.model("1.0.0", 0.9, (research,))
    setup.promote(model_id, ModelStatus.STAGING)
    with pytest.raises(PromotionBlocked, match=r"dataset\.non-commercial-in-prod"):
        setup.promote(model_id, ModelStatus.PROD)


def test_high_risk_prod_needs_m_distinct_approvers_and_not_the_requester(setup: Setup) -> None:
    setup.service.set_family_policy(
        "clf", FamilyPolicyRequest(riskTier="high", approvalsRequired=2), ADMIN
    )
    for approver in APPROVERS:
        setup.approver(approver)
    model_id = setup.model("1.0.0", 0.9)
    setup.promote(model_id, ModelStatus.STAGING)
    pending = setup.promote(model_id, ModelStatus.PROD).promotion
    assert (
        pending.status == "PENDING_APPROVAL"
        and setup.repo.get_model(model_id).status is ModelStatus.STAGING
    )
    with pytest.raises(Conflict, match="already waiting"):
        setup.promote(model_id, ModelStatus.PROD)

    requester_as_approver = Caller(ENGINEER.principal, frozenset({Role.APPROVER, Role.ML_ENGINEER}))
    setup.approver_keys[ENGINEER.principal] = setup.approver_keys[APPROVERS[2].principal]
    with pytest.raises(Forbidden, match="cannot approve"):
        setup.approve(model_id, pending.promotionId, requester_as_approver)

    first = setup.approve(model_id, pending.promotionId, APPROVERS[0]).promotion
    assert first.status == "PENDING_APPROVAL" and len(first.approvals) == 1
    with pytest.raises(Conflict, match="already approved"):
        setup.approve(model_id, pending.promotionId, APPROVERS[0])
    done = setup.approve(model_id, pending.promotionId, APPROVERS[1])
    assert done.promotion.status == "COMPLETED" and done.model.status is ModelStatus.PROD
    assert {a.principal for a in done.promotion.approvals} == {
        APPROVERS[0].principal,
        APPROVERS[1].principal,
    }


def test_an_approval_must_be_a_valid_signature_by_the_approvers_own_key(setup: Setup) -> None:
    setup.service.set_family_policy(
        "clf", FamilyPolicyRequest(riskTier="high", approvalsRequired=1), ADMIN
    )
    setup.approver(APPROVERS[0])
    setup.approver(APPROVERS[1])
    model_id = setup.model("1.0.0", 0.9)
    setup.promote(model_id, ModelStatus.STAGING)
    pending = setup.promote(model_id, ModelStatus.PROD).promotion
    _, own_key = setup.approver_keys[APPROVERS[0].principal]
    with pytest.raises(SignatureInvalid):
        setup.service.approve(
            model_id,
            pending.promotionId,
            ApproveRequest(keyId=own_key, signature=base64.b64encode(b"\x00" * 64).decode()),
            APPROVERS[0],
        )
    setup.approver_keys[APPROVERS[0].principal] = setup.approver_keys[APPROVERS[1].principal]
    with pytest.raises(Forbidden, match="another principal"):
        setup.approve(model_id, pending.promotionId, APPROVERS[0])
    assert setup.repo.get_model(model_id).status is ModelStatus.STAGING


def test_roles_gate_promotion_configuration_and_approval(setup: Setup) -> None:
    model_id = setup.model("1.0.0", 0.9)
    with pytest.raises(Forbidden):
        setup.promote(model_id, ModelStatus.STAGING, APPROVERS[0])
    with pytest.raises(Forbidden):
        setup.service.set_family_policy("clf", FamilyPolicyRequest(), ENGINEER)
    der = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    for caller in (ENGINEER, APPROVERS[0]):
        with pytest.raises(Forbidden):
            setup.service.register_approver(
                RegisterApproverRequest(
                    principal=caller.principal, publicKey=base64.b64encode(der).decode()
                ),
                caller,
            )
    assert setup.repo.get_model(model_id).status is ModelStatus.DRAFT
    assert not setup.repo.policies and not setup.repo.approver_keys


def test_history_answers_which_version_was_in_prod_at_a_time(setup: Setup) -> None:
    first = setup.model("1.0.0", 0.9)
    setup.promote(first, ModelStatus.STAGING)
    setup.promote(first, ModelStatus.PROD)
    between = setup.clock.now()
    second = setup.model("2.0.0", 0.95)
    setup.promote(second, ModelStatus.STAGING)
    setup.promote(second, ModelStatus.PROD)
    after = setup.clock.now()
    setup.promote(second, ModelStatus.DEPRECATED)
    assert setup.service.history("clf", ModelStatus.PROD, between).holder.modelId == first
    assert setup.service.history("clf", ModelStatus.PROD, after).holder.modelId == second
    later = setup.service.history("clf", ModelStatus.PROD, after + timedelta(days=1))
    assert later.holder is None
    assert [c.toStage for c in later.changes][-1] is ModelStatus.DEPRECATED


def test_promotion_signs_an_openssf_bundle_of_the_model_files_and_provenance_has_the_keys(
    setup: Setup,
) -> None:
    from modelops.services.promotion import bundle_key

    model_id = setup.model("1.0.0", 0.9)
    assert setup.service.provenance(model_id).modelSigningBundle is None
    setup.promote(model_id, ModelStatus.STAGING)
    provenance = setup.service.provenance(model_id)
    bundle = provenance.modelSigningBundle
    assert bundle is not None and bundle_key(model_id) in setup.blobs.objects
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert [p.toStage for p in provenance.promotions] == [ModelStatus.STAGING]
    assert {k.algorithm for k in provenance.keys} == {"ED25519_SHA_512", "ECDSA_SHA_256"}
