"""``modelops audit verify``: verify the audit ledger offline, with public keys only.

The export is downloaded over the API (``GET /audit/export``, signed with the standard AWS
credential chain) or read from a directory a previous run wrote. Either way nothing the
server computed is trusted: ``modelops.domain.ledger.verify_ledger`` recomputes every
record hash, chain link, Merkle root and checkpoint signature here, from the exported lines
and the public keys (``--public-key`` pins one; otherwise they are fetched from
``GET /audit/keys``).

An export directory holds ``records.jsonl`` (one ledger record per line, streams grouped,
each in seq order) and ``checkpoints.jsonl`` (one checkpoint per line).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from modelops.domain.digests import canonical_json
from modelops.domain.ledger import (
    Checkpoint,
    LedgerProblem,
    LedgerRecord,
    LedgerReport,
    ProblemKind,
    verify_ledger,
)
from modelops.domain.signing import fingerprint, public_key_der

RECORDS_FILE = "records.jsonl"
CHECKPOINTS_FILE = "checkpoints.jsonl"
EXPORT_PAGE = 1000


class Export:
    """An export as lines: exactly what is written to, and read from, a directory."""

    def __init__(self, records: list[str], checkpoints: list[str]) -> None:
        self.records = records
        self.checkpoints = checkpoints

    @classmethod
    def download(cls, client: Any, streams: Iterable[str]) -> Export:
        records: list[str] = []
        checkpoints: dict[str, None] = {}  # pages may repeat a checkpoint; keep it once
        for stream in streams:
            from_seq: int | None = 1
            while from_seq is not None:
                page = client.call(
                    "GET",
                    "/audit/export",
                    query={"stream": stream, "fromSeq": from_seq, "limit": EXPORT_PAGE},
                )
                records += page["records"]
                for checkpoint in page["checkpoints"]:
                    checkpoints[canonical_json(checkpoint).decode()] = None
                from_seq = page.get("nextFromSeq")
        return cls(records, list(checkpoints))

    @classmethod
    def read(cls, directory: Path) -> Export:
        def lines(name: str) -> list[str]:
            path = directory / name
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: not an audit export directory")
            return [line for line in path.read_text().splitlines() if line.strip()]

        return cls(lines(RECORDS_FILE), lines(CHECKPOINTS_FILE))

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, lines in ((RECORDS_FILE, self.records), (CHECKPOINTS_FILE, self.checkpoints)):
            (directory / name).write_text("".join(f"{line}\n" for line in lines))

    def verify(self, public_keys: Mapping[str, bytes] | bytes) -> LedgerReport:
        """``public_keys``: key id -> DER, or one pinned DER key for every checkpoint."""
        records: list[LedgerRecord] = []
        for number, line in enumerate(self.records, 1):
            try:
                records.append(LedgerRecord.from_line(line))
            except ValueError:
                return _unreadable(line, f"{RECORDS_FILE} line {number} is not a ledger record")
        checkpoints: list[Checkpoint] = []
        for number, line in enumerate(self.checkpoints, 1):
            try:
                checkpoints.append(Checkpoint.model_validate_json(line))
            except ValueError:
                return _unreadable(line, f"{CHECKPOINTS_FILE} line {number} is not a checkpoint")
        if isinstance(public_keys, bytes):
            public_keys = {checkpoint.keyId: public_keys for checkpoint in checkpoints}
        return verify_ledger(records, checkpoints, public_keys)


def _unreadable(line: str, message: str) -> LedgerReport:
    try:
        stream = str(json.loads(line).get("stream", "?"))
    except (ValueError, AttributeError):
        stream = "?"
    problem = LedgerProblem(kind=ProblemKind.UNREADABLE, stream=stream, message=message)
    return LedgerReport(
        ok=False,
        streams=(),
        recordsChecked=0,
        checkpointsChecked=0,
        uncheckpointed=0,
        problem=problem,
    )


def fetch_public_keys(client: Any) -> dict[str, bytes]:
    keys = client.call("GET", "/audit/keys")["keys"]
    return {key["keyId"]: base64.b64decode(key["publicKeyDer"]) for key in keys}


def print_report(
    report: LedgerReport, keys: Mapping[str, bytes] | bytes, out: TextIO | None = None
) -> None:
    out = out or sys.stdout
    ders = {"pinned": keys} if isinstance(keys, bytes) else dict(keys)
    for key_id, der in sorted(ders.items()):
        print(f"public key {key_id}: sha256 {fingerprint(der)}", file=out)
    if report.ok:
        print(
            f"ledger OK: {len(report.streams)} stream(s) ({', '.join(report.streams) or 'none'}), "
            f"{report.recordsChecked} records, {report.checkpointsChecked} signed checkpoints, "
            f"{report.uncheckpointed} records not yet checkpointed",
            file=out,
        )
        return
    problem = report.problem
    assert problem is not None
    where = (
        f"record {problem.seq}"
        if problem.seq is not None
        else f"checkpoint {problem.checkpoint}"
        if problem.checkpoint is not None
        else "export"
    )
    print(
        f"ledger verification FAILED at stream {problem.stream}, {where}: "
        f"{problem.kind.value}: {problem.message}",
        file=out,
    )


def run_verify(args: argparse.Namespace) -> int:
    from modelops_cli import cli

    export_dir = Path(args.export_dir) if args.export_dir else None
    api_url = args.endpoint_url or (None if export_dir else os.environ.get("MODELOPS_API_URL"))
    if api_url is None and export_dir is None:
        raise cli.CliError(
            cli.EXIT_USAGE, "USAGE", "give --endpoint-url (or MODELOPS_API_URL) or --export-dir"
        )
    try:
        pinned = public_key_der(Path(args.public_key).read_text()) if args.public_key else None
    except (OSError, ValueError) as error:
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"--public-key: {error}") from error
    say = cli.progress_for(args) if args.output == "json" else print

    client: Any = None
    if api_url is not None:
        from modelops_cli.client import ApiError

        args.endpoint_url = api_url
        client = cli.make_client(args)
        streams = [args.stream] if args.stream else client.call("GET", "/audit/streams")["streams"]
        try:
            export = Export.download(client, streams)
        except ApiError as error:
            if error.code != "LEDGER_CORRUPT":
                raise
            say(f"ledger verification FAILED: the export stopped: {error.message}")
            return cli.EXIT_ERROR
        if export_dir is not None:
            export.write(export_dir)
            say(f"exported {len(export.records)} records to {export_dir}")
    else:
        assert export_dir is not None
        try:
            export = Export.read(export_dir)
        except FileNotFoundError as error:
            raise cli.CliError(cli.EXIT_USAGE, "USAGE", str(error)) from error
        if args.stream:
            export = _only(export, args.stream)

    if pinned is not None:
        keys: Mapping[str, bytes] | bytes = pinned
    elif client is not None:
        keys = fetch_public_keys(client)
    else:
        raise cli.CliError(
            cli.EXIT_USAGE,
            "USAGE",
            "offline verification needs --public-key (or --endpoint-url to fetch keys)",
        )
    report = export.verify(keys)
    if args.output == "json":
        cli.emit(args, report.model_dump(mode="json"))
    else:
        print_report(report, keys)
    return cli.EXIT_OK if report.ok else cli.EXIT_ERROR


def _only(export: Export, stream: str) -> Export:
    def of_stream(line: str) -> bool:
        try:
            return bool(json.loads(line).get("stream") == stream)
        except (ValueError, AttributeError):
            return True  # keep what does not parse: verification reports it

    return Export(
        [line for line in export.records if of_stream(line)],
        [line for line in export.checkpoints if of_stream(line)],
    )


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    audit = commands.add_parser("audit", help="the audit ledger").add_subparsers(
        dest="action", required=True
    )
    verify = audit.add_parser(
        "verify",
        parents=[common],
        help="verify the ledger offline: chains, Merkle roots, checkpoint signatures",
        description="Downloads the ledger export (or reads --export-dir) and verifies it "
        "with public keys only. Exit status 0: intact; 1: the first problem is printed. "
        "The API is used when --endpoint-url or $MODELOPS_API_URL is set, unless "
        "--export-dir is read.",
    )
    verify.add_argument("--stream", help="one stream (default: every stream)")
    verify.add_argument(
        "--public-key", help="PEM public key to verify with (default: GET /audit/keys)"
    )
    verify.add_argument(
        "--export-dir",
        help="with an API URL: write the export here; without: verify this export",
    )
    verify.set_defaults(run=run_verify)
