"""``BlobStore`` over S3 (boto3)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from modelops.domain.digests import sha256_base64, sha256_stream

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore:
    def __init__(self, client: Any, bucket: str | None) -> None:
        """``bucket`` is None in functions not granted the bucket: any use is an error."""
        self._s3 = client
        self._bucket_name = bucket

    @property
    def _bucket(self) -> str:
        if not self._bucket_name:
            raise RuntimeError("this function is not configured with the artifact bucket")
        return self._bucket_name

    def presign_put(self, key: str, expires_s: int, sha256: str | None = None) -> str:
        params = {"Bucket": self._bucket, "Key": key}
        if sha256 is not None:  # signed: the PUT must carry it, and S3 checks the body
            params["ChecksumSHA256"] = sha256_base64(sha256)
        return str(
            self._s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires_s)
        )

    def checked_size(self, key: str) -> int | None:
        """The size of ``key`` if S3 verified a SHA-256 on its PUT (it lists the object
        with ChecksumAlgorithm SHA256); None if absent or put without one. A listing, not
        a read: s3:ListBucket, where GetObjectAttributes and HeadObject need s3:GetObject."""
        listed = self._s3.list_objects_v2(Bucket=self._bucket, Prefix=key, MaxKeys=1)
        for item in listed.get("Contents", []):
            if item["Key"] == key and "SHA256" in item.get("ChecksumAlgorithm", []):
                return int(item["Size"])
        return None

    def start_multipart(self, key: str) -> str:
        return str(self._s3.create_multipart_upload(Bucket=self._bucket, Key=key)["UploadId"])

    def presign_part(self, key: str, upload_id: str, part_number: int, expires_s: int) -> str:
        return str(
            self._s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": part_number,
                },
                ExpiresIn=expires_s,
            )
        )

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        try:
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]},
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall", "NoSuchUpload"}:
                raise ValueError(f"{code}: {exc.response['Error'].get('Message', '')}") from exc
            raise

    def sha256_of(self, key: str) -> tuple[str, int] | None:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        with response["Body"] as body:
            return sha256_stream(body)

    def exists(self, key: str) -> bool:
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def copy(self, source_key: str, target_key: str) -> None:
        # Managed copy: server-side, multipart for objects above 5 GB.
        self._s3.copy({"Bucket": self._bucket, "Key": source_key}, self._bucket, target_key)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def purge(self, key: str) -> int:
        """Delete every version of ``key`` and its delete markers (a versioned bucket keeps
        a deleted object's bytes as a noncurrent version otherwise)."""
        versions: list[dict[str, str]] = []
        for page in self._s3.get_paginator("list_object_versions").paginate(
            Bucket=self._bucket, Prefix=key
        ):
            versions += [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in (*page.get("Versions", ()), *page.get("DeleteMarkers", ()))
                if item["Key"] == key
            ]
        for start in range(0, len(versions), 1000):  # DeleteObjects takes 1000 at most
            self._s3.delete_objects(
                Bucket=self._bucket, Delete={"Objects": versions[start : start + 1000]}
            )
        return len(versions)

    def presign_get(self, key: str, expires_s: int, filename: str) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=expires_s,
            )
        )

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise
        with response["Body"] as body:
            return bytes(body.read())

    def download(self, key: str, path: Path) -> bool:
        try:
            self._s3.download_file(self._bucket, key, str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True

    def upload(self, path: Path, key: str) -> None:
        # Managed transfer: multipart above its threshold.
        self._s3.upload_file(str(path), self._bucket, key)

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(self.modified_times(prefix))

    def modified_times(self, prefix: str) -> dict[str, datetime]:
        return {
            item["Key"]: item["LastModified"]
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            for item in page.get("Contents", ())
        }
