"""Raw PII goes to escrow and only sanitized derivatives, registered with lineage, leave it."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from typing import Any

import pytest

from examples.governance.growers import DEMO_SANITIZE_CONFIG, growers_csv
from modelops.adapters.cedar_policy import CedarPolicyEngine
from modelops.config import Settings
from modelops.contracts.registry import (
    CompleteUploadRequest,
    RegisterDatasetRequest,
    StartUploadRequest,
)
from modelops.domain.access import Caller, Role
from modelops.domain.entities import PiiFlag
from modelops.domain.governance import SanitizeRequest
from modelops.domain.ledger import AuditEvent
from modelops.domain.manifest import FileEntry
from modelops.domain.sanitize import code_checksum
from modelops.errors import Escrowed, PolicyDenied, UploadNotComplete, ValidationFailed
from modelops.services.artifacts import ArtifactService, blob_key
from modelops.services.governance import Governance, Use
from modelops.services.lineage import LineageService
from modelops.services.registry import RegistryService
from modelops.services.sanitization import SanitizationService
from tests.unit.fakes import (
    FakeInvoker,
    FixedClock,
    MemoryBlobStore,
    MemoryPlatform,
    MemoryPublisher,
)

ENGINEER = Caller("arn:aws:iam::123456789012:user/eng", frozenset({Role.ML_ENGINEER}))
KEY = b"pseudonym-root-key-held-by-kms"


class Setup:
    def __init__(self) -> None:
        self.repo = MemoryPlatform()
        self.clock = FixedClock()
        self.blobs = MemoryBlobStore()
        self.escrow = MemoryBlobStore()
        self.invoker = FakeInvoker()
        self.audit: list[AuditEvent] = []
        self.macs: list[bytes] = []
        self.publisher = MemoryPublisher()
        self.registry = RegistryService(self.repo, self.clock, self.publisher)
        settings = Settings(region="us-east-1")
        self.artifacts = ArtifactService(
            self.repo, self.blobs, self.clock, settings, escrow=self.escrow
        )
        self.service = SanitizationService(
            registry=self.repo,
            runs=self.repo,
            registry_service=self.registry,
            artifacts=self.artifacts,
            blobs=self.blobs,
            escrow=self.escrow,
            mac=self.mac,
            invoker=self.invoker,
            audit=self.audit.append,
            clock=self.clock,
        )

    def mac(self, message: bytes) -> bytes:
        self.macs.append(message)
        return hmac.new(KEY, message, hashlib.sha256).digest()

    def upload(self, files: dict[str, bytes], escrow: bool = True) -> str:
        entries = [
            FileEntry(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())
            for path, data in files.items()
        ]
        started = self.artifacts.start_upload(
            StartUploadRequest(name="growers", files=entries, escrow=escrow), ENGINEER
        )
        session = self.repo.get_upload(started.uploadId)
        assert session is not None
        for part in session.parts:
            if escrow:
                self.escrow.put_declared(part.s3Key, files[part.file])
            else:
                self.blobs.put(part.s3Key, files[part.file])
        artifact = self.artifacts.complete_upload(
            started.uploadId, CompleteUploadRequest(), ENGINEER
        )
        return artifact.artifactId

    def raw_dataset(self, data: bytes | None = None, **fields: Any) -> str:
        artifact_id = self.upload({"growers.csv": data or growers_csv()})
        request = RegisterDatasetRequest.model_validate(
            {
                "name": "growers-raw",
                "artifactId": artifact_id,
                "license": "CC-BY-4.0",
                "piiFlags": ["name", "email", "demographic", "location"],
                "usageRestrictions": {
                    "exportRegions": ["us", "eu"],
                    "permittedPurposes": ["training", "evaluation", "inference"],
                },
                **fields,
            }
        )
        return self.registry.register_dataset(request, ENGINEER).dataset.datasetId

    def sanitize(self, dataset_id: str, name: str = "growers-clean") -> Any:
        request = SanitizeRequest.model_validate({"name": name, "config": DEMO_SANITIZE_CONFIG})
        run, created = self.service.request(dataset_id, request, ENGINEER, "corr-1")
        return run, created


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_raw_pii_uploads_land_in_escrow_under_a_signed_checksum_and_never_download(
    setup: Setup,
) -> None:
    data = growers_csv()
    started = setup.artifacts.start_upload(
        StartUploadRequest(
            name="growers",
            files=[
                FileEntry(path="g.csv", size=len(data), sha256=hashlib.sha256(data).hexdigest())
            ],
            escrow=True,
        ),
        ENGINEER,
    )
    target = started.targets[0]
    assert target.headers["x-amz-checksum-sha256"]  # the PUT must carry the declared SHA-256
    with pytest.raises(UploadNotComplete):
        setup.artifacts.complete_upload(started.uploadId, CompleteUploadRequest(), ENGINEER)
    session = setup.repo.get_upload(started.uploadId)
    assert session is not None and session.parts[0].s3Key.startswith("raw/art-")
    with pytest.raises(ValueError, match="BadDigest"):  # S3 refuses other bytes
        setup.escrow.put_declared(session.parts[0].s3Key, data + b"tampered")
    setup.escrow.put_declared(session.parts[0].s3Key, data)
    artifact = setup.artifacts.complete_upload(started.uploadId, CompleteUploadRequest(), ENGINEER)
    assert artifact.storage == "escrow"
    assert setup.blobs.objects == {}  # nothing outside escrow
    with pytest.raises(Escrowed):
        setup.artifacts.get(artifact.artifactId, download=True)
    assert setup.artifacts.get(artifact.artifactId, download=False).artifact == artifact


def test_sanitizing_registers_a_derivative_with_lineage_licence_restrictions_and_code_digest(
    setup: Setup,
) -> None:
    raw_id = setup.raw_dataset()
    raw = setup.repo.get_dataset(raw_id)
    assert raw is not None
    run, created = setup.sanitize(raw_id)
    assert created and run.status == "PENDING"
    assert setup.invoker.invoked == [
        ("dataset-sanitizer", {"runId": run.runId, "correlationId": "corr-1"})
    ]
    again, created_again = setup.sanitize(raw_id)
    assert again.runId == run.runId and not created_again and len(setup.invoker.invoked) == 1

    done = setup.service.run(run.runId)
    assert done.status == "COMPLETED" and done.derivedDatasetId
    derived = setup.repo.get_dataset(done.derivedDatasetId)
    assert derived is not None and derived.storage == "standard"
    assert derived.sourceRefs == (raw_id,)
    assert setup.repo.nodes[derived.datasetId].parents == (raw_id,)
    assert derived.license == raw.license
    assert derived.usageRestrictions == raw.usageRestrictions
    assert derived.piiFlags == ()  # name dropped, e-mail pseudonymised, k=5 reached
    (step,) = derived.transformations
    assert step.checksum == code_checksum()
    assert step.params["rawChecksum"] == raw.checksum and step.params["kAchieved"] is True
    report = done.reports["growers.csv"]
    assert report.before.uniqueRows > 0 and report.after.minK >= 5
    # One key derivation per pseudonymised column, through the MAC (KMS) only.
    assert len(setup.macs) == 1
    # The raw content was never copied out of escrow.
    raw_sha = hashlib.sha256(growers_csv()).hexdigest()
    assert blob_key(raw_sha) not in setup.blobs.objects
    assert setup.service.run(run.runId) == done  # a retried invocation changes nothing
    assert [e.action for e in setup.audit] == ["dataset.sanitize.completed"]


def test_no_name_or_email_of_the_raw_data_reaches_the_derivative(setup: Setup) -> None:
    raw_id = setup.raw_dataset()
    run, _ = setup.sanitize(raw_id)
    done = setup.service.run(run.runId)
    derived = setup.repo.get_dataset(str(done.derivedDatasetId))
    assert derived is not None
    artifact = setup.repo.get_artifact(derived.artifactId)
    assert artifact is not None
    output = setup.blobs.objects[blob_key(artifact.files[0].sha256)]
    rows = list(csv.DictReader(io.StringIO(growers_csv().decode())))
    for row in rows:
        assert row["grower_email"].encode() not in output
        assert row["grower_name"].encode() not in output
    assert b"grower_name" not in output.splitlines()[0]


def test_only_escrowed_datasets_are_sanitized(setup: Setup) -> None:
    plain = setup.upload({"rows.csv": b"a,b\n1,2\n"}, escrow=False)
    dataset_id = setup.registry.register_dataset(
        RegisterDatasetRequest(name="plain", artifactId=plain, license="MIT"), ENGINEER
    ).dataset.datasetId
    with pytest.raises(ValidationFailed, match="not raw personal data in escrow"):
        setup.sanitize(dataset_id)


def test_a_config_that_misses_a_column_fails_the_run_and_registers_nothing(
    setup: Setup,
) -> None:
    raw_id = setup.raw_dataset(data=b"grower_name,extra,species\nAda,1,setosa\n")
    run, _ = setup.sanitize(raw_id)
    done = setup.service.run(run.runId)
    assert done.status == "FAILED" and "extra" in str(done.failure)
    assert done.derivedDatasetId is None
    assert [d.name for d in setup.repo.datasets.values()] == ["growers-raw"]
    assert setup.audit[-1].action == "dataset.sanitize.failed"


def test_remaining_flags_follow_the_derivative_when_k_is_not_reached(setup: Setup) -> None:
    raw_id = setup.raw_dataset()
    config = {**DEMO_SANITIZE_CONFIG, "kTarget": 1000, "suppressBelowK": False}
    request = SanitizeRequest.model_validate({"name": "growers-weak", "config": config})
    run, _ = setup.service.request(raw_id, request, ENGINEER, "corr-2")
    done = setup.service.run(run.runId)
    assert done.status == "COMPLETED"
    assert set(done.remainingPiiFlags) == {PiiFlag.DEMOGRAPHIC, PiiFlag.LOCATION}
    derived = setup.repo.get_dataset(str(done.derivedDatasetId))
    assert derived is not None and set(derived.piiFlags) == set(done.remainingPiiFlags)


def test_the_raw_datasets_pii_stops_at_the_sanitized_derivative_its_licence_does_not(
    setup: Setup,
) -> None:
    raw_id = setup.raw_dataset()
    run, _ = setup.sanitize(raw_id)
    derived_id = str(setup.service.run(run.runId).derivedDatasetId)
    governance = Governance(
        setup.repo, LineageService(setup.repo), setup.repo, CedarPolicyEngine(), setup.clock
    )
    use = Use("train", "training", ENGINEER.principal, (), "growers", "low", "sandbox", "eu-west-1")
    with pytest.raises(PolicyDenied, match=r"dataset\.pii-not-approved"):
        governance.require(use, governance.lineage_datasets([raw_id]))
    seen = {d.datasetId: d for d in governance.lineage_datasets([derived_id])}
    assert seen[raw_id].piiFlags == () and seen[raw_id].license == "CC-BY-4.0"
    assert governance.require(use, list(seen.values())).allowed
    restricted = governance.restrictions(derived_id)
    assert restricted.piiFlags == () and restricted.exportRegions == ("eu", "us")
    outside = Use(
        "train", "training", ENGINEER.principal, (), "growers", "low", "sandbox", "ap-south-1"
    )
    with pytest.raises(PolicyDenied, match=r"dataset\.export-region"):
        governance.require(outside, list(seen.values()))
