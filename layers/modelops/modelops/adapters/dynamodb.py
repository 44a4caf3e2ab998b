"""The registry in DynamoDB (PynamoDB), single-table with an overloaded GSI.

Items (pk / sk):
  UPLOAD#<id> / UPLOAD               upload session
  ARTIFACT#<id> / ARTIFACT           artifact manifest
  DATASET#<id> / DATASET             dataset record      gsi1: DATASETS / <name>#<version>
  DSNAME#<name> / V#<version>        version slot (allocation by conditional put)
  MODEL#<id> / MODEL                 model version       gsi1: MODELS / <family>#<semver key>
  NODE#<id> / NODE                   lineage vertex with its adjacency list (parents)
  EDGE#<child> / <parent>            lineage edge        gsi1: USEDBY#<parent> / <child>

  FAMILY#<family> / POLICY           family policy (risk tier, approvals, metric gates)
  FAMILY#<family> / STAGE#<time>#<m> stage change (history: which version was where, when)
  PROMOTION#<id> / PROMOTION         promotion with gates, statement, approvals (rev)
  MODEL#<id> / PENDING               marker: a promotion of this model awaits approvals
  APPROVER#<keyId> / APPROVER        approver public key and its principal
  DSAPPROVAL#<datasetId> / APPROVAL  PII dataset approval

  DEPLOY#<id> / DEPLOY               deployment (rev)
  ENDPOINT#<name> / LIVE             the deployment an endpoint serves  gsi1: LIVE / <name>
  TRAINJOB#<id> / JOB                training job (rev)
                                     gsi1: TRAININGJOBS / <family>#<created>#<id>

  EVAL#<id> / EVAL                   evaluation (rev)  gsi1: EVALS#<model> / <created>#<id>
  MODEL#<id> / BASELINE              drift baseline of a model version
  MODEL#<id> / QUARANTINE            quarantine of a model version (rev)
  FINDING#<id> / FINDING             drift finding     gsi1: FINDINGS#<model> / <end>#<id>
  ALERT#<id> / ALERT                 drift alert       gsi1: ALERTS#<model> / <at>#<id>
  PROPOSAL#<id> / PROPOSAL           retrain proposal (rev)
                                                       gsi1: PROPOSALS#<model> / <at>#<id>
  LABEL#<model> / <inferenceId>      ground truth of a captured inference
  MODEL#<id> / WATERMARK             watermark of a model version
                                     gsi1: WATERMARKS#<family> / <semver key>#<version>

Every multi-item write is one TransactWriteItems call with conditions, so a failure leaves
nothing half-written and concurrent writers of the same key cannot both win.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from modelops import platform
from modelops.contracts.watermark import WatermarkRecord
from modelops.domain.entities import (
    Artifact,
    Dataset,
    LineageNode,
    ModelStatus,
    ModelVersion,
    UploadSession,
    UploadStatus,
    semver_sort_key,
)
from modelops.domain.evaluation import EvaluationRecord
from modelops.domain.governance import SanitizationRun
from modelops.domain.monitoring import (
    DriftAlert,
    DriftBaseline,
    DriftFinding,
    GroundTruth,
    Quarantine,
    RetrainProposal,
)
from modelops.domain.promotion import (
    ApproverKey,
    DatasetApproval,
    FamilyPolicy,
    Promotion,
    StageChange,
)
from modelops.domain.serving import DeploymentRecord
from modelops.domain.training import TrainingJob
from modelops.errors import ValidationFailed
from modelops.ports import (
    AlreadyExists,
    MissingReferences,
    Page,
    PromotionPending,
    StaleWrite,
    VersionTaken,
)

E = TypeVar("E", bound=BaseModel)
_KEY = platform.REGISTRY_TABLE


class Gsi1(GlobalSecondaryIndex["RegistryItem"]):
    class Meta:
        index_name = _KEY.indexes[0].name
        projection = AllProjection()

    gsi1pk = UnicodeAttribute(hash_key=True)
    gsi1sk = UnicodeAttribute(range_key=True)


class RegistryItem(Model):
    """One item of the registry table; ``doc`` holds the entity as JSON."""

    class Meta:
        table_name = "unset"  # bound by RegistryTable.__init__ from configuration
        region = "us-east-1"
        max_retry_attempts = 4

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    gsi1pk = UnicodeAttribute(null=True)
    gsi1sk = UnicodeAttribute(null=True)
    kind = UnicodeAttribute()
    status = UnicodeAttribute(null=True)
    doc = UnicodeAttribute(null=True)
    rev = NumberAttribute(null=True)  # optimistic concurrency where a record evolves
    gsi1 = Gsi1()


def _item(
    pk: str, sk: str, kind: str, entity: BaseModel | None = None, **extra: Any
) -> RegistryItem:
    doc = entity.model_dump_json() if entity is not None else None
    return RegistryItem(pk=pk, sk=sk, kind=kind, doc=doc, **extra)


def _entity(item: RegistryItem | None, cls: type[E]) -> E | None:
    if item is None or item.doc is None:
        return None
    return cls.model_validate_json(item.doc)


def _node_key(node_id: str) -> tuple[str, str]:
    return f"NODE#{node_id}", "NODE"


def _encode_token(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def _decode_token(token: str | None, expected_index_value: str) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
        if key["gsi1pk"]["S"] != expected_index_value or set(key) != {
            "pk",
            "sk",
            "gsi1pk",
            "gsi1sk",
        }:
            raise ValueError("token belongs to another listing")
        return dict(key)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise ValidationFailed(
            "nextToken is not a token this listing returned",
            details=[{"field": "nextToken", "message": str(exc)}],
        ) from exc


class RegistryTable:
    """``RegistryRepository`` over DynamoDB."""

    def __init__(self, table_name: str, region: str) -> None:
        RegistryItem.Meta.table_name = table_name
        RegistryItem.Meta.region = region
        # Transactions retry like every other registry call (standard mode, 4 retries).
        self._connection = Connection(
            region=region, max_retry_attempts=RegistryItem.Meta.max_retry_attempts
        )

    # --- uploads and artifacts ---------------------------------------------------------

    def create_upload(self, session: UploadSession) -> None:
        item = _item(
            f"UPLOAD#{session.uploadId}", "UPLOAD", "upload", session, status=session.status.value
        )
        self._put_new(item)

    def get_upload(self, upload_id: str) -> UploadSession | None:
        return _entity(self._get(f"UPLOAD#{upload_id}", "UPLOAD"), UploadSession)

    def finish_upload(self, session: UploadSession) -> None:
        item = _item(
            f"UPLOAD#{session.uploadId}", "UPLOAD", "upload", session, status=session.status.value
        )
        try:
            item.save(condition=RegistryItem.status == UploadStatus.OPEN.value)
        except Exception as exc:
            if _conditional_failure(exc):
                raise AlreadyExists(session.uploadId) from exc
            raise

    def create_artifact(self, artifact: Artifact) -> None:
        self._put_new(_item(f"ARTIFACT#{artifact.artifactId}", "ARTIFACT", "artifact", artifact))

    def get_artifact(self, artifact_id: str) -> Artifact | None:
        return _entity(self._get(f"ARTIFACT#{artifact_id}", "ARTIFACT"), Artifact)

    # --- datasets ----------------------------------------------------------------------

    def latest_dataset_version(self, name: str) -> int:
        for item in RegistryItem.query(
            f"DSNAME#{name}", scan_index_forward=False, limit=1, consistent_read=True
        ):
            return int(item.sk.removeprefix("V#"))
        return 0

    def create_dataset(
        self, dataset: Dataset, node: LineageNode, sources: Sequence[LineageNode]
    ) -> None:
        record = _item(
            f"DATASET#{dataset.datasetId}",
            "DATASET",
            "dataset",
            dataset,
            gsi1pk="DATASETS",
            gsi1sk=f"{dataset.name}#{dataset.version:08d}",
        )
        slot = _item(f"DSNAME#{dataset.name}", f"V#{dataset.version:08d}", "dataset-version")
        slot.doc = json.dumps({"datasetId": dataset.datasetId})
        source_items = [_item(*_node_key(s.nodeId), "node", s) for s in sources]
        self._create_with_lineage([record, slot], node, source_items, dataset.datasetId)

    def get_dataset(self, dataset_id: str) -> Dataset | None:
        return _entity(self._get(f"DATASET#{dataset_id}", "DATASET"), Dataset)

    def list_datasets(self, name: str | None, limit: int, token: str | None) -> Page[Dataset]:
        prefix = f"{name}#" if name else None
        return self._list(
            "DATASETS", prefix=prefix, status=None, limit=limit, token=token, cls=Dataset
        )

    # --- models ------------------------------------------------------------------------

    def create_model(self, model: ModelVersion, node: LineageNode) -> None:
        self._create_with_lineage([self._model_item(model)], node, [], model.modelId)

    def get_model(self, model_id: str) -> ModelVersion | None:
        return _entity(self._get(f"MODEL#{model_id}", "MODEL"), ModelVersion)

    def list_models(
        self,
        family: str | None,
        status: ModelStatus | None,
        limit: int,
        token: str | None,
        *,
        family_prefix: str | None = None,
    ) -> Page[ModelVersion]:
        prefix = f"{family}#" if family else family_prefix
        status_value = status.value if status else None
        return self._list(
            "MODELS", prefix=prefix, status=status_value, limit=limit, token=token, cls=ModelVersion
        )

    # --- lineage -----------------------------------------------------------------------

    def get_nodes(self, node_ids: Sequence[str]) -> dict[str, LineageNode]:
        found: dict[str, LineageNode] = {}
        for item in RegistryItem.batch_get([_node_key(n) for n in node_ids], consistent_read=True):
            node = _entity(item, LineageNode)
            if node is not None:
                found[node.nodeId] = node
        return found

    def children_of(self, node_id: str, limit: int) -> list[str]:
        return [
            item.gsi1sk or "" for item in RegistryItem.gsi1.query(f"USEDBY#{node_id}", limit=limit)
        ]

    # --- internals ---------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> RegistryItem | None:
        try:
            return RegistryItem.get(pk, sk, consistent_read=True)
        except RegistryItem.DoesNotExist:
            return None

    def _put_new(self, item: RegistryItem) -> None:
        try:
            item.save(condition=RegistryItem.pk.does_not_exist())
        except Exception as exc:
            if _conditional_failure(exc):
                raise AlreadyExists(item.pk) from exc
            raise

    def _create_with_lineage(
        self,
        records: list[RegistryItem],
        node: LineageNode,
        extra_nodes: list[RegistryItem],
        entity_id: str,
    ) -> None:
        """Put records, the lineage node and edges; check that every parent exists."""
        new_nodes = {item.pk for item in extra_nodes}
        edges = [
            _item(
                f"EDGE#{node.nodeId}", parent, "edge", gsi1pk=f"USEDBY#{parent}", gsi1sk=node.nodeId
            )
            for parent in node.parents
        ]
        checked_parents = [p for p in node.parents if _node_key(p)[0] not in new_nodes]
        node_item = _item(*_node_key(node.nodeId), "node", node)
        try:
            with TransactWrite(connection=self._connection) as tx:
                for record in records:
                    tx.save(record, condition=RegistryItem.pk.does_not_exist())
                tx.save(node_item, condition=RegistryItem.pk.does_not_exist())
                for edge in edges:
                    tx.save(edge)
                for source in extra_nodes:
                    tx.save(source)  # external source nodes are immutable labels: put is safe
                for parent in checked_parents:
                    tx.condition_check(
                        RegistryItem, *_node_key(parent), condition=RegistryItem.pk.exists()
                    )
        except TransactWriteError as exc:
            # PynamoDB sends condition checks first, then puts in the order they were added.
            reasons = [r.code if r else None for r in exc.cancellation_reasons]
            failed = {i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"}
            missing = [p for i, p in enumerate(checked_parents) if i in failed]
            if missing:
                raise MissingReferences(missing) from exc
            first_put = len(checked_parents)
            if {first_put, first_put + len(records)} & failed:  # the entity or its node
                raise AlreadyExists(entity_id) from exc
            if failed:
                raise VersionTaken(entity_id) from exc
            raise

    def _list(
        self,
        index_value: str,
        *,
        prefix: str | None,
        status: str | None,
        limit: int,
        token: str | None,
        cls: type[E],
    ) -> Page[E]:
        condition = RegistryItem.gsi1sk.startswith(prefix) if prefix else None
        filter_condition = RegistryItem.status == status if status else None
        results = RegistryItem.gsi1.query(
            index_value,
            range_key_condition=condition,
            filter_condition=filter_condition,
            limit=limit,
            last_evaluated_key=_decode_token(token, index_value),
        )
        items = [e for e in (_entity(i, cls) for i in results) if e is not None]
        return Page(items, _encode_token(results.last_evaluated_key))

    # --- promotion ----------------------------------------------------------------------

    def get_family_policy(self, family: str) -> FamilyPolicy | None:
        return _entity(self._get(f"FAMILY#{family}", "POLICY"), FamilyPolicy)

    def put_family_policy(self, policy: FamilyPolicy) -> None:
        _item(f"FAMILY#{policy.family}", "POLICY", "family-policy", policy).save()

    def put_approver_key(self, key: ApproverKey) -> None:
        self._put_new(_item(f"APPROVER#{key.keyId}", "APPROVER", "approver-key", key))

    def get_approver_key(self, key_id: str) -> ApproverKey | None:
        return _entity(self._get(f"APPROVER#{key_id}", "APPROVER"), ApproverKey)

    def put_dataset_approval(self, approval: DatasetApproval) -> None:
        _item(f"DSAPPROVAL#{approval.datasetId}", "APPROVAL", "dataset-approval", approval).save()

    def get_dataset_approval(self, dataset_id: str) -> DatasetApproval | None:
        return _entity(self._get(f"DSAPPROVAL#{dataset_id}", "APPROVAL"), DatasetApproval)

    def create_pending_promotion(self, promotion: Promotion) -> None:
        marker = _item(f"MODEL#{promotion.modelId}", "PENDING", "pending-promotion")
        marker.doc = json.dumps({"promotionId": promotion.promotionId})
        try:
            with TransactWrite(connection=self._connection) as tx:
                tx.save(marker, condition=RegistryItem.pk.does_not_exist())
                tx.save(self._promotion_item(promotion), condition=RegistryItem.pk.does_not_exist())
        except TransactWriteError as exc:
            existing = self._get(f"MODEL#{promotion.modelId}", "PENDING")
            if existing is not None and existing.doc:
                raise PromotionPending(json.loads(existing.doc)["promotionId"]) from exc
            raise

    def get_promotion(self, promotion_id: str) -> Promotion | None:
        return _entity(self._get(f"PROMOTION#{promotion_id}", "PROMOTION"), Promotion)

    def save_promotion(self, promotion: Promotion, expected_revision: int) -> None:
        try:
            self._promotion_item(promotion).save(condition=RegistryItem.rev == expected_revision)
        except Exception as exc:
            if _conditional_failure(exc):
                raise StaleWrite(promotion.promotionId) from exc
            raise

    def move_stages(
        self,
        moves: Sequence[tuple[ModelVersion, ModelStatus]],
        changes: Sequence[StageChange],
        promotion: Promotion | None,
        expected_revision: int | None,
    ) -> None:
        try:
            with TransactWrite(connection=self._connection) as tx:
                for model, expected in moves:
                    tx.save(
                        self._model_item(model), condition=RegistryItem.status == expected.value
                    )
                self._hold_prod(tx, moves)
                for change in changes:
                    sk = f"STAGE#{change.at.isoformat()}#{change.modelId}"
                    tx.save(_item(f"FAMILY#{change.family}", sk, "stage-change", change))
                if promotion is not None:
                    item = self._promotion_item(promotion)
                    if expected_revision is None:
                        tx.save(item, condition=RegistryItem.pk.does_not_exist())
                    else:
                        tx.save(item, condition=RegistryItem.rev == expected_revision)
                        tx.delete(RegistryItem(pk=f"MODEL#{promotion.modelId}", sk="PENDING"))
        except TransactWriteError as exc:
            raise StaleWrite(", ".join(m.modelId for m, _ in moves)) from exc

    @staticmethod
    def _hold_prod(tx: TransactWrite, moves: Sequence[tuple[ModelVersion, ModelStatus]]) -> None:
        """Keep FAMILY#<family> / PROD naming the family's prod version, conditioned on the
        version the caller saw there (none: the item is absent), so that of two moves into
        prod that read the same holder only one commits. Families whose prod predates the
        item have none: a move out of prod then finds it absent, which is allowed."""
        for family in {model.family for model, _ in moves}:
            entering = [m for m, _ in moves if m.family == family and m.status is ModelStatus.PROD]
            leaving = [m for m, was in moves if m.family == family and was is ModelStatus.PROD]
            if not entering and not leaving:
                continue
            holder = RegistryItem(pk=f"FAMILY#{family}", sk="PROD", kind="prod-holder")
            previous = leaving[0].modelId if leaving else None
            condition = RegistryItem.pk.does_not_exist()
            if previous is not None:
                condition = condition | (RegistryItem.doc == json.dumps({"modelId": previous}))
            if entering:
                holder.doc = json.dumps({"modelId": entering[0].modelId})
                tx.save(holder, condition=condition)
            else:
                tx.delete(holder, condition=condition)

    def stage_changes(self, family: str) -> list[StageChange]:
        items = RegistryItem.query(
            f"FAMILY#{family}",
            range_key_condition=RegistryItem.sk.startswith("STAGE#"),
            consistent_read=True,
        )
        return [c for c in (_entity(i, StageChange) for i in items) if c is not None]

    def promotions_of(self, model_id: str) -> list[Promotion]:
        items = RegistryItem.gsi1.query(f"PROMOTIONS#{model_id}")
        return [p for p in (_entity(i, Promotion) for i in items) if p is not None]

    def _promotion_item(self, promotion: Promotion) -> RegistryItem:
        return _item(
            f"PROMOTION#{promotion.promotionId}",
            "PROMOTION",
            "promotion",
            promotion,
            status=promotion.status,
            rev=promotion.revision,
            gsi1pk=f"PROMOTIONS#{promotion.modelId}",
            gsi1sk=promotion.requestedAt.isoformat(),
        )

    # --- deployments ----------------------------------------------------------------------

    def create_deployment(self, record: DeploymentRecord) -> None:
        self._put_new(self._deployment_item(record))

    def get_deployment(self, deploy_id: str) -> DeploymentRecord | None:
        return _entity(self._get(f"DEPLOY#{deploy_id}", "DEPLOY"), DeploymentRecord)

    def save_deployment(self, record: DeploymentRecord, expected_revision: int) -> None:
        _save_revised(self._deployment_item(record), expected_revision)

    def live_deployment(self, endpoint: str) -> str | None:
        item = self._get(f"ENDPOINT#{endpoint}", "LIVE")
        return str(json.loads(item.doc)["deployId"]) if item and item.doc else None

    def set_live_deployment(self, endpoint: str, deploy_id: str) -> None:
        item = _item(
            f"ENDPOINT#{endpoint}", "LIVE", "live-deployment", gsi1pk="LIVE", gsi1sk=endpoint
        )
        item.doc = json.dumps({"deployId": deploy_id})
        item.save()

    def live_deployments(self) -> list[tuple[str, str]]:
        return [
            (str(item.gsi1sk), str(json.loads(item.doc)["deployId"]))
            for item in RegistryItem.gsi1.query("LIVE")
            if item.doc
        ]

    @staticmethod
    def _deployment_item(record: DeploymentRecord) -> RegistryItem:
        return _item(
            f"DEPLOY#{record.deployId}",
            "DEPLOY",
            "deployment",
            record,
            status=record.status.value,
            rev=record.revision,
        )

    # --- training jobs --------------------------------------------------------------------

    def create_training_job(self, job: TrainingJob) -> None:
        self._put_new(self._job_item(job))

    def get_training_job(self, job_id: str) -> TrainingJob | None:
        return _entity(self._get(f"TRAINJOB#{job_id}", "JOB"), TrainingJob)

    def save_training_job(self, job: TrainingJob, expected_revision: int) -> None:
        _save_revised(self._job_item(job), expected_revision)

    def list_training_jobs(
        self, family: str | None, limit: int, token: str | None
    ) -> Page[TrainingJob]:
        prefix = f"{family}#" if family else None
        return self._list(
            "TRAININGJOBS", prefix=prefix, status=None, limit=limit, token=token, cls=TrainingJob
        )

    @staticmethod
    def _job_item(job: TrainingJob) -> RegistryItem:
        return _item(
            f"TRAINJOB#{job.jobId}",
            "JOB",
            "training-job",
            job,
            status=job.status.value,
            rev=job.revision,
            gsi1pk="TRAININGJOBS",
            gsi1sk=f"{job.modelFamily}#{job.createdAt.isoformat()}#{job.jobId}",
        )

    # --- evaluations ----------------------------------------------------------------------

    def create_sanitization(self, run: SanitizationRun) -> None:
        self._put_new(_item(f"SANITIZE#{run.runId}", "RUN", "sanitization", run))

    def get_sanitization(self, run_id: str) -> SanitizationRun | None:
        return _entity(self._get(f"SANITIZE#{run_id}", "RUN"), SanitizationRun)

    def save_sanitization(self, run: SanitizationRun) -> None:
        _item(f"SANITIZE#{run.runId}", "RUN", "sanitization", run).save()

    def create_evaluation(self, record: EvaluationRecord) -> None:
        self._put_new(self._evaluation_item(record))

    def get_evaluation(self, evaluation_id: str) -> EvaluationRecord | None:
        return _entity(self._get(f"EVAL#{evaluation_id}", "EVAL"), EvaluationRecord)

    def save_evaluation(self, record: EvaluationRecord, expected_revision: int) -> None:
        _save_revised(self._evaluation_item(record), expected_revision)

    def evaluations_of(self, model_id: str) -> list[EvaluationRecord]:
        return self._index(f"EVALS#{model_id}", EvaluationRecord, newest_first=False, limit=None)

    @staticmethod
    def _evaluation_item(record: EvaluationRecord) -> RegistryItem:
        return _item(
            f"EVAL#{record.evaluationId}",
            "EVAL",
            "evaluation",
            record,
            status=record.status,
            rev=record.revision,
            gsi1pk=f"EVALS#{record.modelId}",
            gsi1sk=f"{record.createdAt.isoformat()}#{record.evaluationId}",
        )

    # --- drift ------------------------------------------------------------------------------

    def put_baseline(self, baseline: DriftBaseline) -> None:
        _item(f"MODEL#{baseline.modelId}", "BASELINE", "drift-baseline", baseline).save()

    def get_baseline(self, model_id: str) -> DriftBaseline | None:
        return _entity(self._get(f"MODEL#{model_id}", "BASELINE"), DriftBaseline)

    def create_finding(self, finding: DriftFinding) -> None:
        self._put_new(
            _item(
                f"FINDING#{finding.findingId}",
                "FINDING",
                "drift-finding",
                finding,
                status=finding.status,
                gsi1pk=f"FINDINGS#{finding.modelId}",
                gsi1sk=f"{finding.windowEnd.isoformat()}#{finding.findingId}",
            )
        )

    def get_finding(self, finding_id: str) -> DriftFinding | None:
        return _entity(self._get(f"FINDING#{finding_id}", "FINDING"), DriftFinding)

    def findings_of(self, model_id: str, limit: int) -> list[DriftFinding]:
        return self._index(f"FINDINGS#{model_id}", DriftFinding, newest_first=True, limit=limit)

    def create_alert(self, alert: DriftAlert) -> None:
        self._put_new(
            _item(
                f"ALERT#{alert.alertId}",
                "ALERT",
                "drift-alert",
                alert,
                gsi1pk=f"ALERTS#{alert.modelId}",
                gsi1sk=f"{alert.raisedAt.isoformat()}#{alert.alertId}",
            )
        )

    def get_alert(self, alert_id: str) -> DriftAlert | None:
        return _entity(self._get(f"ALERT#{alert_id}", "ALERT"), DriftAlert)

    def alerts_of(self, model_id: str, limit: int) -> list[DriftAlert]:
        return self._index(f"ALERTS#{model_id}", DriftAlert, newest_first=True, limit=limit)

    def create_proposal(self, proposal: RetrainProposal) -> None:
        self._put_new(self._proposal_item(proposal))

    def get_proposal(self, proposal_id: str) -> RetrainProposal | None:
        return _entity(self._get(f"PROPOSAL#{proposal_id}", "PROPOSAL"), RetrainProposal)

    def save_proposal(self, proposal: RetrainProposal, expected_revision: int) -> None:
        _save_revised(self._proposal_item(proposal), expected_revision)

    def proposals_of(self, model_id: str, limit: int) -> list[RetrainProposal]:
        return self._index(f"PROPOSALS#{model_id}", RetrainProposal, newest_first=True, limit=limit)

    @staticmethod
    def _proposal_item(proposal: RetrainProposal) -> RegistryItem:
        return _item(
            f"PROPOSAL#{proposal.proposalId}",
            "PROPOSAL",
            "retrain-proposal",
            proposal,
            status=proposal.status,
            rev=proposal.revision,
            gsi1pk=f"PROPOSALS#{proposal.modelId}",
            gsi1sk=f"{proposal.createdAt.isoformat()}#{proposal.proposalId}",
        )

    def get_quarantine(self, model_id: str) -> Quarantine | None:
        return _entity(self._get(f"MODEL#{model_id}", "QUARANTINE"), Quarantine)

    def save_quarantine(self, quarantine: Quarantine, expected_revision: int | None) -> None:
        item = _item(
            f"MODEL#{quarantine.modelId}",
            "QUARANTINE",
            "quarantine",
            quarantine,
            rev=quarantine.revision,
        )
        if expected_revision is None:
            self._put_new(item)
        else:
            _save_revised(item, expected_revision)

    def put_labels(self, model_id: str, labels: Sequence[GroundTruth]) -> None:
        with RegistryItem.batch_write() as batch:
            for label in labels:
                batch.save(_item(f"LABEL#{model_id}", label.inferenceId, "label", label))

    def get_labels(self, model_id: str, inference_ids: Sequence[str]) -> dict[str, str]:
        keys = [(f"LABEL#{model_id}", i) for i in dict.fromkeys(inference_ids)]
        found: dict[str, str] = {}
        for item in RegistryItem.batch_get(keys, consistent_read=True):
            label = _entity(item, GroundTruth)
            if label is not None:
                found[label.inferenceId] = label.label
        return found

    # --- watermarks ----------------------------------------------------------------------

    def put_watermark(self, record: WatermarkRecord) -> None:
        _item(
            f"MODEL#{record.modelId}",
            "WATERMARK",
            "watermark",
            record,
            gsi1pk=f"WATERMARKS#{record.family}",
            gsi1sk=f"{semver_sort_key(record.version)}#{record.version}",
        ).save()

    def get_watermark(self, model_id: str) -> WatermarkRecord | None:
        return _entity(self._get(f"MODEL#{model_id}", "WATERMARK"), WatermarkRecord)

    def watermarks_of(self, family: str) -> list[WatermarkRecord]:
        return self._index(f"WATERMARKS#{family}", WatermarkRecord, newest_first=False, limit=None)

    def _index(
        self, index_value: str, cls: type[E], *, newest_first: bool, limit: int | None
    ) -> list[E]:
        results = RegistryItem.gsi1.query(
            index_value, scan_index_forward=not newest_first, limit=limit
        )
        return [e for e in (_entity(i, cls) for i in results) if e is not None]

    @staticmethod
    def _model_item(model: ModelVersion) -> RegistryItem:
        return _item(
            f"MODEL#{model.modelId}",
            "MODEL",
            "model",
            model,
            status=model.status.value,
            gsi1pk="MODELS",
            gsi1sk=f"{model.family}#{semver_sort_key(model.version)}#{model.version}",
        )


def _save_revised(item: RegistryItem, expected_revision: int) -> None:
    """Replace a record only if the stored revision is the one its writer read."""
    try:
        item.save(condition=RegistryItem.rev == expected_revision)
    except Exception as exc:
        if _conditional_failure(exc):
            raise StaleWrite(item.pk) from exc
        raise


def _conditional_failure(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    return cause == "ConditionalCheckFailedException"
