"""Dataset governance in the demo, as a client runs it: raw PII into escrow, training on it
refused, a sanitized derivative registered with lineage and trained on, and the model's
restrictions inherited from two generations up."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from examples.governance.growers import DEMO_SANITIZE_CONFIG, growers_csv
from modelops_cli import training
from modelops_cli.cli import wait_for
from modelops_cli.client import ModelOpsClient

Say = Callable[[str], None]
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "iris_train"
FAMILY = "iris-growers"
RAW_FLAGS = ["name", "email", "demographic", "location"]
RESTRICTIONS = {
    "commercialUse": True,
    "permittedPurposes": ["training", "evaluation", "inference", "monitoring"],
    "exportRegions": ["us", "eu"],
    "retentionDays": 365,
}
# What the sanitized derivative keeps that a numeric model cannot use.
NOT_FEATURES = "grower_email,postcode"


def run_governance_flow(
    client: ModelOpsClient,
    workdir: Path,
    say: Say,
    *,
    seed: int,
    escrow_probe: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """``escrow_probe(key)``: what reading that escrow object as the training role gives
    (the local cloud shows its bucket policy at work; None where no probe is available)."""
    say("21. Raw personal data goes to escrow; registering it flags its PII")
    raw_dir = workdir / "growers-raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / "growers.csv").write_bytes(growers_csv(seed % 1000))
    artifact = client.upload_artifact(raw_dir, "growers-raw", escrow=True)
    raw = client.register_dataset(
        name="growers-raw",
        artifactId=artifact["artifactId"],
        license="CC-BY-NC-4.0",
        piiFlags=RAW_FLAGS,
        sourceRefs=["https://illuvrse.dev/surveys/growers-2026"],
        usageRestrictions=RESTRICTIONS,
        description="Iris measurements with the growers who took them (synthetic people).",
    )["dataset"]
    say(
        f"   {raw['datasetId']} in {raw['storage']}, flags {', '.join(raw['piiFlags'])}, "
        f"licence {raw['license']}"
    )
    status, body = client.request(
        "GET", f"/artifact/{artifact['artifactId']}", query={"download": "true"}
    )
    say(f"   download through the API: {status} {body['error']['code']}")
    if escrow_probe is not None:
        key = f"raw/{artifact['artifactId']}/growers.csv"
        say(f"   reading it as the training role (bucket policy): {escrow_probe(key)}")

    say("22. Training on the raw dataset is refused by policy")
    job = _submit(client, workdir, raw["datasetId"], f"1.0.0-raw.{time.strftime('%Y%m%d%H%M%S')}")
    if "error" not in job:
        raise RuntimeError(f"training on raw PII was not refused: {job['jobId']}")
    say(f"   {job['status']} {job['error']['code']}")
    for detail in job["error"].get("details", []):
        say(
            f"     dataset {detail.get('datasetId')}: {detail.get('restriction')}="
            f"{detail.get('value')}, policy {detail.get('policyId')}"
        )

    derived = _sanitize(client, raw, say)
    done, limits = _train_on(client, workdir, derived, say)
    return {"raw": raw, "derived": derived, "job": done, "restrictions": limits}


def _sanitize(client: ModelOpsClient, raw: Mapping[str, Any], say: Say) -> dict[str, Any]:
    say("23. Sanitize it into a derivative (keyed pseudonyms from KMS, k-anonymity)")
    started = client.call(
        "POST",
        f"/dataset/{raw['datasetId']}/sanitize",
        {"name": "growers-clean", "config": DEMO_SANITIZE_CONFIG},
    )
    path = f"/dataset/{raw['datasetId']}/sanitizations/{started['runId']}"
    run = wait_for(lambda: client.call("GET", path), lambda r: r["status"] != "PENDING")
    if run["status"] != "COMPLETED":
        raise RuntimeError(f"sanitization failed: {run.get('failure')}")
    report = run["reports"]["growers.csv"]
    say(
        f"   rows {report['rows']}: unique on (age, postcode) {report['before']['uniqueRows']}"
        f" -> {report['after']['uniqueRows']}, min k {report['before']['minK']} -> "
        f"{report['after']['minK']} (target {report['kTarget']}), "
        f"{report['suppressedRows']} rows suppressed"
    )
    derived = client.get_dataset(run["derivedDatasetId"])
    step = derived["transformations"][0]
    say(
        f"   {derived['datasetId']}: parent {derived['sourceRefs'][0]}, raw digest "
        f"{step['params']['rawChecksum'][:16]}..., code {step['codeRef']} "
        f"sha256 {step['checksum'][:16]}..."
    )
    flags = ", ".join(derived["piiFlags"]) or "none"
    say(f"   licence {derived['license']} inherited; PII flags left: {flags}")
    return derived


def _train_on(
    client: ModelOpsClient, workdir: Path, derived: Mapping[str, Any], say: Say
) -> tuple[dict[str, Any], dict[str, Any]]:
    say("24. Train on the derivative; the model inherits the raw data's restrictions")
    version = f"1.0.0-clean.{time.strftime('%Y%m%d%H%M%S')}"
    submitted = _submit(client, workdir, derived["datasetId"], version)
    if "error" in submitted:
        raise RuntimeError(f"training on the derivative refused: {submitted['error']}")
    done = training.follow(client, submitted["jobId"], lambda _: None)
    if done["status"] != "COMPLETED":
        raise RuntimeError(f"training failed: {done.get('failure') or done['statusReason']}")
    accuracy = done["metrics"].get("train:accuracy", float("nan"))
    say(f"   job {done['jobId']} COMPLETED, training accuracy {accuracy:.3f}")
    detail = client.get_model(done["modelId"])
    limits = detail["effectiveRestrictions"]
    say(f"   {done['modelId']} effective restrictions (from {len(limits['datasets'])} datasets):")
    say(f"     licence {limits['licenseExpression']}")
    blocked_by = ", ".join(s["datasetId"] for s in limits["commercialUseForbiddenBy"])
    say(f"     commercial use {limits['commercialUse']} (forbidden by {blocked_by})")
    say(f"     regions {limits['exportRegions']}, purposes {limits['permittedPurposes']}")
    say(f"     retention {limits['retentionDays']} days, PII {limits['piiFlags'] or 'none'}")
    status, body = client.request(
        "POST", f"/models/{done['modelId']}/promote", {"targetStage": "staging"}
    )
    say(f"   promotion to staging: {status}")
    status, body = client.request(
        "POST", f"/models/{done['modelId']}/promote", {"targetStage": "prod"}
    )
    gates = body.get("error", {}).get("details", [])
    policy_gate: dict[str, Any] = next((g for g in gates if g.get("gate") == "policy"), {})
    say(f"   promotion to prod: {status} {body.get('error', {}).get('code')}")
    say(f"     {policy_gate.get('message', json.dumps(body)[:200])}")
    return done, limits


def _submit(client: ModelOpsClient, workdir: Path, dataset_id: str, version: str) -> dict[str, Any]:
    """Submit examples/iris_train on ``dataset_id``; a refusal comes back as its body."""
    from modelops_cli.client import ApiError

    try:
        return training.submit(
            client,
            EXAMPLE,
            workdir / f"training-{version}",
            family=FAMILY,
            version=version,
            datasets=[{"datasetId": dataset_id}],
            seed=7,
            hyperparameters={"epochs": 8, "exclude_columns": NOT_FEATURES},
            compute={"instanceType": "ml.m5.large", "maxRuntimeSeconds": 600},
            description="Iris trained on the sanitized growers data (make demo).",
        )
    except ApiError as refused:
        return {
            "status": refused.status,
            "error": {"code": refused.code, "message": refused.message, "details": refused.details},
        }
