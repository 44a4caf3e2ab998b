"""Dataset governance at every use of data: training and evaluation jobs, drift baselines,
promotions and deployments ask the same question the same way.

A use touches every dataset among the ancestors of what it uses (a derived dataset's
sources, a fine-tune's parent's data): ``lineage_datasets`` collects them, so restrictions
propagate through any number of generations. Each dataset's policy facts say whether a PII
approval on file covers the use's purpose and is still in force, and whether the dataset's
retention has passed. The policy engine (SentinelNet) decides; a refusal names, for each
denial, the dataset, the restriction it carries and the policy that fired.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelops.domain.entities import Dataset, LineageNode
from modelops.domain.policy import (
    PolicyAction,
    PolicyDecision,
    PolicyDenial,
    PolicyEngine,
    PolicyRequest,
    RiskTier,
    TargetEnv,
    facts_of,
)
from modelops.domain.restrictions import EffectiveRestrictions, effective_restrictions
from modelops.errors import PolicyDenied
from modelops.ports import Clock, PromotionRepository, RegistryRepository
from modelops.services.lineage import LineageService

# The purpose of each use, as approvals and datasets' permitted purposes name them.
TRAINING = "training"
EVALUATION = "evaluation"
MONITORING = "monitoring"  # drift baselines
INFERENCE = "inference"  # promotion and serving: what a promoted model's data is used for


def _restriction(policy_id: str, dataset: Dataset) -> tuple[str, Any] | None:
    """The dataset restriction a (bundled) policy is about, with the dataset's value."""
    limits = dataset.usageRestrictions
    return {
        "dataset.export-region": ("exportRegions", list(limits.exportRegions)),
        "dataset.non-commercial-in-prod": (
            ("license", dataset.license)
            if limits.commercialUse
            else ("commercialUse", limits.commercialUse)
        ),
        "dataset.pii-not-approved": ("piiFlags", [f.value for f in dataset.piiFlags]),
        "dataset.purpose-not-permitted": ("permittedPurposes", list(limits.permittedPurposes)),
        "dataset.retention-expired": ("retentionDays", limits.retentionDays),
    }.get(policy_id)


@dataclass(frozen=True)
class Use:
    """One intended use of data by a model family."""

    action: PolicyAction
    purpose: str
    principal: str
    roles: tuple[str, ...]
    family: str
    risk_tier: RiskTier
    target_env: TargetEnv
    region: str


class Governance:
    def __init__(
        self,
        registry: RegistryRepository,
        lineage: LineageService,
        approvals: PromotionRepository,
        policy: PolicyEngine,
        clock: Clock,
    ) -> None:
        self._registry = registry
        self._lineage = lineage
        self._approvals = approvals
        self._policy = policy
        self._clock = clock

    def lineage_datasets(self, node_ids: Iterable[str]) -> list[Dataset]:
        """Every dataset among the ancestors of ``node_ids`` (datasets or models, which
        are included), sorted by id, as it bears on a use of them: licences and usage
        restrictions always, PII flags only when a path reaches the dataset without passing
        through a sanitized derivative (sanitization is what removes personal data; its
        derivative carries the flags that remain)."""
        nodes: dict[str, LineageNode] = {}
        roots = list(dict.fromkeys(node_ids))
        for root in roots:
            nodes.update((n.nodeId, n) for n in self._lineage.ancestors(root).nodes)
        found: dict[str, Dataset] = {}
        for node in nodes.values():
            dataset = self._registry.get_dataset(node.nodeId) if node.kind == "dataset" else None
            if dataset is not None:
                found[dataset.datasetId] = dataset
        reached: set[str] = set()
        frontier = [r for r in roots if r in nodes]
        while frontier:
            node_id = frontier.pop()
            if node_id in reached:
                continue
            reached.add(node_id)
            dataset = found.get(node_id)
            if dataset is None or dataset.sanitization is None:
                frontier.extend(p for p in nodes[node_id].parents if p in nodes)
        return [
            d if d.datasetId in reached or not d.pii else d.model_copy(update={"piiFlags": ()})
            for _, d in sorted(found.items())
        ]

    def restrictions(self, node_id: str) -> EffectiveRestrictions:
        """What the lineage of ``node_id`` obliges it to (``domain.restrictions``)."""
        return effective_restrictions(self.lineage_datasets([node_id]))

    def decide(self, use: Use, datasets: Sequence[Dataset]) -> PolicyDecision:
        now = self._clock.now()
        facts = []
        for d in datasets:
            approval = self._approvals.get_dataset_approval(d.datasetId) if d.pii else None
            approved = approval is not None and approval.allows(use.purpose, now)
            facts.append(facts_of(d, pii_approved=approved, now=now))
        return self._policy.decide(
            PolicyRequest(
                action=use.action,
                principal=use.principal,
                roles=use.roles,
                modelFamily=use.family,
                riskTier=use.risk_tier,
                targetEnv=use.target_env,
                region=use.region,
                purpose=use.purpose,
                datasets=tuple(facts),
            )
        )

    def require(self, use: Use, datasets: Sequence[Dataset]) -> PolicyDecision:
        """The decision, or PolicyDenied naming each denial's dataset, restriction and policy."""
        decision = self.decide(use, datasets)
        if not decision.allowed:
            raise refusal(use, decision, {d.datasetId: d for d in datasets})
        return decision


def refusal(use: Use, decision: PolicyDecision, datasets: dict[str, Dataset]) -> PolicyDenied:
    details = [_detail(denial, datasets) for denial in decision.denials]
    causes = "; ".join(
        (f"dataset {d['datasetId']} " if d.get("datasetId") else "")
        + (f"({d['restriction']}={d['value']}) " if "restriction" in d else "")
        + f"policy {d['policyId']}: {d['message']}"
        for d in details
    )
    return PolicyDenied(
        f"policy forbids this {use.action} ({use.purpose} in {use.region}, {use.target_env}): "
        f"{causes}",
        details=details,
    )


def _detail(denial: PolicyDenial, datasets: dict[str, Dataset]) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "field": f"datasets.{denial.datasetId}" if denial.datasetId else "request",
        "message": denial.reason,
        "policyId": denial.policyId,
    }
    dataset = datasets.get(denial.datasetId or "")
    if dataset is not None:
        detail["datasetId"] = dataset.datasetId
        named = _restriction(denial.policyId, dataset)
        if named is not None:
            detail["restriction"], detail["value"] = named
    return detail
