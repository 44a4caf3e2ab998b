"""Content identity: SHA-256 per file and the OpenSSF model-signing root digest.

The root digest of a set of files is SHA-256 over the concatenation of the raw 32-byte
file digests, taken in model_signing's resource order (paths compared component by
component; OpenSSF model-signing v1.0, ``method: files``).
S3 ETags and multipart checksums are not content hashes and are never used as such.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import rfc8785

CHUNK_BYTES = 1024 * 1024  # OpenSSF model-signing hashes files in 1 MiB chunks.
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def sha256_stream(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES) -> tuple[str, int]:
    """SHA-256 hex digest and byte count of everything readable from ``stream``."""
    hasher = hashlib.sha256()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    size = 0
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        while n := readinto(view):
            hasher.update(view[:n])
            size += n
    else:
        while chunk := stream.read(chunk_bytes):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def sha256_base64(sha256_hex: str) -> str:
    """A SHA-256 as S3's ``x-amz-checksum-sha256`` carries it: base64 of the digest bytes."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb", buffering=0) as stream:
        return sha256_stream(stream)


def resource_order(path: str) -> str:
    """OpenSSF model-signing's resource order: paths compared component by component, so
    ``config/a.json`` precedes ``config.json``. Joining components with NUL (which no path
    contains) makes plain string order agree."""
    return path.replace("/", "\x00")


def root_digest(files: Iterable[tuple[str, str]]) -> str:
    """OpenSSF root digest over ``(path, sha256 hex)`` pairs, in resource order."""
    hasher = hashlib.sha256()
    for _, digest in sorted(files, key=lambda pair: resource_order(pair[0])):
        hasher.update(bytes.fromhex(digest))
    return hasher.hexdigest()


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON bytes."""
    return rfc8785.dumps(value)


def canonical_digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()
