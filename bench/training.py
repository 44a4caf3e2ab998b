"""Orchestration overhead of training: submit -> registered model on the local cloud (API,
Step Functions, task functions, the SageMaker executor, output registration) against the
peer, the same training script run directly under the same container contract.

Two sizes: a short job, where the overhead is a fixed few seconds (cold task functions,
one-second polls, staging inputs, hashing outputs), and a long one (paced epochs), where
the ratio is what the target (<= 1.3) is about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from modelops_cli import training
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import EXAMPLE, _write_iris, stratified_split

# A short job is all overhead: the first job also pays every task function's cold start.
# Its target is that overhead stays within a fixed allowance.
FIXED_ALLOWANCE_S = 8.0
# The long job: 40 epochs of a quarter second, each checkpointed (real epochs take minutes;
# what matters here is that training time dominates, as it does in practice).
SIZES: dict[str, dict[str, Any]] = {
    "short": {"epochs": 20},
    "long": {"epochs": 40, "min_epoch_seconds": 0.25},
}


def _direct(split: Path, hyperparameters: dict[str, Any], seed: int, work: Path) -> float:
    """The peer: train.py under the SageMaker contract, no platform around it."""
    config = work / "input" / "config"
    config.mkdir(parents=True)
    values = {k: str(v) for k, v in {**hyperparameters, "seed": seed}.items()}
    (config / "hyperparameters.json").write_text(json.dumps(values))
    env = {
        **os.environ,
        "SM_INPUT_CONFIG_DIR": str(config),
        "SM_CHANNEL_TRAIN": str(split),
        "SM_MODEL_DIR": str(work / "model"),
        "SM_OUTPUT_DATA_DIR": str(work / "output" / "data"),
        "SM_OUTPUT_DIR": str(work / "output"),
        "SM_CHECKPOINT_DIR": str(work / "checkpoints"),
    }
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "train.py"], cwd=EXAMPLE, env=env, check=True, capture_output=True
    )
    return time.perf_counter() - started


def _platform(client: ModelOpsClient, request: dict[str, Any]) -> float:
    started = time.perf_counter()
    job = client.submit_training(**request)
    done = training.follow(client, job["jobId"], lambda _: None, timeout_s=600, interval_s=0.1)
    if done["status"] != "COMPLETED":
        raise RuntimeError(f"bench job failed: {done.get('failure')}")
    return time.perf_counter() - started


def run(sizes: dict[str, dict[str, Any]] | None = None) -> list[dict[str, object]]:
    from localcloud.cloud import LocalCloud

    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="modelops-bench-train-") as tmp, LocalCloud() as cloud:
        base = Path(tmp)
        principal = cloud.principals["ml-engineer"]
        client = ModelOpsClient(cloud.api_url, principal.session(cloud.region))
        split = stratified_split(_write_iris(base / "raw"), base / "split")
        artifact = client.upload_artifact(split, "iris-bench")
        dataset = client.register_dataset(
            name="iris-bench", artifactId=artifact["artifactId"], license="CC-BY-4.0"
        )["dataset"]["datasetId"]
        source = client.upload_artifact(training.package_source(EXAMPLE, base / "src"), "src")
        for index, (size, hyperparameters) in enumerate((sizes or SIZES).items()):
            request = {
                "modelFamily": "iris-bench",
                "modelVersion": f"1.0.{index}",
                "datasets": [{"datasetId": dataset}],
                "code": {"sourceArtifactId": source["artifactId"], "gitCommit": "uncommitted"},
                "dependencyLockDigest": training.file_digest(training.DEFAULT_LOCK),
                "seed": 1,
                "hyperparameters": hyperparameters,
                "compute": {"instanceType": "ml.m5.large", "spot": False},
            }
            ours = _platform(client, request)
            peer = _direct(split, hyperparameters, 1, base / f"direct-{size}")
            allowance = FIXED_ALLOWANCE_S if size == "short" else 0.0
            rows.append(
                {
                    "benchmark": f"training submit->registered model ({size} job)",
                    "peer": "train.py run directly"
                    + (f" + {allowance:.0f} s fixed" if allowance else ""),
                    "ours_s": round(ours, 2),
                    "peer_s": round(peer, 2),
                    "overhead_s": round(ours - peer, 2),
                    "ratio": round(ours / (peer + allowance), 3),
                    "target": "<= 1.0" if allowance else "<= 1.3",
                }
            )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
