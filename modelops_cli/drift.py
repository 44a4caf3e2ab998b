"""``modelops drift show|check|baseline``: a deployed model's drift against its baseline."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from modelops_cli import cli

FINDING_COLUMNS = ["findingId", "status", "rows", "drifted", "warned", "variant", "checkedAt"]
FEATURE_COLUMNS = ["feature", "metric", "value", "psi", "status"]


def view(drift: Mapping[str, Any]) -> str:
    baseline = drift.get("baseline")
    lines = [f"model {drift['modelId']}"]
    if baseline:
        lines.append(
            f"baseline: {baseline['status']} on {baseline['datasetId']}, {baseline.get('rows', 0)}"
            f" rows, features {', '.join(baseline.get('features') or []) or '-'}"
        )
    else:
        lines.append("baseline: none")
    quarantine = drift.get("quarantine")
    if quarantine and quarantine.get("active", True):
        lines.append(f"QUARANTINED since {quarantine['since']}: {quarantine['reason']}")
    lines += ["findings:", cli.render_table(list(drift.get("findings") or []), FINDING_COLUMNS)]
    lines += [
        "alerts:",
        cli.render_table(
            list(drift.get("alerts") or []), ["alertId", "findingId", "reason", "proposalId"]
        ),
        "proposals:",
        cli.render_table(list(drift.get("proposals") or []), ["proposalId", "status"]),
    ]
    return "\n".join(lines)


def finding_view(finding: Mapping[str, Any]) -> str:
    return "\n".join(
        [
            cli.render_record(finding, skip=("features", "evidence", "performance")),
            "features:",
            cli.render_table(list(finding.get("features") or []), FEATURE_COLUMNS),
        ]
    )


def _run_show(args: argparse.Namespace) -> int:
    cli.emit(args, cli.make_client(args).call("GET", f"/drift/{args.model_id}"), view)
    return cli.EXIT_OK


def _run_check(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    accepted = client.call("POST", f"/drift/{args.model_id}/check", {"hours": args.hours})
    if not args.wait:
        cli.emit(args, accepted)
        return cli.EXIT_OK
    say = cli.progress_for(args)
    say(f"checking the last {args.hours} h of {args.model_id} ({accepted['correlationId']})")

    def mine(drift: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [
            f
            for f in drift.get("findings") or []
            if f["correlationId"] == accepted["correlationId"]
        ]

    drift = cli.watch(
        lambda: client.call("GET", f"/drift/{args.model_id}"),
        lambda d: "; ".join(f"{f['variant']}: {f['status'].upper()}" for f in mine(d)),
        lambda d: bool(mine(d)),
        say,
        args.timeout,
    )
    findings = list(mine(drift))
    cli.emit(
        args,
        findings[0] if len(findings) == 1 else {"findings": findings},
        finding_view if len(findings) == 1 else None,
    )
    return cli.EXIT_OK


def _run_baseline(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    body: dict[str, Any] = {"datasetId": args.dataset} if args.dataset else {}
    if args.label_column:
        body["labelColumn"] = args.label_column
    baseline = client.call("POST", f"/drift/{args.model_id}/baseline", body)
    if args.wait:
        drift = cli.watch(
            lambda: client.call("GET", f"/drift/{args.model_id}"),
            lambda d: f"baseline of {args.model_id}: {(d.get('baseline') or {}).get('status')}",
            lambda d: (d.get("baseline") or {}).get("status") not in (None, "PENDING"),
            cli.progress_for(args),
            args.timeout,
        )
        baseline = drift["baseline"]
    cli.emit(args, baseline)
    if baseline["status"] == "FAILED":
        raise cli.wait_failed(
            f"the baseline FAILED: {baseline.get('statusReason') or 'no reason given'}"
        )
    return cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    drift = commands.add_parser("drift", help="drift of deployed models")
    actions = drift.add_subparsers(dest="action", required=True)
    show = actions.add_parser(
        "show", parents=[common], help="baseline, findings, alerts, proposals, quarantine"
    )
    show.add_argument("model_id")
    show.set_defaults(run=_run_show)

    check = actions.add_parser("check", parents=[common], help="check the data capture now")
    check.add_argument("model_id")
    check.add_argument("--hours", type=int, default=24, help="the window, up to now (1-336)")
    cli.add_wait(check, "its finding is recorded", timeout_s=300)
    check.set_defaults(run=_run_check)

    baseline = actions.add_parser(
        "baseline", parents=[common], help="(re)compute the baseline from the training data"
    )
    baseline.add_argument("model_id")
    baseline.add_argument("--dataset", metavar="ID", help="default: the training set")
    baseline.add_argument("--label-column")
    cli.add_wait(baseline, "the baseline is READY or FAILED", timeout_s=300)
    baseline.set_defaults(run=_run_baseline)
