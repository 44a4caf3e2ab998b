"""What every ``modelops`` command shares: AWS-style options, the signed client, output,
progress, waiting, and exit codes.

Common options (on every command that talks to the API)::

    --endpoint-url URL   the API base URL (default: $MODELOPS_API_URL; alias: --api-url)
    --profile NAME       the boto3/AWS CLI profile whose credentials sign the requests
    --region REGION      the SigV4 region (default: the profile's, or $AWS_DEFAULT_REGION)
    --output json|table  json prints exactly the API's JSON; table (default) is for people
    --no-progress        no progress lines on stderr

Requests are signed with SigV4 (service ``execute-api``) from the standard AWS credential
chain, like the AWS CLI. Results go to stdout; progress and errors go to stderr. An error is
printed as ``error <CODE>: <message>`` followed by one indented line per detail
(``field: message`` plus ``datasetId``/``policyId``/``restriction`` and the like), so the
user knows what to fix.

Exit codes scripts can rely on::

    0  ok
    1  server or unexpected error (5xx, network, a --wait that timed out), or an offline
       verification that failed (audit verify, verify model, train reproduce, artifact get)
    2  usage: bad arguments, no endpoint, no credentials, an unknown profile, an unreadable
       local file
    3  not found (404)
    4  invalid request (400, 422)
    5  forbidden or denied by policy (401, 403)
    6  conflict or blocked (409)
    7  throttled or over quota (429)
    8  a --wait ended badly: job FAILED/CANCELLED, deployment ROLLED_BACK/FAILED,
       sanitization or baseline FAILED, evaluation not COMPLETED
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from modelops_cli.client import ApiError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INVALID = 4
EXIT_FORBIDDEN = 5
EXIT_CONFLICT = 6
EXIT_THROTTLED = 7
EXIT_WAIT_FAILED = 8

EXIT_CODES_HELP = """\
exit codes:
  0  ok
  1  server or unexpected error (5xx, network, --wait timed out), or a failed verification
  2  usage (bad arguments, no endpoint or credentials, unreadable local file)
  3  not found (404)
  4  invalid request (400, 422)
  5  forbidden or denied by policy (401, 403)
  6  conflict or blocked (409)
  7  throttled or over quota (429)
  8  a --wait ended badly (job FAILED/CANCELLED, deployment ROLLED_BACK/FAILED,
     sanitization or baseline FAILED)

Requests are SigV4-signed (service execute-api) with the standard AWS credential chain.
Results go to stdout, progress and errors to stderr."""

# Keys of an error detail that say what to fix, printed first (in this order).
DETAIL_KEYS = ("datasetId", "policyId", "restriction", "value")


class CliError(Exception):
    """A failure the CLI reports itself: ``code`` is printed, ``exit_code`` returned."""

    def __init__(
        self,
        exit_code: int,
        code: str,
        message: str,
        details: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.code = code
        self.message = message
        self.details = list(details)


def exit_code_for_status(status: int) -> int:
    """The exit code of an API answer with this HTTP status (>= 400)."""
    if status == 404:
        return EXIT_NOT_FOUND
    if status in (401, 403):
        return EXIT_FORBIDDEN
    if status == 409:
        return EXIT_CONFLICT
    if status == 429:
        return EXIT_THROTTLED
    if 400 <= status < 500:
        return EXIT_INVALID
    return EXIT_ERROR


# --- options and the client -------------------------------------------------------------


def common_options() -> argparse.ArgumentParser:
    """The parent parser of every command that talks to the API."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument(
        "--endpoint-url",
        "--api-url",
        dest="endpoint_url",
        metavar="URL",
        help="the API base URL (default: $MODELOPS_API_URL)",
    )
    group.add_argument("--profile", help="AWS profile whose credentials sign requests")
    group.add_argument("--region", help="SigV4 region (default: the profile's or environment's)")
    group.add_argument(
        "--output",
        choices=["json", "table"],
        default="table",
        help="json: exactly the API's JSON; table: for people (default)",
    )
    group.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    group.add_argument(
        "--client-cert",
        metavar="PEM",
        help="client certificate for an API on a mutual TLS domain (default: "
        "$MODELOPS_CLIENT_CERT)",
    )
    group.add_argument(
        "--client-key",
        metavar="PEM",
        help="its private key (default: $MODELOPS_CLIENT_KEY)",
    )
    return common


def client_certificate(args: argparse.Namespace) -> tuple[str, str] | None:
    """The certificate and key files to present to a mutual TLS domain; None without."""
    cert = getattr(args, "client_cert", None) or os.environ.get("MODELOPS_CLIENT_CERT")
    key = getattr(args, "client_key", None) or os.environ.get("MODELOPS_CLIENT_KEY")
    if not cert and not key:
        return None
    if not (cert and key):
        raise CliError(EXIT_USAGE, "USAGE", "give both --client-cert and --client-key, or neither")
    for path in (cert, key):
        if not Path(path).is_file():
            raise CliError(EXIT_USAGE, "USAGE", f"{path}: no such file")
    return cert, key


def endpoint_url(args: argparse.Namespace) -> str | None:
    return getattr(args, "endpoint_url", None) or os.environ.get("MODELOPS_API_URL") or None


def make_client(args: argparse.Namespace) -> Any:
    """A ``ModelOpsClient`` from the common options (tests replace this function)."""
    import boto3
    from botocore.exceptions import BotoCoreError

    from modelops_cli.client import ModelOpsClient

    url = endpoint_url(args)
    if not url:
        raise CliError(EXIT_USAGE, "USAGE", "give --endpoint-url (or set MODELOPS_API_URL)")
    try:
        session = boto3.session.Session(
            profile_name=getattr(args, "profile", None),
            region_name=getattr(args, "region", None),
        )
        return ModelOpsClient(
            url,
            session=session,
            region=getattr(args, "region", None),
            client_cert=client_certificate(args),
        )
    except BotoCoreError as error:  # e.g. ProfileNotFound
        raise CliError(EXIT_USAGE, "CONFIGURATION", str(error)) from error
    except RuntimeError as error:  # no credentials anywhere in the chain
        raise CliError(EXIT_USAGE, "NO_CREDENTIALS", str(error)) from error


def read_json_file(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except OSError as error:
        raise CliError(EXIT_USAGE, "USAGE", f"cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise CliError(EXIT_USAGE, "USAGE", f"{path} is not JSON: {error}") from error


def key_values(items: Iterable[str], option: str) -> dict[str, str]:
    """``k=v`` arguments as a dict; a usage error names the option otherwise."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(EXIT_USAGE, "USAGE", f"{option} takes key=value, not {item!r}")
        pairs[key] = value
    return pairs


# --- output -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as a small aligned table (a header line, then one line per row)."""
    if not rows:
        return "(none)"
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = [[c.upper() for c in columns], *cells]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def render_record(record: Mapping[str, Any], skip: Iterable[str] = ()) -> str:
    """A record as aligned ``key: value`` lines; nested values as compact JSON."""
    skipped = set(skip)
    keys = [k for k in record if k not in skipped]
    if not keys:
        return ""
    width = max(len(k) for k in keys) + 1
    return "\n".join(f"{(k + ':').ljust(width)} {_cell(record[k])}" for k in keys)


def emit(
    args: argparse.Namespace,
    data: Any,
    view: Callable[[Any], str] | None = None,
    out: TextIO | None = None,
) -> None:
    """Print a result: the API's JSON with ``--output json``, else ``view(data)`` (default:
    key: value lines for a record, a table for a list of records)."""
    out = out or sys.stdout
    if getattr(args, "output", "table") == "json":
        print(json.dumps(data, indent=2), file=out, flush=True)
        return
    if view is not None:
        text = view(data)
    elif isinstance(data, Mapping):
        text = render_record(data)
    elif isinstance(data, list) and data and all(isinstance(r, Mapping) for r in data):
        text = render_table(data, list(data[0]))
    else:
        text = _cell(data)
    print(text, file=out, flush=True)


def format_error(code: str, message: str, details: Iterable[Any] | None = ()) -> list[str]:
    """``error <CODE>: <message>`` and one line per detail."""
    lines = [f"error {code}: {message}"]
    for detail in details or ():
        if not isinstance(detail, Mapping):
            lines.append(f"  {_cell(detail)}")
            continue
        where = detail.get("field") or detail.get("gate")
        message_ = detail.get("message")
        head = ": ".join(_cell(p) for p in (where, message_) if p is not None) or ""
        extras = [k for k in DETAIL_KEYS if k in detail] + [
            k
            for k in detail
            if k not in DETAIL_KEYS and k not in ("field", "gate", "message", "passed")
        ]
        tail = ", ".join(f"{k}={_cell(detail[k])}" for k in extras)
        if "passed" in detail:
            head = f"{head} ({'passed' if detail['passed'] else 'FAILED'})"
        lines.append("  " + " ".join(p for p in (head, f"[{tail}]" if tail else "") if p))
    return lines


def report_error(code: str, message: str, details: Iterable[Any] | None = ()) -> None:
    for line in format_error(code, message, details):
        print(line, file=sys.stderr, flush=True)


# --- progress and waiting -----------------------------------------------------------------


class Progress:
    """Progress lines on stderr (nothing with ``--no-progress``)."""

    def __init__(self, enabled: bool = True, out: TextIO | None = None) -> None:
        self.enabled = enabled
        self._out = out

    def __call__(self, line: str) -> None:
        if self.enabled:
            print(line, file=self._out or sys.stderr, flush=True)


def progress_for(args: argparse.Namespace) -> Progress:
    return Progress(not getattr(args, "no_progress", False))


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


class TransferMeter:
    """``update(path, nbytes)`` as bytes move; says done/total, rate and the file's share,
    at most every ``every_s`` seconds and whenever a file completes."""

    def __init__(
        self,
        say: Callable[[str], None],
        sizes: Mapping[str, int],
        verb: str = "uploaded",
        every_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._say, self._sizes, self._verb, self._every = say, dict(sizes), verb, every_s
        self._clock = clock
        self._started = self._last = clock()
        self.total = sum(sizes.values())
        self.done = 0
        self.per_file: dict[str, int] = {}

    def update(self, path: str, nbytes: int) -> None:
        self.done += nbytes
        self.per_file[path] = self.per_file.get(path, 0) + nbytes
        now = self._clock()
        complete = self.per_file[path] >= self._sizes.get(path, 0)
        if not complete and now - self._last < self._every:
            return
        self._last = now
        rate = self.done / max(now - self._started, 1e-6)
        percent = 100 * self.done / self.total if self.total else 100.0
        size = self._sizes.get(path, 0)
        self._say(
            f"{self._verb} {human_bytes(self.done)} of {human_bytes(self.total)} "
            f"({percent:.0f}%) at {human_bytes(rate)}/s; {path} "
            f"{human_bytes(self.per_file[path])}/{human_bytes(size)}"
            + (" done" if complete else "")
        )


def wait_for(read: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float = 120) -> Any:
    """Poll ``read`` until ``done`` says its value is what was awaited; TimeoutError else."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout_s:.0f} s: {value!r}"[:2000])
        time.sleep(0.25)


def watch(
    read: Callable[[], Mapping[str, Any]],
    describe: Callable[[Mapping[str, Any]], str],
    finished: Callable[[Mapping[str, Any]], bool],
    say: Callable[[str], None],
    timeout_s: float,
) -> dict[str, Any]:
    """``wait_for`` that says ``describe(record)`` whenever it changes."""
    said: list[str] = []

    def done(record: Mapping[str, Any]) -> bool:
        line = describe(record)
        if line and (not said or said[-1] != line):
            said.append(line)
            say(line)
        return finished(record)

    try:
        return dict(wait_for(read, done, timeout_s))
    except TimeoutError:
        raise TimeoutError(
            f"still {said[-1] if said else 'waiting'} after {timeout_s:.0f} s (it goes on)"
        ) from None


def wait_failed(message: str, details: Sequence[Mapping[str, Any]] = ()) -> CliError:
    return CliError(EXIT_WAIT_FAILED, "WAIT_FAILED", message, details)


def add_wait(parser: argparse.ArgumentParser, what: str, timeout_s: int = 1800) -> None:
    parser.add_argument(
        "--wait", action="store_true", help=f"wait until {what}, with progress on stderr"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout_s,
        metavar="SECONDS",
        help=f"give up waiting after this (default {timeout_s}; exit 1, the work goes on)",
    )


# --- running a command --------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run the parsed command, turning failures into an error on stderr and an exit code."""
    import requests

    try:
        return int(args.run(args))
    except ApiError as error:
        report_error(error.code, error.message, error.details)
        return exit_code_for_status(error.status)
    except CliError as error:
        report_error(error.code, error.message, error.details)
        return error.exit_code
    except requests.RequestException as error:
        report_error("NETWORK", f"{type(error).__name__}: {error}")
        return EXIT_ERROR
    except TimeoutError as error:
        report_error("TIMEOUT", str(error))
        return EXIT_ERROR
    except KeyboardInterrupt:
        report_error("INTERRUPTED", "stopped by the user")
        return 130
    except Exception as error:
        if os.environ.get("MODELOPS_DEBUG"):
            raise
        report_error("UNEXPECTED", f"{type(error).__name__}: {error} (MODELOPS_DEBUG=1 shows more)")
        return EXIT_ERROR
