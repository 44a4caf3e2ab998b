"""Build the Lambda layer into ``build/layer/`` without Docker.

The layer holds the runtime dependencies declared in ``pyproject.toml``
(``[project].dependencies``), installed as manylinux2014 (or manylinux_2_28) aarch64 wheels
for CPython 3.12 and pinned by ``constraints.txt``, plus the ``modelops`` package itself.
The layer is rebuilt from scratch on every run, and the build fails when its unzipped size
leaves too little room for function code under Lambda's 250 MB limit.

Usage: ``.venv/bin/python scripts/build_layer.py``
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = REPO_ROOT / "pyproject.toml"
CONSTRAINTS = REPO_ROOT / "constraints.txt"
MODELOPS_PACKAGE = REPO_ROOT / "layers" / "modelops" / "modelops"
LAYER_DIR = REPO_ROOT / "build" / "layer"
SITE_DIR = LAYER_DIR / "python"

# The Lambda python3.12 runtime is Amazon Linux 2023 (glibc 2.34): manylinux2014 wheels, and
# manylinux_2_28 ones (numpy publishes its aarch64 wheels only for that).
PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64")
PYTHON_VERSION = "3.12"
# Lambda's limit is 250 MB unzipped for function code plus all layers; keep 50 MB for code.
LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
FUNCTION_CODE_MARGIN_BYTES = 50 * 1024 * 1024
MAX_LAYER_BYTES = LAMBDA_UNZIPPED_LIMIT_BYTES - FUNCTION_CODE_MARGIN_BYTES

_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def runtime_dependencies() -> list[str]:
    """The requirement strings of ``[project].dependencies``."""
    with PYPROJECT.open("rb") as f:
        project = tomllib.load(f)["project"]
    deps = project["dependencies"]
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise SystemExit(f"{PYPROJECT}: [project].dependencies must be a list of strings")
    return list(deps)


def install_dependencies(requirements: list[str]) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        *(option for platform in PLATFORMS for option in ("--platform", platform)),
        "--implementation",
        "cp",
        "--python-version",
        PYTHON_VERSION,
        "--only-binary=:all:",
        "--target",
        str(SITE_DIR),
        "-c",
        str(CONSTRAINTS),
        *requirements,
    ]
    subprocess.run(command, check=True)


def copy_modelops() -> None:
    shutil.copytree(MODELOPS_PACKAGE, SITE_DIR / "modelops", ignore=_IGNORED)


def remove_unused(root: Path) -> None:
    """Drop what the runtime never reads: bytecode caches and console scripts."""
    for cache in sorted(root.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    shutil.rmtree(root / "bin", ignore_errors=True)


def unzipped_size(root: Path) -> int:
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file())


def build() -> int:
    """Build the layer and return its unzipped size in bytes."""
    if LAYER_DIR.exists():
        shutil.rmtree(LAYER_DIR)
    SITE_DIR.mkdir(parents=True)
    install_dependencies(runtime_dependencies())
    copy_modelops()
    remove_unused(SITE_DIR)
    return unzipped_size(LAYER_DIR)


def main() -> int:
    size = build()
    mb = size / (1024 * 1024)
    limit_mb = MAX_LAYER_BYTES / (1024 * 1024)
    where = LAYER_DIR.relative_to(REPO_ROOT)
    print(f"layer: {where} {mb:.1f} MB unzipped (limit {limit_mb:.0f} MB)")
    if size > MAX_LAYER_BYTES:
        print(
            f"layer too large: {mb:.1f} MB > {limit_mb:.0f} MB "
            "(Lambda allows 250 MB unzipped for code and layers together)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
