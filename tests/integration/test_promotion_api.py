"""Governed promotion over signed HTTP on the local cloud: gates, PII approval, M-of-N
approvals by registered Ed25519 keys, the KMS signature, and stage history."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.domain.signing import ManifestSignature, verify_statement
from modelops_cli.client import ModelOpsClient


@pytest.fixture(scope="module")
def as_role(local_cloud: LocalCloud) -> dict[str, ModelOpsClient]:
    return {
        name: ModelOpsClient(local_cloud.api_url, principal.session(local_cloud.region))
        for name, principal in local_cloud.principals.items()
    }


@pytest.fixture(scope="module")
def approver_keys(
    local_cloud: LocalCloud, as_role: dict[str, ModelOpsClient]
) -> dict[str, tuple[Ed25519PrivateKey, str]]:
    keys = {}
    for name in ("approver", "approver-2"):
        private = Ed25519PrivateKey.generate()
        der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        registered = as_role["platform-admin"].call(
            "POST",
            "/approvers",
            {
                "principal": local_cloud.principals[name].arn,
                "publicKey": base64.b64encode(der).decode(),
            },
        )
        keys[name] = (private, registered["approver"]["keyId"])
    return keys


APPROVE_FOR_INFERENCE = {"purposes": ["inference"], "validDays": 30}


def _model(
    client: ModelOpsClient,
    tmp_path: Path,
    *,
    family: str,
    version: str,
    accuracy: float,
    datasets: list[str],
) -> str:
    (tmp_path / version).mkdir()
    (tmp_path / version / "w.bin").write_bytes(uuid.uuid4().bytes)
    artifact = client.upload_artifact(tmp_path / version, "weights")
    return str(
        client.register_model(
            family=family,
            version=version,
            artifactId=artifact["artifactId"],
            codeRef="c",
            metrics={"accuracy": accuracy},
            lineage={"datasets": datasets},
        )["model"]["modelId"]
    )


def _dataset(client: ModelOpsClient, tmp_path: Path, name: str, **fields: Any) -> str:
    (tmp_path / name).mkdir()
    (tmp_path / name / "rows.csv").write_text(f"{uuid.uuid4()}\n")
    artifact = client.upload_artifact(tmp_path / name, "rows", escrow=bool(fields.get("piiFlags")))
    return str(
        client.register_dataset(
            name=name, artifactId=artifact["artifactId"], license="MIT", **fields
        )["dataset"]["datasetId"]
    )


def _approve(
    client: ModelOpsClient, keys: tuple[Ed25519PrivateKey, str], model_id: str, promotion_id: str
) -> tuple[int, Any]:
    private, key_id = keys
    promotion = client.call("GET", f"/models/{model_id}/promotions/{promotion_id}")
    signature = base64.b64encode(private.sign(promotion["statement"].encode())).decode()
    return client.request(
        "POST",
        f"/models/{model_id}/promotions/{promotion_id}/approve",
        {"keyId": key_id, "signature": signature},
    )


def test_high_risk_model_reaches_prod_only_after_gates_and_two_approvals_and_is_kms_signed(
    local_cloud: LocalCloud,
    as_role: dict[str, ModelOpsClient],
    approver_keys: dict[str, tuple[Ed25519PrivateKey, str]],
    tmp_path: Path,
) -> None:
    engineer, admin = as_role["ml-engineer"], as_role["platform-admin"]
    family = f"fraud-{uuid.uuid4().hex[:6]}"
    admin.call(
        "POST",
        f"/models/families/{family}/policy",
        {
            "riskTier": "high",
            "approvalsRequired": 2,
            "gates": {"prod": [{"metric": "accuracy", "threshold": 0.9}]},
        },
    )
    weak = _model(engineer, tmp_path, family=family, version="0.9.0", accuracy=0.7, datasets=[])
    assert engineer.request("POST", f"/models/{weak}/promote", {"targetStage": "staging"})[0] == 200
    status, blocked = engineer.request("POST", f"/models/{weak}/promote", {"targetStage": "prod"})
    assert (status, blocked["error"]["code"]) == (409, "PROMOTION_BLOCKED")
    assert blocked["error"]["details"][0]["gate"] == "metrics"

    model_id = _model(
        engineer, tmp_path, family=family, version="1.0.0", accuracy=0.95, datasets=[]
    )
    engineer.call("POST", f"/models/{model_id}/promote", {"targetStage": "staging"})
    status, pending = engineer.request(
        "POST", f"/models/{model_id}/promote", {"targetStage": "prod"}
    )
    assert status == 202 and pending["promotion"]["status"] == "PENDING_APPROVAL"
    promotion_id = pending["promotion"]["promotionId"]
    assert (
        engineer.request(
            "POST",
            f"/models/{model_id}/promotions/{promotion_id}/approve",
            {"keyId": approver_keys["approver"][1], "signature": "AA=="},
        )[0]
        == 403
    )

    status, first = _approve(as_role["approver"], approver_keys["approver"], model_id, promotion_id)
    assert status == 202 and len(first["promotion"]["approvals"]) == 1
    status, done = _approve(
        as_role["approver-2"], approver_keys["approver-2"], model_id, promotion_id
    )
    assert status == 200 and done["model"]["status"] == "prod"

    signature = ManifestSignature.model_validate(done["promotion"]["signature"])
    kms = local_cloud.client("kms")
    public_key = kms.get_public_key(KeyId=local_cloud.key_arns[platform.SIGNING_KEY.logical_id])[
        "PublicKey"
    ]
    assert verify_statement(signature, done["promotion"]["statement"].encode(), public_key)
    assert engineer.get_model(model_id)["model"]["signature"] == signature.signature


def test_pii_dataset_blocks_promotion_until_an_approver_approves_it(
    as_role: dict[str, ModelOpsClient], tmp_path: Path
) -> None:
    engineer = as_role["ml-engineer"]
    pii = _dataset(engineer, tmp_path, f"customers-{uuid.uuid4().hex[:6]}", piiFlags=["email"])
    model_id = _model(
        engineer,
        tmp_path,
        family=f"churn-{uuid.uuid4().hex[:6]}",
        version="1.0.0",
        accuracy=0.9,
        datasets=[pii],
    )
    status, blocked = engineer.request(
        "POST", f"/models/{model_id}/promote", {"targetStage": "staging"}
    )
    assert status == 409 and "dataset.pii-not-approved" in blocked["error"]["message"]
    assert engineer.request("POST", f"/dataset/{pii}/approve", APPROVE_FOR_INFERENCE)[0] == 403
    assert (
        as_role["approver"].request(
            "POST", f"/dataset/{pii}/approve", {**APPROVE_FOR_INFERENCE, "note": "DPIA-42"}
        )[0]
        == 200
    )
    assert (
        engineer.request("POST", f"/models/{model_id}/promote", {"targetStage": "staging"})[0]
        == 200
    )


def test_history_tells_which_version_was_in_prod_at_a_time(
    as_role: dict[str, ModelOpsClient], tmp_path: Path
) -> None:
    engineer = as_role["ml-engineer"]
    family = f"rank-{uuid.uuid4().hex[:6]}"
    first = _model(engineer, tmp_path, family=family, version="1.0.0", accuracy=0.9, datasets=[])
    for stage in ("staging", "prod"):
        engineer.call("POST", f"/models/{first}/promote", {"targetStage": stage})
    between = datetime.now().astimezone().isoformat()
    second = _model(engineer, tmp_path, family=family, version="2.0.0", accuracy=0.9, datasets=[])
    for stage in ("staging", "prod"):
        engineer.call("POST", f"/models/{second}/promote", {"targetStage": stage})
    answer = engineer.call(
        "GET", f"/models/families/{family}/history", query={"stage": "prod", "at": between}
    )
    assert answer["holder"]["modelId"] == first
    assert [c["toStage"] for c in answer["changes"]] == [
        "staging",
        "prod",
        "staging",
        "prod",
        "staging",
    ]
    assert engineer.get_model(first)["model"]["status"] == "staging"


def test_a_promoted_model_verifies_offline_with_the_stock_openssf_verifier_and_ours(
    as_role: dict[str, ModelOpsClient], tmp_path: Path
) -> None:
    import json
    import subprocess

    from modelops.domain.openssf import public_key_pem
    from modelops_cli.verify import download_model, verify_model

    engineer = as_role["ml-engineer"]
    model_id = _model(
        engineer,
        tmp_path,
        family=f"sig-{uuid.uuid4().hex[:6]}",
        version="1.0.0",
        accuracy=0.9,
        datasets=[],
    )
    engineer.call("POST", f"/models/{model_id}/promote", {"targetStage": "staging"})
    provenance = engineer.call("GET", f"/models/{model_id}/provenance")
    model_dir = download_model(engineer, provenance["model"]["artifactId"], tmp_path / "downloaded")
    lines: list[str] = []
    assert verify_model(provenance, model_dir, lines.append), lines

    p256 = next(k for k in provenance["keys"] if k["algorithm"] == "ECDSA_SHA_256")
    key_file = tmp_path / "model-key.pub"
    key_file.write_bytes(public_key_pem(base64.b64decode(p256["publicKeyDer"])))
    # The CLI, offline: saved provenance, downloaded files, pinned keys, no endpoint at all.
    ed25519 = next(k for k in provenance["keys"] if k["algorithm"] != "ECDSA_SHA_256")
    statement_key = tmp_path / "statement-key.pub"
    statement_key.write_bytes(public_key_pem(base64.b64decode(ed25519["publicKeyDer"])))
    saved = tmp_path / "provenance.json"
    saved.write_text(json.dumps(provenance))
    offline = [
        "verify", "model", model_id, "--provenance", str(saved), "--dir", str(model_dir),
        "--statement-key", str(statement_key), "--model-key", str(key_file),
        "--endpoint-url", "http://127.0.0.1:9",  # nothing listens: any call would fail
    ]  # fmt: skip
    from modelops_cli.main import main as modelops

    assert modelops(offline) == 0
    signature = model_dir / "model.sig"
    signature.write_text(json.dumps(provenance["modelSigningBundle"]))
    verifier = Path(__file__).resolve().parents[2] / "build" / "verifier" / "bin" / "model_signing"
    subprocess.run(
        ["make", "-s", "verifier"], cwd=verifier.parents[3], check=True, capture_output=True
    )
    command = [
        str(verifier),
        "verify",
        "key",
        str(model_dir),
        "--signature",
        str(signature),
        "--public_key",
        str(key_file),
    ]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0

    weights = model_dir / "w.bin"
    weights.write_bytes(bytes([weights.read_bytes()[0] ^ 1]) + weights.read_bytes()[1:])
    assert subprocess.run(command, capture_output=True, check=False).returncode != 0
    assert not verify_model(provenance, model_dir, lines.append)
    assert any("DIFFERS" in line for line in lines)
