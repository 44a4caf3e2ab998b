"""Retention on the local cloud, over signed HTTP: a trained job's checkpoints expire (the
demo's flow), their objects are gone, downloads answer 410 GONE, and the tombstone proof
verifies offline; legal holds block expiry; the scheduled function runs the same job."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.domain.training import checkpoint_prefix
from modelops_cli import training
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import EXAMPLE, _write_iris, stratified_split
from modelops_cli.demo_retention import run_retention_flow

pytestmark = pytest.mark.slow


def _client(cloud: LocalCloud, name: str) -> ModelOpsClient:
    return ModelOpsClient(cloud.api_url, cloud.principals[name].session(cloud.region))


@pytest.fixture(scope="module")
def clients(local_cloud: LocalCloud) -> dict[str, ModelOpsClient]:
    return {n: _client(local_cloud, n) for n in ("ml-engineer", "platform-admin", "approver")}


@pytest.fixture(scope="module")
def trained(clients: dict[str, ModelOpsClient], tmp_path_factory: pytest.TempPathFactory) -> Any:
    engineer = clients["ml-engineer"]
    base = tmp_path_factory.mktemp("retention")
    split = stratified_split(_write_iris(base / "raw"), base / "split")
    artifact = engineer.upload_artifact(split, "iris-retention-it")
    dataset = engineer.register_dataset(
        name="iris-retention-it", artifactId=artifact["artifactId"], license="CC-BY-4.0"
    )["dataset"]
    source = training.package_source(EXAMPLE, base / "source")
    job = engineer.submit_training(
        modelFamily="iris-retention-it",
        modelVersion="1.0.0",
        datasets=[{"datasetId": dataset["datasetId"]}],
        code={
            "sourceArtifactId": engineer.upload_artifact(source, "iris-source")["artifactId"],
            "gitCommit": "uncommitted",
        },
        dependencyLockDigest=training.file_digest(training.DEFAULT_LOCK),
        seed=5,
        hyperparameters={"epochs": 4},
        compute={"instanceType": "ml.m5.large", "maxRuntimeSeconds": 300},
    )
    done = training.follow(engineer, job["jobId"], lambda _: None, timeout_s=180)
    assert done["status"] == "COMPLETED", done.get("failure")
    return done


def _versions(cloud: LocalCloud, prefix: str) -> list[dict[str, Any]]:
    listed = cloud.client("s3").list_object_versions(
        Bucket=cloud.names[platform.ARTIFACT_BUCKET.logical_id], Prefix=prefix
    )
    return [*listed.get("Versions", []), *listed.get("DeleteMarkers", [])]


def test_expired_checkpoints_are_deleted_answer_gone_and_their_tombstone_verifies_offline(
    local_cloud: LocalCloud,
    clients: dict[str, ModelOpsClient],
    trained: dict[str, Any],
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    assert _versions(local_cloud, checkpoint_prefix(trained["trainingJobName"]))

    result = run_retention_flow(
        clients["platform-admin"], clients["ml-engineer"], trained, tmp_path, lines.append
    )

    assert result["downloadStatus"] == 410
    assert result["verified"] and result["tamperedRejected"], "\n".join(lines)
    assert _versions(local_cloud, checkpoint_prefix(trained["trainingJobName"])) == []
    tomb = json.loads(result["proof"].read_text())["tombstone"]
    for key in tomb["deletedKeys"]:
        assert _versions(local_cloud, key) == [], key
    detail = clients["ml-engineer"].get_artifact(result["artifactId"])
    assert detail["retention"]["tombstoneId"] == result["tombstoneId"]
    # The model trained alongside keeps every file.
    model = clients["ml-engineer"].get_artifact(
        next(r["artifactId"] for r in trained["artifactRefs"] if r["kind"] == "model"),
        download=True,
    )
    assert model["downloads"]


def test_the_ledger_still_verifies_with_the_retention_stream(
    clients: dict[str, ModelOpsClient], trained: dict[str, Any], tmp_path: Path
) -> None:
    report = clients["ml-engineer"].call("GET", "/audit/verify", query={"stream": "retention"})
    assert report["report"]["ok"] and report["report"]["recordsChecked"] >= 1


def _short_lived_dataset(engineer: ModelOpsClient, directory: Path, name: str) -> dict[str, Any]:
    directory.mkdir()
    (directory / "rows.csv").write_text(f"a,b\n1,{name}\n")
    artifact = engineer.upload_artifact(directory, name)
    return dict(
        engineer.register_dataset(
            name=name,
            artifactId=artifact["artifactId"],
            license="CC-BY-4.0",
            usageRestrictions={"retentionDays": 1},
        )["dataset"]
    )


def test_a_legal_hold_blocks_a_datasets_expiry_until_it_is_released(
    clients: dict[str, ModelOpsClient], tmp_path: Path
) -> None:
    engineer, admin, approver = (
        clients["ml-engineer"],
        clients["platform-admin"],
        clients["approver"],
    )
    data = _short_lived_dataset(engineer, tmp_path / "held", "held-retention-it")
    hold_path = f"/legal-holds/dataset/{data['datasetId']}"
    as_of = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    run = {"classes": ["datasets"], "datasetIds": [data["datasetId"]], "asOf": as_of}

    refused, _ = engineer.request("PUT", hold_path, {"reason": "litigation 7"})
    no_reason, _ = approver.request("PUT", hold_path, {})
    approver.call("PUT", hold_path, {"reason": "litigation 7"})
    held = admin.call("POST", "/retention/run", run)["outcomes"]
    assert (refused, no_reason) == (403, 400)
    assert [o["action"] for o in held] == ["held"]
    assert engineer.get_artifact(data["artifactId"], download=True)["downloads"]

    status, _ = approver.request("DELETE", hold_path)
    expired = admin.call("POST", "/retention/run", run)["outcomes"]
    gone, body = engineer.request(
        "GET", f"/artifact/{data['artifactId']}", query={"download": "true"}
    )

    assert status == 204
    assert [o["action"] for o in expired] == ["expired"]
    assert (gone, body["error"]["code"]) == (410, "GONE")


def test_only_platform_admins_run_retention_on_request(clients: dict[str, ModelOpsClient]) -> None:
    status, body = clients["ml-engineer"].request("POST", "/retention/run", {})
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")


def test_the_scheduled_function_expires_what_is_due_now(
    local_cloud: LocalCloud, clients: dict[str, ModelOpsClient], tmp_path: Path
) -> None:
    result = local_cloud.client("lambda").invoke(
        FunctionName=platform.RETENTION_RUN.name, Payload=b"{}"
    )
    report = json.loads(result["Payload"].read())

    assert "FunctionError" not in result, report
    assert set(report) >= {"asOf", "outcomes", "expired"}
