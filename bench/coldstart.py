"""Cold start: a fresh interpreter importing a handler and serving its first request
(a model lookup that reads DynamoDB), against the baseline handler, on the same moto server.

Both run in a Lambda-like environment (LAMBDA_TASK_ROOT, function name, X-Ray trace header
set) so that Powertools and the X-Ray SDK take their Lambda code paths, as they would in AWS.
The figure is the median wall time of the whole process, interpreter start included."""

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

from modelops import platform

ROOT = Path(__file__).resolve().parent.parent
# The named peer of the issue, and a second one carrying our house rules (Powertools Logger,
# Tracer, Metrics and pydantic validation) to show what our own code adds on top of them.
PEERS = {
    "bench.baseline_handler": ("bare resolver + boto3 DynamoDB client", "<= 1.2"),
    "bench.observed_handler": ("same + Logger/Tracer/Metrics + validation", "<= 1.2"),
}
EVENT_PRINCIPAL = "arn:aws:iam::123456789012:user/bench"
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
EVENT = {
    "resource": "/models/{proxy+}",
    "path": "/models/mdl-000000000000000000000000",
    "httpMethod": "GET",
    "headers": {"Host": "bench"},
    "multiValueHeaders": {},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": {"proxy": "mdl-000000000000000000000000"},
    "stageVariables": None,
    "requestContext": {
        "requestId": "bench",
        "stage": "bench",
        "httpMethod": "GET",
        "path": "/bench/models/mdl-000000000000000000000000",
        "resourcePath": "/models/{proxy+}",
        "identity": {"userArn": EVENT_PRINCIPAL},
    },
    "body": None,
    "isBase64Encoded": False,
}
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


def _sample(module: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", PROGRAM, module, json.dumps(EVENT)],
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def run(samples: int = 9) -> list[dict[str, object]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        endpoint = f"http://{host}:{port}"
        table = "bench-registry"
        boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="k",
            aws_secret_access_key="s",
        ).create_table(
            TableName=table,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
            BillingMode="PAY_PER_REQUEST",
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)]),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_LAMBDA_FUNCTION_NAME": "bench",
            "LAMBDA_TASK_ROOT": str(ROOT / "functions"),
            "_X_AMZN_TRACE_ID": TRACE_HEADER,
            "POWERTOOLS_METRICS_NAMESPACE": platform.METRICS_NAMESPACE,
            platform.REGISTRY_TABLE.env_var: table,
            platform.IDEMPOTENCY_TABLE.env_var: "bench-idempotency",
            platform.ARTIFACT_BUCKET.env_var: "bench-artifacts",
            platform.ROLE_BINDINGS_ENV: json.dumps({EVENT_PRINCIPAL: ["ml-engineer"]}),
            "PYTHONDONTWRITEBYTECODE": "",
        }
        handlers = [fn.handler.rsplit(".", 1)[0] for fn in platform.FUNCTIONS if fn.api_routes]
        modules = [*PEERS, *handlers]
        for module in modules:  # warm the file cache and compile bytecode once
            _sample(module, env)
        times: dict[str, list[float]] = {m: [] for m in modules}
        for _ in range(samples):  # interleaved, so drift affects all alike
            for module in modules:
                times[module].append(_sample(module, env))
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
