"""The ILLUVRSE integrations on the local cloud, as each service sees them: Kernel calls the
API as the kernel principal, receives the lifecycle and audit events on its bus and relays
approvals; the Reasoning Graph and the Eval Engine receive theirs and read each referenced
record back by id; an agent runtime loads a model only through a package that verifies."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from localcloud.cloud import LocalCloud
from modelops_cli.client import ModelOpsClient
from modelops_cli.package import ModelRefused, fetch_package, load_verified, verify_package

Clients = dict[str, ModelOpsClient]


@pytest.fixture(scope="module")
def as_role(local_cloud: LocalCloud) -> Clients:
    return {
        name: ModelOpsClient(local_cloud.api_url, principal.session(local_cloud.region))
        for name, principal in local_cloud.principals.items()
    }


@pytest.fixture
def inboxes(local_cloud: LocalCloud) -> LocalCloud:
    for name in local_cloud.integrations.inboxes:
        local_cloud.integrations.received(name)  # start from empty inboxes
    return local_cloud


def _registered(client: ModelOpsClient, tmp_path: Path, family: str, **headers: str) -> str:
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    (folder / "model.bin").write_bytes(uuid.uuid4().bytes)
    artifact = client.upload_artifact(folder, "weights")
    answer = client.call(
        "POST",
        "/models/register",
        {
            "family": family,
            "version": "1.0.0",
            "artifactId": artifact["artifactId"],
            "codeRef": "git:x@abc",
            "metrics": {"accuracy": 0.9},
        },
        headers=headers,
    )
    return str(answer["model"]["modelId"])


def _of(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [e["detail"] for e in events if e["detail-type"] == detail_type]


def test_kernel_receives_the_lifecycle_and_the_audit_of_its_calls_with_its_correlation_id(
    inboxes: LocalCloud, as_role: Clients, tmp_path: Path
) -> None:
    correlation = f"kernel-{uuid.uuid4().hex[:12]}"
    model_id = _registered(
        as_role["kernel"],
        tmp_path,
        f"k-{uuid.uuid4().hex[:8]}",
        **{"X-Correlation-Id": correlation},
    )
    as_role["kernel"].call(
        "POST",
        f"/models/{model_id}/promote",
        {"targetStage": "staging"},
        headers={"X-Correlation-Id": correlation},
    )

    kernel = inboxes.integrations.received("kernel")
    (registered,) = [d for d in _of(kernel, "Model Registered") if d["modelId"] == model_id]
    (moved,) = [d for d in _of(kernel, "Model Stage Changed") if d["modelId"] == model_id]
    audited = [d for d in _of(kernel, "ModelOps Audit Event") if d["correlationId"] == correlation]
    assert registered["correlationId"] == moved["correlationId"] == correlation
    assert registered["createdBy"] == inboxes.principals["kernel"].arn
    assert (moved["toStage"], moved["signatureKeyId"] is not None) == ("staging", True)
    assert {d["event"]["action"] for d in audited} >= {"models.register", "models.promote"}
    eval_engine = inboxes.integrations.received("eval-engine")
    assert model_id in {d["modelId"] for d in _of(eval_engine, "Model Registered")}
    assert not _of(eval_engine, "ModelOps Audit Event")  # audit goes to Kernel only


def test_the_reasoning_graph_reads_back_each_dataset_reference_it_receives(
    inboxes: LocalCloud, as_role: Clients, tmp_path: Path
) -> None:
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n")
    artifact = as_role["ml-engineer"].upload_artifact(tmp_path, "rows")
    dataset = as_role["ml-engineer"].register_dataset(
        name=f"ref-{uuid.uuid4().hex[:8]}", artifactId=artifact["artifactId"], license="MIT"
    )["dataset"]

    (reference,) = _of(inboxes.integrations.received("reasoning-graph"), "Dataset Registered")
    assert reference["datasetId"] == dataset["datasetId"]
    assert reference["digest"] == artifact["rootDigest"]
    read_back = as_role["kernel"].call("GET", reference["resourcePath"])
    assert read_back["datasetId"] == dataset["datasetId"]


def _approver(local_cloud: LocalCloud, admin: ModelOpsClient) -> tuple[Ed25519PrivateKey, str]:
    private = Ed25519PrivateKey.generate()
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    key = admin.call(
        "POST",
        "/approvers",
        {
            "principal": local_cloud.principals["approver-2"].arn,
            "publicKey": base64.b64encode(der).decode(),
        },
    )
    return private, str(key["approver"]["keyId"])


def test_kernel_relays_an_approval_the_approver_signed_and_it_completes_the_promotion(
    inboxes: LocalCloud, as_role: Clients, tmp_path: Path
) -> None:
    family = f"hr-{uuid.uuid4().hex[:8]}"
    as_role["platform-admin"].call(
        "POST", f"/models/families/{family}/policy", {"riskTier": "high", "approvalsRequired": 1}
    )
    private, key_id = _approver(inboxes, as_role["platform-admin"])
    model_id = _registered(as_role["kernel"], tmp_path, family)
    as_role["kernel"].call("POST", f"/models/{model_id}/promote", {"targetStage": "staging"})
    status, pending = as_role["kernel"].request(
        "POST", f"/models/{model_id}/promote", {"targetStage": "prod"}
    )
    assert status == 202

    (waiting,) = [
        d
        for d in _of(inboxes.integrations.received("kernel"), "Promotion Awaiting Approval")
        if d["modelId"] == model_id
    ]
    signature = base64.b64encode(private.sign(waiting["statement"].encode())).decode()
    done = as_role["kernel"].call(
        "POST",
        f"/models/{model_id}/promotions/{waiting['promotionId']}/approve",
        {"keyId": key_id, "signature": signature},
    )

    assert pending["promotion"]["promotionId"] == waiting["promotionId"]
    assert done["promotion"]["status"] == "COMPLETED" and done["model"]["status"] == "prod"
    (approval,) = done["promotion"]["approvals"]
    assert approval["principal"] == inboxes.principals["approver-2"].arn
    assert approval["relayedBy"] == inboxes.principals["kernel"].arn


def test_an_agent_loads_a_package_only_when_files_signatures_and_stage_check_out(
    local_cloud: LocalCloud, as_role: Clients, tmp_path: Path
) -> None:
    agent = as_role["kernel"]
    model_id = _registered(as_role["ml-engineer"], tmp_path, f"pkg-{uuid.uuid4().hex[:8]}")
    with pytest.raises(ModelRefused, match="nothing has been signed"):
        load_verified(agent, model_id, tmp_path / "unsigned", require_stage="staging")
    as_role["ml-engineer"].call("POST", f"/models/{model_id}/promote", {"targetStage": "staging"})

    verdict = load_verified(agent, model_id, tmp_path / "ok", require_stage="staging")
    assert verdict.ok and verdict.stage == "staging"
    with pytest.raises(ModelRefused, match="NOT prod"):
        load_verified(agent, model_id, tmp_path / "prod", require_stage="prod")
    foreign = Ed25519PrivateKey.generate().public_key()
    pinned = foreign.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ModelRefused, match="INVALID"):
        load_verified(agent, model_id, tmp_path / "pinned", statement_key=pinned)

    package = fetch_package(agent, model_id, tmp_path / "tampered")
    (tmp_path / "tampered" / "model.bin").write_bytes(b"swapped weights")
    tampered = verify_package(package, tmp_path / "tampered", require_stage="staging")
    assert not tampered.ok and any("DIFFERS" in c for c in tampered.checks)
