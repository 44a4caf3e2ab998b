"""The example flow as a client runs it: against ``modelops local up`` started as a user
would (a separate process), or against a deployed stack when MODELOPS_E2E_API_URL is set
(credentials then come from the standard AWS chain, as one principal: the registry part
runs; the governance part needs the other roles' credentials and runs locally)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import run_flow, run_training_flow, run_trust_flow

MODELOPS = Path(sys.executable).with_name("modelops")
Clients = dict[str, tuple[ModelOpsClient, str]]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModelOpsClient, Clients]]:
    deployed = os.environ.get("MODELOPS_E2E_API_URL")
    if deployed:
        yield ModelOpsClient(deployed), {}
        return
    info_file = tmp_path_factory.mktemp("local-up") / "info.json"
    process = subprocess.Popen(
        [str(MODELOPS), "local", "up", "--info-file", str(info_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not info_file.exists():
            assert process.poll() is None, "modelops local up exited early"
            assert time.monotonic() < deadline, "modelops local up did not start within 60 s"
            time.sleep(0.2)
        info = json.loads(info_file.read_text())
        clients = {
            name: (
                ModelOpsClient(
                    info["apiUrl"],
                    boto3.session.Session(
                        aws_access_key_id=p["accessKeyId"],
                        aws_secret_access_key=p["secretAccessKey"],
                        region_name=info["region"],
                    ),
                ),
                p["arn"],
            )
            for name, p in info["principals"].items()
        }
        yield clients["ml-engineer"][0], clients
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0 and "The local cloud stopped." in output


def test_example_flow_registers_data_and_a_model_and_governs_its_promotion(
    api: tuple[ModelOpsClient, Clients], tmp_path: Path
) -> None:
    client, clients = api
    lines: list[str] = []
    result = run_flow(client, tmp_path, lines.append)
    model, lineage = result["model"], result["lineage"]
    assert model["status"] == "draft" and model["metrics"]["accuracy"] > 0.8
    ids = {node["nodeId"] for node in lineage["nodes"]}
    assert {model["modelId"], result["split"]["datasetId"], result["raw"]["datasetId"]} <= ids
    assert result["split"]["transformations"][0]["name"] == "stratified-split"
    assert len(result["events"]) == 3
    assert any("409 CONFLICT" in line for line in lines)
    assert any("422 DIGEST_MISMATCH" in line for line in lines)
    if not clients:
        return
    assert model["createdBy"] == clients["ml-engineer"][1]
    trust = run_trust_flow(clients, result, lines.append)
    assert trust["refusal"]["error"]["code"] == "PROMOTION_BLOCKED"
    assert trust["promoted"]["status"] == "prod" and trust["promoted"]["signature"]
    assert trust["ledger"].ok and trust["ledger"].checkpointsChecked >= 1
    assert any("KMS signature verifies offline: True" in line for line in lines)


def test_example_flow_trains_on_the_platform_and_reproduces_bit_for_bit(
    api: tuple[ModelOpsClient, Clients], tmp_path: Path
) -> None:
    client, _ = api
    lines: list[str] = []
    registered = run_flow(client, tmp_path / "registry", lines.append)
    trained = run_training_flow(client, registered, tmp_path / "training", lines.append)
    job, reproduction = trained["job"], trained["reproduction"]
    assert job["status"] == "COMPLETED" and job["modelId"]
    model = client.get_model(job["modelId"])["model"]
    assert model["status"] == "draft"
    assert model["lineage"]["datasets"] == [registered["split"]["datasetId"]]
    report = reproduction["reproduction"]
    assert report["identical"] and report["originalRootDigest"] == model["rootDigest"]
    assert trained["quota"]["error"]["code"] == "QUOTA_EXCEEDED"
    costs = client.call("GET", f"/cost/models/{job['modelId']}")
    assert {u["jobId"] for u in costs["usage"]} == {job["jobId"], reproduction["jobId"]}
    refusals = [line for line in lines if line.startswith("   an unknown") or "GPUs a" in line]
    assert [line.rsplit(": ", 1)[1] for line in refusals] == [
        "400 VALIDATION_FAILED",
        "400 VALIDATION_FAILED",
        "422 REFERENCE_NOT_FOUND",
    ]
