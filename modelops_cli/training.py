"""``modelops train ...``: package training code, submit jobs, follow them, reproduce them.

``package`` turns a training directory (which must hold ``training.json``, the spec of its
entry point, hyperparameters, channels and metrics) into a source artifact: the directory's
byte-stable ``sourcedir.tar.gz`` plus ``training.json``. The same directory always packs to
the same bytes, so the archive digest the job records identifies the code exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelops.domain.archive import write_targz
from modelops.domain.training import SOURCE_ARCHIVE, SPEC_FILE, TrainingSpec
from modelops_cli import cli

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
    client: Any,
    job_id: str,
    say: Say,
    timeout_s: float = 600,
    interval_s: float = 0.5,
    *,
    detail: bool = False,
) -> dict[str, Any]:
    """Poll the job until it ends, saying each status change; returns the final record.
    ``detail``: also say each change of its status reason (the secondary status), the
    per-epoch metrics as they are logged (``GET /train/jobs/{id}/metrics``, where the API
    has it) and the final metrics as they appear in the record."""
    deadline = time.monotonic() + timeout_s
    seen = None
    reason = ""
    metrics: dict[str, Any] = {}
    epochs = EpochMetrics(client, job_id, say) if detail else None
    while True:
        job = client.get_training(job_id)
        if job["status"] != seen:
            seen = job["status"]
            reason = job.get("statusReason") or ""
            said = f" ({reason})" if reason else ""
            say(f"   {job_id}: {seen}{said}")
        elif detail and (job.get("statusReason") or "") != reason:
            reason = job.get("statusReason") or ""
            say(f"   {job_id}: {seen} - {reason}")
        if epochs is not None:
            epochs.poll(final=seen in TERMINAL)
        if detail:
            new = {k: v for k, v in (job.get("metrics") or {}).items() if metrics.get(k) != v}
            if new:
                metrics.update(new)
                shown = ", ".join(f"{k}={_number(v)}" for k, v in sorted(new.items()))
                say(f"   {job_id}: final metrics {shown}")
        if seen in TERMINAL:
            return dict(job)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{job_id} did not finish within {timeout_s:.0f} s")
        time.sleep(interval_s)


class EpochMetrics:
    """Says the epochs' metrics not said yet, reading ``GET /train/jobs/{id}/metrics`` at
    most every ``every_s`` seconds (and once more at the end). Stops asking if the API
    does not answer it (an older deployment)."""

    def __init__(self, client: Any, job_id: str, say: Say, every_s: float = 2.0) -> None:
        self._client, self._job_id, self._say, self._every = client, job_id, say, every_s
        self._said: set[tuple[str, int]] = set()
        self._last = float("-inf")
        self.available = hasattr(client, "request")

    def poll(self, final: bool = False) -> None:
        now = time.monotonic()
        if not self.available or (not final and now - self._last < self._every):
            return
        self._last = now
        status, body = self._client.request("GET", f"/train/jobs/{self._job_id}/metrics")
        if status != 200 or not isinstance(body, dict):
            self.available = False
            return
        fresh: dict[int, dict[str, float]] = {}
        for series in body.get("series") or []:
            for point in series.get("points") or []:
                key = (str(series["name"]), int(point["epoch"]))
                if key not in self._said:
                    self._said.add(key)
                    fresh.setdefault(key[1], {})[key[0]] = point["value"]
        for epoch, values in sorted(fresh.items()):
            shown = ", ".join(f"{k}={_number(v)}" for k, v in sorted(values.items()))
            self._say(f"   {self._job_id}: epoch {epoch}: {shown}")


def _number(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


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
    hyperparameters = {k: _value(v) for k, v in cli.key_values(args.hp, "--hp").items()}
    compute = {"instanceType": args.instance_type, "spot": not args.no_spot}
    extra = {"parentModelId": args.parent} if args.parent else {}
    source = Path(args.source)
    if not (source / SPEC_FILE).is_file():
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"{source} has no {SPEC_FILE}")
    client = cli.make_client(args)
    say = cli.progress_for(args)
    with tempfile.TemporaryDirectory(prefix="modelops-train-") as tmp:
        job = submit(
            client,
            source,
            Path(tmp),
            family=args.family,
            version=args.version,
            datasets=datasets,
            seed=args.seed,
            hyperparameters=hyperparameters,
            compute=compute,
            **extra,
        )
    say(f"submitted {job['jobId']}")
    if args.wait:
        job = follow(client, job["jobId"], say, timeout_s=args.timeout, detail=True)
    return _finish(args, job)


def _finish(args: argparse.Namespace, job: dict[str, Any]) -> int:
    cli.emit(args, job)
    if job["status"] in ("FAILED", "CANCELLED"):
        failure = job.get("failure") or {}
        why = failure.get("message") or job.get("statusReason") or ""
        raise cli.wait_failed(f"job {job['jobId']} {job['status']}" + (f": {why}" if why else ""))
    return cli.EXIT_OK


def _run_status(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    job = client.get_training(args.job_id)
    if args.wait:
        say = cli.progress_for(args)
        job = follow(client, args.job_id, say, timeout_s=args.timeout, detail=True)
        return _finish(args, job)
    cli.emit(args, job)
    return cli.EXIT_OK


def _run_cancel(args: argparse.Namespace) -> int:
    cli.emit(args, cli.make_client(args).cancel_training(args.job_id))
    return cli.EXIT_OK


def _run_reproduce(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    say = cli.progress_for(args)
    job = client.reproduce_training(args.job_id)
    say(f"reproducing {args.job_id} as {job['jobId']}")
    job = follow(client, job["jobId"], say, timeout_s=args.timeout, detail=True)
    if job["status"] != "COMPLETED":
        return _finish(args, job)
    cli.emit(args, job)
    report = job.get("reproduction") or {}
    say(f"identical: {report.get('identical')}")
    if not report.get("identical"):
        raise cli.CliError(
            cli.EXIT_ERROR,
            "NOT_REPRODUCED",
            f"{job['jobId']} did not reproduce {args.job_id} bit for bit",
            [{"field": k, "message": str(report.get(k))} for k in sorted(report) if "Digest" in k],
        )
    return cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    train = commands.add_parser("train", help="training jobs").add_subparsers(
        dest="action", required=True
    )
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
    cli.add_wait(new, "the job ends (status, secondary status and metrics as they come)")
    new.set_defaults(run=_run_submit)
    status = train.add_parser("status", parents=[common], help="a job's record")
    status.add_argument("job_id")
    cli.add_wait(status, "the job ends")
    status.set_defaults(run=_run_status)
    cancel = train.add_parser(
        "cancel", parents=[common], help="cancel a job (checkpoints are kept)"
    )
    cancel.add_argument("job_id")
    cancel.set_defaults(run=_run_cancel)
    reproduce = train.add_parser(
        "reproduce",
        parents=[common],
        help="re-run a job and print its reproduction attestation (waits)",
    )
    reproduce.add_argument("job_id")
    reproduce.add_argument("--timeout", type=float, default=1800, metavar="SECONDS")
    reproduce.set_defaults(run=_run_reproduce)
