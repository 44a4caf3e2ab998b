"""cdk-nag (AwsSolutions and Serverless packs) on every synth, acknowledged in one module."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from stacks import nag

from .conftest import REPO_ROOT, VALIDATION_REPORT, Synthesized, violations

ACKNOWLEDGED_RULES = "aws:cdk:acknowledged-rules"


def _acknowledgements(app: App) -> dict[tuple[str, str], str]:
    """(construct path, rule id) -> reason, for every acknowledgement in the app."""
    found = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == ACKNOWLEDGED_RULES:
                for key, reason in entry.data.items():
                    rule = re.sub(r"^annotation::", "", key, flags=re.IGNORECASE)
                    found[(construct.node.path, rule)] = reason
    return found


def _findings(report: dict[str, Any]) -> set[tuple[str, str]]:
    """(construct path, rule id) for every finding in a validation report."""
    return {
        (construct["constructPath"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }


@pytest.fixture(scope="module")
def unacknowledged_report(
    synth: Synthesized, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """The validation report of the same app built without stacks.nag's acknowledgements."""
    from app import build_app

    outdir = tmp_path_factory.mktemp("cdk.out.unacknowledged")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nag, "acknowledge", lambda data, service: None)
        app = build_app(outdir=str(outdir))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report: dict[str, Any] = json.loads((outdir / VALIDATION_REPORT).read_text())
    return report


def test_synth_reports_no_unacknowledged_nag_finding(synth: Synthesized) -> None:
    assert violations(synth.validation_report()) == []


def test_both_nag_packs_fail_synth_on_unacknowledged_findings(
    unacknowledged_report: dict[str, Any],
) -> None:
    failed = {
        plugin["pluginName"]
        for plugin in unacknowledged_report["pluginReports"]
        if plugin["conclusion"] == "failure"
    }
    assert failed == {"AwsSolutions", "Serverless"}


def test_every_acknowledgement_silences_a_real_finding_on_its_construct(
    synth: Synthesized, unacknowledged_report: dict[str, Any]
) -> None:
    findings = _findings(unacknowledged_report)

    stale = [
        (path, rule)
        for path, rule in _acknowledgements(synth.app)
        if not any(
            rule == found_rule and (found_path == path or found_path.startswith(path + "/"))
            for found_path, found_rule in findings
        )
    ]
    assert stale == []


def test_every_acknowledgement_gives_a_reason_and_names_a_single_finding(
    synth: Synthesized,
) -> None:
    acknowledgements = _acknowledgements(synth.app)
    assert acknowledgements
    for (path, rule), reason in acknowledgements.items():
        assert len(reason) >= 40, (path, rule)
        # Rules that report several findings per resource are acknowledged one by one.
        if rule.startswith(("AwsSolutions-IAM4", "AwsSolutions-IAM5")):
            assert "[" in rule, (path, rule)


def test_acknowledgements_are_made_only_in_stacks_nag() -> None:
    acknowledging = re.compile(r"Acknowledgment\(|\.acknowledge_warning\(|\)\.acknowledge\(")
    sources = [REPO_ROOT / "app.py", *sorted((REPO_ROOT / "stacks").rglob("*.py"))]
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in sources
        if path != Path(nag.__file__).resolve() and acknowledging.search(path.read_text())
    ]
    assert offenders == []
