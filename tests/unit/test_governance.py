"""Licences and usage restrictions propagate through lineage, and every use checks them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from modelops.contracts.promotion import DatasetApprovalRequest
from modelops.contracts.registry import RegisterModelRequest
from modelops.domain.entities import ModelStatus, PiiFlag
from modelops.domain.restrictions import covers, effective_restrictions
from modelops.errors import PolicyDenied, PromotionBlocked
from modelops.services.governance import Use
from tests.unit.test_promotion_service import APPROVERS, ENGINEER, Setup


@pytest.fixture
def setup() -> Setup:
    return Setup()


def _restricted(**limits: Any) -> dict[str, Any]:
    return {"usageRestrictions": limits}


def _three_generations(setup: Setup) -> dict[str, str]:
    """raw (eu, non-commercial, 365 days, PII) -> cleaned (eu-west-1) -> features
    (purposes) -> model -> fine-tune (with a clean dataset of its own)."""
    raw = setup.dataset(
        "customers-raw",
        license="CC-BY-NC-4.0",
        piiFlags=["email"],
        **_restricted(
            exportRegions=["eu"], retentionDays=365, permittedPurposes=["training", "inference"]
        ),
    )
    cleaned = setup.dataset(
        "customers-clean",
        sourceRefs=[raw],
        **_restricted(exportRegions=["eu-west-1", "us-east-1"]),
    )
    features = setup.dataset(
        "customer-features",
        sourceRefs=[cleaned],
        license="Apache-2.0",
        **_restricted(permittedPurposes=["training", "inference", "evaluation"], retentionDays=90),
    )
    clean = setup.dataset("weather", license="CC0-1.0")
    model = setup.model("1.0.0", 0.9, (features,))
    tuned = setup.registry.register_model(
        RegisterModelRequest.model_validate(
            {
                "family": "clf",
                "version": "1.1.0",
                "artifactId": setup.artifact(b"tuned").artifactId,
                "codeRef": "c",
                "lineage": {"datasets": [clean], "parentModels": [model]},
            }
        ),
        ENGINEER,
    ).model.modelId
    return {
        "raw": raw,
        "cleaned": cleaned,
        "features": features,
        "clean": clean,
        "model": model,
        "tuned": tuned,
    }


def test_a_fine_tune_inherits_the_restrictions_of_every_ancestor_three_generations_up(
    setup: Setup,
) -> None:
    ids = _three_generations(setup)
    found = setup.governance.restrictions(ids["tuned"])
    assert found.datasets == tuple(sorted(ids[k] for k in ("raw", "cleaned", "features", "clean")))
    # Licences: every ancestor's applies.
    assert {s.datasetId: s.value for s in found.licenses}[ids["raw"]] == "CC-BY-NC-4.0"
    assert found.licenseExpression == "Apache-2.0 AND CC-BY-NC-4.0 AND CC0-1.0 AND MIT"
    # Commercial use: forbidden by the raw dataset's licence, three generations up.
    assert not found.commercialUse
    assert [s.datasetId for s in found.commercialUseForbiddenBy] == [ids["raw"]]
    # Regions: eu and {eu-west-1, us-east-1} leave eu-west-1.
    assert found.exportRegions == ("eu-west-1",)
    assert {s.datasetId for s in found.regionsRestrictedBy} == {ids["raw"], ids["cleaned"]}
    # Purposes: the intersection; retention: the shortest.
    assert found.permittedPurposes == ("inference", "training")
    assert found.retentionDays == 90
    assert [s.datasetId for s in found.retentionSetBy] == [ids["features"]]
    # PII: from the raw dataset.
    assert found.piiFlags == (PiiFlag.EMAIL,)
    assert [s.datasetId for s in found.piiFrom] == [ids["raw"]]


def test_a_clean_lineage_restricts_nothing(setup: Setup) -> None:
    model = setup.model("1.0.0", 0.9, (setup.dataset("weather"),))
    found = setup.governance.restrictions(model)
    assert found.commercialUse and found.exportRegions is None
    assert found.permittedPurposes is None and found.retentionDays is None
    assert found.piiFlags == ()
    assert effective_restrictions([]).licenseExpression is None


def test_disjoint_export_regions_leave_no_region() -> None:
    assert covers("eu", "eu-west-1") and not covers("eu", "euc1") and covers("us", "us")


def test_disjoint_regions_across_generations_permit_nowhere(setup: Setup) -> None:
    eu = setup.dataset("eu", **_restricted(exportRegions=["eu"]))
    both = setup.dataset("us", sourceRefs=[eu], **_restricted(exportRegions=["us"]))
    assert setup.governance.restrictions(both).exportRegions == ()


def _use(action: Any = "train", **fields: Any) -> Use:
    base: dict[str, Any] = {
        "action": action,
        "purpose": "training",
        "principal": ENGINEER.principal,
        "roles": ("ml-engineer",),
        "family": "clf",
        "risk_tier": "low",
        "target_env": "sandbox",
        "region": "us-east-1",
    }
    return Use(**(base | fields))


def test_training_outside_an_ancestors_regions_names_dataset_restriction_and_policy(
    setup: Setup,
) -> None:
    ids = _three_generations(setup)
    datasets = setup.governance.lineage_datasets([ids["features"]])
    setup.service.approve_dataset(
        ids["raw"],
        DatasetApprovalRequest(purposes=["training"], validDays=30),
        APPROVERS[0],
    )
    with pytest.raises(PolicyDenied) as denied:
        setup.governance.require(_use(region="us-east-1"), datasets)
    details = denied.value.details
    assert {
        "field": f"datasets.{ids['raw']}",
        "datasetId": ids["raw"],
        "policyId": "dataset.export-region",
        "restriction": "exportRegions",
        "value": ["eu"],
        "message": "The dataset's export restrictions do not include the region of this use.",
    } in details
    assert ids["raw"] in denied.value.message and "dataset.export-region" in denied.value.message
    # In eu-west-1 every generation's regions allow it.
    assert setup.governance.require(_use(region="eu-west-1"), datasets).allowed


def test_pii_three_generations_up_needs_an_approval_for_the_purpose(setup: Setup) -> None:
    ids = _three_generations(setup)
    datasets = setup.governance.lineage_datasets([ids["tuned"]])
    with pytest.raises(PolicyDenied, match=r"dataset\.pii-not-approved"):
        setup.governance.require(_use(region="eu-west-1"), datasets)
    setup.service.approve_dataset(
        ids["raw"], DatasetApprovalRequest(purposes=["evaluation"], validDays=30), APPROVERS[0]
    )
    with pytest.raises(PolicyDenied, match=r"dataset\.pii-not-approved"):
        setup.governance.require(_use(region="eu-west-1"), datasets)
    setup.service.approve_dataset(
        ids["raw"], DatasetApprovalRequest(purposes=["training"], validDays=30), APPROVERS[0]
    )
    assert setup.governance.require(_use(region="eu-west-1"), datasets).allowed


def test_a_non_commercial_grandparent_licence_blocks_prod_and_names_it(setup: Setup) -> None:
    ids = _three_generations(setup)
    setup.service.approve_dataset(
        ids["raw"], DatasetApprovalRequest(purposes=["inference"], validDays=30), APPROVERS[0]
    )
    setup.promote(ids["model"], ModelStatus.STAGING)
    with pytest.raises(PromotionBlocked) as blocked:
        setup.promote(ids["model"], ModelStatus.PROD)
    message = blocked.value.details[0]["message"]
    assert "dataset.non-commercial-in-prod" in message and ids["raw"] in message
    assert "license=CC-BY-NC-4.0" in message


def test_serving_a_model_whose_lineage_is_eu_only_in_us_east_1_is_refused(setup: Setup) -> None:
    eu = setup.dataset("eu-data", **_restricted(exportRegions=["eu"]))
    derived = setup.dataset("eu-derived", sourceRefs=[eu])
    model_id = setup.model("1.0.0", 0.9, (derived,))
    model = setup.repo.get_model(model_id)
    assert model is not None
    with pytest.raises(PolicyDenied) as denied:
        setup.gate().check_data(model, "sandbox", ENGINEER)
    assert denied.value.details[0]["datasetId"] == eu
    assert denied.value.details[0]["restriction"] == "exportRegions"


def test_data_past_its_retention_may_no_longer_be_used(setup: Setup) -> None:
    short = setup.dataset("short-lived", **_restricted(retentionDays=1))
    datasets = setup.governance.lineage_datasets([setup.dataset("child", sourceRefs=[short])])
    assert setup.governance.require(_use(), datasets).allowed
    setup.clock.current += timedelta(days=2)
    with pytest.raises(PolicyDenied) as denied:
        setup.governance.require(_use(), datasets)
    assert denied.value.details[0]["policyId"] == "dataset.retention-expired"
    assert denied.value.details[0]["value"] == 1
