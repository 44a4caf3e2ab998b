"""The watermark service: embedding for a model version, its registry record, and which
registered version a suspect artifact came from (with in-memory fakes for the registry,
the blob store and KMS GenerateMac)."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import random
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from modelops.config import Settings
from modelops.contracts.registry import RegisterModelRequest
from modelops.contracts.watermark import VerifyWatermarkRequest, WatermarkRecord
from modelops.domain import watermark
from modelops.domain.access import Caller, Role
from modelops.domain.ledger import AuditEvent
from modelops.domain.manifest import FileEntry
from modelops.errors import Forbidden, NotWatermarked, ValidationFailed
from modelops.services.artifacts import ArtifactService, blob_key
from modelops.services.registry import RegistryService
from modelops.services.watermark import WatermarkService
from tests.unit.fakes import FixedClock, MemoryBlobStore, MemoryRegistry

KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/watermark"
OLD_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/watermark-before-rotation"
ALICE = Caller("arn:aws:iam::123456789012:user/alice", frozenset({Role.ML_ENGINEER}))
ANN = Caller("arn:aws:iam::123456789012:user/ann", frozenset({Role.APPROVER}))
FAMILY = "iris-softmax"


class MemoryWatermarks:
    def __init__(self) -> None:
        self.records: dict[str, WatermarkRecord] = {}

    def put_watermark(self, record: WatermarkRecord) -> None:
        self.records[record.modelId] = record

    def get_watermark(self, model_id: str) -> WatermarkRecord | None:
        return self.records.get(model_id)

    def watermarks_of(self, family: str) -> list[WatermarkRecord]:
        return [r for r in self.records.values() if r.family == family]


class MemoryKms:
    """HMAC_256 keys by ARN; counts GenerateMac calls."""

    def __init__(self) -> None:
        self.keys = {KEY_ARN: b"a" * 32, OLD_KEY_ARN: b"b" * 32}
        self.calls: list[str] = []

    def mac_for(self, key_arn: str) -> Callable[[bytes], bytes]:
        def mac(message: bytes) -> bytes:
            self.calls.append(key_arn)
            return hmac.new(self.keys[key_arn], message, hashlib.sha256).digest()

        return mac


def model_json(seed: int, features: int = 4, classes: int = 3) -> bytes:
    rng = random.Random(seed)
    return watermark.serialise(
        {
            "format": watermark.MODEL_FORMAT,
            "classes": [f"c{i}" for i in range(classes)],
            "features": [f"f{i}" for i in range(features)],
            "standardization": {"mean": [0.0] * features, "scale": [1.0] * features},
            "weights": [[rng.gauss(0, 1) for _ in range(classes)] for _ in range(features)],
            "bias": [rng.gauss(0, 1) for _ in range(classes)],
        }
    )


class Setup:
    def __init__(self, key_arn: str | None = KEY_ARN) -> None:
        self.repo = MemoryRegistry()
        self.blobs = MemoryBlobStore()
        self.clock = FixedClock()
        self.kms = MemoryKms()
        self.watermarks = MemoryWatermarks()
        self.audit: list[AuditEvent] = []
        self.artifacts = ArtifactService(
            self.repo, self.blobs, self.clock, Settings(region="us-east-1")
        )
        self.registry = RegistryService(self.repo, self.clock, lambda _: None)
        self.service = self.with_key(key_arn)

    def with_key(self, key_arn: str | None) -> WatermarkService:
        return WatermarkService(
            registry=self.repo,
            watermarks=self.watermarks,
            blobs=self.blobs,
            key_arn=key_arn,
            mac_for=self.kms.mac_for,
            audit=self.audit.append,
            clock=self.clock,
        )

    def upload(self, files: dict[str, bytes]) -> str:
        entries = []
        for path, data in files.items():
            sha = hashlib.sha256(data).hexdigest()
            self.blobs.put_bytes(blob_key(sha), data, "application/octet-stream")
            entries.append((FileEntry(path=path, size=len(data), sha256=sha), None))
        artifact = self.artifacts.record_files(
            "suspect", entries, principal=ALICE.principal, origin="upl-test"
        )
        return artifact.artifactId

    def train(
        self, tmp: Path, version: str, seed: int, service: WatermarkService | None = None
    ) -> tuple[str, bytes]:
        """What the training service does: mark, record the artifact, register, record."""
        root = tmp / version
        root.mkdir()
        (root / "model.json").write_bytes(model_json(seed))
        mark = (service or self.service).mark(root, FAMILY, version)
        assert mark is not None
        marked = (root / "model.json").read_bytes()
        artifact_id = self.upload({"model.json": marked})
        model = self.registry.record_model(
            RegisterModelRequest(
                family=FAMILY, version=version, artifactId=artifact_id, codeRef="git:x@y"
            ),
            ALICE.principal,
        ).model
        (service or self.service).record(
            mark,
            model_id=model.modelId,
            family=FAMILY,
            version=version,
            artifact_id=artifact_id,
            principal=ALICE.principal,
            correlation_id="corr-1",
        )
        return model.modelId, marked


def test_a_suspect_is_traced_to_the_version_it_came_from_among_all_of_the_family(
    tmp_path: Path,
) -> None:
    setup = Setup()
    first, _ = setup.train(tmp_path, "1.0.0", seed=1)
    second, marked = setup.train(tmp_path, "1.1.0", seed=1)  # same weights, another version
    setup.kms.calls.clear()
    reencoded = json.dumps(json.loads(marked), indent=2).encode()
    suspect = setup.upload({"copy/model.json": reencoded})

    answer = setup.service.verify(first, VerifyWatermarkRequest(artifactId=suspect), ALICE)

    assert answer.matched and answer.source is not None
    assert (answer.source.modelId, answer.source.version) == (second, "1.1.0")
    assert (answer.matchedBits, answer.totalBits, answer.threshold) == (300, 300, 215)
    assert answer.comparedVersions == 2 and len(setup.kms.calls) == 2
    assert answer.falseMatchProbability < 1e-80
    assert [c.matched for c in answer.candidates] == [False, True]


def test_an_unwatermarked_or_foreign_model_is_not_matched(tmp_path: Path) -> None:
    setup = Setup()
    model_id, _ = setup.train(tmp_path, "1.0.0", seed=1)
    plain = setup.upload({"model.json": model_json(1)})
    foreign = setup.upload(
        {"model.json": watermark.embed(model_json(1), b"another key's seed".ljust(32, b"."))}
    )
    for suspect in (plain, foreign):
        answer = setup.service.verify(model_id, VerifyWatermarkRequest(artifactId=suspect), ALICE)
        assert not answer.matched and answer.source is None
        assert answer.matchedBits < answer.threshold


def test_each_version_is_checked_with_the_key_its_record_names(tmp_path: Path) -> None:
    setup = Setup()
    old, marked = setup.train(tmp_path, "1.0.0", seed=3, service=setup.with_key(OLD_KEY_ARN))
    setup.train(tmp_path, "2.0.0", seed=4)
    suspect = setup.upload({"model.json": marked})
    answer = setup.service.verify(old, VerifyWatermarkRequest(artifactId=suspect), ALICE)
    assert answer.matched and answer.source is not None and answer.source.modelId == old
    assert setup.watermarks.records[old].keyArn == OLD_KEY_ARN


def test_a_suspect_in_a_model_tar_gz_is_read_from_the_archive(tmp_path: Path) -> None:
    setup = Setup()
    model_id, marked = setup.train(tmp_path, "1.0.0", seed=1)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("model.json")
        info.size = len(marked)
        archive.addfile(info, io.BytesIO(marked))
    suspect = setup.upload({"model.tar.gz": gzip.compress(buffer.getvalue())})
    answer = setup.service.verify(model_id, VerifyWatermarkRequest(artifactId=suspect), ALICE)
    assert answer.matched and answer.suspect.path == "model.tar.gz!model.json"


def test_a_suspect_of_another_shape_is_compared_without_any_kms_call(tmp_path: Path) -> None:
    setup = Setup()
    model_id, _ = setup.train(tmp_path, "1.0.0", seed=1)
    setup.kms.calls.clear()
    suspect = setup.upload({"model.json": model_json(1, features=5)})
    answer = setup.service.verify(model_id, VerifyWatermarkRequest(artifactId=suspect), ALICE)
    assert not answer.matched and answer.totalBits == 0 and setup.kms.calls == []


def test_verification_needs_the_register_permission_and_a_watermarked_family(
    tmp_path: Path,
) -> None:
    setup = Setup()
    model_id, marked = setup.train(tmp_path, "1.0.0", seed=1)
    suspect = setup.upload({"model.json": marked})
    with pytest.raises(Forbidden):
        setup.service.verify(model_id, VerifyWatermarkRequest(artifactId=suspect), ANN)
    setup.watermarks.records.clear()
    with pytest.raises(NotWatermarked):
        setup.service.verify(model_id, VerifyWatermarkRequest(artifactId=suspect), ALICE)


def test_a_suspect_without_a_model_of_the_format_is_refused(tmp_path: Path) -> None:
    setup = Setup()
    model_id, _ = setup.train(tmp_path, "1.0.0", seed=1)
    for files in ({"weights.bin": b"\x00" * 8}, {"model.json": b'{"format": "other/1"}'}):
        suspect = setup.upload(files)
        with pytest.raises(ValidationFailed):
            setup.service.verify(model_id, VerifyWatermarkRequest(artifactId=suspect), ALICE)


def test_embedding_and_its_record_are_audited_and_describe_the_mark(tmp_path: Path) -> None:
    setup = Setup()
    model_id, marked = setup.train(tmp_path, "1.0.0", seed=1)
    record = setup.service.get(model_id)
    assert record is not None
    assert record.message == f"modelops-watermark/1|{FAMILY}|1.0.0"
    assert (record.keyArn, record.lowBits, record.parameters) == (KEY_ARN, 20, 15)
    assert record.sha256 == hashlib.sha256(marked).hexdigest()
    assert [e.action for e in setup.audit] == ["models.watermark.embed"]
    assert set(setup.audit[0].resources) == {model_id, record.artifactId}


def test_without_a_key_or_for_another_model_kind_nothing_is_marked(tmp_path: Path) -> None:
    setup = Setup()
    (tmp_path / "model.json").write_bytes(b'{"format": "other/1"}')
    assert setup.service.mark(tmp_path, FAMILY, "1.0.0") is None
    assert (tmp_path / "model.json").read_bytes() == b'{"format": "other/1"}'
    (tmp_path / "model.json").write_bytes(model_json(1))
    assert setup.with_key(None).mark(tmp_path, FAMILY, "1.0.0") is None
    assert (tmp_path / "model.json").read_bytes() == model_json(1)
    assert setup.kms.calls == []
