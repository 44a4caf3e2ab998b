"""``ImageRegistry`` over ECR: pins an image URI (tag or digest) to its digest."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

# <account>.dkr.ecr.<region>.amazonaws.com/<repository>(:<tag>|@sha256:<hex>)
_URI = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9._/-]+?)(?::(?P<tag>[A-Za-z0-9._-]{1,128})|@(?P<digest>sha256:[0-9a-f]{64}))$"
)


class EcrImages:
    def __init__(self, client: Any) -> None:
        self._ecr = client

    def resolve(self, uri: str) -> tuple[str, str] | None:
        match = _URI.match(uri)
        if match is None:
            return None
        image_id = (
            {"imageDigest": match["digest"]} if match["digest"] else {"imageTag": match["tag"]}
        )
        try:
            found = self._ecr.describe_images(
                registryId=match["registry"],
                repositoryName=match["repository"],
                imageIds=[image_id],
            )["imageDetails"]
        except ClientError as exc:
            # AccessDenied: a repository the platform may not use (IAM names only the
            # default image's repository), which for the caller is as good as absent.
            if exc.response.get("Error", {}).get("Code") in {
                "AccessDeniedException",
                "ImageNotFoundException",
                "RepositoryNotFoundException",
            }:
                return None
            raise
        if not found:
            return None
        digest = str(found[0]["imageDigest"])
        base = uri.split("@", 1)[0].rsplit(":", 1)[0] if match["tag"] else uri.split("@", 1)[0]
        return f"{base}@{digest}", digest
