"""A client of the ModelOps API that signs every request with SigV4, like the AWS CLI.

Credentials come from a boto3 session (the standard chain, profiles, or explicit keys).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from modelops.domain.manifest import Manifest


class ApiError(Exception):
    """A 4xx/5xx answer: ``code`` is the machine-readable error code."""

    def __init__(self, status: int, body: Any) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = str(
            error.get("code") or (body.get("message") if isinstance(body, dict) else "") or status
        )
        self.message = str(error.get("message") or body)
        self.details = error.get("details", [])
        super().__init__(f"{status} {self.code}: {self.message}")


class SigV4RequestAuth(requests.auth.AuthBase):
    """Signs a ``requests`` request the way the AWS SDKs do (service ``execute-api``).

    ``credentials`` is a botocore credentials object; refreshable ones are frozen per request.
    """

    def __init__(self, credentials: Credentials, region: str, service: str = "execute-api") -> None:
        self._credentials = credentials
        self._region = region
        self._service = service

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        signed = AWSRequest(
            method=request.method,
            url=request.url,
            data=body.encode() if isinstance(body, str) else body,
            headers=dict(request.headers.items()),
        )
        frozen = self._credentials.get_frozen_credentials()
        SigV4Auth(frozen, self._service, self._region).add_auth(signed)
        request.headers.update(dict(signed.headers.items()))
        return request


class _Reading:
    """A file being sent, reporting each block read (``requests`` streams it)."""

    def __init__(
        self, stream: BinaryIO, size: int, path: str, progress: Callable[[str, int], None]
    ) -> None:
        self._stream, self._size, self._path, self._progress = stream, size, path, progress

    def __len__(self) -> int:
        return self._size

    def read(self, amount: int = -1) -> bytes:
        block = self._stream.read(amount)
        if block:
            self._progress(self._path, len(block))
        return block

    def __iter__(self) -> Iterator[bytes]:
        while block := self.read(64 * 1024):
            yield block


class ModelOpsClient:
    def __init__(
        self,
        base_url: str,
        session: boto3.session.Session | None = None,
        region: str | None = None,
        timeout_s: float = 60.0,
        client_cert: tuple[str, str] | None = None,
    ) -> None:
        """``client_cert``: (certificate, private key) PEM files presented in the TLS
        handshake, for an API on a mutual TLS custom domain; requests stay SigV4-signed."""
        self._base = base_url.rstrip("/")
        self._session = session or boto3.session.Session()
        self._region = region or self._session.region_name or "us-east-1"
        self._http = requests.Session()
        self._http.cert = client_cert
        self._timeout = timeout_s
        credentials = self._session.get_credentials()
        if credentials is None:
            raise RuntimeError("no AWS credentials found (profile, environment or explicit keys)")
        self._auth = SigV4RequestAuth(credentials, self._region)

    # --- transport ---------------------------------------------------------------------

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one signed request and return the HTTP response as it came."""
        params = {k: v for k, v in (query or {}).items() if v is not None}
        return self._http.request(
            method,
            self._base + path,
            params=params or None,
            data=json.dumps(body).encode() if body is not None else b"",
            headers={"Content-Type": "application/json", **(headers or {})},
            auth=self._auth,
            timeout=self._timeout,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Send one signed request; returns (status, parsed JSON body) without raising."""
        response = self.send(method, path, body, query, headers)
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = response.text
        return response.status_code, parsed

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        status, parsed = self.request(method, path, body, **kwargs)
        if status >= 400:
            raise ApiError(status, parsed)
        return parsed

    # --- artifacts ---------------------------------------------------------------------

    def upload_artifact(
        self,
        source: Path,
        name: str,
        part_bytes: int | None = None,
        progress: Callable[[str, int], None] | None = None,
        *,
        escrow: bool = False,
    ) -> dict[str, Any]:
        """Upload a file or a directory: hash locally, PUT to presigned URLs, verify.
        ``escrow``: raw personal data, into escrow (single PUTs carrying their SHA-256).
        ``progress(path, nbytes)`` is called as bytes are sent: per block of a single PUT,
        per part of a multipart upload."""
        root = source if source.is_dir() else source.parent
        manifest = (
            Manifest.of_directory(source)
            if source.is_dir()
            else Manifest.of_directory_files(root, [source.name])
        )
        files = [f.model_dump() for f in manifest.files]
        body: dict[str, Any] = {"name": name, "files": files}
        if part_bytes:
            body["partBytes"] = part_bytes
        if escrow:
            body["escrow"] = True
        started = self.call(
            "POST", "/artifact/upload", body, headers={"Idempotency-Key": str(uuid.uuid4())}
        )
        completed_parts: dict[str, list[dict[str, Any]]] = {}
        for target in started["targets"]:
            path = root / target["path"]
            if target.get("url"):
                size = path.stat().st_size
                with path.open("rb") as stream:
                    data: BinaryIO | _Reading = stream
                    if progress:
                        data = _Reading(stream, size, target["path"], progress)
                    self.put_presigned(target["url"], data, size, target.get("headers"))
                continue
            multipart = target["multipart"]
            size = multipart["partBytes"]
            etags = []
            with path.open("rb") as stream:
                for part in multipart["parts"]:
                    chunk = stream.read(size)
                    etags.append(
                        {
                            "partNumber": part["partNumber"],
                            "etag": self.put_presigned(part["url"], chunk, len(chunk)),
                        }
                    )
                    if progress:
                        progress(target["path"], len(chunk))
            completed_parts[target["path"]] = etags
        completed = self.call(
            "POST", f"/artifact/upload/{started['uploadId']}/complete", {"parts": completed_parts}
        )
        return dict(completed["artifact"])

    def put_presigned(
        self,
        url: str,
        data: bytes | BinaryIO | _Reading,
        size: int,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """PUT bytes to a presigned URL (with the headers its signature covers); returns
        the ETag."""
        response = self._http.put(
            url,
            data=data,
            headers={"Content-Length": str(size), **(headers or {})},
            timeout=self._timeout,
        )
        if response.status_code >= 300:
            raise ApiError(
                response.status_code,
                {"error": {"code": "UPLOAD_FAILED", "message": response.text[:500]}},
            )
        return str(response.headers.get("ETag", ""))

    def get_artifact(self, artifact_id: str, download: bool = False) -> dict[str, Any]:
        return dict(
            self.call("GET", f"/artifact/{artifact_id}", query={"download": str(download).lower()})
        )

    # --- datasets and models -----------------------------------------------------------

    def register_dataset(self, **fields: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/dataset/register", fields))

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/dataset/{dataset_id}"))

    def register_model(self, **fields: Any) -> dict[str, Any]:
        return dict(self.call("POST", "/models/register", fields))

    def get_model(self, model_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/models/{model_id}"))

    def model_lineage(self, model_id: str, openlineage: bool = False) -> dict[str, Any]:
        suffix = "/openlineage" if openlineage else ""
        return dict(self.call("GET", f"/models/{model_id}/lineage{suffix}"))

    # --- training -----------------------------------------------------------------------

    def submit_training(self, **fields: Any) -> dict[str, Any]:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return dict(self.call("POST", "/train/jobs", fields, headers=headers))

    def get_training(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("GET", f"/train/jobs/{job_id}"))

    def cancel_training(self, job_id: str) -> dict[str, Any]:
        return dict(self.call("POST", f"/train/jobs/{job_id}/cancel"))

    def reproduce_training(self, job_id: str) -> dict[str, Any]:
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        return dict(self.call("POST", f"/train/jobs/{job_id}/reproduce", headers=headers))

    def iter_models(
        self, family: str | None = None, status: str | None = None, page_size: int = 50
    ) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            page = self.call(
                "GET",
                "/models",
                query={"family": family, "status": status, "limit": page_size, "nextToken": token},
            )
            yield from page["items"]
            token = page.get("nextToken")
            if not token:
                return
