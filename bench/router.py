"""Latency the local endpoint router adds to a request: InvokeEndpoint through the router
(:meth:`EndpointExecutor.invoke`: variant pick, pooled keep-alive forward, capture sampling,
metric recording) against the peer, the same model server's ``/invocations`` called directly
over a keep-alive connection, both under the same concurrent load.

The row's figures are the overhead (router minus direct) at p50 and p99, in ms; the target
is a p50 overhead of at most 1 ms (ratio = p50 overhead / 1 ms). The same requests sent
with boto3 through moto's HTTP server (``moto_*``) are reported alongside: there, boto3 and
moto's werkzeug server, not the router, dominate.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from localcloud.sagemaker_endpoints import EndpointExecutor
from localcloud.sagemaker_image import register_local_image
from modelops.domain.archive import targz_bytes

REGION = "us-east-1"

BODY = json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.0, 1.7]]}).encode()
HEADERS = {"Content-Type": "application/json"}
MODEL = {
    "format": "modelops.iris.softmax-regression/1",
    "classes": ["setosa", "versicolor", "virginica"],
    "features": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
    "standardization": {"mean": [5.8, 3.0, 3.7, 1.2], "scale": [0.8, 0.4, 1.7, 0.8]},
    "weights": [[-1.0, 0.3, 0.7], [1.1, -0.8, -0.3], [-2.2, 0.4, 1.8], [-2.0, -0.2, 2.2]],
    "bias": [0.2, 1.1, -1.3],
}


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=endpoint_url,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(calls: list[Callable[[], None]], requests: int, threads: int) -> list[list[float]]:
    """Latencies in ms, per call kind, of ``requests`` rounds made by ``threads`` threads; a
    round makes each call once, so every kind sees the same load."""

    def one(_: int) -> list[float]:
        took = []
        for call in calls:
            started = time.perf_counter()
            call()
            took.append((time.perf_counter() - started) * 1000)
        return took

    with ThreadPoolExecutor(threads) as pool:
        return [list(kind) for kind in zip(*pool.map(one, range(requests)), strict=True)]


def _direct_caller(base_url: str) -> Callable[[], None]:
    local = threading.local()
    port = int(base_url.rsplit(":", 1)[1])

    def call() -> None:
        if not hasattr(local, "connection"):
            local.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            local.connection.connect()  # as the router's connections: no Nagle delays
            local.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        local.connection.request("POST", "/invocations", body=BODY, headers=HEADERS)
        answer = local.connection.getresponse()
        if answer.status != 200 or not answer.read():
            raise RuntimeError(f"model server answered {answer.status}")

    return call


def _serve(endpoint_url: str, executor: EndpointExecutor, name: str) -> None:
    """One model in moto's S3 and one endpoint serving it, InService."""
    ecr, s3, sagemaker = (_client(s, endpoint_url) for s in ("ecr", "s3", "sagemaker"))
    image, digest = register_local_image(ecr)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "model.json").write_text(json.dumps(MODEL))
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="model.tar.gz", Body=targz_bytes(Path(folder)))
    sagemaker.create_model(
        ModelName=name,
        ExecutionRoleArn="arn:aws:iam::123456789012:role/bench",
        PrimaryContainer={
            "Image": f"{image}@{digest}",
            "ModelDataUrl": f"s3://{name}/model.tar.gz",
        },
    )
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large"}
    sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if executor.wait(name, 60) != "InService":
        raise RuntimeError(sagemaker.describe_endpoint(EndpointName=name).get("FailureReason"))


def run(
    requests: int = 2000, threads: int = 8, moto_requests: int = 500
) -> list[dict[str, object]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    suspended = EndpointExecutor.installed()
    if suspended is not None:
        suspended.uninstall()
    name = f"bench-router-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="modelops-bench-router-") as work:
        executor = EndpointExecutor(endpoint_url=endpoint_url, region=REGION, work_root=Path(work))
        executor.install()
        try:
            _serve(endpoint_url, executor, name)
            runtime = _client("sagemaker-runtime", endpoint_url)

            def routed() -> None:
                if executor.invoke(name, BODY).status != 200:
                    raise RuntimeError("the router's answer was not a 200")

            def through_moto() -> None:
                runtime.invoke_endpoint(
                    EndpointName=name, Body=BODY, ContentType="application/json"
                )["Body"].read()

            calls: dict[str, Callable[[], None]] = {
                "direct": _direct_caller(executor.variant_url(name, "AllTraffic")),
                "router": routed,
                "moto": through_moto,
            }
            _timed(list(calls.values()), 4 * threads, threads)  # warm connections and pools
            timings = dict(
                zip(
                    ("direct", "router"),
                    _timed([calls["direct"], routed], requests, threads),
                    strict=True,
                )
            )
            timings["moto"] = _timed([through_moto], moto_requests, threads)[0]
        finally:
            executor.shutdown()
            if suspended is not None:
                suspended.install()
            server.stop()
    p50 = {k: statistics.median(v) for k, v in timings.items()}
    p99 = {k: _percentile(v, 0.99) for k, v in timings.items()}
    overhead_p50 = p50["router"] - p50["direct"]
    return [
        {
            "benchmark": f"endpoint router overhead ({threads} threads, {requests} requests)",
            "peer": "model server /invocations called directly",
            "overhead_p50_ms": round(overhead_p50, 3),
            "overhead_p99_ms": round(p99["router"] - p99["direct"], 3),
            "direct_p50_ms": round(p50["direct"], 3),
            "direct_p99_ms": round(p99["direct"], 3),
            "router_p50_ms": round(p50["router"], 3),
            "router_p99_ms": round(p99["router"], 3),
            "moto_http_p50_ms": round(p50["moto"], 3),
            "moto_http_p99_ms": round(p99["moto"], 3),
            "ratio": round(max(overhead_p50, 0.001) / 1.0, 3),
            "target": "<= 1.0",
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
