"""The SageMaker training container contract, for a job that runs as a local process.

What a SageMaker training container sees (and what :class:`HostLayout` and
:func:`container_environment` reproduce under a private directory instead of ``/opt/ml``):

* ``input/config/hyperparameters.json`` - the job's ``HyperParameters``, the string map as
  given; ``resourceconfig.json`` (current host, hosts, instance type);
  ``inputdataconfig.json`` (one entry per channel);
* ``input/data/<channel>/`` - the channel's S3 objects; ``model/`` - uploaded as
  ``model.tar.gz``; ``output/failure`` - the failure reason; ``output/data/`` - uploaded as
  ``output.tar.gz``; ``checkpoints/`` - synced with ``CheckpointConfig.S3Uri``; ``code/`` -
  the extracted ``sagemaker_submit_directory``;
* the variables the SageMaker training toolkit (script mode) sets: ``SM_MODEL_DIR``,
  ``SM_CHANNELS``, ``SM_CHANNEL_<NAME>``, ``SM_HPS``, ``SM_HP_<NAME>``, ``SM_INPUT_DIR``,
  ``SM_INPUT_CONFIG_DIR``, ``SM_OUTPUT_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_HOSTS``,
  ``SM_CURRENT_HOST``, ``SM_NUM_GPUS``, ``SM_NUM_CPUS``, ``SM_TRAINING_ENV`` and friends,
  ``TRAINING_JOB_NAME``, ``TRAINING_JOB_ARN``, plus the job's ``Environment`` map; and
  ``SM_CHECKPOINT_DIR``, ours, because the checkpoint directory is not at
  ``CheckpointConfig.LocalPath``;
* script mode: ``python <sagemaker_program>`` in the code directory with every user
  hyperparameter (keys not starting with ``sagemaker_``, values JSON-decoded where they
  parse) also passed as ``--key value``, sorted by key, as sagemaker-training-toolkit does.

Nothing of the caller's environment reaches the script except a few non-secret basics
(:data:`PASSED_THROUGH`): no AWS credentials, no tokens.

:meth:`JobSpec.from_request` reads a ``CreateTrainingJob`` request and refuses, with the
message for a ``ValidationException``, what SageMaker refuses at create time and what the
local cloud cannot run (data sources other than ``S3Prefix``, ``Pipe`` mode, algorithm
resources instead of an image).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PASSED_THROUGH",
    "Channel",
    "HostLayout",
    "InvalidRequest",
    "JobSpec",
    "S3Location",
    "channel_relative_path",
    "container_environment",
    "script_arguments",
    "user_hyperparameters",
]

# The caller's variables a training process inherits: nothing secret, nothing AWS.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")
DEFAULT_MAX_RUNTIME_SECONDS = 86_400  # SageMaker's default: one day
SCRIPT_MODE_PROGRAM = "sagemaker_program"
SCRIPT_MODE_SUBMIT_DIRECTORY = "sagemaker_submit_directory"
INSTANCE_GROUP = "homogeneousCluster"


class InvalidRequest(Exception):
    """A CreateTrainingJob request SageMaker (or the local cloud) refuses; the message is the
    ValidationException's."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: Any, what: str) -> S3Location:
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise InvalidRequest(f"{what} must be an s3:// URI, got {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidRequest(f"{what} names no bucket: {uri!r}")
        return cls(bucket, key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, relative: str) -> S3Location:
        """The location of ``relative`` under this one taken as a directory."""
        base = self.key.rstrip("/")
        return S3Location(self.bucket, f"{base}/{relative}" if base else relative)


def channel_relative_path(prefix: str, key: str) -> str:
    """Where an object of an ``S3Prefix`` channel lands in the channel directory.

    Below the prefix when the prefix ends at a ``/`` in the key (``data/train`` or
    ``data/train/`` with ``data/train/a/b.csv`` -> ``a/b.csv``), else below the prefix's
    parent (``data/tr`` with ``data/train.csv`` -> ``train.csv``; an object named exactly by
    the prefix lands under its own name).
    """
    rest = key[len(prefix) :]
    if prefix.endswith("/") or rest.startswith("/"):
        return rest.lstrip("/")
    return key[prefix.rfind("/") + 1 :]


@dataclass(frozen=True)
class Channel:
    name: str
    source: S3Location
    sharded: bool
    input_mode: str
    content_type: str | None

    def input_data_config(self) -> dict[str, str]:
        config = {
            "TrainingInputMode": self.input_mode,
            "S3DistributionType": "ShardedByS3Key" if self.sharded else "FullyReplicated",
            "RecordWrapperType": "None",
        }
        if self.content_type:
            config["ContentType"] = self.content_type
        return config


def _decoded(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def user_hyperparameters(hyperparameters: Mapping[str, str]) -> dict[str, Any]:
    """The hyperparameters meant for the script, JSON-decoded where they parse, sorted."""
    return {
        key: _decoded(value)
        for key, value in sorted(hyperparameters.items())
        if not key.startswith("sagemaker_")
    }


def _argument(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def script_arguments(user: Mapping[str, Any]) -> list[str]:
    """``--key value`` for every user hyperparameter, sorted by key (the toolkit's order)."""
    arguments: list[str] = []
    for key in sorted(user):
        arguments += [f"--{key}", _argument(user[key])]
    return arguments


@dataclass(frozen=True)
class JobSpec:
    """What the executor needs from a CreateTrainingJob request, validated."""

    name: str
    arn: str
    region: str
    role_arn: str
    image: str
    hyperparameters: dict[str, str]
    channels: tuple[Channel, ...]
    output: S3Location
    instance_type: str
    instance_count: int
    max_runtime_seconds: int
    max_wait_seconds: int | None
    spot: bool
    checkpoints: S3Location | None
    environment: dict[str, str]
    metric_definitions: tuple[tuple[str, re.Pattern[str]], ...]

    @classmethod
    def from_request(cls, request: Mapping[str, Any], *, arn: str, region: str) -> JobSpec:
        algorithm = request.get("AlgorithmSpecification") or {}
        image = algorithm.get("TrainingImage")
        if not image:
            raise InvalidRequest(
                "AlgorithmSpecification.TrainingImage is required: the local cloud runs "
                "registered local-runtime images, not AlgorithmName resources"
            )
        stopping = request.get("StoppingCondition") or {}
        max_runtime = int(stopping.get("MaxRuntimeInSeconds") or DEFAULT_MAX_RUNTIME_SECONDS)
        max_wait = stopping.get("MaxWaitTimeInSeconds")
        spot = bool(request.get("EnableManagedSpotTraining"))
        if max_wait is not None and not spot:
            raise InvalidRequest(
                "Invalid MaxWaitTimeInSeconds. It is only supported when "
                "EnableManagedSpotTraining is set to true"
            )
        if spot and (max_wait is None or int(max_wait) < max_runtime):
            raise InvalidRequest(
                "Invalid MaxWaitTimeInSeconds. It must be present and be greater than or "
                "equal to MaxRuntimeInSeconds"
            )
        checkpoint_config = request.get("CheckpointConfig")
        resources = request.get("ResourceConfig") or {}
        return cls(
            name=str(request["TrainingJobName"]),
            arn=arn,
            region=region,
            role_arn=str(request.get("RoleArn", "")),
            image=str(image),
            hyperparameters={
                str(k): str(v) for k, v in (request.get("HyperParameters") or {}).items()
            },
            channels=_channels(request.get("InputDataConfig") or [], algorithm),
            output=S3Location.parse(
                (request.get("OutputDataConfig") or {}).get("S3OutputPath"),
                "OutputDataConfig.S3OutputPath",
            ),
            instance_type=str(resources.get("InstanceType", "ml.m5.large")),
            instance_count=int(resources.get("InstanceCount") or 1),
            max_runtime_seconds=max_runtime,
            max_wait_seconds=int(max_wait) if max_wait is not None else None,
            spot=spot,
            checkpoints=(
                S3Location.parse(checkpoint_config.get("S3Uri"), "CheckpointConfig.S3Uri")
                if checkpoint_config
                else None
            ),
            environment={str(k): str(v) for k, v in (request.get("Environment") or {}).items()},
            metric_definitions=_metric_definitions(algorithm.get("MetricDefinitions") or []),
        )

    @property
    def hosts(self) -> list[str]:
        return [f"algo-{i}" for i in range(1, self.instance_count + 1)]

    def output_location(self, filename: str) -> S3Location:
        """``<S3OutputPath>/<TrainingJobName>/output/<filename>``, where SageMaker puts it."""
        return self.output.child(f"{self.name}/output/{filename}")

    def script(self) -> tuple[str, str] | None:
        """``(program, submit directory URI)`` of a script-mode job, None if not script mode."""
        program = self.hyperparameters.get(SCRIPT_MODE_PROGRAM)
        submit = self.hyperparameters.get(SCRIPT_MODE_SUBMIT_DIRECTORY)
        if program is None or submit is None:
            return None
        return str(_decoded(program)), str(_decoded(submit))


def _channels(
    raw_channels: list[dict[str, Any]], algorithm: Mapping[str, Any]
) -> tuple[Channel, ...]:
    channels: list[Channel] = []
    for raw in raw_channels:
        name = str(raw.get("ChannelName"))
        if any(c.name == name for c in channels):
            raise InvalidRequest(f"Channel names must be unique: {name!r} appears twice")
        source = (raw.get("DataSource") or {}).get("S3DataSource")
        if source is None:
            raise InvalidRequest(f"channel {name!r}: the local cloud supports S3DataSource only")
        data_type = source.get("S3DataType", "S3Prefix")
        if data_type != "S3Prefix":
            raise InvalidRequest(
                f"channel {name!r}: S3DataType {data_type} is not supported by the local "
                "cloud; use S3Prefix"
            )
        mode = raw.get("InputMode") or algorithm.get("TrainingInputMode") or "File"
        if mode not in ("File", "FastFile"):
            raise InvalidRequest(
                f"channel {name!r}: TrainingInputMode {mode} is not supported by the local "
                "cloud; use File or FastFile"
            )
        channels.append(
            Channel(
                name=name,
                source=S3Location.parse(source.get("S3Uri"), f"channel {name!r} S3Uri"),
                sharded=source.get("S3DataDistributionType") == "ShardedByS3Key",
                input_mode=str(mode),
                content_type=raw.get("ContentType"),
            )
        )
    return tuple(channels)


def _metric_definitions(raw: list[dict[str, Any]]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    definitions = []
    for definition in raw:
        name, regex = str(definition.get("Name")), str(definition.get("Regex"))
        try:
            pattern = re.compile(regex)
        except re.error as exc:
            raise InvalidRequest(
                f"MetricDefinitions {name!r}: invalid Regex {regex!r}: {exc}"
            ) from None
        if pattern.groups < 1:
            raise InvalidRequest(
                f"MetricDefinitions {name!r}: Regex {regex!r} has no capture group"
            )
        definitions.append((name, pattern))
    return tuple(definitions)


@dataclass(frozen=True)
class HostLayout:
    """One host's ``/opt/ml``, under ``root``."""

    root: Path

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    def channel_dir(self, channel: str) -> Path:
        return self.input_dir / "data" / channel

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    def create(self, spec: JobSpec, host: str) -> None:
        """Make the directories and write the three config files."""
        for directory in (
            self.config_dir,
            self.model_dir,
            self.output_data_dir,
            self.checkpoint_dir,
            self.code_dir,
            *(self.channel_dir(c.name) for c in spec.channels),
        ):
            directory.mkdir(parents=True, exist_ok=True)
        files = {
            "hyperparameters.json": spec.hyperparameters,
            "resourceconfig.json": _resource_config(spec, host),
            "inputdataconfig.json": {c.name: c.input_data_config() for c in spec.channels},
        }
        for name, content in files.items():
            (self.config_dir / name).write_text(json.dumps(content, indent=2), encoding="utf-8")


def _resource_config(spec: JobSpec, host: str) -> dict[str, Any]:
    return {
        "current_host": host,
        "current_instance_type": spec.instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": spec.hosts,
        "instance_groups": [
            {
                "instance_group_name": INSTANCE_GROUP,
                "instance_type": spec.instance_type,
                "hosts": spec.hosts,
            }
        ],
        "network_interface_name": "eth0",
    }


def container_environment(
    spec: JobSpec, layout: HostLayout, host: str, inherited: Mapping[str, str]
) -> dict[str, str]:
    """The environment of ``host``'s training process: :data:`PASSED_THROUGH` from
    ``inherited``, then the job's ``Environment``, then what SageMaker sets (which wins)."""
    user = user_hyperparameters(spec.hyperparameters)
    script = spec.script()
    channels = {c.name: str(layout.channel_dir(c.name)) for c in spec.channels}
    training_env = {
        "additional_framework_parameters": {},
        "channel_input_dirs": channels,
        "checkpoint_dir": str(layout.checkpoint_dir),
        "current_host": host,
        "current_instance_type": spec.instance_type,
        "hosts": spec.hosts,
        "hyperparameters": user,
        "input_config_dir": str(layout.config_dir),
        "input_data_config": {c.name: c.input_data_config() for c in spec.channels},
        "input_dir": str(layout.input_dir),
        "job_name": spec.name,
        "model_dir": str(layout.model_dir),
        "module_dir": script[1] if script else None,
        "module_name": Path(script[0]).stem if script else None,
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": 0,
        "output_data_dir": str(layout.output_data_dir),
        "output_dir": str(layout.output_dir),
        "resource_config": _resource_config(spec, host),
        "user_entry_point": script[0] if script else None,
    }
    env = {k: inherited[k] for k in PASSED_THROUGH if k in inherited}
    env |= spec.environment
    env |= {
        "PYTHONUNBUFFERED": "1",
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "TRAINING_JOB_NAME": spec.name,
        "TRAINING_JOB_ARN": spec.arn,
        "SM_TRAINING_ENV": json.dumps(training_env),
        "SM_HOSTS": json.dumps(spec.hosts),
        "SM_CURRENT_HOST": host,
        "SM_CURRENT_INSTANCE_TYPE": spec.instance_type,
        "SM_NUM_CPUS": str(training_env["num_cpus"]),
        "SM_NUM_GPUS": "0",
        "SM_HPS": json.dumps(user),
        "SM_USER_ARGS": json.dumps(script_arguments(user)),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_INPUT_DIR": str(layout.input_dir),
        "SM_INPUT_CONFIG_DIR": str(layout.config_dir),
        "SM_INPUT_DATA_CONFIG": json.dumps(training_env["input_data_config"]),
        "SM_RESOURCE_CONFIG": json.dumps(training_env["resource_config"]),
        "SM_MODEL_DIR": str(layout.model_dir),
        "SM_OUTPUT_DIR": str(layout.output_dir),
        "SM_OUTPUT_DATA_DIR": str(layout.output_data_dir),
        "SM_CHECKPOINT_DIR": str(layout.checkpoint_dir),
    }
    if script:
        env |= {
            "SM_USER_ENTRY_POINT": script[0],
            "SM_MODULE_NAME": Path(script[0]).stem,
            "SM_MODULE_DIR": script[1],
        }
    env |= {f"SM_CHANNEL_{name.upper()}": path for name, path in channels.items()}
    env |= {
        f"SM_HP_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
        for key, value in user.items()
    }
    return env
