"""Compute in the service stack: the compute API's routes, the pool configuration as the
functions receive it (validated at synth, within Lambda's 4 KB environment), and the quota
alarms with their encrypted topic."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from modelops import platform
from modelops.domain.pools import PoolConfig
from stacks.constructs.python_function import ENVIRONMENT_LIMIT, RESOLVED_VALUE_BOUND
from stacks.constructs.quota_alarms import REPORTERS, quota_holders
from stacks.environment import project_context

from .conftest import Synthesized
from .test_service_stack import _data, _function, _logical_id, _resources, _service

COMPUTE_POOLS = project_context()["computePools"]
POOL_PARAMETERS = (platform.COMPUTE_POOLS_PARAMETER, platform.TEAM_BINDINGS_PARAMETER)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _environment(synth: Synthesized, template: Template, name: str) -> dict[str, Any]:
    fn = _function(synth, platform.function(name)).function
    variables: dict[str, Any] = _resources(template)[_logical_id(synth, fn)]["Properties"][
        "Environment"
    ]["Variables"]
    return variables


# --- The compute API ----------------------------------------------------------------------


def test_compute_and_cost_routes_proxy_every_method_to_the_compute_api(
    synth: Synthesized, service_template: Template
) -> None:
    api = _service(synth).api
    compute_api = _function(synth, platform.COMPUTE_API).function
    function_arn = {"Fn::GetAtt": [_logical_id(synth, compute_api), "Arn"]}
    resources = _resources(service_template)

    for path in ("compute", "compute/{proxy+}", "cost", "cost/{proxy+}"):
        resource: Any = api.root
        for part in path.split("/"):
            resource = resource.get_resource(part)
            assert resource is not None, path
        resource_id = _logical_id(synth, resource)
        (method,) = (
            r["Properties"]
            for r in resources.values()
            if r["Type"] == "AWS::ApiGateway::Method"
            and r["Properties"]["ResourceId"] == {"Ref": resource_id}
        )
        assert method["HttpMethod"] == "ANY", path
        assert method["AuthorizationType"] == "AWS_IAM", path
        assert method["Integration"]["Type"] == "AWS_PROXY", path
        assert function_arn in method["Integration"]["Uri"]["Fn::Join"][1], path


# --- Pool configuration -------------------------------------------------------------------


def test_pool_parameters_go_to_the_training_compute_and_reconcile_functions() -> None:
    holders = {s.name for s in platform.FUNCTIONS if set(POOL_PARAMETERS) <= set(s.parameters)}
    assert holders == {
        platform.TRAINING_API.name,
        platform.COMPUTE_API.name,
        platform.COMPUTE_RECONCILE.name,
        *(s.name for s in platform.TRAINING_FUNCTIONS),
        # retrain proposals estimate GPU-hours and cost
        *(s.name for s in platform.DRIFT_FUNCTIONS),
    }


def test_functions_get_the_pools_and_the_environments_team_bindings_as_compact_json(
    synth: Synthesized, service_template: Template
) -> None:
    team_bindings = project_context()["environments"]["dev"]["teamBindings"]
    for spec in platform.FUNCTIONS:
        variables = _environment(synth, service_template, spec.name)
        if platform.COMPUTE_POOLS_PARAMETER not in spec.parameters:
            assert not set(POOL_PARAMETERS) & set(variables), spec.name
            continue
        assert variables[platform.COMPUTE_POOLS_PARAMETER] == _compact(COMPUTE_POOLS)
        assert variables[platform.TEAM_BINDINGS_PARAMETER] == _compact(team_bindings)
        parsed = PoolConfig.parse(
            variables[platform.COMPUTE_POOLS_PARAMETER],
            variables[platform.TEAM_BINDINGS_PARAMETER],
        )
        assert parsed == _data(synth).settings.pools


def test_every_function_environment_fits_in_lambdas_4_kb(
    synth: Synthesized, service_template: Template
) -> None:
    for spec in platform.FUNCTIONS:
        variables = _environment(synth, service_template, spec.name)
        # What CloudFormation fills in (names, ARNs) is counted at its bound.
        size = sum(
            len(name) + (len(value.encode()) if isinstance(value, str) else RESOLVED_VALUE_BOUND)
            for name, value in variables.items()
        )
        assert size <= ENVIRONMENT_LIMIT, (spec.name, size)


def _with_pool(change: dict[str, Any]) -> dict[str, Any]:
    """cdk.json's pools with gpu-us-east's fields updated by ``change``."""
    pools = copy.deepcopy(COMPUTE_POOLS)
    pools["gpu-us-east"].update(change)
    return pools


@pytest.mark.parametrize(
    ("pools", "message"),
    [
        (
            _with_pool({"instanceTypes": ["ml.g5.xlarge", "ml.nope.xlarge"]}),
            r"computePools\.gpu-us-east: .*unknown instance types \['ml\.nope\.xlarge'\]",
        ),
        (
            _with_pool({"rates": {}}),
            r"computePools\.gpu-us-east: .*pool gpu-us-east: no rate for",
        ),
        (
            _with_pool({"quota": {"gpuHoursPerTeam": {"default": 1}, "maxConcurrentGpus": -1}}),
            r"computePools\.gpu-us-east\.quota\.maxConcurrentGpus: Input should be greater",
        ),
        (_with_pool({"region": None}), r"computePools\.gpu-us-east\.region: "),
        ({"gpu": "ml.g5.xlarge"}, r"computePools\.gpu must be a JSON object"),
        ({"GPU pool": COMPUTE_POOLS["gpu-us-east"]}, r"computePools\.GPU pool\.name: "),
        ([], r"computePools must be a JSON object"),
    ],
    ids=["instance-type", "rate", "quota", "region", "not-an-object", "name", "not-pools"],
)
def test_a_bad_pool_configuration_fails_synth_naming_what_is_wrong(
    pools: Any, message: str
) -> None:
    from app import build_app

    with pytest.raises(ValueError, match=message):
        build_app(context={"computePools": pools})


def test_team_bindings_must_map_patterns_to_team_names() -> None:
    from app import build_app

    environments = copy.deepcopy(project_context()["environments"])
    environments["dev"]["teamBindings"] = {"arn:aws:sts::*:assumed-role/X/*": ["kernel"]}

    with pytest.raises(
        ValueError, match=r"teamBindings\.arn:aws:sts::\*:assumed-role/X/\*: Input should be"
    ):
        build_app(context={"environments": environments})


def test_pools_too_large_for_lambdas_environment_fail_synth(
    layer_site: Path, tmp_path: Path
) -> None:
    from app import build_app

    pools = {f"gpu-{n}": COMPUTE_POOLS["gpu-us-east"] for n in range(6)}

    with pytest.raises(ValueError, match=r"over Lambda's 4096 \(largest: COMPUTE_POOLS\)"):
        build_app(outdir=str(tmp_path), context={"computePools": pools})


# --- Quota alarms -------------------------------------------------------------------------


def _pools(**quotas: dict[str, Any]) -> PoolConfig:
    """One pool per keyword (name with _ for -), offering ml.g5.xlarge, with that quota."""
    rates = {"ml.g5.xlarge": {"onDemand": 1, "spot": 0.3}}
    pools = {
        name.replace("_", "-"): {
            "region": "us-east-1",
            "instanceTypes": ["ml.g5.xlarge"],
            "quota": quota,
            "rates": rates,
        }
        for name, quota in quotas.items()
    }
    return PoolConfig.parse(_compact(pools), _compact({"arn:a": "kernel", "arn:b": "vision"}))


def test_quota_holders_are_the_teams_named_or_bound_with_gpu_hours_in_a_pool_with_gpus() -> None:
    pools = _pools(
        gpu_a={"gpuHoursPerTeam": {"default": 10, "research": 500}, "maxConcurrentGpus": 8},
        gpu_b={"gpuHoursPerTeam": {"default": 0, "vision": 40}, "maxConcurrentGpus": 4},
        no_gpus={"gpuHoursPerTeam": {"default": 10}, "maxConcurrentGpus": 0},
        none={"gpuHoursPerTeam": {"default": 0}, "maxConcurrentGpus": 16},
    )

    assert quota_holders(pools) == [
        ("gpu-a", "kernel"),
        ("gpu-a", "research"),
        ("gpu-a", "vision"),
        ("gpu-b", "vision"),
    ]


def test_quota_reporters_are_the_compute_steps() -> None:
    assert set(REPORTERS) == {"train-request-compute", "train-release-compute"}
    assert set(REPORTERS) <= set(platform.TRAINING_TASKS)


def test_quota_alarms_at_80_and_100_percent_for_every_pool_team_and_reporter(
    synth: Synthesized, service_template: Template
) -> None:
    holders = quota_holders(_data(synth).settings.pools)
    topic = {"Ref": _logical_id(synth, _service(synth).quota_alarms.topic)}
    alarms = [
        r["Properties"]
        for r in _resources(service_template).values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        # the drift alarm (test_drift_stack) and the operations alarms (test_observability)
        # watch other metrics
        and r["Properties"].get("MetricName") == "QuotaUsedPercent"
    ]
    operators = {"Ref": _logical_id(synth, _service(synth).observability.topic)}

    # cdk.json: the GPU pools' teams; cpu-standard has no GPU-hours for anyone.
    assert {pool for pool, _ in holders} == {"gpu-us-east", "gpu-europe"}
    assert {team for _, team in holders} == {"kernel", "ml-research", "platform"}
    found = set()
    for alarm in alarms:
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert set(dimensions) == {"service", "pool", "team"}
        found.add(
            (dimensions["pool"], dimensions["team"], dimensions["service"], alarm["Threshold"])
        )
        assert alarm["Namespace"] == "ILLUVRSE/ModelOps"
        assert alarm["MetricName"] == "QuotaUsedPercent"
        assert alarm["Statistic"] == "Maximum"
        assert alarm["Period"] == 300
        assert alarm["EvaluationPeriods"] == 1
        assert alarm["DatapointsToAlarm"] == 1
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        # exhausted quotas notify operators too (stacks/constructs/observability.py)
        assert alarm["AlarmActions"] == (
            [topic, operators] if alarm["Threshold"] == 100 else [topic]
        )
    assert len(found) == len(alarms)
    assert found == {
        (pool, team, reporter, threshold)
        for pool, team in holders
        for reporter in ("train-request-compute", "train-release-compute")
        for threshold in (80, 100)
    }


def test_quota_alarm_topic_is_encrypted_with_its_own_rotating_key_and_admits_only_alarms(
    synth: Synthesized, service_template: Template
) -> None:
    alarms = _service(synth).quota_alarms
    resources = _resources(service_template)
    key_id = _logical_id(synth, alarms.key)
    topic_id = _logical_id(synth, alarms.topic)
    key = resources[key_id]["Properties"]
    account = {"Ref": "AWS::AccountId"}

    assert resources[topic_id]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = (s for s in key["KeyPolicy"]["Statement"] if "Service" in s["Principal"])
    assert cloudwatch == {
        "Effect": "Allow",
        "Principal": {"Service": "cloudwatch.amazonaws.com"},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": {"StringEquals": {"aws:SourceAccount": account}},
    }
    (policy,) = (
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::SNS::TopicPolicy" and r["Properties"]["Topics"] == [{"Ref": topic_id}]
    )
    statements = {s["Effect"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["Deny"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allow = statements["Allow"]
    assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert allow["Action"] == "sns:Publish"
    assert allow["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Join"][1][-1] == ":alarm:*"
    assert service_template.to_json()["Outputs"]["QuotaAlarmsTopicArn"]["Value"] == {
        "Ref": topic_id
    }
