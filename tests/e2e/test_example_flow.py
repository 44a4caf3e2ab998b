"""The example flow as a client runs it: against ``modelops local up`` started as a user
would (a separate process), and against a deployed stack in real AWS when asked to
(``tests/e2e/deployed.py``: MODELOPS_E2E_STACK or MODELOPS_E2E_API_URL with AWS credentials;
skipped with its reason otherwise, and always in CI). Each run's requests carry its own
correlation id, and what it started is cleaned up at the end."""

from __future__ import annotations

import json
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
from tests.e2e import deployed

MODELOPS = Path(sys.executable).with_name("modelops")
Clients = dict[str, tuple[ModelOpsClient, str]]


@pytest.fixture(scope="module", params=["local", "aws"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ModelOpsClient, Clients]]:
    run = deployed.Run()
    if request.param == "aws":
        yield from _deployed_stack(run)
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
        clients: Clients = {
            name: (
                run.client(
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
        engineer = clients["ml-engineer"][0]
        try:
            yield engineer, clients
        finally:
            run.cleanup(engineer, None)  # the local cloud goes with its endpoints
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0 and "The local cloud stopped." in output


def _deployed_stack(run: deployed.Run) -> Iterator[tuple[ModelOpsClient, Clients]]:
    reason = deployed.skip_reason()
    if reason is not None:
        pytest.skip(reason)
    target = deployed.target_from_env()
    assert target is not None
    sessions = {
        role: boto3.session.Session(profile_name=profile, region_name=target.region)
        for role, profile in target.profiles.items()
        if profile or role == "ml-engineer"
    }
    clients: Clients = {
        role: (run.client(target.api_url, session, target.region), deployed.principal_arn(session))
        for role, session in sessions.items()
    }
    engineer = clients["ml-engineer"][0]
    # The governance part acts as every role it needs, or is left out.
    complete = all(role in clients for role in deployed.TRUST_ROLES)
    cleaner = sessions.get("platform-admin") or sessions["ml-engineer"]
    try:
        yield engineer, clients if complete else {}
    finally:
        run.cleanup(engineer, cleaner.client("sagemaker"))


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
    _recorded_under_the_runs_correlation_id(client, model["modelId"])
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


def _recorded_under_the_runs_correlation_id(client: ModelOpsClient, model_id: str) -> None:
    """The registry's audit records of ``model_id`` carry the run's correlation id."""
    assert isinstance(client, deployed.RunClient)
    records = []
    from_seq: int | None = 1
    while from_seq is not None:
        page = client.call(
            "GET", "/audit/export", query={"stream": "registry", "fromSeq": from_seq, "limit": 500}
        )
        for line in page["records"]:
            event = json.loads(json.loads(line)["body"])["event"]
            if model_id in event["resources"]:
                records.append(event)
        from_seq = page.get("nextFromSeq")
    assert records, "no audit record names the model"
    assert {r["correlationId"] for r in records} == {client.correlation_id}
