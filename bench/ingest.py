"""Artifact ingest: hashing a 1 GiB file into a manifest (SHA-256 per file in 1 MiB chunks
plus the OpenSSF root digest), against coreutils ``sha256sum`` on the same file."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from modelops.domain.manifest import Manifest

GIB = 1024**3


def _best_of(runs: int, fn: object) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return best


def run(size: int = GIB, runs: int = 3) -> list[dict[str, object]]:
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        raise RuntimeError("sha256sum (coreutils) is needed as the peer")
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        directory = Path(tmp)
        path = directory / "weights.bin"
        block = os.urandom(16 * 1024 * 1024)
        with path.open("wb") as out:
            for _ in range(size // len(block)):
                out.write(block)
        manifest = Manifest.of_directory(directory)  # warm the page cache, check agreement
        peer_digest = subprocess.run(
            [sha256sum, str(path)], check=True, capture_output=True, text=True
        ).stdout.split()[0]
        if manifest.files[0].sha256 != peer_digest:
            raise AssertionError("our digest differs from sha256sum's")
        peer = _best_of(
            runs, lambda: subprocess.run([sha256sum, str(path)], check=True, capture_output=True)
        )
        ours = _best_of(runs, lambda: Manifest.of_directory(directory).root_digest)
    mib = size / 1024**2
    return [
        {
            "benchmark": f"ingest: hash + manifest of {mib / 1024:.0f} GiB",
            "peer": "sha256sum",
            "ours_MiB_s": round(mib / ours, 1),
            "peer_MiB_s": round(mib / peer, 1),
            "ratio": round(peer / ours, 3),
            "target": ">= 0.85",
        }
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
