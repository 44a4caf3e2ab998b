"""The demo's evaluation and drift steps: evaluate before promotion (metrics, fairness,
safety, the gate that reads them), then drifted traffic, the finding with the features that
moved, and the signed retrain proposal approved and submitted."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelops_cli import evaluation
from modelops_cli.cli import wait_for
from modelops_cli.client import ApiError, ModelOpsClient

Say = Callable[[str], None]
SITES = ("north", "south")
# What the evaluation gate of the platform-trained family checks before staging and prod.
EVALUATION_CONFIG: dict[str, Any] = {
    "task": "classification",
    "labelColumn": "species",
    "sensitiveAttributes": ["site"],
    "safety": {
        "allowedLabels": ["setosa", "versicolor", "virginica"],
        "perturbation": {"epsilon": 0.01, "trials": 5, "seed": 7, "maxFlipRate": 0.1},
    },
}
GATES = {
    "prod": [
        {"metric": "accuracy", "threshold": 0.85},
        {
            "metric": "fairness.site.demographic_parity_difference",
            "threshold": 0.25,
            "greaterIsBetter": False,
        },
    ]
}


def holdout_with_site(client: ModelOpsClient, split_id: str, test_csv: Path, workdir: Path) -> str:
    """The split's test rows with a collection-site column (synthetic: rows alternate between
    two sites), registered as a dataset derived from the split."""
    lines = test_csv.read_text().splitlines()
    rows = [f"{line},{SITES[i % 2]}" for i, line in enumerate(lines[1:])]
    target = workdir / "iris-holdout"
    target.mkdir(parents=True, exist_ok=True)
    (target / "holdout.csv").write_text("\n".join([f"{lines[0]},site", *rows]) + "\n")
    artifact = client.upload_artifact(target, "iris-holdout")
    dataset = client.register_dataset(
        name="iris-holdout",
        artifactId=artifact["artifactId"],
        sourceRefs=[split_id],
        transformations=[
            {
                "name": "add-site",
                "codeRef": "modelops_cli/demo_monitoring.py#holdout_with_site",
                "checksum": hashlib.sha256(
                    inspect.getsource(holdout_with_site).encode()
                ).hexdigest(),
                "params": {"sites": ",".join(SITES), "assignment": "alternate rows"},
            }
        ],
        license="CC-BY-4.0",
    )["dataset"]
    return str(dataset["datasetId"])


def run_evaluation_flow(
    engineer: ModelOpsClient,
    admin: ModelOpsClient,
    registered: Mapping[str, Any],
    trained: Mapping[str, Any],
    workdir: Path,
    *,
    say: Say,
) -> dict[str, Any]:
    model_id = str(trained["job"]["modelId"])
    family = str(trained["job"]["modelFamily"])
    say("15. Evaluate the trained model before promotion: metrics, fairness, safety")
    admin.call(
        "POST",
        f"/models/families/{family}/policy",
        {"evaluationRequired": ["staging", "prod"], "gates": GATES},
    )
    say(f"   {family} now needs a passing evaluation for staging and prod, and at prod:")
    for rule in GATES["prod"]:
        better = ">=" if rule.get("greaterIsBetter", True) else "<="
        say(f"     {rule['metric']} {better} {rule['threshold']}")
    holdout = holdout_with_site(
        engineer, registered["split"]["datasetId"], workdir / "iris-split" / "test.csv", workdir
    )
    say(f"   test set {holdout}: the held-out rows with a collection-site attribute")

    strict = {**EVALUATION_CONFIG, "safety": {"forbiddenLabels": ["virginica"]}}
    refused = evaluation.run(
        engineer, model_id, [holdout], strict, workdir / "strict", say=lambda _: None
    )
    try:
        engineer.call("POST", f"/models/{model_id}/promote", {"targetStage": "staging"})
        raise RuntimeError("a model that failed its safety checks was promoted")
    except ApiError as error:
        say(
            f"   with a config that forbids 'virginica', {refused['evaluationId']} fails safety:"
            f" promotion {error.status} {error.code}"
        )
        say(f"     {error.message}")

    record = evaluation.run(engineer, model_id, [holdout], EVALUATION_CONFIG, workdir, say=say)
    say_evaluation(record, say)
    return {"holdout": holdout, "evaluation": record}


def say_evaluation(record: Mapping[str, Any], say: Say) -> None:
    results = record["results"]
    metrics = results["metrics"]
    say(
        f"   {record['evaluationId']} on {results['rows']} rows: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items()) if v is not None)
    )
    for attribute, fairness in sorted(results.get("fairness", {}).items()):
        say(
            f"   fairness by {attribute}: demographic parity difference "
            f"{fairness['demographic_parity_difference']:.3f}, equalized odds difference "
            f"{fairness['equalized_odds_difference']:.3f}, disparate impact ratio "
            f"{fairness['disparate_impact_ratio']:.3f}"
        )
    for check in results["safety"]["checks"]:
        mark = "pass" if check["passed"] else "FAIL"
        say(f"   safety {check['name']:<24} {mark}  {check['message']}")
    say(f"   evidence digest sha256:{record['digest'][:16]}... (bound into the promotion)")


def evaluate_quietly(client: ModelOpsClient, model_id: str, holdout: str, workdir: Path) -> None:
    record = evaluation.run(
        client, model_id, [holdout], EVALUATION_CONFIG, workdir, say=lambda _: None
    )
    if record["status"] != "COMPLETED":
        raise RuntimeError(f"evaluation of {model_id} failed: {record['statusReason']}")


def drifted_rows(count: int, seed: int) -> list[list[float]]:
    """Iris-like rows whose petals grew: petal length +2.5 cm and petal width x1.8, sepals
    as usual (the shift the monitor must find, and only there)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        sepal_length, sepal_width = rng.gauss(5.85, 0.8), rng.gauss(3.05, 0.43)
        petal_length, petal_width = rng.uniform(1.0, 6.9) + 2.5, rng.uniform(0.1, 2.5) * 1.8
        rows.append([round(v, 1) for v in (sepal_length, sepal_width, petal_length, petal_width)])
    return rows


def run_drift_flow(
    engineer: ModelOpsClient,
    approver: ModelOpsClient,
    served: Mapping[str, Any],
    workdir: Path,
    say: Say,
    *,
    invoke_rows: Callable[[str, list[list[float]], str], str],
) -> dict[str, Any]:
    """``invoke_rows(endpoint, rows, inference_id)`` sends one request; returns the label."""
    live = served["good"]
    model_id, endpoint = str(live["modelId"]), str(live["endpointName"])
    say("19. Drift: the baseline computed when the model was trained, then drifted traffic")
    baseline = wait_for(
        lambda: engineer.call("GET", f"/drift/{model_id}")["baseline"],
        lambda b: b is not None and b["status"] != "PENDING",
    )
    say(
        f"   baseline of {model_id}: {baseline['rows']} training rows, features "
        f"{', '.join(baseline['features'])}, statistics sha256 "
        f"{baseline['statistics']['sha256'][:12]}..."
    )
    calm = _check(engineer, model_id)
    say(
        f"   the rollouts' traffic so far ({calm['rows']} captured rows): "
        f"{calm['status'].upper()}, drifted: {', '.join(calm['drifted']) or 'none'}"
    )
    labels = []
    for i, row in enumerate(drifted_rows(100, seed=11)):
        inference_id = f"drift-demo-{i:04d}"
        invoke_rows(endpoint, [row], inference_id)
        labels.append({"inferenceId": inference_id, "label": "virginica"})
    for batch in range(40):
        invoke_rows(endpoint, drifted_rows(25, seed=100 + batch), "")
    say(f"   sent 1,100 rows with grown petals to {endpoint} (100 of them with an inferenceId)")
    engineer.call("POST", f"/drift/{model_id}/labels", {"labels": labels})
    say(f"   posted ground truth for {len(labels)} of them (keyed by inferenceId)")
    # data capture lands in S3 in batches, as in AWS: check until the window holds it
    finding = wait_for(
        lambda: _check(engineer, model_id), lambda f: f["rows"] >= calm["rows"] + 1100, 60
    )
    say(
        f"   finding {finding['findingId']}: {finding['status'].upper()}, {finding['rows']} rows,"
        f" drifted: {', '.join(finding['drifted']) or 'none'}"
    )
    say(f"   {'feature':<14} {'metric':<13} {'value':>7}  {'PSI':>6} {'KS p':>9}  status")
    for feature in finding["features"]:
        test = feature.get("ks") or feature.get("chiSquare") or {}
        say(
            f"   {feature['feature']:<14} {feature['metric']:<13} {feature['value']:7.3f}  "
            f"{feature['psi']:6.2f} {test.get('pValue', float('nan')):9.2e}  {feature['status']}"
        )
    performance = finding.get("performance") or {}
    if performance.get("accuracy") is not None:
        say(
            f"   performance: accuracy {performance['accuracy']:.3f} on "
            f"{performance['labelled']} labelled vs {performance['referenceAccuracy']:.3f} at "
            f"baseline: {performance['status']}"
        )
    say(f"   evidence: {len(finding['evidence'])} documents with their SHA-256")

    say("20. The alert (Drift Detected -> EventBridge -> SQS -> drift-alerts): a signed proposal")
    alert = wait_for(
        lambda: engineer.call("GET", f"/drift/{model_id}")["alerts"],
        lambda alerts: any(a["findingId"] == finding["findingId"] for a in alerts),
    )[0]
    proposal = engineer.call("GET", f"/drift/proposals/{alert['proposalId']}")
    estimate = proposal["estimate"]
    say(
        f"   alert {alert['alertId']}: {alert['reason']}; remediation "
        f"{', '.join(alert['remediation'])}"
    )
    manifest = proposal["datasetManifest"]
    captured = manifest["capture"]["objects"]
    say(
        f"   proposal {proposal['proposalId']}: retrain as {proposal['request']['modelVersion']} "
        f"on {len(manifest['datasets'])} dataset(s) + {len(captured)} captured object(s) "
        f"({sum(o['size'] for o in captured):,} bytes, each with its SHA-256) to label"
    )
    say(
        f"   estimate {estimate['gpuHours']:.4f} GPU-h, ${estimate['costUsd']:.4f} "
        f"({estimate['basis']})"
    )
    say(f"   signed: {_verify_proposal(engineer, proposal)}")
    approver.call("POST", f"/drift/proposals/{proposal['proposalId']}/approve")
    job = engineer.call("POST", "/train/retrain", {"proposalId": proposal["proposalId"]})
    say(f"   approved by the approver; submitted as training job {job['jobId']}")
    say(f"   retrainReason: {job['retrainReason']}")
    return {"finding": finding, "alert": alert, "proposal": proposal, "job": job}


def _check(client: ModelOpsClient, model_id: str) -> dict[str, Any]:
    """Run a drift check over the last hour now; returns its finding."""
    before = {f["findingId"] for f in client.call("GET", f"/drift/{model_id}")["findings"]}
    client.call("POST", f"/drift/{model_id}/check", {"hours": 1})
    view = wait_for(
        lambda: client.call("GET", f"/drift/{model_id}"),
        lambda v: any(f["findingId"] not in before for f in v["findings"]),
    )
    return dict(view["findings"][0])


def _verify_proposal(client: ModelOpsClient, proposal: Mapping[str, Any]) -> str:
    """Verify the proposal's signature offline with the platform's published public key."""
    from modelops.domain.crypto import verify_ed25519

    signature = proposal["signature"]
    keys = client.call("GET", "/audit/keys")["keys"]
    key = next(k for k in keys if k["keyId"] == signature["keyId"])
    ok = verify_ed25519(
        base64.b64decode(key["publicKeyDer"]),
        base64.b64decode(signature["signature"]),
        proposal["statement"].encode(),
    )
    statement = json.loads(proposal["statement"])
    return (
        f"Ed25519 by {signature['keyId'].rsplit('/', 1)[-1]}, verified offline: {ok} "
        f"(binds manifest sha256 {statement['datasetManifestDigest'][:12]}...)"
    )
