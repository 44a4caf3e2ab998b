"""``modelops dataset ...``: register, read, list, trace, sanitize and approve datasets."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from typing import Any

from modelops_cli import cli

PII_FLAGS = [
    "name",
    "email",
    "phone",
    "address",
    "location",
    "government_id",
    "financial",
    "health",
    "biometric",
    "demographic",
    "online_id",
    "other",
]
LIST_COLUMNS = ["datasetId", "name", "version", "license", "storage", "piiFlags", "createdAt"]


def pages(client: Any, path: str, query: Mapping[str, Any], page_size: int = 50) -> Iterator[Any]:
    """Every item of a paged list (``items`` and ``nextToken``)."""
    token = None
    while True:
        page = client.call("GET", path, query={**query, "limit": page_size, "nextToken": token})
        yield from page["items"]
        token = page.get("nextToken")
        if not token:
            return


def register_body(args: argparse.Namespace) -> dict[str, Any]:
    restrictions: dict[str, Any] = {
        "commercialUse": not args.no_commercial_use,
        "permittedPurposes": args.purpose,
        "exportRegions": args.export_region,
    }
    if args.retention_days is not None:
        restrictions["retentionDays"] = args.retention_days
    body: dict[str, Any] = {
        "name": args.name,
        "artifactId": args.artifact,
        "license": args.license,
        "sourceRefs": args.source,
        "piiFlags": args.pii,
        "usageRestrictions": restrictions,
        "description": args.description,
    }
    if args.checksum:
        body["checksum"] = args.checksum
    return body


def lineage_view(graph: Mapping[str, Any]) -> str:
    columns = ["kind", "nodeId", "label", "license", "piiFlags", "parents"]
    summary = (
        f"root {graph.get('root')}: {len(graph.get('nodes', []))} nodes, depth {graph.get('depth')}"
    )
    return "\n".join([summary, cli.render_table(list(graph.get("nodes", [])), columns)])


def _dataset_view(answer: Mapping[str, Any]) -> str:
    created = {"created": answer["created"]} if "created" in answer else {}
    return cli.render_record({**answer.get("dataset", answer), **created})


def _run_register(args: argparse.Namespace) -> int:
    answer = cli.make_client(args).call("POST", "/dataset/register", register_body(args))
    cli.emit(args, answer, _dataset_view)
    return cli.EXIT_OK


def _run_get(args: argparse.Namespace) -> int:
    cli.emit(args, cli.make_client(args).call("GET", f"/dataset/{args.dataset_id}"))
    return cli.EXIT_OK


def _run_list(args: argparse.Namespace) -> int:
    items = list(pages(cli.make_client(args), "/dataset", {"name": args.name}))
    cli.emit(args, {"items": items}, lambda d: cli.render_table(d["items"], LIST_COLUMNS))
    return cli.EXIT_OK


def _run_lineage(args: argparse.Namespace) -> int:
    graph = cli.make_client(args).call("GET", f"/dataset/{args.dataset_id}/lineage")
    cli.emit(args, graph, lineage_view)
    return cli.EXIT_OK


def _run_restrictions(args: argparse.Namespace) -> int:
    limits = cli.make_client(args).call("GET", f"/dataset/{args.dataset_id}/restrictions")
    cli.emit(args, limits)
    return cli.EXIT_OK


def describe_sanitization(run: Mapping[str, Any]) -> str:
    if run["status"] == "COMPLETED":
        return f"sanitization {run['runId']}: COMPLETED, derived {run.get('derivedDatasetId')}"
    if run["status"] == "FAILED":
        return f"sanitization {run['runId']}: FAILED: {run.get('failure')}"
    return f"sanitization {run['runId']}: {run['status']}"


def _run_sanitize(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    body = {"name": args.name, "config": cli.read_json_file(args.config)}
    if args.description:
        body["description"] = args.description
    run = client.call("POST", f"/dataset/{args.dataset_id}/sanitize", body)
    if args.wait:
        path = f"/dataset/{args.dataset_id}/sanitizations/{run['runId']}"
        run = cli.watch(
            lambda: client.call("GET", path),
            describe_sanitization,
            lambda r: r["status"] != "PENDING",
            cli.progress_for(args),
            args.timeout,
        )
    cli.emit(args, run)
    if run["status"] == "FAILED":
        raise cli.wait_failed(f"sanitization {run['runId']} FAILED: {run.get('failure')}")
    return cli.EXIT_OK


def _run_approve(args: argparse.Namespace) -> int:
    body = {"purposes": args.purpose, "validDays": args.days, "note": args.note}
    cli.emit(args, cli.make_client(args).call("POST", f"/dataset/{args.dataset_id}/approve", body))
    return cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    dataset = commands.add_parser("dataset", help="datasets: lineage, licences, PII")
    actions = dataset.add_subparsers(dest="action", required=True)

    new = actions.add_parser("register", parents=[common], help="register an uploaded artifact")
    new.add_argument("--name", required=True)
    new.add_argument("--artifact", required=True, help="artifact id (art-...)")
    new.add_argument("--license", required=True, help="SPDX licence expression")
    new.add_argument("--checksum", help="expected root digest (refused if it differs)")
    new.add_argument(
        "--source", action="append", default=[], metavar="REF", help="dataset id or URI (repeat)"
    )
    new.add_argument(
        "--pii", action="append", default=[], choices=PII_FLAGS, metavar="FLAG",
        help=f"PII it holds (repeat): {', '.join(PII_FLAGS)}",
    )  # fmt: skip
    new.add_argument(
        "--purpose", action="append", default=[], metavar="P", help="permitted purpose (repeat)"
    )
    new.add_argument(
        "--export-region",
        action="append",
        default=[],
        metavar="R",
        help="region it may be used in (repeat; none: anywhere). --region is the AWS region",
    )
    new.add_argument("--retention-days", type=int, metavar="N")
    new.add_argument("--no-commercial-use", action="store_true")
    new.add_argument("--description", default="")
    new.set_defaults(run=_run_register)

    get = actions.add_parser("get", parents=[common], help="a dataset")
    get.add_argument("dataset_id")
    get.set_defaults(run=_run_get)

    listing = actions.add_parser("list", parents=[common], help="datasets")
    listing.add_argument("--name", help="only versions of this name")
    listing.set_defaults(run=_run_list)

    for name, run, text in (
        ("lineage", _run_lineage, "a dataset's lineage graph"),
        ("restrictions", _run_restrictions, "the restrictions it inherits from its ancestors"),
    ):
        command = actions.add_parser(name, parents=[common], help=text)
        command.add_argument("dataset_id")
        command.set_defaults(run=run)

    sanitize = actions.add_parser(
        "sanitize", parents=[common], help="sanitize an escrowed dataset into a derivative"
    )
    sanitize.add_argument("dataset_id")
    sanitize.add_argument("--name", required=True, help="the derivative's name")
    sanitize.add_argument("--config", required=True, metavar="FILE.json", help="sanitize config")
    sanitize.add_argument("--description", default="")
    cli.add_wait(sanitize, "the sanitization ends")
    sanitize.set_defaults(run=_run_sanitize)

    approve = actions.add_parser("approve", parents=[common], help="allow a PII dataset's use")
    approve.add_argument("dataset_id")
    approve.add_argument(
        "--purpose", action="append", required=True, metavar="P", help="allowed use (repeat)"
    )
    approve.add_argument("--days", type=int, required=True, help="valid for N days")
    approve.add_argument("--note", default="")
    approve.set_defaults(run=_run_approve)
