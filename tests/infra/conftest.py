"""Fixtures for the infrastructure tests: the layer, and the app synthesized in-process."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Must be set before jsii starts its Node.js process (on the first aws_cdk import). aws_cdk
# is imported lazily, so that infra tests that do not synthesize do not start Node.js.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

if TYPE_CHECKING:
    from aws_cdk import App, Stack
    from aws_cdk.assertions import Template
    from aws_cdk.cx_api import CloudAssembly

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER_SITE = REPO_ROOT / "build" / "layer" / "python"
MODELOPS_SOURCE = REPO_ROOT / "layers" / "modelops" / "modelops"
VALIDATION_REPORT = "validation-report.json"


def stale_modelops_files(site: Path) -> list[str]:
    """Files in which the layer's ``modelops`` differs from ``layers/modelops/modelops``."""
    if not (site / "modelops").is_dir():
        return ["modelops/"]
    stale: list[str] = []

    def collect(cmp: filecmp.dircmp[str], prefix: str) -> None:
        stale.extend(f"{prefix}{name}" for name in cmp.left_only + cmp.right_only)
        stale.extend(f"{prefix}{name}" for name in cmp.diff_files + cmp.funny_files)
        for name, sub in cmp.subdirs.items():
            collect(sub, f"{prefix}{name}/")

    collect(filecmp.dircmp(MODELOPS_SOURCE, site / "modelops", ignore=["__pycache__"]), "")
    return stale


@pytest.fixture(scope="session")
def layer_site() -> Path:
    """``build/layer/python``, (re)built here when `make layer` has not built it from the
    current source (the Makefile cannot see files deleted from the package)."""
    if not LAYER_SITE.is_dir() or stale_modelops_files(LAYER_SITE):
        subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / "build_layer.py")],
            cwd=REPO_ROOT,
            check=True,
        )
    return LAYER_SITE


@dataclass(frozen=True)
class Synthesized:
    """A synthesized app: its constructs, its cloud assembly and its templates."""

    app: App
    assembly: CloudAssembly
    outdir: Path

    def stack(self, role: str) -> Stack:
        """The stack named ``modelops-<env>-<role>``."""
        from aws_cdk import Stack

        for child in self.app.node.children:
            if isinstance(child, Stack) and child.stack_name.endswith(f"-{role}"):
                return child
        raise LookupError(role)

    def template(self, role: str) -> Template:
        from aws_cdk.assertions import Template

        name = self.stack(role).stack_name
        return Template.from_json(self.assembly.get_stack_by_name(name).template)

    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / VALIDATION_REPORT).read_text())
        return report


def violations(report: dict[str, Any]) -> list[str]:
    """One line per finding in a CDK policy validation report (cdk-nag 3 writes these)."""
    lines = []
    for plugin in report.get("pluginReports", []):
        for violation in plugin.get("violations", []):
            for construct in violation.get("violatingConstructs", []):
                lines.append(
                    f"{violation['severity']} {violation['ruleName']} "
                    f"at {construct['constructPath']}"
                )
    return lines


def synthesize(outdir: Path, context: dict[str, Any] | None = None) -> Synthesized:
    """Build the app with ``build_app`` and synthesize it; fail with the nag findings."""
    from app import build_app

    app = build_app(outdir=str(outdir), context=context)
    try:
        assembly = app.synth()
    except RuntimeError as e:
        report_file = outdir / VALIDATION_REPORT
        findings = violations(json.loads(report_file.read_text())) if report_file.exists() else []
        pytest.fail(f"synth failed: {e}\n" + "\n".join(findings), pytrace=False)
    return Synthesized(app=app, assembly=assembly, outdir=outdir)


@pytest.fixture(scope="session")
def synth_env(
    layer_site: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str | None], Synthesized]:
    """Synthesize the app for an environment of cdk.json (None: the default), once each."""
    cache: dict[str | None, Synthesized] = {}

    def get(environment: str | None) -> Synthesized:
        if environment not in cache:
            outdir = tmp_path_factory.mktemp(f"cdk.out.{environment or 'default'}")
            context = None if environment is None else {"environment": environment}
            cache[environment] = synthesize(outdir, context)
        return cache[environment]

    return get


# A custom domain with mutual TLS, as an operator would add it to an environment in cdk.json.
CUSTOM_DOMAIN = {
    "domainName": "api.modelops.example.com",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/"
    "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d",
    "truststoreVersion": "3sL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
}
# The ILLUVRSE services' buses (another account), as an environment would name them.
INTEGRATION_BUSES = {
    "kernel": "arn:aws:events:us-east-1:210987654321:event-bus/kernel",
    "reasoning-graph": "arn:aws:events:us-east-1:210987654321:event-bus/reasoning-graph",
    "eval-engine": "arn:aws:events:us-east-1:210987654321:event-bus/eval-engine",
}


def environment_context(environment: str, **overrides: Any) -> dict[str, Any]:
    """The context selecting ``environment`` with ``overrides`` to its cdk.json settings."""
    from stacks.environment import project_context

    environments = project_context()["environments"]
    return {
        "environment": environment,
        "environments": {
            **environments,
            environment: {**environments[environment], **overrides},
        },
    }


@pytest.fixture(scope="session")
def synth_prod_mtls(layer_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The prod app with every optional setting on: a mutual TLS custom domain and the
    integrations' event buses (cdk.json's environments have neither)."""
    outdir = tmp_path_factory.mktemp("cdk.out.prod-mtls")
    return synthesize(
        outdir,
        environment_context("prod", customDomain=CUSTOM_DOMAIN, integrations=INTEGRATION_BUSES),
    )


@pytest.fixture(scope="session")
def synth(synth_env: Callable[[str | None], Synthesized]) -> Synthesized:
    """The app as `npx cdk synth` builds it without options (the dev environment)."""
    return synth_env(None)


@pytest.fixture(scope="session")
def data_template(synth: Synthesized) -> Template:
    return synth.template("data")


@pytest.fixture(scope="session")
def service_template(synth: Synthesized) -> Template:
    return synth.template("service")
