"""``modelops deploy create|status|scale|rollback``: SageMaker endpoints behind canaries."""

from __future__ import annotations

import argparse
import math
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from modelops_cli import cli

TERMINAL = {"IN_SERVICE", "ROLLED_BACK", "FAILED", "SUPERSEDED"}
BAD = {"ROLLED_BACK", "FAILED"}


def canary_share(record: Mapping[str, Any]) -> float | None:
    """The canary variant's share of the traffic (0-100); None without a canary next to a
    baseline (a first deployment serves everything)."""
    variants = record.get("variants") or []
    total = sum(float(v.get("weight", 0)) for v in variants)
    canary = sum(float(v.get("weight", 0)) for v in variants if v.get("role") == "canary")
    roles = {v.get("role") for v in variants}
    if not total or "canary" not in roles or roles == {"canary"}:
        return None
    return 100 * canary / total


def bake_remaining(record: Mapping[str, Any], now: datetime) -> float | None:
    """Seconds of the bake left, from when the deployment entered BAKING."""
    if record.get("status") != "BAKING":
        return None
    started = [h["at"] for h in record.get("history") or [] if h.get("status") == "BAKING"]
    if not started:
        return None
    at = datetime.fromisoformat(str(started[-1]).replace("Z", "+00:00"))
    bake = float((record.get("canaryConfig") or {}).get("bakeSeconds", 0))
    return min(bake, max(0.0, bake - (now - at).total_seconds()))


def describe(record: Mapping[str, Any], now: Callable[[], datetime] | None = None) -> str:
    """One progress line: status, canary share, bake countdown, analysis outcome."""
    parts = [f"{record['deployId']}: {record['status']}"]
    share = canary_share(record)
    if share is not None:
        parts.append(f"canary {share:.0f}% of traffic")
    remaining = bake_remaining(record, (now or _utcnow)())
    if remaining is not None:
        bake = float((record.get("canaryConfig") or {}).get("bakeSeconds", 0))
        step = 10 if bake > 60 else 1
        parts.append(f"bake {step * math.ceil(remaining / step):.0f} s left")
    decision = record.get("decision")
    if decision:
        reasons = "; ".join(decision.get("reasons") or [])
        parts.append(f"analysis: {decision['verdict']}" + (f" ({reasons})" if reasons else ""))
    if record["status"] in TERMINAL and record.get("statusReason"):
        parts.append(str(record["statusReason"]))
    return ", ".join(parts)


def _utcnow() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)


def status_view(record: Mapping[str, Any]) -> str:
    lines = [
        cli.render_record(
            record, skip=("variants", "history", "decision", "canaryConfig", "provenance")
        ),
        "variants:",
        cli.render_table(list(record.get("variants") or []), ["name", "role", "version", "weight"]),
    ]
    if record.get("decision"):
        lines += ["decision:", cli.render_record(record["decision"])]
    if record.get("history"):
        lines += ["history:", cli.render_table(list(record["history"]), ["status", "at", "reason"])]
    return "\n".join(lines)


def follow(client: Any, deploy_id: str, say: cli.Progress, timeout_s: float) -> dict[str, Any]:
    return cli.watch(
        lambda: client.call("GET", f"/serve/{deploy_id}"),
        describe,
        lambda r: r["status"] in TERMINAL,
        say,
        timeout_s,
    )


def _finish(args: argparse.Namespace, client: Any, record: dict[str, Any]) -> int:
    if args.wait:
        record = follow(client, record["deployId"], cli.progress_for(args), args.timeout)
    cli.emit(args, record, status_view)
    if record["status"] in BAD:
        raise cli.wait_failed(
            f"deployment {record['deployId']} {record['status']}: {record.get('statusReason')}"
        )
    return cli.EXIT_OK


def _run_create(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "modelId": args.model_id,
        "env": args.env,
        "route": args.route,
        "instanceType": args.instance_type,
        "instanceCount": args.instance_count,
    }
    canary = {
        key: value
        for key, value in (
            ("canaryPercent", args.canary_percent),
            ("bakeSeconds", args.bake_seconds),
        )
        if value is not None
    }
    if canary:
        body["canary"] = canary
    headers = {"Idempotency-Key": f"deploy-{uuid.uuid4()}"}
    client = cli.make_client(args)
    record = client.call("POST", "/serve/deploy", body, headers=headers)
    cli.progress_for(args)(f"deploying {args.model_id} as {record['deployId']}")
    return _finish(args, client, dict(record))


def _run_status(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    return _finish(args, client, dict(client.call("GET", f"/serve/{args.deploy_id}")))


def _run_scale(args: argparse.Namespace) -> int:
    weights = {}
    for name, value in cli.key_values(args.weight, "--weight").items():
        try:
            weights[name] = float(value)
        except ValueError:
            message = f"--weight {name}={value}: not a number"
            raise cli.CliError(cli.EXIT_USAGE, "USAGE", message) from None
    body = {"weights": weights}
    record = cli.make_client(args).call("POST", f"/serve/{args.deploy_id}/scale", body)
    cli.emit(args, record, status_view)
    return cli.EXIT_OK


def _run_rollback(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    body = {"toDeployId": args.to} if args.to else {}
    record = dict(client.call("POST", f"/serve/{args.deploy_id}/rollback", body))
    cli.progress_for(args)(f"rolling {args.deploy_id} back as {record['deployId']}")
    return _finish(args, client, record)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    deploy = commands.add_parser("deploy", help="deployments to SageMaker endpoints")
    actions = deploy.add_subparsers(dest="action", required=True)

    create = actions.add_parser("create", parents=[common], help="deploy a model version")
    create.add_argument("model_id")
    create.add_argument("--env", required=True, choices=["sandbox", "staging", "prod"])
    create.add_argument("--route", required=True, help="endpoint base name")
    create.add_argument("--canary-percent", type=int, metavar="N", help="canary share (1-50)")
    create.add_argument("--bake-seconds", type=int, metavar="N", help="bake time before analysis")
    create.add_argument("--instance-type", default="ml.m5.large")
    create.add_argument("--instance-count", type=int, default=1)
    cli.add_wait(create, "IN_SERVICE, ROLLED_BACK or FAILED")
    create.set_defaults(run=_run_create)

    status = actions.add_parser("status", parents=[common], help="a deployment")
    status.add_argument("deploy_id")
    cli.add_wait(status, "it is IN_SERVICE, ROLLED_BACK or FAILED")
    status.set_defaults(run=_run_status)

    scale = actions.add_parser("scale", parents=[common], help="set the variants' weights")
    scale.add_argument("deploy_id")
    scale.add_argument(
        "--weight",
        action="append",
        required=True,
        metavar="VARIANT=W",
        help="a variant's relative weight (repeat; 0 takes it out)",
    )
    scale.set_defaults(run=_run_scale)

    rollback = actions.add_parser(
        "rollback", parents=[common], help="all traffic back to a prior version"
    )
    rollback.add_argument("deploy_id")
    rollback.add_argument("--to", metavar="DEPLOY_ID", help="default: the one it replaced")
    cli.add_wait(rollback, "the rollback deployment is IN_SERVICE")
    rollback.set_defaults(run=_run_rollback)
