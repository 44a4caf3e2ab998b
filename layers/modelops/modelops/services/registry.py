"""Datasets and model versions: natural-key idempotent registration with lineage.

Each registration is published (``Dataset Registered``, ``Model Registered``) after it is
stored, and again when a retry finds it stored: a publication that failed is made by the
retry, so consumers see every registration at least once (keyed by its id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from modelops import correlation
from modelops.contracts.registry import (
    DatasetList,
    DatasetResponse,
    ModelList,
    ModelResponse,
    RegisterDatasetRequest,
    RegisterModelRequest,
)
from modelops.domain import ids
from modelops.domain.access import Caller, Permission
from modelops.domain.digests import canonical_digest
from modelops.domain.entities import (
    Artifact,
    Dataset,
    LineageNode,
    ModelStatus,
    ModelVersion,
)
from modelops.errors import (
    Conflict,
    DigestMismatch,
    NotFound,
    PiiNotEscrowed,
    ReferenceNotFound,
    ValidationFailed,
)
from modelops.ports import (
    AlreadyExists,
    Clock,
    MissingReferences,
    RegistryRepository,
    VersionTaken,
)

if TYPE_CHECKING:
    from modelops.contracts.events import EventDetail

VERSION_ATTEMPTS = 8
MAX_PAGE = 100


def _page_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(
            f"limit must be between 1 and {MAX_PAGE}",
            details=[{"field": "limit", "message": f"1..{MAX_PAGE}"}],
        )
    return limit


class RegistryService:
    def __init__(
        self, repo: RegistryRepository, clock: Clock, publish: Callable[[EventDetail], None]
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._publish = publish

    # --- datasets ----------------------------------------------------------------------

    def register_dataset(self, request: RegisterDatasetRequest, caller: Caller) -> DatasetResponse:
        caller.require(Permission.REGISTER)
        artifact = self._artifact(request.artifactId)
        if request.piiFlags and artifact.storage != "escrow":
            raise PiiNotEscrowed(
                "a dataset flagged PII must be uploaded to escrow (POST /artifact/upload with "
                '"escrow": true) and registered from there; models are trained on its '
                "sanitized derivative (POST /dataset/{id}/sanitize)",
                details=[{"field": "artifactId", "message": "not in escrow"}],
            )
        if artifact.storage == "escrow" and not request.piiFlags:
            raise ValidationFailed(
                f"artifact {artifact.artifactId} is in escrow, which holds raw personal data "
                "only: declare the dataset's piiFlags",
                details=[{"field": "piiFlags", "message": "required for escrowed content"}],
            )
        return self.record_dataset(request, caller.principal, artifact)

    def record_dataset(
        self,
        request: RegisterDatasetRequest,
        principal: str,
        artifact: Artifact,
        sanitization: str | None = None,
    ) -> DatasetResponse:
        """Register ``request`` (content ``artifact``) for ``principal`` without the API's
        checks: for the sanitizer (``sanitization``: its run), whose derivative may keep
        PII flags outside escrow (what sanitization left, for approvers to decide on)."""
        if request.checksum is not None and request.checksum != artifact.rootDigest:
            raise DigestMismatch(
                "checksum does not match the artifact's root digest",
                details=[
                    {
                        "field": "checksum",
                        "message": "differs from the uploaded content",
                        "declared": request.checksum,
                        "actual": artifact.rootDigest,
                    }
                ],
            )
        digest = canonical_digest(request.model_dump(mode="json", exclude={"checksum"}))
        dataset_id = ids.dataset_id(request.name, artifact.rootDigest)
        existing = self._repo.get_dataset(dataset_id)
        if existing is not None:
            return self._dataset_registered(self._same(existing, digest, dataset_id), False)

        sources = [
            LineageNode(nodeId=ids.source_id(ref), kind="source", label=ref)
            for ref in request.sourceRefs
            if "://" in ref
        ]
        parents = tuple(
            ref if "://" not in ref else ids.source_id(ref) for ref in request.sourceRefs
        )
        now = self._clock.now()
        for _ in range(VERSION_ATTEMPTS):
            dataset = Dataset(
                datasetId=dataset_id,
                name=request.name,
                version=self._repo.latest_dataset_version(request.name) + 1,
                artifactId=artifact.artifactId,
                checksum=artifact.rootDigest,
                sourceRefs=tuple(request.sourceRefs),
                transformations=tuple(request.transformations),
                license=request.license,
                piiFlags=tuple(request.piiFlags),
                usageRestrictions=request.usageRestrictions,
                description=request.description,
                createdAt=now,
                createdBy=principal,
                requestDigest=digest,
                storage=artifact.storage,
                sanitization=sanitization,
            )
            node = LineageNode(
                nodeId=dataset_id,
                kind="dataset",
                label=f"{request.name}@v{dataset.version}",
                digest=artifact.rootDigest,
                license=request.license,
                piiFlags=tuple(request.piiFlags),
                parents=parents,
                createdAt=now,
            )
            try:
                self._repo.create_dataset(dataset, node, sources)
            except VersionTaken:
                continue
            except AlreadyExists:
                stored = self._repo.get_dataset(dataset_id)
                if stored is None:  # the winner's transaction is visible on the next read
                    continue
                return self._dataset_registered(self._same(stored, digest, dataset_id), False)
            except MissingReferences as exc:
                raise _missing(exc, "sourceRefs") from exc
            return self._dataset_registered(dataset, True)
        raise Conflict(f"too many concurrent registrations under the name {request.name!r}; retry")

    def get_dataset(self, dataset_id: str) -> Dataset:
        dataset = self._repo.get_dataset(dataset_id)
        if dataset is None:
            raise NotFound(f"dataset {dataset_id} does not exist")
        return dataset

    def list_datasets(self, name: str | None, limit: int, token: str | None) -> DatasetList:
        page = self._repo.list_datasets(name, _page_limit(limit), token)
        return DatasetList(items=page.items, nextToken=page.next_token)

    # --- models ------------------------------------------------------------------------

    def register_model(self, request: RegisterModelRequest, caller: Caller) -> ModelResponse:
        caller.require(Permission.REGISTER)
        return self.record_model(request, caller.principal)

    def record_model(self, request: RegisterModelRequest, principal: str) -> ModelResponse:
        """Register a model version for ``principal`` without a permission check: for the
        training workflow, whose submitter's permission was checked at submission."""
        artifact = self._artifact(request.artifactId)
        digest = canonical_digest(request.model_dump(mode="json"))
        model_id = ids.model_id(request.family, request.version)
        now = self._clock.now()
        model = ModelVersion(
            modelId=model_id,
            family=request.family,
            version=request.version,
            codeRef=request.codeRef,
            artifactId=artifact.artifactId,
            rootDigest=artifact.rootDigest,
            metrics=request.metrics,
            createdAt=now,
            createdBy=principal,
            status=ModelStatus.DRAFT,
            lineage=request.lineage,
            provenance=request.provenance,
            description=request.description,
            requestDigest=digest,
        )
        node = LineageNode(
            nodeId=model_id,
            kind="model",
            label=f"{request.family}@{request.version}",
            digest=artifact.rootDigest,
            parents=(*request.lineage.datasets, *request.lineage.parentModels),
            createdAt=now,
        )
        try:
            self._repo.create_model(model, node)
        except AlreadyExists:
            stored = self._repo.get_model(model_id)
            if stored is None or stored.requestDigest != digest:
                raise Conflict(
                    f"{request.family} {request.version} is already registered with different "
                    "content; model versions are immutable, register a new version",
                    details=[{"field": "version", "message": "already registered"}],
                ) from None
            return self._model_registered(stored, False)
        except MissingReferences as exc:
            raise _missing(exc, "lineage") from exc
        return self._model_registered(model, True)

    def _dataset_registered(self, dataset: Dataset, created: bool) -> DatasetResponse:
        from modelops.contracts.events import DatasetRegistered

        self._publish(
            DatasetRegistered(
                datasetId=dataset.datasetId,
                name=dataset.name,
                version=str(dataset.version),
                digest=dataset.checksum,
                artifactId=dataset.artifactId,
                license=dataset.license,
                piiFlags=list(dataset.piiFlags),
                parents=[ref for ref in dataset.sourceRefs if "://" not in ref],
                createdBy=dataset.createdBy,
                correlationId=correlation.current(dataset.datasetId),
                resourcePath=f"/dataset/{dataset.datasetId}",
            )
        )
        return DatasetResponse(dataset=dataset, created=created)

    def _model_registered(self, model: ModelVersion, created: bool) -> ModelResponse:
        from modelops.contracts.events import ModelRegistered

        self._publish(
            ModelRegistered(
                modelId=model.modelId,
                family=model.family,
                version=model.version,
                rootDigest=model.rootDigest,
                artifactId=model.artifactId,
                datasets=list(model.lineage.datasets),
                parentModels=list(model.lineage.parentModels),
                createdBy=model.createdBy,
                trainingJobId=model.provenance.get("trainingJobId"),
                correlationId=correlation.current(model.modelId),
                resourcePath=f"/models/{model.modelId}",
            )
        )
        return ModelResponse(model=model, created=created)

    def get_model(self, model_id: str) -> ModelVersion:
        model = self._repo.get_model(model_id)
        if model is None:
            raise NotFound(f"model {model_id} does not exist")
        return model

    def list_models(
        self,
        family: str | None,
        status: ModelStatus | None,
        limit: int,
        token: str | None,
        family_prefix: str | None = None,
    ) -> ModelList:
        if family and family_prefix:
            raise ValidationFailed(
                "give family (exact) or familyPrefix (search), not both",
                details=[{"field": "familyPrefix", "message": "conflicts with family"}],
            )
        page = self._repo.list_models(
            family, status, _page_limit(limit), token, family_prefix=family_prefix
        )
        return ModelList(items=page.items, nextToken=page.next_token)

    # --- helpers -----------------------------------------------------------------------

    def _artifact(self, artifact_id: str) -> Artifact:
        artifact = self._repo.get_artifact(artifact_id)
        if artifact is None:
            raise ReferenceNotFound(
                f"artifact {artifact_id} does not exist; upload it first",
                details=[{"field": "artifactId", "message": "unknown artifact"}],
            )
        return artifact

    @staticmethod
    def _same(existing: Dataset, digest: str, dataset_id: str) -> Dataset:
        if existing.requestDigest != digest:
            raise Conflict(
                f"dataset {dataset_id} (same name and content) is already registered with "
                "different metadata; registrations are immutable",
                details=[{"field": "name", "message": "already registered with this content"}],
            )
        return existing


def _missing(exc: MissingReferences, field: str) -> ReferenceNotFound:
    return ReferenceNotFound(
        f"unknown lineage references: {', '.join(exc.ids)}",
        details=[{"field": field, "message": f"{ref} does not exist"} for ref in exc.ids],
    )
