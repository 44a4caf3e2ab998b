"""SageMaker training jobs that really run, on this machine, behind moto's SageMaker API.

Pinned to moto 5.2.5. moto records ``CreateTrainingJob`` and reports ``Completed`` at once;
:meth:`TrainingExecutor.install` patches, in this process (the one running moto's
``ThreadedMotoServer``), four methods of ``moto.sagemaker.responses.SageMakerResponse``:

* ``create_training_job``: validates what SageMaker validates at create time (see below),
  lets moto record the job, then overwrites the fields moto fakes (status, times,
  transitions, metrics; moto also replaces ``MetricDefinitions`` with a canned one, which is
  put back) and starts a thread that runs the job;
* ``stop_training_job``: added (moto 5.2.5 has none); ``Stopping`` at once, then ``Stopped``;
* ``describe_training_job`` and ``list_training_jobs``: moto's own, run under the executor's
  lock so that a response never mixes two states. The job thread publishes state by
  assigning attributes of moto's ``FakeTrainingJob`` (``training_job_status``,
  ``secondary_status``, ``secondary_status_transitions``, ``final_metric_data_list``,
  ``failure_reason``, ``training_time_in_seconds``, ``billable_time_in_seconds``,
  ``environment``, ...), which moto's ``gen_response_object`` turns into the response keys;
  every key exists from creation on and containers are replaced, never mutated.

What a job does, as SageMaker does it (statuses from the DescribeTrainingJob API reference):

1. ``InProgress``/``Starting``; the image must be a local-runtime image (see
   :mod:`localcloud.sagemaker_image`) describing the interpreter the executor runs, else
   ``Failed`` with ``ClientError: ...``.
2. ``Downloading``: a fresh private directory per host, laid out like ``/opt/ml``
   (:mod:`localcloud.sagemaker_container`); every channel's objects; the checkpoint prefix
   restored into an empty checkpoint directory; then the ``sagemaker_submit_directory``
   tar.gz extracted into its code directory. Every S3 request of the job (these, the
   checkpoint syncs and the uploads) is made as a session of its ``RoleArn`` (STS
   ``AssumeRole``, session name ``SageMaker``), so bucket policies judge the role
   (:mod:`localcloud.resource_policies`): an object its bucket's policy denies the role (or
   one that vanished) fails the job ``Failed`` with ``ClientError: Data download failed:
   AccessDenied (403) reading s3://<bucket>/<key>: <S3's message>``, as SageMaker reports
   data its role cannot read; a code archive it cannot read ends ``AlgorithmError: cannot
   fetch sagemaker_submit_directory: AccessDenied (403) reading s3://...`` (in SageMaker
   the training toolkit fetches it, inside the container).
3. ``Training``: one process per host (``algo-1`` .. ``algo-N``, ``InstanceCount``), each in
   its own process group, running ``python <sagemaker_program> --key value ...``. Every
   output line goes to CloudWatch Logs (``/aws/sagemaker/TrainingJobs``, stream
   ``<job>/algo-<n>-<unix seconds>``, a new one per attempt) and through the
   MetricDefinitions (``FinalMetricDataList``). The checkpoint directory is synced to
   ``CheckpointConfig.S3Uri`` every ``poll_seconds``.
4. All hosts exit 0: ``Uploading``: a last checkpoint sync; the model directories of all hosts
   merged (SageMaker aggregates every host's ``/opt/ml/model``; on a name clash the higher
   host number wins, as in SageMaker local mode) into ``<S3OutputPath>/<job>/output/
   model.tar.gz``, and ``output/data`` into ``output.tar.gz``, both byte-stable
   (:mod:`modelops.domain.archive`); then ``Completed``.
5. A host exits non-zero: the other hosts are killed, a last checkpoint sync, ``Failed`` with
   ``FailureReason`` ``AlgorithmError: <output/failure, first 1024 characters, stripped>,
   exit code: <n>`` (the last stderr lines without a failure file; a signal is 128+n).
6. ``StopTrainingJob``: ``Stopping``; SIGTERM to every process group, ``stop_grace_seconds``
   (SageMaker gives 120 s), SIGKILL; a last checkpoint sync; ``model.tar.gz`` if the model
   directories hold files; ``Stopped``. ``MaxRuntimeInSeconds`` exceeded (running time,
   summed over attempts) stops the same way and ends ``Stopped``/``MaxRuntimeExceeded``;
   ``MaxWaitTimeInSeconds`` exceeded (wall time since creation, spot jobs) ends
   ``Stopped``/``MaxWaitTimeExceeded``.
7. Spot interruption (:meth:`TrainingExecutor.interrupt`, or planned with
   :meth:`TrainingExecutor.plan_interruptions`: as soon as the k-th distinct checkpoint file
   has reached S3): the instances vanish (SIGKILL to every host, files not yet synced are
   lost), ``Interrupted``, ``Restarting``, then again from 2. on a new directory. Managed
   spot training jobs only; interruptions do not count against the ``RetryStrategy``.
8. Node failure (:meth:`TrainingExecutor.fail_node`, or planned with
   :meth:`TrainingExecutor.plan_node_failures`, as in 7.), spot or not: the instances vanish
   as in 7. A host failure is an internal error, which SageMaker retries under
   ``RetryStrategy``: ``MaximumRetryAttempts`` N (1 to 30; 1 without a RetryStrategy) is
   the number of attempts the job gets. While attempts are left: ``Restarting`` with the
   message "Training job failed on the host: node failure; restarting (attempt k of N) from
   the S3 checkpoints", then again from 2. on a new directory (the S3 checkpoints restored).
   The N-th failure ends the job ``Failed`` with ``FailureReason`` ``InternalServerError:
   the training host failed (node failure) on attempt N of N``; no last checkpoint sync (the
   host is gone), what reached S3 stays there.

``TrainingStartTime`` is when the first download starts; ``TrainingTimeInSeconds`` the wall
time from then to the end; ``BillableTimeInSeconds`` the time instances ran (each attempt
from its download to its end, upload included), at least 1.

Validation at create (``ValidationException`` as SageMaker answers): an image URI that does
not resolve in ECR (by digest, else tag, else ``latest``): "Cannot find repository ..." /
"Cannot find the requested image ..."; a channel without objects: "No S3 objects found
under S3 URL ..."; ``MaxWaitTimeInSeconds`` without managed spot, or managed spot without
``MaxWaitTimeInSeconds >= MaxRuntimeInSeconds``; ``RetryStrategy.MaximumRetryAttempts``
outside 1 to 30; a reused job name is ``ResourceInUse``.

Differences from AWS, on purpose: no containers (the image stands for this machine's
interpreter); script mode only (``sagemaker_program`` and ``sagemaker_submit_directory``
hyperparameters; without them the job fails); ``S3Prefix`` data in ``File``/``FastFile``
mode only; ``CheckpointConfig.LocalPath`` is not honoured (``SM_CHECKPOINT_DIR`` says where
checkpoints go); of IAM, only the Deny statements of bucket and key policies judge the
job's S3 requests (made as its role, see 2.): identity policies do not (moto enforces
none, so a role without an S3 grant is not refused), the role's trust policy is not
checked (any role ARN is assumed, even one that does not exist) and CloudWatch Logs is
written as moto's default account; the script gets no AWS credentials at all; instance
types are labels; no GPUs; the only internal error retried is a node failure (8.); the whole job
directory is removed when the job ends (its outputs are in S3 and CloudWatch Logs).
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.sagemaker.exceptions import ResourceInUseException, ResourceNotFound, ValidationError
from moto.sagemaker.models import FakeTrainingJob
from moto.sagemaker.responses import SageMakerResponse

from localcloud.sagemaker_container import (
    HostLayout,
    InvalidRequest,
    JobSpec,
    S3Location,
    container_environment,
    script_arguments,
    user_hyperparameters,
)
from localcloud.sagemaker_image import (
    LOCAL_IMAGE_REPOSITORY,
    ImageNotFound,
    LocalRuntime,
    Runtime,
    find_image,
    register_local_image,
)
from localcloud.sagemaker_io import (
    CheckpointSync,
    DataError,
    LocalAws,
    LogShipper,
    MetricParser,
    download_channel,
    s3_error,
)
from modelops.domain.archive import extract_targz, write_targz

__all__ = [
    "LOCAL_IMAGE_REPOSITORY",
    "TERMINAL_STATUSES",
    "TrainingExecutor",
    "register_local_image",
]

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
_STDERR_TAIL_LINES = 10
_MAX_FAILURE_REASON = 1024
_MAX_RETRY_ATTEMPTS = 30  # RetryStrategy.MaximumRetryAttempts, as SageMaker bounds it

# How the instances of an attempt can vanish without notice (module docstring, 7. and 8.).
_Loss = Literal["spot interruption", "node failure"]
_SPOT: _Loss = "spot interruption"
_NODE: _Loss = "node failure"

_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "MaxRuntimeExceeded": "Training job exceeded MaxRuntimeInSeconds provided",
    "MaxWaitTimeExceeded": "Training job exceeded MaxWaitTimeInSeconds provided",
    "Interrupted": "Training job interrupted: the spot instance was reclaimed",
    "Restarting": "Restarting the training job on a new instance from the S3 checkpoints",
}

logger = logging.getLogger(__name__)

_ORIGINAL_CREATE = SageMakerResponse.create_training_job
_ORIGINAL_DESCRIBE = SageMakerResponse.describe_training_job
_ORIGINAL_LIST = SageMakerResponse.list_training_jobs
_INSTALL_LOCK = threading.Lock()


class _Installed:
    executor: TrainingExecutor | None = None


def _create_training_job(self: SageMakerResponse) -> ActionResult:
    executor = _Installed.executor
    return _ORIGINAL_CREATE(self) if executor is None else executor._create(self)


def _describe_training_job(self: SageMakerResponse) -> ActionResult:
    executor = _Installed.executor
    if executor is None:
        return _ORIGINAL_DESCRIBE(self)
    with executor._lock:
        return _ORIGINAL_DESCRIBE(self)


def _list_training_jobs(self: SageMakerResponse) -> ActionResult:
    executor = _Installed.executor
    if executor is None:
        return _ORIGINAL_LIST(self)
    with executor._lock:
        return _ORIGINAL_LIST(self)


def _stop_training_job(self: SageMakerResponse) -> ActionResult:
    executor = _Installed.executor
    if executor is None:  # uninstalled while the request was in flight
        raise ValidationError("StopTrainingJob needs the local training executor")
    return executor._stop(self)


class _JobFailure(Exception):
    """Ends the job ``Failed``; the message is the FailureReason."""


class _InstanceLost(Exception):
    """The attempt's instances vanished without notice (a spot interruption or a node
    failure)."""

    def __init__(self, loss: _Loss) -> None:
        super().__init__(loss)
        self.loss = loss


class _Aborted(Exception):
    """The executor is shutting down."""


class TrainingExecutor:
    """Runs moto's SageMaker training jobs for real; see the module docstring."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        work_root: Path,
        python: str = sys.executable,
        stop_grace_seconds: float = 10.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.work_root = Path(work_root)
        self.python = python
        self.stop_grace_seconds = stop_grace_seconds
        self.poll_seconds = poll_seconds
        # Guards the jobs, the plans and every field of moto's job objects that jobs publish.
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._plans: dict[str, list[tuple[int, _Loss]]] = {}
        self._aws = LocalAws(endpoint_url)
        self._runtime = LocalRuntime(python)
        self._log_send_lock = threading.Lock()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    def install(self) -> None:
        """Make moto's SageMaker training jobs run here. Idempotent; one executor per process."""
        with _INSTALL_LOCK:
            if _Installed.executor is self:
                return
            if self._closed:
                raise RuntimeError("this TrainingExecutor has been shut down")
            if _Installed.executor is not None:
                raise RuntimeError("another TrainingExecutor is installed; uninstall it first")
            SageMakerResponse.create_training_job = _create_training_job  # type: ignore[method-assign]
            SageMakerResponse.describe_training_job = _describe_training_job  # type: ignore[method-assign]
            SageMakerResponse.list_training_jobs = _list_training_jobs  # type: ignore[method-assign]
            SageMakerResponse.stop_training_job = _stop_training_job  # type: ignore[attr-defined]
            _Installed.executor = self

    def uninstall(self) -> None:
        """Give CreateTrainingJob back to moto; running jobs go on (``shutdown`` stops them)."""
        with _INSTALL_LOCK:
            if _Installed.executor is not self:
                return
            SageMakerResponse.create_training_job = _ORIGINAL_CREATE  # type: ignore[method-assign]
            SageMakerResponse.describe_training_job = _ORIGINAL_DESCRIBE  # type: ignore[method-assign]
            SageMakerResponse.list_training_jobs = _ORIGINAL_LIST  # type: ignore[method-assign]
            del SageMakerResponse.stop_training_job  # type: ignore[attr-defined]
            _Installed.executor = None

    @staticmethod
    def installed() -> TrainingExecutor | None:
        """The executor moto's training jobs in this process currently go to, if any."""
        return _Installed.executor

    def shutdown(self, timeout: float = 30.0) -> None:
        """Uninstall, kill every running job's processes (the jobs end ``Failed``) and wait
        for the job threads. Idempotent."""
        self.uninstall()
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            job.abort()
        deadline = time.monotonic() + timeout
        for job in jobs:
            job.join(max(0.0, deadline - time.monotonic()))

    # -- controls ------------------------------------------------------------------------

    def plan_interruptions(self, job_name: str, after_checkpoints: Sequence[int]) -> None:
        """Interrupt the (managed spot) job as soon as the k-th distinct checkpoint file has
        been synced to S3, for each k. May be called before the job is created."""
        self._plan_losses(job_name, _SPOT, after_checkpoints)

    def plan_node_failures(self, job_name: str, after_checkpoints: Sequence[int]) -> None:
        """Fail the job's host (a node failure) as soon as the k-th distinct checkpoint file
        has been synced to S3, for each k. May be called before the job is created."""
        self._plan_losses(job_name, _NODE, after_checkpoints)

    def interrupt(self, job_name: str) -> None:
        """A spot interruption of the running (managed spot) job, now."""
        self._lose_instances(job_name, _SPOT)

    def fail_node(self, job_name: str) -> None:
        """A node failure of the running job, now: its processes are killed without notice."""
        self._lose_instances(job_name, _NODE)

    def _plan_losses(self, job_name: str, loss: _Loss, after_checkpoints: Sequence[int]) -> None:
        plan = {(k, loss) for k in after_checkpoints}
        if any(k < 1 for k, _ in plan):
            raise ValueError("checkpoint counts start at 1")
        with self._lock:
            job = self._jobs.get(job_name)
            if job is None:
                self._plans[job_name] = sorted(set(self._plans.get(job_name, [])) | plan)
                return
            job.check_loss(loss)
            job.add_plan(plan)

    def _lose_instances(self, job_name: str, loss: _Loss) -> None:
        with self._lock:
            job = self._jobs.get(job_name)
            if job is None:
                raise ValueError(f"no training job {job_name!r} runs on this executor")
            job.check_loss(loss)
            job.request_loss(loss)

    def wait(self, job_name: str, timeout: float) -> str:
        """Wait for the job to end; return its TrainingJobStatus. TimeoutError if it has not."""
        with self._lock:
            job = self._jobs.get(job_name)
        if job is None:
            raise ValueError(f"no training job {job_name!r} runs on this executor")
        if not job.done.wait(timeout):
            raise TimeoutError(f"training job {job_name} still {job.status} after {timeout} s")
        return job.status

    # -- shared by jobs ----------------------------------------------------------------

    def client(self, service: str, region: str, role_arn: str | None = None) -> Any:
        """A client as the executor, or with ``role_arn`` as a session of that role."""
        return self._aws.client(service, region, role_arn)

    def runtime(self) -> Runtime:
        """The interpreter jobs run under, described once."""
        return self._runtime.get()

    # -- moto hooks ----------------------------------------------------------------------

    def _create(self, response: SageMakerResponse) -> ActionResult:
        request = copy.deepcopy(response.params)
        backend = response.sagemaker_backend
        name = str(request.get("TrainingJobName"))
        arn = FakeTrainingJob.arn_formatter(name, response.current_account, response.region)
        try:
            spec = JobSpec.from_request(request, arn=arn, region=response.region)
            max_attempts = _max_attempts(request)
            image = find_image(spec.image, spec.role_arn)
            self._check_channels(spec)
        except (InvalidRequest, ImageNotFound) as exc:
            raise ValidationError(str(exc)) from None
        with self._lock:
            if name in backend.training_jobs:
                raise ResourceInUseException(
                    "Training job names must be unique within an AWS account and region, and "
                    f"a training job with this name already exists ({arn})"
                )
            if any(loss == _SPOT for _, loss in self._plans.get(name, ())) and not spec.spot:
                raise ValidationError(
                    f"interruptions are planned for {name} but EnableManagedSpotTraining is "
                    "false: only managed spot training jobs are interrupted"
                )
            if self._closed:
                raise ValidationError("the local training executor has shut down")
            result = _ORIGINAL_CREATE(response)
            job = _Job(
                self,
                spec,
                backend.training_jobs[name],
                request=request,
                image_manifest=image.image_manifest,
                plan=self._plans.pop(name, []),
                max_attempts=max_attempts,
            )
            self._jobs[name] = job
        job.start()
        return result

    def _check_channels(self, spec: JobSpec) -> None:
        s3 = self.client("s3", spec.region)
        for channel in spec.channels:
            source = channel.source
            try:
                found = s3.list_objects_v2(Bucket=source.bucket, Prefix=source.key, MaxKeys=1)
            except ClientError:
                found = {}
            if not found.get("Contents"):
                raise InvalidRequest(
                    f'No S3 objects found under S3 URL "{source.uri}" given in input data '
                    f"source. Please ensure that the bucket exists in the selected region "
                    f"({spec.region}), that objects exist under that S3 prefix, and that the "
                    f'role "{spec.role_arn}" has "s3:ListBucket" permissions on bucket '
                    f'"{source.bucket}".'
                )

    def _stop(self, response: SageMakerResponse) -> ActionResult:
        name = str(response._get_param("TrainingJobName"))
        fake = response.sagemaker_backend.training_jobs.get(name)
        if fake is None:
            arn = FakeTrainingJob.arn_formatter(name, response.current_account, response.region)
            raise ResourceNotFound(f"Could not find training job '{arn}'.")
        with self._lock:
            job = self._jobs.get(name)
            if job is None or job.fake is not fake or job.status in TERMINAL_STATUSES:
                raise ValidationError(
                    "The request was rejected because the training job is in status "
                    f"{fake.training_job_status}."
                )
            job.request_stop("Stopped")
        return EmptyResult()


def _max_attempts(request: dict[str, Any]) -> int:
    """The attempts a job gets (``RetryStrategy.MaximumRetryAttempts``; 1 without one)."""
    strategy = request.get("RetryStrategy")
    if strategy is None:
        return 1
    attempts = strategy.get("MaximumRetryAttempts") if isinstance(strategy, dict) else None
    if not isinstance(attempts, int) or not 1 <= attempts <= _MAX_RETRY_ATTEMPTS:
        raise InvalidRequest(
            f"1 validation error detected: Value '{attempts}' at "
            "'retryStrategy.maximumRetryAttempts' failed to satisfy constraint: Member must "
            f"have value between 1 and {_MAX_RETRY_ATTEMPTS}"
        )
    return attempts


class _Host:
    """One instance of one attempt: its directory and its training process."""

    def __init__(self, name: str, layout: HostLayout) -> None:
        self.name = name
        self.layout = layout
        self.proc: subprocess.Popen[bytes] | None = None
        self.checkpoints: CheckpointSync | None = None
        self.stderr_tail: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
        self._readers: list[threading.Thread] = []

    def launch(self, argv: list[str], env: dict[str, str], on_line: Callable[[str], None]) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=self.layout.code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: a kill takes its children too
        )
        for pipe, is_stderr in ((self.proc.stdout, False), (self.proc.stderr, True)):
            assert pipe is not None
            reader = threading.Thread(
                target=self._read,
                args=(pipe, is_stderr, on_line),
                name=f"sagemaker-{self.name}-{'stderr' if is_stderr else 'stdout'}",
                daemon=True,
            )
            reader.start()
            self._readers.append(reader)

    def _read(self, pipe: IO[bytes], is_stderr: bool, on_line: Callable[[str], None]) -> None:
        with pipe:
            for raw in pipe:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if is_stderr:
                    self.stderr_tail.append(line)
                on_line(line)

    def poll(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def signal(self, signum: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signum)

    def wait(self, timeout: float) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the process group (what is left of it once the process has exited too)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for reader in self._readers:
            reader.join(5.0)

    def failure_reason(self, returncode: int) -> str:
        failure = self.layout.output_dir / "failure"
        if failure.is_file():
            text = failure.read_text(encoding="utf-8", errors="replace")[:1024].strip()
        else:
            text = "\n".join(self.stderr_tail).strip()
        code = returncode if returncode >= 0 else 128 - returncode
        reason = f"AlgorithmError: {text or 'see the job logs'}, exit code: {code}"
        return reason[:_MAX_FAILURE_REASON]


class _Job:
    """One training job: its thread, its requests and what it publishes to moto."""

    def __init__(
        self,
        executor: TrainingExecutor,
        spec: JobSpec,
        fake: Any,
        *,
        request: dict[str, Any],
        image_manifest: str,
        plan: list[tuple[int, _Loss]],
        max_attempts: int,
    ) -> None:
        self.executor = executor
        self.spec = spec
        self.fake = fake
        self.done = threading.Event()
        # Unique even if moto is reset and the name reused while the old job still runs.
        self.root = executor.work_root / f"{spec.name}-{uuid.uuid4().hex[:8]}"
        self._image_manifest = image_manifest
        self._plan = plan  # (distinct checkpoints synced, loss), soonest first
        self._max_attempts = max_attempts
        self._wake = threading.Event()
        self._stop_status: str | None = None
        self._loss_requested: _Loss | None = None
        self._aborted = False
        self._synced_keys: set[str] = set()
        self._metrics = MetricParser(spec.metric_definitions)
        self._logs = LogShipper(executor.client("logs", spec.region), executor._log_send_lock)
        self._created = time.monotonic()
        self._started: float | None = None
        self._attempt_began: float | None = None
        self._billable = 0.0
        self._thread = threading.Thread(
            target=self._run, name=f"sagemaker-training-{spec.name}", daemon=True
        )
        now = utcnow()
        # Every field the job publishes exists from now on (see the module docstring).
        fake.algorithm_specification = copy.deepcopy(request.get("AlgorithmSpecification"))
        fake.environment = spec.environment or None
        fake.retry_strategy = request.get("RetryStrategy")
        fake.model_artifacts = {"S3ModelArtifacts": spec.output_location("model.tar.gz").uri}
        fake.training_job_status = "InProgress"
        fake.secondary_status = "Starting"
        fake.secondary_status_transitions = [
            {"Status": "Starting", "StartTime": now, "StatusMessage": _MESSAGES["Starting"]}
        ]
        fake.creation_time = fake.last_modified_time = now
        fake.training_start_time = fake.training_end_time = None
        fake.final_metric_data_list = None
        fake.failure_reason = None
        fake.training_time_in_seconds = fake.billable_time_in_seconds = None

    # -- called from other threads (under the executor's lock) ----------------------------

    @property
    def status(self) -> str:
        return str(self.fake.training_job_status)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def check_loss(self, loss: _Loss) -> None:
        """ValueError if this job's instances cannot be lost that way."""
        if loss == _SPOT and not self.spec.spot:
            raise ValueError(
                f"training job {self.spec.name} does not use managed spot training: only "
                "spot instances are interrupted"
            )

    def add_plan(self, plan: set[tuple[int, _Loss]]) -> None:
        self._plan = sorted(set(self._plan) | plan)

    def request_loss(self, loss: _Loss) -> None:
        if self.status in TERMINAL_STATUSES:
            raise ValueError(f"training job {self.spec.name} has ended ({self.status})")
        self._loss_requested = loss
        self._wake.set()

    def request_stop(self, final_status: str) -> None:
        """Stop the job; it ends ``Stopped`` with ``final_status`` as its secondary status."""
        with self.executor._lock:
            if self._stop_status is None:
                self._stop_status = final_status
                self._transition("Stopping", "Stopping")
        self._wake.set()

    def abort(self) -> None:
        with self.executor._lock:
            self._aborted = True
        self._wake.set()

    # -- publishing ------------------------------------------------------------------------

    def _transition(
        self, status: str, secondary: str, *, final: bool = False, message: str | None = None
    ) -> None:
        with self.executor._lock:
            if status == "InProgress" and self._stop_status is not None:
                return  # stopping: the job's remaining steps no longer show as progress
            now = utcnow()
            transitions = [dict(t) for t in self.fake.secondary_status_transitions]
            if transitions and "EndTime" not in transitions[-1]:
                transitions[-1]["EndTime"] = now
            entry = {
                "Status": secondary,
                "StartTime": now,
                "StatusMessage": message or _MESSAGES[secondary],
            }
            if final:
                entry["EndTime"] = now
            self.fake.secondary_status_transitions = [*transitions, entry]
            self.fake.training_job_status = status
            self.fake.secondary_status = secondary
            self.fake.last_modified_time = now

    def _publish_logs_and_metrics(self) -> None:
        self._logs.flush()
        final = self._metrics.final()
        with self.executor._lock:
            self.fake.final_metric_data_list = final

    def _close_attempt(self) -> None:
        if self._attempt_began is not None:
            self._billable += time.monotonic() - self._attempt_began
            self._attempt_began = None

    def _finish(self, status: str, secondary: str, failure_reason: str | None = None) -> None:
        self._close_attempt()
        self._publish_logs_and_metrics()
        with self.executor._lock:
            if status == "Completed" and self._stop_status is not None:
                status, secondary = "Stopped", self._stop_status  # stopped while uploading
            self._transition(status, secondary, final=True)
            self.fake.training_end_time = self.fake.last_modified_time
            self.fake.failure_reason = failure_reason
            if self._started is not None:
                self.fake.training_time_in_seconds = max(
                    1, math.ceil(time.monotonic() - self._started)
                )
                self.fake.billable_time_in_seconds = max(1, math.ceil(self._billable))

    # -- the job ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            program, submit_directory = self._check_runnable()
            self._finish(*self._train(program, submit_directory))
        except _JobFailure as failure:
            self._finish("Failed", "Failed", str(failure))
        except _Aborted:
            self._finish(
                "Failed", "Failed", "InternalServerError: the local cloud shut down during the job"
            )
        except Exception as exc:
            logger.exception("training job %s: executor error", self.spec.name)
            self._finish(
                "Failed", "Failed", f"InternalServerError: local training executor: {exc!r}"
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.done.set()

    def _check_runnable(self) -> tuple[str, str]:
        """The image is the local runtime and the job is in script mode: (program, code URI)."""
        runtime = self.executor.runtime()
        if not runtime.described_by(self._image_manifest):
            raise _JobFailure(
                f"ClientError: the training image {self.spec.image} does not describe the local "
                f"runtime ({runtime.implementation} {runtime.python}, {runtime.platform}, "
                f"{len(runtime.packages)} packages); register it with "
                "localcloud.sagemaker_training.register_local_image and submit that image"
            )
        script = self.spec.script()
        if script is None:
            raise _JobFailure(
                "AlgorithmError: the local runtime image runs script mode only: the "
                "sagemaker_program and sagemaker_submit_directory hyperparameters are required"
            )
        return script

    def _train(self, program: str, submit_directory: str) -> tuple[str, str]:
        """Attempts until one ends; returns the final (status, secondary status)."""
        attempt = host_failures = 0
        while True:
            attempt += 1
            self._attempt_began = time.monotonic()
            if self._started is None:
                self._started = self._attempt_began
                with self.executor._lock:
                    self.fake.training_start_time = utcnow()
            self._transition("InProgress", "Downloading")
            hosts = self._prepare(self.root / f"attempt-{attempt}", submit_directory)
            self._transition("InProgress", "Training")
            try:
                try:
                    stop_status = self._supervise(hosts, program)
                finally:
                    for host in hosts:
                        host.kill()
                    self._publish_logs_and_metrics()
            except _InstanceLost as lost:
                self._close_attempt()
                shutil.rmtree(self.root / f"attempt-{attempt}", ignore_errors=True)
                if lost.loss == _SPOT:
                    self._transition("InProgress", "Interrupted")
                    self._transition("InProgress", "Restarting")
                    continue
                host_failures += 1
                if host_failures >= self._max_attempts:
                    raise _JobFailure(
                        f"InternalServerError: the training host failed ({_NODE}) on attempt "
                        f"{host_failures} of {self._max_attempts}"
                    ) from None
                self._transition(
                    "InProgress",
                    "Restarting",
                    message=f"Training job failed on the host: {_NODE}; restarting (attempt "
                    f"{host_failures + 1} of {self._max_attempts}) from the S3 checkpoints",
                )
                continue
            except _JobFailure:
                self._sync_checkpoints(hosts, planned=False)
                raise
            self._sync_checkpoints(hosts, planned=False)
            if stop_status is None:
                self._transition("InProgress", "Uploading")
            self._upload_outputs(hosts, model_required=stop_status is None)
            return ("Completed", "Completed") if stop_status is None else ("Stopped", stop_status)

    def _prepare(self, attempt_dir: Path, submit_directory: str) -> list[_Host]:
        """A fresh instance per host: channels, restored checkpoints, config files, then the
        code (SageMaker downloads the data before the container fetches its code). Every S3
        request is made as the job's execution role."""
        shutil.rmtree(attempt_dir, ignore_errors=True)
        hosts = []
        try:
            s3 = self._s3()
            for index, name in enumerate(self.spec.hosts):
                host = _Host(name, HostLayout(attempt_dir / name))
                host.layout.create(self.spec, name)
                hosts.append(host)
                for channel in self.spec.channels:
                    download_channel(
                        s3,
                        channel,
                        host.layout.channel_dir(channel.name),
                        index,
                        len(self.spec.hosts),
                    )
                if self.spec.checkpoints is not None:
                    host.checkpoints = CheckpointSync(
                        s3, self.spec.checkpoints, host.layout.checkpoint_dir
                    )
                    host.checkpoints.restore()
        except (DataError, ValueError, OSError, ClientError, BotoCoreError) as exc:
            raise _JobFailure(f"ClientError: Data download failed: {exc}") from None
        try:
            source = S3Location.parse(submit_directory, "sagemaker_submit_directory")
            code = s3.get_object(Bucket=source.bucket, Key=source.key)["Body"].read()
        except ClientError as exc:
            reason = s3_error(exc, submit_directory)
            raise _JobFailure(
                f"AlgorithmError: cannot fetch sagemaker_submit_directory: {reason}"
            ) from None
        except (InvalidRequest, BotoCoreError) as exc:
            raise _JobFailure(
                f"AlgorithmError: cannot fetch sagemaker_submit_directory {submit_directory}: {exc}"
            ) from None
        try:
            for host in hosts:
                extract_targz(io.BytesIO(code), host.layout.code_dir)
        except (ValueError, OSError) as exc:
            raise _JobFailure(f"ClientError: Data download failed: {exc}") from None
        return hosts

    def _s3(self) -> Any:
        """S3 as SageMaker reaches it for this job: a session of the job's RoleArn."""
        return self.executor.client("s3", self.spec.region, role_arn=self.spec.role_arn)

    def _take_request(self) -> str | None:
        """The pending request, most urgent first: abort, stop, loss of the instances."""
        with self.executor._lock:
            if self._aborted:
                raise _Aborted()
            if self._stop_status is not None:
                return self._stop_status
            loss, self._loss_requested = self._loss_requested, None
            if loss is not None:
                raise _InstanceLost(loss)
        return None

    def _supervise(self, hosts: list[_Host], program: str) -> str | None:
        """Run the hosts' processes. None when all exited 0; the stop status when stopped."""
        stop_status = self._take_request()
        if stop_status is not None:
            return stop_status
        arguments = script_arguments(user_hyperparameters(self.spec.hyperparameters))
        argv = [self.executor.python, program, *arguments]
        launched_at = int(time.time())
        for host in hosts:
            stream = f"{self.spec.name}/{host.name}-{launched_at}"
            self._logs.open(stream)
            env = container_environment(self.spec, host.layout, host.name, os.environ)
            host.launch(argv, env, self._line_handler(stream))
        while True:
            self._wake.wait(self.executor.poll_seconds)
            self._wake.clear()
            stop_status = self._take_request()
            if stop_status is not None:
                self._terminate(hosts)
                return stop_status
            self._check_limits()
            codes = [host.poll() for host in hosts]
            for host, code in zip(hosts, codes, strict=True):
                if code not in (None, 0):
                    for other in hosts:
                        other.kill()  # the cluster is torn down; drains host's stderr too
                    raise _JobFailure(host.failure_reason(code))
            if all(code == 0 for code in codes):
                return None
            due = self._sync_checkpoints(hosts, planned=True)
            if due is not None:
                raise _InstanceLost(due)
            self._publish_logs_and_metrics()

    def _line_handler(self, stream: str) -> Callable[[str], None]:
        def on_line(line: str) -> None:
            now = time.time()
            self._logs.add(stream, now, line)
            self._metrics.observe(line, now)

        return on_line

    def _check_limits(self) -> None:
        now = time.monotonic()
        running = self._billable + (now - (self._attempt_began or now))
        if running > self.spec.max_runtime_seconds:
            self.request_stop("MaxRuntimeExceeded")
        elif (
            self.spec.max_wait_seconds is not None
            and now - self._created > self.spec.max_wait_seconds
        ):
            self.request_stop("MaxWaitTimeExceeded")

    def _terminate(self, hosts: list[_Host]) -> None:
        """SIGTERM, the grace period, then SIGKILL (by the caller's ``kill``)."""
        for host in hosts:
            host.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.executor.stop_grace_seconds
        for host in hosts:
            host.wait(max(0.0, deadline - time.monotonic()))

    def _sync_checkpoints(self, hosts: list[_Host], *, planned: bool) -> _Loss | None:
        """Sync every host's checkpoints; the planned loss of the instances due now, if any
        (syncing stops there: the instances are gone)."""
        due: list[_Loss] = []

        def uploaded(key: str) -> bool:
            with self.executor._lock:
                self._synced_keys.add(key)
                if planned and self._plan and len(self._synced_keys) >= self._plan[0][0]:
                    due.append(self._plan.pop(0)[1])
                return bool(due)

        for host in hosts:
            if host.checkpoints is not None and host.checkpoints.sync(uploaded):
                break
        return due[0] if due else None

    def _upload_outputs(self, hosts: list[_Host], *, model_required: bool) -> None:
        """model.tar.gz (all hosts' model directories merged) and output.tar.gz."""
        s3 = self._s3()
        artifacts = self.root / "artifacts"
        parts = {
            "model": [host.layout.model_dir for host in hosts],
            "output": [host.layout.output_data_dir for host in hosts],
        }
        for part, directories in parts.items():
            merged = artifacts / part
            merged.mkdir(parents=True, exist_ok=True)
            for directory in directories:  # host order: on a clash the last host wins
                shutil.copytree(directory, merged, dirs_exist_ok=True)
            if part == "model" and not model_required and not any(merged.iterdir()):
                continue
            archive = artifacts / f"{part}.tar.gz"
            with archive.open("wb") as handle:
                write_targz(merged, handle)
            target = self.spec.output_location(f"{part}.tar.gz")
            s3.upload_file(str(archive), target.bucket, target.key)
