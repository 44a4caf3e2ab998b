"""The local cloud's training image: this machine's Python runtime, registered in moto's ECR.

SageMaker runs a training job in the container image named by
``AlgorithmSpecification.TrainingImage``. The local cloud has no containers: a job runs under
a Python interpreter of this machine. So that jobs still name an image, and the digest a job
was submitted with pins the runtime it ran on, :func:`register_local_image` pushes an OCI
manifest to moto's ECR that *describes* the interpreter: its implementation, version and
platform (one layer) and the sorted ``name==version`` list of its installed distributions
(another layer, as ``importlib.metadata`` lists them). moto derives the image digest from the
layers' digests, so the digest changes whenever the runtime does.

A job's image is resolved the way SageMaker resolves it, by ``<registry>.dkr.ecr.<region>.
amazonaws.com/<repository>[:tag][@sha256:<digest>]`` (the digest wins over the tag), and is
runnable only when it is a local-runtime image describing the interpreter the executor runs.

Pinned to moto 5.2.5: :func:`find_image` reads moto's ECR backend of this process
(``ecr_backends[registry][region].repositories[name].images``).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Any

from moto.ecr.models import ecr_backends

__all__ = [
    "LOCAL_IMAGE_REPOSITORY",
    "ImageNotFound",
    "LocalRuntime",
    "Runtime",
    "describe_runtime",
    "find_image",
    "register_local_image",
]

LOCAL_IMAGE_REPOSITORY = "modelops/python-training"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
RUNTIME_ANNOTATION = "dev.modelops.local-runtime"
_CONFIG_MEDIA_TYPE = "application/vnd.modelops.local-runtime.config.v1+json"
_INTERPRETER_MEDIA_TYPE = "application/vnd.modelops.local-runtime.interpreter.v1+json"
_PACKAGES_MEDIA_TYPE = "application/vnd.modelops.local-runtime.packages.v1+text"

# Run by the interpreter being described (``python -I -c``), so that it reports itself.
_PROBE = """
import importlib.metadata, json, platform, sysconfig
names = {f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
         if d.metadata['Name']}
print(json.dumps({"implementation": platform.python_implementation(),
                  "python": platform.python_version(),
                  "platform": sysconfig.get_platform(),
                  "packages": sorted(names)}))
"""

_IMAGE_URI = re.compile(
    r"^(?P<registry>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Runtime:
    """What a local-runtime image stands for."""

    implementation: str
    python: str
    platform: str
    packages: tuple[str, ...]

    @property
    def tag(self) -> str:
        major, minor = self.python.split(".")[:2]
        return f"python{major}.{minor}"

    def _blobs(self) -> tuple[bytes, bytes]:
        interpreter = _canonical(
            {
                "implementation": self.implementation,
                "python": self.python,
                "platform": self.platform,
            }
        )
        return interpreter, "\n".join(self.packages).encode()

    def layers(self) -> list[dict[str, Any]]:
        interpreter, packages = self._blobs()
        return [
            {
                "mediaType": _INTERPRETER_MEDIA_TYPE,
                "digest": _sha256(interpreter),
                "size": len(interpreter),
            },
            {"mediaType": _PACKAGES_MEDIA_TYPE, "digest": _sha256(packages), "size": len(packages)},
        ]

    def manifest(self) -> str:
        interpreter, packages = self._blobs()
        config = _canonical({"interpreter": json.loads(interpreter), "packages": _sha256(packages)})
        return _canonical(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": {
                    "mediaType": _CONFIG_MEDIA_TYPE,
                    "digest": _sha256(config),
                    "size": len(config),
                },
                "layers": self.layers(),
                "annotations": {
                    RUNTIME_ANNOTATION: "python",
                    f"{RUNTIME_ANNOTATION}.implementation": self.implementation,
                    f"{RUNTIME_ANNOTATION}.python": self.python,
                    f"{RUNTIME_ANNOTATION}.platform": self.platform,
                    f"{RUNTIME_ANNOTATION}.packages-sha256": _sha256(packages),
                },
            }
        ).decode()

    def described_by(self, manifest: str) -> bool:
        """True if ``manifest`` is a local-runtime image of exactly this runtime."""
        try:
            parsed = json.loads(manifest)
        except ValueError:
            return False
        return (
            isinstance(parsed, dict)
            and RUNTIME_ANNOTATION in (parsed.get("annotations") or {})
            and parsed.get("layers") == self.layers()
        )


def describe_runtime(python: str) -> Runtime:
    """Ask the interpreter at ``python`` what it is and what it has installed."""
    done = subprocess.run(
        [python, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout)
    return Runtime(
        implementation=found["implementation"],
        python=found["python"],
        platform=found["platform"],
        packages=tuple(found["packages"]),
    )


class LocalRuntime:
    """The interpreter at ``python`` (what executors run), described once, on first use."""

    def __init__(self, python: str) -> None:
        self.python = python
        self._lock = threading.Lock()
        self._runtime: Runtime | None = None

    def get(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                self._runtime = describe_runtime(self.python)
            return self._runtime


def register_local_image(
    ecr_client: Any,
    *,
    python: str | None = None,
    repository: str = LOCAL_IMAGE_REPOSITORY,
    tag: str | None = None,
) -> tuple[str, str]:
    """Create ``repository`` in (moto's) ECR if needed and push the manifest describing the
    interpreter ``python`` (default: this one) under ``tag`` (default ``python<X.Y>``).

    Idempotent. Returns ``(image URI with tag, "sha256:<digest>")``, the digest as ECR
    computed it; submit jobs with ``f"{uri}@{digest}"`` to pin the runtime.
    """
    runtime = describe_runtime(python or sys.executable)
    tag = tag or runtime.tag
    try:
        repo = ecr_client.create_repository(repositoryName=repository)["repository"]
    except ecr_client.exceptions.RepositoryAlreadyExistsException:
        repo = ecr_client.describe_repositories(repositoryNames=[repository])["repositories"][0]
    try:
        image = ecr_client.put_image(
            repositoryName=repository,
            imageManifest=runtime.manifest(),
            imageManifestMediaType=MANIFEST_MEDIA_TYPE,
            imageTag=tag,
        )["image"]
        digest = image["imageId"]["imageDigest"]
    except ecr_client.exceptions.ImageAlreadyExistsException:
        described = ecr_client.describe_images(
            repositoryName=repository, imageIds=[{"imageTag": tag}]
        )
        digest = described["imageDetails"][0]["imageDigest"]
    return f"{repo['repositoryUri']}:{tag}", str(digest)


class ImageNotFound(Exception):
    """The image cannot be resolved; the message is SageMaker's for the same case."""


def find_image(uri: str, role_arn: str) -> Any:
    """moto's ECR ``Image`` that a training image URI names (digest first, then tag, then
    ``latest``), or :class:`ImageNotFound` with SageMaker's ValidationException message."""
    match = _IMAGE_URI.match(uri)
    if match is None:
        raise ImageNotFound(
            "Invalid training image. Please provide a valid Amazon Elastic Container Registry "
            f"path of the Docker image to run: {uri}"
        )
    registry, name = match["registry"], match["repository"]
    repository = ecr_backends[registry][match["region"]].repositories.get(name)
    if repository is None:
        raise ImageNotFound(
            f"Cannot find repository: {name} in registry ID: {registry} Please check if your "
            f"ECR repository exists and role {role_arn} has proper pull permissions for "
            "SageMaker: ecr:BatchCheckLayerAvailability, ecr:BatchGetImage, "
            "ecr:GetDownloadUrlForLayer"
        )
    for image in list(repository.images):
        if match["digest"] is not None:
            if image.get_image_digest() == match["digest"]:
                return image
        elif (match["tag"] or "latest") in image.image_tags:
            return image
    raise ImageNotFound(f"Cannot find the requested image: {uri}")
