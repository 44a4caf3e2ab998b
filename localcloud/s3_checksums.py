"""S3 additional checksums for the local cloud: a PUT that declares its SHA-256 is checked.

Pinned to moto 5.2.5. Re-check the hook below when it changes.

What real S3 does
-----------------
A ``PutObject`` carrying ``x-amz-checksum-sha256`` (base64 of the body's SHA-256) is
refused with ``400 BadDigest`` when the body hashes otherwise, and stored with it when it
matches: ``GetObjectAttributes`` (``ObjectAttributes=["Checksum"]``) then answers
``Checksum.ChecksumSHA256``, and ``HeadObject``/``GetObject`` with ``ChecksumMode=ENABLED``
return the header. A presigned PUT whose signature covers that header holds the uploader
to the declared content, so the registry can check escrow uploads without reading them.

What moto 5.2.5 does, and what :func:`install` patches
------------------------------------------------------
``S3Response._get_checksum`` reads the checksum header only when the request also carries
``x-amz-sdk-checksum-algorithm`` (as boto3 sends it, not a presigned URL's client), and
never compares it with the body (a gap its source acknowledges). :func:`install` wraps it: a request
with ``x-amz-checksum-sha256`` and no SDK algorithm header is read as SHA256, and a SHA-256
that does not match the body (chunked streaming bodies excepted) raises ``BadDigest``
before anything is stored. Everything else stays moto's.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
from typing import Any

from moto.s3.exceptions import S3ClientError
from moto.s3.responses import S3Response

_INSTALL = threading.Lock()
_MARKER = "_localcloud_checksums"
HEADER = "x-amz-checksum-sha256"


class BadDigest(S3ClientError):  # a 400, as every S3ClientError
    def __init__(self) -> None:
        super().__init__(
            "BadDigest", "The SHA256 you specified did not match the calculated checksum."
        )


def _streaming(response: S3Response) -> bool:
    return "STREAMING" in str(response.headers.get("x-amz-content-sha256", ""))


def install() -> None:
    """Verify and keep declared SHA-256 checksums of PUTs (this process). Idempotent."""
    with _INSTALL:
        if getattr(S3Response, _MARKER, False):
            return
        original = S3Response._get_checksum

        @functools.wraps(original)
        def get_checksum(self: S3Response, response_headers: dict[str, Any]) -> Any:
            declared = self.headers.get(HEADER)
            if declared and not self.headers.get("x-amz-sdk-checksum-algorithm"):
                if not _streaming(self):
                    body = self.raw_body or b""
                    actual = base64.b64encode(hashlib.sha256(body).digest()).decode()
                    if actual != declared:
                        raise BadDigest()
                response_headers[HEADER] = declared
                return "SHA256", declared
            return original(self, response_headers)

        S3Response._get_checksum = get_checksum  # type: ignore[method-assign]
        setattr(S3Response, _MARKER, True)
