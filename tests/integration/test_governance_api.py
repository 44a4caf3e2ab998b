"""Dataset governance over signed HTTP on the local cloud: raw PII into escrow, refusals
that name dataset, restriction and policy, sanitization by the sanitizer function, and
restrictions inherited by what is trained on the derivative."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from examples.governance.growers import DEMO_SANITIZE_CONFIG, growers_csv
from localcloud.cloud import LocalCloud
from modelops import platform
from modelops_cli import training
from modelops_cli.cli import wait_for
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import EXAMPLE

pytestmark = pytest.mark.slow


def _client(cloud: LocalCloud, name: str) -> ModelOpsClient:
    return ModelOpsClient(cloud.api_url, cloud.principals[name].session(cloud.region))


@pytest.fixture(scope="module")
def engineer(local_cloud: LocalCloud) -> ModelOpsClient:
    return _client(local_cloud, "ml-engineer")


@pytest.fixture(scope="module")
def raw(engineer: ModelOpsClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("growers")
    (directory / "growers.csv").write_bytes(growers_csv(11))
    artifact = engineer.upload_artifact(directory, "growers-raw-it", escrow=True)
    return dict(
        engineer.register_dataset(
            name=f"growers-raw-{uuid.uuid4().hex[:6]}",
            artifactId=artifact["artifactId"],
            license="CC-BY-NC-4.0",
            piiFlags=["name", "email", "demographic", "location"],
            usageRestrictions={"exportRegions": ["eu"], "retentionDays": 30},
        )["dataset"]
    )


@pytest.fixture(scope="module")
def source(engineer: ModelOpsClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    packed = training.package_source(EXAMPLE, tmp_path_factory.mktemp("source"))
    return {
        "artifactId": engineer.upload_artifact(packed, "iris-source")["artifactId"],
        "lock": training.file_digest(training.DEFAULT_LOCK),
    }


def _job(source: dict[str, str], dataset_id: str) -> dict[str, Any]:
    return {
        "modelFamily": "growers-it",
        "modelVersion": f"1.0.0-it.{uuid.uuid4().hex[:8]}",
        "datasets": [{"datasetId": dataset_id}],
        "code": {"sourceArtifactId": source["artifactId"], "gitCommit": "uncommitted"},
        "dependencyLockDigest": source["lock"],
        "seed": 1,
        "hyperparameters": {
            "epochs": 4,
            "exclude_columns": "grower_name,grower_email,postcode",
        },
        "compute": {"instanceType": "ml.m5.large", "maxRuntimeSeconds": 300},
    }


def test_raw_pii_is_escrowed_never_downloadable_and_pii_outside_escrow_is_refused(
    engineer: ModelOpsClient, raw: dict[str, Any], tmp_path: Path
) -> None:
    assert raw["storage"] == "escrow"
    status, body = engineer.request(
        "GET", f"/artifact/{raw['artifactId']}", query={"download": "true"}
    )
    assert (status, body["error"]["code"]) == (403, "ESCROWED")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "rows.csv").write_text("email,x\na@example.org,1\n")
    plain = engineer.upload_artifact(tmp_path / "plain", "plain-rows")
    status, body = engineer.request(
        "POST",
        "/dataset/register",
        {"name": "plain-pii", "artifactId": plain["artifactId"], "license": "MIT",
         "piiFlags": ["email"]},
    )  # fmt: skip
    assert (status, body["error"]["code"]) == (400, "PII_NOT_ESCROWED")


def test_an_escrow_upload_whose_bytes_differ_from_the_declared_sha256_is_refused_by_s3(
    engineer: ModelOpsClient,
) -> None:
    data = b"name,email\nAda,ada@example.org\n"
    started = engineer.call(
        "POST",
        "/artifact/upload",
        {
            "name": "tampered",
            "files": [
                {"path": "p.csv", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            ],
            "escrow": True,
        },
    )
    target = started["targets"][0]
    tampered = data.replace(b"Ada", b"Eve")
    with pytest.raises(Exception, match="BadDigest"):
        engineer.put_presigned(target["url"], tampered, len(tampered), target["headers"])
    status, body = engineer.request(
        "POST", f"/artifact/upload/{started['uploadId']}/complete", {"parts": {}}
    )
    assert (status, body["error"]["code"]) == (409, "UPLOAD_NOT_COMPLETE")


def test_sanitizing_through_the_api_registers_a_derivative_that_inherits_restrictions(
    engineer: ModelOpsClient, raw: dict[str, Any], source: dict[str, str]
) -> None:
    name = f"growers-clean-{uuid.uuid4().hex[:6]}"
    request = {"name": name, "config": DEMO_SANITIZE_CONFIG}
    status, run = engineer.request("POST", f"/dataset/{raw['datasetId']}/sanitize", request)
    assert status == 202 and run["status"] == "PENDING"
    again_status, again = engineer.request("POST", f"/dataset/{raw['datasetId']}/sanitize", request)
    assert again_status == 200 and again["runId"] == run["runId"]
    path = f"/dataset/{raw['datasetId']}/sanitizations/{run['runId']}"
    done = wait_for(lambda: engineer.call("GET", path), lambda r: r["status"] != "PENDING", 60)
    assert done["status"] == "COMPLETED", done.get("failure")
    derived = engineer.get_dataset(done["derivedDatasetId"])
    assert derived["storage"] == "standard" and derived["sourceRefs"] == [raw["datasetId"]]
    assert derived["license"] == "CC-BY-NC-4.0" and derived["piiFlags"] == []
    # The derivative is downloadable, and holds no raw e-mail address.
    files = engineer.get_artifact(derived["artifactId"], download=True)["downloads"]
    content = requests.get(files["growers.csv"], timeout=10).content
    assert b"@example" not in content and b"grower_name" not in content
    limits = engineer.call("GET", f"/dataset/{derived['datasetId']}/restrictions")
    assert limits["exportRegions"] == ["eu"] and not limits["commercialUse"]
    forbidding = {s["datasetId"] for s in limits["commercialUseForbiddenBy"]}
    assert forbidding == {raw["datasetId"], derived["datasetId"]}  # the licence is inherited
    # Training the derivative here (us-east-1) is outside the raw data's regions.
    status, body = engineer.request("POST", "/train/jobs", _job(source, derived["datasetId"]))
    assert (status, body["error"]["code"]) == (403, "POLICY_DENIED")
    denials = {
        (d["datasetId"], d["policyId"], d["restriction"], tuple(d["value"]))
        for d in body["error"]["details"]
    }  # the raw dataset's restriction, and the derivative's, which inherited it
    assert denials == {
        (dataset_id, "dataset.export-region", "exportRegions", ("eu",))
        for dataset_id in (raw["datasetId"], derived["datasetId"])
    }


def test_raw_pii_trains_only_with_an_approval_for_the_purpose_and_then_in_place(
    local_cloud: LocalCloud, engineer: ModelOpsClient, source: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "growers.csv").write_bytes(growers_csv(12))
    artifact = engineer.upload_artifact(tmp_path / "raw", "growers-approved", escrow=True)
    raw_id = engineer.register_dataset(
        name=f"growers-approved-{uuid.uuid4().hex[:6]}",
        artifactId=artifact["artifactId"],
        license="CC-BY-4.0",
        piiFlags=["name", "email"],
    )["dataset"]["datasetId"]
    job = _job(source, raw_id)
    status, body = engineer.request("POST", "/train/jobs", job)
    assert (status, body["error"]["code"]) == (403, "POLICY_DENIED")
    assert body["error"]["details"][0]["policyId"] == "dataset.pii-not-approved"
    approver = _client(local_cloud, "approver")
    approver.call(
        "POST", f"/dataset/{raw_id}/approve", {"purposes": ["evaluation"], "validDays": 1}
    )
    assert engineer.request("POST", "/train/jobs", job)[0] == 403  # not for training
    approver.call("POST", f"/dataset/{raw_id}/approve", {"purposes": ["training"], "validDays": 1})
    submitted = engineer.submit_training(**job)
    assert submitted["datasetRefs"][0]["s3Uri"].startswith("escrow://raw/")
    done = training.follow(engineer, submitted["jobId"], lambda _: None, timeout_s=180)
    assert done["status"] == "COMPLETED", done.get("failure")
    described = local_cloud.client("sagemaker").describe_training_job(
        TrainingJobName=done["trainingJobName"]
    )
    assert described["RoleArn"] == local_cloud.names[platform.RAW_PII_JOB_ROLE.logical_id]
    channel = described["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"]
    assert channel.startswith(f"s3://{local_cloud.names[platform.ESCROW_BUCKET.logical_id]}/")
