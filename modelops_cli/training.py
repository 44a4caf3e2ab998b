"""``modelops train ...``: package training code, submit jobs, follow them, reproduce them.

``package`` turns a training directory (which must hold ``training.json``, the spec of its
entry point, hyperparameters, channels and metrics) into a source artifact: the directory's
byte-stable ``sourcedir.tar.gz`` plus ``training.json``. The same directory always packs to
the same bytes, so the archive digest the job records identifies the code exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelops.domain.archive import write_targz
from modelops.domain.training import SOURCE_ARCHIVE, SPEC_FILE, TrainingSpec

Say = Callable[[str], None]
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCK = REPO_ROOT / "constraints.txt"


def package_source(source_dir: Path, target: Path) -> Path:
    """Write ``target/sourcedir.tar.gz`` and ``target/training.json`` for ``source_dir``."""
    spec = source_dir / SPEC_FILE
    if not spec.is_file():
        raise ValueError(f"{source_dir} has no {SPEC_FILE} (the training spec)")
    TrainingSpec.parse(spec.read_bytes())  # fail here, not at submission
    target.mkdir(parents=True, exist_ok=True)
    with (target / SOURCE_ARCHIVE).open("wb") as archive:
        write_targz(source_dir, archive)
    shutil.copyfile(spec, target / SPEC_FILE)
    return target


def git_commit(path: Path) -> str:
    """The commit ``path`` was checked out at, or ``uncommitted`` if it has local changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--", "."],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"
    return "uncommitted" if dirty else head


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def submit(
    client: Any,
    source_dir: Path,
    workdir: Path,
    *,
    family: str,
    version: str,
    datasets: Sequence[Mapping[str, str]],
    seed: int,
    hyperparameters: Mapping[str, Any],
    lock_file: Path = DEFAULT_LOCK,
    **fields: Any,
) -> dict[str, Any]:
    """Package and upload ``source_dir``, then submit the job; returns the job record."""
    packed = package_source(source_dir, workdir / "source")
    source = client.upload_artifact(packed, f"{family}-source")
    return dict(
        client.submit_training(
            modelFamily=family,
            modelVersion=version,
            datasets=list(datasets),
            code={"sourceArtifactId": source["artifactId"], "gitCommit": git_commit(source_dir)},
            dependencyLockDigest=file_digest(lock_file),
            seed=seed,
            hyperparameters=dict(hyperparameters),
            **fields,
        )
    )


def follow(
    client: Any, job_id: str, say: Say, timeout_s: float = 600, interval_s: float = 0.5
) -> dict[str, Any]:
    """Poll the job until it ends, saying each status change; returns the final record."""
    deadline = time.monotonic() + timeout_s
    seen = None
    while True:
        job = client.get_training(job_id)
        if job["status"] != seen:
            seen = job["status"]
            reason = f" ({job['statusReason']})" if job.get("statusReason") else ""
            say(f"   {job_id}: {seen}{reason}")
        if seen in TERMINAL:
            return dict(job)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} did not finish within {timeout_s:.0f} s")
        time.sleep(interval_s)


def _client(args: argparse.Namespace) -> Any:
    from modelops_cli.client import ModelOpsClient

    api_url = args.api_url or os.environ.get("MODELOPS_API_URL")
    if not api_url:
        raise SystemExit("give --api-url (or MODELOPS_API_URL)")
    return ModelOpsClient(api_url)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def _run_submit(args: argparse.Namespace) -> int:
    import tempfile

    datasets = [
        {"datasetId": dataset_id, "channel": channel or "train"}
        for dataset_id, _, channel in (ref.partition(":") for ref in args.dataset)
    ]
    hyperparameters = {k: _value(v) for k, v in (item.split("=", 1) for item in args.hp)}
    compute = {"instanceType": args.instance_type, "spot": not args.no_spot}
    extra = {"parentModelId": args.parent} if args.parent else {}
    client = _client(args)
    with tempfile.TemporaryDirectory(prefix="modelops-train-") as tmp:
        job = submit(
            client,
            Path(args.source),
            Path(tmp),
            family=args.family,
            version=args.version,
            datasets=datasets,
            seed=args.seed,
            hyperparameters=hyperparameters,
            compute=compute,
            **extra,
        )
    print(f"submitted {job['jobId']}", flush=True)
    if args.wait:
        job = follow(client, job["jobId"], print)
    return 0 if job["status"] != "FAILED" else 1


def _run_status(args: argparse.Namespace) -> int:
    import json

    print(json.dumps(_client(args).get_training(args.job_id), indent=2))
    return 0


def _run_cancel(args: argparse.Namespace) -> int:
    print(_client(args).cancel_training(args.job_id)["status"])
    return 0


def _run_reproduce(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.reproduce_training(args.job_id)
    print(f"reproducing {args.job_id} as {job['jobId']}", flush=True)
    job = follow(client, job["jobId"], print)
    report = job.get("reproduction") or {}
    print(f"identical: {report.get('identical')}")
    return 0 if report.get("identical") else 1


def add_parser(commands: Any) -> None:
    train = commands.add_parser("train", help="training jobs").add_subparsers(
        dest="action", required=True
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the API (default: MODELOPS_API_URL)")
    new = train.add_parser("submit", parents=[common], help="package code and submit a job")
    new.add_argument("--source", required=True, help="training directory with training.json")
    new.add_argument("--family", required=True)
    new.add_argument("--version", required=True, help="version the model is registered as")
    new.add_argument(
        "--dataset", action="append", required=True, help="datasetId[:channel] (default: train)"
    )
    new.add_argument("--seed", type=int, required=True)
    new.add_argument("--hp", action="append", default=[], help="hyperparameter key=value")
    new.add_argument("--instance-type", default="ml.m5.large")
    new.add_argument("--no-spot", action="store_true", help="on-demand instead of managed spot")
    new.add_argument("--parent", help="fine-tune from this model id")
    new.add_argument("--wait", action="store_true", help="follow the job until it ends")
    new.set_defaults(run=_run_submit)
    for name, run, text in (
        ("status", _run_status, "a job's record"),
        ("cancel", _run_cancel, "cancel a job (checkpoints are kept)"),
        ("reproduce", _run_reproduce, "re-run a job and print its reproduction attestation"),
    ):
        command = train.add_parser(name, parents=[common], help=text)
        command.add_argument("job_id")
        command.set_defaults(run=run)
