"""The local cloud's Lambda runtime behaves like Lambda behind moto's APIs.

Handlers live in ``fixtures/lambda_functions`` (a tiny functions root). Functions are
created in moto with boto3 and reached the way the platform reaches them: the Invoke API,
Step Functions tasks, and an EventBridge rule -> SQS -> event source mapping.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import uuid
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from localcloud.lambda_runtime import LambdaRuntime
from tests.integration.moto_clients import moto_client

FUNCTIONS_ROOT = Path(__file__).parent / "fixtures" / "lambda_functions"
REGION = "us-east-1"
PARENT_ONLY = "LOCALCLOUD_TEST_PARENT_ONLY"
# What the runtime itself puts in a function's environment (besides its own variables).
RUNTIME_VARIABLES = {
    "PATH",
    "LANG",
    "TZ",
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
}


@dataclass
class Cloud:
    endpoint: str
    runtime: LambdaRuntime
    role_arn: str
    logs: list[tuple[str, str]] = field(default_factory=list)

    def client(self, service: str) -> Any:
        return moto_client(service, self.endpoint)

    def create_function(
        self, handler: str, env: dict[str, str] | None = None, timeout: int = 10
    ) -> str:
        name = f"{handler.partition('.')[0]}-{uuid.uuid4().hex[:8]}"
        self.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role_arn,
            Handler=handler,
            Code={"ZipFile": _zip()},
            Timeout=timeout,
            MemorySize=256,
            Environment={"Variables": env or {}},
        )
        return name

    def invoke(self, name: str, event: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        response = self.client("lambda").invoke(
            FunctionName=name, Payload=json.dumps(event).encode(), **kwargs
        )
        return response, json.loads(response["Payload"].read() or b"null")


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.txt", "code is read from the functions root")
    return buffer.getvalue()


def _alive(pid: int) -> bool:
    """True if the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    saved = {key: default_user_config.get(key) for key in ("stepfunctions", "lambda")}
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    environment = pytest.MonkeyPatch()
    # moto's ASL interpreter calls Lambda at http://localhost:$MOTO_PORT.
    environment.setenv("MOTO_PORT", str(port))
    environment.setenv(PARENT_ONLY, "must not leak into functions")
    endpoint = f"http://127.0.0.1:{port}"
    logs: list[tuple[str, str]] = []
    runtime = LambdaRuntime(
        FUNCTIONS_ROOT,
        endpoint_url=endpoint,
        region=REGION,
        max_workers_per_function=8,
        log_sink=lambda name, line: logs.append((name, line)),
    )
    # A session-wide local cloud may be running in this process: suspend its runtime.
    suspended = LambdaRuntime.installed()
    if suspended is not None:
        suspended.uninstall()
    runtime.install()
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    role = iam.create_role(
        RoleName=f"fn-role-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    try:
        yield Cloud(endpoint, runtime, role["Role"]["Arn"], logs)
    finally:
        runtime.shutdown()
        if suspended is not None:
            suspended.install()
        server.stop()
        environment.undo()
        for key, value in saved.items():
            if value is None:
                default_user_config.pop(key, None)  # type: ignore[misc]
            else:
                default_user_config[key] = value  # type: ignore[literal-required]


def _run_state_machine(cloud: Cloud, definition: dict[str, Any], payload: Any) -> dict[str, Any]:
    sfn = cloud.client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"sm-{uuid.uuid4().hex[:8]}", definition=json.dumps(definition), roleArn=cloud.role_arn
    )
    execution = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], input=json.dumps(payload)
    )
    deadline = time.monotonic() + 20
    while True:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    history = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    return {"execution": described, "history": history}


def test_invoke_runs_the_handler_with_its_context_and_returns_its_result(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.handler")

    response, result = cloud.invoke(name, {"hello": "world"}, LogType="Tail")

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    assert response["ExecutedVersion"] == "$LATEST"
    assert result["event"] == {"hello": "world"}
    assert result["function_name"] == name
    assert result["function_version"] == "$LATEST"
    assert result["invoked_function_arn"] == f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
    assert result["memory_limit_in_mb"] == "256"  # a string, as in the real Python runtime
    assert uuid.UUID(result["aws_request_id"])
    assert result["log_group_name"] == f"/aws/lambda/{name}"
    assert 0 < result["remaining_ms"] <= 10_000
    assert result["cwd"] == result["sys_path_0"] == str(FUNCTIONS_ROOT.resolve())
    tail = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {result['aws_request_id']}" in tail
    assert "echo got {'hello': 'world'}" in tail
    assert f"REPORT RequestId: {result['aws_request_id']}" in tail
    assert (name, "echo got {'hello': 'world'}") in cloud.logs

    _, again = cloud.invoke(name, {})
    assert again["aws_request_id"] != result["aws_request_id"]


def test_each_function_sees_exactly_its_own_environment(cloud: Cloud) -> None:
    first = cloud.create_function(
        "envdump.handler.handler", {"MODEL_STAGE": "staging", "ONLY_FIRST": "1"}
    )
    second = cloud.create_function("envdump.handler.handler", {"MODEL_STAGE": "production"})

    _, seen_first = cloud.invoke(first, {})
    _, seen_second = cloud.invoke(second, {})

    for name, seen, own in (
        (first, seen_first, {"MODEL_STAGE": "staging", "ONLY_FIRST": "1"}),
        (second, seen_second, {"MODEL_STAGE": "production"}),
    ):
        environ = seen["environ"]
        assert seen["function_name"] == name
        assert {k: v for k, v in environ.items() if k not in RUNTIME_VARIABLES} == own
        assert PARENT_ONLY not in environ
        assert environ["AWS_LAMBDA_FUNCTION_NAME"] == name
        assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
        assert environ["AWS_REGION"] == environ["AWS_DEFAULT_REGION"] == REGION
        assert environ["AWS_ENDPOINT_URL"] == cloud.endpoint
        assert environ["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"
        assert environ["_HANDLER"] == "envdump.handler.handler"
        assert environ["LAMBDA_TASK_ROOT"] == str(FUNCTIONS_ROOT.resolve())
        assert environ["AWS_ACCESS_KEY_ID"].startswith("ASIA")  # the role's session, via STS
        assert environ["_X_AMZN_TRACE_ID"].startswith("Root=1-")


def test_unhandled_exception_is_a_function_error_named_after_the_exception_class(
    cloud: Cloud,
) -> None:
    name = cloud.create_function("failing.handler.handler")

    response, error = cloud.invoke(name, {"model": "m-1"})

    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "ModelNotReadyError"
    assert error["errorMessage"] == "model m-1 is not ready"
    assert uuid.UUID(error["requestId"])
    assert any("failing/handler.py" in frame for frame in error["stackTrace"])
    assert not any("lambda_worker" in frame for frame in error["stackTrace"])


def test_missing_handler_module_is_reported_as_import_error(cloud: Cloud) -> None:
    name = cloud.create_function("nowhere.handler.handler")

    response, error = cloud.invoke(name, {})

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'nowhere.handler'" in error["errorMessage"]


def test_state_machine_runs_lambda_invoke_and_plain_arn_tasks_to_success(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.handler")
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
    definition = {
        "StartAt": "Integration",
        "States": {
            "Integration": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": arn, "Payload.$": "$"},
                "ResultSelector": {"first.$": "$.Payload.event"},
                "Next": "PlainArn",
            },
            "PlainArn": {"Type": "Task", "Resource": arn, "End": True},
        },
    }

    run = _run_state_machine(cloud, definition, {"model": "m-2"})

    assert run["execution"]["status"] == "SUCCEEDED", run["history"]
    output = json.loads(run["execution"]["output"])
    assert output["event"] == {"first": {"model": "m-2"}}
    assert output["function_name"] == name


@pytest.mark.parametrize("integration", ["plain-arn", "lambda:invoke"])
def test_state_machine_retry_and_catch_match_the_exception_class_name(
    cloud: Cloud, integration: str
) -> None:
    name = cloud.create_function("failing.handler.handler")
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:{name}"
    task: dict[str, Any] = (
        {"Resource": arn}
        if integration == "plain-arn"
        else {
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": arn, "Payload.$": "$"},
        }
    )
    definition = {
        "StartAt": "Deploy",
        "States": {
            "Deploy": {
                "Type": "Task",
                **task,
                "Retry": [
                    {
                        "ErrorEquals": ["ModelNotReadyError"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 1,
                        "BackoffRate": 1.0,
                    }
                ],
                "Catch": [
                    {"ErrorEquals": ["SomethingElse"], "Next": "Wrong"},
                    {
                        "ErrorEquals": ["ModelNotReadyError"],
                        "ResultPath": "$.error",
                        "Next": "Caught",
                    },
                ],
                "End": True,
            },
            "Wrong": {"Type": "Fail", "Error": "WrongCatcher"},
            "Caught": {"Type": "Pass", "End": True},
        },
    }

    run = _run_state_machine(cloud, definition, {"model": "m-3"})

    assert run["execution"]["status"] == "SUCCEEDED", run["history"]
    output = json.loads(run["execution"]["output"])
    assert output["error"]["Error"] == "ModelNotReadyError"
    cause = json.loads(output["error"]["Cause"])
    assert cause["errorType"] == "ModelNotReadyError"
    assert cause["errorMessage"] == "model m-3 is not ready"
    failures = [
        event.get("lambdaFunctionFailedEventDetails") or event.get("taskFailedEventDetails")
        for event in run["history"]
        if event["type"] in ("LambdaFunctionFailed", "TaskFailed")
    ]
    assert [failure["error"] for failure in failures] == ["ModelNotReadyError"] * 2  # 1 retry


def test_eventbridge_rule_to_sqs_event_source_mapping_delivers_the_event(cloud: Cloud) -> None:
    bucket = f"markers-{uuid.uuid4().hex[:8]}"
    cloud.client("s3").create_bucket(Bucket=bucket)
    name = cloud.create_function("sqs_marker.handler.handler", {"MARKER_BUCKET": bucket})
    sqs = cloud.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events = cloud.client("events")
    rule = f"to-queue-{uuid.uuid4().hex[:8]}"
    events.put_rule(Name=rule, EventPattern=json.dumps({"source": ["modelops.test"]}))
    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
    cloud.client("lambda").create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=name, BatchSize=1
    )
    marker = uuid.uuid4().hex

    events.put_events(
        Entries=[
            {
                "Source": "modelops.test",
                "DetailType": "ModelRegistered",
                "Detail": json.dumps({"marker": marker}),
            }
        ]
    )

    s3 = cloud.client("s3")
    deadline = time.monotonic() + 10
    while True:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="markers/").get("Contents", [])
        if listed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [o["Key"] for o in listed] == [f"markers/{marker}"]
    written = json.loads(s3.get_object(Bucket=bucket, Key=f"markers/{marker}")["Body"].read())
    assert written["function"] == name
    assert written["record"]["eventSource"] == "aws:sqs"


def test_concurrent_invocations_run_in_separate_workers(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.sleep")
    cloud.invoke(name, {"seconds": 0})  # one warm worker; the others start cold below
    clients = [cloud.client("lambda") for _ in range(8)]

    def invoke(client: Any) -> int:
        response = client.invoke(FunctionName=name, Payload=b'{"seconds": 0.5}')
        return int(json.loads(response["Payload"].read()))

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        pids = list(pool.map(invoke, clients))
    elapsed = time.monotonic() - started

    assert elapsed < 2.0  # one after the other it would take 8 x 0.5 s
    assert len(set(pids)) >= 4
    assert set(pids) <= set(cloud.runtime.worker_pids(name))


def test_workers_stay_warm_between_invocations(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.pid")

    pids = [cloud.invoke(name, {})[1] for _ in range(5)]

    assert len(set(pids)) == 1
    assert cloud.runtime.worker_pids(name) == pids[:1]


def test_timeout_kills_the_worker_and_reports_task_timed_out(cloud: Cloud) -> None:
    name = cloud.create_function("failing.handler.hang", timeout=1)
    _, warm = cloud.invoke(name, {"seconds": 0})

    started = time.monotonic()
    response, error = cloud.invoke(name, {"seconds": 30})
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 3.0
    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout"
    assert error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert any(
        n == name and line.endswith("Task timed out after 1.00 seconds") for n, line in cloud.logs
    )
    assert not _alive(warm["pid"])
    _, fresh = cloud.invoke(name, {"seconds": 0})
    assert fresh["pid"] != warm["pid"]
    assert 0 < fresh["remaining_ms"] <= 1000


def test_worker_crash_is_an_exit_error_and_the_next_invoke_works(cloud: Cloud) -> None:
    name = cloud.create_function("failing.handler.crash")
    _, first_pid = cloud.invoke(name, {})

    response, error = cloud.invoke(name, {"crash": True})

    assert response["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"].endswith("Runtime exited with error: exit status 3")
    assert not _alive(first_pid)
    _, next_pid = cloud.invoke(name, {})
    assert next_pid != first_pid


def test_event_invocation_returns_202_at_once_and_runs_in_background(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.sleep")

    started = time.monotonic()
    response, _ = cloud.invoke(name, {"seconds": 1}, InvocationType="Event")

    assert response["StatusCode"] == 202
    assert time.monotonic() - started < 0.9
    deadline = time.monotonic() + 10
    while not any(n == name and line.startswith("REPORT") for n, line in cloud.logs):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_dry_run_checks_the_function_and_runs_nothing(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.pid")

    response, _ = cloud.invoke(name, {}, InvocationType="DryRun")

    assert response["StatusCode"] == 204
    assert cloud.runtime.worker_pids(name) == []


def test_logs_are_written_to_the_function_log_group(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.handler")
    _, result = cloud.invoke(name, {"log": "me"})

    logs = cloud.client("logs")
    streams = logs.describe_log_streams(logGroupName=f"/aws/lambda/{name}")["logStreams"]
    assert [s["logStreamName"] for s in streams] == [result["log_stream_name"]]
    messages = [
        e["message"]
        for e in logs.get_log_events(
            logGroupName=f"/aws/lambda/{name}", logStreamName=result["log_stream_name"]
        )["events"]
    ]
    assert "echo got {'log': 'me'}" in messages
    assert any(m.startswith(f"REPORT RequestId: {result['aws_request_id']}") for m in messages)


def test_only_one_runtime_is_installed_and_install_is_idempotent(cloud: Cloud) -> None:
    cloud.runtime.install()
    other = LambdaRuntime(FUNCTIONS_ROOT, cloud.endpoint, REGION)
    try:
        with pytest.raises(RuntimeError, match="another LambdaRuntime"):
            other.install()
    finally:
        other.shutdown()


def test_shutdown_leaves_no_worker_processes(cloud: Cloud) -> None:
    name = cloud.create_function("echo.handler.spawn_child")
    runtime = LambdaRuntime(FUNCTIONS_ROOT, cloud.endpoint, REGION, log_sink=lambda *_: None)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda _: json.loads(runtime.invoke(name, {}).payload), range(3)))
    pids = runtime.worker_pids() + [r["child"] for r in results]
    assert all(_alive(pid) for pid in pids)

    runtime.shutdown()

    assert runtime.worker_pids() == []
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if _alive(pid)]
    assert os.getpid() not in pids
