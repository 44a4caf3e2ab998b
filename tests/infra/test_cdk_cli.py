"""The CDK CLI synthesizes the app from cdk.json, offline, as `make synth` runs it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import REPO_ROOT


@pytest.mark.slow
def test_cdk_cli_synthesizes_the_app_offline_within_a_minute(
    layer_site: Path, tmp_path: Path
) -> None:
    outdir = tmp_path / "cdk.out"
    env = {
        **os.environ,
        "PATH": f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        # Nothing that would reach the network: no version check, notices or telemetry.
        "CDK_DISABLE_VERSION_CHECK": "1",
        "CDK_DISABLE_CLI_TELEMETRY": "1",
    }
    command = ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices"]

    started = time.monotonic()
    result = subprocess.run(
        [*command, "--output", str(outdir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stdout + result.stderr
    templates = {p.name for p in outdir.glob("*.template.json")}
    assert templates == {"modelops-dev-data.template.json", "modelops-dev-service.template.json"}
    assert elapsed < 60
