"""The embedded SentinelNet: Cedar policies evaluated in-process with cedarpy.

A request becomes one Cedar request for the model and one per dataset of its lineage, all
evaluated in one batch, so a denial names the dataset it is about:

- principal: ``ModelOps::Principal::"<IAM ARN>"``, a member of ``ModelOps::Role::"<role>"``
  for each of the caller's roles (``principal in ModelOps::Role::"approver"``);
- action: ``ModelOps::Action::"train" | "promote" | "deploy"``;
- resource: ``ModelOps::Model::"<family>"`` (riskTier), or ``ModelOps::Dataset::"<id>"``
  with the dataset's facts (``nonCommercialLicense`` is ``is_non_commercial(license)``);
- context: modelFamily, riskTier, targetEnv, region, regionScopes (the region and its
  geography prefix: ``eu-west-1`` gives ``["eu-west-1", "eu"]``) and purpose.

``SCHEMA`` declares all of it; policies are validated against it when loaded, and every
request and entity set is validated against it when evaluated. Every policy carries
``@id`` and ``@reason`` annotations: a denial reports the forbid policies that fired by
those. The engine fails closed: a request Cedar cannot evaluate, or a policy that errors
on it, is a denial (``cedar.evaluation-error``), and a request no policy permits is one too
(``cedar.no-permit``).

cedarpy is imported on first use, never at module import (handlers' cold-start budget).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelops.domain.policy import (
    DatasetFacts,
    PolicyDecision,
    PolicyDenial,
    PolicyRequest,
    is_non_commercial,
)

if TYPE_CHECKING:
    import cedarpy

ENGINE = "cedar-embedded"
POLICY_SUFFIX = ".cedar"
EVALUATION_ERROR = "cedar.evaluation-error"
NO_PERMIT = "cedar.no-permit"
_CEDAR_POLICY_ID = re.compile(r"`(policy\d+)`")

SCHEMA = """
namespace ModelOps {
  entity Role;
  entity Principal in [Role];
  entity Model = { riskTier: String };
  entity Dataset = {
    license: String,
    nonCommercialLicense: Bool,
    piiFlags: Set<String>,
    piiApproved: Bool,
    commercialUse: Bool,
    permittedPurposes: Set<String>,
    exportRegions: Set<String>,
    retentionExpired: Bool,
  };
  type UseContext = {
    modelFamily: String,
    riskTier: String,
    targetEnv: String,
    region: String,
    regionScopes: Set<String>,
    purpose: String,
  };
  action train, promote, deploy appliesTo {
    principal: [Principal],
    resource: [Model, Dataset],
    context: UseContext,
  };
}
"""


def bundled_policies() -> str:
    """The policy set kept in the repo: ``modelops/policies/*.cedar`` in name order, each
    ending with a newline (so its digest is that of ``cat policies/*.cedar``)."""
    from importlib import resources

    folder = resources.files("modelops").joinpath("policies")
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(POLICY_SUFFIX)),
        key=lambda entry: entry.name,
    )
    if not files:
        raise ValueError(f"no {POLICY_SUFFIX} files in {folder}")
    texts = [entry.read_text(encoding="utf-8") for entry in files]
    return "".join(text if text.endswith("\n") else text + "\n" for text in texts)


@dataclass(frozen=True)
class _Policy:
    policy_id: str
    reason: str
    effect: str


@dataclass(frozen=True)
class _Loaded:
    """A parsed, validated policy set with what a decision needs to report."""

    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema
    policies: dict[str, _Policy]  # by Cedar's positional id (policy0, policy1, ...)
    digest: str


def _load(text: str) -> _Loaded:
    """Parse and validate ``text``; ValueError names what is wrong with it."""
    import cedarpy

    schema = cedarpy.Schema.from_str(SCHEMA)
    est: dict[str, Any] = json.loads(cedarpy.policies_to_json_str(text))
    if est.get("templates"):
        raise ValueError("policy templates are not supported; write static policies")
    policies: dict[str, _Policy] = {}
    for cedar_id, policy in est["staticPolicies"].items():
        annotations: dict[str, str] = policy.get("annotations") or {}
        policy_id, reason = annotations.get("id"), annotations.get("reason")
        if not policy_id or not reason:
            raise ValueError(f"every policy needs @id and @reason annotations: {cedar_id}")
        policies[cedar_id] = _Policy(policy_id, reason, policy["effect"])
    ids = [policy.policy_id for policy in policies.values()]
    if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(f"duplicate policy ids: {', '.join(duplicates)}")
    validation = cedarpy.validate_policies(text, schema)
    if not validation.validation_passed:
        named = validation.id_annotations_by_policy_id
        problems = [f"{named.get(e.policy_id, e.policy_id)}: {e.error}" for e in validation.errors]
        raise ValueError("policies do not match the schema: " + "; ".join(problems))
    # Built from the same EST, so the positional ids of ``policies`` are the set's own.
    policy_set = cedarpy.PolicySet.from_json_str(json.dumps(est))
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _Loaded(policy_set, schema, policies, digest)


@functools.cache
def _bundled() -> _Loaded:
    return _load(bundled_policies())


def _uid(entity_type: str, entity_id: str) -> dict[str, str]:
    return {"type": f"ModelOps::{entity_type}", "id": entity_id}


def _region_scopes(region: str) -> list[str]:
    geography = region.split("-", 1)[0]
    return sorted({region, geography})


def _dataset_entity(facts: DatasetFacts) -> dict[str, Any]:
    return {
        "uid": _uid("Dataset", facts.datasetId),
        "attrs": {
            "license": facts.license,
            "nonCommercialLicense": is_non_commercial(facts.license),
            "piiFlags": [flag.value for flag in facts.piiFlags],
            "piiApproved": facts.piiApproved,
            "commercialUse": facts.commercialUse,
            "permittedPurposes": list(facts.permittedPurposes),
            "exportRegions": list(facts.exportRegions),
            "retentionExpired": facts.retentionExpired,
        },
        "parents": [],
    }


def cedar_entities(request: PolicyRequest) -> list[dict[str, Any]]:
    """The entity set of a request: principal, its roles, the model and its datasets."""
    roles = [_uid("Role", role) for role in request.roles]
    return [
        {"uid": _uid("Principal", request.principal), "attrs": {}, "parents": roles},
        *({"uid": role, "attrs": {}, "parents": []} for role in roles),
        {
            "uid": _uid("Model", request.modelFamily),
            "attrs": {"riskTier": request.riskTier},
            "parents": [],
        },
        *(_dataset_entity(facts) for facts in request.datasets),
    ]


def cedar_requests(request: PolicyRequest) -> list[dict[str, Any]]:
    """One Cedar request for the model, then one per dataset (in the request's order)."""
    context = {
        "modelFamily": request.modelFamily,
        "riskTier": request.riskTier,
        "targetEnv": request.targetEnv,
        "region": request.region,
        "regionScopes": _region_scopes(request.region),
        "purpose": request.purpose,
    }
    targets = [
        _uid("Model", request.modelFamily),
        *(_uid("Dataset", facts.datasetId) for facts in request.datasets),
    ]
    return [
        {
            "principal": _uid("Principal", request.principal),
            "action": _uid("Action", request.action),
            "resource": resource,
            "context": context,
        }
        for resource in targets
    ]


def _with_policy_ids(message: str, loaded: _Loaded) -> str:
    """Cedar's message with its positional policy ids replaced by their @id."""

    def named(match: re.Match[str]) -> str:
        policy = loaded.policies.get(match[1])
        return f"`{policy.policy_id}`" if policy else match[0]

    return _CEDAR_POLICY_ID.sub(named, message)


class CedarPolicyEngine:
    """SentinelNet's embedded engine. ``policies`` is Cedar policy text; by default, the
    bundled ``modelops/policies/*.cedar`` (parsed once per process). Policies are parsed
    and validated on first use, not at construction."""

    engine = ENGINE

    def __init__(self, policies: str | None = None) -> None:
        self._text = policies
        self._loaded: _Loaded | None = None

    def _policies(self) -> _Loaded:
        if self._loaded is None:
            self._loaded = _bundled() if self._text is None else _load(self._text)
        return self._loaded

    @property
    def policy_set_digest(self) -> str:
        """SHA-256 of the policy text this engine evaluates."""
        return self._policies().digest

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        import cedarpy

        loaded = self._policies()
        subjects: list[str | None] = [None, *(facts.datasetId for facts in request.datasets)]
        try:
            results = cedarpy.is_authorized_batch(
                cedar_requests(request),
                loaded.policy_set,
                json.dumps(cedar_entities(request)),
                schema=loaded.schema,
            )
        except Exception as exc:  # fail closed: whatever Cedar cannot evaluate is denied
            denials = [PolicyDenial(policyId=EVALUATION_ERROR, reason=str(exc) or repr(exc))]
        else:
            denials = [
                denial
                for dataset_id, result in zip(subjects, results, strict=True)
                for denial in self._denials(loaded, result, dataset_id)
            ]
        return PolicyDecision(
            allowed=not denials,
            denials=tuple(denials),
            engine=ENGINE,
            policySetDigest=loaded.digest,
            requestDigest=request.digest(),
        )

    @staticmethod
    def _denials(
        loaded: _Loaded, result: cedarpy.AuthzResult, dataset_id: str | None
    ) -> list[PolicyDenial]:
        denials: list[PolicyDenial] = []
        if result.diagnostics.errors:
            denials.append(
                PolicyDenial(
                    policyId=EVALUATION_ERROR,
                    reason="; ".join(
                        _with_policy_ids(error, loaded) for error in result.diagnostics.errors
                    ),
                    datasetId=dataset_id,
                )
            )
        if result.allowed:
            return denials
        fired = sorted(
            (
                loaded.policies[cedar_id]
                for cedar_id in result.diagnostics.reasons
                if cedar_id in loaded.policies and loaded.policies[cedar_id].effect == "forbid"
            ),
            key=lambda policy: policy.policy_id,
        )
        denials.extend(
            PolicyDenial(policyId=policy.policy_id, reason=policy.reason, datasetId=dataset_id)
            for policy in fired
        )
        if not denials:  # denied, yet no forbid fired and nothing failed: nothing permits it
            denials.append(
                PolicyDenial(
                    policyId=NO_PERMIT, reason="No policy permits this use.", datasetId=dataset_id
                )
            )
        return denials
