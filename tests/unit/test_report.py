"""``modelops report``: the HTML built from API answers (a fake client, no sockets)."""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from modelops_cli import report

MODEL = "mdl-" + "a" * 24
OTHER = "mdl-" + "b" * 24
JOB = "trn-" + "c" * 24
DEPLOY, CANARY = "dep-" + "d" * 24, "dep-" + "e" * 24
FINDING = "dft-" + "f" * 24
KEY = "arn:aws:kms:us-east-1:123456789012:key/1111-2222"
EVIL = '<script>alert("x")</script>&'


def _numeric(edges: list[float], counts: list[int]) -> dict[str, Any]:
    return {
        "kind": "numeric",
        "edges": edges,
        "counts": counts,
        "count": sum(counts),
        "missing": 0,
        "min": edges[0],
        "max": edges[-1],
        "sum": 0.0,
        "sumSquares": 0.0,
    }


STATISTICS = json.dumps(
    {"rows": 10, "features": {"petal": _numeric([1.0, 2.0, 3.0, 4.0], [0, 5, 3, 2, 0])}}
).encode()
WINDOW = json.dumps(
    {"rows": 10, "features": {"petal": _numeric([1.0, 2.0, 3.0, 4.0], [0, 1, 2, 3, 4])}}
).encode()
DOCUMENTS = {"drift/statistics.json": STATISTICS, "drift/window.json": WINDOW}


def _evidence(key: str) -> dict[str, str]:
    return {"key": key, "sha256": hashlib.sha256(DOCUMENTS[key]).hexdigest()}


def _promotion(stage: str, passed: bool) -> dict[str, Any]:
    return {
        "promotionId": f"prm-{stage}",
        "fromStage": "draft",
        "toStage": stage,
        "status": "COMPLETED" if passed else "BLOCKED",
        "approvals": [],
        "approvalsRequired": 0,
        "statementDigest": "9" * 64,
        "signature": {"keyId": KEY} if passed else None,
        "gates": [{"gate": "metrics", "passed": passed, "message": f"accuracy {EVIL}"}],
    }


def _deployment(deploy_id: str, status: str, variants: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "deployId": deploy_id,
        "modelId": variants[0]["modelId"],
        "version": variants[0]["version"],
        "env": "prod",
        "route": "iris",
        "endpointName": "modelops-iris-prod",
        "status": status,
        "statusReason": "error rate 0.5 > 0.05" if status == "ROLLED_BACK" else "",
        "canaryConfig": {
            "type": "CANARY",
            "canaryPercent": 30,
            "bakeSeconds": 3,
            "thresholds": {"maxErrorRate": 0.05},
        },
        "variants": variants,
        "provenance": {
            "artifactRootDigest": "4" * 64,
            "signatureKeyId": KEY,
            "signedStage": "prod",
        },
        "decision": {
            "verdict": "rollback",
            "reasons": ["error rate 0.5 > 0.05"],
            "evidence": {
                "canaryInvocations": 40.0,
                "baselineInvocations": 90.0,
                "canaryErrorRate": 0.5,
                "baselineErrorRate": 0.0,
                "canaryP95Ms": 3.0,
                "baselineP95Ms": 2.0,
            },
        }
        if status == "ROLLED_BACK"
        else None,
        "createdAt": "2026-11-30T10:00:00Z",
        "history": [
            {"status": "CREATING", "at": "2026-11-30T10:00:00Z", "reason": ""},
            {"status": "BAKING", "at": "2026-11-30T10:00:02Z", "reason": "baking"},
            {"status": status, "at": "2026-11-30T10:00:06Z", "reason": "error rate 0.5 > 0.05"},
        ],
    }


def _audit(*events: tuple[str, ...]) -> dict[str, Any]:
    records = [
        json.dumps({"body": json.dumps({"event": {"resources": list(resources)}, "seq": i})})
        for i, resources in enumerate(events, 1)
    ]
    return {"records": [*records, "not json"], "nextFromSeq": None}


ROUTES: dict[str, Any] = {
    f"/models/{MODEL}": {
        "model": {
            "modelId": MODEL,
            "family": f"iris{EVIL}",
            "version": "1.0.0",
            "status": "prod",
            "rootDigest": "1" * 64,
            "provenance": {"trainingJobId": JOB},
        },
        "lineage": {
            "nodes": [
                {
                    "nodeId": "ds-1",
                    "kind": "dataset",
                    "label": f"raw{EVIL}",
                    "digest": "2" * 64,
                    "parents": [],
                },
                {
                    "nodeId": "ds-2",
                    "kind": "dataset",
                    "label": "split",
                    "digest": "3" * 64,
                    "parents": ["ds-1"],
                    "piiFlags": ["email"],
                },
                {
                    "nodeId": MODEL,
                    "kind": "model",
                    "label": "iris@1.0.0",
                    "digest": "1" * 64,
                    "parents": ["ds-2"],
                },
            ],
            "edges": [{"parent": "ds-1", "child": "ds-2"}, {"parent": "ds-2", "child": MODEL}],
        },
        "promotions": [_promotion("staging", True), _promotion("prod", False)],
        "effectiveRestrictions": {
            "datasets": ["ds-1", "ds-2"],
            "licenseExpression": "CC-BY-4.0",
            "licenses": [{"datasetId": "ds-1", "value": "CC-BY-4.0"}],
            "commercialUse": False,
            "commercialUseForbiddenBy": [{"datasetId": "ds-1", "value": EVIL}],
            "permittedPurposes": ["training"],
            "piiFlags": ["email"],
            "piiFrom": [{"datasetId": "ds-2", "value": "email"}],
        },
    },
    f"/train/jobs/{JOB}": {
        "jobId": JOB,
        "status": "COMPLETED",
        "metrics": {"train:loss": 0.2},
        "usage": {"billableSeconds": 12},
        "reproducibility": {"imageDigest": "sha256:" + "5" * 64, "seed": 7},
        "computeRequirements": {"instanceType": "ml.m5.large", "pool": "cpu"},
        "hyperparameters": {"epochs": "3"},
    },
    f"/train/jobs/{JOB}/metrics": {
        "jobId": JOB,
        "linesRead": 3,
        "truncated": False,
        "series": [
            {
                "name": "train:loss",
                "regex": "",
                "points": [
                    {"epoch": 1, "value": 0.9},
                    {"epoch": 2, "value": 0.5},
                    {"epoch": 3, "value": 0.2},
                ],
            },
            {
                "name": "test:accuracy",
                "regex": "",
                "points": [
                    {"epoch": 1, "value": 0.6},
                    {"epoch": 2, "value": 0.8},
                    {"epoch": 3, "value": 0.9},
                ],
            },
        ],
    },
    "/eval": {
        "items": [
            {
                "evaluationId": "evl-1",
                "status": "COMPLETED",
                "digest": "6" * 64,
                "safetyPassed": True,
                "testsets": [{"datasetId": "ds-3"}],
                "results": {
                    "rows": 30,
                    "metrics": {"accuracy": 0.93, "f1": 0.92, "note": EVIL},
                    "fairness": {
                        "site": {
                            "demographic_parity_difference": 0.13,
                            "equalized_odds_difference": 0.2,
                            "disparate_impact_ratio": 0.66,
                            "groups": {EVIL: {"accuracy": 0.9, "rows": 15}},
                        }
                    },
                    "safety": {"checks": [{"name": "labels", "passed": False, "message": EVIL}]},
                },
            }
        ]
    },
    f"/drift/{MODEL}": {
        "baseline": {
            "status": "READY",
            "rows": 10,
            "datasetId": "ds-2",
            "features": ["petal"],
            "statistics": _evidence("drift/statistics.json"),
        },
        "findings": [{"findingId": FINDING, "deployId": DEPLOY}],
        "alerts": [{"alertId": "alr-1", "findingId": FINDING, "reason": EVIL, "remediation": []}],
    },
    f"/drift/findings/{FINDING}": {
        "findingId": FINDING,
        "status": "alarm",
        "rows": 10,
        "deployId": DEPLOY,
        "drifted": ["petal"],
        "features": [
            {
                "feature": "petal",
                "metric": "wasserstein",
                "value": 0.8,
                "warn": 0.05,
                "alarm": 0.1,
                "psi": 0.5,
                "ks": {"pValue": 1e-6},
                "status": "alarm",
            },
        ],
        "evidence": {
            "statistics": _evidence("drift/statistics.json"),
            "window": _evidence("drift/window.json"),
        },
    },
    f"/serve/{DEPLOY}": _deployment(
        DEPLOY, "IN_SERVICE", [{"name": "canary", "modelId": MODEL, "version": "1.0.0"}]
    ),
    f"/serve/{CANARY}": _deployment(
        CANARY,
        "ROLLED_BACK",
        [
            {"name": "canary", "modelId": OTHER, "version": "1.0.1", "weight": 30},
            {"name": "baseline", "modelId": MODEL, "version": "1.0.0", "weight": 70},
        ],
    ),
    "/audit/export": _audit((DEPLOY, MODEL), (CANARY, OTHER), ("dep-unrelated", OTHER)),
    "/serve/dep-unrelated": _deployment(
        "dep-unrelated", "IN_SERVICE", [{"name": "canary", "modelId": OTHER, "version": "9"}]
    ),
    f"/cost/models/{MODEL}": {
        "usage": [{"jobId": JOB, "pool": "cpu", "costUsd": "0.12", "spot": True}],
        "total": {"costUsd": "0.12"},
    },
    "/cost/report": {"rows": [{"key": "cpu", "jobs": 2, "costUsd": "0.50"}]},
    "/audit/verify": {
        "report": {"ok": True, "streams": ["serving"], "recordsChecked": 40},
        "keyIds": [KEY],
    },
}


class FakeClient:
    def __init__(self, routes: Mapping[str, Any]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, str]] = []

    def request(
        self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> tuple[int, Any]:
        self.seen.append((method, path))
        if path in self.routes:
            return 200, self.routes[path]
        return 404, {"error": {"code": "NOT_FOUND", "message": f"no {path} <here>"}}


class Charts(HTMLParser):
    """Each ``svg.chart``'s name and how many shapes it holds."""

    SHAPES = {"rect", "path", "line", "circle", "polyline", "polygon"}

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[tuple[str, int]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg" and found.get("data-chart"):
            self.charts.append((str(found["data-chart"]), 0))
        elif tag in self.SHAPES and self.charts:
            name, count = self.charts[-1]
            self.charts[-1] = (name, count + 1)
        self._in_script = tag == "script"

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def _build(routes: Mapping[str, Any] = ROUTES, **kwargs: Any) -> str:
    when = datetime(2026, 11, 30, tzinfo=UTC)
    return report.build_report(FakeClient(routes), MODEL, generated_at=when, **kwargs)


def test_every_section_is_there_with_its_charts() -> None:
    page = _build(documents=DOCUMENTS.get)
    for anchor, _, _ in report.SECTIONS:
        assert f'<section id="{anchor}">' in page
    assert "section-error" not in page
    parsed = Charts()
    parsed.feed(page)
    drawn = dict(parsed.charts)
    for name in report.CHARTS:
        assert drawn.get(name, 0) >= 3, (name, parsed.charts)
    assert parsed.scripts == [report.SCRIPT]  # the one allowed by the page's CSP hash
    assert f"'sha256-{report.SCRIPT_HASH}'" in page


def test_lineage_shows_job_deployments_short_digests_and_signature_keys() -> None:
    page = _build()
    lineage = page[page.index('<section id="lineage">') : page.index('<section id="training">')]
    for node_id in ("ds-1", "ds-2", MODEL, JOB, DEPLOY, CANARY):
        assert f'data-id="{node_id}"' in lineage
    assert "sha256 " + "2" * 12 + "\u2026" in lineage
    assert "staging signed 1111-2222" in lineage  # the promotion's KMS key id
    assert "dep-unrelated" not in page.split("<footer>")[0]  # it serves another model only


def test_deployments_are_found_in_the_audit_stream_and_the_rollback_is_marked() -> None:
    page = _build()
    section = page[page.index('<section id="deployments">') : page.index('<section id="drift">')]
    assert section.count('data-chart="canary-timeline"') == 2
    assert "rollback at +6.0 s" in section
    assert "baseline=1.0.0 (70%) \u2190 this model" in section


def test_everything_from_the_api_is_escaped() -> None:
    page = _build(documents=DOCUMENTS.get)
    assert EVIL not in page
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page


def test_histograms_need_documents_that_match_their_digests() -> None:
    without = _build()
    assert 'data-chart="drift-histogram"' not in without
    assert "give --evidence-bucket" in without
    tampered = {**DOCUMENTS, "drift/window.json": WINDOW + b" "}
    page = _build(documents=tampered.get)
    assert 'data-chart="drift-histogram"' not in page
    assert "does not match its SHA-256" in page


def test_sections_without_data_say_so() -> None:
    page = _build({})
    assert "section-error" not in page
    assert page.count('class="empty"') >= len(report.SECTIONS)
    assert "No lineage graph (404 NOT_FOUND no /models/" in page
    assert "&lt;here&gt;" in page
    assert "No deployment of this model found" in page


def test_a_section_that_breaks_does_not_cost_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: report.ReportData) -> str:
        raise ValueError("<bad>")

    sections = tuple((a, h, broken if a == "cost" else f) for a, h, f in report.SECTIONS)
    monkeypatch.setattr(report, "SECTIONS", sections)
    page = _build()
    assert page.count("section-error") == 1 and "ValueError: &lt;bad&gt;" in page


def test_write_report_and_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = report.write_report(FakeClient(ROUTES), MODEL, tmp_path / "out" / "r.html")
    assert target.read_text().startswith("<!DOCTYPE html>")
    parser = argparse.ArgumentParser()
    report.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "report",
            MODEL,
            "--endpoint-url",
            "https://api",
            "--out",
            "x.html",
            "--deployment",
            DEPLOY,
            "--deployment",
            CANARY,
        ]
    )
    assert (args.model_id, args.api_url, args.out) == (MODEL, "https://api", "x.html")
    assert args.deployment == [DEPLOY, CANARY] and args.run is report._run
    monkeypatch.setenv("MODELOPS_API_URL", "https://from-env")
    assert parser.parse_args(["report", MODEL]).api_url is None  # read when it runs


def test_the_page_loads_nothing_from_anywhere() -> None:
    page = _build(documents=DOCUMENTS.get)
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    assert "@import" not in page and "url(" not in page.replace("url(#arrow)", "")
