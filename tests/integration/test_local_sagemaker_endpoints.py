"""SageMaker endpoints served for real on the local cloud, as SageMaker serves them.

A moto server runs in this process with the endpoint executor installed; models, endpoint
configs and endpoints are created, and invoked, with boto3. The models are hand-written
``modelops.iris.softmax-regression/1`` model.json files (what examples/iris_train writes),
packed as model.tar.gz; expected predictions are computed offline with numpy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from localcloud.sagemaker_endpoints import EndpointExecutor
from localcloud.sagemaker_image import register_local_image
from modelops.domain.archive import targz_bytes
from tests.integration.moto_clients import REGION, moto_client
from tests.integration.test_local_sagemaker_training import _alive, _eventually

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::123456789012:role/modelops-serving"
FEATURES = ["petal_length", "petal_width", "sepal_length", "sepal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
ROWS = [[1.4, 0.2, 5.1, 3.5], [4.7, 1.4, 7.0, 3.2], [6.0, 2.5, 6.3, 3.3], [5.0, 1.7, 6.7, 3.0]]
CAPTURE_KEY = re.compile(
    r"^capture/(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/\d{4}/\d{2}/\d{2}/\d{2}/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$"
)


def _model_json(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "format": "modelops.iris.softmax-regression/1",
        "classes": CLASSES,
        "features": FEATURES,
        "label": "species",
        "standardization": {"mean": [3.7, 1.2, 5.8, 3.0], "scale": [1.7, 0.76, 0.82, 0.43]},
        "weights": rng.normal(0, 2, (4, 3)).tolist(),
        "bias": rng.normal(0, 0.5, 3).tolist(),
    }


def _offline(model: dict[str, Any], rows: list[list[float]]) -> list[dict[str, Any]]:
    """The model run without any server: what every answer must equal."""
    std = model["standardization"]
    x = (np.array(rows) - np.array(std["mean"])) / np.array(std["scale"])
    logits = x @ np.array(model["weights"]) + np.array(model["bias"])
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return [
        {
            "label": CLASSES[int(np.argmax(r))],
            "probabilities": dict(zip(CLASSES, r.tolist(), strict=True)),
        }
        for r in p
    ]


@dataclass
class Cloud:
    endpoint_url: str
    executor: EndpointExecutor
    bucket: str
    image: str
    models: dict[str, dict[str, Any]]
    digests: dict[str, str]

    def client(self, service: str) -> Any:
        return moto_client(service, self.endpoint_url)

    def add_model(self, name: str, model_json: bytes, base: Path) -> None:
        folder = base / name
        folder.mkdir(parents=True)
        (folder / "model.json").write_bytes(model_json)
        archive = targz_bytes(folder)
        self.digests[name] = hashlib.sha256(archive).hexdigest()
        key = f"models/{name}/model.tar.gz"
        self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=archive)
        self.client("sagemaker").create_model(
            ModelName=name,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": self.image, "ModelDataUrl": f"s3://{self.bucket}/{key}"},
        )

    def create_endpoint(
        self,
        name: str,
        variants: dict[str, tuple[str, float]],
        *,
        shadow: tuple[str, str, float] | None = None,
        capture: dict[str, Any] | None = None,
        timeout: float = 60,
    ) -> dict[str, Any]:
        sagemaker = self.client("sagemaker")
        config: dict[str, Any] = {
            "EndpointConfigName": f"{name}-config",
            "ProductionVariants": [
                {
                    "VariantName": variant,
                    "ModelName": model,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": weight,
                }
                for variant, (model, weight) in variants.items()
            ],
        }
        if shadow is not None:
            variant, model, weight = shadow
            config["ShadowProductionVariants"] = [
                {
                    "VariantName": variant,
                    "ModelName": model,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": weight,
                }
            ]
        if capture is not None:
            config["DataCaptureConfig"] = capture
        sagemaker.create_endpoint_config(**config)
        sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
        self.executor.wait(name, timeout)
        described: dict[str, Any] = sagemaker.describe_endpoint(EndpointName=name)
        return described

    def invoke(self, name: str, rows: list[list[float]] = ROWS, **kwargs: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name,
            Body=json.dumps({"instances": rows}).encode(),
            ContentType="application/json",
            **kwargs,
        )
        answer["Predictions"] = json.loads(answer["Body"].read())["predictions"]
        return answer

    def keys(self, prefix: str) -> list[str]:
        s3 = self.client("s3")
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def records(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        s3 = self.client("s3")
        found = []
        for key in self.keys(prefix):
            body = s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
            assert body.endswith("\n")
            found += [(key, json.loads(line)) for line in body.splitlines()]
        return found


def _assert_predictions(actual: list[dict[str, Any]], model: dict[str, Any]) -> None:
    expected = _offline(model, ROWS)
    assert [p["label"] for p in actual] == [p["label"] for p in expected]
    for got, want in zip(actual, expected, strict=True):
        for label in CLASSES:
            assert got["probabilities"][label] == pytest.approx(
                want["probabilities"][label], abs=1e-12
            )


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    base = tmp_path_factory.mktemp("endpoints")
    executor = EndpointExecutor(
        endpoint_url=endpoint_url, region=REGION, work_root=base / "work", flush_seconds=0.2
    )
    # A session-wide local cloud may be running in this process: suspend its executor.
    suspended = EndpointExecutor.installed()
    if suspended is not None:
        suspended.uninstall()
    executor.install()
    bucket = f"serving-{uuid.uuid4().hex[:8]}"
    image, digest = register_local_image(moto_client("ecr", endpoint_url))
    cloud = Cloud(endpoint_url, executor, bucket, f"{image}@{digest}", {}, {})
    cloud.client("s3").create_bucket(Bucket=bucket)
    for name, seed in (("iris-a", 1), ("iris-b", 2), ("iris-c", 3)):
        cloud.models[name] = _model_json(seed)
        cloud.add_model(name, json.dumps(cloud.models[name]).encode(), base / "models")
    cloud.create_endpoint("iris", {"A": ("iris-a", 0.9), "B": ("iris-b", 0.1)})
    try:
        yield cloud
    finally:
        executor.shutdown()
        if suspended is not None:
            suspended.install()
        server.stop()


def test_endpoint_goes_in_service_and_answers_like_the_model_run_offline(cloud: Cloud) -> None:
    described = cloud.client("sagemaker").describe_endpoint(EndpointName="iris")
    assert described["EndpointStatus"] == "InService"
    assert [
        (v["VariantName"], v["CurrentWeight"], v["DesiredWeight"], v["CurrentInstanceCount"])
        for v in described["ProductionVariants"]
    ] == [("A", 0.9, 0.9, 1), ("B", 0.1, 0.1, 1)]
    for variant, model in (("A", "iris-a"), ("B", "iris-b")):
        answer = cloud.invoke("iris", TargetVariant=variant)
        assert answer["InvokedProductionVariant"] == variant
        _assert_predictions(answer["Predictions"], cloud.models[model])
        # Provenance when the caller sends no custom attributes: model and artifact digest.
        assert answer["CustomAttributes"] == (
            f"model-name={model};model-data-sha256={cloud.digests[model]}"
        )


def test_csv_input_and_caller_custom_attributes_come_back(cloud: Cloud) -> None:
    answer = cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName="iris",
        Body="\n".join(",".join(map(str, row)) for row in ROWS).encode(),
        ContentType="text/csv",
        TargetVariant="A",
        CustomAttributes="trace_id=abc123",
    )
    assert answer["CustomAttributes"] == "trace_id=abc123"
    _assert_predictions(json.loads(answer["Body"].read())["predictions"], cloud.models["iris-a"])


def test_bad_input_is_a_model_error_with_the_original_status(cloud: Cloud) -> None:
    with pytest.raises(ClientError) as raised:
        cloud.invoke("iris", rows=[[1.0, 2.0]], TargetVariant="A")
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 400


def test_unknown_target_variant_and_endpoint_are_refused(cloud: Cloud) -> None:
    cases: list[dict[str, Any]] = [{"TargetVariant": "nope"}, {}]
    for kwargs in cases:
        name = "iris" if kwargs else "no-such-endpoint"
        with pytest.raises(ClientError) as raised:
            cloud.invoke(name, **kwargs)
        assert raised.value.response["Error"]["Code"] == "ValidationError"


def _variant_counts(cloud: Cloud, name: str, requests: int) -> Counter[str]:
    def one(_: int) -> str:
        return str(cloud.invoke(name, rows=ROWS[:1])["InvokedProductionVariant"])

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(one, range(requests)))


def test_weights_are_respected_within_binomial_tolerance(cloud: Cloud) -> None:
    n, p = 400, 0.1
    counts = _variant_counts(cloud, "iris", n)
    assert set(counts) <= {"A", "B"}
    # B's share is Binomial(400, 0.1): 40 expected, sigma 6; 4 sigma either side.
    tolerance = 4 * math.sqrt(n * p * (1 - p))
    assert abs(counts["B"] - n * p) <= tolerance, counts


def test_weight_update_takes_effect_at_once_and_shows_in_describe(cloud: Cloud) -> None:
    sagemaker = cloud.client("sagemaker")
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="iris",
        DesiredWeightsAndCapacities=[
            {"VariantName": "A", "DesiredWeight": 0.0},
            {"VariantName": "B", "DesiredWeight": 1.0},
        ],
    )
    try:
        assert _variant_counts(cloud, "iris", 40) == Counter({"B": 40})
        described = sagemaker.describe_endpoint(EndpointName="iris")
        assert described["EndpointStatus"] == "InService"
        assert [
            (v["VariantName"], v["CurrentWeight"], v["DesiredWeight"], v["CurrentInstanceCount"])
            for v in described["ProductionVariants"]
        ] == [("A", 0.0, 0.0, 1), ("B", 1.0, 1.0, 1)]
    finally:
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName="iris",
            DesiredWeightsAndCapacities=[
                {"VariantName": "A", "DesiredWeight": 0.9},
                {"VariantName": "B", "DesiredWeight": 0.1},
            ],
        )


@pytest.fixture(scope="module")
def shadowed(cloud: Cloud) -> str:
    """An endpoint with a production variant, a shadow getting every request, and capture
    of everything (JSON as text, CSV left to the default, base64)."""
    cloud.create_endpoint(
        "iris-shadowed",
        {"prod": ("iris-a", 1.0)},
        shadow=("shadow", "iris-c", 1.0),
        capture={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{cloud.bucket}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
    )
    return "iris-shadowed"


def test_shadow_never_changes_the_response_and_is_captured(cloud: Cloud, shadowed: str) -> None:
    cloud.executor.inject_fault(shadowed, "shadow", latency_ms=20, error_rate=0.5)
    try:
        # 30 requests: with half failing at random, all 30 alike has odds of 2 in 10^9.
        for _ in range(30):
            answer = cloud.invoke(shadowed, InferenceId="shadow-check")
            assert answer["InvokedProductionVariant"] == "prod"
            _assert_predictions(answer["Predictions"], cloud.models["iris-a"])
        shadow_records = _eventually(
            lambda: len(r := cloud.records(f"capture/{shadowed}/shadow/")) >= 30 and r
        )
    finally:
        cloud.executor.inject_fault(shadowed, "shadow")
    outputs = [r["captureData"]["endpointOutput"] for _, r in shadow_records]
    answered = [json.loads(o["data"]) for o in outputs if o["encoding"] == "JSON"]
    # The shadow's own model answered (not the production model), and its failures too.
    assert answered and all(
        a["predictions"][0]["label"] == _offline(cloud.models["iris-c"], ROWS)[0]["label"]
        for a in answered
    )
    assert len(answered) < len(outputs)  # the injected 500s were captured as well
    described = cloud.client("sagemaker").describe_endpoint(EndpointName=shadowed)
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["shadow"]


def test_data_capture_matches_the_documented_format_and_key_layout(
    cloud: Cloud, shadowed: str
) -> None:
    csv_body = b"1.4,0.2,5.1,3.5\n"
    cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=shadowed, Body=csv_body, ContentType="text/csv", InferenceId="csv-1"
    )
    cloud.invoke(shadowed, InferenceId="json-1")

    def by_inference_id() -> dict[str, tuple[str, dict[str, Any]]]:
        records = cloud.records(f"capture/{shadowed}/prod/")
        return {r["eventMetadata"].get("inferenceId"): (k, r) for k, r in records}

    found = _eventually(lambda: (f := by_inference_id()).keys() >= {"csv-1", "json-1"} and f)
    for key, record in found.values():
        match = CAPTURE_KEY.match(key)
        assert match and match["endpoint"] == shadowed, key
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
        assert record["eventVersion"] == "0"
        assert set(record["eventMetadata"]) <= {"eventId", "inferenceId", "inferenceTime"}
        uuid.UUID(record["eventMetadata"]["eventId"])
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["eventMetadata"]["inferenceTime"]
        )
        stamp = record["eventMetadata"]["inferenceTime"]
        assert key.split("/")[3:7] == [stamp[0:4], stamp[5:7], stamp[8:10], stamp[11:13]]
    _, csv_record = found["csv-1"]
    assert csv_record["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": base64.b64encode(csv_body).decode(),
        "encoding": "BASE64",
    }
    _, json_record = found["json-1"]
    assert json_record["captureData"]["endpointInput"]["encoding"] == "JSON"
    assert json.loads(json_record["captureData"]["endpointInput"]["data"]) == {"instances": ROWS}
    output = json_record["captureData"]["endpointOutput"]
    assert (output["mode"], output["encoding"], output["observedContentType"]) == (
        "OUTPUT",
        "JSON",
        "application/json",
    )
    _assert_predictions(json.loads(output["data"])["predictions"], cloud.models["iris-a"])


def _metric_sum(cloud: Cloud, endpoint: str, variant: str, metric: str) -> float:
    points = cloud.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        StartTime=time.time() - 3600,
        EndTime=time.time() + 60,
        Period=60,
        Statistics=["Sum", "SampleCount"],
    )["Datapoints"]
    return float(sum(p["Sum"] for p in points))


def test_metrics_land_in_cloudwatch_per_variant(cloud: Cloud) -> None:
    before = _metric_sum(cloud, "iris", "B", "Invocations")
    for _ in range(3):
        cloud.invoke("iris", TargetVariant="B")
    _eventually(lambda: _metric_sum(cloud, "iris", "B", "Invocations") >= before + 3)
    for metric in ("ModelLatency", "OverheadLatency"):
        assert _metric_sum(cloud, "iris", "B", metric) > 0
    assert _metric_sum(cloud, "iris", "A", "Invocations") > 0
    listed = cloud.client("cloudwatch").list_metrics(Namespace="AWS/SageMaker")["Metrics"]
    names = {m["MetricName"] for m in listed}
    assert names >= {
        "Invocations",
        "Invocation4XXErrors",
        "Invocation5XXErrors",
        "ModelLatency",
        "OverheadLatency",
    }


def test_fault_injection_gives_5xx_at_the_rate_asked_and_adds_latency(cloud: Cloud) -> None:
    n, rate = 200, 0.3
    errors_before = _metric_sum(cloud, "iris", "B", "Invocation5XXErrors")
    cloud.executor.inject_fault("iris", "B", error_rate=rate)
    try:

        def one(_: int) -> int:
            try:
                cloud.invoke("iris", rows=ROWS[:1], TargetVariant="B")
            except ClientError as exc:
                assert exc.response["Error"]["Code"] == "ModelError"
                return int(exc.response["OriginalStatusCode"])
            return 200

        with ThreadPoolExecutor(8) as pool:
            statuses = Counter(pool.map(one, range(n)))
        assert set(statuses) <= {200, 500}
        assert abs(statuses[500] - n * rate) <= 4 * math.sqrt(n * rate * (1 - rate)), statuses
        _eventually(
            lambda: (
                _metric_sum(cloud, "iris", "B", "Invocation5XXErrors")
                >= errors_before + statuses[500]
            )
        )
        cloud.executor.inject_fault("iris", "B", latency_ms=150)
        started = time.perf_counter()
        cloud.invoke("iris", TargetVariant="B")
        assert time.perf_counter() - started >= 0.15
    finally:
        cloud.executor.inject_fault("iris", "B")
    started = time.perf_counter()
    cloud.invoke("iris", TargetVariant="B")
    assert time.perf_counter() - started < 0.15


def test_a_model_that_cannot_load_fails_the_endpoint(cloud: Cloud, tmp_path: Path) -> None:
    cloud.add_model("iris-broken", b'{"format": "something-else"}', tmp_path)
    described = cloud.create_endpoint("iris-broken", {"A": ("iris-broken", 1.0)})
    assert described["EndpointStatus"] == "Failed"
    assert "failed to load" in described["FailureReason"]
    assert "not a modelops.iris.softmax-regression/1 model" in described["FailureReason"]


def test_delete_endpoint_stops_its_processes(cloud: Cloud) -> None:
    before = set(cloud.executor.server_pids())
    cloud.create_endpoint("iris-short-lived", {"A": ("iris-a", 1.0)})
    pids = set(cloud.executor.server_pids()) - before
    assert len(pids) == 1 and all(_alive(pid) for pid in pids)
    cloud.client("sagemaker").delete_endpoint(EndpointName="iris-short-lived")
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(ClientError):
        cloud.invoke("iris-short-lived")


def test_shutdown_leaves_no_processes(cloud: Cloud, tmp_path: Path) -> None:
    # A second executor on the same moto server, for the time of this test.
    cloud.executor.uninstall()
    other = EndpointExecutor(endpoint_url=cloud.endpoint_url, region=REGION, work_root=tmp_path)
    other.install()
    try:
        cloud.client("sagemaker").create_endpoint_config(
            EndpointConfigName="iris-doomed-config",
            ProductionVariants=[
                {"VariantName": v, "ModelName": "iris-a", "InstanceType": "ml.m5.large"}
                for v in ("A", "B")
            ],
        )
        cloud.client("sagemaker").create_endpoint(
            EndpointName="iris-doomed", EndpointConfigName="iris-doomed-config"
        )
        assert other.wait("iris-doomed", 60) == "InService"
        pids = other.server_pids()
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        other.shutdown()
        assert EndpointExecutor.installed() is None
        assert not any(_alive(pid) for pid in pids)
    finally:
        other.shutdown()
        cloud.executor.install()
