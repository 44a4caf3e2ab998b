"""SageMaker endpoints that really serve, on this machine, behind moto's SageMaker API.

Pinned to moto 5.2.5, which records models, endpoint configs, endpoints and weight updates
and answers ``InvokeEndpoint`` with canned results. :meth:`EndpointExecutor.install` patches,
in this process (the one running moto's ``ThreadedMotoServer``):

* ``SageMakerResponse.create_endpoint_config``: moto's, plus what moto drops:
  ``ShadowProductionVariants`` (at most one, its model must exist) recorded on moto's config
  object (so DescribeEndpointConfig shows it), and ``DataCaptureConfig`` validated;
* ``SageMakerResponse.create_endpoint``: moto records the endpoint; it then shows
  ``Creating`` while a thread starts one model server process per production and shadow
  variant (:mod:`localcloud.model_server`), and ends ``InService``, or ``Failed`` with a
  ``FailureReason``. A reused name is refused, as SageMaker does;
* ``SageMakerResponse.update_endpoint_weights_and_capacities``: moto's validation and
  record, then the router's weights change at once (an omitted weight or count keeps its
  value, where moto would blank it);
* ``SageMakerResponse.delete_endpoint``: moto's, then the endpoint's processes are killed;
* ``SageMakerResponse.describe_endpoint``/``list_endpoints``: moto's, under the executor's
  lock, so that a response never mixes two states;
* ``SageMakerRuntimeResponse.invoke_endpoint``: the in-process router (:meth:`invoke`).

A variant's model is its Model's ``PrimaryContainer``: ``Image`` must be a local-runtime
image that describes the interpreter the executor runs (:mod:`localcloud.sagemaker_image`,
as for training jobs); ``ModelDataUrl`` is an S3 ``model.tar.gz``, downloaded as a session
of the model's ``ExecutionRoleArn`` (STS ``AssumeRole``, session name ``SageMaker``, so
bucket policies judge the role: :mod:`localcloud.resource_policies`), hashed (sha256) and
extracted into a private directory; an archive that cannot be read (refused by its bucket's
policy, missing) fails ``CreateEndpoint`` (``Failed``) or ``UpdateEndpoint`` (back to
``InService`` on the old fleet) with ``FailureReason`` ``ClientError: Failed to download
model data of model <model> (variant <variant>): AccessDenied (403) reading s3://...:
<S3's message>``; ``Environment`` is the server's
environment (with nothing of the caller's but :data:`PASSED_THROUGH`).

Routing: a production variant is picked at random with probability weight / total weight,
or the one named by ``TargetVariant``; the request goes to its server's ``/invocations`` over
a pooled keep-alive connection. The response carries ``InvokedProductionVariant`` and
``CustomAttributes``: the model's answer header if it set one, else the caller's, else (our
provenance choice) the container's ``MODELOPS_*`` environment (model id, version, root digest,
signer) then ``model-name=<ModelName>;model-data-sha256=<hex sha256 of model.tar.gz>``.
A model answer other than 2xx is a ``ModelError`` (HTTP 424) with ``OriginalStatusCode`` and
``OriginalMessage``, as SageMaker answers. A request routed to a variant whose instance has
failed (no model server answers it) is a ``ServiceUnavailable`` (HTTP 503) "Variant <variant>
of endpoint <endpoint> is unavailable (<why>). Try your call again."; no model answered it, so
it is not a ``ModelError``.

Instance failure (:meth:`EndpointExecutor.kill_variant`, or a model server that dies on its
own): the process is SIGKILLed without notice while traffic flows; requests in flight on it
and every request routed to the variant from then on are ``ServiceUnavailable`` and count in
the variant's ``Invocations`` and ``Invocation5XXErrors`` (which the platform's canary
guardrail reads). The router does not send them to another variant: as in SageMaker, the
weights decide, per request, and they do not change; requests routed to other variants are
unaffected. After ``replace_seconds`` the executor replaces the instance, as SageMaker
replaces an unhealthy one: a new model server from the same extracted model, a new instance
id and log stream, no injected fault; once it answers its ping the variant serves again (a
replacement that fails to start is tried again after ``replace_seconds``).
DescribeEndpoint stays ``InService`` throughout. boto3 retries a 503 by default (and a
retried request is routed again, so it may land on another variant): callers that count
failures per request disable retries.

Shadow variant: a copy of ``SamplingPercentage``% of the requests goes to it from a thread
pool after the caller's response is decided; its answer is only captured and measured.
boto3 has no ``SamplingPercentage`` field on a variant: it is the shadow's
``InitialVariantWeight`` relative to the production variants' total initial weight, in %
(capped at 100), which is how SageMaker's shadow tests map their sampling percentage.

Every routed request (production or shadow, answered or unavailable) records the variant's
metrics (:class:`localcloud.sagemaker_telemetry.MetricAggregator`; ``ModelLatency`` is the
model server's round trip, ``OverheadLatency`` the rest of the router's time) and, with
``DataCaptureConfig``, every answered one is sampled for capture (``CaptureWriter``); a
request to an unavailable production variant is neither captured nor mirrored. A flusher
thread sends both every ``flush_seconds`` (capture also when ``capture_batch_records`` are
waiting), and the servers' stderr to CloudWatch Logs ``/aws/sagemaker/Endpoints/<endpoint>``,
stream ``<variant>/<instance id>``.

Differences from AWS, on purpose: one process per variant whatever its instance count
(counts are recorded and reported; so an instance failure takes the whole variant down until
it is replaced); no containers; of IAM, only bucket- and key-policy Deny statements judge
the model data download (identity policies and the role's trust policy do not; logs and
data capture are written as moto's default account); serverless, async and
multi-container models, ``UpdateEndpoint`` and deployment guardrails are not executed; the
endpoint's servers are gone when the executor shuts down.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import http.client
import io
import json
import logging
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ValidationError
from moto.sagemaker.models import FakeEndpoint
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from localcloud.sagemaker_container import PASSED_THROUGH, InvalidRequest, S3Location
from localcloud.sagemaker_image import ImageNotFound, LocalRuntime, find_image
from localcloud.sagemaker_io import LocalAws, LogShipper, s3_error
from localcloud.sagemaker_telemetry import (
    CaptureConfig,
    CaptureWriter,
    MetricAggregator,
    capture_record,
)
from modelops.domain.archive import extract_targz

__all__ = ["EndpointExecutor", "Invocation", "InvocationError"]

LOG_GROUP_PREFIX = "/aws/sagemaker/Endpoints/"
SERVER_SCRIPT = Path(__file__).with_name("model_server.py")
_STDERR_TAIL_LINES = 10
_MAX_FAILURE_REASON = 1024
_SERVER_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

logger = logging.getLogger(__name__)

_PATCHED = (
    "create_endpoint_config",
    "create_endpoint",
    "describe_endpoint",
    "list_endpoints",
    "update_endpoint_weights_and_capacities",
    "delete_endpoint",
)
_ORIGINALS: dict[str, Callable[[SageMakerResponse], ActionResult]] = {
    name: getattr(SageMakerResponse, name) for name in _PATCHED
}
_ORIGINAL_INVOKE = SageMakerRuntimeResponse.invoke_endpoint
_INSTALL_LOCK = threading.Lock()


class _Installed:
    executor: EndpointExecutor | None = None


def _hook(name: str) -> Callable[[SageMakerResponse], ActionResult]:
    original = _ORIGINALS[name]

    def patched(self: SageMakerResponse) -> ActionResult:
        executor = _Installed.executor
        if executor is None:
            return original(self)
        handler: Callable[[SageMakerResponse, Callable[..., ActionResult]], ActionResult]
        handler = getattr(executor, f"_on_{name}")
        return handler(self, original)

    return patched


def _update_endpoint(self: SageMakerResponse) -> ActionResult:
    """UpdateEndpoint, which moto 5.2.5 lacks: only while an executor is installed."""
    executor = _Installed.executor
    if executor is None:
        raise ValidationError("UpdateEndpoint needs the local endpoint executor")
    return executor._on_update_endpoint(self)


def _invoke_endpoint(self: SageMakerRuntimeResponse) -> Any:
    executor = _Installed.executor
    return _ORIGINAL_INVOKE(self) if executor is None else executor._on_invoke_endpoint(self)


class InvocationError(Exception):
    """InvokeEndpoint refused before reaching a model (SageMaker's error code and status)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


@dataclass(frozen=True)
class Invocation:
    """What the router answered: the model server's status, body and headers."""

    variant: str
    status: int
    body: bytes
    content_type: str
    custom_attributes: str | None


class _StartFailure(Exception):
    """Ends the endpoint ``Failed``; the message is the FailureReason."""


@dataclass(frozen=True)
class _VariantSpec:
    name: str
    model_name: str
    container: dict[str, Any]
    role_arn: str
    weight: float
    instance_count: int
    instance_type: str


class _Unavailable(Exception):
    """No model server of the variant took the request (its instance failed, or the
    replacement is still starting); the message says why."""


class _Instance:
    """One model server process of a variant (its instance, in SageMaker's terms) and the
    router's keep-alive connections to it."""

    def __init__(self, variant: str, root: Path, on_failure: Callable[[_Instance], None]) -> None:
        self.variant = variant
        self.root = root
        self.id = f"i-{uuid.uuid4().hex[:17]}"
        self.port = 0
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._on_failure = on_failure
        self._state = threading.Lock()  # orders ready, ended and retired
        self._ready = False
        self._ended = False
        self._retired = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports: queue.Queue[int | None] = queue.Queue()
        self._pool: queue.SimpleQueue[http.client.HTTPConnection] = queue.SimpleQueue()

    # -- the process ---------------------------------------------------------------------

    def launch(
        self,
        python: str,
        model_dir: Path,
        environment: Mapping[str, Any],
        on_line: Callable[[str], None],
    ) -> None:
        env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        env |= {str(k): str(v) for k, v in environment.items()}
        env |= _SERVER_ENV
        self._proc = subprocess.Popen(
            [python, "-I", str(SERVER_SCRIPT), "--model-dir", str(model_dir)],
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a kill takes its children too
        )
        assert self._proc.stdout is not None and self._proc.stderr is not None
        for target, pipe in (
            (self._read_port, self._proc.stdout),
            (self._read_stderr, self._proc.stderr),
        ):
            threading.Thread(
                target=target,
                args=(pipe, on_line),
                name=f"sagemaker-endpoint-{self.variant}-{self.id}",
                daemon=True,
            ).start()

    def _read_port(self, pipe: IO[bytes], on_line: Callable[[str], None]) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").strip()
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    self._ports.put(int(json.loads(line)["port"]))
                    continue
                on_line(line)
        self._ports.put(None)
        with self._state:  # the process has ended: its stdout closes with it
            failed = self._ready and not self._retired
            self._ready, self._ended = False, True
        if failed:
            self._on_failure(self)

    def _read_stderr(self, pipe: IO[bytes], on_line: Callable[[str], None]) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.stderr_tail.append(line)
                on_line(line)

    def wait_ready(self, timeout: float) -> None:
        try:
            port = self._ports.get(timeout=timeout)
        except queue.Empty:
            raise _StartFailure(
                f"ClientError: the model server of variant {self.variant} did not start "
                f"within {timeout:.0f} s"
            ) from None
        if port is None:
            assert self._proc is not None
            self._proc.wait()
            text = "\n".join(self.stderr_tail).strip() or "see the endpoint's logs"
            raise _StartFailure(
                f"ClientError: the model of variant {self.variant} failed to load: {text}"
            )
        self.port = port
        try:
            status: object = self.request("GET", "/ping", b"", {})[0]
        except (OSError, http.client.HTTPException) as exc:
            status = exc
        with self._state:
            if status == 200 and not self._ended:
                self._ready = True
                return
        raise _StartFailure(f"ClientError: variant {self.variant} failed its ping: {status}")

    @property
    def ready(self) -> bool:
        """Pinged, and its process has not ended since."""
        return self._ready

    def retire(self) -> None:
        """Stop the process for good (the endpoint is deleted or replaced): no replacement."""
        with self._state:
            self._retired = True
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()

    def crash(self) -> int:
        """SIGKILL without notice, as a failing instance (the endpoint replaces it); the
        process id."""
        assert self._proc is not None, "crash() is for a launched instance"
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        return self._proc.pid

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # -- requests ------------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            connection.connect()
            assert connection.sock is not None
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return connection

    def request(
        self, method: str, path: str, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        """One request over a pooled keep-alive connection (one retry on a stale one)."""
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=dict(headers))
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                if attempt == 2:
                    raise
                continue
            if answer.will_close:
                connection.close()
            else:
                self._pool.put(connection)
            return answer.status, answer.headers, data
        raise AssertionError("unreachable")


class _Variant:
    """One variant: its extracted model, what it declares, and its current instance."""

    def __init__(self, spec: _VariantSpec, root: Path) -> None:
        self.spec = spec
        self.root = root
        self.model_dir = root / "model"
        self.digest = ""
        self.provenance = ""
        self.instance: _Instance | None = None


class _Endpoint:
    """One endpoint: its variants, its router state and what it publishes to moto."""

    def __init__(
        self,
        executor: EndpointExecutor,
        *,
        region: str,
        fake: Any,
        variants: list[_VariantSpec],
        shadow: _VariantSpec | None,
        capture: CaptureConfig | None,
    ) -> None:
        self.executor = executor
        self.region = region
        self.fake = fake
        self.name = fake.endpoint_name
        self.root = executor.work_root / f"{self.name}-{uuid.uuid4().hex[:8]}"
        self.variants = {s.name: _Variant(s, self.root / s.name) for s in variants}
        self.shadow = None if shadow is None else _Variant(shadow, self.root / shadow.name)
        total = sum(s.weight for s in variants)
        self.shadow_percentage = (
            0.0 if shadow is None or total <= 0 else min(100.0, 100.0 * shadow.weight / total)
        )
        self.capture = capture
        self.weights: tuple[tuple[str, float], ...] = tuple((s.name, s.weight) for s in variants)
        self.ready = threading.Event()
        self._stopped = threading.Event()
        self._logs = LogShipper(
            executor._aws.client("logs", region),
            executor._log_send_lock,
            group=LOG_GROUP_PREFIX + self.name,
        )
        now = utcnow()
        # Every field DescribeEndpoint shows exists from now on; containers are replaced.
        fake.endpoint_status = "Creating"
        fake.failure_reason = None
        fake.creation_time = fake.last_modified_time = now
        fake.production_variants = [_summary(s, s.weight, s.instance_count) for s in variants]
        fake.shadow_production_variants = (
            None if shadow is None else [_summary(shadow, shadow.weight, shadow.instance_count)]
        )
        fake.data_capture_config = None if capture is None else capture.describe()

    @property
    def status(self) -> str:
        return str(self.fake.endpoint_status)

    def all_variants(self) -> list[_Variant]:
        return [*self.variants.values(), *([self.shadow] if self.shadow else [])]

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(
            target=self._start, name=f"sagemaker-endpoint-{self.name}", daemon=True
        ).start()

    def _start(self) -> None:
        status, reason = "InService", None
        try:
            runtime = self.executor._runtime.get()
            for variant in self.all_variants():
                self._prepare(variant, runtime)
                variant.instance = self._launch(variant)
            for variant in self.all_variants():
                assert variant.instance is not None
                variant.instance.wait_ready(self.executor.start_timeout)
        except _StartFailure as failure:
            status, reason = "Failed", str(failure)[:_MAX_FAILURE_REASON]
        except Exception as exc:
            logger.exception("endpoint %s: executor error", self.name)
            status, reason = "Failed", f"InternalServerError: local endpoint executor: {exc!r}"
        finally:
            self._logs.flush()
        with self.executor._lock:
            if self._stopped.is_set():
                status, reason = "Failed", "the endpoint was deleted while it was being created"
            self.fake.endpoint_status = status
            self.fake.failure_reason = reason
            self.fake.last_modified_time = utcnow()
        if status != "InService":
            self.stop()
        self.ready.set()

    def _prepare(self, variant: _Variant, runtime: Any) -> None:
        """The variant's model, downloaded and extracted, and what it declares."""
        spec = variant.spec
        image = str(spec.container.get("Image"))
        try:
            manifest = find_image(image, spec.role_arn).image_manifest
        except ImageNotFound as exc:
            raise _StartFailure(f"ClientError: {exc}") from None
        if not runtime.described_by(manifest):
            raise _StartFailure(
                f"ClientError: the image {image} of model {spec.model_name} does not describe "
                "the local runtime; register it with localcloud.sagemaker_image."
                "register_local_image and create the model with that image"
            )
        failed = (
            f"ClientError: Failed to download model data of model {spec.model_name} "
            f"(variant {spec.name})"
        )
        try:
            source = S3Location.parse(spec.container.get("ModelDataUrl"), "ModelDataUrl")
            s3 = self.executor._aws.client("s3", self.region, role_arn=spec.role_arn)
            data = s3.get_object(Bucket=source.bucket, Key=source.key)["Body"].read()
        except ClientError as exc:
            raise _StartFailure(f"{failed}: {s3_error(exc, source.uri)}") from None
        except (InvalidRequest, BotoCoreError) as exc:
            raise _StartFailure(f"{failed}: {exc}") from None
        try:
            extract_targz(io.BytesIO(data), variant.model_dir)
        except (OSError, ValueError) as exc:
            raise _StartFailure(f"{failed}: {exc}") from None
        variant.digest = hashlib.sha256(data).hexdigest()
        # Request-level provenance: what the container's environment says it serves (the
        # platform sets MODELOPS_* on its models), then the model and its archive's digest.
        environment = spec.container.get("Environment") or {}
        declared = [
            f"{key.removeprefix('MODELOPS_').lower().replace('_', '-')}={value}"
            for key, value in sorted(environment.items())
            if key.startswith("MODELOPS_")
        ]
        variant.provenance = ";".join(
            [*declared, f"model-name={spec.model_name}", f"model-data-sha256={variant.digest}"]
        )

    def _launch(self, variant: _Variant) -> _Instance:
        """A new instance of the variant: a model server on its extracted model, logging to
        its own stream ``<variant>/<instance id>``."""
        instance = _Instance(
            variant.spec.name, variant.root, lambda failed: self._replace(variant, failed)
        )
        stream = f"{variant.spec.name}/{instance.id}"
        self._logs.open(stream)
        instance.launch(
            self.executor.python,
            variant.model_dir,
            variant.spec.container.get("Environment") or {},
            self._line_handler(stream),
        )
        return instance

    def _replace(self, variant: _Variant, failed: _Instance) -> None:
        """What SageMaker does with an instance that failed: after ``replace_seconds`` a new
        one starts from the same model, again until one is in service or the endpoint
        stops. Runs on the failed instance's stdout reader thread."""
        logger.warning(
            "endpoint %s: instance %s of variant %s failed; replacing it",
            self.name,
            failed.id,
            variant.spec.name,
        )
        while not self._stopped.wait(self.executor.replace_seconds):
            try:
                instance = self._launch(variant)
            except (OSError, ClientError, BotoCoreError) as exc:
                logger.warning("endpoint %s: no replacement instance: %r", self.name, exc)
                continue
            with self.executor._lock:
                if self._stopped.is_set():
                    instance.retire()
                    return
                variant.instance = instance
            try:
                instance.wait_ready(self.executor.start_timeout)
            except _StartFailure as failure:
                instance.retire()
                if not self._stopped.is_set():
                    logger.warning("endpoint %s: replacement failed: %s", self.name, failure)
                continue
            return

    def _line_handler(self, stream: str) -> Callable[[str], None]:
        def on_line(line: str) -> None:
            self._logs.add(stream, time.time(), line)

        return on_line

    def stop(self) -> None:
        with self.executor._lock:
            self._stopped.set()
        for variant in self.all_variants():
            if variant.instance is not None:
                variant.instance.retire()
        self._logs.flush()
        shutil.rmtree(self.root, ignore_errors=True)

    def flush_logs(self) -> None:
        self._logs.flush()

    # -- routing -------------------------------------------------------------------------

    def pick(self, target: str | None) -> _Variant:
        if target is not None:
            variant = self.variants.get(target)
            if variant is None:
                raise InvocationError(
                    "ValidationError",
                    f"Variant {target} not found for endpoint {self.fake.arn}",
                )
            return variant
        weights = self.weights
        point = random.random() * sum(w for _, w in weights)
        for name, weight in weights:
            point -= weight
            if point < 0:
                return self.variants[name]
        raise InvocationError(
            "ValidationError", f"Endpoint {self.name} has no variant with a positive weight"
        )


def _summary(spec: _VariantSpec, weight: float, count: int) -> dict[str, Any]:
    return {
        "VariantName": spec.name,
        "CurrentWeight": weight,
        "DesiredWeight": weight,
        "CurrentInstanceCount": count,
        "DesiredInstanceCount": count,
    }


class EndpointExecutor:
    """Serves moto's SageMaker endpoints for real; see the module docstring."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        work_root: Path,
        python: str = sys.executable,
        flush_seconds: float = 1.0,
        capture_batch_records: int = 1000,
        start_timeout: float = 60.0,
        shadow_workers: int = 4,
        replace_seconds: float = 2.0,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.work_root = Path(work_root)
        self.python = python
        self.flush_seconds = flush_seconds
        self.start_timeout = start_timeout
        self.replace_seconds = replace_seconds
        # Guards the endpoints and every field of moto's endpoint objects that they publish.
        self._lock = threading.RLock()
        self._endpoints: dict[tuple[str, str, str], _Endpoint] = {}
        self._aws = LocalAws(endpoint_url)
        self._runtime = LocalRuntime(python)
        self._log_send_lock = threading.Lock()
        self._wake = threading.Event()
        self._capture = CaptureWriter(self._aws, capture_batch_records, self._wake)
        self._metrics = MetricAggregator(self._aws)
        self._shadow_pool = ThreadPoolExecutor(
            shadow_workers, thread_name_prefix="sagemaker-shadow"
        )
        self._flusher: threading.Thread | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def install(self) -> None:
        """Make moto's SageMaker endpoints serve here. Idempotent; one executor per process."""
        with _INSTALL_LOCK:
            if _Installed.executor is self:
                return
            if self._closed:
                raise RuntimeError("this EndpointExecutor has been shut down")
            if _Installed.executor is not None:
                raise RuntimeError("another EndpointExecutor is installed; uninstall it first")
            for name in _PATCHED:
                setattr(SageMakerResponse, name, _hook(name))
            SageMakerRuntimeResponse.invoke_endpoint = _invoke_endpoint  # type: ignore[method-assign]
            SageMakerResponse.update_endpoint = _update_endpoint  # type: ignore[attr-defined]
            _Installed.executor = self
            if self._flusher is None:
                self._flusher = threading.Thread(
                    target=self._flush_loop, name="sagemaker-endpoint-flusher", daemon=True
                )
                self._flusher.start()

    def uninstall(self) -> None:
        """Give the endpoint APIs back to moto; running endpoints go on (``shutdown`` stops
        them)."""
        with _INSTALL_LOCK:
            if _Installed.executor is not self:
                return
            for name, original in _ORIGINALS.items():
                setattr(SageMakerResponse, name, original)
            SageMakerRuntimeResponse.invoke_endpoint = _ORIGINAL_INVOKE  # type: ignore[method-assign]
            del SageMakerResponse.update_endpoint  # type: ignore[attr-defined]
            _Installed.executor = None

    @staticmethod
    def installed() -> EndpointExecutor | None:
        """The executor moto's endpoints in this process currently go to, if any."""
        return _Installed.executor

    def shutdown(self, timeout: float = 30.0) -> None:
        """Uninstall, kill every endpoint's processes, send what is buffered. Idempotent."""
        self.uninstall()
        with self._lock:
            self._closed = True
            endpoints = list(self._endpoints.values())
            self._endpoints.clear()
        for endpoint in endpoints:
            endpoint.ready.wait(timeout)
            endpoint.stop()
        self._shadow_pool.shutdown(wait=True, cancel_futures=True)
        self._wake.set()
        if self._flusher is not None:
            self._flusher.join(timeout)
        self._flush()

    # -- controls ------------------------------------------------------------------------

    def wait(self, endpoint_name: str, timeout: float) -> str:
        """Wait until the endpoint has left ``Creating``; return its EndpointStatus."""
        endpoint = self._find(endpoint_name)
        if not endpoint.ready.wait(timeout):
            raise TimeoutError(
                f"endpoint {endpoint_name} still {endpoint.status} after {timeout} s"
            )
        return endpoint.status

    def inject_fault(
        self, endpoint_name: str, variant: str, *, latency_ms: float = 0, error_rate: float = 0.0
    ) -> None:
        """Make the variant's server wait ``latency_ms`` before every answer and answer 500
        for ``error_rate`` of the requests (through its admin endpoint; it keeps running)."""
        target = self._instance(endpoint_name, variant)
        body = json.dumps({"latency_ms": latency_ms, "error_rate": error_rate}).encode()
        status, _, answer = target.request(
            "POST", "/admin/fault", body, {"Content-Type": "application/json"}
        )
        if status != 200:
            raise ValueError(answer.decode("utf-8", "replace"))

    def kill_variant(self, endpoint_name: str, variant: str) -> int:
        """The variant's instance fails: its model server is SIGKILLed without notice while
        traffic flows, and replaced after ``replace_seconds`` (see the module docstring).
        Returns the process id killed."""
        return self._instance(endpoint_name, variant).crash()

    def variant_url(self, endpoint_name: str, variant: str) -> str:
        """The base URL of the variant's model server (``/ping``, ``/invocations``)."""
        return f"http://127.0.0.1:{self._instance(endpoint_name, variant).port}"

    def server_pids(self) -> list[int]:
        """The model server processes of every endpoint (tests check they go away)."""
        with self._lock:
            endpoints = list(self._endpoints.values())
        instances = [v.instance for e in endpoints for v in e.all_variants()]
        return [i.pid for i in instances if i is not None and i.pid is not None]

    def _find(self, endpoint_name: str, region: str | None = None) -> _Endpoint:
        with self._lock:
            found = [
                e
                for (_, r, name), e in self._endpoints.items()
                if name == endpoint_name and r == (region or r)
            ]
        if not found:
            raise ValueError(f"no endpoint {endpoint_name!r} runs on this executor")
        return found[0]

    def _instance(self, endpoint_name: str, variant: str) -> _Instance:
        """The variant's instance in service; ValueError if it has none."""
        endpoint = self._find(endpoint_name)
        found = {v.spec.name: v.instance for v in endpoint.all_variants()}.get(variant)
        if found is None or not found.ready:
            raise ValueError(f"endpoint {endpoint_name} has no running variant {variant!r}")
        return found

    # -- the router ----------------------------------------------------------------------

    def invoke(
        self,
        endpoint_name: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        accept: str | None = None,
        target_variant: str | None = None,
        custom_attributes: str | None = None,
        inference_id: str | None = None,
        account: str = "123456789012",
        region: str | None = None,
    ) -> Invocation:
        """Route one request as InvokeEndpoint does; :class:`InvocationError` if refused."""
        started = time.perf_counter()
        region = region or self.region
        endpoint = self._endpoints.get((account, region, endpoint_name))
        # An endpoint being updated goes on serving with its current fleet, as in SageMaker.
        if endpoint is None or endpoint.status not in {"InService", "Updating"}:
            arn = FakeEndpoint.arn_formatter(endpoint_name, account, region)
            if endpoint is None:
                raise InvocationError("ValidationError", f"Endpoint {arn} not found.")
            raise InvocationError(
                "ValidationError", f"Endpoint {arn} is not in service (status {endpoint.status})."
            )
        variant = endpoint.pick(target_variant)
        headers = {"Content-Type": content_type}
        if accept:
            headers["Accept"] = accept
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        try:
            invocation, model_us = self._forward(variant, body, headers)
        except _Unavailable as exc:
            self._measure(endpoint, variant, 503, started, None)
            raise InvocationError(
                "ServiceUnavailable",
                f"Variant {variant.spec.name} of endpoint {endpoint.name} is unavailable "
                f"({exc}). Try your call again.",
                503,
            ) from None
        if invocation.custom_attributes is None:
            invocation = Invocation(
                variant=invocation.variant,
                status=invocation.status,
                body=invocation.body,
                content_type=invocation.content_type,
                custom_attributes=custom_attributes or variant.provenance,
            )
        self._observe(endpoint, variant, (content_type, body), invocation, inference_id)
        if endpoint.shadow is not None and random.random() * 100 < endpoint.shadow_percentage:
            with contextlib.suppress(RuntimeError):  # the pool is shut down
                self._shadow_pool.submit(
                    self._mirror, endpoint, endpoint.shadow, body, headers, inference_id
                )
        self._measure(endpoint, variant, invocation.status, started, model_us)
        return invocation

    def _measure(
        self,
        endpoint: _Endpoint,
        variant: _Variant,
        status: int,
        started: float,
        model_us: float | None,
    ) -> None:
        """Metrics of one routed request: the model's round trip and the router's rest."""
        overhead_us = (time.perf_counter() - started) * 1e6 - (model_us or 0.0)
        self._metrics.record(
            region=endpoint.region,
            endpoint=endpoint.name,
            variant=variant.spec.name,
            status=status,
            model_us=model_us,
            overhead_us=max(0.0, overhead_us),
        )

    def _forward(
        self, variant: _Variant, body: bytes, headers: Mapping[str, str]
    ) -> tuple[Invocation, float]:
        """The variant's model server's answer and its round trip (us); _Unavailable if no
        model server took the request."""
        instance = variant.instance
        if instance is None or not instance.ready:
            which = "" if instance is None else f" {instance.id}"
            raise _Unavailable(
                f"instance{which} is not in service; a failed instance is being replaced"
            )
        sent = time.perf_counter()
        try:
            status, answer_headers, data = instance.request("POST", "/invocations", body, headers)
        except (OSError, http.client.HTTPException) as exc:
            raise _Unavailable(f"instance {instance.id} did not answer: {exc!r}") from None
        model_us = (time.perf_counter() - sent) * 1e6
        invocation = Invocation(
            variant=variant.spec.name,
            status=status,
            body=data,
            content_type=answer_headers.get("Content-Type", "application/octet-stream"),
            custom_attributes=answer_headers.get("X-Amzn-SageMaker-Custom-Attributes"),
        )
        return invocation, model_us

    def _observe(
        self,
        endpoint: _Endpoint,
        variant: _Variant,
        request: tuple[str, bytes],
        invocation: Invocation,
        inference_id: str | None,
    ) -> None:
        config = endpoint.capture
        if config is None or random.random() * 100 >= config.sampling_percentage:
            return
        when = datetime.now(UTC)
        record = capture_record(
            config,
            request=request,
            response=(invocation.content_type, invocation.body),
            inference_id=inference_id,
            when=when,
        )
        self._capture.add(
            config,
            region=endpoint.region,
            endpoint=endpoint.name,
            variant=variant.spec.name,
            record=record,
            when=when,
        )

    def _mirror(
        self,
        endpoint: _Endpoint,
        shadow: _Variant,
        body: bytes,
        headers: Mapping[str, str],
        inference_id: str | None,
    ) -> None:
        started = time.perf_counter()
        try:
            invocation, model_us = self._forward(shadow, body, headers)
        except _Unavailable:
            self._measure(endpoint, shadow, 503, started, None)
            return
        self._observe(endpoint, shadow, (headers["Content-Type"], body), invocation, inference_id)
        self._measure(endpoint, shadow, invocation.status, started, model_us)

    # -- background sending --------------------------------------------------------------

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self._flush()
            with self._lock:
                if self._closed:
                    return

    def _flush(self) -> None:
        self._capture.flush()
        self._metrics.flush()
        with self._lock:
            endpoints = list(self._endpoints.values())
        for endpoint in endpoints:
            endpoint.flush_logs()

    # -- moto hooks ----------------------------------------------------------------------

    def _on_create_endpoint_config(
        self, response: SageMakerResponse, original: Callable[..., ActionResult]
    ) -> ActionResult:
        shadows = response._get_param("ShadowProductionVariants") or []
        backend = response.sagemaker_backend
        try:
            CaptureConfig.from_request(response._get_param("DataCaptureConfig"))
        except InvalidRequest as exc:
            raise ValidationError(str(exc)) from None
        if len(shadows) > 1:
            raise ValidationError("ShadowProductionVariants must hold exactly one variant")
        with self._lock:
            backend.validate_production_variants(shadows)
            result = original(response)
            config: Any = backend.endpoint_configs[response._get_param("EndpointConfigName")]
            config.shadow_production_variants = copy.deepcopy(shadows) or None
        return result

    def _on_create_endpoint(
        self, response: SageMakerResponse, original: Callable[..., ActionResult]
    ) -> ActionResult:
        name = str(response._get_param("EndpointName"))
        backend = response.sagemaker_backend
        key = (response.current_account, response.region, name)
        with self._lock:
            if self._closed:
                raise ValidationError("the local endpoint executor has shut down")
            if name in backend.endpoints:
                arn = FakeEndpoint.arn_formatter(name, response.current_account, response.region)
                raise ValidationError(f'Cannot create already existing endpoint "{arn}".')
            result = original(response)
            fake = backend.endpoints[name]
            config = backend.endpoint_configs[fake.endpoint_config_name]
            try:
                capture = CaptureConfig.from_request(config.data_capture_config)
                shadows = getattr(config, "shadow_production_variants", None) or []
                specs = [_variant_spec(backend, raw) for raw in config.production_variants]
                shadow = _variant_spec(backend, shadows[0]) if shadows else None
            except InvalidRequest as exc:
                del backend.endpoints[name]
                raise ValidationError(str(exc)) from None
            endpoint = _Endpoint(
                self,
                region=response.region,
                fake=fake,
                variants=specs,
                shadow=shadow,
                capture=capture,
            )
            self._endpoints[key] = endpoint
        endpoint.start()
        return result

    def _on_update_endpoint(self, response: SageMakerResponse) -> ActionResult:
        """Blue/green without guardrails: the new config's variants start next to the
        serving ones (status Updating, the old fleet answers); once all are ready the router
        switches and the old fleet stops. A fleet that fails to start leaves the old one
        serving (InService, with the FailureReason)."""
        name = str(response._get_param("EndpointName"))
        config_name = str(response._get_param("EndpointConfigName"))
        backend = response.sagemaker_backend
        key = (response.current_account, response.region, name)
        with self._lock:
            old = self._endpoints.get(key)
            if old is None:
                arn = FakeEndpoint.arn_formatter(name, response.current_account, response.region)
                raise ValidationError(f'Could not find endpoint "{arn}".')
            if old.status != "InService":
                raise ValidationError(
                    f"Cannot update endpoint {old.fake.arn} in status {old.status}."
                )
            config = backend.endpoint_configs.get(config_name)
            if config is None:
                raise ValidationError(f'Could not find endpoint configuration "{config_name}".')
            try:
                capture = CaptureConfig.from_request(config.data_capture_config)
                shadows = getattr(config, "shadow_production_variants", None) or []
                specs = [_variant_spec(backend, raw) for raw in config.production_variants]
                shadow = _variant_spec(backend, shadows[0]) if shadows else None
            except InvalidRequest as exc:
                raise ValidationError(str(exc)) from None
            fake = old.fake
            before = (
                fake.endpoint_config_name,
                fake.production_variants,
                fake.shadow_production_variants,
                fake.data_capture_config,
            )
            new = _Endpoint(
                self,
                region=response.region,
                fake=fake,
                variants=specs,
                shadow=shadow,
                capture=capture,
            )
            fake.endpoint_config_name = config_name
            fake.endpoint_status = "Updating"
        threading.Thread(
            target=self._finish_update,
            args=(key, old, new, before),
            name=f"sagemaker-update-{name}",
            daemon=True,
        ).start()
        return ActionResult({"EndpointArn": fake.arn})

    def _finish_update(
        self, key: tuple[str, str, str], old: _Endpoint, new: _Endpoint, before: tuple[Any, ...]
    ) -> None:
        new._start()
        with self._lock:
            if new.status == "InService" and self._endpoints.get(key) is old:
                self._endpoints[key] = new
                retired: _Endpoint | None = old
            else:
                fake = old.fake
                reason = fake.failure_reason
                (
                    fake.endpoint_config_name,
                    fake.production_variants,
                    fake.shadow_production_variants,
                    fake.data_capture_config,
                ) = before
                fake.endpoint_status, fake.failure_reason = "InService", reason
                retired = None
        if retired is not None:
            retired.stop()

    def _on_describe_endpoint(
        self, response: SageMakerResponse, original: Callable[..., ActionResult]
    ) -> ActionResult:
        with self._lock:
            return original(response)

    def _on_list_endpoints(
        self, response: SageMakerResponse, original: Callable[..., ActionResult]
    ) -> ActionResult:
        with self._lock:
            return original(response)

    def _on_update_endpoint_weights_and_capacities(
        self, response: SageMakerResponse, original: Callable[..., ActionResult]
    ) -> ActionResult:
        name = str(response._get_param("EndpointName"))
        desired = response._get_param("DesiredWeightsAndCapacities") or []
        with self._lock:
            endpoint = self._endpoints.get((response.current_account, response.region, name))
            if endpoint is not None and endpoint.status != "InService":
                raise ValidationError(
                    f"Cannot update endpoint {endpoint.fake.arn} in status {endpoint.status}."
                )
            before = (
                {v["VariantName"]: dict(v) for v in endpoint.fake.production_variants}
                if endpoint
                else {}
            )
            result = original(response)  # moto's validation of the names, and its record
            if endpoint is None:
                return result
            after = {n: dict(v) for n, v in before.items()}
            for change in desired:
                variant = after[change["VariantName"]]
                if change.get("DesiredWeight") is not None:
                    variant["CurrentWeight"] = variant["DesiredWeight"] = float(
                        change["DesiredWeight"]
                    )
                if change.get("DesiredInstanceCount") is not None:
                    count = int(change["DesiredInstanceCount"])
                    variant["CurrentInstanceCount"] = variant["DesiredInstanceCount"] = count
            if sum(v["CurrentWeight"] for v in after.values()) <= 0:
                endpoint.fake.production_variants = list(before.values())
                raise ValidationError("At least one variant must have a positive weight.")
            endpoint.fake.production_variants = list(after.values())
            endpoint.fake.endpoint_status = "InService"
            endpoint.fake.last_modified_time = utcnow()
            endpoint.weights = tuple((n, float(v["CurrentWeight"])) for n, v in after.items())
        return result

    def _on_delete_endpoint(
        self, response: SageMakerResponse, original: Callable[..., ActionResult]
    ) -> ActionResult:
        key = (response.current_account, response.region, str(response._get_param("EndpointName")))
        with self._lock:
            result = original(response)
            endpoint = self._endpoints.pop(key, None)
        if endpoint is not None:
            endpoint.stop()
        return result

    def _on_invoke_endpoint(self, response: SageMakerRuntimeResponse) -> Any:
        headers = response.headers
        name = urllib.parse.unquote(response.path.split("/")[2])  # /endpoints/<name>/invocations
        try:
            invocation = self.invoke(
                name,
                response.raw_body if isinstance(response.raw_body, bytes) else b"",
                content_type=headers.get("Content-Type") or "application/octet-stream",
                accept=headers.get("Accept"),
                target_variant=headers.get("X-Amzn-SageMaker-Target-Variant"),
                custom_attributes=headers.get("X-Amzn-SageMaker-Custom-Attributes"),
                inference_id=headers.get("X-Amzn-SageMaker-Inference-Id"),
                account=response.current_account,
                region=response.region,
            )
        except InvocationError as exc:
            return _error(exc.status, exc.code, {"message": str(exc)})
        if not 200 <= invocation.status < 300:
            original = invocation.body.decode("utf-8", "replace")
            return _error(
                424,
                "ModelError",
                {
                    "message": f"Received server error ({invocation.status}) from "
                    f'{invocation.variant} with message "{original}".',
                    "OriginalStatusCode": invocation.status,
                    "OriginalMessage": original,
                    "LogStreamArn": f"arn:aws:logs:{response.region}:{response.current_account}:"
                    f"log-group:{LOG_GROUP_PREFIX}{name}",
                },
            )
        answer = {
            "Content-Type": invocation.content_type,
            "x-Amzn-Invoked-Production-Variant": invocation.variant,
        }
        if invocation.custom_attributes:
            answer["X-Amzn-SageMaker-Custom-Attributes"] = invocation.custom_attributes
        return 200, answer, invocation.body


def _error(status: int, code: str, body: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    # moto takes a response's status from its "status" header.
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": code, "status": str(status)}
    return status, headers, json.dumps(body)


def _variant_spec(backend: Any, raw: Mapping[str, Any]) -> _VariantSpec:
    model_name = str(raw.get("ModelName"))
    model = backend._models.get(model_name)
    if model is None:
        raise InvalidRequest(f"Could not find model {model_name!r}.")
    if not model.primary_container or model.containers:
        raise InvalidRequest(
            f"model {model_name}: the local cloud serves single-container models "
            "(PrimaryContainer) only"
        )
    weight = raw.get("InitialVariantWeight")
    return _VariantSpec(
        name=str(raw["VariantName"]),
        model_name=model_name,
        container=copy.deepcopy(model.primary_container),
        role_arn=str(model.execution_role_arn),
        weight=1.0 if weight is None else float(weight),
        instance_count=int(raw.get("InitialInstanceCount") or 1),
        instance_type=str(raw.get("InstanceType") or ""),
    )
