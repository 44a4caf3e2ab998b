"""schemathesis against the running local API, from the committed OpenAPI document: no 5xx,
responses conform to the schema, invalid input is rejected with 4xx.

The positive-data check (schema-valid input must be accepted) is left out: part of what the
API validates depends on stored state or on lists a schema cannot carry (an artifact must
exist, an SPDX licence id must be known, a pagination token must be one we issued), and
those answers are documented 4xx responses."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from localcloud.cloud import LocalCloud
from modelops_cli.client import SigV4RequestAuth

OPENAPI = Path(__file__).resolve().parents[2] / "schemas" / "openapi.json"


# schemathesis' pytest plugin (4.32) does not run under pytest 9, so the operations are
# parametrized here and each one is driven by hypothesis through schemathesis' strategies.
SCHEMA = schemathesis.openapi.from_path(OPENAPI)
OPERATIONS = {result.ok().label: result.ok() for result in SCHEMA.get_all_operations()}


@pytest.fixture(scope="module")
def sigv4(local_cloud: LocalCloud) -> SigV4RequestAuth:
    engineer = local_cloud.principals["ml-engineer"]
    credentials = Credentials(engineer.access_key_id, engineer.secret_access_key)
    return SigV4RequestAuth(credentials, local_cloud.region)


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_operation_answers_without_5xx_and_conforms_to_the_schema(
    label: str, local_cloud: LocalCloud, sigv4: SigV4RequestAuth
) -> None:
    statuses: list[int] = []

    @settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=OPERATIONS[label].as_strategy())
    def exercise(case: schemathesis.Case) -> None:
        # Raises on a 5xx, an undocumented status, a body or header off the schema, or
        # schema-invalid input that was accepted.
        response = case.call_and_validate(
            base_url=local_cloud.api_url, auth=sigv4, excluded_checks=[positive_data_acceptance]
        )
        statuses.append(response.status_code)

    exercise()
    assert statuses and max(statuses) < 500
