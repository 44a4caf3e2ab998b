"""``TrainingBackend`` over SageMaker (boto3; the sagemaker SDK never runs in a Lambda)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from modelops.ports import AlreadyExists


class SageMakerTraining:
    def __init__(self, client: Any) -> None:
        self._sagemaker = client

    def create(self, request: Mapping[str, Any]) -> None:
        try:
            self._sagemaker.create_training_job(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ResourceInUse" or "already exists" in error.get("Message", ""):
                raise AlreadyExists(str(request["TrainingJobName"])) from exc
            raise

    def describe(self, name: str) -> dict[str, Any] | None:
        try:
            response = dict(self._sagemaker.describe_training_job(TrainingJobName=name))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            message = error.get("Message", "").lower()
            missing = ("not found", "could not find", "does not exist")
            if error.get("Code") in {"ValidationException", "ResourceNotFound"} and any(
                phrase in message for phrase in missing
            ):
                return None
            raise
        response.pop("ResponseMetadata", None)
        return response

    def stop(self, name: str) -> None:
        try:
            self._sagemaker.stop_training_job(TrainingJobName=name)
        except ClientError as exc:
            # Stopping a job that already ended is not an error for the caller.
            if exc.response.get("Error", {}).get("Code") != "ValidationException":
                raise
