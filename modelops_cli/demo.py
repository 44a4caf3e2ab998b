"""The main job, as a client runs it: ``make demo``.

Starts the local cloud (or, with MODELOPS_API_URL set, talks to a deployed stack with the
standard AWS credential chain) and, over SigV4-signed HTTP only:
1. registers scikit-learn's Iris data as a dataset with licence, source and checksum;
2. derives a training split from it (a transformation with its code's digest);
3. trains a classifier, uploads the model directory, registers the model with lineage;
4. fetches the model back with its lineage graph and OpenLineage events;
5. shows what the registry refuses: a tampered upload, a conflicting re-registration;
6-9. governs promotion (policy, signatures, multisig) and verifies the audit ledger;
10. trains ``examples/iris_train`` on the platform as a SageMaker job (managed spot, the
    local cloud reclaiming the instance twice), registering the model with lineage;
11. reproduces that job from its recorded inputs and prints the signed attestation;
12. shows what training refuses before anything starts;
13. shows a job refused for passing its team's GPU-hour quota (Resource Allocator);
14. prints the cost per model version and per pool from the usage records;
15-20. evaluates, deploys with canaries and rollback, and watches for drift;
21-24. governs a PII dataset: escrow, refusal, sanitization, training on the derivative
    with the restrictions it inherits;
25. writes the run report of the deployed model (build/demo-report.html).
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelops_cli import cost, training
from modelops_cli.client import ApiError, ModelOpsClient
from modelops_cli.demo_governance import run_governance_flow
from modelops_cli.demo_integrations import report_integration_events, run_agent_flow
from modelops_cli.demo_monitoring import evaluate_quietly, run_drift_flow, run_evaluation_flow
from modelops_cli.demo_retention import run_retention_flow
from modelops_cli.demo_watermark import run_watermark_flow

Say = Callable[[str], None]
SEED = 20261130
REPORT = Path("build") / "demo-report.html"


def _write_iris(directory: Path) -> Path:
    from sklearn.datasets import load_iris

    iris = load_iris()
    directory.mkdir(parents=True, exist_ok=True)
    header = ",".join(
        [*(n.replace(" (cm)", "").replace(" ", "_") for n in iris.feature_names), "species"]
    )
    rows = [
        ",".join([*(f"{v:.1f}" for v in features), str(iris.target_names[target])])
        for features, target in zip(iris.data, iris.target, strict=True)
    ]
    (directory / "iris.csv").write_text("\n".join([header, *rows]) + "\n")
    return directory


def stratified_split(source: Path, target: Path, seed: int = SEED) -> Path:
    """Every fifth row of each species (after a seeded shuffle) is held out for testing."""
    import random

    lines = (source / "iris.csv").read_text().splitlines()
    header, rows = lines[0], lines[1:]
    by_species: dict[str, list[str]] = {}
    for row in rows:
        by_species.setdefault(row.rsplit(",", 1)[1], []).append(row)
    rng = random.Random(seed)
    train, test = [], []
    for species in sorted(by_species):
        group = by_species[species]
        rng.shuffle(group)
        test += group[::5]
        train += [r for i, r in enumerate(group) if i % 5]
    target.mkdir(parents=True, exist_ok=True)
    (target / "train.csv").write_text("\n".join([header, *train]) + "\n")
    (target / "test.csv").write_text("\n".join([header, *test]) + "\n")
    return target


def _train(split: Path, model_dir: Path) -> dict[str, float]:
    """A logistic regression, saved as canonical JSON (byte-stable across runs)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    def load(name: str) -> tuple[Any, Any]:
        rows = [line.split(",") for line in (split / name).read_text().splitlines()[1:]]
        return np.array([[float(v) for v in r[:-1]] for r in rows]), np.array([r[-1] for r in rows])

    x_train, y_train = load("train.csv")
    x_test, y_test = load("test.csv")
    model = LogisticRegression(max_iter=500, random_state=SEED).fit(x_train, y_train)
    accuracy = float((model.predict(x_test) == y_test).mean())
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "model.json").write_text(
        json.dumps(
            {
                "kind": "logistic_regression",
                "classes": [str(c) for c in model.classes_],
                "coef": [[round(float(v), 10) for v in row] for row in model.coef_],
                "intercept": [round(float(v), 10) for v in model.intercept_],
            },
            sort_keys=True,
            separators=(",", ":"),
        )
    )
    (model_dir / "metrics.json").write_text(json.dumps({"accuracy": accuracy}, sort_keys=True))
    return {"accuracy": accuracy, "test_rows": float(len(y_test))}


def _code_digest(fn: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()


def run_flow(client: ModelOpsClient, workdir: Path, say: Say) -> dict[str, Any]:
    """The example flow; returns what it registered (the e2e tests assert on it)."""
    suffix = time.strftime("%Y%m%d%H%M%S")
    say("1. Register scikit-learn's Iris data as a dataset")
    raw_dir = _write_iris(workdir / "iris-raw")
    raw_artifact = client.upload_artifact(raw_dir, "iris-raw")
    say(f"   uploaded {raw_artifact['totalSize']} bytes, verified: {raw_artifact['artifactId']}")
    raw = client.register_dataset(
        name="iris",
        artifactId=raw_artifact["artifactId"],
        checksum=raw_artifact["rootDigest"],
        sourceRefs=["https://archive.ics.uci.edu/dataset/53/iris", "sklearn://datasets/iris"],
        license="CC-BY-4.0",
        piiFlags=[],
        usageRestrictions={
            "commercialUse": True,
            "permittedPurposes": ["training", "evaluation", "inference", "monitoring"],
        },
        description="Fisher's Iris data as shipped by scikit-learn.",
    )
    dataset = raw["dataset"]
    say(f"   dataset {dataset['datasetId']} v{dataset['version']} (created={raw['created']})")
    say(f"   licence {dataset['license']}, root digest {dataset['checksum'][:16]}...")

    say("2. Derive a stratified train/test split (a recorded transformation)")
    split_dir = stratified_split(raw_dir, workdir / "iris-split")
    split_artifact = client.upload_artifact(split_dir, "iris-split")
    split = client.register_dataset(
        name="iris-split",
        artifactId=split_artifact["artifactId"],
        sourceRefs=[raw["dataset"]["datasetId"]],
        transformations=[
            {
                "name": "stratified-split",
                "codeRef": "modelops_cli/demo.py#stratified_split",
                "checksum": _code_digest(stratified_split),
                "params": {"seed": SEED, "holdout": "1 in 5"},
            }
        ],
        license="CC-BY-4.0",
    )["dataset"]
    say(f"   dataset {split['datasetId']} derives from {raw['dataset']['datasetId']}")

    say("3. Train a classifier and register it with lineage and metrics")
    model_dir = workdir / "model"
    metrics = _train(split_dir, model_dir)
    model_artifact = client.upload_artifact(model_dir, "iris-classifier")
    version = f"1.0.0-demo.{suffix}"
    registration = {
        "family": "iris-classifier",
        "version": version,
        "artifactId": model_artifact["artifactId"],
        "codeRef": "modelops_cli/demo.py#_train",
        "metrics": metrics,
        "lineage": {"datasets": [split["datasetId"]]},
        "provenance": {"trainer": "make demo", "codeDigest": _code_digest(_train)},
    }
    model = client.register_model(**registration)["model"]
    say(f"   model {model['modelId']} = iris-classifier {version}")
    say(f"   accuracy {metrics['accuracy']:.3f} on held-out rows, status {model['status']}")
    say(f"   createdBy {model['createdBy']} (from the SigV4 principal, not the body)")

    say("4. Fetch it back with its lineage")
    detail = client.get_model(model["modelId"])
    lineage = detail["lineage"]
    for node in lineage["nodes"]:
        say(f"   {node['kind']:<8} {node['nodeId']:<34} {node['label']}")
    nodes, depth, trips = len(lineage["nodes"]), lineage["depth"], lineage["roundTrips"]
    say(f"   {nodes} nodes, depth {depth}, read in {trips} round trips")
    events = client.model_lineage(model["modelId"], openlineage=True)["events"]
    say(f"   OpenLineage export: {len(events)} RunEvents with digest, licence and PII facets")

    say("5. What the registry refuses")
    retry = client.register_model(**registration)
    say(f"   identical retry: accepted, created={retry['created']} (idempotent)")
    try:
        client.register_model(**{**registration, "artifactId": raw_artifact["artifactId"]})
    except ApiError as error:
        say(f"   same version, other content: {error.status} {error.code}")
    started = client.call(
        "POST",
        "/artifact/upload",
        {
            "name": "tampered",
            "files": [{"path": "w.bin", "size": 4, "sha256": hashlib.sha256(b"good").hexdigest()}],
        },
    )
    client.put_presigned(started["targets"][0]["url"], b"evil", 4)
    status, body = client.request("POST", f"/artifact/upload/{started['uploadId']}/complete", {})
    say(f"   bytes that do not match their declared SHA-256: {status} {body['error']['code']}")
    return {
        "raw": raw["dataset"],
        "split": split,
        "model": model,
        "lineage": lineage,
        "events": events,
    }


def run_trust_flow(
    clients: Mapping[str, tuple[ModelOpsClient, str]], registered: dict[str, Any], say: Say
) -> dict[str, Any]:
    """Governed promotion and the audit ledger, as the platform admin, the engineer and two
    approvers (each holding an Ed25519 key of their own) see them. ``clients`` maps a role
    name to its client and its principal ARN."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from modelops.domain.signing import ManifestSignature, verify_statement
    from modelops_cli.audit import Export, fetch_public_keys

    engineer, admin = clients["ml-engineer"][0], clients["platform-admin"][0]
    approvers = {name: clients[name] for name in ("approver", "approver-2")}
    model = registered["model"]
    family = model["family"]

    say("6. The platform admin makes iris-classifier high-risk and registers two approvers")
    admin.call(
        "POST",
        f"/models/families/{family}/policy",
        {
            "riskTier": "high",
            "approvalsRequired": 2,
            "gates": {"prod": [{"metric": "accuracy", "threshold": 0.9}]},
        },
    )
    keys: dict[str, tuple[Ed25519PrivateKey, str]] = {}
    for name, (_, principal) in approvers.items():
        private = (
            Ed25519PrivateKey.generate()
        )  # stays with the approver; the platform gets the public half
        der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        registered_key = admin.call(
            "POST",
            "/approvers",
            {"principal": principal, "publicKey": base64.b64encode(der).decode()},
        )["approver"]
        keys[name] = (private, registered_key["keyId"])
        say(f"   {name}: key {registered_key['keyId']}")

    say("7. A weaker candidate is refused at the prod gate")
    weak = engineer.register_model(
        **{
            "family": family,
            "version": model["version"] + ".weak",
            "artifactId": model["artifactId"],
            "codeRef": model["codeRef"],
            "metrics": {"accuracy": 0.62},
            "lineage": model["lineage"],
        }
    )["model"]
    engineer.call("POST", f"/models/{weak['modelId']}/promote", {"targetStage": "staging"})
    status, refusal = engineer.request(
        "POST", f"/models/{weak['modelId']}/promote", {"targetStage": "prod"}
    )
    say(f"   {status} {refusal['error']['code']}: {refusal['error']['message']}")

    say("8. The trained model climbs draft -> staging -> prod")
    staged = engineer.call(
        "POST", f"/models/{model['modelId']}/promote", {"targetStage": "staging"}
    )
    say(f"   staging: signed by {staged['promotion']['signature']['keyId'].rsplit('/', 1)[-1]}")
    status, pending = engineer.request(
        "POST", f"/models/{model['modelId']}/promote", {"targetStage": "prod"}
    )
    promotion = pending["promotion"]
    needed = promotion["approvalsRequired"]
    say(f"   prod: {status} {promotion['status']} ({needed} approvals needed)")
    for name, (client, _) in approvers.items():
        private, key_id = keys[name]
        signature = base64.b64encode(private.sign(promotion["statement"].encode())).decode()
        status, answer = client.request(
            "POST",
            f"/models/{model['modelId']}/promotions/{promotion['promotionId']}/approve",
            {"keyId": key_id, "signature": signature},
        )
        say(f"   {name} approves: {status} {answer['promotion']['status']}")
    promoted = answer["model"]
    record = ManifestSignature.model_validate(answer["promotion"]["signature"])
    public_keys = fetch_public_keys(engineer)
    verified = verify_statement(
        record, answer["promotion"]["statement"].encode(), public_keys[record.keyId]
    )
    say(
        f"   {family} {promoted['version']} is {promoted['status']}; KMS signature verifies "
        f"offline: {verified}"
    )

    say("9. The audit ledger, verified offline from its export and the public key")
    streams = engineer.call("GET", "/audit/streams")["streams"]
    for stream in streams:  # checkpoints come every 100 events or 15 minutes; force one now
        admin.call("POST", "/audit/checkpoint", query={"stream": stream})
    export = Export.download(engineer, streams)
    report = export.verify(public_keys)
    say(
        f"   {report.recordsChecked} events in {len(report.streams)} stream(s), "
        f"{report.checkpointsChecked} signed checkpoints, ok={report.ok}"
    )
    return {"promoted": promoted, "refusal": refusal, "ledger": report}


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "iris_train"
TRAINED_FAMILY = "iris-softmax"  # trained on the platform; low risk, so no approvals
Interrupt = Callable[[str, list[int]], None]


def run_training_flow(
    client: ModelOpsClient,
    registered: Mapping[str, Any],
    workdir: Path,
    say: Say,
    interrupt: Interrupt | None = None,
) -> dict[str, Any]:
    """Train on the platform, survive spot interruptions, reproduce bit for bit."""
    split = registered["split"]
    version = f"2.0.0-demo.{time.strftime('%Y%m%d%H%M%S')}"
    say("10. Train examples/iris_train on the platform (SageMaker contract, managed spot)")
    job = training.submit(
        client,
        EXAMPLE,
        workdir / "training",
        family=TRAINED_FAMILY,
        version=version,
        datasets=[{"datasetId": split["datasetId"]}],
        seed=SEED % 1000,
        hyperparameters={"epochs": 12, "min_epoch_seconds": 0.05},
        compute={"instanceType": "ml.g5.xlarge", "spot": True, "maxRuntimeSeconds": 600},
        description="Iris softmax regression trained by the platform (make demo).",
    )
    pinned = job["reproducibility"]
    say(f"   job {job['jobId']}: image {pinned['imageDigest'][:19]}..., seed {pinned['seed']}")
    archive, commit = pinned["sourceArchiveDigest"][:16], pinned["gitCommit"][:12]
    say(f"   source archive sha256 {archive}..., git {commit}")
    if interrupt is not None:
        interrupt(job["trainingJobName"], [4, 9])
        say("   the local cloud will reclaim the spot instance after epochs 4 and 9")
    done = training.follow(client, job["jobId"], say)
    if done["status"] != "COMPLETED":
        raise RuntimeError(f"training failed: {done.get('failure') or done['statusReason']}")
    model = client.get_model(done["modelId"])
    model_ref = next(r for r in done["artifactRefs"] if r["kind"] == "model")
    say(f"   model {done['modelId']} registered as draft, root {model_ref['rootDigest'][:16]}...")
    metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(done["metrics"].items()))
    say(f"   metrics parsed from the logs: {metrics}")
    parents = model["lineage"]["nodes"]
    say(f"   lineage: {len(parents)} nodes, dataset {split['datasetId']} among them")
    usage = done["usage"]
    say(
        f"   usage: {usage['billableSeconds']} billable s on {done['computeRequirements']['pool']}"
        f" for team {done['team']}, survived {usage['spotInterruptions']} spot interruptions"
    )

    say("11. Reproduce it from the recorded inputs")
    again = client.reproduce_training(done["jobId"])
    reproduced = training.follow(client, again["jobId"], say)
    report = reproduced["reproduction"]
    say(
        f"   identical={report['identical']}: {report['originalRootDigest'][:16]}... vs "
        f"{report['reproducedRootDigest'][:16]}..., signed by "
        f"{report['signature']['keyId'].rsplit('/', 1)[-1]}"
    )

    say("12. What training refuses before anything starts")
    bad = {
        "modelFamily": TRAINED_FAMILY,
        "modelVersion": f"{version}.bad",
        "datasets": [{"datasetId": split["datasetId"]}],
        "code": job["request"]["code"],
        "dependencyLockDigest": pinned["dependencyLockDigest"],
        "seed": 1,
    }
    for label, change in (
        ("an unknown hyperparameter", {"hyperparameters": {"momentum": 0.9}}),
        (
            "GPUs a CPU instance lacks",
            {"compute": {"instanceType": "ml.m5.large", "gpusPerInstance": 1}},
        ),
        ("an unknown dataset", {"datasets": [{"datasetId": "ds-" + "0" * 24}]}),
    ):
        status, body = client.request("POST", "/train/jobs", {**bad, **change})
        say(f"   {label}: {status} {body['error']['code']}")

    say("13. Quotas: a job that would pass the team's GPU-hours this month is refused")
    greedy = {"instanceType": "ml.p4d.24xlarge", "instanceCount": 4, "maxRuntimeSeconds": 86400}
    status, body = client.request("POST", "/train/jobs", {**bad, "compute": greedy})
    say(f"   {status} {body['error']['code']}: {body['error']['message']}")

    say("14. What it cost, per model version and pool (GET /cost/report, usage records)")
    _wait_for_usage(client, reproduced["jobId"])
    for group_by in ("model", "pool"):
        report = client.call("GET", "/cost/report", query={"groupBy": group_by})
        cost.table(
            [*report["rows"], report["total"]],
            ["key", "jobs", "gpuHours", "instanceHours", "costUsd"],
            say,
        )
    return {"job": done, "reproduction": reproduced, "quota": body}


def _wait_for_usage(client: ModelOpsClient, job_id: str, timeout_s: float = 30) -> None:
    """Usage is recorded by the workflow's last steps, just after the job ends."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        report = client.call("GET", "/cost/report", query={"groupBy": "job"})
        if any(row["key"] == job_id for row in report["rows"]):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no usage record for {job_id} within {timeout_s:.0f} s")


Fault = Callable[[str, str], None]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.5, 5.0, 1.9]]
CANARY = {
    "canaryPercent": 30,
    "bakeSeconds": 4,
    "thresholds": {"minInvocations": 10, "maxErrorRate": 0.05, "maxPredictionDivergence": 0.5},
}


def run_serving_flow(
    client: ModelOpsClient,
    trained: Mapping[str, Any],
    workdir: Path,
    say: Say,
    *,
    invoke: Callable[[str], str],
    fault: Fault | None = None,
) -> dict[str, Any]:
    """Deploy the trained model, then a good canary (promoted) and a bad one (rolled back).
    ``invoke(endpoint)`` sends one prediction request and returns the variant that answered."""
    job = trained["job"]
    say("16. Promote the trained model to prod and deploy it (verified against its signature)")
    first = str(job["modelId"])
    _to_prod(client, first)
    live = _deployed(client, _deploy(client, first, {}), say)
    endpoint = live["endpointName"]
    say(
        f"   {endpoint}: IN_SERVICE, artifact {live['provenance']['artifactRootDigest'][:16]}...,"
        f" signed for prod by {str(live['provenance']['signatureKeyId']).rsplit('/', 1)[-1]}"
    )
    say(f"   a prediction answered by variant {invoke(endpoint)}")

    say("17. Train a second version and roll it out as a 30% canary under traffic")
    second = _second_version(client, job, workdir, say)
    if trained.get("holdout"):  # the family's gate needs a passing evaluation
        evaluate_quietly(client, second, str(trained["holdout"]), workdir / "second-eval")
    _to_prod(client, second)
    with Traffic(invoke, endpoint) as traffic:
        good = _deployed(client, _deploy(client, second, CANARY), say)
    _say_decision(good, traffic, say)

    say("18. Roll out a bad canary (the local cloud makes it fail half its requests)")
    started = _deploy(client, first, CANARY)
    _wait_status(client, started["deployId"], "BAKING")
    if fault is not None:
        fault(endpoint, "canary")
    with Traffic(invoke, endpoint) as traffic:
        bad = _deployed(client, started, say)
    _say_decision(bad, traffic, say)
    return {"live": live, "good": good, "bad": bad}


def _to_prod(client: ModelOpsClient, model_id: str) -> None:
    for stage in ("staging", "prod"):
        client.call("POST", f"/models/{model_id}/promote", {"targetStage": stage})


def _deploy(client: ModelOpsClient, model_id: str, canary: Mapping[str, Any]) -> dict[str, Any]:
    body = {"modelId": model_id, "env": "prod", "route": "iris", "canary": dict(canary)}
    headers = {"Idempotency-Key": f"deploy-{model_id}-{time.time_ns()}"}
    return dict(client.call("POST", "/serve/deploy", body, headers=headers))


def _wait_status(client: ModelOpsClient, deploy_id: str, *statuses: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while True:
        record = client.call("GET", f"/serve/{deploy_id}")
        if record["status"] in statuses:
            return dict(record)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{deploy_id} is still {record['status']}")
        time.sleep(0.2)


def _deployed(client: ModelOpsClient, started: Mapping[str, Any], say: Say) -> dict[str, Any]:
    done = _wait_status(
        client, started["deployId"], "IN_SERVICE", "ROLLED_BACK", "FAILED", "SUPERSEDED"
    )
    say(f"   {done['deployId']} ({done['version']}): {done['status']} {done['statusReason']}")
    return done


def _second_version(client: ModelOpsClient, job: Mapping[str, Any], workdir: Path, say: Say) -> str:
    request = job["request"]
    again = training.submit(
        client,
        EXAMPLE,
        workdir / "second",
        family=TRAINED_FAMILY,
        version=f"{job['modelVersion']}.2",
        datasets=request["datasets"],
        seed=request["seed"] + 1,
        hyperparameters={"epochs": 12},
        compute={"instanceType": "ml.g5.xlarge", "spot": True, "maxRuntimeSeconds": 600},
    )
    done = training.follow(client, again["jobId"], lambda _: None)
    say(f"   trained {done['modelId']} (seed {request['seed'] + 1})")
    return str(done["modelId"])


def _say_decision(record: Mapping[str, Any], traffic: Traffic, say: Say) -> None:
    evidence = (record.get("decision") or {}).get("evidence") or {}
    for role in ("baseline", "canary"):
        say(
            f"   {role:<8} p95 {evidence.get(f'{role}P95Ms', 0):6.2f} ms, error rate "
            f"{evidence.get(f'{role}ErrorRate', 0):.3f}, "
            f"{int(evidence.get(f'{role}Invocations', 0))} requests in the bake window"
        )
    answered = ", ".join(f"{k}={v}" for k, v in sorted(traffic.answered.items()))
    say(f"   traffic meanwhile: {answered}; model errors {traffic.failed}, lost {traffic.lost}")


class Traffic:
    """Requests in the background while a rollout runs; counts who answered."""

    def __init__(self, invoke: Callable[[str], str], endpoint: str) -> None:
        import threading

        self._invoke, self._endpoint = invoke, endpoint
        self.answered: dict[str, int] = {}
        self.failed = self.lost = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                variant = self._invoke(self._endpoint)
            except ModelFailed:
                self.failed += 1
                continue
            except Exception:  # counted: a request nobody answered
                self.lost += 1
                continue
            self.answered[variant] = self.answered.get(variant, 0) + 1


class ModelFailed(Exception):
    """The variant that took the request answered it with an error, or was unavailable."""


def iris_rows() -> list[list[float]]:
    """Every Iris row's four measurements (what users of the endpoint send)."""
    from sklearn.datasets import load_iris

    return [[round(float(v), 1) for v in row] for row in load_iris().data]


def runtime_invoker(runtime: Any, seed: int = SEED) -> Callable[[str], str]:
    """``invoke(endpoint)`` over sagemaker-runtime InvokeEndpoint: four Iris rows drawn at
    random, so data capture sees traffic distributed like the data the models learnt from."""
    import random

    send, rows, rng = rows_invoker(runtime), iris_rows(), random.Random(seed)
    return lambda endpoint: send(endpoint, rng.sample(rows, 4), "")[0]


def rows_invoker(runtime: Any) -> Callable[[str, list[list[float]], str], tuple[str, Any]]:
    """``invoke(endpoint, rows, inference_id)``: the variant that answered and its answer."""
    from botocore.exceptions import ClientError

    def invoke(endpoint: str, rows: list[list[float]], inference_id: str) -> tuple[str, Any]:
        extra = {"InferenceId": inference_id} if inference_id else {}
        try:
            answer = runtime.invoke_endpoint(
                EndpointName=endpoint,
                Body=json.dumps({"instances": rows}),
                ContentType="application/json",
                **extra,
            )
        except ClientError as error:
            # A clear 5xx: the model failed, or its instance is down until it is replaced.
            if error.response["Error"]["Code"] in {"ModelError", "ServiceUnavailable"}:
                raise ModelFailed(str(error)) from error
            raise
        return str(answer["InvokedProductionVariant"]), json.loads(answer["Body"].read())

    return invoke


def _escrow_probe(cloud: Any) -> Callable[[str], str]:
    """What reading an escrow object as the training role (training, evaluation and
    endpoints run as it) gets from the local cloud's S3: its bucket policy's answer."""
    from botocore.exceptions import ClientError

    from modelops import platform

    def probe(key: str) -> str:
        session = cloud.role_session(cloud.names[platform.TRAINING_ROLE.logical_id], "demo")
        s3 = session.client("s3", endpoint_url=cloud.endpoint_url)
        try:
            s3.get_object(Bucket=cloud.names[platform.ESCROW_BUCKET.logical_id], Key=key)
        except ClientError as refused:
            return f"{refused.response['Error']['Code']} for {platform.TRAINING_ROLE.logical_id}"
        return "read (the bucket policy is not enforced here)"

    return probe


def main() -> int:
    started = time.perf_counter()
    say: Say = lambda line: print(line, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="modelops-demo-") as tmp:
        api_url = os.environ.get("MODELOPS_API_URL")
        if api_url:
            say(f"Using the deployed API at {api_url} with the standard AWS credential chain")
            client = ModelOpsClient(api_url)
            trained = run_training_flow(client, run_flow(client, Path(tmp), say), Path(tmp), say)
            import boto3

            runtime = boto3.client("sagemaker-runtime")
            run_serving_flow(client, trained, Path(tmp), say, invoke=runtime_invoker(runtime))
            run_governance_flow(client, Path(tmp), say, seed=SEED)
        else:
            from localcloud.cloud import LocalCloud

            log_path = Path(".localcloud") / "demo-functions.log"
            with LocalCloud(log_file=log_path) as cloud:
                clients = {
                    name: (ModelOpsClient(cloud.api_url, p.session(cloud.region)), p.arn)
                    for name, p in cloud.principals.items()
                }
                say(f"Local cloud up: API {cloud.api_url}, AWS (moto) {cloud.endpoint_url}")
                say(f"Signed as {clients['ml-engineer'][1]}; function logs in {log_path}")
                registered = run_flow(clients["ml-engineer"][0], Path(tmp), say)
                run_trust_flow(clients, registered, say)
                assert cloud.sagemaker is not None
                trained = run_training_flow(
                    clients["ml-engineer"][0],
                    registered,
                    Path(tmp),
                    say,
                    interrupt=cloud.sagemaker.plan_interruptions,
                )
                engineer = clients["ml-engineer"][0]
                evaluated = run_evaluation_flow(
                    engineer, clients["platform-admin"][0], registered, trained, Path(tmp), say=say
                )
                assert cloud.endpoints is not None
                endpoints = cloud.endpoints
                runtime = cloud.client("sagemaker-runtime")
                served = run_serving_flow(
                    engineer,
                    {**trained, **evaluated},
                    Path(tmp),
                    say,
                    invoke=runtime_invoker(runtime),
                    fault=lambda endpoint, variant: endpoints.inject_fault(
                        endpoint, variant, error_rate=0.5
                    ),
                )
                send = rows_invoker(runtime)
                run_drift_flow(
                    engineer,
                    clients["approver"][0],
                    served,
                    Path(tmp),
                    say,
                    invoke_rows=lambda endpoint, rows, inference_id: str(
                        send(endpoint, rows, inference_id)[1]
                    ),
                )
                run_governance_flow(
                    engineer, Path(tmp), say, seed=SEED, escrow_probe=_escrow_probe(cloud)
                )
                from modelops import platform
                from modelops_cli.report import s3_documents, write_report

                model_id = served["live"]["modelId"]
                run_watermark_flow(engineer, Path(tmp), say, model_id=model_id)
                run_retention_flow(
                    clients["platform-admin"][0],
                    engineer,
                    trained["job"],
                    Path(tmp),
                    say,
                    also=[trained["reproduction"]],
                    step=26,
                )
                family = engineer.get_model(model_id)["model"]["family"]
                run_agent_flow(clients["kernel"][0], family, Path(tmp), say)
                say("28. What Kernel, the Reasoning Graph and the Eval Engine received")
                report_integration_events(cloud.integrations, say)
                say(f"29. The run report of {model_id}")
                written = write_report(
                    engineer,
                    model_id,
                    REPORT,
                    documents=s3_documents(
                        cloud.names[platform.ARTIFACT_BUCKET.logical_id], client=cloud.client("s3")
                    ),
                )
                say(f"   {written} ({written.stat().st_size:,} bytes, self-contained): open it")
    say(f"Done in {time.perf_counter() - started:.1f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
