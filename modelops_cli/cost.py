"""``modelops cost report`` and ``modelops compute pools``: chargeback and quotas."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modelops_cli import cli
from modelops_cli.client import ApiError

Say = Callable[[str], None]


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], say: Say) -> None:
    """Rows as an aligned text table."""
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    say("   " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        say("   " + "  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _run_report(args: argparse.Namespace) -> int:
    query = {"groupBy": args.group_by, "from": args.start, "to": args.end, "format": args.format}
    client = cli.make_client(args)
    if args.format == "csv":
        response = client.send("GET", "/cost/report", query=query)
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            raise ApiError(response.status_code, body)
        print(response.text, end="")
        return cli.EXIT_OK
    report = client.call("GET", "/cost/report", query=query)
    columns = ["key", "jobs", "gpuHours", "instanceHours", "costUsd"]
    cli.emit(args, report, lambda r: cli.render_table([*r["rows"], r["total"]], columns))
    return cli.EXIT_OK


def _pools_view(answer: Mapping[str, Any]) -> str:
    rows = [
        {
            "pool": (view.get("pool") or {}).get("name"),
            "region": (view.get("pool") or {}).get("region"),
            "activeGpus": view.get("activeGpus"),
            "period": view.get("period"),
            "quota": (view.get("pool") or {}).get("quota"),
            "teams": view.get("teams"),
        }
        for view in answer.get("pools", [])
    ]
    return cli.render_table(rows, ["pool", "region", "activeGpus", "period", "quota", "teams"])


def _run_pools(args: argparse.Namespace) -> int:
    cli.emit(args, cli.make_client(args).call("GET", "/compute/pools"), _pools_view)
    return cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    cost = commands.add_parser("cost", help="chargeback").add_subparsers(
        dest="action", required=True
    )
    report = cost.add_parser("report", parents=[common], help="GPU-hours and USD, grouped")
    report.add_argument("--group-by", choices=["model", "job", "team", "pool"], default="model")
    report.add_argument("--from", dest="start", help="ISO 8601 start (default: all)")
    report.add_argument("--to", dest="end", help="ISO 8601 end (default: now)")
    report.add_argument(
        "--format",
        choices=["json", "csv"],
        default="json",
        help="what to ask the API for; csv is printed as it comes (--output does not apply)",
    )
    report.set_defaults(run=_run_report)
    compute = commands.add_parser("compute", help="compute pools").add_subparsers(
        dest="action", required=True
    )
    pools = compute.add_parser("pools", parents=[common], help="pools, quotas, usage")
    pools.set_defaults(run=_run_pools)
