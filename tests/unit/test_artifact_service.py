from __future__ import annotations

import hashlib

import pytest

from modelops.config import Settings
from modelops.contracts.registry import CompletedPart, CompleteUploadRequest, StartUploadRequest
from modelops.domain.access import Caller, Role
from modelops.domain.entities import UploadStatus
from modelops.domain.manifest import FileEntry
from modelops.errors import (
    Conflict,
    DigestMismatch,
    Forbidden,
    NotFound,
    UploadNotComplete,
    ValidationFailed,
)
from modelops.services.artifacts import ArtifactService, blob_key
from tests.unit.fakes import FixedClock, MemoryBlobStore, MemoryRegistry

ALICE = Caller("arn:aws:iam::123456789012:user/alice", frozenset({Role.ML_ENGINEER}))
MALLORY = Caller("arn:aws:iam::123456789012:user/mallory", frozenset({Role.ML_ENGINEER}))


def entry(path: str, data: bytes) -> FileEntry:
    return FileEntry(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())


@pytest.fixture
def parts() -> tuple[ArtifactService, MemoryRegistry, MemoryBlobStore]:
    repo, blobs = MemoryRegistry(), MemoryBlobStore()
    settings = Settings(
        region="us-east-1", multipart_threshold_bytes=10, multipart_part_bytes=5 * 1024 * 1024
    )
    return ArtifactService(repo, blobs, FixedClock(), settings), repo, blobs


def upload(
    service: ArtifactService,
    blobs: MemoryBlobStore,
    files: dict[str, bytes],
    principal: Caller = ALICE,
) -> str:
    started = service.start_upload(
        StartUploadRequest(name="model", files=[entry(p, d) for p, d in files.items()]), principal
    )
    session_files = dict(zip(sorted(files), [t.url for t in started.targets], strict=True))
    for path, url in session_files.items():
        if url is not None:
            blobs.put(url.removeprefix("memory://put/"), files[path])
    return started.uploadId


def test_completed_upload_registers_artifact_with_root_digest_and_content_addressed_blobs(
    parts,
) -> None:  # type: ignore[no-untyped-def]
    service, repo, blobs = parts
    upload_id = upload(service, blobs, {"a.txt": b"alpha", "b.txt": b"beta"})
    artifact = service.complete_upload(upload_id, CompleteUploadRequest(), ALICE)
    assert [f.path for f in artifact.files] == ["a.txt", "b.txt"]
    expected_root = hashlib.sha256(
        hashlib.sha256(b"alpha").digest() + hashlib.sha256(b"beta").digest()
    ).hexdigest()
    assert artifact.rootDigest == expected_root
    assert blobs.objects[blob_key(hashlib.sha256(b"beta").hexdigest())] == b"beta"
    assert repo.uploads[upload_id].status is UploadStatus.COMPLETED
    # completing again (a retry) returns the same artifact
    assert service.complete_upload(upload_id, CompleteUploadRequest(), ALICE) == artifact


def test_same_content_uploaded_twice_yields_the_same_artifact_id(parts) -> None:  # type: ignore[no-untyped-def]
    service, _, blobs = parts
    first = service.complete_upload(
        upload(service, blobs, {"w": b"x"}), CompleteUploadRequest(), ALICE
    )
    second = service.complete_upload(
        upload(service, blobs, {"w": b"x"}), CompleteUploadRequest(), ALICE
    )
    assert first.artifactId == second.artifactId


def test_bytes_that_do_not_match_the_declared_sha256_are_rejected_and_discarded(parts) -> None:  # type: ignore[no-untyped-def]
    service, repo, blobs = parts
    started = service.start_upload(StartUploadRequest(name="m", files=[entry("a", b"good")]), ALICE)
    key = started.targets[0].url.removeprefix("memory://put/")  # type: ignore[union-attr]
    blobs.put(key, b"evil")
    with pytest.raises(DigestMismatch) as caught:
        service.complete_upload(started.uploadId, CompleteUploadRequest(), ALICE)
    assert caught.value.details[0]["actualSha256"] == hashlib.sha256(b"evil").hexdigest()
    assert not repo.artifacts
    assert key not in blobs.objects
    assert repo.uploads[started.uploadId].status is UploadStatus.FAILED
    with pytest.raises(Conflict):
        service.complete_upload(started.uploadId, CompleteUploadRequest(), ALICE)


def test_completing_before_every_file_arrived_is_refused_and_can_be_retried(parts) -> None:  # type: ignore[no-untyped-def]
    service, repo, blobs = parts
    started = service.start_upload(StartUploadRequest(name="m", files=[entry("a", b"1")]), ALICE)
    with pytest.raises(UploadNotComplete):
        service.complete_upload(started.uploadId, CompleteUploadRequest(), ALICE)
    assert repo.uploads[started.uploadId].status is UploadStatus.OPEN
    blobs.put(started.targets[0].url.removeprefix("memory://put/"), b"1")  # type: ignore[union-attr]
    assert service.complete_upload(started.uploadId, CompleteUploadRequest(), ALICE).totalSize == 1


def test_only_the_uploader_can_complete_an_upload(parts) -> None:  # type: ignore[no-untyped-def]
    service, _, blobs = parts
    upload_id = upload(service, blobs, {"a": b"1"})
    with pytest.raises(Forbidden):
        service.complete_upload(upload_id, CompleteUploadRequest(), MALLORY)
    with pytest.raises(NotFound):
        service.complete_upload("upl-" + "0" * 32, CompleteUploadRequest(), ALICE)


def test_large_files_go_multipart_and_need_every_part_etag(parts) -> None:  # type: ignore[no-untyped-def]
    service, _, blobs = parts
    data = b"x" * (12 * 1024 * 1024)
    started = service.start_upload(
        StartUploadRequest(name="big", files=[entry("big.bin", data)]), ALICE
    )
    target = started.targets[0]
    assert target.url is None and target.multipart is not None
    assert [p.partNumber for p in target.multipart.parts] == [1, 2, 3]
    mpu = target.multipart.parts[0].url.split("/")[-2]
    size = target.multipart.partBytes
    etags = [
        CompletedPart(partNumber=n, etag=blobs.upload_part(mpu, n, data[(n - 1) * size : n * size]))
        for n in (1, 2, 3)
    ]
    with pytest.raises(ValidationFailed, match=r"parts 1\.\.3"):
        service.complete_upload(
            started.uploadId, CompleteUploadRequest(parts={"big.bin": etags[:2]}), ALICE
        )
    artifact = service.complete_upload(
        started.uploadId, CompleteUploadRequest(parts={"big.bin": etags}), ALICE
    )
    assert artifact.files[0].sha256 == hashlib.sha256(data).hexdigest()


def test_download_urls_are_presigned_per_file_on_request(parts) -> None:  # type: ignore[no-untyped-def]
    service, _, blobs = parts
    artifact = service.complete_upload(
        upload(service, blobs, {"dir/w.bin": b"w"}), CompleteUploadRequest(), ALICE
    )
    assert service.get(artifact.artifactId, download=False).downloads is None
    urls = service.get(artifact.artifactId, download=True).downloads
    assert urls == {
        "dir/w.bin": f"memory://get/{blob_key(hashlib.sha256(b'w').hexdigest())}?filename=w.bin"
    }
