"""Cold start is a budget: no handler imports anything heavy at module level, and the
domain package keeps its dependency rules."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelops import platform

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_AT_IMPORT = (
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "sagemaker",
    "moto",
    "aws_cdk",
    "cdk_nag",
    "jsii",
    "cryptography",
    "cedarpy",
    "requests",
    "localcloud",
    "modelops_cli",
    "flask",
    "werkzeug",
)


@pytest.mark.parametrize("function", platform.FUNCTIONS, ids=lambda f: f.name)
def test_handler_imports_no_forbidden_module(function: platform.FunctionSpec) -> None:
    module = function.handler.rsplit(".", 1)[0]
    program = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "functions")}
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", program], env=env, check=True, capture_output=True, text=True
        ).stdout
    )
    heavy = sorted({name.split(".")[0] for name in loaded} & set(FORBIDDEN_AT_IMPORT))
    assert heavy == [], f"{module} imports {heavy} at module level"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_domain_package_never_imports_functions_stacks_or_the_local_cloud() -> None:
    package = ROOT / "layers" / "modelops" / "modelops"
    offenders = {
        str(path.relative_to(package)): sorted(bad)
        for path in package.rglob("*.py")
        if (
            bad := _imports(path)
            & {
                "functions",
                "stacks",
                "localcloud",
                "modelops_cli",
                "registry_api",
                "audit_api",
                "audit_tasks",
                "moto",
                "aws_cdk",
            }
        )
    }
    assert offenders == {}


def test_only_adapters_wiring_and_the_verifier_import_sdks_or_cryptography() -> None:
    package = ROOT / "layers" / "modelops" / "modelops"
    sdk = {"boto3", "botocore", "pynamodb", "cryptography", "cedarpy"}
    offenders = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if _imports(path) & sdk
        and path.parent.name != "adapters"
        and path.name not in {"wiring.py", "crypto.py"}
    )
    assert offenders == []


def test_every_init_file_is_empty() -> None:
    non_empty = [
        str(p.relative_to(ROOT))
        for top in (
            "layers",
            "functions",
            "localcloud",
            "stacks",
            "modelops_cli",
            "tests",
            "bench",
            "scripts",
            "chaos",
        )
        for p in (ROOT / top).rglob("__init__.py")
        if p.read_text().strip()
    ]
    assert non_empty == []
