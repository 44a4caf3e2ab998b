"""The local cloud's Lambda runtime: warm worker processes behind moto's Lambda API.

What real Lambda does: each function runs in execution environments, processes that start
with the function's configured environment plus variables Lambda reserves (function name,
memory size, version, region, log group and stream, the execution role's temporary
credentials, ``LAMBDA_TASK_ROOT``). An environment runs one invocation at a time and stays
warm for later ones; concurrent invocations get more environments. The configured
``Timeout`` is enforced by stopping the environment ("Task timed out after N seconds"),
and a runtime process that exits mid-invocation fails it with ``Runtime.ExitError``. A
handler exception comes back with HTTP 200, header ``X-Amz-Function-Error: Unhandled``
(boto3: ``FunctionError``) and the payload
``{"errorMessage", "errorType", "requestId", "stackTrace"}``; Step Functions takes
``errorType`` as the state's error name, which ``Retry``/``Catch`` match. Logs go to
CloudWatch Logs group ``/aws/lambda/<name>``, one log stream per environment.
``InvocationType=Event`` is answered 202 at once and runs later; ``DryRun`` (204) only checks
that the call would be allowed.

How this module does it (pinned to moto 5.2.5): with
``default_user_config["lambda"] = {"use_docker": False}`` (set by :meth:`LambdaRuntime.install`;
moto's server reads this dict of its own process, so it is needed in server mode too)
``moto.awslambda.utils.get_backend`` returns ``LambdaSimpleBackend``, and every Lambda
invocation moto makes goes through one of two methods, both patched by ``install()``:

* ``LambdaSimpleBackend.invoke(function_name, qualifier, body, headers, response_headers)``:
  the ``Invoke`` API (which Step Functions' ``lambda:invoke`` and plain Lambda ``Resource``
  states call over HTTP at ``localhost:$MOTO_PORT``), SQS event source mappings (moto invokes
  them synchronously inside ``SendMessage``; ``x-amz-function-error`` in the response headers
  makes moto return the messages to the queue) and Lambda targets of the EventBridge
  notifications moto emits for other services (``PutEvents`` never reaches Lambda targets in
  moto: route rule -> SQS -> event source mapping instead);
* ``LambdaFunction.invoke(body, request_headers, response_headers)``: the paths that bypass
  the backend (SNS subscriptions, Kinesis and DynamoDB stream mappings, S3 notifications,
  CloudWatch Logs subscription filters, the legacy ``InvokeAsync`` API).

Both dispatch to the active :class:`LambdaRuntime`, which runs ``python -m
localcloud.lambda_worker`` processes (see that module for the worker's protocol). Only one
runtime is active per process: ``install()`` refuses a second one until the first is
``uninstall()``-ed or ``shutdown()`` (both restore moto's methods; ``installed()`` says which
runtime is active, so a test can suspend a running local cloud's runtime and resume it).
Response headers are written into moto's ``response_headers`` dict, which
``LambdaResponse.invoke`` returns as HTTP headers:
``x-amz-function-error: Unhandled`` on errors, ``x-amz-executed-version``, and
``x-amz-log-result`` (moto drops it unless the caller asked for ``LogType=Tail``). moto's
ASL interpreter calls Lambda through boto3, reads ``FunctionError`` and takes the payload's
``errorType`` as the error name (``Cause`` is the payload as JSON text), so ``Retry`` and
``Catch`` match the handler's exception class name (and ``Sandbox.Timedout`` /
``Runtime.ExitError`` for timeouts and crashes).

moto 5.2.5 quirks that show through: ``Invoke`` ignores the ``Qualifier`` query parameter
(moto reads it as ``qualifier``), so the unqualified function runs; a qualified name or ARN
(``name:1``) does select the version. Event sources run synchronously inside the request
that triggered them (``SendMessage``, ``PutEvents``, ``Publish``, ``PutObject``), where real
Lambda polls or invokes asynchronously.

Differences from real Lambda, on purpose: code is read from ``functions_root`` (the CDK
asset root), not from the uploaded zip; workers run under this interpreter whatever the
configured ``Runtime`` (only ``python*`` runtimes are accepted); memory is not limited;
reserved concurrency is not enforced (``max_workers_per_function`` is the limit, and extra
invocations wait instead of being throttled); async invocations are not retried; idle
workers are not frozen or recycled until ``shutdown()`` or a configuration change.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import default_user_config

__all__ = ["DEFAULT_ACCOUNT_ID", "InvocationResult", "LambdaRuntime"]

DEFAULT_ACCOUNT_ID = "123456789012"
"""moto's default account: the one used when a caller's credentials name no other."""

LogSink = Callable[[str, str], None]
"""Receives ``(function_name, line)`` for every line a function logs."""

_INIT_BUDGET_S = 10.0  # Lambda's INIT phase limit; beyond it INIT eats into the timeout.
_LOG_TAIL_BYTES = 4096  # LogType=Tail returns the last 4 KB of the invocation's log.
_REPORT_WAIT_S = 2.0  # How long to wait for a worker's REPORT line after its result.
_STOP_GRACE_S = 1.0
_SIGNAL_NAMES = {  # Lambda's runtime reports signals the way Go's os/exec prints them.
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGINT: "interrupt",
}


@dataclass(frozen=True)
class InvocationResult:
    """One invocation's outcome, as the Invoke API reports it."""

    request_id: str
    payload: bytes
    status_code: int = 200
    function_error: str | None = None  # "Unhandled" -> header X-Amz-Function-Error
    executed_version: str = "$LATEST"
    log_tail: str = ""  # the invocation's log lines (LogType=Tail sends the last 4 KB)


class _RuntimeClosedError(Exception):
    pass


class _WorkerExitedError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _WorkerTimedOutError(Exception):
    pass


class _InvalidRuntimeError(LambdaClientError):
    code = 502

    def __init__(self, runtime: str):
        super().__init__(
            "InvalidRuntimeException",
            f"The runtime parameter of {runtime} is not supported by the local cloud "
            "(it runs Python handlers only).",
        )


@dataclass(frozen=True)
class _FunctionConfig:
    """The part of a moto ``LambdaFunction`` an execution environment is built from."""

    account_id: str
    region: str
    name: str
    arn: str  # unqualified
    version: str
    handler: str
    runtime: str
    role: str
    timeout_s: float
    memory_mb: int
    env: tuple[tuple[str, str], ...]
    log_group: str
    code_sha: str

    @classmethod
    def of(cls, fn: LambdaFunction) -> _FunctionConfig:
        env = fn.environment_vars or {}
        return cls(
            account_id=fn.account_id,
            region=fn.region,
            name=fn.function_name,
            arn=f"arn:{fn.partition}:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}",
            version=str(fn.version),
            handler=fn.handler or "",
            runtime=fn.run_time or "",
            role=fn.role,
            timeout_s=float(fn.timeout),
            memory_mb=int(fn.memory_size),
            env=tuple(sorted((str(k), str(v)) for k, v in env.items())),
            log_group=getattr(fn, "logs_group_name", f"/aws/lambda/{fn.function_name}"),
            code_sha=str(getattr(fn, "code_sha_256", "")),
        )

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.arn, self.version)


def _error_payload(error_type: str, message: str, request_id: str) -> bytes:
    return json.dumps(
        {"errorMessage": message, "errorType": error_type, "requestId": request_id}
    ).encode()


def _exit_reason(returncode: int | None) -> str:
    if returncode is None or returncode == 0:
        return "Runtime exited without providing a reason"
    if returncode < 0:
        try:
            name = _SIGNAL_NAMES.get(signal.Signals(-returncode), signal.Signals(-returncode).name)
        except ValueError:
            name = str(-returncode)
        return f"Runtime exited with error: signal: {name}"
    return f"Runtime exited with error: exit status {returncode}"


def _default_sink(function_name: str, line: str) -> None:
    sys.stderr.write(f"[{function_name}] {line}\n")
    sys.stderr.flush()


class _CloudWatchStream:
    """The worker's log stream in moto's CloudWatch Logs (same process as the server)."""

    _lock = threading.Lock()  # moto's LogStream.put_log_events is not thread safe.

    def __init__(self, config: _FunctionConfig, stream: str, sink: LogSink):
        self.account_id = config.account_id
        self.region = config.region
        self.group = config.log_group
        self.stream = stream
        self.sink = sink
        self.function_name = config.name
        self.enabled = True
        self.created = False

    def _backend(self) -> Any:
        from moto.logs.models import logs_backends

        return logs_backends[self.account_id][self.region]

    def _ensure(self) -> None:
        backend = self._backend()
        backend.ensure_log_group(self.group)
        backend.ensure_log_stream(self.group, self.stream)

    def put(self, message: str) -> None:
        if not self.enabled:
            return
        events = [{"timestamp": int(time.time() * 1000), "message": message}]
        with self._lock:
            try:
                if not self.created:
                    self._ensure()
                    self.created = True
                try:
                    self._backend().put_log_events(self.group, self.stream, events)
                except Exception:
                    self._ensure()  # deleted meanwhile: Lambda would recreate it too
                    self._backend().put_log_events(self.group, self.stream, events)
            except Exception as exc:
                self.enabled = False
                self.sink(self.function_name, f"(local cloud: CloudWatch Logs disabled: {exc!r})")


class _Worker:
    """One execution environment: a ``localcloud.lambda_worker`` process and its pipes."""

    def __init__(self, config: _FunctionConfig, env: dict[str, str], cwd: Path, sink: LogSink):
        self.config = config
        self.env = env
        self.cwd = cwd
        self.sink = sink
        self.logs = _CloudWatchStream(config, env["AWS_LAMBDA_LOG_STREAM_NAME"], sink)
        self.proc: subprocess.Popen[bytes] | None = None
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.ready = False
        self.busy = True  # created for the invocation that needed it
        self.dead = False
        self._capture: list[str] | None = None
        self._report_marker = ""
        self._report_seen = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "localcloud.lambda_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: a kill takes its children too
        )
        for target, name in ((self._read_replies, "replies"), (self._read_logs, "logs")):
            thread = threading.Thread(
                target=target, name=f"lambda-{self.config.name}-{self.proc.pid}-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _read_replies(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                self.replies.put(json.loads(raw))
            except ValueError:
                self.sink(self.config.name, f"(local cloud: bad worker reply {raw[:200]!r})")
        self.replies.put(None)

    def _read_logs(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.log(line)
            capture = self._capture
            if capture is not None:
                capture.append(line)
                if self._report_marker and self._report_marker in line:
                    self._report_seen.set()

    def log(self, line: str) -> None:
        """A line the platform (not the function) writes to this environment's log."""
        for part in line.split("\r"):
            self.sink(self.config.name, part)
        self.logs.put(line)

    def _next_reply(self, timeout: float) -> dict[str, Any]:
        try:
            reply = self.replies.get(timeout=max(0.0, timeout))
        except queue.Empty:
            self.kill()
            raise _WorkerTimedOutError() from None
        if reply is None:
            self.dead = True
            assert self.proc is not None
            try:
                returncode: int | None = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                returncode = None
            self.kill()
            raise _WorkerExitedError(_exit_reason(returncode))
        return reply

    def invoke(self, request: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Run one request; returns the worker's reply and the invocation's log lines."""
        assert self.proc is not None and self.proc.stdin is not None
        timeout = self.config.timeout_s
        if not self.ready:
            self._next_reply(_INIT_BUDGET_S + timeout)  # {"type": "ready", ...}
            self.ready = True
        request = {**request, "deadline_ms": int((time.time() + timeout) * 1000)}
        deadline = time.monotonic() + timeout
        capture: list[str] = []
        self._report_seen.clear()
        self._report_marker = f"REPORT RequestId: {request['request_id']}"
        self._capture = capture
        try:
            try:
                self.proc.stdin.write(json.dumps(request).encode() + b"\n")
                self.proc.stdin.flush()
            except OSError:
                pass  # it has exited: the reply reader reports how
            reply = self._next_reply(deadline - time.monotonic())
            self._report_seen.wait(_REPORT_WAIT_S)
        finally:
            self._capture = None
        return reply, capture

    def close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def kill(self) -> None:
        """SIGKILL the worker's whole process group and reap it."""
        self.dead = True
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.close_stdin()

    def join_readers(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)


class _Pool:
    """The execution environments of one function version."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.workers: list[_Worker] = []
        self.fingerprint: _FunctionConfig | None = None


@dataclass
class _Invocation:
    config: _FunctionConfig
    payload: bytes
    invoked_arn: str
    client_context: Mapping[str, Any] | None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


# The active runtime and moto's original methods (see install()).
_INSTALL_LOCK = threading.Lock()


class _Installed:
    """Which runtime moto's patched methods dispatch to (None: moto's own behaviour)."""

    runtime: LambdaRuntime | None = None


_INSTALLED = _Installed()
_ORIGINAL_BACKEND_INVOKE = LambdaSimpleBackend.invoke
_ORIGINAL_FUNCTION_INVOKE = LambdaFunction.invoke


def _header(headers: Any, name: str) -> str | None:
    """Case-insensitive header lookup for werkzeug headers and moto's internal plain dicts."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return None if value is None else str(value)


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def _patched_backend_invoke(  # noqa: PLR0917 (moto's signature)
    self: LambdaSimpleBackend,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> str | bytes | None:
    runtime = _INSTALLED.runtime
    if runtime is None:
        return _ORIGINAL_BACKEND_INVOKE(
            self, function_name, qualifier, body, headers, response_headers
        )
    fn = self.get_function(function_name, qualifier)
    return runtime._invoke_from_moto(
        fn,
        function_name=function_name,
        qualifier=qualifier,
        body=body,
        headers=headers,
        response_headers=response_headers,
    )


def _patched_function_invoke(
    self: LambdaFunction, body: str, request_headers: Any, response_headers: Any
) -> str | bytes:
    runtime = _INSTALLED.runtime
    if runtime is None:
        return _ORIGINAL_FUNCTION_INVOKE(self, body, request_headers, response_headers)
    return runtime._invoke_from_moto(
        self,
        function_name=self.function_arn,
        qualifier=None,
        body=body,
        headers=request_headers,
        response_headers=response_headers,
    )


class LambdaRuntime:
    """Runs moto's Lambda functions in warm ``localcloud.lambda_worker`` processes.

    ``functions_root`` is the code asset root (``functions/``): the worker's
    ``LAMBDA_TASK_ROOT``, working directory and first ``sys.path`` entry; handler strings
    such as ``registry_api.handler.handler`` are resolved from it. ``endpoint_url`` is the
    local cloud's endpoint, given to functions as ``AWS_ENDPOINT_URL``. ``region`` is the
    default for :meth:`invoke` calls by function name. ``extra_env`` is added to every
    worker's environment below the function's own variables (the variables Lambda reserves
    always win). ``log_sink`` receives ``(function_name, line)`` for each log line
    (default: the local cloud's stderr as ``[function_name] line``); lines also go to moto's
    CloudWatch Logs, group ``/aws/lambda/<name>``, one stream per worker.
    """

    def __init__(
        self,
        functions_root: Path,
        endpoint_url: str,
        region: str,
        extra_env: Mapping[str, str] | None = None,
        max_workers_per_function: int = 4,
        *,
        log_sink: LogSink | None = None,
    ) -> None:
        if max_workers_per_function < 1:
            raise ValueError("max_workers_per_function must be at least 1")
        self.functions_root = Path(functions_root).resolve()
        self.endpoint_url = endpoint_url
        self.region = region
        self.extra_env = dict(extra_env or {})
        self.max_workers_per_function = max_workers_per_function
        self.log_sink: LogSink = log_sink or _default_sink
        self._lock = threading.Lock()
        self._pools: dict[tuple[str, str], _Pool] = {}
        self._async: set[threading.Thread] = set()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def install(self) -> None:
        """Make moto's Lambda invocations run here. Idempotent; one active runtime per process."""
        with _INSTALL_LOCK:
            if _INSTALLED.runtime is self:
                return
            if self._closed:
                raise RuntimeError("this LambdaRuntime has been shut down")
            if _INSTALLED.runtime is not None:
                raise RuntimeError(
                    "another LambdaRuntime is installed in this process; shut it down first"
                )
            lambda_config = dict(default_user_config.get("lambda", {}))
            lambda_config["use_docker"] = False
            default_user_config["lambda"] = lambda_config  # type: ignore[typeddict-item]
            LambdaSimpleBackend.invoke = _patched_backend_invoke  # type: ignore[method-assign]
            LambdaFunction.invoke = _patched_function_invoke  # type: ignore[method-assign]
            _INSTALLED.runtime = self

    def uninstall(self) -> None:
        """Give moto's invocations back to moto (workers stay warm; ``install()`` resumes).

        ``default_user_config["lambda"]`` keeps ``use_docker: False``: the functions live in
        the simple backend.
        """
        with _INSTALL_LOCK:
            if _INSTALLED.runtime is self:
                LambdaSimpleBackend.invoke = _ORIGINAL_BACKEND_INVOKE  # type: ignore[method-assign]
                LambdaFunction.invoke = _ORIGINAL_FUNCTION_INVOKE  # type: ignore[method-assign]
                _INSTALLED.runtime = None

    @staticmethod
    def installed() -> LambdaRuntime | None:
        """The runtime moto's invocations in this process currently go to, if any."""
        return _INSTALLED.runtime

    def shutdown(self) -> None:
        """Stop every worker (and its children); uninstall if installed. Idempotent."""
        self.uninstall()
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        workers: list[_Worker] = []
        for pool in pools:
            with pool.cond:
                workers.extend(pool.workers)
                pool.workers = []
                pool.cond.notify_all()
        for worker in workers:
            worker.close_stdin()  # a worker exits on EOF once its current request is done
        deadline = time.monotonic() + _STOP_GRACE_S
        for worker in workers:
            if worker.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            worker.kill()
        for worker in workers:
            worker.join_readers(1.0)
        with self._lock:
            pending = list(self._async)
        for thread in pending:
            thread.join(1.0)

    def worker_pids(self, function_name: str | None = None) -> list[int]:
        """Process ids of the live workers (of one function, by name, or all)."""
        with self._lock:
            pools = [
                pool
                for (arn, _), pool in self._pools.items()
                if function_name is None or arn.rsplit(":", 1)[-1] == function_name
            ]
        pids: list[int] = []
        for pool in pools:
            with pool.cond:
                pids.extend(w.pid for w in pool.workers if w.pid is not None and not w.dead)
        return pids

    # -- invoking ----------------------------------------------------------------------

    def invoke(
        self,
        function_name: str,
        event: Any,
        *,
        qualifier: str | None = None,
        invocation_type: str = "RequestResponse",
        client_context: Mapping[str, Any] | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str | None = None,
    ) -> InvocationResult:
        """Invoke a function that exists in moto, by name or ARN.

        ``event`` is a JSON-serializable value; ``bytes`` are taken as the JSON payload
        itself. ``invocation_type`` is ``RequestResponse``, ``Event`` (202, runs in the
        background) or ``DryRun`` (204, runs nothing).
        """
        if function_name.startswith("arn:"):
            parts = function_name.split(":")
            region, account_id = parts[3], parts[4]
        fn = get_backend(account_id, region or self.region).get_function(function_name, qualifier)
        if isinstance(event, bytes | bytearray):
            payload = bytes(event)
            json.loads(payload.decode("utf-8") or "{}")  # ValueError: Lambda refuses it too
        else:
            payload = json.dumps(event).encode()
        return self._invoke_function(
            fn,
            payload,
            invoked_arn=self._invoked_arn(fn, function_name, qualifier),
            invocation_type=invocation_type,
            client_context=client_context,
        )

    def _invoke_from_moto(
        self,
        fn: LambdaFunction,
        *,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: Any,
    ) -> bytes:
        """The patched moto methods land here; fills moto's ``response_headers``."""
        payload = _body_bytes(body)
        try:
            json.loads(payload.decode("utf-8") or "{}")
        except ValueError as exc:
            raise LambdaClientError(
                "InvalidRequestContentException", f"Could not parse request body into json: {exc}"
            ) from None
        client_context: Mapping[str, Any] | None = None
        encoded_context = _header(headers, "X-Amz-Client-Context")
        if encoded_context:
            try:
                client_context = json.loads(base64.b64decode(encoded_context))
            except ValueError:
                raise LambdaClientError(
                    "InvalidRequestContentException",
                    "Client context must be a valid Base64-encoded JSON object.",
                ) from None
        result = self._invoke_function(
            fn,
            payload,
            invoked_arn=self._invoked_arn(fn, function_name, qualifier),
            invocation_type=_header(headers, "X-Amz-Invocation-Type") or "RequestResponse",
            client_context=client_context,
        )
        if response_headers is not None:
            response_headers["x-amz-executed-version"] = result.executed_version
            response_headers["Content-Length"] = str(len(result.payload))
            if result.function_error:
                response_headers["x-amz-function-error"] = result.function_error
            if result.log_tail:
                tail = result.log_tail.encode()[-_LOG_TAIL_BYTES:]
                response_headers["x-amz-log-result"] = base64.b64encode(tail).decode()
        return result.payload

    @staticmethod
    def _invoked_arn(fn: LambdaFunction, function_name: str, qualifier: str | None) -> str:
        base = _FunctionConfig.of(fn).arn
        if qualifier:
            return f"{base}:{qualifier}"
        if function_name.startswith("arn:"):
            return function_name
        if ":" in function_name:
            return f"{base}:{function_name.split(':', 1)[1]}"
        return base

    def _invoke_function(
        self,
        fn: LambdaFunction,
        payload: bytes,
        *,
        invoked_arn: str,
        invocation_type: str,
        client_context: Mapping[str, Any] | None,
    ) -> InvocationResult:
        config = _FunctionConfig.of(fn)
        if getattr(fn, "package_type", "Zip") != "Zip" or not config.runtime.startswith("python"):
            raise _InvalidRuntimeError(config.runtime or str(getattr(fn, "package_type", "")))
        invocation = _Invocation(config, payload or b"{}", invoked_arn, client_context)
        if invocation_type == "DryRun":
            return InvocationResult(invocation.request_id, b"", 204, None, config.version)
        if invocation_type == "Event":
            thread = threading.Thread(
                target=self._run_async,
                args=(invocation,),
                name=f"lambda-async-{config.name}-{invocation.request_id}",
                daemon=True,
            )
            with self._lock:
                self._async.add(thread)
            thread.start()
            return InvocationResult(invocation.request_id, b"", 202, None, config.version)
        return self._run(invocation)

    def _run_async(self, invocation: _Invocation) -> None:
        try:
            result = self._run(invocation)
            if result.function_error:
                self.log_sink(
                    invocation.config.name,
                    f"(local cloud: async invocation {invocation.request_id} failed: "
                    f"{result.payload.decode('utf-8', 'replace')})",
                )
        finally:
            with self._lock:
                self._async.discard(threading.current_thread())

    def _run(self, invocation: _Invocation) -> InvocationResult:
        config = invocation.config
        request_id = invocation.request_id
        try:
            lease = self._worker(config)
        except _RuntimeClosedError:
            return self._failure(config, request_id, "Runtime.ExitError", "local cloud stopped")
        with lease as worker:
            try:
                reply, log_lines = worker.invoke(
                    {
                        "request_id": request_id,
                        "payload": invocation.payload.decode("utf-8"),
                        "invoked_function_arn": invocation.invoked_arn,
                        "client_context": invocation.client_context,
                        "trace_id": _trace_id(),
                    }
                )
            except _WorkerTimedOutError:
                message = f"Task timed out after {config.timeout_s:.2f} seconds"
                worker.log(f"{_log_timestamp()} {request_id} {message}")
                return self._failure(
                    config,
                    request_id,
                    "Sandbox.Timedout",
                    f"RequestId: {request_id} Error: {message}",
                )
            except _WorkerExitedError as exc:
                message = f"RequestId: {request_id} Error: {exc}"
                worker.log(f"{message}\rRuntime.ExitError")
                return self._failure(config, request_id, "Runtime.ExitError", message)
        tail = "\n".join(log_lines) + ("\n" if log_lines else "")
        if "error" in reply:
            return InvocationResult(
                request_id,
                json.dumps(reply["error"]).encode(),
                200,
                "Unhandled",
                config.version,
                tail,
            )
        return InvocationResult(
            request_id, str(reply["payload"]).encode(), 200, None, config.version, tail
        )

    @staticmethod
    def _failure(
        config: _FunctionConfig, request_id: str, error_type: str, message: str
    ) -> InvocationResult:
        payload = _error_payload(error_type, message, request_id)
        return InvocationResult(request_id, payload, 200, "Unhandled", config.version)

    # -- the worker pool ---------------------------------------------------------------

    def _worker(self, config: _FunctionConfig) -> _Lease:
        with self._lock:
            if self._closed:
                raise _RuntimeClosedError()
            pool = self._pools.setdefault(config.pool_key, _Pool())
        retired: list[_Worker] = []
        with pool.cond:
            if pool.fingerprint != config:
                # A configuration change: new environments from now on (as Lambda does).
                pool.fingerprint = config
            while True:
                if self._closed:
                    raise _RuntimeClosedError()
                for worker in list(pool.workers):
                    if not worker.busy and (worker.dead or worker.config != config):
                        pool.workers.remove(worker)
                        retired.append(worker)
                idle = next((w for w in pool.workers if not w.busy), None)
                if idle is not None:
                    idle.busy = True
                    chosen = idle
                    break
                if len(pool.workers) < self.max_workers_per_function:
                    chosen = _Worker(
                        config, self._environment(config), self.functions_root, self.log_sink
                    )
                    pool.workers.append(chosen)
                    break
                pool.cond.wait()
        for worker in retired:
            worker.close_stdin()
            worker.kill()
        if chosen.proc is None:
            try:
                chosen.start()
            except BaseException:
                chosen.dead = True
                self._release(pool, chosen)
                raise
        return _Lease(self, pool, chosen)

    def _release(self, pool: _Pool, worker: _Worker) -> None:
        stale = False
        with pool.cond:
            worker.busy = False
            if worker.dead or worker.config != pool.fingerprint or self._closed:
                if worker in pool.workers:
                    pool.workers.remove(worker)
                stale = True
            pool.cond.notify()
        if stale:
            worker.close_stdin()
            worker.kill()

    # -- the execution environment -----------------------------------------------------

    def _environment(self, config: _FunctionConfig) -> dict[str, str]:
        """What the process sees: nothing from this process, like a fresh environment."""
        now = datetime.now(UTC)
        log_stream = f"{now:%Y/%m/%d}/[{config.version}]{secrets.token_hex(16)}"
        key_id, secret, token = self._role_credentials(config)
        env = {
            "PATH": os.pathsep.join(
                [str(Path(sys.executable).parent), "/usr/local/bin:/usr/bin:/bin"]
            ),
            # Lambda sets en_US.UTF-8; that locale is often not installed locally, and then
            # Python's locale coercion adds LC_CTYPE to the environment. Same encoding.
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            **self.extra_env,
            **dict(config.env),
        }
        env.update(
            {
                "_HANDLER": config.handler,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{config.runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": config.name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
                "AWS_LAMBDA_FUNCTION_VERSION": config.version,
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_LAMBDA_LOG_GROUP_NAME": config.log_group,
                "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
                "AWS_REGION": config.region,
                "AWS_DEFAULT_REGION": config.region,
                "AWS_ACCESS_KEY_ID": key_id,
                "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_SESSION_TOKEN": token,
                "AWS_ENDPOINT_URL": self.endpoint_url,
                "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
                "LAMBDA_TASK_ROOT": str(self.functions_root),
                "LAMBDA_RUNTIME_DIR": str(Path(__file__).resolve().parent),
            }
        )
        return env

    @staticmethod
    def _role_credentials(config: _FunctionConfig) -> tuple[str, str, str]:
        """Temporary credentials of the execution role, from moto's STS (as Lambda assumes it)."""
        try:
            from moto.sts.models import sts_backends

            role = sts_backends[config.account_id][config.arn.split(":")[1]].assume_role(
                region_name=config.region,
                role_session_name=config.name,
                role_arn=config.role,
                policy="",
                duration=43200,
                external_id="",
            )
            return role.access_key_id, role.secret_access_key, role.session_token
        except Exception:
            return "ASIALOCALCLOUDLAMBDA", "localcloud-lambda-secret", "localcloud-session-token"


class _Lease:
    """A worker taken from a pool for one request, given back on exit."""

    def __init__(self, runtime: LambdaRuntime, pool: _Pool, worker: _Worker):
        self.runtime = runtime
        self.pool = pool
        self.worker = worker

    def __enter__(self) -> _Worker:
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.runtime._release(self.pool, self.worker)


def _log_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _trace_id() -> str:
    """An X-Ray trace header like the one Lambda puts in ``_X_AMZN_TRACE_ID`` (not sampled)."""
    return (
        f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};"
        f"Parent={secrets.token_hex(8)};Sampled=0"
    )
