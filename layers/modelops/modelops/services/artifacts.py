"""Artifact ingest: presigned uploads, server-side SHA-256 verification, immutable records."""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

from modelops.config import Settings
from modelops.contracts.registry import (
    ArtifactResponse,
    CompleteUploadRequest,
    MultipartTarget,
    PresignedPart,
    StartUploadRequest,
    StartUploadResponse,
    UploadTarget,
)
from modelops.domain import ids
from modelops.domain.access import Caller, Permission
from modelops.domain.digests import canonical_digest, sha256_base64
from modelops.domain.entities import Artifact, UploadPart, UploadSession, UploadStatus
from modelops.domain.manifest import FileEntry, Manifest
from modelops.errors import (
    Conflict,
    DigestMismatch,
    Escrowed,
    Forbidden,
    Gone,
    NotFound,
    ServiceUnavailable,
    UploadNotComplete,
    ValidationFailed,
)
from modelops.ports import (
    AlreadyExists,
    BlobStore,
    Clock,
    RegistryRepository,
    RetentionRepository,
)

MAX_PARTS = 10_000
MAX_SINGLE_PUT = 5 * 1024**3  # S3's largest PutObject


COPY_WORKERS = 8  # S3 calls are latency-bound: overlap them (boto3 clients are thread-safe)
T = TypeVar("T")
R = TypeVar("R")


def each(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, with up to COPY_WORKERS calls in flight."""
    if len(items) < 2:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(COPY_WORKERS, len(items))) as pool:
        return list(pool.map(fn, items))


def blob_key(sha256: str) -> str:
    """Content-addressed location of verified bytes: identical content is stored once."""
    return f"blobs/sha256/{sha256}"


def escrow_prefix(artifact_id: str) -> str:
    """Where an escrowed artifact's files live in the escrow bucket, under their paths (so
    a job allowed to read raw data takes the prefix as its channel, nothing copied)."""
    return f"raw/{artifact_id}/"


class ArtifactService:
    def __init__(
        self,
        repo: RegistryRepository,
        blobs: BlobStore,
        clock: Clock,
        settings: Settings,
        *,
        escrow: BlobStore | None = None,
        retention: RetentionRepository | None = None,
    ) -> None:
        """``escrow``: the escrow bucket, in functions that upload raw PII to it;
        ``retention``: artifacts' retention states (expired ones are not downloadable)."""
        self._repo = repo
        self._retention = retention
        self._blobs = blobs
        self._escrow = escrow
        self._clock = clock
        self._settings = settings

    def start_upload(self, request: StartUploadRequest, caller: Caller) -> StartUploadResponse:
        caller.require(Permission.REGISTER)
        manifest = Manifest(files=tuple(request.files))  # validates unique paths
        if request.escrow:
            return self._start_escrow_upload(request, caller, manifest)
        upload_id = f"{ids.UPLOAD}-{uuid.uuid4().hex}"
        part_bytes = request.partBytes or self._settings.multipart_part_bytes
        # A client that names a part size gets multipart for every file larger than it.
        threshold = request.partBytes or self._settings.multipart_threshold_bytes
        expiry = self._settings.presign_expiry_seconds
        parts: list[UploadPart] = []
        targets: list[UploadTarget] = []
        for index, entry in enumerate(manifest.files):
            key = f"staging/{upload_id}/{index:04d}"
            if entry.size <= threshold:
                parts.append(UploadPart(file=entry.path, s3Key=key))
                targets.append(
                    UploadTarget(path=entry.path, url=self._blobs.presign_put(key, expiry))
                )
                continue
            count = math.ceil(entry.size / part_bytes)
            if count > MAX_PARTS:
                raise ValidationFailed(
                    f"{entry.path}: {count} parts of {part_bytes} bytes exceed S3's "
                    f"{MAX_PARTS}; choose a larger partBytes",
                    details=[{"field": "partBytes", "message": "too small for this file"}],
                )
            mpu = self._blobs.start_multipart(key)
            parts.append(
                UploadPart(
                    file=entry.path,
                    s3Key=key,
                    multipartUploadId=mpu,
                    partCount=count,
                    partBytes=part_bytes,
                )
            )
            urls = [
                PresignedPart(partNumber=n, url=self._blobs.presign_part(key, mpu, n, expiry))
                for n in range(1, count + 1)
            ]
            targets.append(
                UploadTarget(
                    path=entry.path, multipart=MultipartTarget(partBytes=part_bytes, parts=urls)
                )
            )
        return self._open(request, caller, upload_id, manifest, (parts, targets))

    def _start_escrow_upload(
        self, request: StartUploadRequest, caller: Caller, manifest: Manifest
    ) -> StartUploadResponse:
        """Raw PII goes straight to escrow, each file at its final key with a PUT URL
        signed over its SHA-256: S3 refuses other bytes, so completing reads nothing."""
        escrow = self._escrow_store()
        too_large = [f.path for f in manifest.files if f.size > MAX_SINGLE_PUT]
        if too_large:
            raise ValidationFailed(
                f"escrow files are single PUTs of at most 5 GiB: split {', '.join(too_large)}",
                details=[{"field": path, "message": "larger than 5 GiB"} for path in too_large],
            )
        prefix = escrow_prefix(ids.escrow_artifact_id(manifest.manifest_digest))
        expiry = self._settings.presign_expiry_seconds
        parts = [UploadPart(file=f.path, s3Key=f"{prefix}{f.path}") for f in manifest.files]
        targets = [
            UploadTarget(
                path=f.path,
                url=escrow.presign_put(part.s3Key, expiry, f.sha256),
                headers={"x-amz-checksum-sha256": sha256_base64(f.sha256)},
            )
            for f, part in zip(manifest.files, parts, strict=True)
        ]
        upload_id = f"{ids.UPLOAD}-{uuid.uuid4().hex}"
        return self._open(request, caller, upload_id, manifest, (parts, targets))

    def _open(
        self,
        request: StartUploadRequest,
        caller: Caller,
        upload_id: str,
        manifest: Manifest,
        plan: tuple[list[UploadPart], list[UploadTarget]],
    ) -> StartUploadResponse:
        parts, targets = plan
        now = self._clock.now()
        session = UploadSession(
            uploadId=upload_id,
            name=request.name,
            files=manifest.files,
            parts=tuple(parts),
            status=UploadStatus.OPEN,
            createdBy=caller.principal,
            createdAt=now,
            expiresAt=now + timedelta(seconds=self._settings.presign_expiry_seconds),
            requestDigest=canonical_digest(request.model_dump(mode="json")),
            escrow=request.escrow,
        )
        self._repo.create_upload(session)
        return StartUploadResponse(
            uploadId=upload_id,
            status=session.status.value,
            expiresAt=session.expiresAt.isoformat(),
            targets=targets,
        )

    def _observed(
        self, session: UploadSession, key: str, entry: FileEntry
    ) -> tuple[str, int] | None:
        """SHA-256 and size of an uploaded file, None if it is not there. In escrow, where
        nothing reads: S3 refused any body but the one whose SHA-256 the signed PUT
        declared, so that it verified one, and the size, are all a listing need show."""
        if not session.escrow:
            return self._blobs.sha256_of(key)
        size = self._escrow_store().checked_size(key)
        return None if size is None else (entry.sha256, size)

    def _escrow_store(self) -> BlobStore:
        if self._escrow is None:
            raise ServiceUnavailable("this deployment has no escrow bucket for raw PII")
        return self._escrow

    def complete_upload(
        self, upload_id: str, request: CompleteUploadRequest, caller: Caller
    ) -> Artifact:
        caller.require(Permission.REGISTER)
        session = self._repo.get_upload(upload_id)
        if session is None:
            raise NotFound(f"upload {upload_id} does not exist")
        if session.createdBy != caller.principal:
            raise Forbidden("only the principal that started an upload can complete it")
        if session.status is UploadStatus.COMPLETED and session.artifactId:
            return self._existing_artifact(session.artifactId)
        if session.status is UploadStatus.FAILED:
            raise Conflict(
                f"upload {upload_id} failed verification ({session.failure}); start a new upload"
            )
        if not session.escrow:
            self._complete_multipart(session, request)
        mismatches: list[dict[str, object]] = []
        missing: list[str] = []
        for entry, part in zip(session.files, session.parts, strict=True):
            observed = self._observed(session, part.s3Key, entry)
            if observed is None:
                missing.append(entry.path)
            elif observed != (entry.sha256, entry.size):
                mismatches.append(
                    {
                        "field": entry.path,
                        "message": "content does not match the declared sha256/size",
                        "declaredSha256": entry.sha256,
                        "actualSha256": observed[0],
                        "declaredSize": entry.size,
                        "actualSize": observed[1],
                    }
                )
        if missing:
            raise UploadNotComplete(
                f"{len(missing)} file(s) not uploaded yet: {', '.join(missing[:5])}",
                details=[{"field": path, "message": "not uploaded"} for path in missing],
            )
        if mismatches:
            failure = f"{len(mismatches)} file(s) failed SHA-256 verification"
            if not session.escrow:  # escrow writers may not delete: its lifecycle does
                self._discard(session)
            self._finish(
                session.model_copy(update={"status": UploadStatus.FAILED, "failure": failure})
            )
            raise DigestMismatch(failure, details=mismatches)

        if session.escrow:
            artifact = self._record_escrowed(session)
        else:
            artifact = self.record_files(
                session.name,
                [(e, p.s3Key) for e, p in zip(session.files, session.parts, strict=True)],
                principal=caller.principal,
                origin=upload_id,
            )
        self._finish(
            session.model_copy(
                update={"status": UploadStatus.COMPLETED, "artifactId": artifact.artifactId}
            )
        )
        # Staged copies stay until the bucket's lifecycle rule expires them: deleting them
        # here could pull them from under a concurrent completion of the same upload.
        return artifact

    def record_files(
        self,
        name: str,
        files: Sequence[tuple[FileEntry, str | None]],
        *,
        principal: str,
        origin: str,
    ) -> Artifact:
        """Record an artifact of verified files: each ``(entry, key)`` is copied from the
        bucket key to its content-addressed blob unless the blob exists (``key`` None: the
        bytes were written to the blob directly). ``origin`` is the upload or training job
        the files came from. Recording the same files again returns the stored artifact."""

        def store(item: tuple[FileEntry, str | None]) -> None:
            entry, key = item
            target = blob_key(entry.sha256)
            if key is not None and not self._blobs.exists(target):
                self._blobs.copy(key, target)

        each(store, files)
        manifest = Manifest(files=tuple(entry for entry, _ in files))
        artifact = Artifact(
            artifactId=ids.artifact_id(manifest.manifest_digest),
            name=name,
            rootDigest=manifest.root_digest,
            manifestDigest=manifest.manifest_digest,
            totalSize=manifest.total_size,
            files=manifest.files,
            createdBy=principal,
            createdAt=self._clock.now(),
            uploadId=origin,
        )
        try:
            self._repo.create_artifact(artifact)
        except AlreadyExists:
            return self._existing_artifact(artifact.artifactId)
        return artifact

    def _record_escrowed(self, session: UploadSession) -> Artifact:
        manifest = Manifest(files=session.files)
        artifact = Artifact(
            artifactId=ids.escrow_artifact_id(manifest.manifest_digest),
            name=session.name,
            rootDigest=manifest.root_digest,
            manifestDigest=manifest.manifest_digest,
            totalSize=manifest.total_size,
            files=manifest.files,
            createdBy=session.createdBy,
            createdAt=self._clock.now(),
            uploadId=session.uploadId,
            storage="escrow",
        )
        try:
            self._repo.create_artifact(artifact)
        except AlreadyExists:
            return self._existing_artifact(artifact.artifactId)
        return artifact

    def get(self, artifact_id: str, download: bool) -> ArtifactResponse:
        artifact = self._existing_artifact(artifact_id)
        downloads = None
        expired = self._retention.get_artifact_retention(artifact_id) if self._retention else None
        if download and expired is not None:
            raise Gone(
                f"artifact {artifact_id} was expired by retention ({expired.retentionClass}); "
                f"its tombstone {expired.tombstoneId} proves what it was: GET "
                f"/retention/tombstones/{expired.tombstoneId}",
                details=[
                    {
                        "field": "artifactId",
                        "message": "expired by retention",
                        "tombstoneId": expired.tombstoneId,
                    }
                ],
            )
        if download and artifact.storage == "escrow":
            raise Escrowed(
                f"artifact {artifact_id} is raw personal data in escrow: it is never "
                "downloaded through the API; sanitize its dataset (POST "
                "/dataset/{datasetId}/sanitize), or read it under break-glass",
                details=[{"field": "download", "message": "escrowed"}],
            )
        if download:
            expiry = self._settings.presign_expiry_seconds
            downloads = {
                f.path: self._blobs.presign_get(
                    blob_key(f.sha256), expiry, f.path.rsplit("/", 1)[-1]
                )
                for f in artifact.files
            }
        return ArtifactResponse(artifact=artifact, downloads=downloads, retention=expired)

    def _existing_artifact(self, artifact_id: str) -> Artifact:
        artifact = self._repo.get_artifact(artifact_id)
        if artifact is None:
            raise NotFound(f"artifact {artifact_id} does not exist")
        return artifact

    def _complete_multipart(self, session: UploadSession, request: CompleteUploadRequest) -> None:
        unknown = set(request.parts) - {p.file for p in session.parts if p.multipartUploadId}
        if unknown:
            raise ValidationFailed(
                f"parts given for files that are not multipart uploads: {sorted(unknown)}",
                details=[
                    {"field": f"parts.{path}", "message": "not a multipart file"}
                    for path in sorted(unknown)
                ],
            )
        for part in session.parts:
            if part.multipartUploadId is None or self._blobs.exists(part.s3Key):
                continue
            given = request.parts.get(part.file)
            if not given:
                raise ValidationFailed(
                    f"{part.file} is a multipart upload: send its parts' ETags",
                    details=[{"field": f"parts.{part.file}", "message": "missing"}],
                )
            numbers = sorted(p.partNumber for p in given)
            if numbers != list(range(1, part.partCount + 1)):
                raise ValidationFailed(
                    f"{part.file} needs parts 1..{part.partCount} exactly once",
                    details=[{"field": f"parts.{part.file}", "message": "incomplete part list"}],
                )
            try:
                self._blobs.complete_multipart(
                    part.s3Key,
                    part.multipartUploadId,
                    sorted((p.partNumber, p.etag) for p in given),
                )
            except ValueError as exc:
                raise ValidationFailed(
                    f"{part.file}: S3 refused the parts: {exc}",
                    details=[{"field": f"parts.{part.file}", "message": str(exc)}],
                ) from exc

    def _finish(self, session: UploadSession) -> None:
        # A concurrent completion of the same upload may have recorded its outcome first.
        with contextlib.suppress(AlreadyExists):
            self._repo.finish_upload(session)

    def _discard(self, session: UploadSession) -> None:
        for part in session.parts:
            self._blobs.delete(part.s3Key)
