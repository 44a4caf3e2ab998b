"""``EndpointBackend`` and ``ServingTelemetry`` over SageMaker, Application Auto Scaling,
CloudWatch and data capture in S3 (boto3; the sagemaker SDK never runs in a Lambda)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from modelops import platform
from modelops.domain.serving import Autoscaling, VariantStats, captured_body, label_counts

NAMESPACE = "AWS/SageMaker"


def _missing(exc: ClientError) -> bool:
    message = exc.response.get("Error", {}).get("Message", "").lower()
    return any(p in message for p in ("could not find", "not found", "does not exist"))


class SageMakerHosting:
    def __init__(self, sagemaker: Any, autoscaling: Any) -> None:
        self._sagemaker = sagemaker
        self._autoscaling = autoscaling

    def ensure_model(
        self,
        name: str,
        image: str,
        model_data_url: str,
        role_arn: str,
        environment: Mapping[str, str],
    ) -> None:
        try:
            self._sagemaker.describe_model(ModelName=name)
            return
        except ClientError as exc:
            if not _missing(exc):
                raise
        self._sagemaker.create_model(
            ModelName=name,
            PrimaryContainer={
                "Image": image,
                "ModelDataUrl": model_data_url,
                "Environment": dict(environment),
            },
            ExecutionRoleArn=role_arn,
        )

    def create_endpoint_config(self, request: Mapping[str, Any]) -> None:
        try:
            self._sagemaker.create_endpoint_config(**request)
        except ClientError as exc:
            if "already exist" not in exc.response.get("Error", {}).get("Message", ""):
                raise

    def deploy(self, endpoint: str, config: str) -> None:
        current = self.describe(endpoint)
        if current is None:
            self._sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
        elif current.get("EndpointConfigName") != config:
            self._sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)

    def describe(self, endpoint: str) -> dict[str, Any] | None:
        try:
            described = dict(self._sagemaker.describe_endpoint(EndpointName=endpoint))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        described.pop("ResponseMetadata", None)
        return described

    def set_weights(self, endpoint: str, weights: Mapping[str, float]) -> None:
        self._sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=endpoint,
            DesiredWeightsAndCapacities=[
                {"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()
            ],
        )

    def autoscale(self, endpoint: str, variant: str, autoscaling: Autoscaling) -> None:
        """Target tracking on invocations per instance, plus scheduled pre-warm minimums."""
        resource = f"endpoint/{endpoint}/variant/{variant}"
        dimension = "sagemaker:variant:DesiredInstanceCount"
        self._autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=dimension,
            MinCapacity=autoscaling.minInstances,
            MaxCapacity=autoscaling.maxInstances,
        )
        self._autoscaling.put_scaling_policy(
            PolicyName=f"{endpoint}-{variant}-invocations",
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension=dimension,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(autoscaling.targetInvocationsPerInstance),
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
            },
        )
        for index, window in enumerate(autoscaling.prewarm):
            self._autoscaling.put_scheduled_action(
                ServiceNamespace="sagemaker",
                ScheduledActionName=f"{endpoint}-{variant}-prewarm-{index}",
                ResourceId=resource,
                ScalableDimension=dimension,
                Schedule=str(window["at"]),
                ScalableTargetAction={"MinCapacity": int(window["minInstances"])},
            )


class SageMakerVariants:
    """``ServingVariants``: which model each production variant of an endpoint serves now
    (its current endpoint config; models are named ``sagemaker_model_name(model_id)``)."""

    def __init__(self, sagemaker: Any) -> None:
        self._sagemaker = sagemaker

    def serving(self, endpoint: str) -> dict[str, str]:
        try:
            described = self._sagemaker.describe_endpoint(EndpointName=endpoint)
            config = self._sagemaker.describe_endpoint_config(
                EndpointConfigName=described["EndpointConfigName"]
            )
        except ClientError as exc:
            if _missing(exc):
                return {}
            raise
        return {
            str(v["VariantName"]): str(v["ModelName"]).removeprefix(platform.SERVING_PREFIX)
            for v in config.get("ProductionVariants") or ()
        }


class SageMakerTelemetry:
    def __init__(self, cloudwatch: Any, s3: Any, bucket: str) -> None:
        self._cloudwatch = cloudwatch
        self._s3 = s3
        self._bucket = bucket

    def variant_stats(
        self, endpoint: str, variant: str, start: datetime, end: datetime
    ) -> VariantStats:
        return VariantStats(
            invocations=int(self._sum(endpoint, variant, "Invocations", start, end)),
            errors5xx=int(self._sum(endpoint, variant, "Invocation5XXErrors", start, end)),
            p95Ms=self._p95_ms(endpoint, variant, start, end),
            labels=label_counts(self._captured_outputs(endpoint, variant, start)),
        )

    def _statistics(
        self, endpoint: str, variant: str, metric: str, start: datetime, end: datetime, **extra: Any
    ) -> list[dict[str, Any]]:
        seconds = max(60, int((end - start).total_seconds()) + 60)
        return list(
            self._cloudwatch.get_metric_statistics(
                Namespace=NAMESPACE,
                MetricName=metric,
                Dimensions=[
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": variant},
                ],
                StartTime=start,
                EndTime=end,
                Period=seconds - seconds % 60,
                **extra,
            )["Datapoints"]
        )

    def _sum(
        self, endpoint: str, variant: str, metric: str, start: datetime, end: datetime
    ) -> float:
        points = self._statistics(endpoint, variant, metric, start, end, Statistics=["Sum"])
        return sum(float(p.get("Sum") or 0) for p in points)

    def _p95_ms(self, endpoint: str, variant: str, start: datetime, end: datetime) -> float:
        points = self._statistics(
            endpoint, variant, "ModelLatency", start, end, ExtendedStatistics=["p95"]
        )
        values = [float((p.get("ExtendedStatistics") or {}).get("p95", 0)) for p in points]
        return max(values, default=0.0) / 1000  # ModelLatency is in microseconds

    def _captured_outputs(
        self, endpoint: str, variant: str, start: datetime
    ) -> list[dict[str, Any]]:
        """Captured responses (SageMaker's JSONL under capture/<endpoint>/<variant>/)."""
        prefix = f"capture/{endpoint}/{variant}/"
        outputs: list[dict[str, Any]] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix
        ):
            for item in page.get("Contents", ()):
                if item["LastModified"] < start:
                    continue
                body = self._s3.get_object(Bucket=self._bucket, Key=item["Key"])["Body"].read()
                for line in body.decode("utf-8").splitlines():
                    output = json.loads(line)["captureData"].get("endpointOutput") or {}
                    if "json" in str(output.get("observedContentType", "")):
                        outputs.append(json.loads(captured_body(output)))
        return outputs
