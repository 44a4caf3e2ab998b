"""``modelops``: the platform's command line."""

from __future__ import annotations

import argparse
import inspect
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any


def _local_up(args: argparse.Namespace) -> int:
    from localcloud.cloud import LocalCloud

    cloud = LocalCloud(region=args.region, moto_port=args.aws_port, api_port=args.api_port).start()
    info = cloud.connection_info()
    if args.info_file:
        Path(args.info_file).write_text(json.dumps(info, indent=2))
    engineer = info["principals"]["ml-engineer"]
    print(
        "The local cloud is up.\n"
        f"  API (SigV4, service execute-api): {info['apiUrl']}\n"
        f"  AWS endpoint (moto):              {info['awsEndpointUrl']}\n"
        f"  region:                           {info['region']}\n"
        "  principals: " + ", ".join(info["principals"]) + "\n"
        "Use as the ml-engineer principal:\n"
        f"  export AWS_ACCESS_KEY_ID={engineer['accessKeyId']}\n"
        f"  export AWS_SECRET_ACCESS_KEY={engineer['secretAccessKey']}\n"
        f"  export AWS_DEFAULT_REGION={info['region']}\n"
        "Press Ctrl-C to stop.",
        flush=True,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cloud.stop()
        print("The local cloud stopped.", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from modelops_cli import (
        artifacts,
        audit,
        cli,
        cost,
        datasets,
        deploy,
        drift,
        evaluation,
        models,
        ops,
        report,
        training,
        verify,
    )

    parser = argparse.ArgumentParser(
        prog="modelops",
        description="ILLUVRSE ModelOps: one command per intent, over the SigV4-signed API.",
        epilog=cli.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    local = commands.add_parser("local", help="the local cloud").add_subparsers(
        dest="action", required=True
    )
    up = local.add_parser("up", help="run the local cloud in the foreground")
    up.add_argument("--region", default="us-east-1")
    up.add_argument("--api-port", type=int, default=0, help="API port (0: any free port)")
    up.add_argument("--aws-port", type=int, default=0, help="moto port (0: any free port)")
    up.add_argument("--info-file", help="write the connection details as JSON here")
    up.set_defaults(run=_local_up)

    common = cli.common_options()
    for module in (
        artifacts,
        datasets,
        models,
        training,
        evaluation,
        deploy,
        drift,
        audit,
        cost,
        verify,
    ):
        module.add_parser(commands, common)
    ops.add_parser(commands)  # calls AWS directly with its own options, not the API
    # report.py is written separately: it takes the shared options once its add_parser
    # accepts them (add_parser(commands, common)), its own until then.
    add_report: Any = report.add_parser
    if len(inspect.signature(add_report).parameters) > 1:
        add_report(commands, common)
    else:
        add_report(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    from modelops_cli import cli

    args = build_parser().parse_args(argv)
    return cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
