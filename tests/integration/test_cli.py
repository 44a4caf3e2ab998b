"""``modelops`` against the local cloud: SigV4 from the standard credential chain (here the
environment), AWS-style options, JSON that is the API's, exit codes and error details."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from examples.governance.growers import growers_csv
from localcloud.cloud import LocalCloud
from modelops_cli.demo import EXAMPLE
from modelops_cli.main import main as modelops

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoint(local_cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ml-engineer's keys in the environment; returns the ``--endpoint-url`` option."""
    engineer = local_cloud.principals["ml-engineer"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", engineer.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", engineer.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_cloud.region)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "MODELOPS_API_URL"):
        monkeypatch.delenv(name, raising=False)
    return ["--endpoint-url", local_cloud.api_url]


def run(capsys: pytest.CaptureFixture[str], *argv: str, expect: int = 0) -> tuple[str, str]:
    code = modelops(list(argv))
    out, err = capsys.readouterr()
    assert code == expect, f"exit {code}, stderr:\n{err}"
    return out, err


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_upload_register_and_get_round_trip_as_json(
    endpoint: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows"
    source.mkdir()
    (source / "rows.csv").write_text("x,y\n1,2\n3,4\n")
    (source / "notes.txt").write_text("two rows\n")
    out, err = run(capsys, "artifact", "upload", str(source), "--name", "cli-rows",
                   "--output", "json", *endpoint)  # fmt: skip
    artifact = json.loads(out)["artifact"]
    assert "uploaded" in err and "rows.csv" in err  # progress goes to stderr
    assert sorted(f["path"] for f in artifact["files"]) == ["notes.txt", "rows.csv"]

    name = unique("cli-rows")
    out, _ = run(capsys, "dataset", "register", "--name", name, "--artifact",
                 artifact["artifactId"], "--license", "MIT", "--purpose", "training",
                 "--export-region", "us", "--retention-days", "30", "--output", "json",
                 *endpoint)  # fmt: skip
    registered = json.loads(out)
    dataset = registered["dataset"]
    assert registered["created"] is True and dataset["checksum"] == artifact["rootDigest"]
    assert dataset["usageRestrictions"]["exportRegions"] == ["us"]

    out, _ = run(capsys, "dataset", "get", dataset["datasetId"], "--output", "json", *endpoint)
    assert json.loads(out) == dataset
    out, _ = run(capsys, "dataset", "get", dataset["datasetId"], *endpoint)
    assert f"datasetId:         {dataset['datasetId']}" in out.splitlines()
    out, _ = run(capsys, "dataset", "list", "--name", name, *endpoint)
    assert out.splitlines()[1].startswith(dataset["datasetId"])

    target = tmp_path / "downloaded"
    out, err = run(capsys, "artifact", "get", artifact["artifactId"], "--download", str(target),
                   *endpoint)  # fmt: skip
    assert (target / "rows.csv").read_text() == "x,y\n1,2\n3,4\n"
    assert "every SHA-256 verified" in out and "downloaded" in err


def test_something_missing_exits_3(endpoint: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    _, err = run(capsys, "dataset", "get", "ds-" + "0" * 24, *endpoint, expect=3)
    assert err.startswith("error NOT_FOUND: ")
    _, err = run(capsys, "train", "status", "trn-" + "0" * 24, *endpoint, expect=3)
    assert err.startswith("error NOT_FOUND: ")


def test_bad_requests_exit_4_naming_what_to_fix(
    endpoint: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = run(capsys, "deploy", "create", "mdl-not-an-id", "--env", "prod", "--route",
                 "iris", *endpoint, expect=4)  # fmt: skip
    first, *details = err.splitlines()
    assert first.startswith("error VALIDATION_FAILED: ")
    assert any("modelId" in line for line in details)

    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "people.csv").write_text("email,x\na@example.org,1\n")
    out, _ = run(capsys, "artifact", "upload", str(tmp_path / "plain"), "--name", "people",
                 "--no-progress", "--output", "json", *endpoint)  # fmt: skip
    artifact_id = json.loads(out)["artifact"]["artifactId"]
    _, err = run(capsys, "dataset", "register", "--name", unique("people"), "--artifact",
                 artifact_id, "--license", "MIT", "--pii", "email", *endpoint,
                 expect=4)  # fmt: skip
    assert err.startswith("error PII_NOT_ESCROWED: ")


def test_a_policy_refusal_exits_5_and_names_the_policy(
    endpoint: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "growers.csv").write_bytes(growers_csv(3))
    out, _ = run(capsys, "artifact", "upload", str(raw), "--name", "growers-cli", "--escrow",
                 "--output", "json", *endpoint)  # fmt: skip
    artifact = json.loads(out)["artifact"]
    assert artifact["storage"] == "escrow"
    out, _ = run(capsys, "dataset", "register", "--name", unique("growers-cli"), "--artifact",
                 artifact["artifactId"], "--license", "CC-BY-4.0", "--pii", "name", "--pii",
                 "email", "--output", "json", *endpoint)  # fmt: skip
    dataset: dict[str, Any] = json.loads(out)["dataset"]

    _, err = run(capsys, "train", "submit", "--source", str(EXAMPLE), "--family", "growers-cli",
                 "--version", "1.0.0", "--dataset", dataset["datasetId"], "--seed", "1",
                 "--no-spot", "--hp", "epochs=2", *endpoint, expect=5)  # fmt: skip
    first, *details = err.splitlines()
    assert first.startswith("error POLICY_DENIED: ")
    assert any(
        "policyId=dataset.pii-not-approved" in line and dataset["datasetId"] in line
        for line in details
    ), err
