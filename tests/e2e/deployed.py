"""Running the e2e suite against a deployed stack in real AWS, and cleaning up after it.

Off unless asked for: ``target_from_env()`` is None (the suite's AWS run is skipped, with
the reason) unless ``MODELOPS_E2E_STACK`` (the environment's stack prefix, e.g.
``modelops-dev``: the API URL is the ``ApiEndpoint...`` output of ``<prefix>-service``) or
``MODELOPS_E2E_API_URL`` is set, and never when ``CI`` is set: CI has no AWS credentials and
runs the suite against the local cloud only.

Credentials come from the standard AWS chain; ``MODELOPS_E2E_PROFILE_<ROLE>`` (``ML_ENGINEER``,
``PLATFORM_ADMIN``, ``APPROVER``, ``APPROVER_2``, ``KERNEL``) names a profile per platform
role. Without a profile for every role the governance part needs, only the engineer's part
runs.

Every request of a run carries ``X-Correlation-Id: e2e-<run id>``: the audit records, events
and SageMaker job tags (``modelops:correlation-id``) of what the run did carry it, so they can
be told apart from anyone else's. ``RunClient`` remembers the training jobs and deployments
the run started; ``cleanup`` stops the jobs still running (``POST /train/jobs/{id}/cancel``)
and deletes the SageMaker endpoints of the deployments (with the operator's credentials, as
the platform has no route that deletes one).
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests

from modelops_cli.client import ModelOpsClient

# Platform roles (modelops.domain.access.Role, plus the second approver) by principal name.
ROLES = ("ml-engineer", "platform-admin", "approver", "approver-2", "kernel")
# What the governance part of the suite (demo.run_trust_flow) acts as.
TRUST_ROLES = ("ml-engineer", "platform-admin", "approver", "approver-2")
TERMINAL_JOB_STATUSES = {"COMPLETED", "FAILED", "CANCELLED"}
_JOB_PATHS = re.compile(r"^/(train/jobs|train/jobs/[^/]+/reproduce|eval/run|train/retrain)$")


@dataclass(frozen=True)
class Target:
    """Where the suite runs in AWS: the API, and the profile of each role given."""

    api_url: str
    profiles: Mapping[str, str | None]
    region: str | None
    stack: str | None = None


def skip_reason(environ: Mapping[str, str] = os.environ) -> str | None:
    """Why the AWS run does not happen (None: it does)."""
    if not (environ.get("MODELOPS_E2E_STACK") or environ.get("MODELOPS_E2E_API_URL")):
        return (
            "not run against AWS: set MODELOPS_E2E_STACK (e.g. modelops-dev) or "
            "MODELOPS_E2E_API_URL, with AWS credentials, to run the suite against a deployed "
            "stack"
        )
    if environ.get("CI"):
        return "never run against AWS in CI (CI has no AWS credentials)"
    return None


def profile_variable(role: str) -> str:
    return "MODELOPS_E2E_PROFILE_" + role.upper().replace("-", "_")


def api_url_of_stack(cloudformation: Any, stack: str) -> str:
    """The API URL output (``ApiEndpoint...``) of the stack prefix's service stack."""
    name = stack if stack.endswith("-service") else f"{stack}-service"
    (described,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
    for output in described.get("Outputs", []):
        if str(output["OutputKey"]).startswith("ApiEndpoint"):
            return str(output["OutputValue"])
    raise LookupError(f"stack {name} has no ApiEndpoint output")


def target_from_env(
    environ: Mapping[str, str] = os.environ,
    session_for: Callable[[str | None], Any] | None = None,
) -> Target | None:
    if skip_reason(environ) is not None:
        return None

    def default_session(profile: str | None) -> Any:
        return boto3.session.Session(profile_name=profile)

    session_for = session_for or default_session
    profiles = {role: environ.get(profile_variable(role)) for role in ROLES}
    stack = environ.get("MODELOPS_E2E_STACK")
    engineer = session_for(profiles["ml-engineer"])
    url = environ.get("MODELOPS_E2E_API_URL") or api_url_of_stack(
        engineer.client("cloudformation"), str(stack)
    )
    return Target(api_url=url, profiles=profiles, region=engineer.region_name, stack=stack)


class RunClient(ModelOpsClient):
    """A client whose every request carries the run's correlation id, and which remembers
    the training jobs and deployments it started."""

    def __init__(self, *args: Any, correlation_id: str, run: Run, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.correlation_id = correlation_id
        self._run = run

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        headers = {"X-Correlation-Id": self.correlation_id, **(headers or {})}
        response = super().send(method, path, body, query, headers)
        if method == "POST" and response.status_code < 300:
            self._run.remember(path, response)
        return response


@dataclass
class Run:
    """One run of the suite: its id, its clients by role, what it started."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    jobs: list[str] = field(default_factory=list)
    deployments: list[str] = field(default_factory=list)

    @property
    def correlation_id(self) -> str:
        return f"e2e-{self.run_id}"

    def client(self, api_url: str, session: Any, region: str | None = None) -> RunClient:
        return RunClient(
            api_url, session, region, correlation_id=self.correlation_id, run=self, timeout_s=120
        )

    def remember(self, path: str, response: requests.Response) -> None:
        try:
            answer = response.json()
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        if path == "/serve/deploy" and answer.get("deployId"):
            self.deployments.append(str(answer["deployId"]))
        elif _JOB_PATHS.match(path) and answer.get("jobId"):
            self.jobs.append(str(answer["jobId"]))

    def cleanup(self, client: ModelOpsClient, sagemaker: Any | None) -> list[str]:
        """Stop the run's unfinished jobs, delete its deployments' endpoints; says what."""
        done = []
        for job_id in dict.fromkeys(self.jobs):
            status = client.call("GET", f"/train/jobs/{job_id}")["status"]
            if status not in TERMINAL_JOB_STATUSES and status != "CANCELLING":
                client.call("POST", f"/train/jobs/{job_id}/cancel")
                done.append(f"cancelled {job_id} (was {status})")
        for deploy_id in dict.fromkeys(self.deployments):
            endpoint = client.call("GET", f"/serve/{deploy_id}").get("endpointName")
            if sagemaker is None or not endpoint:
                continue
            try:
                sagemaker.delete_endpoint(EndpointName=endpoint)
                done.append(f"deleted endpoint {endpoint} of {deploy_id}")
            except sagemaker.exceptions.ClientError as error:
                if "Could not find endpoint" not in str(error):
                    raise
        for line in done:
            print(f"e2e cleanup ({self.correlation_id}): {line}", file=sys.stderr)
        return done


def principal_arn(session: Any) -> str:
    """The ARN the API sees for this session (an assumed role's session ARN)."""
    return str(session.client("sts").get_caller_identity()["Arn"])
