"""Effective usage restrictions: what every dataset in a lineage obliges its descendants to.

A dataset's licence and usage restrictions (commercial use, permitted purposes, export
regions, retention period) and its PII flags bind everything derived from it: derived
datasets, models trained on them, models fine-tuned from those. A node's effective
restrictions are therefore the union of the restrictions of every dataset among its
ancestors (the node included when it is a dataset); in terms of what is allowed, the
intersection:

- licence: every ancestor licence applies, so the expression is their conjunction
  (``A AND B``); commercial use is permitted only if every licence and every dataset's
  restrictions permit it;
- permitted purposes: the purposes every restricting dataset permits (datasets without
  a purpose list permit any);
- export regions: the region scopes every restricting dataset allows. A scope is a region
  (``eu-west-1``) or a geography prefix (``eu``, every region starting ``eu-``), so ``eu``
  and ``eu-west-1`` leave ``eu-west-1``, and ``eu`` and ``us`` leave nothing (no region);
- retention: the shortest period, counted from each dataset's registration;
- PII: the union of the flags.

Each restriction names the datasets that impose it, so a refusal can name its cause.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import Field

from modelops.domain.entities import Dataset, Entity, PiiFlag
from modelops.domain.policy import is_non_commercial


class RestrictionSource(Entity):
    datasetId: str
    value: str = Field(description="What this dataset imposes, as text.")


class EffectiveRestrictions(Entity):
    datasets: tuple[str, ...] = Field(description="The lineage's datasets, sorted.")
    licenses: tuple[RestrictionSource, ...] = ()
    licenseExpression: str | None = Field(
        default=None, description="SPDX conjunction of every ancestor licence; None: no data."
    )
    commercialUse: bool = True
    commercialUseForbiddenBy: tuple[RestrictionSource, ...] = ()
    permittedPurposes: tuple[str, ...] | None = Field(
        default=None, description="Purposes every dataset permits; None: any purpose."
    )
    purposesRestrictedBy: tuple[RestrictionSource, ...] = ()
    exportRegions: tuple[str, ...] | None = Field(
        default=None,
        description="Region scopes every dataset allows; None: anywhere; empty: nowhere.",
    )
    regionsRestrictedBy: tuple[RestrictionSource, ...] = ()
    retentionDays: int | None = None
    retentionExpiresAt: datetime | None = None
    retentionSetBy: tuple[RestrictionSource, ...] = ()
    piiFlags: tuple[PiiFlag, ...] = ()
    piiFrom: tuple[RestrictionSource, ...] = ()


def covers(scope: str, region: str) -> bool:
    """Whether an export scope (a region or a geography prefix) allows ``region``."""
    return region == scope or region.startswith(scope + "-")


def _intersect_scopes(left: set[str], right: set[str]) -> set[str]:
    return {a for a in left if any(covers(b, a) for b in right)} | {
        b for b in right if any(covers(a, b) for a in left)
    }


def _conjunction(expressions: Iterable[str]) -> str | None:
    parts = sorted(set(expressions))
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return " AND ".join(f"({p})" if " OR " in p.upper() else p for p in parts)


def retention_expiry(dataset: Dataset) -> datetime | None:
    days = dataset.usageRestrictions.retentionDays
    return dataset.createdAt + timedelta(days=days) if days is not None else None


def effective_restrictions(datasets: Iterable[Dataset]) -> EffectiveRestrictions:
    """The union of the restrictions of ``datasets`` (a node's lineage datasets)."""
    ordered = sorted({d.datasetId: d for d in datasets}.values(), key=lambda d: d.datasetId)
    purposes: set[str] | None = None
    regions: set[str] | None = None
    no_commercial: list[RestrictionSource] = []
    purpose_sources: list[RestrictionSource] = []
    region_sources: list[RestrictionSource] = []
    retention: list[tuple[datetime, int, RestrictionSource]] = []
    pii: list[RestrictionSource] = []
    for d in ordered:
        limits = d.usageRestrictions
        if not limits.commercialUse or is_non_commercial(d.license):
            why = "usage restrictions" if not limits.commercialUse else f"licence {d.license}"
            no_commercial.append(RestrictionSource(datasetId=d.datasetId, value=why))
        if limits.permittedPurposes:
            allowed = set(limits.permittedPurposes)
            purposes = allowed if purposes is None else purposes & allowed
            purpose_sources.append(_listed(d.datasetId, allowed))
        if limits.exportRegions:
            allowed = set(limits.exportRegions)
            regions = allowed if regions is None else _intersect_scopes(regions, allowed)
            region_sources.append(_listed(d.datasetId, allowed))
        expiry = retention_expiry(d)
        if expiry is not None and limits.retentionDays is not None:
            source = RestrictionSource(datasetId=d.datasetId, value=f"{limits.retentionDays} days")
            retention.append((expiry, limits.retentionDays, source))
        if d.piiFlags:
            pii.append(_listed(d.datasetId, {f.value for f in d.piiFlags}))
    earliest = min(retention, key=lambda r: r[0]) if retention else None
    return EffectiveRestrictions(
        datasets=tuple(d.datasetId for d in ordered),
        licenses=tuple(RestrictionSource(datasetId=d.datasetId, value=d.license) for d in ordered),
        licenseExpression=_conjunction(d.license for d in ordered),
        commercialUse=not no_commercial,
        commercialUseForbiddenBy=tuple(no_commercial),
        permittedPurposes=None if purposes is None else tuple(sorted(purposes)),
        purposesRestrictedBy=tuple(purpose_sources),
        exportRegions=None if regions is None else tuple(sorted(regions)),
        regionsRestrictedBy=tuple(region_sources),
        retentionDays=min(r[1] for r in retention) if retention else None,
        retentionExpiresAt=earliest[0] if earliest else None,
        retentionSetBy=(earliest[2],) if earliest else (),
        piiFlags=tuple(sorted({PiiFlag(f) for d in ordered for f in d.piiFlags})),
        piiFrom=tuple(pii),
    )


def _listed(dataset_id: str, values: set[str]) -> RestrictionSource:
    return RestrictionSource(datasetId=dataset_id, value=", ".join(sorted(values)))
