"""Watermarks on the local cloud: training embeds one (seeded by KMS GenerateMac with the
watermark key), the model detail shows its record, and POST /models/{id}/watermark/verify
traces a suspect to its version or refuses it; every step is audited."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.domain import watermark
from modelops_cli import artifacts, training
from modelops_cli.client import ApiError, ModelOpsClient
from modelops_cli.demo import EXAMPLE, _write_iris, stratified_split
from modelops_cli.demo_watermark import run_watermark_flow
from modelops_cli.models import verify_watermark

pytestmark = pytest.mark.slow
FAMILY = "iris-watermark-it"


@pytest.fixture(scope="module")
def engineer(local_cloud: LocalCloud) -> ModelOpsClient:
    principal = local_cloud.principals["ml-engineer"]
    return ModelOpsClient(local_cloud.api_url, principal.session(local_cloud.region))


def _train(client: ModelOpsClient, version: str, dataset: str, source: str) -> str:
    job = client.submit_training(
        modelFamily=FAMILY,
        modelVersion=version,
        datasets=[{"datasetId": dataset}],
        code={"sourceArtifactId": source, "gitCommit": "uncommitted"},
        dependencyLockDigest=training.file_digest(training.DEFAULT_LOCK),
        seed=11,
        hyperparameters={"epochs": 4},
        compute={"instanceType": "ml.m5.large", "maxRuntimeSeconds": 300},
    )
    done = training.follow(client, job["jobId"], lambda _: None, timeout_s=180)
    assert done["status"] == "COMPLETED", done.get("failure")
    return str(done["modelId"])


@pytest.fixture(scope="module")
def trained(engineer: ModelOpsClient, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Two versions of the family, trained on the platform from the same data and seed."""
    base = tmp_path_factory.mktemp("iris-wm")
    split = stratified_split(_write_iris(base / "raw"), base / "split")
    dataset = engineer.register_dataset(
        name="iris-watermark-it",
        artifactId=engineer.upload_artifact(split, "iris-watermark-it")["artifactId"],
        license="CC-BY-4.0",
    )["dataset"]["datasetId"]
    source = engineer.upload_artifact(
        training.package_source(EXAMPLE, base / "source"), "iris-source"
    )["artifactId"]
    return [_train(engineer, version, dataset, source) for version in ("1.0.0", "1.1.0")]


def _model_json(client: ModelOpsClient, model_id: str, target: Path) -> bytes:
    artifact_id = client.get_model(model_id)["model"]["artifactId"]
    artifacts.download(client, artifact_id, target)
    return (target / "model.json").read_bytes()


def _events(client: ModelOpsClient, stream: str, action: str) -> list[dict[str, Any]]:
    """The events of ``stream``'s ledger with this action."""
    events: list[dict[str, Any]] = []
    from_seq: int | None = 1
    while from_seq is not None:
        page = client.call(
            "GET", "/audit/export", query={"stream": stream, "fromSeq": from_seq, "limit": 500}
        )
        for line in page["records"]:
            event = json.loads(json.loads(line)["body"])["event"]
            if event["action"] == action:
                events.append(event)
        from_seq = page.get("nextFromSeq")
    return events


def test_the_trained_model_carries_a_watermark_record_seeded_by_the_kms_key(
    local_cloud: LocalCloud, engineer: ModelOpsClient, trained: list[str], tmp_path: Path
) -> None:
    detail = engineer.get_model(trained[0])
    record = detail["watermark"]
    assert record["keyArn"] == local_cloud.key_arns[platform.WATERMARK_KEY.logical_id]
    assert record["message"] == f"modelops-watermark/1|{FAMILY}|1.0.0"
    assert (record["parameters"], record["totalBits"], record["threshold"]) == (15, 300, 215)
    data = _model_json(engineer, trained[0], tmp_path)
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    # Only the functions that mark and verify may GenerateMac with the key: anyone else
    # could compute a version's pattern, and so forge or strip its mark.
    with pytest.raises(ClientError, match="AccessDenied"):
        local_cloud.client("kms").generate_mac(
            KeyId=record["keyArn"], Message=record["message"].encode(), MacAlgorithm="HMAC_SHA_256"
        )
    answer = verify_watermark(engineer, trained[0], detail["model"]["artifactId"])
    assert (answer["matchedBits"], answer["source"]["modelId"]) == (300, trained[0])


def test_a_copy_is_traced_to_its_version_and_a_foreign_model_is_refused(
    engineer: ModelOpsClient, trained: list[str], tmp_path: Path
) -> None:
    data = _model_json(engineer, trained[1], tmp_path / "v11")
    copy = tmp_path / "copy" / "model.json"
    copy.parent.mkdir()
    copy.write_text(json.dumps(json.loads(data), indent=1, sort_keys=False))
    answer = verify_watermark(engineer, trained[0], str(copy))
    assert answer["matched"] is True
    assert answer["source"]["modelId"] == trained[1] and answer["source"]["version"] == "1.1.0"
    assert answer["comparedVersions"] == 2
    assert [c["matched"] for c in answer["candidates"]] == [False, True]

    foreign = tmp_path / "foreign" / "model.json"
    foreign.parent.mkdir()
    foreign.write_bytes(watermark.embed(data, b"\x07" * 32))
    refused = verify_watermark(engineer, trained[0], str(foreign))
    assert refused["matched"] is False and refused["source"] is None
    assert refused["matchedBits"] < refused["threshold"]


def test_the_demo_step_verifies_the_deployed_model_and_refuses_the_foreign_one(
    engineer: ModelOpsClient, trained: list[str], tmp_path: Path
) -> None:
    lines: list[str] = []
    result = run_watermark_flow(engineer, tmp_path, lines.append, model_id=trained[0])
    assert result["verified"]["matched"] and result["verified"]["source"]["version"] == "1.0.0"
    assert not result["foreign"]["matched"]
    assert any("not matched" in line for line in lines)


def test_verification_is_audited_and_needs_the_register_permission(
    local_cloud: LocalCloud, engineer: ModelOpsClient, trained: list[str], tmp_path: Path
) -> None:
    data = _model_json(engineer, trained[0], tmp_path / "v10")
    suspect = tmp_path / "suspect" / "model.json"
    suspect.parent.mkdir()
    suspect.write_bytes(data)
    artifact_id = engineer.upload_artifact(suspect, "suspect")["artifactId"]
    verify_watermark(engineer, trained[0], artifact_id)
    approver = ModelOpsClient(
        local_cloud.api_url, local_cloud.principals["approver"].session(local_cloud.region)
    )
    with pytest.raises(ApiError) as refused:
        verify_watermark(approver, trained[0], artifact_id)
    assert refused.value.status == 403

    verified = _events(engineer, "registry", "models.watermark.verify")
    assert {e["outcome"] for e in verified} >= {"SUCCEEDED", "REJECTED"}
    assert any(trained[0] in e["resources"] and artifact_id in e["resources"] for e in verified)
    embedded = _events(engineer, "training", "models.watermark.embed")
    assert {model for e in embedded for model in e["resources"]} >= set(trained)
