"""The Lambda layer: what the functions import at runtime, built for arm64, and nothing more."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.build_layer import MAX_LAYER_BYTES, unzipped_size

from .conftest import stale_modelops_files

# numpy ships (the drift statistics need it; only the drift functions import it, on first use).
FORBIDDEN = ("sagemaker", "pandas", "scipy", "moto", "aws_cdk", "cdk_nag", "jsii", "evidently")
REQUIRED = ("modelops", "aws_lambda_powertools", "pynamodb", "pydantic", "pydantic_core")
ELF_MAGIC = b"\x7fELF"
EM_AARCH64 = 183


def _top_level_names(site: Path) -> set[str]:
    """Importable top-level names: packages, modules and extension modules."""
    names = set()
    for entry in site.iterdir():
        if entry.name.endswith((".dist-info", ".egg-info")):
            continue
        names.add(entry.name.split(".")[0])
    return names


def _elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    assert header[:4] == ELF_MAGIC, path
    return int.from_bytes(header[18:20], "little")


@pytest.mark.parametrize("package", FORBIDDEN)
def test_layer_ships_no_heavy_or_build_time_package(layer_site: Path, package: str) -> None:
    assert package not in _top_level_names(layer_site)
    assert not list(layer_site.glob(f"{package}-*.dist-info"))


@pytest.mark.parametrize("package", REQUIRED)
def test_layer_ships_the_runtime_package(layer_site: Path, package: str) -> None:
    assert (layer_site / package).is_dir()


def test_layer_native_extensions_are_built_for_arm64(layer_site: Path) -> None:
    pydantic_core = list((layer_site / "pydantic_core").glob("*.so"))
    assert pydantic_core, "pydantic_core ships its compiled core"

    for extension in layer_site.rglob("*.so"):
        # Stable-ABI extensions (*.abi3.so) and vendored shared libraries (numpy.libs/)
        # carry no platform in their name; the ELF header says what they were built for.
        if not extension.name.endswith(".abi3.so") and extension.parent.name != "numpy.libs":
            assert "aarch64" in extension.name, extension
        assert _elf_machine(extension) == EM_AARCH64, extension


def test_layer_extensions_target_cpython_312(layer_site: Path) -> None:
    tags = {p.name.split(".")[1] for p in layer_site.rglob("*.so") if p.name.count(".") >= 2}
    assert tags <= {"cpython-312-aarch64-linux-gnu", "abi3"}


def test_layer_fits_lambda_size_limit_with_room_for_function_code(layer_site: Path) -> None:
    assert unzipped_size(layer_site.parent) <= MAX_LAYER_BYTES


def test_layer_ships_the_current_modelops_source(layer_site: Path) -> None:
    assert stale_modelops_files(layer_site) == []
