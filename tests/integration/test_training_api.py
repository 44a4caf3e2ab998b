"""Training on the local cloud, end to end over signed HTTP: the state machine, the task
functions and real SageMaker training jobs running examples/iris_train."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.domain.signing import ManifestSignature, verify_statement
from modelops_cli import training
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import EXAMPLE, _write_iris, stratified_split

pytestmark = pytest.mark.slow
FAMILY = "iris-training-it"
_versions = iter(range(1, 1000))


@pytest.fixture(scope="module")
def engineer(local_cloud: LocalCloud) -> ModelOpsClient:
    principal = local_cloud.principals["ml-engineer"]
    return ModelOpsClient(local_cloud.api_url, principal.session(local_cloud.region))


def _dataset(client: ModelOpsClient, directory: Path, name: str, **fields: Any) -> str:
    artifact = client.upload_artifact(directory, name, escrow=bool(fields.get("piiFlags")))
    registered = client.register_dataset(
        name=name, artifactId=artifact["artifactId"], license="CC-BY-4.0", **fields
    )
    return str(registered["dataset"]["datasetId"])


@pytest.fixture(scope="module")
def iris(engineer: ModelOpsClient, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("iris")
    split = stratified_split(_write_iris(base / "raw"), base / "split")
    source = training.package_source(EXAMPLE, base / "source")
    return {
        "split": split,
        "datasetId": _dataset(engineer, split, "iris-train-it"),
        "source": engineer.upload_artifact(source, "iris-source")["artifactId"],
        "lock": training.file_digest(training.DEFAULT_LOCK),
    }


def _request(iris: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "modelFamily": FAMILY,
        "modelVersion": f"1.0.{next(_versions)}",
        "datasets": [{"datasetId": iris["datasetId"]}],
        "code": {"sourceArtifactId": iris["source"], "gitCommit": "uncommitted"},
        "dependencyLockDigest": iris["lock"],
        "seed": 11,
        "hyperparameters": {"epochs": 8},
        "compute": {"instanceType": "ml.m5.large", "maxRuntimeSeconds": 300},
        **fields,
    }


def _train(client: ModelOpsClient, request: dict[str, Any]) -> dict[str, Any]:
    job = client.submit_training(**request)
    return training.follow(client, job["jobId"], lambda _: None, timeout_s=180)


def _model_digest(job: dict[str, Any]) -> str:
    return str(next(r["rootDigest"] for r in job["artifactRefs"] if r["kind"] == "model"))


def _trained_digest(job: dict[str, Any]) -> str:
    """SHA-256 of the archive the training run wrote, before registration watermarked it:
    jobs of different model versions carry different watermarks (docs/watermarking.md), so
    their registered root digests differ even when the training produced the same bytes."""
    return str(next(r["archiveSha256"] for r in job["artifactRefs"] if r["kind"] == "model"))


def _executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    arn = cloud.names[platform.TRAIN_STATE_MACHINE.logical_id]
    return list(cloud.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"])


def _execution_status(cloud: LocalCloud, job: dict[str, Any]) -> dict[str, Any]:
    sfn = cloud.client("stepfunctions")
    for _ in range(50):
        described = sfn.describe_execution(executionArn=job["executionArn"])
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(0.1)
    return dict(described)


@pytest.fixture(scope="module")
def completed(engineer: ModelOpsClient, iris: dict[str, Any]) -> dict[str, Any]:
    return _train(
        engineer, _request(iris, hyperparameters={"epochs": 8, "min_epoch_seconds": 0.05})
    )


def test_a_job_trains_and_registers_a_draft_model_with_lineage_and_metrics(
    local_cloud: LocalCloud,
    engineer: ModelOpsClient,
    iris: dict[str, Any],
    completed: dict[str, Any],
) -> None:
    assert completed["status"] == "COMPLETED", completed.get("failure")
    assert [r["kind"] for r in completed["artifactRefs"]] == ["model", "checkpoints"]
    assert {"train:loss", "test:accuracy"} <= set(completed["metrics"])
    assert completed["usage"]["billableSeconds"] >= 1
    assert completed["logsRef"] == f"/aws/sagemaker/TrainingJobs/{completed['trainingJobName']}"
    detail = engineer.get_model(completed["modelId"])
    assert detail["model"]["status"] == "draft"
    assert detail["model"]["lineage"]["datasets"] == [iris["datasetId"]]
    assert detail["model"]["rootDigest"] == _model_digest(completed)
    assert {n["nodeId"] for n in detail["lineage"]["nodes"]} >= {iris["datasetId"]}
    assert _execution_status(local_cloud, completed)["status"] == "SUCCEEDED"


def test_the_job_record_pins_image_code_data_and_seed(completed: dict[str, Any]) -> None:
    pinned = completed["reproducibility"]
    assert "@sha256:" in pinned["imageUri"] and pinned["imageDigest"].startswith("sha256:")
    assert pinned["hyperparameters"]["seed"] == "11" and pinned["seed"] == 11
    assert set(pinned["datasetChecksums"]) == {completed["datasetRefs"][0]["datasetId"]}
    assert pinned["entryPoint"] == "train.py"


def test_reproduction_gives_the_same_root_digest_and_a_signed_attestation(
    local_cloud: LocalCloud, engineer: ModelOpsClient, completed: dict[str, Any]
) -> None:
    again = engineer.reproduce_training(completed["jobId"])
    done = training.follow(engineer, again["jobId"], lambda _: None, timeout_s=180)
    report = done["reproduction"]
    assert report["identical"] is True and report["differences"] == []
    assert report["reproducedRootDigest"] == _model_digest(completed)
    key = local_cloud.client("kms").get_public_key(
        KeyId=local_cloud.key_arns[platform.SIGNING_KEY.logical_id]
    )["PublicKey"]
    signature = ManifestSignature.model_validate(report["signature"])
    assert verify_statement(signature, report["statement"].encode(), key)
    assert json.loads(report["statement"])["predicate"]["identical"] is True
    assert done["modelId"] is None


@pytest.mark.parametrize("after_checkpoints", [[3], [2, 5], [1, 4, 6]])
def test_a_job_interrupted_at_any_points_ends_with_the_uninterrupted_root_digest(
    local_cloud: LocalCloud,
    engineer: ModelOpsClient,
    iris: dict[str, Any],
    completed: dict[str, Any],
    after_checkpoints: list[int],
) -> None:
    assert local_cloud.sagemaker is not None
    request = _request(iris, hyperparameters={"epochs": 8, "min_epoch_seconds": 0.05})
    job = engineer.submit_training(**request)
    local_cloud.sagemaker.plan_interruptions(job["trainingJobName"], after_checkpoints)
    done = training.follow(engineer, job["jobId"], lambda _: None, timeout_s=180)
    assert done["status"] == "COMPLETED", done.get("failure")
    assert _trained_digest(done) == _trained_digest(completed)
    described = local_cloud.client("sagemaker").describe_training_job(
        TrainingJobName=job["trainingJobName"]
    )
    interrupted = [
        t for t in described["SecondaryStatusTransitions"] if t["Status"] == "Interrupted"
    ]
    assert len(interrupted) == len(after_checkpoints)
    assert done["usage"]["spotInterruptions"] == len(after_checkpoints)


def test_another_seed_or_one_changed_dataset_byte_changes_the_root_digest(
    engineer: ModelOpsClient, iris: dict[str, Any], completed: dict[str, Any], tmp_path: Path
) -> None:
    reseeded = _train(engineer, _request(iris, seed=12))
    changed = tmp_path / "changed"
    changed.mkdir()
    for name in ("train.csv", "test.csv"):
        (changed / name).write_bytes((iris["split"] / name).read_bytes())
    text = (changed / "train.csv").read_text()
    (changed / "train.csv").write_text(text.replace("5.1,", "5.2,", 1))
    other = _dataset(engineer, changed, "iris-train-it-changed")
    redata = _train(engineer, _request(iris, datasets=[{"datasetId": other}]))
    digests = {_trained_digest(completed), _trained_digest(reseeded), _trained_digest(redata)}
    assert len(digests) == 3


def test_bad_input_is_refused_before_any_execution_starts(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "train.csv").write_text("email,species\na@b.c,x\n")
    pii = _dataset(engineer, tmp_path / "people", "people-it", piiFlags=["email"])
    before = len(_executions(local_cloud))
    cases = [
        ({"datasets": [{"datasetId": "ds-" + "0" * 24}]}, 422, "REFERENCE_NOT_FOUND"),
        ({"datasets": [{"datasetId": pii}]}, 403, "POLICY_DENIED"),
        ({"hyperparameters": {"epochs": -1}}, 400, "VALIDATION_FAILED"),
        ({"hyperparameters": {"momentum": 0.9}}, 400, "VALIDATION_FAILED"),
        (
            {"compute": {"instanceType": "ml.m5.large", "gpusPerInstance": 2}},
            400,
            "VALIDATION_FAILED",
        ),
        (
            {"compute": {"instanceType": "ml.m5.large", "maxRuntimeSeconds": 0}},
            400,
            "VALIDATION_FAILED",
        ),
    ]
    for change, status, code in cases:
        answered, body = engineer.request("POST", "/train/jobs", _request(iris, **change))
        assert (answered, body["error"]["code"]) == (status, code), change
    assert len(_executions(local_cloud)) == before


def test_a_crashing_script_fails_the_job_with_its_failure_file_and_log_tail(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "nolabel").mkdir()
    (tmp_path / "nolabel" / "train.csv").write_text("a,b\n1,2\n3,4\n")
    broken = _dataset(engineer, tmp_path / "nolabel", "iris-no-label-it")
    done = _train(engineer, _request(iris, datasets=[{"datasetId": broken}]))
    assert done["status"] == "FAILED"
    assert "no 'species' column" in done["failure"]["reason"]
    assert any("training failed" in line for line in done["failure"]["logTail"])
    assert done["modelId"] is None
    execution = _execution_status(local_cloud, done)
    assert (execution["status"], execution.get("error")) == ("FAILED", "TrainingJob.Failed")


def test_cancelling_a_running_job_ends_it_cancelled_with_checkpoints_kept(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any]
) -> None:
    request = _request(iris, hyperparameters={"epochs": 400, "min_epoch_seconds": 0.05})
    job = engineer.submit_training(**request)
    deadline = time.monotonic() + 60
    s3 = local_cloud.client("s3")
    bucket = local_cloud.names[platform.ARTIFACT_BUCKET.logical_id]
    prefix = f"training/{job['trainingJobName']}/checkpoints/"
    while not s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount"):
        assert time.monotonic() < deadline, "no checkpoint was synced"
        time.sleep(0.1)
    assert engineer.cancel_training(job["jobId"])["status"] == "CANCELLING"
    done = training.follow(engineer, job["jobId"], lambda _: None, timeout_s=120)
    assert done["status"] == "CANCELLED"
    assert [r["kind"] for r in done["artifactRefs"]] == ["checkpoints"]
    execution = _execution_status(local_cloud, done)
    assert (execution["status"], execution.get("error")) == ("FAILED", "TrainingJob.Cancelled")
    status, body = engineer.request("POST", f"/train/jobs/{job['jobId']}/cancel")
    assert (status, body["error"]["code"]) == (409, "INVALID_STATE")


def test_job_records_are_listed_and_read_back(
    engineer: ModelOpsClient, completed: dict[str, Any]
) -> None:
    listed = engineer.call("GET", "/train/jobs", query={"family": FAMILY})
    assert completed["jobId"] in {j["jobId"] for j in listed["items"]}


def test_a_fine_tune_starts_from_its_parent_and_records_it_in_lineage(
    engineer: ModelOpsClient, iris: dict[str, Any], completed: dict[str, Any]
) -> None:
    tuned = _train(
        engineer,
        _request(iris, parentModelId=completed["modelId"], hyperparameters={"epochs": 3}),
    )
    assert tuned["status"] == "COMPLETED", tuned.get("failure")
    assert tuned["parentModel"]["modelId"] == completed["modelId"]
    assert tuned["reproducibility"]["parentModelDigest"] == _model_digest(completed)
    model = engineer.get_model(tuned["modelId"])["model"]
    assert model["lineage"]["parentModels"] == [completed["modelId"]]
    assert _model_digest(tuned) != _model_digest(completed)
    consumers = engineer.call("GET", f"/models/{completed['modelId']}/consumers")
    assert tuned["modelId"] in {node["nodeId"] for node in consumers["consumers"]}


def test_a_retried_submission_with_the_same_idempotency_key_starts_one_job(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any]
) -> None:
    request = _request(iris)
    headers = {"Idempotency-Key": f"retry-{request['modelVersion']}"}
    before = len(_executions(local_cloud))
    first = engineer.call("POST", "/train/jobs", request, headers=headers)
    again = engineer.call("POST", "/train/jobs", request, headers=headers)
    assert again["jobId"] == first["jobId"]
    assert len(_executions(local_cloud)) == before + 1
    training.follow(engineer, first["jobId"], lambda _: None, timeout_s=180)
