"""Artifact manifests: per-file SHA-256 digests, a root digest, and path rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from modelops.domain.digests import (
    SHA256_HEX,
    canonical_digest,
    resource_order,
    root_digest,
    sha256_file,
)

MAX_FILES = 1000
# What OpenSSF model-signing never hashes at the top of a model directory.
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")
MAX_FILE_BYTES = 5 * 1024**4  # S3's object size limit (5 TiB).


def validate_relative_path(path: str) -> str:
    """A manifest path: relative, POSIX, normalised, no parent references."""
    if not path or len(path) > 1024:
        raise ValueError("path must be 1-1024 characters")
    if "\\" in path or "\x00" in path:
        raise ValueError("path must use '/' separators and no NUL bytes")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError("path must be relative with no '.', '..' or empty segments")
    if pure.parts[0] in GIT_PATHS:
        raise ValueError(f"{', '.join(GIT_PATHS)} are not part of an artifact")
    return path


def require_unique_paths(files: Sequence[FileEntry]) -> None:
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        raise ValueError("file paths must be unique")


class FileEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    path: str = Field(
        min_length=1, max_length=1024, description="Relative POSIX path inside the artifact."
    )
    size: int = Field(ge=0, le=MAX_FILE_BYTES, description="Size in bytes.")
    sha256: str = Field(
        pattern=SHA256_HEX.pattern, description="Lower-case hex SHA-256 of the file's bytes."
    )

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return validate_relative_path(value)


class Manifest(BaseModel):
    """Files in resource order; ``root_digest`` is the OpenSSF digest of digests."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    files: tuple[FileEntry, ...] = Field(min_length=1, max_length=MAX_FILES)

    @model_validator(mode="after")
    def _unique_sorted(self) -> Manifest:
        require_unique_paths(self.files)
        paths = [f.path for f in self.files]
        if paths != sorted(paths, key=resource_order):
            ordered = sorted(self.files, key=lambda f: resource_order(f.path))
            object.__setattr__(self, "files", tuple(ordered))
        return self

    @property
    def root_digest(self) -> str:
        return root_digest((f.path, f.sha256) for f in self.files)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def manifest_digest(self) -> str:
        """Digest of paths, sizes and digests together (the root digest ignores names)."""
        return canonical_digest([f.model_dump() for f in self.files])

    @classmethod
    def of_directory(cls, directory: Path) -> Manifest:
        """Hash every regular file below ``directory`` (symlinks refused, GIT_PATHS skipped)."""
        names = []
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory).as_posix()
            if rel.split("/")[0] in GIT_PATHS:
                continue
            if path.is_symlink():
                raise ValueError(f"symlinks are not allowed in an artifact: {rel}")
            if path.is_file():
                names.append(rel)
        return cls.of_directory_files(directory, names)

    @classmethod
    def of_directory_files(cls, directory: Path, names: list[str]) -> Manifest:
        entries = []
        for rel in names:
            digest, size = sha256_file(directory / rel)
            entries.append(FileEntry(path=rel, size=size, sha256=digest))
        return cls(files=tuple(entries))
