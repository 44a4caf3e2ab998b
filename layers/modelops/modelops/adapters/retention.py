"""``RetentionRepository`` over the registry table (PynamoDB, ``RegistryItem``).

Items (pk / sk):
  TOMBSTONE#<id> / TOMBSTONE          tombstone          gsi1: TOMBSTONES / <created>#<id>
  HOLD#<kind>#<targetId> / HOLD       legal hold         gsi1: HOLDS / <placed>#<kind>#<id>
  ARTIFACT#<id> / RETENTION           the artifact's retention state (expired, tombstone);
                                      the artifact's own item (sk ARTIFACT) never changes
"""

from __future__ import annotations

from collections.abc import Sequence

from modelops.adapters.dynamodb import RegistryItem, _entity, _item
from modelops.domain.entities import Artifact
from modelops.domain.retention import ArtifactRetention, HoldKind, LegalHold, Tombstone

_BATCH = 100


def _hold_key(kind: str, target_id: str) -> tuple[str, str]:
    return f"HOLD#{kind}#{target_id}", "HOLD"


class RetentionTable:
    """Shares the registry table, bound by ``RegistryTable`` (build that first)."""

    def get_tombstone(self, tombstone_id: str) -> Tombstone | None:
        return _entity(_get(f"TOMBSTONE#{tombstone_id}", "TOMBSTONE"), Tombstone)

    def save_tombstone(self, tombstone: Tombstone) -> None:
        _item(
            f"TOMBSTONE#{tombstone.tombstoneId}",
            "TOMBSTONE",
            "tombstone",
            tombstone,
            status=tombstone.status.value,
            gsi1pk="TOMBSTONES",
            gsi1sk=f"{tombstone.createdAt.isoformat()}#{tombstone.tombstoneId}",
        ).save()

    def list_tombstones(self, limit: int) -> list[Tombstone]:
        items = RegistryItem.gsi1.query("TOMBSTONES", scan_index_forward=False, limit=limit)
        return [t for t in (_entity(i, Tombstone) for i in items) if t is not None]

    def put_hold(self, hold: LegalHold) -> None:
        _item(
            *_hold_key(hold.kind, hold.targetId),
            "legal-hold",
            hold,
            gsi1pk="HOLDS",
            gsi1sk=f"{hold.placedAt.isoformat()}#{hold.kind}#{hold.targetId}",
        ).save()

    def get_hold(self, kind: HoldKind, target_id: str) -> LegalHold | None:
        return _entity(_get(*_hold_key(kind, target_id)), LegalHold)

    def delete_hold(self, kind: HoldKind, target_id: str) -> bool:
        item = _get(*_hold_key(kind, target_id))
        if item is None:
            return False
        item.delete()
        return True

    def holds(self, targets: Sequence[tuple[HoldKind, str]]) -> list[LegalHold]:
        keys = list(dict.fromkeys(_hold_key(kind, target) for kind, target in targets))
        found: list[LegalHold] = []
        for start in range(0, len(keys), _BATCH):
            for item in RegistryItem.batch_get(keys[start : start + _BATCH], consistent_read=True):
                hold = _entity(item, LegalHold)
                if hold is not None:
                    found.append(hold)
        return sorted(found, key=lambda h: (h.kind, h.targetId))

    def list_holds(self, limit: int) -> list[LegalHold]:
        items = RegistryItem.gsi1.query("HOLDS", scan_index_forward=False, limit=limit)
        return [h for h in (_entity(i, LegalHold) for i in items) if h is not None]

    def get_artifact_retention(self, artifact_id: str) -> ArtifactRetention | None:
        return _entity(_get(f"ARTIFACT#{artifact_id}", "RETENTION"), ArtifactRetention)

    def save_artifact_retention(self, state: ArtifactRetention) -> None:
        _item(f"ARTIFACT#{state.artifactId}", "RETENTION", "artifact-retention", state).save()

    def blob_holders(self) -> dict[str, set[str]]:
        """A scan of artifacts and their retention states: the job runs daily, and a blob
        may be shared by any artifact, so nothing narrower can answer."""
        artifacts: list[Artifact] = []
        expired: set[str] = set()
        scan = RegistryItem.scan(
            RegistryItem.kind.is_in("artifact", "artifact-retention"), consistent_read=True
        )
        for item in scan:
            if item.kind == "artifact-retention":
                expired.add(item.pk.removeprefix("ARTIFACT#"))
                continue
            artifact = _entity(item, Artifact)
            if artifact is not None and artifact.storage == "standard":
                artifacts.append(artifact)
        holders: dict[str, set[str]] = {}
        for artifact in artifacts:
            if artifact.artifactId in expired:
                continue
            for entry in artifact.files:
                holders.setdefault(entry.sha256, set()).add(artifact.artifactId)
        return holders


def _get(pk: str, sk: str) -> RegistryItem | None:
    try:
        return RegistryItem.get(pk, sk, consistent_read=True)
    except RegistryItem.DoesNotExist:
        return None
