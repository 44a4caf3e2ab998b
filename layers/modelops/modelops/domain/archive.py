"""Byte-stable tar.gz archives: the same directory content gives the same archive bytes.

Used for source archives (the CLI packs training code) and for training outputs (the local
cloud packs ``model.tar.gz`` as SageMaker does). Entries are sorted by path; owner, group,
permissions and modification times are fixed; the gzip header carries no name and mtime 0.
Only regular files and the directories holding them are archived (no symlinks, devices or
empty directories), so nothing about the machine that packed it leaks into the bytes.

Stdlib only.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path
from typing import BinaryIO

FILE_MODE = 0o644
DIR_MODE = 0o755
# Files a source directory holds that are not part of the code.
IGNORED_PARTS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})


def archive_members(directory: Path) -> list[str]:
    """The relative POSIX paths of the regular files under ``directory``, sorted, without
    caches and version-control directories."""
    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    found = []
    for path in directory.rglob("*"):
        relative = path.relative_to(directory)
        if IGNORED_PARTS.intersection(relative.parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink():
            found.append(relative.as_posix())
    return sorted(found)


def _info(name: str, *, is_dir: bool, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if is_dir else tarfile.REGTYPE
    info.mode = DIR_MODE if is_dir else FILE_MODE
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_targz(directory: Path, target: BinaryIO) -> None:
    """Write the deterministic tar.gz of ``directory``'s files to ``target``."""
    members = archive_members(directory)
    directories = sorted(
        {"/".join(m.split("/")[:i]) for m in members for i in range(1, m.count("/") + 1)}
    )
    entries = sorted([(d, True) for d in directories] + [(m, False) for m in members])
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=target, mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, is_dir in entries:
            if is_dir:
                archive.addfile(_info(name, is_dir=True))
                continue
            path = directory / name
            with path.open("rb") as handle:
                archive.addfile(_info(name, is_dir=False, size=path.stat().st_size), handle)


def targz_bytes(directory: Path) -> bytes:
    buffer = io.BytesIO()
    write_targz(directory, buffer)
    return buffer.getvalue()


def extract_targz(data: BinaryIO, target: Path) -> list[str]:
    """Extract regular files and directories only (the ``data`` filter refuses absolute
    paths, ``..`` and links out of ``target``); return the extracted files' paths."""
    target.mkdir(parents=True, exist_ok=True)
    extracted = []
    with tarfile.open(fileobj=data, mode="r:gz") as archive:
        for member in archive.getmembers():
            if not (member.isfile() or member.isdir()):
                raise ValueError(f"archive member {member.name!r} is not a file or directory")
            archive.extract(member, target, filter="data")
            if member.isfile():
                extracted.append(member.name)
    return sorted(extracted)
