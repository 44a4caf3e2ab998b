"""The AWS mode of the e2e suite (``tests/e2e/deployed.py``) without AWS: when it runs,
where its API URL comes from, and what a run cleans up."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.e2e import deployed


def test_the_aws_run_is_skipped_with_its_reason_unless_a_stack_or_url_is_given() -> None:
    assert "MODELOPS_E2E_STACK" in str(deployed.skip_reason({}))
    assert deployed.skip_reason({"MODELOPS_E2E_STACK": "modelops-dev"}) is None
    assert deployed.skip_reason({"MODELOPS_E2E_API_URL": "https://x"}) is None
    assert deployed.target_from_env({}) is None


def test_ci_never_runs_the_suite_against_aws_even_with_a_stack() -> None:
    environ = {"MODELOPS_E2E_STACK": "modelops-dev", "CI": "true"}
    assert "CI" in str(deployed.skip_reason(environ))
    assert deployed.target_from_env(environ) is None


class FakeCloudFormation:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # noqa: N803
        self.asked.append(StackName)
        return {
            "Stacks": [
                {
                    "Outputs": [
                        {"OutputKey": "QuotaAlarmsTopicArn", "OutputValue": "arn:aws:sns:..."},
                        {"OutputKey": "ApiEndpoint4F160690", "OutputValue": "https://api/v1/"},
                    ]
                }
            ]
        }


class FakeSession:
    def __init__(self, profile: str | None) -> None:
        self.profile = profile
        self.region_name = "eu-west-1"
        self.cloudformation = FakeCloudFormation()

    def client(self, service: str) -> Any:
        assert service == "cloudformation"
        return self.cloudformation


def test_the_api_url_is_the_service_stacks_api_endpoint_output_and_profiles_go_by_role() -> None:
    sessions: list[FakeSession] = []

    def session_for(profile: str | None) -> FakeSession:
        sessions.append(FakeSession(profile))
        return sessions[-1]

    target = deployed.target_from_env(
        {
            "MODELOPS_E2E_STACK": "modelops-dev",
            "MODELOPS_E2E_PROFILE_ML_ENGINEER": "eng",
            "MODELOPS_E2E_PROFILE_APPROVER_2": "second",
        },
        session_for,
    )

    assert target is not None and target.api_url == "https://api/v1/"
    assert sessions[0].profile == "eng"
    assert sessions[0].cloudformation.asked == ["modelops-dev-service"]
    assert target.profiles["approver-2"] == "second" and target.profiles["approver"] is None
    assert target.region == "eu-west-1"


def _response(body: Any, status: int = 202) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_a_run_remembers_the_jobs_and_deployments_it_started() -> None:
    run = deployed.Run()
    run.remember("/train/jobs", _response({"jobId": "trn-1", "status": "QUEUED"}))
    run.remember("/train/jobs/trn-1/reproduce", _response({"jobId": "trn-2"}))
    run.remember("/eval/run", _response({"jobId": "trn-3"}))
    run.remember("/serve/deploy", _response({"deployId": "dep-1"}))
    run.remember("/train/jobs/trn-1/cancel", _response({"jobId": "trn-1"}))
    run.remember("/models/register", _response({"model": {}}))
    assert run.jobs == ["trn-1", "trn-2", "trn-3"]
    assert run.deployments == ["dep-1"]
    assert run.correlation_id == f"e2e-{run.run_id}"


class FakeApi:
    def __init__(self, jobs: dict[str, str], endpoints: dict[str, str]) -> None:
        self.jobs, self.endpoints = jobs, endpoints
        self.cancelled: list[str] = []

    def call(self, method: str, path: str, body: Any = None, **_: Any) -> Any:
        parts = path.strip("/").split("/")
        if method == "POST" and parts[-1] == "cancel":
            self.cancelled.append(parts[2])
            return {}
        if parts[:2] == ["train", "jobs"]:
            return {"status": self.jobs[parts[2]]}
        return {"endpointName": self.endpoints[parts[1]]}


class NoSuchEndpointError(Exception):
    pass


class FakeSageMaker:
    class exceptions:  # noqa: N801 (boto3's attribute name)
        ClientError = NoSuchEndpointError

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete_endpoint(self, EndpointName: str) -> None:  # noqa: N803
        if EndpointName == "gone":
            raise NoSuchEndpointError("Could not find endpoint gone")
        self.deleted.append(EndpointName)


def test_cleanup_cancels_unfinished_jobs_and_deletes_the_runs_endpoints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = deployed.Run(jobs=["trn-1", "trn-2", "trn-1"], deployments=["dep-1", "dep-2"])
    api = FakeApi({"trn-1": "TRAINING", "trn-2": "COMPLETED"}, {"dep-1": "ep-1", "dep-2": "gone"})
    sagemaker = FakeSageMaker()

    done = run.cleanup(api, sagemaker)  # type: ignore[arg-type]

    assert api.cancelled == ["trn-1"]  # once, and only the unfinished one
    assert sagemaker.deleted == ["ep-1"]  # one already gone is no failure
    assert len(done) == 2 and run.correlation_id in capsys.readouterr().err
