from __future__ import annotations

import hashlib
from typing import Any

import pytest

from modelops.contracts.registry import RegisterDatasetRequest, RegisterModelRequest
from modelops.domain.access import Caller, Role
from modelops.domain.entities import Artifact, ModelLineage, ModelStatus, PiiFlag, Storage
from modelops.domain.manifest import FileEntry, Manifest
from modelops.errors import (
    Conflict,
    DigestMismatch,
    Forbidden,
    PiiNotEscrowed,
    ReferenceNotFound,
    ValidationFailed,
)
from modelops.services.lineage import LineageService
from modelops.services.registry import RegistryService
from tests.unit.fakes import FixedClock, MemoryPublisher, MemoryRegistry

ALICE = Caller("arn:aws:iam::123456789012:user/alice", frozenset({Role.ML_ENGINEER}))


def add_artifact(repo: MemoryRegistry, content: bytes, storage: Storage = "standard") -> Artifact:
    manifest = Manifest(
        files=(FileEntry(path="f", size=len(content), sha256=hashlib.sha256(content).hexdigest()),)
    )
    artifact = Artifact(
        artifactId=f"art-{manifest.manifest_digest[:32]}",
        name="a",
        rootDigest=manifest.root_digest,
        manifestDigest=manifest.manifest_digest,
        totalSize=len(content),
        files=manifest.files,
        createdBy=ALICE.principal,
        createdAt=FixedClock().now(),
        uploadId="upl-" + "0" * 32,
        storage=storage,
    )
    repo.create_artifact(artifact)
    return artifact


def dataset_request(artifact: Artifact, **overrides: Any) -> RegisterDatasetRequest:
    fields: dict[str, Any] = {
        "name": "iris",
        "artifactId": artifact.artifactId,
        "sourceRefs": ["sklearn://datasets/iris"],
        "license": "bsd-3-clause",
        "transformations": [
            {"name": "to-csv", "codeRef": "git+repo@abc#x.py", "checksum": "a" * 64}
        ],
    }
    return RegisterDatasetRequest.model_validate({**fields, **overrides})


@pytest.fixture
def registry() -> tuple[RegistryService, MemoryRegistry]:
    repo = MemoryRegistry()
    return RegistryService(repo, FixedClock(), MemoryPublisher()), repo


def test_dataset_registration_is_idempotent_and_licence_is_canonical_spdx(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    artifact = add_artifact(repo, b"rows")
    first = service.register_dataset(dataset_request(artifact), ALICE)
    again = service.register_dataset(dataset_request(artifact), ALICE)
    assert first.created and not again.created
    assert again.dataset == first.dataset
    assert first.dataset.license == "BSD-3-Clause"
    assert first.dataset.checksum == artifact.rootDigest
    assert first.dataset.createdBy == ALICE.principal


def test_changed_content_under_the_same_name_is_a_new_version(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    v1 = service.register_dataset(dataset_request(add_artifact(repo, b"rows-1")), ALICE).dataset
    v2 = service.register_dataset(dataset_request(add_artifact(repo, b"rows-2")), ALICE).dataset
    assert (v1.version, v2.version) == (1, 2)
    assert v1.datasetId != v2.datasetId


def test_same_content_with_different_metadata_conflicts(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    artifact = add_artifact(repo, b"rows")
    service.register_dataset(dataset_request(artifact), ALICE)
    with pytest.raises(Conflict):
        service.register_dataset(dataset_request(artifact, license="MIT"), ALICE)


def test_pii_is_registered_only_from_escrow_and_escrow_only_holds_pii(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    with pytest.raises(PiiNotEscrowed, match="escrow"):
        service.register_dataset(
            dataset_request(add_artifact(repo, b"rows"), piiFlags=["email"]), ALICE
        )
    raw = add_artifact(repo, b"raw rows", "escrow")
    with pytest.raises(ValidationFailed, match="piiFlags"):
        service.register_dataset(dataset_request(raw), ALICE)
    dataset = service.register_dataset(dataset_request(raw, piiFlags=["email"]), ALICE).dataset
    assert dataset.escrowed and dataset.storage == "escrow"


def test_declared_checksum_must_match_the_uploaded_content(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    artifact = add_artifact(repo, b"rows")
    with pytest.raises(DigestMismatch):
        service.register_dataset(dataset_request(artifact, checksum="0" * 64), ALICE)


def test_unknown_artifact_or_upstream_dataset_is_a_reference_error_and_writes_nothing(
    registry,
) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    artifact = add_artifact(repo, b"rows")
    with pytest.raises(ReferenceNotFound):
        service.register_dataset(dataset_request(artifact, artifactId="art-" + "1" * 32), ALICE)
    with pytest.raises(ReferenceNotFound, match="ds-"):
        service.register_dataset(dataset_request(artifact, sourceRefs=["ds-" + "2" * 24]), ALICE)
    assert not repo.datasets and not repo.nodes


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("license", "Not A Licence"),
        ("sourceRefs", ["no-scheme"]),
        ("sourceRefs", ["mdl-" + "0" * 24]),
        ("piiFlags", ["tattoos"]),
    ],
)
def test_invalid_dataset_fields_are_rejected_by_the_contract(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        RegisterDatasetRequest.model_validate(
            {"name": "x", "artifactId": "art-" + "0" * 32, "license": "MIT", field: value}
        )


def model_request(artifact: Artifact, **overrides: Any) -> RegisterModelRequest:
    fields: dict[str, Any] = {
        "family": "iris-clf",
        "version": "1.0.0",
        "artifactId": artifact.artifactId,
        "codeRef": "git+repo@abc",
    }
    return RegisterModelRequest.model_validate({**fields, **overrides})


def test_model_versions_are_immutable_but_identical_retries_succeed(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    artifact = add_artifact(repo, b"weights")
    first = service.register_model(model_request(artifact, metrics={"accuracy": 0.9}), ALICE)
    retry = service.register_model(model_request(artifact, metrics={"accuracy": 0.9}), ALICE)
    assert first.created and not retry.created and retry.model == first.model
    assert first.model.status is ModelStatus.DRAFT and first.model.signature == ""
    with pytest.raises(Conflict):
        service.register_model(model_request(artifact, metrics={"accuracy": 0.99}), ALICE)


def test_model_version_must_be_semver() -> None:
    with pytest.raises(ValueError, match="version"):
        RegisterModelRequest.model_validate(
            {"family": "f", "version": "v1", "artifactId": "art-" + "0" * 32, "codeRef": "c"}
        )


def test_lineage_returns_every_ancestor_with_round_trips_proportional_to_depth(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    # a wide graph: 5 parent models each trained on 30 of 150 datasets from 150 sources
    raws = [
        service.register_dataset(
            dataset_request(
                add_artifact(repo, f"raw-{i}".encode()),
                name=f"raw-{i}",
                sourceRefs=[f"s3://lake/raw/{i}"],
            ),
            ALICE,
        ).dataset
        for i in range(150)
    ]
    parents = [
        service.register_model(
            model_request(
                add_artifact(repo, f"p{i}".encode()),
                family=f"base-{i}",
                lineage=ModelLineage(
                    datasets=tuple(d.datasetId for d in raws[i * 30 : (i + 1) * 30])
                ),
            ),
            ALICE,
        ).model
        for i in range(5)
    ]
    child = service.register_model(
        model_request(
            add_artifact(repo, b"child"),
            lineage=ModelLineage(parentModels=tuple(p.modelId for p in parents)),
        ),
        ALICE,
    ).model
    repo.node_reads = 0
    graph = LineageService(repo).ancestors(child.modelId)
    # child -> 5 parent models -> 150 datasets -> 150 external sources
    assert len(graph.nodes) == 1 + 5 + 150 + 150
    assert graph.depth == 3
    assert graph.roundTrips == repo.node_reads == 1 + 1 + 2 + 2
    assert {e.parent for e in graph.edges if e.child == child.modelId} == {
        p.modelId for p in parents
    }


def test_openlineage_export_carries_digest_licence_and_pii_facets(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    ds = service.register_dataset(
        dataset_request(add_artifact(repo, b"rows", "escrow"), piiFlags=[PiiFlag.EMAIL]), ALICE
    ).dataset
    model = service.register_model(
        model_request(add_artifact(repo, b"w"), lineage=ModelLineage(datasets=(ds.datasetId,))),
        ALICE,
    ).model
    events = LineageService(repo).openlineage(model.modelId).events
    by_output = {e["outputs"][0]["name"]: e for e in events}
    train = by_output[f"model:{model.modelId}"]
    assert train["eventType"] == "COMPLETE" and train["job"]["name"] == "train:iris-clf@1.0.0"
    dataset_facets = train["inputs"][0]["facets"]
    assert dataset_facets["illuvrse_contentDigest"]["rootDigest"] == ds.checksum
    assert dataset_facets["illuvrse_license"]["spdxExpression"] == "BSD-3-Clause"
    assert dataset_facets["illuvrse_pii"] == {
        **dataset_facets["illuvrse_pii"],
        "containsPii": True,
        "flags": ["email"],
    }
    assert all("_producer" in f and "_schemaURL" in f for f in dataset_facets.values())
    derive = by_output[f"dataset:{ds.datasetId}"]
    assert derive["inputs"][0]["namespace"] == "sklearn"


def test_page_limits_outside_1_to_100_are_rejected(registry) -> None:  # type: ignore[no-untyped-def]
    service, _ = registry
    with pytest.raises(ValidationFailed):
        service.list_models(None, None, 0, None)


def test_family_prefix_search_finds_every_family_starting_with_it(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    for family in ("iris-clf", "iris-reg", "mnist-cnn"):
        service.register_model(
            model_request(add_artifact(repo, family.encode()), family=family), ALICE
        )
    found = service.list_models(None, None, 10, None, family_prefix="iris-")
    assert [m.family for m in found.items] == ["iris-clf", "iris-reg"]
    with pytest.raises(ValidationFailed, match="not both"):
        service.list_models("iris-clf", None, 10, None, family_prefix="iris")


def test_consumers_are_what_was_derived_directly_from_a_node(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    ds = service.register_dataset(dataset_request(add_artifact(repo, b"rows")), ALICE).dataset
    base = service.register_model(
        model_request(add_artifact(repo, b"w1"), lineage=ModelLineage(datasets=(ds.datasetId,))),
        ALICE,
    ).model
    tuned = service.register_model(
        model_request(
            add_artifact(repo, b"w2"),
            version="1.1.0",
            lineage=ModelLineage(parentModels=(base.modelId,)),
        ),
        ALICE,
    ).model
    lineage = LineageService(repo)
    assert [n.nodeId for n in lineage.consumers(ds.datasetId).consumers] == [base.modelId]
    assert [n.nodeId for n in lineage.consumers(base.modelId).consumers] == [tuned.modelId]
    assert lineage.consumers(tuned.modelId).consumers == []


def test_registration_needs_a_role_that_grants_it_and_writes_nothing_otherwise(registry) -> None:  # type: ignore[no-untyped-def]
    service, repo = registry
    artifact = add_artifact(repo, b"rows")
    approver = Caller("arn:aws:iam::123456789012:user/ann", frozenset({Role.APPROVER}))
    nobody = Caller("arn:aws:iam::123456789012:user/eve", frozenset())
    for caller in (approver, nobody):
        with pytest.raises(Forbidden, match="register needs one of the roles"):
            service.register_dataset(dataset_request(artifact), caller)
        with pytest.raises(Forbidden):
            service.register_model(model_request(artifact), caller)
    assert not repo.datasets and not repo.models and not repo.nodes
