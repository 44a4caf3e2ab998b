"""schemathesis against the running local API, from the committed OpenAPI document: no 5xx,
responses conform to the schema, invalid input is rejected with 4xx.

The positive-data check (schema-valid input must be accepted) is left out: part of what the
API validates depends on stored state or on lists a schema cannot carry (an artifact must
exist, an SPDX licence id must be known, a pagination token must be one we issued), and
those answers are documented 4xx responses."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest
import requests
import schemathesis
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from localcloud.cloud import LocalCloud

OPENAPI = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"


class SigV4RequestsAuth(requests.auth.AuthBase):
    """Signs a prepared request the way the AWS SDKs do (service execute-api)."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        session = botocore.session.Session()
        session.set_credentials(access_key, secret_key)
        self._credentials = session.get_credentials()
        self._region = region

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}
        aws = AWSRequest(
            method=request.method, url=request.url, data=request.body or b"", headers=headers
        )
        SigV4Auth(self._credentials, "execute-api", self._region).add_auth(aws)
        for name in ("Authorization", "X-Amz-Date"):
            request.headers[name] = aws.headers[name]
        return request


# schemathesis' pytest plugin (4.32) does not run under pytest 9, so the operations are
# parametrized here and each one is driven by hypothesis through schemathesis' strategies.
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


@pytest.fixture(scope="module")
def sigv4(local_cloud: LocalCloud) -> SigV4RequestsAuth:
    engineer = local_cloud.principals["ml-engineer"]
    return SigV4RequestsAuth(engineer.access_key_id, engineer.secret_access_key, local_cloud.region)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_answers_without_5xx_and_conforms_to_the_schema(
    label: str, local_cloud: LocalCloud, sigv4: SigV4RequestsAuth
) -> None:
    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=OPERATIONS[label].as_strategy())
    def exercise(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=local_cloud.api_url, auth=sigv4, excluded_checks=[positive_data_acceptance]
        )

    exercise()
