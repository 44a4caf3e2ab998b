"""The ``modelops`` command line without sockets: parsing, exit codes, output, errors, waits
(a fake client stands in for the signed API)."""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from modelops.domain.crypto import verify_ed25519
from modelops.domain.ids import approver_key_id
from modelops.domain.signing import fingerprint
from modelops_cli import cli, training
from modelops_cli.client import ApiError
from modelops_cli.main import build_parser, main

Answer = Any | Callable[[Any], Any]


class FakeClient:
    """Canned answers per (method, path); a list answers in turn (the last one repeats)."""

    def __init__(self, answers: dict[tuple[str, str], Answer]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, Any, dict[str, Any]]] = []

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        self.calls.append((method, path, body, kwargs))
        key = (method, path)
        if key not in self.answers:
            raise ApiError(404, {"error": {"code": "NOT_FOUND", "message": f"{path} not found"}})
        answer = self.answers[key]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, Exception):
            raise answer
        return answer(body) if callable(answer) else answer

    def request(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        try:
            return 200, self.call(method, path, body, **kwargs)
        except ApiError as error:
            return error.status, {"error": {"code": error.code, "message": error.message}}

    def get_training(self, job_id: str) -> Any:
        return self.call("GET", f"/train/jobs/{job_id}")

    def get_model(self, model_id: str) -> Any:
        return self.call("GET", f"/models/{model_id}")

    def get_artifact(self, artifact_id: str, download: bool = False) -> Any:
        return self.call("GET", f"/artifact/{artifact_id}")

    def iter_models(self, family: str | None = None, status: str | None = None) -> Iterator[Any]:
        yield from self.call("GET", "/models", query={"family": family, "status": status})["items"]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[tuple[str, str], Answer]], FakeClient]:
    monkeypatch.setattr("time.sleep", lambda _: None)
    monkeypatch.setenv("MODELOPS_API_URL", "https://api.example.test/v1")

    def install(answers: dict[tuple[str, str], Answer]) -> FakeClient:
        client = FakeClient(answers)
        monkeypatch.setattr(cli, "make_client", lambda args: client)
        return client

    return install


def _commands(parser: argparse.ArgumentParser, prefix: list[str]) -> Iterator[list[str]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield [*prefix, name]
                yield from _commands(sub, [*prefix, name])


ALL_COMMANDS = list(_commands(build_parser(), []))


def test_every_public_intent_has_a_command() -> None:
    leaves = {" ".join(c) for c in ALL_COMMANDS}
    expected = {
        "artifact upload", "artifact get",
        "dataset register", "dataset get", "dataset list", "dataset lineage",
        "dataset restrictions", "dataset sanitize", "dataset approve",
        "model register", "model get", "model list", "model lineage", "model provenance",
        "model promote", "model approve",
        "train submit", "train status", "train cancel", "train reproduce",
        "deploy create", "deploy status", "deploy scale", "deploy rollback",
        "drift show", "drift check", "drift baseline",
        "eval run", "eval show", "audit verify", "cost report", "compute pools",
        "verify model", "local up",
    }  # fmt: skip
    assert expected <= leaves


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=" ".join)
def test_help_works_for_every_command(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: modelops" in capsys.readouterr().out


def _parser_of(command: list[str]) -> argparse.ArgumentParser:
    sub = build_parser()
    for name in command:
        sub = next(
            a.choices[name] for a in sub._actions if isinstance(a, argparse._SubParsersAction)
        )
    return sub


def _is_leaf(command: list[str]) -> bool:
    return not any(isinstance(a, argparse._SubParsersAction) for a in _parser_of(command)._actions)


@pytest.mark.parametrize(
    "command",
    # ``ops`` calls AWS directly (modelops_cli/ops.py: aws_options), not the API.
    [c for c in ALL_COMMANDS if len(c) >= 2 and c[0] not in ("local", "ops") and _is_leaf(c)],
    ids=" ".join,
)
def test_every_api_command_takes_the_common_options(command: list[str]) -> None:
    sub = _parser_of(command)
    options = {o for a in sub._actions for o in a.option_strings}
    assert {
        "--endpoint-url", "--api-url", "--profile", "--region", "--output", "--no-progress"
    } <= options  # fmt: skip


def test_top_level_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for line in ("3  not found (404)", "5  forbidden or denied by policy", "8  a --wait ended"):
        assert line in out
    assert "exit codes" in (cli.__doc__ or "")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dataset", "get"])
    assert exited.value.code == 2
    with pytest.raises(SystemExit) as exited:
        main(["deploy", "create", "mdl-x", "--env", "moon", "--route", "r"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, 4), (401, 5), (403, 5), (404, 3), (409, 6), (410, 4), (422, 4), (429, 7),
        (500, 1), (502, 1), (503, 1),
    ],
)  # fmt: skip
def test_exit_code_for_each_api_status(status: int, code: int) -> None:
    assert cli.exit_code_for_status(status) == code


@pytest.mark.parametrize(
    ("status", "error_code", "exit_code"),
    [(404, "NOT_FOUND", 3), (400, "VALIDATION_FAILED", 4), (403, "POLICY_DENIED", 5),
     (409, "PROMOTION_BLOCKED", 6), (429, "QUOTA_EXCEEDED", 7), (503, "SERVICE_UNAVAILABLE", 1)],
)  # fmt: skip
def test_an_api_error_exits_with_its_code_and_says_so_on_stderr(
    fake: Callable[..., FakeClient],
    capsys: pytest.CaptureFixture[str],
    status: int,
    error_code: str,
    exit_code: int,
) -> None:
    error = ApiError(status, {"error": {"code": error_code, "message": "no", "details": []}})
    fake({("GET", "/dataset/ds-1"): error})
    assert main(["dataset", "get", "ds-1"]) == exit_code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0] == f"error {error_code}: no"


def test_an_error_names_every_detail_so_the_user_knows_what_to_fix(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    details = [
        {"field": "datasets[0]", "message": "PII without an approval", "datasetId": "ds-1",
         "policyId": "dataset.pii-not-approved", "restriction": "piiFlags", "value": ["email"]},
        {"field": "name", "message": "must match ^[a-z0-9]"},
        {"gate": "metrics", "passed": False, "message": "accuracy 0.6 < 0.9"},
    ]  # fmt: skip
    body = {"error": {"code": "POLICY_DENIED", "message": "training refused", "details": details}}
    fake({("GET", "/dataset/ds-1"): ApiError(403, body)})
    assert main(["dataset", "get", "ds-1"]) == 5
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "error POLICY_DENIED: training refused"
    assert lines[1] == (
        "  datasets[0]: PII without an approval [datasetId=ds-1, "
        'policyId=dataset.pii-not-approved, restriction=piiFlags, value=["email"]]'
    )
    assert lines[2] == "  name: must match ^[a-z0-9]"
    assert lines[3] == "  metrics: accuracy 0.6 < 0.9 (FAILED)"


def test_an_api_gateway_refusal_without_our_error_shape_is_still_reported(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    fake({("GET", "/dataset/ds-1"): ApiError(403, {"message": "Forbidden"})})
    assert main(["dataset", "get", "ds-1"]) == 5
    assert capsys.readouterr().err.startswith("error Forbidden:")


def test_no_endpoint_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MODELOPS_API_URL", raising=False)
    assert main(["dataset", "get", "ds-1"]) == 2
    assert "--endpoint-url" in capsys.readouterr().err


def test_an_unknown_profile_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    argv = ["dataset", "get", "ds-1", "--endpoint-url", "http://127.0.0.1:9", "--profile", "nope"]
    assert main(argv) == 2
    assert "error CONFIGURATION:" in capsys.readouterr().err


def test_the_client_is_built_from_the_profile_region_and_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "credentials").write_text(
        "[ops]\naws_access_key_id = AKIAOPS\naws_secret_access_key = secret\n"
    )
    (tmp_path / "config").write_text("[profile ops]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    args = build_parser().parse_args(
        ["dataset", "get", "ds-1", "--api-url", "http://h/v1/", "--profile", "ops"]
    )
    client = cli.make_client(args)
    assert client._base == "http://h/v1" and client._region == "eu-west-1"
    assert client._session.get_credentials().access_key == "AKIAOPS"
    args.region = "us-west-2"
    assert cli.make_client(args)._region == "us-west-2"


# --- output -------------------------------------------------------------------------------


def test_table_and_record_rendering() -> None:
    rows: list[dict[str, Any]] = [
        {"id": "a", "n": 1, "tags": ["x"]},
        {"id": "bbbb", "n": None, "tags": []},
    ]
    assert cli.render_table(rows, ["id", "n", "tags"]).splitlines() == [
        "ID    N  TAGS",
        'a     1  ["x"]',
        "bbbb  -  []",
    ]
    assert cli.render_table([], ["id"]) == "(none)"
    record = {"datasetId": "ds-1", "ok": True, "usage": {"a": 1, "b": [1, 2]}}
    assert cli.render_record(record).splitlines() == [
        "datasetId: ds-1",
        "ok:        true",
        'usage:     {"a":1,"b":[1,2]}',
    ]


DATASET = {
    "datasetId": "ds-1",
    "name": "iris",
    "version": 1,
    "license": "CC-BY-4.0",
    "usageRestrictions": {"commercialUse": True, "permittedPurposes": []},
}


def test_json_output_is_exactly_the_api_json_and_table_is_key_value(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    fake({("GET", "/dataset/ds-1"): DATASET})
    assert main(["dataset", "get", "ds-1", "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == DATASET
    assert main(["dataset", "get", "ds-1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "datasetId:         ds-1" in out
    assert 'usageRestrictions: {"commercialUse":true,"permittedPurposes":[]}' in out


def test_lists_are_tables(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake({("GET", "/dataset"): {"items": [{**DATASET, "storage": "standard"}]}})
    assert main(["dataset", "list", "--name", "iris"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["DATASETID", "NAME", "VERSION", "LICENSE", "STORAGE", "PIIFLAGS",
                              "CREATEDAT"]  # fmt: skip
    assert out[1].split()[:3] == ["ds-1", "iris", "1"]
    assert client.calls[0][3]["query"]["name"] == "iris"


def test_dataset_register_sends_the_api_body(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake({("POST", "/dataset/register"): {"dataset": DATASET, "created": True}})
    argv = [
        "dataset", "register", "--name", "iris", "--artifact", "art-1", "--license", "MIT",
        "--source", "ds-0", "--source", "https://x", "--pii", "email", "--purpose", "training",
        "--export-region", "eu", "--retention-days", "30", "--no-commercial-use",
        "--region", "eu-west-1",
    ]  # fmt: skip
    assert main(argv) == 0
    assert client.calls[0][2] == {
        "name": "iris",
        "artifactId": "art-1",
        "license": "MIT",
        "sourceRefs": ["ds-0", "https://x"],
        "piiFlags": ["email"],
        "usageRestrictions": {
            "commercialUse": False,
            "permittedPurposes": ["training"],
            "exportRegions": ["eu"],
            "retentionDays": 30,
        },
        "description": "",
    }
    assert "created:           true" in capsys.readouterr().out


def test_model_register_parses_metrics_and_lineage(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    model = {"modelId": "mdl-1", "status": "draft"}
    client = fake({("POST", "/models/register"): {"model": model, "created": True}})
    argv = ["model", "register", "--family", "f", "--version", "1.0.0", "--artifact", "art-1",
            "--code-ref", "git@x", "--metric", "accuracy=0.9", "--dataset", "ds-1",
            "--parent", "mdl-0"]  # fmt: skip
    assert main(argv) == 0
    body = client.calls[0][2]
    assert body["metrics"] == {"accuracy": 0.9}
    assert body["lineage"] == {"datasets": ["ds-1"], "parentModels": ["mdl-0"]}
    assert main([*argv[:-2], "--metric", "accuracy"]) == 2
    assert "--metric takes key=value" in capsys.readouterr().err


# --- promotion and approval ---------------------------------------------------------------


def _promotion(status: str, approvals: int = 0) -> dict[str, Any]:
    return {
        "model": {"modelId": "mdl-1", "family": "f", "version": "1.0.0", "status": "staging"},
        "promotion": {
            "promotionId": "prm-1",
            "fromStage": "staging",
            "toStage": "prod",
            "status": status,
            "approvalsRequired": 2,
            "approvals": [{}] * approvals,
            "statement": '{"modelId":"mdl-1","to":"prod"}',
            "gates": [
                {"gate": "metrics", "passed": True, "message": "accuracy 0.95 >= 0.9"},
                {"gate": "approvals", "passed": False, "message": f"{approvals} of 2 approvals"},
            ],
        },
    }


def test_a_pending_multisig_promotion_says_so_with_its_gates(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    client = fake({("POST", "/models/mdl-1/promote"): _promotion("PENDING_APPROVAL")})
    assert main(["model", "promote", "mdl-1", "--to", "prod"]) == 0
    assert client.calls[0][2] == {"targetStage": "prod", "reason": ""}
    out = capsys.readouterr().out
    assert "promotion prm-1 staging -> prod: PENDING_APPROVAL" in out
    assert "metrics    true    accuracy 0.95 >= 0.9" in out
    assert "pending: 0 of 2 approvals" in out
    assert "modelops model approve mdl-1 prm-1 --key" in out


def test_model_approve_signs_the_statement_with_the_approvers_ed25519_key(
    fake: Callable[..., FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = Ed25519PrivateKey.generate()
    pem = tmp_path / "approver.pem"
    pem.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    pending = _promotion("PENDING_APPROVAL")
    client = fake(
        {
            ("GET", "/models/mdl-1/promotions/prm-1"): pending["promotion"],
            ("POST", "/models/mdl-1/promotions/prm-1/approve"): _promotion("PENDING_APPROVAL", 1),
        }
    )
    assert main(["model", "approve", "mdl-1", "prm-1", "--key", str(pem)]) == 0
    body = client.calls[1][2]
    assert body["keyId"] == approver_key_id(fingerprint(der))
    statement = pending["promotion"]["statement"].encode()
    assert verify_ed25519(der, base64.b64decode(body["signature"]), statement)
    assert "pending: 1 of 2 approvals" in capsys.readouterr().out


def test_model_approve_refuses_a_key_that_is_not_ed25519(
    fake: Callable[..., FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = tmp_path / "p256.pem"
    pem.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
    )
    fake({("GET", "/models/mdl-1/promotions/prm-1"): _promotion("PENDING_APPROVAL")["promotion"]})
    assert main(["model", "approve", "mdl-1", "prm-1", "--key", str(pem)]) == 2
    assert "Ed25519" in capsys.readouterr().err
    assert main(["model", "approve", "mdl-1", "prm-1", "--key", str(tmp_path / "none")]) == 2


# --- waits and progress -------------------------------------------------------------------


def _deployment(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "deployId": "dep-1",
        "modelId": "mdl-2",
        "status": status,
        "statusReason": extra.pop("statusReason", ""),
        "canaryConfig": {"canaryPercent": 30, "bakeSeconds": 30},
        "variants": [
            {"name": "baseline", "role": "baseline", "version": "1", "weight": 70},
            {"name": "canary", "role": "canary", "version": "2", "weight": 30},
        ],
        "history": [{"status": "BAKING", "at": "2026-11-30T10:00:00Z"}]
        if status == "BAKING"
        else [],
        **extra,
    }


def test_deploy_create_wait_reports_progress_and_a_rollback_exits_8(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    rolled_back = _deployment(
        "ROLLED_BACK",
        statusReason="canary error rate 0.5 > 0.05",
        decision={"verdict": "rollback", "reasons": ["error rate 0.5 > 0.05"], "evidence": {}},
    )
    client = fake(
        {
            ("POST", "/serve/deploy"): _deployment("CREATING"),
            ("GET", "/serve/dep-1"): [_deployment("CREATING"), _deployment("BAKING"), rolled_back],
        }
    )
    argv = ["deploy", "create", "mdl-2", "--env", "prod", "--route", "iris",
            "--canary-percent", "30", "--bake-seconds", "30", "--wait"]  # fmt: skip
    assert main(argv) == 8
    _, _, body, kwargs = client.calls[0]
    assert body["canary"] == {"canaryPercent": 30, "bakeSeconds": 30}
    assert kwargs["headers"]["Idempotency-Key"].startswith("deploy-")
    captured = capsys.readouterr()
    assert "dep-1: CREATING, canary 30% of traffic" in captured.err
    assert "dep-1: BAKING, canary 30% of traffic, bake " in captured.err
    assert "analysis: rollback (error rate 0.5 > 0.05)" in captured.err
    assert "error WAIT_FAILED: deployment dep-1 ROLLED_BACK" in captured.err
    assert "status:" in captured.out and "ROLLED_BACK" in captured.out


def test_the_bake_countdown_comes_from_when_baking_started() -> None:
    from datetime import UTC, datetime

    from modelops_cli import deploy

    record = _deployment("BAKING")
    now = datetime(2026, 11, 30, 10, 0, 12, tzinfo=UTC)
    assert deploy.describe(record, lambda: now) == (
        "dep-1: BAKING, canary 30% of traffic, bake 18 s left"
    )
    first = {**record, "variants": [{"name": "canary", "role": "canary", "weight": 1}]}
    assert deploy.describe(first, lambda: now) == "dep-1: BAKING, bake 18 s left"


def test_no_progress_keeps_stderr_quiet(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    fake(
        {
            ("POST", "/serve/deploy"): _deployment("CREATING"),
            ("GET", "/serve/dep-1"): [_deployment("CREATING"), _deployment("IN_SERVICE")],
        }
    )
    argv = ["deploy", "create", "mdl-2", "--env", "prod", "--route", "iris", "--wait",
            "--no-progress", "--output", "json"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out)["status"] == "IN_SERVICE"


def test_dataset_sanitize_wait_polls_the_run_and_a_failure_exits_8(
    fake: Callable[..., FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"columns": {}}')
    run = {"runId": "san-1", "status": "PENDING"}
    client = fake(
        {
            ("POST", "/dataset/ds-1/sanitize"): run,
            ("GET", "/dataset/ds-1/sanitizations/san-1"): [
                run,
                {**run, "status": "FAILED", "failure": "column email is missing"},
            ],
        }
    )
    argv = ["dataset", "sanitize", "ds-1", "--name", "clean", "--config", str(config), "--wait"]
    assert main(argv) == 8
    assert client.calls[0][2] == {"name": "clean", "config": {"columns": {}}}
    err = capsys.readouterr().err
    assert "sanitization san-1: PENDING" in err
    assert "error WAIT_FAILED: sanitization san-1 FAILED: column email is missing" in err
    assert main([*argv[:-2], str(tmp_path / "missing.json")]) == 2


def test_train_follow_says_secondary_status_and_metrics_as_they_appear() -> None:
    job = {"jobId": "trn-1", "status": "TRAINING", "statusReason": "", "metrics": {}}
    records = [
        {**job, "status": "QUEUED"},
        {**job, "statusReason": "Downloading"},
        {**job, "statusReason": "Training"},
        {**job, "status": "COMPLETED", "metrics": {"train:accuracy": 0.9666666}},
    ]
    epochs = {
        "series": [
            {"name": "train:loss", "points": [{"epoch": 1, "value": 0.5}]},
            {"name": "train:accuracy", "points": [{"epoch": 1, "value": 0.8}]},
        ]
    }
    client = FakeClient(
        {("GET", "/train/jobs/trn-1"): records, ("GET", "/train/jobs/trn-1/metrics"): epochs}
    )
    said: list[str] = []
    done = training.follow(client, "trn-1", said.append, interval_s=0, detail=True)
    assert done["status"] == "COMPLETED"
    assert said == [
        "   trn-1: QUEUED",
        "   trn-1: epoch 1: train:accuracy=0.8, train:loss=0.5",
        "   trn-1: TRAINING (Downloading)",
        "   trn-1: TRAINING - Training",
        "   trn-1: COMPLETED",
        "   trn-1: final metrics train:accuracy=0.966667",
    ]


def test_train_follow_without_the_metrics_route_still_follows() -> None:
    records = [{"jobId": "trn-1", "status": "TRAINING"}, {"jobId": "trn-1", "status": "FAILED"}]
    client = FakeClient({("GET", "/train/jobs/trn-1"): records})
    said: list[str] = []
    assert training.follow(client, "trn-1", said.append, interval_s=0, detail=True)
    assert said == ["   trn-1: TRAINING", "   trn-1: FAILED"]


def test_train_status_wait_on_a_failed_job_exits_8(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    failed = {"jobId": "trn-1", "status": "FAILED", "failure": {"message": "OOM"}}
    fake({("GET", "/train/jobs/trn-1"): failed})
    assert main(["train", "status", "trn-1", "--wait"]) == 8
    assert "error WAIT_FAILED: job trn-1 FAILED: OOM" in capsys.readouterr().err
    assert main(["train", "status", "trn-1"]) == 0


def test_drift_baseline_wait_and_check_wait(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    pending = {"modelId": "mdl-1", "status": "PENDING", "datasetId": "ds-1"}
    finding = {"findingId": "drf-1", "correlationId": "c-1", "variant": "v", "status": "alarm",
               "rows": 10, "drifted": ["petal"], "features": []}  # fmt: skip
    fake(
        {
            ("POST", "/drift/mdl-1/baseline"): pending,
            ("POST", "/drift/mdl-1/check"): {
                "modelId": "mdl-1",
                "hours": 1,
                "correlationId": "c-1",
            },
            ("GET", "/drift/mdl-1"): [
                {"modelId": "mdl-1", "baseline": pending, "findings": []},
                {"modelId": "mdl-1", "baseline": {**pending, "status": "FAILED"}, "findings": []},
                {"modelId": "mdl-1", "baseline": pending, "findings": [finding]},
            ],
        }
    )
    assert main(["drift", "baseline", "mdl-1", "--wait"]) == 8
    assert main(["drift", "check", "mdl-1", "--hours", "1", "--wait"]) == 0
    captured = capsys.readouterr()
    assert "baseline of mdl-1: FAILED" in captured.err and "v: ALARM" in captured.err
    assert "findingId:     drf-1" in captured.out


def test_a_wait_that_times_out_exits_1(
    fake: Callable[..., FakeClient], capsys: pytest.CaptureFixture[str]
) -> None:
    fake({("GET", "/serve/dep-1"): _deployment("CREATING")})
    assert main(["deploy", "status", "dep-1", "--wait", "--timeout", "0"]) == 1
    assert "error TIMEOUT: still dep-1: CREATING" in capsys.readouterr().err


def test_transfer_meter_reports_bytes_rate_and_files() -> None:
    ticks = iter([0.0, 0.1, 0.2, 2.0])
    said: list[str] = []
    meter = cli.TransferMeter(
        said.append, {"a.bin": 2048, "b.bin": 1024}, clock=lambda: next(ticks)
    )
    meter.update("a.bin", 1024)  # too soon after the last line: quiet
    meter.update("a.bin", 1024)  # the file is complete: said
    meter.update("b.bin", 1024)
    assert said[0] == "uploaded 2.0 KiB of 3.0 KiB (67%) at 10.0 KiB/s; a.bin 2.0 KiB/2.0 KiB done"
    assert said[1].startswith("uploaded 3.0 KiB of 3.0 KiB (100%)")
    assert meter.done == 3072


def test_artifact_upload_reports_progress_and_prints_the_artifact(
    fake: Callable[..., FakeClient], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x.csv").write_bytes(b"a,b\n1,2\n")
    artifact = {"artifactId": "art-1", "files": [{"path": "x.csv", "size": 8, "sha256": "00"}]}
    client = fake({})
    seen: dict[str, Any] = {}

    def upload_artifact(source: Path, name: str, **kwargs: Any) -> dict[str, Any]:
        seen.update(kwargs, name=name)
        kwargs["progress"]("x.csv", 8)
        return artifact

    client.upload_artifact = upload_artifact  # type: ignore[attr-defined]
    assert main(["artifact", "upload", str(tmp_path / "d"), "--name", "rows", "--escrow"]) == 0
    assert seen["escrow"] is True and seen["name"] == "rows" and seen["part_bytes"] is None
    captured = capsys.readouterr()
    assert "uploading 1 file(s), 8 B, as rows into escrow" in captured.err
    assert "x.csv 8 B/8 B done" in captured.err
    assert "artifactId: art-1" in captured.out and "x.csv  8" in captured.out
    assert main(["artifact", "upload", str(tmp_path / "nope"), "--name", "rows"]) == 2
