"""One warm Lambda execution environment of the local cloud: ``python -m localcloud.lambda_worker``.

What real Lambda does: an execution environment is a process started with the function's
configured environment variables plus the variables the Lambda runtime reserves
(``AWS_LAMBDA_FUNCTION_NAME``, ``AWS_REGION``, the execution role's credentials, ...), with
the code in ``/var/task`` (``LAMBDA_TASK_ROOT``, first on ``sys.path`` and the working
directory). The Python runtime (awslambdaric) imports the handler module once (the INIT
phase), then runs one invocation at a time for as long as the environment stays warm,
passing the event and a context object. stdout and stderr go to CloudWatch Logs with
``START`` / ``END`` / ``REPORT`` lines around each invocation. A handler exception is
returned as ``{"errorMessage", "errorType", "requestId", "stackTrace"}``; an import failure
as ``Runtime.ImportModuleError`` (and its siblings); a result that ``json.dumps`` cannot
encode as ``Runtime.MarshalError``.

This module is that runtime for one environment. ``localcloud.lambda_runtime`` starts it
with exactly the environment described above (nothing inherited from the local cloud's
process), ``cwd`` set to the functions root, and talks to it over the process's own pipes:

* requests: one JSON object per line on stdin
  (``{"request_id", "payload", "deadline_ms", "invoked_function_arn", "client_context",
  "trace_id"}``, ``payload`` being the event as JSON text);
* replies: one JSON object per line on the file descriptor that was stdout at start
  (``{"type": "ready", ...}`` once after INIT, then ``{"type": "result", ...}`` per request).

Before any user code runs, fd 1 is pointed at stderr and fd 0 at ``/dev/null``, so a
handler's ``print``, logging, subprocesses and stray stdin reads cannot touch the protocol;
everything the function writes reaches the local cloud through stderr (its logs).

Stdlib only: this process must not import anything the function itself would not.

Chaos (the local cloud's own switch, never set in AWS): with ``LOCALCLOUD_CRASH_AFTER`` set
to ``<service>:<Operation>:<n>:<marker file>`` in the function's environment, the
environment dies without a word (exit 137, as when its host is lost) right after the n-th
*successful* call of that AWS operation, i.e. between one write and the next. It happens
once: the marker file records it, and environments started after it run normally. Lambda
then reports ``Runtime.ExitError`` to the caller, which the workflows retry.
"""

from __future__ import annotations

import decimal
import importlib
import json
import logging
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

Handler = Callable[[Any, Any], Any]

_WORKER_FILE = os.path.abspath(__file__)
CRASH_AFTER_ENV = "LOCALCLOUD_CRASH_AFTER"
CRASH_EXIT_CODE = 137


def _arm_crash(spec: str) -> None:
    """See the module docstring: exit right after the n-th successful matching call, once.
    botocore is imported only here, and only when the switch is set (the function imports it
    anyway: every AWS call goes through ``BaseClient._make_api_call``, pynamodb's too)."""
    service, operation, nth, marker = spec.split(":", 3)
    if os.path.exists(marker):
        return
    import botocore.client

    original = botocore.client.BaseClient._make_api_call
    seen = 0

    def call(client: Any, operation_name: str, params: Any) -> Any:
        nonlocal seen
        result = original(client, operation_name, params)
        if operation_name == operation and client.meta.service_model.service_name == service:
            seen += 1
            if seen == int(nth):
                with open(marker, "w") as handle:
                    handle.write(f"{service}:{operation}:{nth}\n")
                os._exit(CRASH_EXIT_CODE)
        return result

    botocore.client.BaseClient._make_api_call = call


class CognitoIdentity:
    """``context.identity``: set only for invocations through the AWS Mobile SDK."""

    def __init__(self, cognito_identity_id: str | None, cognito_identity_pool_id: str | None):
        self.cognito_identity_id = cognito_identity_id
        self.cognito_identity_pool_id = cognito_identity_pool_id


class Client:
    """``context.client_context.client``: the mobile client's description."""

    def __init__(self, data: dict[str, Any]):
        self.installation_id: str | None = data.get("installation_id")
        self.app_title: str | None = data.get("app_title")
        self.app_version_name: str | None = data.get("app_version_name")
        self.app_version_code: str | None = data.get("app_version_code")
        self.app_package_name: str | None = data.get("app_package_name")


class ClientContext:
    """``context.client_context``: decoded from the caller's ``ClientContext`` (base64 JSON)."""

    def __init__(self, data: dict[str, Any]):
        client = data.get("client")
        self.client: Client | None = Client(client) if isinstance(client, dict) else None
        self.custom: Any = data.get("custom")
        self.env: Any = data.get("env")


class LambdaContext:
    """The context object the Python runtime passes to a handler (same attributes as awslambdaric).

    As in the real runtime, ``memory_limit_in_mb`` is the string from
    ``AWS_LAMBDA_FUNCTION_MEMORY_SIZE``.
    """

    def __init__(
        self,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        client_context: dict[str, Any] | None,
    ):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = CognitoIdentity(None, None)
        self.client_context = ClientContext(client_context) if client_context else None
        self.tenant_id: str | None = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"log_group_name={self.log_group_name},log_stream_name={self.log_stream_name},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb},"
            f"function_version={self.function_version},"
            f"invoked_function_arn={self.invoked_function_arn}])"
        )


class _RequestIdFilter(logging.Filter):
    """Adds ``aws_request_id`` to log records, as the Python runtime's root handler does."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


_REQUEST_ID_FILTER = _RequestIdFilter()


def _setup_logging() -> None:
    """The Python runtime installs a handler on the root logger (so ``basicConfig`` is a no-op)."""
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_REQUEST_ID_FILTER)
    logging.getLogger().addHandler(handler)


def _error(error_type: str, message: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "stackTrace": stack or []}


def _user_stack(tb: Any) -> list[str]:
    """The traceback without this runtime's own leading frames, formatted like awslambdaric."""
    frames = traceback.extract_tb(tb)
    while frames and os.path.abspath(frames[0].filename) == _WORKER_FILE:
        frames.pop(0)
    return traceback.format_list(frames)


def _load_handler(setting: str) -> tuple[Handler | None, dict[str, Any] | None]:
    """Resolve ``module.attr`` (slashes in the module path allowed) as the Python runtime does."""
    try:
        module_name, attr = setting.rsplit(".", 1)
    except ValueError as exc:
        return None, _error("Runtime.MalformedHandlerName", f"Bad handler '{setting}': {exc}")
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, _error(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        )
    except SyntaxError as exc:
        return None, _error(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}"
        )
    except Exception as exc:
        return None, _error(type(exc).__name__, str(exc), _user_stack(exc.__traceback__))
    handler = getattr(module, attr, None)
    if handler is None or not callable(handler):
        return None, _error(
            "Runtime.HandlerNotFound", f"Handler '{attr}' missing on module '{module_name}'"
        )
    return handler, None


def _forget_modules_from(root: str) -> None:
    """After a failed INIT, drop half-imported user modules so the next INIT starts clean."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path and os.path.abspath(path).startswith(root + os.sep):
            del sys.modules[name]


def _json_default(value: Any) -> Any:
    """The Python runtime encodes ``Decimal`` (as returned by DynamoDB) as a JSON number."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _log_error(error: dict[str, Any]) -> None:
    """The Python runtime logs unhandled errors as one record: ``[ERROR] Type: message``."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(frame.rstrip("\n") for frame in error["stackTrace"])
    sys.stderr.write("\r".join(lines) + "\n")


class _Worker:
    def __init__(self, requests: IO[bytes], replies: IO[bytes]):
        self.requests = requests
        self.replies = replies
        self.handler_setting = os.environ.get("_HANDLER", "")
        self.task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
        self.version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.handler: Handler | None = None
        self.init_error: dict[str, Any] | None = None
        self.init_duration_ms: float | None = None

    def reply(self, message: dict[str, Any]) -> None:
        self.replies.write(json.dumps(message).encode() + b"\n")
        self.replies.flush()

    def init(self) -> None:
        started = time.monotonic()
        self.handler, self.init_error = _load_handler(self.handler_setting)
        self.init_duration_ms = (time.monotonic() - started) * 1000
        if self.init_error is not None:
            _log_error(self.init_error)
            _forget_modules_from(self.task_root)

    def run(self) -> None:
        self.init()
        self.reply({"type": "ready", "pid": os.getpid(), "init_error": self.init_error})
        while True:
            line = self.requests.readline()
            if not line:
                return
            request = json.loads(line)
            self.reply({"type": "result", **self.invoke(request)})

    def invoke(self, request: dict[str, Any]) -> dict[str, Any]:
        request_id: str = request["request_id"]
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id") or ""
        _REQUEST_ID_FILTER.request_id = request_id
        sys.stderr.write(f"START RequestId: {request_id} Version: {self.version}\n")
        sys.stderr.flush()
        started = time.monotonic()
        outcome = self._call(request)
        duration_ms = (time.monotonic() - started) * 1000
        if "error" in outcome:
            outcome["error"]["requestId"] = request_id
            outcome["error"] = {
                key: outcome["error"][key]
                for key in ("errorMessage", "errorType", "requestId", "stackTrace")
            }
            _log_error(outcome["error"])
        sys.stdout.flush()
        sys.stderr.flush()
        max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {max(1, int(duration_ms + 0.999))} ms\t"
            f"Memory Size: {self.memory_mb} MB\tMax Memory Used: {max_rss_mb} MB"
        )
        if self.init_duration_ms is not None:
            report += f"\tInit Duration: {self.init_duration_ms:.2f} ms"
            self.init_duration_ms = None
        sys.stderr.write(f"END RequestId: {request_id}\n{report}\n")
        sys.stderr.flush()
        return {"request_id": request_id, **outcome}

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.handler is None:
            # A failed INIT is retried on the next invocation, as Lambda does.
            self.init()
            if self.handler is None:
                assert self.init_error is not None
                return {"error": dict(self.init_error)}
        context = LambdaContext(
            request_id=request["request_id"],
            deadline_ms=int(request["deadline_ms"]),
            invoked_function_arn=request["invoked_function_arn"],
            client_context=request.get("client_context"),
        )
        try:
            event = json.loads(request["payload"])
            result = self.handler(event, context)
        except Exception as exc:
            return {"error": _error(type(exc).__name__, str(exc), _user_stack(exc.__traceback__))}
        try:
            return {"payload": json.dumps(result, default=_json_default)}
        except (TypeError, ValueError) as exc:
            return {"error": _error("Runtime.MarshalError", f"Unable to marshal response: {exc}")}


def main() -> None:
    # Keep the protocol's pipes to ourselves before any user code can run.
    replies = os.fdopen(os.dup(1), "wb")
    requests = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    sys.path[:] = [task_root, *(p for p in sys.path if p not in ("", task_root))]
    _setup_logging()
    if os.environ.get(CRASH_AFTER_ENV):
        _arm_crash(os.environ[CRASH_AFTER_ENV])
    sys.stderr.write(f"INIT_START Runtime Version: python:{sys.version.split()[0]} (localcloud)\n")
    _Worker(requests, replies).run()


if __name__ == "__main__":
    main()
