"""``Workflow`` over Step Functions: one execution per training job, named by its id."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError


class StepFunctionsWorkflow:
    def __init__(self, client: Any, state_machine_arn: str | None) -> None:
        """``state_machine_arn`` is None in functions that only read jobs."""
        self._sfn = client
        self._state_machine = state_machine_arn

    @property
    def _arn(self) -> str:
        if not self._state_machine:
            raise RuntimeError("this function is not configured to start training workflows")
        return self._state_machine

    def execution_arn(self, name: str) -> str:
        """Execution ARNs are the state machine's with ``execution`` and the name."""
        return f"{self._arn.replace(':stateMachine:', ':execution:', 1)}:{name}"

    def start(self, name: str, payload: Mapping[str, Any]) -> None:
        try:
            self._sfn.start_execution(
                stateMachineArn=self._arn,
                name=name,
                input=json.dumps(payload, separators=(",", ":")),
            )
        except ClientError as exc:
            # Same name and input again (a retry): Step Functions keeps the first execution.
            if exc.response.get("Error", {}).get("Code") != "ExecutionAlreadyExists":
                raise

    def running(self, execution_arn: str) -> bool:
        try:
            described = self._sfn.describe_execution(executionArn=execution_arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return False
            raise
        return bool(described["status"] == "RUNNING")
