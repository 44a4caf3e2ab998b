"""``modelops eval ...``: evaluate a model version on registered test sets (an evaluation
job running ``examples/evaluate``, or another evaluator directory), and read the results."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modelops_cli import cli
from modelops_cli.training import (
    DEFAULT_LOCK,
    REPO_ROOT,
    Say,
    file_digest,
    follow,
    git_commit,
    package_source,
)

EVALUATOR = REPO_ROOT / "examples" / "evaluate"


def run(
    client: Any,
    model_id: str,
    testsets: Sequence[str],
    config: Mapping[str, Any],
    workdir: Path,
    *,
    say: Say,
    evaluator: Path = EVALUATOR,
    **fields: Any,
) -> dict[str, Any]:
    """Package and upload the evaluator, run the evaluation, follow its job to the end;
    returns the evaluation record."""
    packed = package_source(evaluator, workdir / "evaluator")
    source = client.upload_artifact(packed, "evaluator-source")
    started = client.call(
        "POST",
        "/eval/run",
        {
            "modelId": model_id,
            "testsets": list(testsets),
            "config": dict(config),
            "evaluator": {
                "sourceArtifactId": source["artifactId"],
                "gitCommit": git_commit(evaluator),
            },
            "dependencyLockDigest": file_digest(DEFAULT_LOCK),
            **fields,
        },
    )
    follow(client, started["jobId"], say)
    deadline = time.monotonic() + 30
    while True:  # the record is completed by the job's last step
        record = client.call("GET", f"/eval/{started['evaluationId']}")
        if record["status"] != "RUNNING" or time.monotonic() > deadline:
            return dict(record)
        time.sleep(0.2)


def _run(args: argparse.Namespace) -> int:
    import tempfile

    config = cli.read_json_file(args.config)
    client = cli.make_client(args)
    with tempfile.TemporaryDirectory(prefix="modelops-eval-") as tmp:
        record = run(
            client,
            args.model,
            args.testset,
            config,
            Path(tmp),
            say=cli.progress_for(args),
            evaluator=Path(args.evaluator),
        )
    cli.emit(args, record)
    if record["status"] != "COMPLETED":
        raise cli.wait_failed(f"evaluation {record.get('evaluationId')} is {record['status']}")
    return cli.EXIT_OK


def _show(args: argparse.Namespace) -> int:
    cli.emit(args, cli.make_client(args).call("GET", f"/eval/{args.evaluation_id}"))
    return cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    evaluate = commands.add_parser("eval", help="evaluations").add_subparsers(
        dest="action", required=True
    )
    new = evaluate.add_parser(
        "run", parents=[common], help="evaluate a model version (waits for the result)"
    )
    new.add_argument("--model", required=True, help="model id")
    new.add_argument("--testset", action="append", required=True, help="dataset id (1-3)")
    new.add_argument("--config", required=True, help="modelops.evaluation-config/1 JSON file")
    new.add_argument("--evaluator", default=str(EVALUATOR), help="evaluator directory")
    new.set_defaults(run=_run)
    show = evaluate.add_parser("show", parents=[common], help="an evaluation record")
    show.add_argument("evaluation_id")
    show.set_defaults(run=_show)
