"""SentinelNet's policy decisions: the domain model and the embedded Cedar engine with the
policies kept in the repo."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from modelops.adapters.cedar_policy import (
    EVALUATION_ERROR,
    NO_PERMIT,
    CedarPolicyEngine,
    bundled_policies,
)
from modelops.domain.digests import canonical_digest
from modelops.domain.entities import PiiFlag
from modelops.domain.policy import (
    DatasetFacts,
    PolicyDecision,
    PolicyDenial,
    PolicyEngine,
    PolicyRequest,
    is_non_commercial,
)

POLICY_DIR = Path(__file__).resolve().parents[2] / "layers" / "modelops" / "modelops" / "policies"
PII = "dataset.pii-not-approved"
NON_COMMERCIAL = "dataset.non-commercial-in-prod"
EXPORT = "dataset.export-region"
PURPOSE = "dataset.purpose-not-permitted"
RETENTION = "dataset.retention-expired"
ACTIONS = ("train", "promote", "deploy")

ENGINE = CedarPolicyEngine()


def facts(dataset_id: str = "ds-clean", **overrides: Any) -> DatasetFacts:
    fields: dict[str, Any] = {"datasetId": dataset_id, "license": "CC-BY-4.0"}
    return DatasetFacts(**(fields | overrides))


def request(*datasets: DatasetFacts, **overrides: Any) -> PolicyRequest:
    fields: dict[str, Any] = {
        "action": "train",
        "principal": "arn:aws:iam::123456789012:user/alice",
        "roles": ("ml-engineer",),
        "modelFamily": "iris-classifier",
        "riskTier": "low",
        "targetEnv": "sandbox",
        "region": "eu-west-1",
        "purpose": "training",
        "datasets": datasets,
    }
    return PolicyRequest(**(fields | overrides))


def denied(decision: PolicyDecision) -> list[tuple[str, str | None]]:
    return [(denial.policyId, denial.datasetId) for denial in decision.denials]


# The policy set kept in the repo


def test_bundled_policy_set_holds_the_default_permit_and_five_forbids() -> None:
    text = bundled_policies()
    ids = {line.split('"')[1] for line in text.splitlines() if line.startswith("@id(")}
    assert ids == {"default.permit", PII, NON_COMMERCIAL, EXPORT, PURPOSE, RETENTION}
    assert text.count("@reason(") == len(ids)


@pytest.mark.parametrize("action", ACTIONS)
def test_clean_lineage_is_allowed_by_the_default_permit(action: str) -> None:
    decision = ENGINE.decide(
        request(facts("ds-a"), facts("ds-b"), action=action, targetEnv="prod", purpose="training")
    )
    assert decision.allowed
    assert decision.denials == ()
    assert decision.engine == "cedar-embedded"


def test_model_without_datasets_is_allowed() -> None:
    assert ENGINE.decide(request(action="deploy", targetEnv="prod")).allowed


# (1) PII


@pytest.mark.parametrize("action", ACTIONS)
def test_unapproved_pii_dataset_is_denied_for_every_action(action: str) -> None:
    pii = facts("ds-pii", piiFlags=(PiiFlag.EMAIL,))
    decision = ENGINE.decide(request(pii, facts(), action=action))
    assert not decision.allowed
    assert denied(decision) == [(PII, "ds-pii")]
    assert decision.denials[0].reason == (
        "The dataset contains personal data (PII) and has not been approved for use."
    )


def test_approved_pii_dataset_is_allowed() -> None:
    pii = facts("ds-pii", piiFlags=(PiiFlag.HEALTH, PiiFlag.NAME), piiApproved=True)
    assert ENGINE.decide(request(pii)).allowed


@pytest.mark.parametrize("action", ACTIONS)
def test_dataset_past_its_retention_is_denied_for_every_action(action: str) -> None:
    expired = facts("ds-old", retentionExpired=True)
    decision = ENGINE.decide(request(expired, facts(), action=action))
    assert denied(decision) == [(RETENTION, "ds-old")]


# (2) Licence and commercial use in production


@pytest.mark.parametrize("action", ["promote", "deploy"])
@pytest.mark.parametrize(
    "restricted",
    [
        {"license": "CC-BY-NC-4.0"},
        {"license": "MIT AND CC-BY-NC-SA-4.0"},
        {"license": "LicenseRef-acme-noncommercial"},
        {"license": "MIT", "commercialUse": False},
    ],
    ids=["nc-licence", "nc-conjunct", "licenseref", "commercial-use-false"],
)
def test_non_commercial_dataset_cannot_feed_a_model_in_prod(
    action: str, restricted: dict[str, Any]
) -> None:
    decision = ENGINE.decide(
        request(facts("ds-nc", **restricted), facts(), action=action, targetEnv="prod")
    )
    assert denied(decision) == [(NON_COMMERCIAL, "ds-nc")]


@pytest.mark.parametrize(
    ("action", "target_env"),
    [("promote", "staging"), ("deploy", "sandbox"), ("deploy", "staging"), ("train", "prod")],
)
def test_non_commercial_dataset_is_allowed_outside_prod_and_for_training(
    action: str, target_env: str
) -> None:
    nc = facts("ds-nc", license="CC-BY-NC-ND-4.0", commercialUse=False)
    assert ENGINE.decide(request(nc, action=action, targetEnv=target_env)).allowed


def test_dual_licensed_dataset_with_a_commercial_alternative_may_reach_prod() -> None:
    dual = facts("ds-dual", license="CC-BY-NC-4.0 OR MIT")
    assert ENGINE.decide(request(dual, action="deploy", targetEnv="prod")).allowed


# (3) Export regions


@pytest.mark.parametrize("action", ["train", "deploy"])
def test_dataset_restricted_to_other_regions_is_denied(action: str) -> None:
    eu_only = facts("ds-eu", exportRegions=("eu-west-1", "eu-central-1"))
    decision = ENGINE.decide(request(eu_only, facts(), action=action, region="us-east-1"))
    assert denied(decision) == [(EXPORT, "ds-eu")]


@pytest.mark.parametrize(
    ("export_regions", "region"),
    [(("eu-west-1", "eu-central-1"), "eu-central-1"), (("eu",), "eu-west-1"), ((), "us-east-1")],
    ids=["listed-region", "geography-prefix", "unrestricted"],
)
def test_dataset_may_be_used_in_its_export_regions(
    export_regions: tuple[str, ...], region: str
) -> None:
    restricted = facts("ds-eu", exportRegions=export_regions)
    for action in ("train", "deploy"):
        assert ENGINE.decide(request(restricted, action=action, region=region)).allowed


def test_geography_prefix_does_not_cover_another_geography() -> None:
    eu = facts("ds-eu", exportRegions=("eu",))
    decision = ENGINE.decide(request(eu, action="deploy", region="us-east-1"))
    assert denied(decision) == [(EXPORT, "ds-eu")]


def test_export_regions_are_not_checked_at_promotion() -> None:
    eu_only = facts("ds-eu", exportRegions=("eu-west-1",))
    assert ENGINE.decide(request(eu_only, action="promote", region="us-east-1")).allowed


# (4) Permitted purposes


@pytest.mark.parametrize("action", ACTIONS)
def test_dataset_may_not_be_used_for_a_purpose_it_does_not_permit(action: str) -> None:
    research = facts("ds-research", permittedPurposes=("research",))
    decision = ENGINE.decide(request(research, action=action, purpose="training"))
    assert denied(decision) == [(PURPOSE, "ds-research")]


def test_dataset_may_be_used_for_a_permitted_purpose_and_any_purpose_when_unrestricted() -> None:
    restricted = facts("ds-r", permittedPurposes=("training", "evaluation"))
    assert ENGINE.decide(request(restricted, facts("ds-any"), purpose="training")).allowed


# Several denials at once


def test_every_denial_is_reported_and_names_its_policy_and_dataset() -> None:
    # Given one dataset that breaks four policies, one that breaks one, and a clean one
    worst = facts(
        "ds-worst",
        license="CC-BY-NC-4.0",
        piiFlags=(PiiFlag.PHONE,),
        exportRegions=("eu",),
        permittedPurposes=("research",),
    )
    pii_only = facts("ds-pii", piiFlags=(PiiFlag.NAME,))
    # When a model trained on all three is deployed to prod in us-east-1
    decision = ENGINE.decide(
        request(
            worst,
            facts(),
            pii_only,
            action="deploy",
            targetEnv="prod",
            region="us-east-1",
            purpose="inference",
        )
    )
    # Then every broken policy is named once per dataset, datasets and policies in order
    assert not decision.allowed
    assert denied(decision) == [
        (PII, "ds-pii"),
        (EXPORT, "ds-worst"),
        (NON_COMMERCIAL, "ds-worst"),
        (PII, "ds-worst"),
        (PURPOSE, "ds-worst"),
    ]
    assert all(denial.reason for denial in decision.denials)


# Digests


def test_policy_set_digest_is_the_sha256_of_the_bundled_policy_files() -> None:
    files = sorted(POLICY_DIR.glob("*.cedar"))
    expected = hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()
    assert CedarPolicyEngine().policy_set_digest == expected
    assert ENGINE.decide(request()).policySetDigest == expected
    assert ENGINE.decide(request(facts(piiFlags=(PiiFlag.NAME,)))).policySetDigest == expected


def test_policy_set_digest_changes_with_the_policies() -> None:
    custom = bundled_policies() + (
        '@id("extra.no-deploy")\n@reason("r")\n'
        'forbid (principal, action == ModelOps::Action::"deploy", resource);\n'
    )
    engine = CedarPolicyEngine(custom)
    assert engine.policy_set_digest == hashlib.sha256(custom.encode()).hexdigest()
    assert engine.policy_set_digest != ENGINE.policy_set_digest


def test_request_digest_is_the_canonical_digest_and_ignores_listing_order() -> None:
    a = facts("ds-a", exportRegions=("eu-west-1", "eu"), piiFlags=(PiiFlag.NAME, PiiFlag.EMAIL))
    b = facts("ds-b", permittedPurposes=("training", "evaluation"))
    one = request(a, b, roles=("kernel", "ml-engineer"))
    other = request(
        b,
        facts("ds-a", exportRegions=("eu", "eu-west-1", "eu"), piiFlags=("email", "name")),
        a,
        roles=("ml-engineer", "kernel"),
    )
    assert one == other
    assert one.digest() == other.digest() == canonical_digest(one.model_dump(mode="json"))
    decision = ENGINE.decide(one)
    assert decision.requestDigest == one.digest()
    assert ENGINE.decide(other).requestDigest == decision.requestDigest


def test_request_digest_changes_with_any_fact() -> None:
    base = request(facts("ds-a"))
    assert request(facts("ds-a", piiApproved=True)).digest() != base.digest()
    assert request(facts("ds-a"), region="eu-central-1").digest() != base.digest()


def test_a_dataset_listed_twice_with_different_facts_is_rejected() -> None:
    with pytest.raises(ValidationError, match="different facts"):
        request(facts("ds-a"), facts("ds-a", commercialUse=False))


# The engine's own guarantees


def test_roles_and_the_model_are_visible_to_policies() -> None:
    # A model-level policy: only approvers may promote high-risk models.
    engine = CedarPolicyEngine(
        bundled_policies()
        + '@id("model.high-risk-needs-approver")\n'
        + '@reason("High-risk models are promoted by approvers.")\n'
        + 'forbid (principal, action == ModelOps::Action::"promote", resource is ModelOps::Model)\n'
        + 'when { resource.riskTier == "high" }\n'
        + 'unless { principal in ModelOps::Role::"approver" };\n'
    )
    high = {"action": "promote", "riskTier": "high"}
    decision = engine.decide(request(facts(), **high))
    assert denied(decision) == [("model.high-risk-needs-approver", None)]
    assert engine.decide(request(facts(), roles=("approver",), **high)).allowed
    assert engine.decide(request(facts(), action="promote", riskTier="low")).allowed


def test_a_request_no_policy_permits_is_denied() -> None:
    engine = CedarPolicyEngine(
        '@id("only-train")\n@reason("r")\n'
        'permit (principal, action == ModelOps::Action::"train", resource);\n'
    )
    assert engine.decide(request(facts("ds-a"))).allowed
    decision = engine.decide(request(facts("ds-a"), action="deploy"))
    assert denied(decision) == [(NO_PERMIT, None), (NO_PERMIT, "ds-a")]


def test_a_forbid_that_fails_to_evaluate_denies() -> None:
    # Cedar skips a policy whose evaluation errors (here, an overflow); the engine denies.
    engine = CedarPolicyEngine(
        bundled_policies() + '@id("broken")\n@reason("r")\n'
        "forbid (principal, action, resource is ModelOps::Dataset)\n"
        "when { 9223372036854775807 + 1 > 0 };\n"
    )
    decision = engine.decide(request(facts("ds-a")))
    assert not decision.allowed
    assert denied(decision) == [(EVALUATION_ERROR, "ds-a")]
    assert "`broken`" in decision.denials[0].reason
    assert "overflow" in decision.denials[0].reason


@pytest.mark.parametrize(
    ("policies", "message"),
    [
        ("permit (principal, action, resource);", "@id and @reason"),
        ('@id("a")\npermit (principal, action, resource);', "@id and @reason"),
        (
            '@id("a")\n@reason("r")\npermit (principal, action, resource);\n'
            '@id("a")\n@reason("r")\nforbid (principal, action, resource);',
            "duplicate policy ids: a",
        ),
        (
            '@id("typo")\n@reason("r")\n'
            "forbid (principal, action, resource is ModelOps::Dataset)\n"
            'when { resource.licence == "MIT" };',
            "typo",
        ),
        ("permit (principal, action, resource", "unexpected end of input"),
    ],
    ids=["no-annotations", "no-reason", "duplicate-id", "not-in-schema", "syntax"],
)
def test_policies_that_are_unannotated_or_do_not_match_the_schema_are_refused(
    policies: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CedarPolicyEngine(policies).decide(request())


def test_cedar_engine_is_a_policy_engine() -> None:
    engine: PolicyEngine = CedarPolicyEngine()
    assert engine.decide(request()).allowed


def test_decision_invariants() -> None:
    digest = "0" * 64
    with pytest.raises(ValidationError, match="no denials"):
        PolicyDecision(
            allowed=True,
            denials=(PolicyDenial(policyId="p", reason="r"),),
            engine="e",
            policySetDigest=digest,
            requestDigest=digest,
        )
    with pytest.raises(ValidationError, match="at least one denial"):
        PolicyDecision(allowed=False, engine="e", policySetDigest=digest, requestDigest=digest)
    with pytest.raises(ValidationError, match="names the policy set"):
        PolicyDecision(allowed=True, engine="e", requestDigest=digest)


# is_non_commercial


@pytest.mark.parametrize(
    "expression",
    [
        "CC-BY-NC-4.0",
        "CC-BY-NC-SA-2.0-UK",
        "CC-BY-NC-ND-3.0-IGO",
        "cc-by-nc-4.0",
        "PolyForm-Noncommercial-1.0.0",
        "NCGL-UK-2.0",
        "LicenseRef-acme-noncommercial",
        "LicenseRef-acme-Non-Commercial-Research",
        "LicenseRef-acme-NC-1.0",
        "MIT AND CC-BY-NC-4.0",
        "(MIT OR Apache-2.0) AND CC-BY-NC-SA-4.0",
        "CC-BY-NC-4.0 OR CC-BY-NC-SA-4.0",
        "CC-BY-NC-4.0 WITH LLVM-exception",
        "",
        "MIT AND",
        "(MIT",
        "MIT OR OR Apache-2.0",
    ],
)
def test_non_commercial_expressions(expression: str) -> None:
    assert is_non_commercial(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "MIT",
        "CC-BY-4.0",
        "CC-BY-SA-4.0",
        "CC0-1.0",
        "NCSA",
        "Apache-2.0 WITH LLVM-exception",
        "GPL-2.0+",
        "CC-BY-NC-4.0 OR MIT",
        "cc-by-nc-4.0 or mit",
        "(CC-BY-NC-4.0 AND MIT) OR Apache-2.0",
        "LicenseRef-acme-commercial",
    ],
)
def test_commercial_expressions(expression: str) -> None:
    assert not is_non_commercial(expression)
