"""Policy decisions (SentinelNet): what a policy engine is asked and what it answers.

A request describes one intended use of a model (train, promote or deploy) together with
the facts of every dataset in the model's lineage, flattened by the caller. An engine
answers allow or deny; a denial names the policy, its reason and, when the policy is about
one dataset, that dataset. Engines implement ``PolicyEngine``: the embedded Cedar engine and
the HTTP client for an external SentinelNet both do.

Requests are normalised on construction (roles, dataset facts and each dataset's sets are
sorted and deduplicated), so equal requests have equal canonical JSON and the same
``requestDigest`` whatever order the caller listed things in.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelops.domain.digests import SHA256_HEX, canonical_digest
from modelops.domain.entities import Dataset, PiiFlag

PolicyAction = Literal["train", "promote", "deploy"]
RiskTier = Literal["low", "high"]
TargetEnv = Literal["sandbox", "staging", "prod"]


class _PolicyModel(BaseModel):
    # defer_build: validators are built on first use, not at import (cold start).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


def _sorted_unique(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(values)))


class DatasetFacts(_PolicyModel):
    """What the policies need to know about one dataset of a model's lineage."""

    datasetId: str = Field(min_length=1, max_length=128)
    license: str = Field(min_length=1, description="SPDX licence expression.")
    piiFlags: tuple[PiiFlag, ...] = ()
    piiApproved: bool = Field(
        default=False, description="An approver allowed this PII dataset's use."
    )
    commercialUse: bool = Field(
        default=True,
        description="The dataset's usage restrictions allow commercial use. Builders combine "
        "it with the licence: False when is_non_commercial(license).",
    )
    permittedPurposes: tuple[str, ...] = Field(
        default=(), description="Purposes the data may be used for; empty means any."
    )
    exportRegions: tuple[str, ...] = Field(
        default=(),
        description="Regions the data may be used in (an AWS region such as eu-west-1, or a "
        "geography prefix such as eu that covers every region starting eu-); empty means any.",
    )
    retentionExpired: bool = Field(
        default=False, description="The dataset's retention period has passed."
    )

    @field_validator("piiFlags")
    @classmethod
    def _sort_flags(cls, value: tuple[PiiFlag, ...]) -> tuple[PiiFlag, ...]:
        return tuple(sorted(set(value)))

    @field_validator("permittedPurposes", "exportRegions")
    @classmethod
    def _sort_sets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _sorted_unique(value)


def facts_of(dataset: Dataset, *, pii_approved: bool, now: datetime) -> DatasetFacts:
    """The policy facts of a registered dataset at ``now`` (``pii_approved``: an approval on
    file covers this use's purpose and is in force)."""
    days = dataset.usageRestrictions.retentionDays
    return DatasetFacts(
        datasetId=dataset.datasetId,
        license=dataset.license,
        piiFlags=dataset.piiFlags,
        piiApproved=bool(dataset.pii and pii_approved),
        commercialUse=dataset.usageRestrictions.commercialUse
        and not is_non_commercial(dataset.license),
        permittedPurposes=dataset.usageRestrictions.permittedPurposes,
        exportRegions=dataset.usageRestrictions.exportRegions,
        retentionExpired=days is not None and now >= dataset.createdAt + timedelta(days=days),
    )


class PolicyRequest(_PolicyModel):
    """One intended use of a model, asked at pre-train, pre-promotion or deploy."""

    action: PolicyAction
    principal: str = Field(pattern=r"^arn:\S+$", description="Caller's IAM principal ARN.")
    roles: tuple[str, ...] = ()
    modelFamily: str = Field(min_length=1, max_length=128)
    riskTier: RiskTier
    targetEnv: TargetEnv
    region: str = Field(
        min_length=1, max_length=64, description="Region the training or endpoint runs in."
    )
    purpose: str = Field(min_length=1, max_length=128, description='e.g. "training".')
    datasets: tuple[DatasetFacts, ...] = Field(
        default=(), description="The model's whole dataset lineage, flattened by the caller."
    )

    @field_validator("roles")
    @classmethod
    def _sort_roles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _sorted_unique(value)

    @field_validator("datasets")
    @classmethod
    def _one_fact_sheet_per_dataset(
        cls, value: tuple[DatasetFacts, ...]
    ) -> tuple[DatasetFacts, ...]:
        by_id: dict[str, DatasetFacts] = {}
        for facts in value:
            seen = by_id.setdefault(facts.datasetId, facts)
            if seen != facts:
                raise ValueError(f"dataset {facts.datasetId} is listed with different facts")
        return tuple(by_id[dataset_id] for dataset_id in sorted(by_id))

    def digest(self) -> str:
        """SHA-256 of the request's canonical (RFC 8785) JSON."""
        return canonical_digest(self.model_dump(mode="json"))


class PolicyDenial(_PolicyModel):
    policyId: str = Field(min_length=1)
    reason: str
    datasetId: str | None = Field(
        default=None, description="The dataset the policy is about; None for the whole request."
    )


class PolicyDecision(_PolicyModel):
    """An engine's answer. Allowed means no denial; a refusal names at least one denial."""

    allowed: bool
    denials: tuple[PolicyDenial, ...] = ()
    engine: str = Field(min_length=1)
    policySetDigest: str | None = Field(
        default=None,
        pattern=SHA256_HEX.pattern,
        description="SHA-256 of the policies evaluated; None when none were (engine unavailable).",
    )
    requestDigest: str = Field(pattern=SHA256_HEX.pattern)

    @model_validator(mode="after")
    def _allowed_iff_no_denials(self) -> PolicyDecision:
        if self.allowed and self.denials:
            raise ValueError("an allowed decision carries no denials")
        if not self.allowed and not self.denials:
            raise ValueError("a refusal names at least one denial")
        if self.allowed and self.policySetDigest is None:
            raise ValueError("an allowed decision names the policy set that allowed it")
        return self


class PolicyEngine(Protocol):
    """Decides whether a request is allowed (the SentinelNet policy-decision port)."""

    def decide(self, request: PolicyRequest) -> PolicyDecision: ...


# SPDX licence-expression tokens: parentheses, or a run of idstring characters (ids may
# carry "+", "DocumentRef-x:LicenseRef-y" a colon). Operators are words among the ids.
_TOKEN = re.compile(r"\s*(?:(?P<paren>[()])|(?P<word>[A-Za-z0-9.+:-]+))")
_NON_COMMERCIAL_WORDS = ("noncommercial", "non-commercial")


def _is_non_commercial_id(license_id: str) -> bool:
    lowered = license_id.removesuffix("+").lower()
    return (
        "nc" in lowered.split("-")
        or any(word in lowered for word in _NON_COMMERCIAL_WORDS)
        or lowered.startswith("ncgl-")
    )


class _Unparsable(ValueError):
    pass


class _LicenseExpression:
    """A recursive-descent reader of an SPDX expression that answers, for each
    sub-expression, whether it permits commercial use."""

    def __init__(self, expression: str) -> None:
        self.tokens: list[str] = []
        position = 0
        text = expression.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise _Unparsable(expression)
            self.tokens.append(match.group("paren") or match.group("word"))
            position = match.end()
        self.index = 0

    def _peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _take(self) -> str:
        token = self._peek()
        if token is None:
            raise _Unparsable("expression ends early")
        self.index += 1
        return token

    def _is_operator(self, token: str | None, operator: str) -> bool:
        return token is not None and token.upper() == operator

    def commercial_use_permitted(self) -> bool:
        permitted = self._or()
        if self._peek() is not None:
            raise _Unparsable(f"unexpected {self._peek()!r}")
        return permitted

    def _or(self) -> bool:
        # A licensee may pick any alternative: one that permits commercial use is enough.
        permitted = self._and()
        while self._is_operator(self._peek(), "OR"):
            self._take()
            permitted = self._and() or permitted
        return permitted

    def _and(self) -> bool:
        # Every conjunct applies: one non-commercial licence forbids commercial use.
        permitted = self._with()
        while self._is_operator(self._peek(), "AND"):
            self._take()
            permitted = self._with() and permitted
        return permitted

    def _with(self) -> bool:
        permitted = self._primary()
        if self._is_operator(self._peek(), "WITH"):
            self._take()
            exception = self._take()
            if exception in {"(", ")"} or exception.upper() in {"AND", "OR", "WITH"}:
                raise _Unparsable(f"no exception after WITH: {exception!r}")
            # An exception only adds permissions; the licence decides.
        return permitted

    def _primary(self) -> bool:
        token = self._take()
        if token == "(":
            permitted = self._or()
            if self._take() != ")":
                raise _Unparsable("unbalanced parentheses")
            return permitted
        if token == ")" or token.upper() in {"AND", "OR", "WITH"}:
            raise _Unparsable(f"expected a licence id, got {token!r}")
        return not _is_non_commercial_id(token)


def is_non_commercial(spdx_expression: str) -> bool:
    """Whether an SPDX licence expression forbids commercial use.

    A licence id is non-commercial when, ignoring case and a trailing ``+``:
    - one of its hyphen-separated elements is ``NC``: every Creative Commons NonCommercial
      licence (``CC-BY-NC-4.0``, ``CC-BY-NC-SA-2.0-UK``, ``CC-BY-NC-ND-3.0-IGO``) and
      ``LicenseRef-acme-NC-1.0``;
    - it contains ``noncommercial`` or ``non-commercial``: ``PolyForm-Noncommercial-1.0.0``,
      ``LicenseRef-acme-noncommercial``;
    - it is a UK Non-Commercial Government Licence (``NCGL-UK-2.0``).
    An expression is non-commercial when no choice it offers permits commercial use: ``A OR
    B`` needs one commercial alternative, ``A AND B`` needs both, ``A WITH exception`` is as
    ``A`` (exceptions only add permissions). Operators are matched in any case. An expression
    that cannot be parsed is treated as non-commercial (fail closed).
    """
    try:
        return not _LicenseExpression(spdx_expression).commercial_use_permitted()
    except _Unparsable:
        return True
