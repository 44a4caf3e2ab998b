"""Deployments against in-memory ports: the gate, canary steps, analysis, rollback, scale."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pytest

from modelops.domain.access import Caller
from modelops.domain.entities import ModelStatus
from modelops.domain.ledger import AuditEvent
from modelops.domain.serving import (
    Autoscaling,
    DeploymentStatus,
    DeployRequest,
    VariantStats,
)
from modelops.errors import DeploymentRefused, Forbidden, InvalidState, ValidationFailed
from modelops.services.serving import DeploymentService, ServingSettings
from tests.unit.fakes import MemoryDeployments, MemoryPublisher
from tests.unit.test_promotion_service import ENGINEER, Setup
from tests.unit.test_serving_gate import _stored
from tests.unit.test_training_service import FakeWorkflow

READER = Caller("arn:aws:iam::123456789012:user/reader", frozenset())


class FakeHosting:
    def __init__(self) -> None:
        self.models: dict[str, str] = {}
        self.environments: dict[str, dict[str, str]] = {}
        self.configs: dict[str, Mapping[str, Any]] = {}
        self.endpoints: dict[str, str] = {}
        self.weights: dict[str, dict[str, float]] = {}
        self.scaling: list[tuple[str, str, Autoscaling]] = []

    def ensure_model(
        self,
        name: str,
        image: str,
        model_data_url: str,
        role_arn: str,
        environment: Mapping[str, str],
    ) -> None:
        self.models[name] = model_data_url
        self.environments[name] = dict(environment)

    def create_endpoint_config(self, request: Mapping[str, Any]) -> None:
        self.configs[str(request["EndpointConfigName"])] = request

    def deploy(self, endpoint: str, config: str) -> None:
        self.endpoints[endpoint] = config
        self.weights[endpoint] = {
            v["VariantName"]: v["InitialVariantWeight"]
            for v in self.configs[config]["ProductionVariants"]
        }

    def describe(self, endpoint: str) -> dict[str, Any] | None:
        if endpoint not in self.endpoints:
            return None
        return {"EndpointStatus": "InService", "EndpointConfigName": self.endpoints[endpoint]}

    def set_weights(self, endpoint: str, weights: Mapping[str, float]) -> None:
        self.weights[endpoint] |= dict(weights)

    def autoscale(self, endpoint: str, variant: str, autoscaling: Autoscaling) -> None:
        self.scaling.append((endpoint, variant, autoscaling))


class FakeTelemetry:
    def __init__(self) -> None:
        self.stats: dict[str, VariantStats] = {}

    def variant_stats(
        self, endpoint: str, variant: str, start: datetime, end: datetime
    ) -> VariantStats:
        return self.stats.get(variant, VariantStats(invocations=0, errors5xx=0))


class World(Setup):
    def __init__(self) -> None:
        super().__init__()
        self.deployments = MemoryDeployments()
        self.hosting = FakeHosting()
        self.telemetry = FakeTelemetry()
        self.deploy_workflow = FakeWorkflow()
        self.publisher = MemoryPublisher()
        self.events = self.publisher.published
        self.audit: list[AuditEvent] = []
        self.serving = DeploymentService(
            deployments=self.deployments,
            registry=self.repo,
            gate=self.gate(),
            blobs=self.blobs,
            backend=self.hosting,
            telemetry=self.telemetry,
            workflow=self.deploy_workflow,
            publish=self.publisher,
            audit=self.audit.append,
            clock=self.clock,
            settings=ServingSettings(
                bucket="b", role_arn="arn:aws:iam::1:role/r", image="img", poll_seconds=1
            ),
        )

    def prod_model(self, version: str) -> str:
        model_id = self.model(version, 0.95)
        _stored(self, model_id)
        self.promote(model_id, ModelStatus.STAGING)
        self.promote(model_id, ModelStatus.PROD)
        return model_id

    def deploy(self, model_id: str, **fields: Any) -> str:
        request = DeployRequest.model_validate(
            {"modelId": model_id, "env": "prod", "route": "iris", **fields}
        )
        return self.serving.deploy(request, ENGINEER, "corr-1").deployId

    def run(self, deploy_id: str) -> None:
        """What the state machine does, step by step."""
        self.serving.create(deploy_id)
        self.serving.start_bake(deploy_id)
        attempt = 1
        while True:
            verdict = self.serving.analyse(deploy_id, attempt)
            attempt = verdict.get("attempt", attempt)
            if verdict["verdict"] == "rollback":
                self.serving.rollback(deploy_id)
                return
            if (
                verdict["verdict"] == "promote"
                and self.serving.promote(deploy_id)["next"] == "done"
            ):
                return


@pytest.fixture
def world() -> World:
    return World()


def _healthy(n: int = 200) -> VariantStats:
    return VariantStats(invocations=n, errors5xx=0, p95Ms=10, labels={"a": n // 2, "b": n // 2})


def test_the_first_deployment_takes_all_traffic_and_goes_live(world: World) -> None:
    deploy_id = world.deploy(world.prod_model("1.0.0"))
    world.run(deploy_id)
    record = world.serving.get(deploy_id)
    assert record.status is DeploymentStatus.IN_SERVICE
    assert world.hosting.weights[record.endpointName] == {"canary": 100.0}
    assert world.deployments.live[record.endpointName] == deploy_id
    assert record.provenance.signedStage == "prod" and record.provenance.signatureKeyId
    assert world.hosting.models[record.canary.sagemakerModel].endswith("/model.tar.gz")
    assert world.hosting.scaling[0][1] == "canary"
    provenance = world.hosting.environments[record.canary.sagemakerModel]
    assert provenance["MODELOPS_MODEL_ID"] == record.modelId
    assert provenance["MODELOPS_ROOT_DIGEST"] == record.provenance.artifactRootDigest


def test_a_good_canary_is_promoted_to_all_traffic_and_supersedes_the_old_version(
    world: World,
) -> None:
    first = world.deploy(world.prod_model("1.0.0"))
    world.run(first)
    world.telemetry.stats = {"baseline": _healthy(900), "canary": _healthy(100)}
    second = world.deploy(world.prod_model("1.1.0"), canary={"canaryPercent": 10})
    record = world.serving.get(second)
    assert {v.name: v.weight for v in record.variants} == {"canary": 10.0, "baseline": 90.0}
    world.run(second)
    assert world.serving.get(second).status is DeploymentStatus.IN_SERVICE
    assert world.hosting.weights[record.endpointName] == {"canary": 100.0, "baseline": 0.0}
    assert world.serving.get(first).status is DeploymentStatus.SUPERSEDED
    decisions = [e for e in world.audit if e.action == "serve.canary.promote"]
    assert decisions and decisions[0].details["canaryInvocations"] == "100"


def test_a_canary_that_errors_is_rolled_back_with_its_evidence(world: World) -> None:
    first = world.deploy(world.prod_model("1.0.0"))
    world.run(first)
    world.telemetry.stats = {
        "baseline": _healthy(900),
        "canary": VariantStats(invocations=100, errors5xx=20, p95Ms=10, labels={"a": 50, "b": 50}),
    }
    second = world.deploy(world.prod_model("1.1.0"))
    world.run(second)
    record = world.serving.get(second)
    assert record.status is DeploymentStatus.ROLLED_BACK
    assert "error rate 0.200" in record.statusReason
    assert world.hosting.weights[record.endpointName] == {"canary": 0.0, "baseline": 100.0}
    assert world.deployments.live[record.endpointName] == first
    (event,) = [d for kind, d in world.events if kind == "Deployment Rolled Back"]
    assert event["restoredModelId"] == world.serving.get(first).modelId


def test_a_canary_without_traffic_is_rolled_back_after_its_bakes(world: World) -> None:
    world.run(world.deploy(world.prod_model("1.0.0")))
    second = world.deploy(world.prod_model("1.1.0"))
    world.run(second)
    record = world.serving.get(second)
    assert record.status is DeploymentStatus.ROLLED_BACK
    assert "too little traffic" in record.statusReason


def test_linear_deployments_step_through_their_shares(world: World) -> None:
    world.run(world.deploy(world.prod_model("1.0.0")))
    world.telemetry.stats = {"baseline": _healthy(900), "canary": _healthy(100)}
    second = world.deploy(
        world.prod_model("1.1.0"), canary={"type": "LINEAR", "linearStepPercent": 25}
    )
    world.serving.create(second)
    world.serving.start_bake(second)
    shares = []
    while True:
        assert world.serving.analyse(second, 1)["verdict"] == "promote"
        step = world.serving.promote(second)
        shares.append(world.serving.get(second).canary.weight)
        if step["next"] == "done":
            break
    assert shares == [50.0, 75.0, 100.0]


def test_an_unsigned_model_is_refused_for_prod_and_nothing_is_written(world: World) -> None:
    model_id = world.model("1.0.0", 0.9)
    _stored(world, model_id)
    with pytest.raises(DeploymentRefused):
        world.deploy(model_id)
    assert world.deployments.records == {} and world.deploy_workflow.started == []


def test_deploying_needs_the_deploy_permission(world: World) -> None:
    request = DeployRequest(modelId=world.prod_model("1.0.0"), env="prod", route="iris")
    with pytest.raises(Forbidden):
        world.serving.deploy(request, READER, "c")


def test_scale_sets_ab_weights_of_a_deployment_in_service(world: World) -> None:
    ab_model = world.prod_model("0.9.0")
    deploy_id = world.deploy(
        world.prod_model("1.0.0"), variants=[{"name": "b", "modelId": ab_model, "weight": 50}]
    )
    world.run(deploy_id)
    record = world.serving.scale(deploy_id, {"canary": 80, "b": 20}, ENGINEER)
    assert {v.name: v.weight for v in record.variants} == {"canary": 80, "b": 20}
    assert world.hosting.weights[record.endpointName] == {"canary": 80, "b": 20}
    with pytest.raises(ValidationFailed):
        world.serving.scale(deploy_id, {"nope": 1}, ENGINEER)


def test_rollback_by_hand_redeploys_the_prior_version_all_at_once(world: World) -> None:
    first = world.deploy(world.prod_model("1.0.0"))
    world.run(first)
    world.telemetry.stats = {"baseline": _healthy(900), "canary": _healthy(100)}
    second = world.deploy(world.prod_model("1.1.0"))
    world.run(second)
    back = world.serving.rollback_by_hand(second, ENGINEER, "c")
    assert back.modelId == world.serving.get(first).modelId
    assert back.canaryConfig.type == "ALL_AT_ONCE"
    assert [v.role for v in back.variants] == ["canary"]  # all at once: no canary phase
    world.run(back.deployId)
    assert world.serving.get(back.deployId).status is DeploymentStatus.IN_SERVICE
    third = world.serving.rollback_by_hand(back.deployId, ENGINEER, "c", to_deploy_id=first)
    assert third.modelId == world.serving.get(first).modelId
    with pytest.raises(ValidationFailed):  # a later deployment is not a prior version
        world.serving.rollback_by_hand(first, ENGINEER, "c", to_deploy_id=second)
    assert world.serving.get(second).status is DeploymentStatus.ROLLED_BACK
    with pytest.raises(InvalidState):
        world.serving.rollback_by_hand(first, ENGINEER, "c")


def test_a_failure_before_the_update_took_leaves_the_serving_config_alone(world: World) -> None:
    first = world.deploy(world.prod_model("1.0.0"))
    world.run(first)
    second = world.deploy(world.prod_model("1.1.0"))
    world.serving.fail(second, {"Error": "ClientError", "Cause": "CreateEndpointConfig refused"})
    endpoint = world.serving.get(second).endpointName
    assert world.hosting.weights[endpoint] == {"canary": 100.0}  # the first deployment's fleet
    assert world.serving.get(second).status is DeploymentStatus.FAILED


def test_a_failure_after_creation_restores_the_baseline(world: World) -> None:
    world.run(world.deploy(world.prod_model("1.0.0")))
    second = world.deploy(world.prod_model("1.1.0"))
    world.serving.create(second)
    world.serving.fail(second, {"Error": "States.Timeout", "Cause": "endpoint never came up"})
    record = world.serving.get(second)
    assert record.status is DeploymentStatus.FAILED and "never came up" in record.statusReason
    assert world.hosting.weights[record.endpointName]["baseline"] == 100.0
