"""``modelops cost report`` and ``modelops compute pools``: chargeback and quotas."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

Say = Callable[[str], None]


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], say: Say) -> None:
    """Rows as an aligned text table."""
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    say("   " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        say("   " + "  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _client(args: argparse.Namespace) -> Any:
    from modelops_cli.client import ModelOpsClient

    api_url = args.api_url or os.environ.get("MODELOPS_API_URL")
    if not api_url:
        raise SystemExit("give --api-url (or MODELOPS_API_URL)")
    return ModelOpsClient(api_url)


def _run_report(args: argparse.Namespace) -> int:
    query = {"groupBy": args.group_by, "from": args.start, "to": args.end, "format": args.format}
    response = _client(args).send("GET", "/cost/report", query=query)
    if response.status_code >= 400:
        print(response.text)
        return 1
    if args.format == "csv":
        print(response.text, end="")
        return 0
    report = response.json()
    rows = [*report["rows"], report["total"]]
    table(rows, ["key", "jobs", "gpuHours", "instanceHours", "costUsd"], print)
    return 0


def _run_pools(args: argparse.Namespace) -> int:
    print(json.dumps(_client(args).call("GET", "/compute/pools"), indent=2))
    return 0


def add_parser(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="the API (default: MODELOPS_API_URL)")
    cost = commands.add_parser("cost", help="chargeback").add_subparsers(
        dest="action", required=True
    )
    report = cost.add_parser("report", parents=[common], help="GPU-hours and USD, grouped")
    report.add_argument("--group-by", choices=["model", "job", "team", "pool"], default="model")
    report.add_argument("--from", dest="start", help="ISO 8601 start (default: all)")
    report.add_argument("--to", dest="end", help="ISO 8601 end (default: now)")
    report.add_argument("--format", choices=["json", "csv"], default="json")
    report.set_defaults(run=_run_report)
    compute = commands.add_parser("compute", help="compute pools").add_subparsers(
        dest="action", required=True
    )
    pools = compute.add_parser("pools", parents=[common], help="pools, quotas, usage")
    pools.set_defaults(run=_run_pools)
