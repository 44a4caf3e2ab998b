"""Compute faults on the local cloud, end to end: a training host that dies (node failure,
retried under the job's RetryStrategy from its S3 checkpoints) and a model server that dies
mid-traffic (503s until SageMaker's replacement instance serves; the canary guardrail sees
them). Each test prints the figures it proves."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.adapters.sagemaker_hosting import SageMakerTelemetry
from modelops.domain.pools import PoolConfig
from modelops_cli import training
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import ROWS
from tests.integration.test_compute_quota import _ledger
from tests.integration.test_local_sagemaker_training import _alive, _eventually
from tests.integration.test_serving_api import FAST_CANARY, _deploy, _prod_model, _settle
from tests.integration.test_training_api import (  # the same module fixtures and helpers
    _execution_status,
    _request,
    _trained_digest,
    completed,
    engineer,
    iris,
)

pytestmark = pytest.mark.slow
__all__ = ["completed", "engineer", "iris"]
PACED = {"epochs": 8, "min_epoch_seconds": 0.05}  # what the `completed` job trained with
GPU_POOL = "gpu-us-east"


def _described(cloud: LocalCloud, job: dict[str, Any]) -> dict[str, Any]:
    described: dict[str, Any] = cloud.client("sagemaker").describe_training_job(
        TrainingJobName=job["trainingJobName"]
    )
    return described


def _log_lines(cloud: LocalCloud, job: dict[str, Any]) -> list[str]:
    logs, group = cloud.client("logs"), "/aws/sagemaker/TrainingJobs"
    streams = logs.describe_log_streams(
        logGroupName=group, logStreamNamePrefix=f"{job['trainingJobName']}/"
    )["logStreams"]
    return [
        event["message"]
        for stream in sorted(streams, key=lambda s: s["logStreamName"])
        for event in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])[
            "events"
        ]
    ]


def _checkpoint_keys(cloud: LocalCloud, job: dict[str, Any]) -> list[str]:
    bucket = cloud.names[platform.ARTIFACT_BUCKET.logical_id]
    prefix = f"training/{job['trainingJobName']}/checkpoints/"
    found = cloud.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"].removeprefix(prefix) for o in found.get("Contents", []))


def _committed_gpu_hours(client: ModelOpsClient, team: str) -> Decimal:
    pools = client.call("GET", "/compute/pools")["pools"]
    pool = next(p for p in pools if p["pool"]["name"] == GPU_POOL)
    return Decimal(next(t for t in pool["teams"] if t["team"] == team)["committedGpuHours"])


def test_a_host_failing_twice_with_three_attempts_completes_with_the_uninterrupted_digest(
    local_cloud: LocalCloud,
    engineer: ModelOpsClient,
    iris: dict[str, Any],
    completed: dict[str, Any],
) -> None:
    assert local_cloud.sagemaker is not None
    job = engineer.submit_training(
        **_request(iris, hyperparameters=PACED, retryPolicy={"maxAttempts": 3})
    )
    local_cloud.sagemaker.plan_node_failures(job["trainingJobName"], [3, 6])
    done = training.follow(engineer, job["jobId"], lambda _: None, timeout_s=180)

    assert done["status"] == "COMPLETED", done.get("failure")
    transitions = _described(local_cloud, done)["SecondaryStatusTransitions"]
    restarts = [t["StatusMessage"] for t in transitions if t["Status"] == "Restarting"]
    assert restarts == [
        "Training job failed on the host: node failure; restarting (attempt 2 of 3) from the "
        "S3 checkpoints",
        "Training job failed on the host: node failure; restarting (attempt 3 of 3) from the "
        "S3 checkpoints",
    ]
    assert [t["Status"] for t in transitions] == [
        "Starting",
        *["Downloading", "Training", "Restarting"] * 2,
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    resumed = [line for line in _log_lines(local_cloud, done) if line.startswith("resuming")]
    assert resumed == [
        "resuming from checkpoint-epoch-000003.json (epoch 3)",
        "resuming from checkpoint-epoch-000006.json (epoch 6)",
    ]
    assert _trained_digest(done) == _trained_digest(completed)
    assert done["usage"]["spotInterruptions"] == 0  # a host failure is no spot interruption
    print(
        f"\nnode failures after checkpoints [3, 6], maxAttempts 3: attempts={len(restarts) + 1}"
        f" restored={resumed} billable={done['usage']['billableSeconds']}s"
        f"\n  trained archive after failures {_trained_digest(done)}"
        f"\n  trained archive uninterrupted  {_trained_digest(completed)}"
    )


def test_a_host_failing_as_often_as_the_attempts_fails_the_job_keeping_checkpoints_and_quota(
    local_cloud: LocalCloud, engineer: ModelOpsClient, iris: dict[str, Any]
) -> None:
    assert local_cloud.sagemaker is not None
    sagemaker = local_cloud.sagemaker
    team = "ml-research"
    before = _committed_gpu_hours(engineer, team)
    request = _request(
        iris,
        hyperparameters={"epochs": 400, "min_epoch_seconds": 0.05},  # never ends by itself here
        compute={"instanceType": "ml.g5.xlarge", "maxRuntimeSeconds": 300},
        retryPolicy={"maxAttempts": 2},
    )
    job = engineer.submit_training(**request)
    sagemaker.plan_node_failures(job["trainingJobName"], [2])  # the first host failure
    # The second attempt restored checkpoints 1 and 2 and synced one more: its host dies now.
    _eventually(lambda: len(_checkpoint_keys(local_cloud, job)) >= 3, timeout=60)
    during = _committed_gpu_hours(engineer, team)
    sagemaker.fail_node(job["trainingJobName"])
    done = training.follow(engineer, job["jobId"], lambda _: None, timeout_s=120)
    execution = _execution_status(local_cloud, done)

    reason = "InternalServerError: the training host failed (node failure) on attempt 2 of 2"
    assert done["status"] == "FAILED"
    assert done["failure"]["reason"] == reason
    assert done["modelId"] is None
    assert [r["kind"] for r in done["artifactRefs"]] == ["checkpoints"]
    described = _described(local_cloud, done)
    assert (described["TrainingJobStatus"], described["FailureReason"]) == ("Failed", reason)
    assert [t["Status"] for t in described["SecondaryStatusTransitions"]] == [
        "Starting",
        *["Downloading", "Training", "Restarting"],
        "Downloading",
        "Training",
        "Failed",
    ]
    kept = _checkpoint_keys(local_cloud, done)
    assert kept[:3] == [f"checkpoint-epoch-{e:06d}.json" for e in (1, 2, 3)]
    assert (execution["status"], execution.get("error")) == ("FAILED", "TrainingJob.Failed")
    pools = PoolConfig.parse(local_cloud.parameters[platform.COMPUTE_POOLS_PARAMETER], "{}")
    reservation = _ledger(local_cloud, pools).get_reservation(done["jobId"])
    assert reservation is not None and reservation.status == "RELEASED"
    assert reservation.usedGpuHours is not None
    after = _committed_gpu_hours(engineer, team)
    assert during - before == reservation.gpuHours  # held while it ran
    assert after - before == reservation.usedGpuHours  # what it used, once released
    print(
        f"\nnode failures with maxAttempts 2: status={done['status']} reason={reason!r}"
        f"\n  checkpoints kept {len(kept)}: {kept[0]} .. {kept[-1]}"
        f"\n  committed GPU-hours ({team}, {GPU_POOL}): before {before}, while running "
        f"{during} (+{reservation.gpuHours} reserved), after {after} (+{reservation.usedGpuHours}"
        f" used for {done['usage']['billableSeconds']} billable s); reservation "
        f"{reservation.status}"
    )


def test_a_retry_strategy_beyond_thirty_attempts_is_refused_at_create(
    local_cloud: LocalCloud, completed: dict[str, Any]
) -> None:
    described = _described(local_cloud, completed)
    fields = (
        "AlgorithmSpecification",
        "RoleArn",
        "HyperParameters",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
    )
    request = {key: described[key] for key in fields}
    request["StoppingCondition"] = {
        "MaxRuntimeInSeconds": described["StoppingCondition"]["MaxRuntimeInSeconds"]
    }
    request["AlgorithmSpecification"] = {
        key: request["AlgorithmSpecification"][key]
        for key in ("TrainingImage", "TrainingInputMode")
    }
    with pytest.raises(ClientError, match=r"retryStrategy\.maximumRetryAttempts") as refused:
        local_cloud.client("sagemaker").create_training_job(
            TrainingJobName=f"retry-31-{uuid.uuid4().hex[:8]}",
            RetryStrategy={"MaximumRetryAttempts": 31},
            **request,
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"


# -- a model server that dies mid-traffic ---------------------------------------------------

_BODY = json.dumps({"instances": ROWS}).encode()


@dataclass
class _Outcomes:
    """What happened to requests sent once each: answered (by which variant), refused with
    ServiceUnavailable (503, its message), or anything else (a lost request)."""

    answered: Counter[str] = field(default_factory=Counter)
    unavailable: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    slowest_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.answered.values()) + len(self.unavailable) + len(self.lost)

    def send(self, runtime: Any, endpoint: str, **extra: Any) -> str | None:
        """One request; the variant that answered it, if one did."""
        sent = time.monotonic()
        try:
            answer = runtime.invoke_endpoint(
                EndpointName=endpoint, Body=_BODY, ContentType="application/json", **extra
            )
            answer["Body"].read()
        except ClientError as exc:
            error = exc.response
            code, status = error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]
            if (code, status) == ("ServiceUnavailable", 503):
                self.unavailable.append(error["Error"]["Message"])
            else:
                self.lost.append(repr(exc))
            return None
        except Exception as exc:  # a timeout or a dropped connection: lost
            self.lost.append(repr(exc))
            return None
        finally:
            self.slowest_s = max(self.slowest_s, time.monotonic() - sent)
        variant = str(answer["InvokedProductionVariant"])
        self.answered[variant] += 1
        return variant


class _Traffic:
    """Threads sending requests until the block ends; each thread keeps its own outcomes."""

    def __init__(self, runtime: Any, endpoint: str, threads: int = 4) -> None:
        self._runtime, self._endpoint = runtime, endpoint
        self._stop = threading.Event()
        self._outcomes = [_Outcomes() for _ in range(threads)]
        self._threads = [
            threading.Thread(target=self._run, args=(o,), daemon=True) for o in self._outcomes
        ]

    def __enter__(self) -> _Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
            assert not thread.is_alive(), "a request hung"

    def _run(self, outcomes: _Outcomes) -> None:
        while not self._stop.is_set():
            outcomes.send(self._runtime, self._endpoint)

    def answered(self, variant: str) -> int:
        return sum(o.answered[variant] for o in self._outcomes)

    def outcomes(self) -> _Outcomes:
        total = _Outcomes()
        for outcomes in self._outcomes:
            total.answered.update(outcomes.answered)
            total.unavailable += outcomes.unavailable
            total.lost += outcomes.lost
            total.slowest_s = max(total.slowest_s, outcomes.slowest_s)
        return total


def _runtime_without_retries(cloud: LocalCloud) -> Any:
    """sagemaker-runtime that sends each request once (boto3 retries a 503 by default, and a
    retry is routed again) and gives up on an answer after 15 s."""
    session = cloud.principals["platform-admin"].session(cloud.region)
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=15)
    return session.client("sagemaker-runtime", endpoint_url=cloud.endpoint_url, config=config)


def _two_variant_endpoint(cloud: LocalCloud, trained: dict[str, Any]) -> str:
    """An endpoint whose variants baseline (70) and canary (30) serve the trained model."""
    described = _described(cloud, trained)
    sagemaker = cloud.client("sagemaker")
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn=described["RoleArn"],
        PrimaryContainer={
            "Image": described["AlgorithmSpecification"]["TrainingImage"],
            "ModelDataUrl": described["ModelArtifacts"]["S3ModelArtifacts"],
        },
    )
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
            for variant, weight in (("baseline", 70.0), ("canary", 30.0))
        ],
    )
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    assert cloud.endpoints is not None
    assert cloud.endpoints.wait(name, 60) == "InService"
    return name


def test_a_killed_variant_answers_503_until_it_is_replaced_while_the_other_keeps_answering(
    local_cloud: LocalCloud, completed: dict[str, Any]
) -> None:
    executor = local_cloud.endpoints
    assert executor is not None
    name = _two_variant_endpoint(local_cloud, completed)
    runtime = _runtime_without_retries(local_cloud)
    began = datetime.now(UTC) - timedelta(seconds=1)
    probes = _Outcomes()  # TargetVariant=canary until the replacement answers
    try:
        with _Traffic(runtime, name) as traffic:
            _eventually(lambda: traffic.answered("canary") >= 5 and traffic.answered("baseline"))
            pid = executor.kill_variant(name, "canary")
            killed_at = time.monotonic()
            while probes.send(runtime, name, TargetVariant="canary") is None:
                assert time.monotonic() - killed_at < 30, "the canary was never replaced"
                time.sleep(0.05)
            replaced_after = time.monotonic() - killed_at
            answered_then = traffic.answered("canary")
            _eventually(lambda: traffic.answered("canary") >= answered_then + 5)
        seen = traffic.outcomes()
        telemetry = SageMakerTelemetry(  # what the platform's canary guardrail reads
            local_cloud.client("cloudwatch"),
            local_cloud.client("s3"),
            local_cloud.names[platform.ARTIFACT_BUCKET.logical_id],
        )
        sent = {
            "canary": seen.answered["canary"] + len(seen.unavailable) + probes.requests,
            "baseline": seen.answered["baseline"],
        }

        def flushed(variant: str) -> Any:
            stats = telemetry.variant_stats(name, variant, began, datetime.now(UTC))
            return stats.invocations >= sent[variant] and stats

        canary = _eventually(lambda: flushed("canary"))
        baseline = _eventually(lambda: flushed("baseline"))
    finally:
        local_cloud.client("sagemaker").delete_endpoint(EndpointName=name)

    assert seen.lost == [] and probes.lost == []
    assert seen.unavailable, "traffic reached the dead canary"
    prefix = f"Variant canary of endpoint {name} is unavailable ("
    assert all(m.startswith(prefix) for m in seen.unavailable + probes.unavailable)
    assert seen.slowest_s < 5
    assert not _alive(pid)
    assert replaced_after >= executor.replace_seconds
    # CloudWatch counts exactly the requests sent and the 503s the callers saw.
    assert canary.invocations == sent["canary"]
    assert canary.errors5xx == len(seen.unavailable) + len(probes.unavailable)
    assert (baseline.invocations, baseline.errors5xx) == (sent["baseline"], 0)
    print(
        f"\nkilled canary (pid {pid}) of {name} under traffic: requests={seen.requests} "
        f"answered={dict(seen.answered)} 503={len(seen.unavailable)} lost={len(seen.lost)}"
        f" slowest={seen.slowest_s:.2f}s\n  probes to the canary: {probes.requests} "
        f"(503={len(probes.unavailable)}); replaced after {replaced_after:.2f}s "
        f"(replace_seconds={executor.replace_seconds})"
        f"\n  CloudWatch canary Invocations={canary.invocations} "
        f"Invocation5XXErrors={canary.errors5xx}; baseline Invocations={baseline.invocations}"
        f" Invocation5XXErrors={baseline.errors5xx}\n  e.g. {seen.unavailable[0]}"
    )


@pytest.fixture(scope="module")
def models(engineer: ModelOpsClient, iris: dict[str, Any]) -> list[str]:
    return [_prod_model(engineer, iris, seed) for seed in (51, 52)]


def test_a_canary_whose_model_server_dies_during_its_bake_is_rolled_back_with_no_request_lost(
    local_cloud: LocalCloud, engineer: ModelOpsClient, models: list[str]
) -> None:
    assert local_cloud.endpoints is not None
    route = "iris-chaos"
    sfn = local_cloud.client("stepfunctions")
    live = _settle(local_cloud, engineer, _deploy(engineer, models[0], route)["deployId"])
    endpoint = live["endpointName"]
    # IN_SERVICE shows before the workflow records the live version a canary bakes beside.
    _eventually(
        lambda: sfn.describe_execution(executionArn=live["executionArn"])["status"] != "RUNNING"
    )
    started = _deploy(engineer, models[1], route, canary=FAST_CANARY)
    _eventually(
        lambda: engineer.call("GET", f"/serve/{started['deployId']}")["status"] == "BAKING",
        timeout=60,
    )
    with _Traffic(_runtime_without_retries(local_cloud), endpoint) as traffic:
        _eventually(lambda: traffic.answered("baseline"))  # the canary's fleet serves now
        pid = local_cloud.endpoints.kill_variant(endpoint, "canary")
        record = _settle(local_cloud, engineer, started["deployId"])
    seen = traffic.outcomes()
    execution = _eventually(
        lambda: (
            (e := sfn.describe_execution(executionArn=record["executionArn"]))["status"]
            != "RUNNING"
            and e
        )
    )
    weights = {
        v["VariantName"]: v["CurrentWeight"]
        for v in local_cloud.client("sagemaker").describe_endpoint(EndpointName=endpoint)[
            "ProductionVariants"
        ]
    }

    assert record["status"] == "ROLLED_BACK", record["statusReason"]
    assert "error rate" in record["statusReason"]
    assert record["decision"]["verdict"] == "rollback"
    # The workflow ended (nothing is stuck), in its rolled-back end state.
    assert (execution["status"], execution.get("error")) == ("FAILED", "Deployment.RolledBack")
    assert weights == {"canary": 0.0, "baseline": 100.0}
    assert seen.lost == []  # every request was answered or refused with a clear 503
    assert seen.unavailable and seen.answered["baseline"] > 0
    prefix = f"Variant canary of endpoint {endpoint} is unavailable ("
    assert all(m.startswith(prefix) for m in seen.unavailable)
    print(
        f"\ncanary (pid {pid}) killed while baking on {endpoint}: {record['status']} "
        f"({record['statusReason']}); workflow {execution['status']} {execution.get('error')}"
        f"\n  evidence {record['decision']['evidence']}"
        f"\n  traffic: requests={seen.requests} answered={dict(seen.answered)} "
        f"503={len(seen.unavailable)} lost={len(seen.lost)} slowest={seen.slowest_s:.2f}s"
    )
