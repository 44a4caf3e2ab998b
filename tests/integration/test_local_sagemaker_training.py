"""SageMaker training jobs run for real on the local cloud, as SageMaker runs them.

A moto server runs in this process with the training executor installed; jobs are created
and watched with boto3, the way the platform's Lambda functions and Step Functions do. The
training code is examples/iris_train (script mode, packed with archive.targz_bytes), the data
the demo's Iris split, the image this interpreter registered in moto's ECR.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from localcloud.sagemaker_training import TrainingExecutor, register_local_image
from modelops.domain.archive import targz_bytes
from modelops_cli.demo import _write_iris, stratified_split
from tests.integration.moto_clients import moto_client

pytestmark = pytest.mark.slow

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/modelops-training"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris_train"
SPEC = json.loads((EXAMPLE / "training.json").read_text())
HYPERPARAMETERS = {
    "epochs": "12",
    "learning_rate": "0.5",
    "seed": "7",
    "batch_size": "16",
    "l2": "0.0001",
    "min_epoch_seconds": "0.05",
}
PLANNED = {"iris-spot-once": [3], "iris-spot-twice": [2, 6], "iris-spot-thrice": [1, 4, 9]}
LEAK_CANARY = "must-not-reach-training-scripts"

# Test programs, shipped as one more source directory: one reports what it sees of the
# container contract, the other starts a child and sleeps (for stop and shutdown tests).
PROBE = """
import json, os, pathlib, sys
env = dict(os.environ)
host = env["SM_CURRENT_HOST"]
config = pathlib.Path(env["SM_INPUT_CONFIG_DIR"])
channels = {}
for name in json.loads(env["SM_CHANNELS"]):
    root = pathlib.Path(env["SM_CHANNEL_" + name.upper()])
    channels[name] = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
report = {
    "argv": sys.argv[1:],
    "cwd": sorted(p.name for p in pathlib.Path.cwd().iterdir()),
    "env": env,
    "channels": channels,
    "config": {n: json.loads((config / n).read_text())
               for n in ("hyperparameters.json", "resourceconfig.json", "inputdataconfig.json")},
    "checkpoint_dir_exists": pathlib.Path(env["SM_CHECKPOINT_DIR"]).is_dir(),
}
(pathlib.Path(env["SM_MODEL_DIR"]) / f"{host}.json").write_text(json.dumps(report))
print(f"probe on {host} quality=0.{host[-1]}", flush=True)
print(f"stderr line from {host}", file=sys.stderr, flush=True)
"""
SLEEPER = """
import os, pathlib, signal, subprocess, sys, time
def save_and_exit(signum, frame):
    time.sleep(0.5)  # a model being saved in SageMaker's SIGTERM window
    pathlib.Path(os.environ["SM_MODEL_DIR"], "partial.txt").write_text("saved on SIGTERM")
    sys.exit(0)
on_sigterm = os.environ.get("SM_HP_ON_SIGTERM", "die")
if on_sigterm != "die":
    signal.signal(signal.SIGTERM, save_and_exit if on_sigterm == "save" else signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
pathlib.Path(os.environ["SM_CHECKPOINT_DIR"], "pids.txt").write_text(f"{os.getpid()} {child.pid}")
print("sleeping", flush=True)
time.sleep(600)
"""


@dataclass
class Cloud:
    endpoint: str
    executor: TrainingExecutor
    bucket: str
    image: str
    iris_source: str
    probe_source: str

    def client(self, service: str) -> Any:
        return moto_client(service, self.endpoint)

    def request(
        self,
        name: str,
        hyperparameters: dict[str, str] | None = None,
        *,
        program: str = "train.py",
        source: str | None = None,
        spot: bool = False,
        max_runtime: int = 300,
        instance_count: int = 1,
        image: str | None = None,
    ) -> dict[str, Any]:
        script = {
            "sagemaker_program": json.dumps(program),
            "sagemaker_submit_directory": json.dumps(source or self.iris_source),
        }
        request: dict[str, Any] = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {
                "TrainingImage": image or self.image,
                "TrainingInputMode": "File",
                "MetricDefinitions": SPEC["metricDefinitions"],
            },
            "RoleArn": ROLE,
            "HyperParameters": (HYPERPARAMETERS if hyperparameters is None else hyperparameters)
            | script,
            "InputDataConfig": [self.channel("train"), self.channel("test")],
            "OutputDataConfig": {"S3OutputPath": f"s3://{self.bucket}/output"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": instance_count,
                "VolumeSizeInGB": 1,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
            "CheckpointConfig": {"S3Uri": f"s3://{self.bucket}/checkpoints/{name}"},
        }
        if spot:
            request["EnableManagedSpotTraining"] = True
            request["StoppingCondition"]["MaxWaitTimeInSeconds"] = 2 * max_runtime
        return request

    def channel(self, name: str, *, sharded: bool = False) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{self.bucket}/data/{name}",
                    "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
                }
            },
        }

    def create(self, request: dict[str, Any]) -> str:
        self.client("sagemaker").create_training_job(**request)
        return str(request["TrainingJobName"])

    def run(self, request: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
        name = self.create(request)
        self.executor.wait(name, timeout)
        return self.describe(name)

    def describe(self, name: str) -> dict[str, Any]:
        described: dict[str, Any] = self.client("sagemaker").describe_training_job(
            TrainingJobName=name
        )
        return described

    def object(self, key: str) -> bytes:
        body: bytes = self.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def keys(self, prefix: str) -> list[str]:
        found = self.client("s3").list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in found.get("Contents", []))

    def model_tar(self, name: str) -> bytes:
        return self.object(f"output/{name}/output/model.tar.gz")

    def log_lines(self, name: str) -> dict[str, list[str]]:
        logs = self.client("logs")
        group = "/aws/sagemaker/TrainingJobs"
        streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=f"{name}/")
        return {
            s["logStreamName"]: [
                e["message"]
                for e in logs.get_log_events(logGroupName=group, logStreamName=s["logStreamName"])[
                    "events"
                ]
            ]
            for s in streams["logStreams"]
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return {
            m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }


def _statuses(described: dict[str, Any]) -> list[str]:
    return [t["Status"] for t in described["SecondaryStatusTransitions"]]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
    return result


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    environment = pytest.MonkeyPatch()
    environment.setenv("AWS_SECRET_ACCESS_KEY", LEAK_CANARY)
    environment.setenv("LOCALCLOUD_TEST_PARENT_ONLY", LEAK_CANARY)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    base = tmp_path_factory.mktemp("sagemaker")
    executor = TrainingExecutor(
        endpoint_url=endpoint,
        region=REGION,
        work_root=base / "work",
        stop_grace_seconds=2.0,
        poll_seconds=0.02,
    )
    # A session-wide local cloud may be running in this process: suspend its executor.
    suspended = TrainingExecutor.installed()
    if suspended is not None:
        suspended.uninstall()
    executor.install()
    bucket = f"training-{uuid.uuid4().hex[:8]}"
    cloud = Cloud(endpoint, executor, bucket, "", "", "")
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket=bucket)
    split = stratified_split(_write_iris(base / "raw"), base / "split")
    for name in ("train", "test"):
        s3.put_object(
            Bucket=bucket, Key=f"data/{name}/{name}.csv", Body=(split / f"{name}.csv").read_bytes()
        )
    for index in range(4):
        s3.put_object(Bucket=bucket, Key=f"data/shards/part-{index}.txt", Body=b"%d" % index)
    s3.put_object(Bucket=bucket, Key="code/iris_train.tar.gz", Body=targz_bytes(EXAMPLE))
    probe_dir = base / "probe"
    probe_dir.mkdir()
    (probe_dir / "probe.py").write_text(PROBE)
    (probe_dir / "sleeper.py").write_text(SLEEPER)
    s3.put_object(Bucket=bucket, Key="code/probe.tar.gz", Body=targz_bytes(probe_dir))
    uri, digest = register_local_image(cloud.client("ecr"))
    cloud.image = f"{uri}@{digest}"
    cloud.iris_source = f"s3://{bucket}/code/iris_train.tar.gz"
    cloud.probe_source = f"s3://{bucket}/code/probe.tar.gz"
    try:
        yield cloud
    finally:
        executor.shutdown()
        if suspended is not None:
            suspended.install()
        server.stop()
        environment.undo()


@pytest.fixture(scope="module")
def finished(cloud: Cloud) -> dict[str, dict[str, Any]]:
    """Jobs that run to the end, all at once: two identical ones under different names, the
    same as spot jobs interrupted at planned checkpoints, and one with another seed."""
    requests = [
        cloud.request("iris-a"),
        cloud.request("iris-b"),
        cloud.request("iris-seed-8", HYPERPARAMETERS | {"seed": "8"}),
    ]
    for name, plan in PLANNED.items():
        cloud.executor.plan_interruptions(name, plan)
        requests.append(cloud.request(name, spot=True))
    names = [cloud.create(request) for request in requests]
    for name in names:
        cloud.executor.wait(name, 60)
    return {name: cloud.describe(name) for name in names}


def test_job_runs_to_completed_with_byte_identical_model_tar_gz_across_job_names(
    cloud: Cloud, finished: dict[str, dict[str, Any]]
) -> None:
    a, b = finished["iris-a"], finished["iris-b"]

    for job in (a, b):
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        assert job["SecondaryStatus"] == "Completed"
        assert _statuses(job) == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
        assert job["TrainingStartTime"] <= job["TrainingEndTime"]
        assert 1 <= job["BillableTimeInSeconds"] <= job["TrainingTimeInSeconds"]
        assert "FailureReason" not in job
    assert a["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"s3://{cloud.bucket}/output/iris-a/output/model.tar.gz"
    )
    assert _sha256(cloud.model_tar("iris-a")) == _sha256(cloud.model_tar("iris-b"))
    members = _members(cloud.model_tar("iris-a"))
    assert sorted(members) == ["metrics.json", "model.json"]
    assert json.loads(members["model.json"])["hyperparameters"]["epochs"] == 12
    assert sorted(_members(cloud.object("output/iris-a/output/output.tar.gz"))) == ["metrics.json"]
    listed = cloud.client("sagemaker").list_training_jobs(StatusEquals="Completed")
    assert {"iris-a", "iris-b"} <= {j["TrainingJobName"] for j in listed["TrainingJobSummaries"]}


def test_training_output_lines_land_in_cloudwatch_logs_per_host(
    finished: dict[str, dict[str, Any]], cloud: Cloud
) -> None:
    streams = cloud.log_lines("iris-a")

    assert len(streams) == 1
    (stream, lines), *_ = streams.items()
    assert stream.startswith("iris-a/algo-1-")
    assert [line.split()[0] for line in lines if line.startswith("epoch=")] == [
        f"epoch={e}" for e in range(1, 13)
    ]
    assert "wrote model.json and metrics.json after 12 epochs" in lines


def test_final_metric_data_list_holds_the_last_value_of_each_metric_definition(
    finished: dict[str, dict[str, Any]], cloud: Cloud
) -> None:
    job = finished["iris-a"]
    final = json.loads(_members(cloud.model_tar("iris-a"))["metrics.json"])["final"]

    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}

    assert list(metrics) == [d["Name"] for d in SPEC["metricDefinitions"]]
    assert metrics["train:loss"] == pytest.approx(final["train_loss"], abs=1e-6)
    assert metrics["test:accuracy"] == pytest.approx(final["test_accuracy"], abs=1e-4)
    assert all(m["Timestamp"] <= job["TrainingEndTime"] for m in job["FinalMetricDataList"])


@pytest.mark.parametrize("name", list(PLANNED))
def test_spot_job_interrupted_at_planned_checkpoints_completes_with_the_same_model(
    name: str, finished: dict[str, dict[str, Any]], cloud: Cloud
) -> None:
    job = finished[name]

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    statuses = _statuses(job)
    interruptions = len(PLANNED[name])
    assert statuses.count("Interrupted") == interruptions
    assert statuses == [
        "Starting",
        *["Downloading", "Training", "Interrupted", "Restarting"] * interruptions,
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert _sha256(cloud.model_tar(name)) == _sha256(cloud.model_tar("iris-a"))
    assert 1 <= job["BillableTimeInSeconds"] <= job["TrainingTimeInSeconds"]
    assert cloud.keys(f"checkpoints/{name}/") == [
        f"checkpoints/{name}/checkpoint-epoch-{e:06d}.json" for e in range(1, 13)
    ]
    resumed = [line for lines in cloud.log_lines(name).values() for line in lines]
    assert (
        f"resuming from checkpoint-epoch-{PLANNED[name][-1]:06d}.json (epoch {PLANNED[name][-1]})"
        in resumed
    )


def test_changing_the_seed_changes_the_model_digest(
    finished: dict[str, dict[str, Any]], cloud: Cloud
) -> None:
    assert finished["iris-seed-8"]["TrainingJobStatus"] == "Completed"
    assert _sha256(cloud.model_tar("iris-seed-8")) != _sha256(cloud.model_tar("iris-a"))


def test_crashing_script_ends_failed_with_the_failure_file_as_failure_reason(
    cloud: Cloud,
) -> None:
    job = cloud.run(cloud.request("iris-bad-epochs", HYPERPARAMETERS | {"epochs": "abc"}))

    assert job["TrainingJobStatus"] == "Failed"
    assert job["SecondaryStatus"] == "Failed"
    assert job["FailureReason"] == (
        "AlgorithmError: invalid hyperparameter epochs='abc': not an integer, exit code: 1"
    )
    assert _statuses(job) == ["Starting", "Downloading", "Training", "Failed"]
    assert not cloud.keys("output/iris-bad-epochs/")


def _start_sleeper(cloud: Cloud, name: str, on_sigterm: str) -> list[int]:
    """Start the sleeper program; return its pid and its child's once they are in S3."""
    cloud.create(
        cloud.request(
            name, {"on_sigterm": on_sigterm}, program="sleeper.py", source=cloud.probe_source
        )
    )
    key = _eventually(lambda: cloud.keys(f"checkpoints/{name}/pids.txt"))[0]
    return [int(pid) for pid in cloud.object(key).split()]


def test_stop_training_job_ends_stopped_keeping_checkpoints_and_the_model_saved_on_sigterm(
    cloud: Cloud,
) -> None:
    name = "sleeper-stopped"
    pids = _start_sleeper(cloud, name, "save")
    with pytest.raises(ValueError, match="does not use managed spot training"):
        cloud.executor.interrupt(name)

    cloud.client("sagemaker").stop_training_job(TrainingJobName=name)
    stopping = cloud.describe(name)
    status = cloud.executor.wait(name, 30)

    assert (stopping["TrainingJobStatus"], stopping["SecondaryStatus"]) == ("Stopping", "Stopping")
    assert status == "Stopped"
    job = cloud.describe(name)
    assert job["SecondaryStatus"] == "Stopped"
    assert _statuses(job)[-2:] == ["Stopping", "Stopped"]
    assert cloud.keys(f"checkpoints/{name}/") == [f"checkpoints/{name}/pids.txt"]
    assert _members(cloud.model_tar(name)) == {"partial.txt": b"saved on SIGTERM"}
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(ClientError, match="training job is in status Stopped"):
        cloud.client("sagemaker").stop_training_job(TrainingJobName=name)


def test_stop_kills_a_script_that_ignores_sigterm_after_the_grace_period(cloud: Cloud) -> None:
    name = "sleeper-stubborn"
    pids = _start_sleeper(cloud, name, "ignore")
    stopped_at = time.monotonic()

    cloud.client("sagemaker").stop_training_job(TrainingJobName=name)
    status = cloud.executor.wait(name, 30)

    assert status == "Stopped"
    assert time.monotonic() - stopped_at >= cloud.executor.stop_grace_seconds
    assert not any(_alive(pid) for pid in pids)
    assert cloud.keys(f"output/{name}/") == [f"output/{name}/output/output.tar.gz"]


def test_stopping_an_iris_job_keeps_its_synced_checkpoints_in_s3(cloud: Cloud) -> None:
    name = cloud.create(cloud.request("iris-stopped", HYPERPARAMETERS | {"epochs": "100000"}))
    _eventually(lambda: len(cloud.keys(f"checkpoints/{name}/")) >= 2)

    cloud.client("sagemaker").stop_training_job(TrainingJobName=name)

    assert cloud.executor.wait(name, 30) == "Stopped"
    synced = cloud.keys(f"checkpoints/{name}/")
    assert len(synced) >= 2
    assert synced[0] == f"checkpoints/{name}/checkpoint-epoch-000001.json"


def test_job_exceeding_max_runtime_ends_stopped_with_max_runtime_exceeded(
    cloud: Cloud,
) -> None:
    request = cloud.request("iris-too-long", HYPERPARAMETERS | {"epochs": "100000"}, max_runtime=1)

    job = cloud.run(request)

    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert _statuses(job)[-2:] == ["Stopping", "MaxRuntimeExceeded"]
    assert job["BillableTimeInSeconds"] < 5


def test_unknown_image_is_refused_at_create_as_sagemaker_does(cloud: Cloud) -> None:
    registry = cloud.image.split("/", 1)[0]
    unknown_repository = f"{registry}/no-such-repository:latest"
    unknown_digest = cloud.image.rsplit("@", 1)[0] + "@sha256:" + "0" * 64
    sagemaker = cloud.client("sagemaker")

    for image, message in [
        (unknown_repository, "Cannot find repository: no-such-repository"),
        (unknown_digest, "Cannot find the requested image"),
        ("not-an-ecr-image", "Invalid training image"),
    ]:
        with pytest.raises(ClientError, match=message) as refused:
            sagemaker.create_training_job(
                **cloud.request(f"iris-image-{uuid.uuid4().hex[:6]}", image=image)
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_image_that_is_not_the_local_runtime_fails_the_job_clearly(cloud: Cloud) -> None:
    ecr = cloud.client("ecr")
    ecr.create_repository(repositoryName="someone/else")
    layer = {"mediaType": "x", "digest": "sha256:" + "1" * 64, "size": 1}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
    ecr.put_image(
        repositoryName="someone/else",
        imageManifest=json.dumps(manifest | {"config": layer, "layers": [layer]}),
        imageTag="v1",
    )
    image = cloud.image.split("/", 1)[0] + "/someone/else:v1"

    job = cloud.run(cloud.request("iris-foreign-image", image=image))

    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith(
        f"ClientError: the training image {image} does not describe the local runtime"
    )


def test_create_refuses_what_sagemaker_refuses(cloud: Cloud) -> None:
    sagemaker = cloud.client("sagemaker")
    spot = cloud.request("iris-bad-wait", spot=True)
    spot["StoppingCondition"]["MaxWaitTimeInSeconds"] = 10
    no_spot = cloud.request("iris-wait-without-spot")
    no_spot["StoppingCondition"]["MaxWaitTimeInSeconds"] = 600
    empty_channel = cloud.request("iris-empty-channel")
    empty_channel["InputDataConfig"] = [cloud.channel("nothing-here")]

    for request, message in [
        (spot, "It must be present and be greater than or equal to MaxRuntimeInSeconds"),
        (no_spot, "It is only supported when EnableManagedSpotTraining is set to true"),
        (empty_channel, "No S3 objects found under S3 URL"),
    ]:
        with pytest.raises(ClientError, match=message) as refused:
            sagemaker.create_training_job(**request)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    cloud.run(cloud.request("iris-unique", HYPERPARAMETERS | {"epochs": "1"}))
    with pytest.raises(ClientError, match="must be unique") as duplicate:
        sagemaker.create_training_job(**cloud.request("iris-unique"))
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"


def test_every_host_runs_the_script_under_the_container_contract(cloud: Cloud) -> None:
    request = cloud.request(
        "probe-two-hosts",
        {"alpha": "1", "name": "x", "config": '{"b": 2, "a": 1}'},
        program="probe.py",
        source=cloud.probe_source,
        instance_count=2,
    )
    request["InputDataConfig"] = [cloud.channel("train"), cloud.channel("shards", sharded=True)]
    request["Environment"] = {"GREETING": "hello"}
    request["AlgorithmSpecification"]["MetricDefinitions"] = [
        {"Name": "probe:quality", "Regex": "quality=([0-9.]+)"}
    ]

    job = cloud.run(request)

    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["Environment"] == {"GREETING": "hello"}
    assert job["FinalMetricDataList"][0]["MetricName"] == "probe:quality"
    members = _members(cloud.model_tar("probe-two-hosts"))
    assert sorted(members) == ["algo-1.json", "algo-2.json"]  # every host's model dir, merged
    shards = []
    for host in ("algo-1", "algo-2"):
        seen = json.loads(members[f"{host}.json"])
        env = seen["env"]
        assert seen["argv"] == ["--alpha", "1", "--config", "a=1,b=2", "--name", "x"]
        assert seen["cwd"] == ["probe.py", "sleeper.py"]
        assert seen["config"]["hyperparameters.json"] == request["HyperParameters"]
        assert seen["config"]["resourceconfig.json"]["current_host"] == host
        assert seen["config"]["resourceconfig.json"]["hosts"] == ["algo-1", "algo-2"]
        assert seen["config"]["inputdataconfig.json"]["shards"]["S3DistributionType"] == (
            "ShardedByS3Key"
        )
        assert seen["channels"]["train"] == ["train.csv"]
        shards += seen["channels"]["shards"]
        assert seen["checkpoint_dir_exists"]
        assert (env["SM_CURRENT_HOST"], json.loads(env["SM_HOSTS"])) == (
            host,
            ["algo-1", "algo-2"],
        )
        assert json.loads(env["SM_CHANNELS"]) == ["shards", "train"]
        assert json.loads(env["SM_HPS"]) == {"alpha": 1, "config": {"a": 1, "b": 2}, "name": "x"}
        assert (env["SM_HP_ALPHA"], env["SM_HP_NAME"]) == ("1", "x")
        assert env["SM_NUM_GPUS"] == "0" and int(env["SM_NUM_CPUS"]) >= 1
        assert env["TRAINING_JOB_NAME"] == "probe-two-hosts"
        assert env["GREETING"] == "hello"
        assert json.loads(env["SM_TRAINING_ENV"])["current_host"] == host
        for variable in (
            "SM_MODEL_DIR",
            "SM_INPUT_DIR",
            "SM_INPUT_CONFIG_DIR",
            "SM_OUTPUT_DIR",
            "SM_OUTPUT_DATA_DIR",
            "SM_CHECKPOINT_DIR",
            "SM_CHANNEL_TRAIN",
        ):
            assert variable in env
        assert LEAK_CANARY not in json.dumps(env)
        assert not {k for k in env if k.startswith("AWS_") and "REGION" not in k}
    assert sorted(shards) == [f"part-{i}.txt" for i in range(4)]  # each object on one host
    streams = cloud.log_lines("probe-two-hosts")
    assert sorted(s.split("/")[1].rsplit("-", 1)[0] for s in streams) == ["algo-1", "algo-2"]
    assert all(
        any(line.startswith("stderr line from") for line in lines) for lines in streams.values()
    )


def test_shutdown_kills_every_training_process_and_its_children(
    cloud: Cloud, tmp_path: Path
) -> None:
    cloud.executor.uninstall()
    own = TrainingExecutor(
        endpoint_url=cloud.endpoint, region=REGION, work_root=tmp_path, poll_seconds=0.02
    )
    own.install()
    try:
        name = "sleeper-shutdown"
        pids = _start_sleeper(cloud, name, "ignore")
        assert all(_alive(pid) for pid in pids)
    finally:
        own.shutdown()
        cloud.executor.install()

    assert not any(_alive(pid) for pid in pids)
    job = cloud.describe(name)
    assert job["TrainingJobStatus"] == "Failed"
    assert "shut down" in job["FailureReason"]
    assert not any(tmp_path.iterdir())
