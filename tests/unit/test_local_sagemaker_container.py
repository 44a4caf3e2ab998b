"""The SageMaker container contract and image manifest of the local training executor,
without a cloud: request validation, channel paths, script arguments, environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localcloud.sagemaker_container import (
    PASSED_THROUGH,
    HostLayout,
    InvalidRequest,
    JobSpec,
    channel_relative_path,
    container_environment,
    script_arguments,
    user_hyperparameters,
)
from localcloud.sagemaker_image import Runtime

ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/job"


def _request(**changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": "job",
        "AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/training",
        "HyperParameters": {
            "epochs": "3",
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://bucket/code.tar.gz"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/t"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/out/"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
    }
    return request | changes


def _spec(**changes: Any) -> JobSpec:
    return JobSpec.from_request(_request(**changes), arn=ARN, region="us-east-1")


@pytest.mark.parametrize(
    ("prefix", "key", "relative"),
    [
        ("data/train", "data/train/a/b.csv", "a/b.csv"),
        ("data/train/", "data/train/b.csv", "b.csv"),
        ("data/tr", "data/train.csv", "train.csv"),
        ("data/train.csv", "data/train.csv", "train.csv"),
        ("", "train.csv", "train.csv"),
    ],
)
def test_channel_objects_land_below_the_prefix_directory(
    prefix: str, key: str, relative: str
) -> None:
    assert channel_relative_path(prefix, key) == relative


def test_user_hyperparameters_are_decoded_and_passed_as_sorted_arguments() -> None:
    user = user_hyperparameters(
        {"sagemaker_program": '"train.py"', "lr": "0.5", "name": "abc", "opts": '{"b":2,"a":1}'}
    )

    assert user == {"lr": 0.5, "name": "abc", "opts": {"a": 1, "b": 2}}
    assert script_arguments(user) == ["--lr", "0.5", "--name", "abc", "--opts", "a=1,b=2"]


def test_script_mode_program_and_code_location_are_json_decoded() -> None:
    spec = _spec()

    assert spec.script() == ("train.py", "s3://bucket/code.tar.gz")
    assert spec.output_location("model.tar.gz").uri == "s3://bucket/out/job/output/model.tar.gz"
    assert spec.hosts == ["algo-1", "algo-2"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120}},
            "only supported when EnableManagedSpotTraining is set to true",
        ),
        (
            {"EnableManagedSpotTraining": True},
            "must be present and be greater than or equal to MaxRuntimeInSeconds",
        ),
        (
            {
                "EnableManagedSpotTraining": True,
                "StoppingCondition": {"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 59},
            },
            "must be present and be greater than or equal to MaxRuntimeInSeconds",
        ),
        ({"AlgorithmSpecification": {"AlgorithmName": "xgboost"}}, "TrainingImage is required"),
        ({"OutputDataConfig": {"S3OutputPath": "/local/path"}}, "must be an s3:// URI"),
        (
            {
                "AlgorithmSpecification": {
                    "TrainingImage": "image",
                    "MetricDefinitions": [{"Name": "loss", "Regex": "loss=[0-9.]+"}],
                }
            },
            "has no capture group",
        ),
        (
            {"AlgorithmSpecification": {"TrainingImage": "image", "TrainingInputMode": "Pipe"}},
            "TrainingInputMode Pipe is not supported",
        ),
    ],
)
def test_requests_sagemaker_or_the_local_cloud_refuse_are_invalid(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        _spec(**changes)


def test_environment_has_the_contract_and_nothing_secret_of_the_caller(tmp_path: Path) -> None:
    spec = _spec(Environment={"GREETING": "hello", "SM_CURRENT_HOST": "overridden"})
    layout = HostLayout(tmp_path / "algo-2")
    layout.create(spec, "algo-2")
    inherited = {
        "PATH": "/usr/bin",
        "AWS_ACCESS_KEY_ID": "AKIA...",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "GITHUB_TOKEN": "token",
    }

    env = container_environment(spec, layout, "algo-2", inherited)

    assert env["PATH"] == "/usr/bin"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    assert "GITHUB_TOKEN" not in env and "GITHUB_TOKEN" not in PASSED_THROUGH
    assert env["GREETING"] == "hello"
    assert env["SM_CURRENT_HOST"] == "algo-2"  # SageMaker's variables win over Environment
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert env["SM_CHANNEL_TRAIN"] == str(layout.channel_dir("train"))
    assert (env["SM_HP_EPOCHS"], json.loads(env["SM_HPS"])) == ("3", {"epochs": 3})
    assert env["SM_USER_ENTRY_POINT"] == "train.py"
    config = json.loads((layout.config_dir / "hyperparameters.json").read_text())
    assert config == spec.hyperparameters
    resources = json.loads((layout.config_dir / "resourceconfig.json").read_text())
    assert (resources["current_host"], resources["hosts"]) == ("algo-2", ["algo-1", "algo-2"])


def test_image_manifest_describes_exactly_one_runtime() -> None:
    runtime = Runtime("CPython", "3.11.9", "linux-x86_64", ("numpy==2.0.0", "pip==24.0"))
    upgraded = Runtime("CPython", "3.11.9", "linux-x86_64", ("numpy==2.1.0", "pip==24.0"))

    manifest = runtime.manifest()

    assert runtime.tag == "python3.11"
    assert runtime.described_by(manifest)
    assert not upgraded.described_by(manifest)
    assert not runtime.described_by('{"layers": []}')
    assert json.loads(manifest)["annotations"]["dev.modelops.local-runtime.python"] == "3.11.9"
