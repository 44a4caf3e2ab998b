"""Cold start: a fresh interpreter importing a handler and serving its first request (a
read from its own table), against peer handlers doing the same read, on one moto server.

Every handler runs with exactly the environment the platform definition gives it, plus what
Lambda sets (LAMBDA_TASK_ROOT, function name, X-Ray trace header) so that Powertools and the
X-Ray SDK take their Lambda code paths, as they would in AWS. The figure is the median wall
time of the whole process, interpreter start included."""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from localcloud.cloud import create_table
from modelops import platform

ROOT = Path(__file__).resolve().parent.parent
# The named peer of the issue, and a second one carrying our house rules (Powertools Logger,
# Tracer, Metrics and pydantic validation) to show what our own code adds on top of them.
PEERS = {
    "bench.baseline_handler": ("bare resolver + boto3 DynamoDB client", "<= 1.2"),
    "bench.observed_handler": ("same + Logger/Tracer/Metrics + validation", "<= 1.2"),
}
# Each function's first request: a read that reaches its table (the peers read a model).
FIRST_REQUEST = {
    platform.REGISTRY_API.name: "/models/mdl-000000000000000000000000",
    platform.AUDIT_API.name: "/audit/streams",
    platform.TRAINING_API.name: "/train/jobs/trn-000000000000000000000000",
    platform.COMPUTE_API.name: "/cost/report",
    platform.SERVING_API.name: "/serve/dep-000000000000000000000000",
    platform.DRIFT_API.name: "/drift/findings/dft-000000000000000000000000",
}
PARAMETERS = {
    platform.TRAINING_IMAGE_PARAMETER: "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench:1",
    platform.TRAINING_POLL_PARAMETER: "60",
    platform.COMPUTE_POOLS_PARAMETER: "{}",
    platform.TEAM_BINDINGS_PARAMETER: "{}",
}
PRINCIPAL = "arn:aws:iam::123456789012:user/bench"
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
PROGRAM = """
import json, sys
from types import SimpleNamespace
module = __import__(sys.argv[1], fromlist=["handler"])
context = SimpleNamespace(function_name="bench", memory_limit_in_mb=1024, aws_request_id="r",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench",
    function_version="$LATEST", log_group_name="g", log_stream_name="s",
    get_remaining_time_in_millis=lambda: 29000)
response = module.handler(json.loads(sys.argv[2]), context)
assert response["statusCode"] in (200, 404), response
"""


def event(path: str) -> dict[str, object]:
    """An API Gateway REST proxy event for a signed GET of ``path``."""
    first, _, rest = path.strip("/").partition("/")
    resource = f"/{first}/{{proxy+}}" if rest else f"/{first}"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": "GET",
        "headers": {"Host": "bench"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": rest} if rest else None,
        "stageVariables": None,
        "requestContext": {
            "requestId": "bench",
            "stage": "bench",
            "httpMethod": "GET",
            "path": f"/bench{path}",
            "resourcePath": resource,
            "identity": {"userArn": PRINCIPAL},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _sample(module: str, env: dict[str, str], path: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", PROGRAM, module, json.dumps(event(path))],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def _environment(endpoint: str, names: dict[str, str], fn: platform.FunctionSpec) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "S3_ADDRESSING_STYLE": "path",
        "AWS_LAMBDA_FUNCTION_NAME": fn.name,
        "LAMBDA_TASK_ROOT": str(ROOT / "functions"),
        "_X_AMZN_TRACE_ID": TRACE_HEADER,
        **platform.function_environment(fn, names, {PRINCIPAL: ["ml-engineer"]}, PARAMETERS),
    }


def run(samples: int = 9) -> list[dict[str, object]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        endpoint = f"http://{host}:{port}"
        ddb = boto3.client(
            "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="k", aws_secret_access_key="s",
        )  # fmt: skip
        names = {spec.logical_id: f"bench-{spec.logical_id}" for spec in platform.TABLES}
        names |= {spec.logical_id: f"bench-{spec.logical_id.lower()}" for spec in platform.BUCKETS}
        names |= {spec.logical_id: f"arn:bench:{spec.logical_id}" for spec in platform.KEYS}
        names |= {spec.logical_id: f"bench-{spec.logical_id}" for spec in platform.BUSES}
        names |= {spec.logical_id: f"arn:bench:{spec.logical_id}" for spec in platform.ROLES}
        names |= {
            spec.logical_id: f"arn:aws:states:us-east-1:123456789012:stateMachine:{spec.logical_id}"
            for spec in platform.STATE_MACHINES
        }
        names |= {spec.name: f"bench-{spec.name}" for spec in platform.FUNCTIONS}
        for table in platform.TABLES:
            create_table(ddb, table, names[table.logical_id])
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="k", aws_secret_access_key="s",
        )  # fmt: skip
        for bucket in platform.BUCKETS:
            s3.create_bucket(Bucket=names[bucket.logical_id])
        runs: dict[str, tuple[dict[str, str], str]] = {
            peer: (
                _environment(endpoint, names, platform.REGISTRY_API),
                FIRST_REQUEST["registry-api"],
            )
            for peer in PEERS
        }
        handlers = {
            fn.handler.rsplit(".", 1)[0]: (
                _environment(endpoint, names, fn),
                FIRST_REQUEST[fn.name],
            )
            for fn in platform.FUNCTIONS
            if fn.api_routes
        }
        runs |= handlers
        for module, (env, path) in runs.items():  # warm the file cache, compile bytecode once
            _sample(module, env, path)
        times: dict[str, list[float]] = {m: [] for m in runs}
        for _ in range(samples):  # interleaved, so drift affects all alike
            for module, (env, path) in runs.items():
                times[module].append(_sample(module, env, path))
        medians = {module: statistics.median(samples) for module, samples in times.items()}
        return [
            {
                "benchmark": f"cold start: {module}",
                "peer": peer,
                "ours_ms": round(medians[module] * 1000, 1),
                "peer_ms": round(medians[peer_module] * 1000, 1),
                "ratio": round(medians[module] / medians[peer_module], 3),
                "target": target,
            }
            for module in handlers
            for peer_module, (peer, target) in PEERS.items()
        ]
    finally:
        server.stop()


if __name__ == "__main__":
    for row in run():
        print(row)
