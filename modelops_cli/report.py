"""``modelops report <modelId>``: one self-contained HTML file about a model version.

Everything comes from the API over SigV4 (``ModelOpsClient.request``): the lineage graph with
digests and promotion signatures, the training curves (``GET /train/jobs/{id}/metrics``),
evaluation, fairness and the gates promotion checked, a canary timeline per deployment, drift
per feature, cost per model and pool, the audit ledger's verification and the model's
effective restrictions. Charts are inline SVG drawn here; the page loads nothing (no script,
font, stylesheet or image from anywhere) and every value is HTML-escaped.

Deployments: the API lists none per model, so they are found in the ``serving`` audit stream
(its events name the deployment and the model), from drift findings, and from
``--deployment`` options; a deployment whose variants include the model is shown (a canary
of another version against this one too).

Drift histograms need the drift documents (baseline statistics and the finding's window
summary), which the API names by key and SHA-256 but does not serve: give a ``documents``
reader (the CLI's ``--evidence-bucket``) and each document is checked against its SHA-256
before it is drawn; without one the section shows the per-feature distances only.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

Documents = Callable[[str], bytes | None]
# Every chart the report draws (its data-chart name), given the data for it.
CHARTS = (
    "lineage",
    "training-loss",
    "training-accuracy",
    "evaluation-metrics",
    "canary-timeline",
    "canary-latency",
    "canary-errors",
    "drift-distance",
    "drift-histogram",
    "cost-model",
    "cost-pools",
)
MAX_DEPLOYMENTS = 12
MAX_AUDIT_PAGES = 40
MAX_CANDIDATES = 30  # other versions' deployments read to find canaries against this one
PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#4b5563")
STATUS_COLOURS = {
    "CREATING": "#93c5fd",
    "UPDATING": "#93c5fd",
    "BAKING": "#fcd34d",
    "SHIFTING": "#fcd34d",
    "IN_SERVICE": "#86efac",
    "ROLLED_BACK": "#fca5a5",
    "FAILED": "#f87171",
    "SUPERSEDED": "#d1d5db",
    "ROLLING_BACK": "#fca5a5",
}


class Client(Protocol):
    def request(
        self, method: str, path: str, body: Any = None, query: Mapping[str, Any] | None = None
    ) -> tuple[int, Any]: ...


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def short(digest: Any, keep: int = 12) -> str:
    text = str(digest or "")
    text = text.removeprefix("sha256:")
    return text if len(text) <= keep else text[:keep] + "\u2026"


def key_id(arn: Any) -> str:
    """A KMS key ARN's key id (what people compare)."""
    return str(arn or "").rsplit("/", 1)[-1]


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or value is None:
        return "\u2014" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 10 ** -(digits - 1) or abs(value) >= 1e6):
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if "." in f"{value}" else f"{value}"
    return str(value)


# --- fetching ---------------------------------------------------------------------------------


@dataclass
class Fetched:
    """What the report read: each call's answer, and a note per call that failed."""

    client: Client
    calls: list[tuple[str, int | str]] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)

    def get(self, path: str, query: Mapping[str, Any] | None = None) -> Any:
        label = path + (
            "?" + "&".join(f"{k}={v}" for k, v in query.items() if v is not None) if query else ""
        )
        try:
            status, body = self.client.request("GET", path, query=query)
        except Exception as error:  # a transport failure becomes a note in the report
            self.calls.append((label, type(error).__name__))
            self.problems[path] = f"{type(error).__name__}: {error}"
            return None
        self.calls.append((label, status))
        if status >= 400:
            detail = body.get("error", {}) if isinstance(body, dict) else {}
            code = detail.get("code") if isinstance(detail, dict) else None
            message = detail.get("message") if isinstance(detail, dict) else None
            self.problems[path] = f"{status} {code or ''} {message or body or ''}".strip()
            return None
        return body


@dataclass
class ReportData:
    model_id: str
    detail: dict[str, Any] | None = None
    job: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    deployment_notes: list[str] = field(default_factory=list)
    drift: dict[str, Any] | None = None
    finding: dict[str, Any] | None = None
    histograms: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    histogram_note: str = ""
    cost: dict[str, Any] | None = None
    pools: dict[str, Any] | None = None
    ledger: dict[str, Any] | None = None
    fetched: Fetched | None = None


def collect(
    client: Client,
    model_id: str,
    *,
    deployments: Sequence[str] = (),
    documents: Documents | None = None,
) -> ReportData:
    fetched = Fetched(client)
    data = ReportData(model_id=model_id, fetched=fetched)
    data.detail = fetched.get(f"/models/{model_id}")
    model = (data.detail or {}).get("model") or {}
    job_id = (model.get("provenance") or {}).get("trainingJobId")
    if job_id:
        data.job = fetched.get(f"/train/jobs/{job_id}")
        data.metrics = fetched.get(f"/train/jobs/{job_id}/metrics")
    evaluations = fetched.get("/eval", {"modelId": model_id})
    data.evaluations = list((evaluations or {}).get("items") or [])
    data.drift = fetched.get(f"/drift/{model_id}")
    findings = list((data.drift or {}).get("findings") or [])
    if findings:
        data.finding = fetched.get(f"/drift/findings/{findings[0]['findingId']}") or findings[0]
    data.deployments, data.deployment_notes = _deployments(
        fetched, model_id, deployments, [f.get("deployId") for f in findings]
    )
    if data.finding is not None:
        data.histograms, data.histogram_note = _histograms(data.drift, data.finding, documents)
    data.cost = fetched.get(f"/cost/models/{model_id}")
    data.pools = fetched.get("/cost/report", {"groupBy": "pool"})
    data.ledger = fetched.get("/audit/verify")
    return data


def _deployments(
    fetched: Fetched, model_id: str, given: Sequence[str], from_findings: Iterable[Any]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The deployments whose variants include the model: the ones asked for, then those the
    serving audit stream and the drift findings name (newest first, at most
    MAX_DEPLOYMENTS)."""
    notes: list[str] = []
    named, candidates = _audited_deployments(fetched, model_id, notes)
    seen: list[str] = []
    for deploy_id in [*given, *from_findings, *named, *candidates]:
        if isinstance(deploy_id, str) and deploy_id and deploy_id not in seen:
            seen.append(deploy_id)
    records: list[dict[str, Any]] = []
    for deploy_id in seen:
        if len(records) >= MAX_DEPLOYMENTS:
            notes.append(f"showing the first {MAX_DEPLOYMENTS} deployments only")
            break
        record = fetched.get(f"/serve/{deploy_id}")
        if not isinstance(record, dict):
            if deploy_id in given:
                notes.append(f"{deploy_id}: {fetched.problems.get(f'/serve/{deploy_id}', '')}")
            continue
        models = {record.get("modelId")} | {v.get("modelId") for v in record.get("variants") or []}
        if model_id in models or deploy_id in given:
            records.append(record)
    records.sort(key=lambda r: str(r.get("createdAt") or ""))
    return records, notes


def _audited_deployments(
    fetched: Fetched, model_id: str, notes: list[str]
) -> tuple[list[str], list[str]]:
    """Deployment ids from the serving stream: those whose events name the model, and the
    others (newest first), which may be canaries of another version against it."""
    named: list[str] = []
    others: list[str] = []
    start = 1
    for _ in range(MAX_AUDIT_PAGES):
        page = fetched.get("/audit/export", {"stream": "serving", "fromSeq": start, "limit": 500})
        if not isinstance(page, dict):
            notes.append(
                "the serving audit stream could not be read ("
                + fetched.problems.get("/audit/export", "")
                + "): give --deployment to show deployments"
            )
            break
        for line in page.get("records") or []:
            try:
                event = json.loads(json.loads(line)["body"])["event"]
            except (ValueError, KeyError, TypeError):
                continue
            resources = [str(r) for r in event.get("resources") or []]
            for resource in resources:
                if resource.startswith("dep-"):
                    (named if model_id in resources else others).append(resource)
        start = page.get("nextFromSeq") or 0
        if not start:
            break
    return list(dict.fromkeys(named)), list(dict.fromkeys(reversed(others)))[:MAX_CANDIDATES]


def _histograms(
    drift: Mapping[str, Any] | None, finding: Mapping[str, Any], documents: Documents | None
) -> tuple[dict[str, tuple[Any, Any]], str]:
    evidence = finding.get("evidence") or {}
    baseline = (drift or {}).get("baseline") or {}
    reference, window = (
        evidence.get("statistics") or baseline.get("statistics"),
        evidence.get("window"),
    )
    if not reference or not window:
        return {}, "the finding names no baseline statistics or window summary"
    if documents is None:
        return {}, (
            "histograms need the drift documents, which the API names but does not serve: "
            f"baseline {reference['key']} (sha256 {short(reference['sha256'])}) and window "
            f"{window['key']} (sha256 {short(window['sha256'])}); give --evidence-bucket to "
            "draw them"
        )
    summaries = []
    for name, ref in (("baseline statistics", reference), ("window summary", window)):
        try:
            body = documents(str(ref["key"]))
        except Exception as error:  # unreadable: say so
            return {}, f"the {name} {ref['key']} could not be read: {error}"
        if body is None:
            return {}, f"the {name} {ref['key']} is missing"
        if hashlib.sha256(body).hexdigest() != ref["sha256"]:
            return {}, f"the {name} {ref['key']} does not match its SHA-256: not drawn"
        summaries.append(json.loads(body).get("features") or {})
    before, after = summaries
    found = {name: (before[name], after.get(name)) for name in before if after.get(name)}
    return found, "documents read and checked against their SHA-256"


# --- SVG charts -------------------------------------------------------------------------------


def _svg(name: str, width: int, height: int, body: str, title: str) -> str:
    return (
        f'<svg class="chart" data-chart="{esc(name)}" role="img" aria-label="{esc(title)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{esc(title)}</title>{body}</svg>'
    )


def _text(
    x: float, y: float, text: Any, size: int = 11, anchor: str = "start", **attrs: Any
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{esc(text)}</text>"
    )


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


@dataclass(frozen=True)
class Frame:
    """A plot area and the axes' scales."""

    x0: float
    y0: float
    width: float
    height: float
    xlo: float
    xhi: float
    ylo: float
    yhi: float

    def x(self, value: float) -> float:
        span = (self.xhi - self.xlo) or 1.0
        return self.x0 + (value - self.xlo) / span * self.width

    def y(self, value: float) -> float:
        span = (self.yhi - self.ylo) or 1.0
        return self.y0 + self.height - (value - self.ylo) / span * self.height

    def axes(self, xlabel: str, ylabel: str, xfmt: Callable[[float], str] = fmt) -> str:
        parts = [
            f'<rect x="{self.x0}" y="{self.y0}" width="{self.width}" height="{self.height}" '
            'fill="#fafafa" stroke="#d4d4d8"/>'
        ]
        for tick in _ticks(self.ylo, self.yhi):
            y = self.y(tick)
            parts.append(
                f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x0 + self.width}" y2="{y:.1f}" '
                'stroke="#e4e4e7"/>'
            )
            parts.append(_text(self.x0 - 6, y + 4, fmt(round(tick, 6)), 10, "end"))
        for tick in _ticks(self.xlo, self.xhi, 6):
            x = self.x(tick)
            parts.append(
                f'<line x1="{x:.1f}" y1="{self.y0 + self.height}" x2="{x:.1f}" '
                f'y2="{self.y0 + self.height + 4}" stroke="#71717a"/>'
            )
            parts.append(_text(x, self.y0 + self.height + 16, xfmt(tick), 10, "middle"))
        parts.append(
            _text(self.x0 + self.width / 2, self.y0 + self.height + 32, xlabel, 11, "middle")
        )
        cx, cy = self.x0 - 44, self.y0 + self.height / 2
        parts.append(
            f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 {cx:.1f} {cy:.1f})">{esc(ylabel)}</text>'
        )
        return "".join(parts)


def _legend(x: float, y: float, items: Sequence[tuple[str, str]]) -> str:
    parts = []
    for i, (label, colour) in enumerate(items):
        parts.append(
            f'<rect x="{x:.1f}" y="{y + i * 16:.1f}" width="12" height="10" fill="{colour}"/>'
        )
        parts.append(_text(x + 17, y + i * 16 + 9, label, 11))
    return "".join(parts)


def line_chart(
    name: str,
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    xlabel: str,
    ylabel: str,
) -> str:
    points = [p for _, values in series for p in values]
    width, height = 560, 280
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    ylo, yhi = min(ys), max(ys)
    pad = (yhi - ylo) * 0.08 or abs(yhi) * 0.1 or 1.0
    frame = Frame(
        64,
        28,
        330,
        200,
        min(xs),
        max(xs) if max(xs) > min(xs) else min(xs) + 1,
        ylo - pad,
        yhi + pad,
    )
    parts = [_text(12, 18, title, 13, font_weight="bold"), frame.axes(xlabel, ylabel)]
    legend = []
    for i, (label, values) in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        legend.append((label, colour))
        path = " ".join(
            f"{'M' if j == 0 else 'L'}{frame.x(x):.1f},{frame.y(y):.1f}"
            for j, (x, y) in enumerate(values)
        )
        parts.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in values:
            parts.append(
                f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2.5" fill="{colour}">'
                f"<title>{esc(label)} epoch {esc(fmt(x))}: {esc(fmt(y))}</title></circle>"
            )
    parts.append(_legend(410, 36, legend))
    return _svg(name, width, height, "".join(parts), title)


def bar_chart(
    name: str,
    title: str,
    bars: Sequence[tuple[str, float, str]],
    *,
    markers: Sequence[tuple[str, float, str]] = (),
    unit: str = "",
) -> str:
    """Horizontal bars (label, value, colour); ``markers`` are vertical threshold lines."""
    row, top = 22, 30 + 12 * len(markers)
    width, height = 640, top + 18 + row * len(bars) + 28
    values = [v for _, v, _ in bars] + [v for _, v, _ in markers] + [0.0]
    frame = Frame(190, top, 400, row * len(bars), min(values), max(values) * 1.05 or 1.0, 0, 1)
    parts = [_text(12, 18, title, 13, font_weight="bold")]
    parts.append(
        f'<rect x="{frame.x0}" y="{frame.y0}" width="{frame.width}" height="{frame.height}" '
        'fill="#fafafa" stroke="#d4d4d8"/>'
    )
    for tick in _ticks(frame.xlo, frame.xhi, 5):
        x = frame.x(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.y0}" x2="{x:.1f}" y2="{frame.y0 + frame.height}" '
            'stroke="#e4e4e7"/>'
        )
        parts.append(_text(x, frame.y0 + frame.height + 14, fmt(round(tick, 8)), 10, "middle"))
    for i, (label, value, colour) in enumerate(bars):
        y = frame.y0 + i * row + 4
        left = frame.x(min(0.0, value))
        bar_width = max(abs(frame.x(value) - frame.x(0.0)), 1.0)
        parts.append(_text(frame.x0 - 6, y + 12, label, 11, "end"))
        parts.append(
            f'<rect x="{left:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{row - 8}" '
            f'fill="{colour}"><title>{esc(label)}: {esc(fmt(value))}{esc(unit)}</title></rect>'
        )
        parts.append(_text(left + bar_width + 4, y + 11, fmt(value) + unit, 10))
    for i, (label, value, colour) in enumerate(markers):
        x = frame.x(value)
        parts.append(
            f'<line x1="{x:.1f}" y1="{frame.y0 - 4}" x2="{x:.1f}" '
            f'y2="{frame.y0 + frame.height}" stroke="{colour}" stroke-dasharray="4 3" '
            'stroke-width="1.5"/>'
        )
        y = frame.y0 - 7 - 12 * (len(markers) - 1 - i)
        parts.append(_text(x, y, f"{label} {fmt(value)}", 10, "middle", fill=colour))
    return _svg(name, width, height, "".join(parts), title)


# --- sections ---------------------------------------------------------------------------------


def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def _empty(message: str) -> str:
    return f'<p class="empty">{esc(message)}</p>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


@dataclass(frozen=True)
class Raw:
    """A table cell's HTML, already escaped."""

    html: str


def _cell(value: Any) -> str:
    if isinstance(value, Raw):
        return f"<td>{value.html}</td>"
    return f"<td>{esc(fmt(value))}</td>"


def _badge(ok: bool | None, yes: str = "pass", no: str = "FAIL") -> Raw:
    if ok is None:
        return Raw('<span class="badge none">\u2014</span>')
    return Raw(f'<span class="badge {"ok" if ok else "bad"}">{esc(yes if ok else no)}</span>')


def _code(value: Any, keep: int = 12) -> Raw:
    return Raw(f'<code title="{esc(value)}">{esc(short(value, keep))}</code>')


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(
        f"<tr><th>{esc(k)}</th>{_cell(v)}</tr>" for k, v in pairs if v not in (None, "", [], {})
    )
    return f'<table class="kv">{rows}</table>'


def _problem(data: ReportData, path: str) -> str:
    assert data.fetched is not None
    found = data.fetched.problems.get(path)
    return f" ({found})" if found else ""


Box = dict[str, Any]


def _lineage_boxes(
    data: ReportData, promotions: Sequence[Mapping[str, Any]]
) -> tuple[list[Box], list[tuple[str, str]]]:
    """Boxes (id, kind, column, lines) and edges: the lineage graph's nodes by depth, the
    training job between the model and its inputs, the deployments after the model."""
    detail = data.detail or {}
    graph = detail.get("lineage") or {}
    nodes = list(graph.get("nodes") or [])
    model = detail.get("model") or {}
    by_id = {n["nodeId"]: n for n in nodes}
    depth: dict[str, int] = {}

    def level(node_id: str, seen: frozenset[str] = frozenset()) -> int:
        if node_id not in depth:
            parents = [p for p in by_id.get(node_id, {}).get("parents") or [] if p in by_id]
            depth[node_id] = 1 + max(
                (level(p, seen | {node_id}) for p in parents if p not in seen), default=-1
            )
        return depth[node_id]

    boxes: list[Box] = []
    for node in nodes:
        lines = [node.get("label") or node["nodeId"], node["nodeId"]]
        if node.get("digest"):
            lines.append(f"sha256 {short(node['digest'])}")
        if node.get("license"):
            lines.append(f"licence {node['license']}")
        if node.get("piiFlags"):
            lines.append("PII " + ", ".join(node["piiFlags"]))
        if node["nodeId"] == data.model_id:
            lines.append(f"status {model.get('status', '?')}")
            lines += [
                f"{p['toStage']} signed {key_id(p['signature'].get('keyId'))[:13]}"
                for p in promotions
            ]
        boxes.append(
            {
                "id": node["nodeId"],
                "kind": node.get("kind", "?"),
                "col": level(node["nodeId"]),
                "lines": lines,
            }
        )
    edges = [(str(e["parent"]), str(e["child"])) for e in graph.get("edges") or []]
    model_col = depth.get(data.model_id, 1)
    job = data.job or {}
    if job:
        job_id = str(job.get("jobId"))
        pinned = job.get("reproducibility") or {}
        for box in boxes:
            if box["col"] >= model_col:
                box["col"] += 1
        boxes.append(
            {
                "id": job_id,
                "kind": "job",
                "col": model_col,
                "lines": [
                    "training job",
                    job_id,
                    f"image {short(pinned.get('imageDigest'))}",
                    f"code {short(pinned.get('sourceArchiveDigest'))}",
                    f"{job.get('status', '')}, "
                    f"{(job.get('usage') or {}).get('billableSeconds', '?')} s billable",
                ],
            }
        )
        parents = [p for p, c in edges if c == data.model_id]
        edges = [(p, c) for p, c in edges if c != data.model_id]
        edges += [(p, job_id) for p in parents] + [(job_id, data.model_id)]
        model_col += 1
    for record in data.deployments:
        provenance = record.get("provenance") or {}
        mine = [v for v in record.get("variants") or [] if v.get("modelId") == data.model_id]
        others = [v for v in record.get("variants") or [] if v.get("modelId") != data.model_id]
        role = f"this model as {mine[0].get('name')}" if mine else "another version"
        lines = [
            "deployment",
            record["deployId"],
            f"{record.get('env')}/{record.get('route')}: {record.get('status')}",
            role + "".join(f", {v.get('name')} {v.get('version')}" for v in others),
            f"artifact {short(provenance.get('artifactRootDigest'))}",
            f"{provenance.get('signedStage') or '?'} signed "
            f"{key_id(provenance.get('signatureKeyId'))[:13]}",
        ]
        boxes.append(
            {"id": record["deployId"], "kind": "deployment", "col": model_col + 1, "lines": lines}
        )
        edges.append((data.model_id, record["deployId"]))
    return boxes, edges


def lineage_chart(data: ReportData, boxes: Sequence[Box], edges: Sequence[tuple[str, str]]) -> str:
    columns: dict[int, list[Box]] = {}
    for box in boxes:
        columns.setdefault(box["col"], []).append(box)
    box_w, box_h, gap_x, gap_y = 236, 96, 56, 16
    rows = max(len(c) for c in columns.values())
    where: dict[str, tuple[float, float]] = {}
    title = "Lineage: datasets \u2192 training job \u2192 model \u2192 deployments"
    parts = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#52525b"/></marker></defs>',
        _text(12, 20, title, 13, font_weight="bold"),
    ]
    fills = {"dataset": "#dbeafe", "job": "#fef3c7", "model": "#dcfce7", "deployment": "#f3e8ff"}
    for i, col in enumerate(sorted(columns)):
        for j, box in enumerate(columns[col]):
            x = 16 + i * (box_w + gap_x)
            y = 36 + j * (box_h + gap_y) + (rows - len(columns[col])) * (box_h + gap_y) / 2
            where[box["id"]] = (x, y)
            focus = box["id"] == data.model_id
            parts.append(
                f'<g class="node" data-kind="{esc(box["kind"])}" data-id="{esc(box["id"])}">'
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{box_w}" height="{box_h}" rx="8" '
                f'fill="{fills.get(box["kind"], "#f4f4f5")}" '
                f'stroke="{"#15803d" if focus else "#71717a"}" '
                f'stroke-width="{2.5 if focus else 1}"/>'
            )
            for k, line in enumerate(box["lines"][:6]):
                text = line if len(line) <= 37 else line[:36] + "\u2026"
                weight = "bold" if k == 0 else "normal"
                parts.append(
                    _text(x + 8, y + 16 + k * 14, text, 12 if k == 0 else 10, font_weight=weight)
                )
            parts.append("</g>")
    for parent, child in edges:
        if parent in where and child in where:
            (px, py), (cx, cy) = where[parent], where[child]
            x1, y1, x2, y2 = px + box_w, py + box_h / 2, cx, cy + box_h / 2
            if x2 <= x1:  # same or an earlier column: from the bottom to the top
                x1, y1, x2, y2 = px + box_w / 2, py + box_h, cx + box_w / 2, cy
            mid = (x1 + x2) / 2
            parts.append(
                f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} '
                f'{x2:.1f},{y2:.1f}" fill="none" stroke="#52525b" stroke-width="1.5" '
                'marker-end="url(#arrow)"/>'
            )
    width = 24 + len(columns) * (box_w + gap_x)
    height = 48 + rows * (box_h + gap_y)
    return _svg("lineage", width, height, "".join(parts), "Lineage graph")


def lineage_section(data: ReportData) -> str:
    detail = data.detail or {}
    if not (detail.get("lineage") or {}).get("nodes"):
        return _empty("No lineage graph" + _problem(data, f"/models/{data.model_id}") + ".")
    promotions = [p for p in detail.get("promotions") or [] if p.get("signature")]
    svg = lineage_chart(data, *_lineage_boxes(data, promotions))
    signatures = _table(
        ["promotion", "stage", "status", "signature key", "statement digest", "approvals"],
        [
            (
                p["promotionId"],
                f"{p.get('fromStage')} \u2192 {p.get('toStage')}",
                p.get("status"),
                _code(key_id(p["signature"].get("keyId")), 36),
                _code(p.get("statementDigest")),
                f"{len(p.get('approvals') or [])}/{p.get('approvalsRequired', 0)}",
            )
            for p in promotions
        ],
    )
    note = _empty("No signed promotion yet.") if not promotions else signatures
    return f'<div class="scroll">{svg}</div><h3>Promotion signatures</h3>{note}'


def training_section(data: ReportData) -> str:
    job = data.job
    if not job:
        model = (data.detail or {}).get("model") or {}
        metrics = model.get("metrics") or {}
        text = "No training job recorded for this model (registered from outside the platform)."
        if metrics:
            return _empty(text) + _table(["metric", "value"], sorted(metrics.items()))
        return _empty(text)
    usage = job.get("usage") or {}
    pinned = job.get("reproducibility") or {}
    compute = job.get("computeRequirements") or {}
    facts = _kv(
        [
            ("job", job.get("jobId")),
            ("status", job.get("status")),
            ("instance", f"{compute.get('instanceType', '?')} x{compute.get('instanceCount', 1)}"),
            ("pool", compute.get("pool")),
            ("spot", compute.get("spot")),
            ("billable seconds", usage.get("billableSeconds")),
            ("spot interruptions", usage.get("spotInterruptions")),
            ("seed", pinned.get("seed")),
            (
                "hyperparameters",
                ", ".join(
                    f"{k}={v}" for k, v in sorted((job.get("hyperparameters") or {}).items())
                ),
            ),
            ("image", _code(pinned.get("imageDigest"), 20)),
            ("logs", job.get("logsRef")),
        ]
    )
    history = data.metrics or {}
    series = [s for s in history.get("series") or [] if s.get("points")]
    if not series:
        why = _problem(data, f"/train/jobs/{job.get('jobId')}/metrics")
        final = job.get("metrics") or {}
        return (
            facts
            + _empty("No per-epoch metric history available through the API" + why + ".")
            + (_table(["final metric", "value"], sorted(final.items())) if final else "")
        )
    groups: dict[str, list[tuple[str, list[tuple[float, float]]]]] = {}
    for s in series:
        points = [(float(p["epoch"]), float(p["value"])) for p in s["points"]]
        kind = (
            "loss"
            if "loss" in s["name"].lower()
            else ("accuracy" if "acc" in s["name"].lower() else "other")
        )
        groups.setdefault(kind, []).append((s["name"], points))
    charts = "".join(
        line_chart(f"training-{kind}", f"Training {kind} per epoch", found, "epoch", kind)
        for kind, found in sorted(groups.items())
    )
    note = (
        f"Parsed from {history.get('linesRead', 0)} log lines of the job's newest log stream"
        + (" (its last lines only)" if history.get("truncated") else "")
        + "; after a spot interruption that stream holds the epochs since the resume."
    )
    final = job.get("metrics") or {}
    table = _table(
        ["metric", "epochs", "first", "last", "final (job record)"],
        [
            (
                s["name"],
                len(s["points"]),
                s["points"][0]["value"],
                s["points"][-1]["value"],
                final.get(s["name"]),
            )
            for s in series
        ],
    )
    return f'{facts}<div class="charts">{charts}</div><p class="note">{esc(note)}</p>{table}'


def evaluation_section(data: ReportData) -> str:
    parts = []
    if not data.evaluations:
        parts.append(_empty("No evaluation of this model" + _problem(data, "/eval") + "."))
    for record in data.evaluations[:3]:
        results = record.get("results") or {}
        metrics = results.get("metrics") or {}
        parts.append(
            f"<h3>{esc(record.get('evaluationId'))}: {esc(record.get('status'))}</h3>"
            + _kv(
                [
                    ("rows", results.get("rows")),
                    (
                        "test sets",
                        ", ".join(t.get("datasetId", "") for t in record.get("testsets") or []),
                    ),
                    ("evidence digest", _code(record.get("digest"), 20)),
                    ("safety", _badge(record.get("safetyPassed"))),
                    ("reason", record.get("statusReason")),
                ]
            )
        )
        numeric = [(k, float(v)) for k, v in sorted(metrics.items()) if isinstance(v, int | float)]
        if numeric:
            parts.append(
                bar_chart(
                    "evaluation-metrics",
                    f"Evaluation metrics ({record.get('evaluationId')})",
                    [(k, v, PALETTE[0]) for k, v in numeric],
                )
            )
        fairness = results.get("fairness") or {}
        if fairness:
            rows = []
            for attribute, found in sorted(fairness.items()):
                groups = found.get("groups") or {}
                rows.append(
                    (
                        attribute,
                        found.get("demographic_parity_difference"),
                        found.get("equalized_odds_difference"),
                        found.get("disparate_impact_ratio"),
                        ", ".join(
                            f"{g}: acc {fmt(v.get('accuracy'))} ({v.get('rows')} rows)"
                            for g, v in sorted(groups.items())
                        ),
                    )
                )
            parts.append("<h4>Fairness</h4>")
            parts.append(
                _table(
                    [
                        "attribute",
                        "demographic parity diff.",
                        "equalized odds diff.",
                        "disparate impact ratio",
                        "groups",
                    ],
                    rows,
                )
            )
        else:
            parts.append(_empty("No fairness results (no sensitive attribute configured)."))
        checks = (results.get("safety") or {}).get("checks") or []
        if checks:
            parts.append("<h4>Safety checks</h4>")
            parts.append(
                _table(
                    ["check", "outcome", "value", "limit", "message"],
                    [
                        (
                            c.get("name"),
                            _badge(c.get("passed")),
                            c.get("value"),
                            c.get("limit"),
                            c.get("message"),
                        )
                        for c in checks
                    ],
                )
            )
    promotions = (data.detail or {}).get("promotions") or []
    parts.append("<h3>Promotion gates</h3>")
    if not promotions:
        parts.append(_empty("No promotion requested yet."))
    for promotion in promotions:
        gates = promotion.get("gates") or []
        parts.append(
            f"<h4>{esc(promotion.get('fromStage'))} \u2192 {esc(promotion.get('toStage'))}: "
            f"{esc(promotion.get('status'))} "
            f"<small>{esc(promotion.get('promotionId'))}</small></h4>"
        )
        parts.append(
            _table(
                ["gate", "outcome", "message"],
                [(g.get("gate"), _badge(g.get("passed")), g.get("message")) for g in gates],
            )
            if gates
            else _empty("No gate recorded.")
        )
    return "".join(parts)


def _time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _shares(
    record: Mapping[str, Any], history: Sequence[tuple[Mapping[str, Any], float]]
) -> dict[str, list[tuple[float, float]]]:
    """Each variant's traffic share (%) from the moment it was set, by variant name."""
    config = record.get("canaryConfig") or {}
    share = float(config.get("canaryPercent") or 0) if config.get("type") == "CANARY" else 0.0
    names = [str(v.get("name") or v.get("role")) for v in record.get("variants") or []]
    if not {"canary", "baseline"} <= set(names):  # one variant: all traffic once it serves
        only = names[0] if names else "model"
        starts = [t for entry, t in history if entry.get("status") in {"BAKING", "IN_SERVICE"}]
        return {only: [(starts[0], 100.0)] if starts else []}
    lines: dict[str, list[tuple[float, float]]] = {"canary": [], "baseline": []}
    for entry, t in history:
        status = entry.get("status")
        if status in {"BAKING", "SHIFTING"}:
            canary = share
        elif status in {"ROLLED_BACK", "FAILED", "ROLLING_BACK"}:
            canary = 0.0
        elif status == "IN_SERVICE":
            canary = 100.0
        else:
            continue
        lines["canary"].append((t, canary))
        lines["baseline"].append((t, 100.0 - canary))
    return lines


def _step_path(frame: Frame, points: Sequence[tuple[float, float]], until: float) -> str:
    steps: list[tuple[float, float]] = []
    for j, (t, value) in enumerate(points):
        if j:
            steps.append((t, points[j - 1][1]))
        steps.append((t, value))
    steps.append((until, points[-1][1]))
    return " ".join(
        f"{'M' if k == 0 else 'L'}{frame.x(t):.1f},{frame.y(v):.1f}"
        for k, (t, v) in enumerate(steps)
    )


def _status_bands(frame: Frame, history: Sequence[tuple[Mapping[str, Any], float]]) -> str:
    parts = []
    for i, (entry, t) in enumerate(history):
        x1 = frame.x(t)
        x2 = frame.x(history[i + 1][1]) if i + 1 < len(history) else frame.x0 + frame.width
        status = str(entry.get("status"))
        parts.append(
            f'<rect class="status" x="{x1:.1f}" y="30" width="{max(x2 - x1, 2):.1f}" '
            f'height="18" fill="{STATUS_COLOURS.get(status, "#e4e4e7")}">'
            f"<title>{esc(status)} at {esc(entry.get('at'))}: {esc(entry.get('reason'))}</title>"
            "</rect>"
        )
        if x2 - x1 > 50:
            parts.append(_text(x1 + 3, 43, status, 10))
    return "".join(parts)


def _moments(frame: Frame, history: Sequence[tuple[Mapping[str, Any], float]]) -> str:
    """The rollback (or promotion) of a canary: a vertical line with when and why."""
    parts = []
    for entry, t in history:
        rollback = entry.get("status") == "ROLLED_BACK"
        if not rollback and entry.get("status") != "IN_SERVICE":
            continue
        x = frame.x(t)
        colour, label = ("#dc2626", "rollback") if rollback else ("#16a34a", "promoted")
        parts.append(
            f'<line class="moment" x1="{x:.1f}" y1="{frame.y0 - 10}" x2="{x:.1f}" '
            f'y2="{frame.y0 + frame.height}" stroke="{colour}" stroke-width="2"/>'
        )
        left = x > frame.x0 + frame.width / 2
        tx, anchor = (x - 5, "end") if left else (x + 5, "start")
        when = f"{label} at +{t:.1f} s"
        parts.append(_text(tx, frame.y0 + 14, when, 11, anchor, fill=colour, font_weight="bold"))
        if entry.get("reason"):
            parts.append(_text(tx, frame.y0 + 28, entry["reason"], 10, anchor, fill=colour))
    return "".join(parts)


def canary_timeline(record: Mapping[str, Any]) -> str:
    """Status bands, each variant's traffic share as it was set (from the status history and
    the canary config) and the rollback or promotion moment."""
    stamped = [(h, _time(h.get("at"))) for h in record.get("history") or []]
    times = [t for _, t in stamped if t is not None]
    if not times:
        return _empty("No status history recorded.")
    start = times[0]
    history = [(h, (t - start).total_seconds()) for h, t in stamped if t is not None]
    span = max(max(t for _, t in history) * 1.12, 1.0)
    frame = Frame(70, 64, 560, 170, 0.0, span, 0.0, 100.0)
    heading = f"{record.get('deployId')} ({record.get('version')}): {record.get('status')}"
    parts = [
        _text(12, 18, heading, 13, font_weight="bold"),
        frame.axes("seconds since the deployment started", "traffic share %", lambda v: f"{v:g}"),
        _status_bands(frame, history),
    ]
    lines = _shares(record, history)
    legend = []
    versions = {v.get("name"): v.get("version") for v in record.get("variants") or []}
    for i, (name, points) in enumerate(lines.items()):
        if not points:
            continue
        colour = PALETTE[1] if name == "canary" and len(lines) > 1 else PALETTE[0]
        legend.append((f"{name} {versions.get(name) or ''}".strip(), colour))
        dash = ' stroke-dasharray="6 3"' if i else ""
        parts.append(
            f'<path class="share" d="{_step_path(frame, points, span)}" fill="none" '
            f'stroke="{colour}" stroke-width="2.5"{dash}/>'
        )
    if len(lines) > 1:
        parts.append(_moments(frame, history))
    parts.append(_legend(645, 70, legend))
    svg = _svg(
        "canary-timeline", 760, 300, "".join(parts), f"Canary timeline of {record.get('deployId')}"
    )
    return svg + _bake_window(record)


def _bake_window(record: Mapping[str, Any]) -> str:
    evidence = (record.get("decision") or {}).get("evidence") or {}
    roles = [
        (role, colour)
        for role, colour in (("baseline", PALETTE[0]), ("canary", PALETTE[1]))
        if f"{role}Invocations" in evidence
    ]
    if not roles:
        return _empty("No canary analysis (an all-at-once deployment, or none ran yet).")
    limit = float(
        ((record.get("canaryConfig") or {}).get("thresholds") or {}).get("maxErrorRate", 0)
    )
    latency = bar_chart(
        "canary-latency",
        "p95 latency in the bake window (ms)",
        [(r, float(evidence.get(f"{r}P95Ms") or 0), c) for r, c in roles],
        unit=" ms",
    )
    errors = bar_chart(
        "canary-errors",
        "Error rate in the bake window",
        [(r, float(evidence.get(f"{r}ErrorRate") or 0), c) for r, c in roles],
        markers=[("max", limit, "#dc2626")],
    )
    return f'<div class="charts">{latency}{errors}</div>'


def deployments_section(data: ReportData) -> str:
    parts = [f'<p class="note">{esc(n)}</p>' for n in data.deployment_notes]
    if not data.deployments:
        return "".join(parts) + _empty(
            "No deployment of this model found (the serving audit stream, drift findings and "
            "--deployment options were searched)."
        )
    for record in data.deployments:
        config = record.get("canaryConfig") or {}
        decision = record.get("decision") or {}
        evidence = decision.get("evidence") or {}
        parts.append(f"<h3>{esc(record.get('deployId'))}</h3>")
        parts.append(
            _kv(
                [
                    ("endpoint", record.get("endpointName")),
                    ("env / route", f"{record.get('env')} / {record.get('route')}"),
                    ("status", f"{record.get('status')}: {record.get('statusReason')}"),
                    (
                        "variants",
                        ", ".join(
                            f"{v.get('name')}={v.get('version')} ({fmt(v.get('weight'))}%)"
                            + (" \u2190 this model" if v.get("modelId") == data.model_id else "")
                            for v in record.get("variants") or []
                        ),
                    ),
                    (
                        "rollout",
                        f"{config.get('type')} {config.get('canaryPercent', '')}%, bake "
                        f"{config.get('bakeSeconds')} s",
                    ),
                    (
                        "verdict",
                        f"{decision.get('verdict')}: {'; '.join(decision.get('reasons') or [])}"
                        if decision
                        else None,
                    ),
                    (
                        "requests in the bake window",
                        ", ".join(
                            f"{r} {int(evidence.get(f'{r}Invocations', 0))}"
                            for r in ("baseline", "canary")
                            if f"{r}Invocations" in evidence
                        ),
                    ),
                    ("prediction divergence", evidence.get("predictionDivergence")),
                ]
            )
        )
        parts.append(canary_timeline(record))
    parts.append(
        '<p class="note">Traffic shares are as the rollout set them (from the status history '
        "and the canary config); latency and errors are the bake-window figures the canary "
        "decision used: the API keeps no per-minute series.</p>"
    )
    return "".join(parts)


def histogram_chart(feature: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    width, height = 420, 230
    title = f"{feature}: baseline vs current"
    if before.get("kind") == "categorical":
        keys = sorted(set(before.get("counts") or {}) | set(after.get("counts") or {}))
        bn, an = max(before.get("count") or 1, 1), max(after.get("count") or 1, 1)
        shares = [
            (k, (before["counts"].get(k, 0)) / bn, (after.get("counts") or {}).get(k, 0) / an)
            for k in keys
        ]
        frame = Frame(
            50,
            28,
            340,
            150,
            0,
            max(len(keys), 1),
            0,
            max([max(b, a) for _, b, a in shares] + [0.01]) * 1.1,
        )
        parts = [
            _text(12, 16, title, 12, font_weight="bold"),
            frame.axes("category", "share", lambda v: ""),
        ]
        for i, (k, b, a) in enumerate(shares):
            x = frame.x(i)
            w = frame.width / max(len(keys), 1)
            parts.append(
                f'<rect x="{x + 2:.1f}" y="{frame.y(b):.1f}" width="{w / 2 - 2:.1f}" '
                f'height="{frame.y(0) - frame.y(b):.1f}" fill="#94a3b8"/>'
            )
            parts.append(
                f'<rect x="{x + w / 2:.1f}" y="{frame.y(a):.1f}" width="{w / 2 - 2:.1f}" '
                f'height="{frame.y(0) - frame.y(a):.1f}" fill="{PALETTE[1]}" '
                'fill-opacity="0.75"/>'
            )
            parts.append(_text(x + w / 2, frame.y0 + frame.height + 12, k, 9, "middle"))
        parts.append(_legend(300, 30, [("baseline", "#94a3b8"), ("current", PALETTE[1])]))
        return _svg("drift-histogram", width, height, "".join(parts), title)
    edges = [float(e) for e in before.get("edges") or []]
    b_counts = [int(c) for c in before.get("counts") or []]
    a_counts = [int(c) for c in after.get("counts") or []]
    if not edges or len(b_counts) != len(edges) + 1 or len(a_counts) != len(b_counts):
        return _empty(f"{feature}: the summaries' bins do not line up; not drawn.")
    used = [i for i in range(len(b_counts)) if b_counts[i] or a_counts[i]]
    if not used:
        return _empty(f"{feature}: no values in either window.")
    lows = [before.get("min"), after.get("min")]
    highs = [before.get("max"), after.get("max")]
    lo_value = (
        min(v for v in lows if v is not None) if any(v is not None for v in lows) else edges[0]
    )
    hi_value = (
        max(v for v in highs if v is not None) if any(v is not None for v in highs) else edges[-1]
    )

    def bounds(i: int) -> tuple[float, float]:
        left = edges[i - 1] if i > 0 else min(lo_value, edges[0])
        right = edges[i] if i < len(edges) else max(hi_value, edges[-1])
        return max(left, lo_value), min(right, hi_value) if right > left else right

    bins = []
    b_total, a_total = max(sum(b_counts), 1), max(sum(a_counts), 1)
    for i in range(used[0], used[-1] + 1):
        left, right = bounds(i)
        if right <= left:
            right = left + max((hi_value - lo_value) / 200, 1e-9)
        w = right - left
        bins.append((left, right, b_counts[i] / b_total / w, a_counts[i] / a_total / w))
    xlo, xhi = bins[0][0], bins[-1][1]
    ymax = max(max(b, a) for _, _, b, a in bins) * 1.1 or 1.0
    frame = Frame(58, 28, 330, 150, xlo, xhi if xhi > xlo else xlo + 1, 0, ymax)
    parts = [_text(12, 16, title, 12, font_weight="bold"), frame.axes(feature, "density")]
    for left, right, b, _ in bins:
        if b > 0:
            parts.append(
                f'<rect class="baseline" x="{frame.x(left):.1f}" y="{frame.y(b):.1f}" '
                f'width="{max(frame.x(right) - frame.x(left), 0.8):.1f}" '
                f'height="{frame.y(0) - frame.y(b):.1f}" fill="#94a3b8"/>'
            )
    for left, right, _, a in bins:
        if a > 0:
            parts.append(
                f'<rect class="current" x="{frame.x(left):.1f}" y="{frame.y(a):.1f}" '
                f'width="{max(frame.x(right) - frame.x(left), 0.8):.1f}" '
                f'height="{frame.y(0) - frame.y(a):.1f}" fill="{PALETTE[1]}" fill-opacity="0.55" '
                f'stroke="{PALETTE[1]}" stroke-width="0.5"/>'
            )
    parts.append(_legend(300, 32, [("baseline", "#94a3b8"), ("current", PALETTE[1])]))
    return _svg("drift-histogram", width, height, "".join(parts), title)


def drift_section(data: ReportData) -> str:
    drift = data.drift
    if not drift:
        return _empty("No drift monitoring data" + _problem(data, f"/drift/{data.model_id}") + ".")
    parts = []
    baseline = drift.get("baseline")
    if baseline:
        parts.append(
            _kv(
                [
                    (
                        "baseline",
                        f"{baseline.get('status')} over {baseline.get('rows')} rows of "
                        f"{baseline.get('datasetId')}",
                    ),
                    ("features", ", ".join(baseline.get("features") or [])),
                    ("reference accuracy", baseline.get("referenceAccuracy")),
                    ("statistics", _code((baseline.get("statistics") or {}).get("sha256"), 20)),
                    ("quarantine", (drift.get("quarantine") or {}).get("reason")),
                ]
            )
        )
    else:
        parts.append(_empty("No drift baseline for this model."))
    finding = data.finding
    if not finding:
        parts.append(_empty("No drift finding yet (no check has run on captured traffic)."))
        return "".join(parts)
    features = finding.get("features") or []
    parts.append(
        f"<h3>Finding {esc(finding.get('findingId'))}: {esc(str(finding.get('status')).upper())}"
        f"</h3><p>{esc(finding.get('rows'))} rows captured on {esc(finding.get('endpoint'))}/"
        f"{esc(finding.get('variant'))} ({esc(finding.get('deployId'))}) between "
        f"{esc(finding.get('windowStart'))} and {esc(finding.get('windowEnd'))}; drifted: "
        f"{esc(', '.join(finding.get('drifted') or []) or 'none')}</p>"
    )
    colours = {"ok": "#16a34a", "warn": "#ca8a04", "alarm": "#dc2626"}
    if features:
        warn = max((float(f.get("warn") or 0) for f in features), default=0.0)
        alarm = max((float(f.get("alarm") or 0) for f in features), default=0.0)
        parts.append(
            bar_chart(
                "drift-distance",
                "Drift per feature (the verdict's metric)",
                [
                    (
                        f"{f['feature']} ({f.get('metric')})",
                        float(f.get("value") or 0),
                        colours.get(f.get("status"), PALETTE[7]),
                    )
                    for f in features
                ],
                markers=[("warn", warn, "#ca8a04"), ("alarm", alarm, "#dc2626")],
            )
        )
        parts.append(
            _table(
                [
                    "feature",
                    "metric",
                    "value",
                    "warn",
                    "alarm",
                    "PSI",
                    "KS / chi\u00b2 p",
                    "reference rows",
                    "current rows",
                    "status",
                ],
                [
                    (
                        f["feature"],
                        f.get("metric"),
                        f.get("value"),
                        f.get("warn"),
                        f.get("alarm"),
                        f.get("psi"),
                        ((f.get("ks") or f.get("chiSquare") or {}).get("pValue")),
                        f.get("referenceRows"),
                        f.get("currentRows"),
                        Raw(
                            f'<span class="badge {esc(f.get("status"))}">'
                            f"{esc(f.get('status'))}</span>"
                        ),
                    )
                    for f in features
                ],
            )
        )
    performance = finding.get("performance") or {}
    if performance.get("accuracy") is not None:
        parts.append(
            f"<p>Performance: accuracy {esc(fmt(performance.get('accuracy')))} on "
            f"{esc(performance.get('labelled'))} labelled rows vs "
            f"{esc(fmt(performance.get('referenceAccuracy')))} at baseline: "
            f"{esc(performance.get('status'))}</p>"
        )
    parts.append("<h3>Histograms: baseline vs current window</h3>")
    if data.histograms:
        charts = "".join(histogram_chart(name, b, a) for name, (b, a) in data.histograms.items())
        parts.append(f'<div class="charts">{charts}</div>')
    parts.append(f'<p class="note">{esc(data.histogram_note)}</p>')
    alerts = drift.get("alerts") or []
    if alerts:
        parts.append("<h3>Alerts</h3>")
        parts.append(
            _table(
                ["alert", "finding", "reason", "remediation", "proposal"],
                [
                    (
                        a.get("alertId"),
                        a.get("findingId"),
                        a.get("reason"),
                        ", ".join(a.get("remediation") or []),
                        a.get("proposalId"),
                    )
                    for a in alerts
                ],
            )
        )
    return "".join(parts)


def _money(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def cost_section(data: ReportData) -> str:
    parts = []
    cost = data.cost
    usage = (cost or {}).get("usage") or []
    if usage:
        total = cost.get("total") or {} if cost else {}
        parts.append(
            bar_chart(
                "cost-model",
                "Cost per job of this model (USD)",
                [(u.get("jobId", "?"), _money(u.get("costUsd")), PALETTE[0]) for u in usage],
                unit=" $",
            )
        )
        parts.append(
            _table(
                ["job", "pool", "instance", "spot", "billable s", "instance h", "GPU h", "USD"],
                [
                    (
                        u.get("jobId"),
                        u.get("pool"),
                        u.get("instanceType"),
                        u.get("spot"),
                        u.get("billableSeconds"),
                        u.get("instanceHours"),
                        u.get("gpuHours"),
                        u.get("costUsd"),
                    )
                    for u in usage
                ]
                + [
                    (
                        "total",
                        "",
                        "",
                        "",
                        "",
                        total.get("instanceHours"),
                        total.get("gpuHours"),
                        total.get("costUsd"),
                    )
                ],
            )
        )
    else:
        parts.append(
            _empty(
                "No usage recorded for this model"
                + _problem(data, f"/cost/models/{data.model_id}")
                + "."
            )
        )
    rows = (data.pools or {}).get("rows") or []
    parts.append("<h3>Per pool (all models)</h3>")
    if rows:
        parts.append(
            bar_chart(
                "cost-pools",
                "Cost per compute pool (USD)",
                [(r.get("key", "?"), _money(r.get("costUsd")), PALETTE[2]) for r in rows],
                unit=" $",
            )
        )
        parts.append(
            _table(
                ["pool", "jobs", "GPU h", "instance h", "USD"],
                [
                    (
                        r.get("key"),
                        r.get("jobs"),
                        r.get("gpuHours"),
                        r.get("instanceHours"),
                        r.get("costUsd"),
                    )
                    for r in rows
                ],
            )
        )
    else:
        parts.append(_empty("No usage recorded in any pool" + _problem(data, "/cost/report") + "."))
    return "".join(parts)


def ledger_section(data: ReportData) -> str:
    answer = data.ledger
    if not answer:
        return _empty("The ledger could not be verified" + _problem(data, "/audit/verify") + ".")
    report = answer.get("report") or {}
    ok = bool(report.get("ok"))
    return (
        f'<p class="verdict {"ok" if ok else "bad"}">'
        + esc(
            "Ledger verified: every chain, Merkle root and signature checks out."
            if ok
            else f"Ledger verification FAILED: {report.get('problem')}"
        )
        + "</p>"
        + _kv(
            [
                ("streams", ", ".join(report.get("streams") or [])),
                ("records checked", report.get("recordsChecked")),
                ("signed checkpoints checked", report.get("checkpointsChecked")),
                ("records after the last checkpoint", report.get("uncheckpointed")),
                ("problem", json.dumps(report.get("problem")) if report.get("problem") else None),
                ("checkpoint keys", ", ".join(key_id(k) for k in answer.get("keyIds") or [])),
            ]
        )
    )


def restrictions_section(data: ReportData) -> str:
    found = (data.detail or {}).get("effectiveRestrictions")
    if not found:
        return _empty(
            "No effective restrictions recorded" + _problem(data, f"/models/{data.model_id}") + "."
        )

    def sources(items: Any) -> str:
        return ", ".join(
            f"{s.get('value')} ({s.get('datasetId')})" if isinstance(s, dict) else str(s)
            for s in items or []
        )

    return _kv(
        [
            ("from datasets", ", ".join(found.get("datasets") or [])),
            ("licence expression", found.get("licenseExpression")),
            ("licences", sources(found.get("licenses"))),
            ("commercial use", found.get("commercialUse")),
            ("commercial use forbidden by", sources(found.get("commercialUseForbiddenBy"))),
            (
                "permitted purposes",
                "any"
                if found.get("permittedPurposes") is None
                else ", ".join(found.get("permittedPurposes") or []) or "none",
            ),
            ("purposes restricted by", sources(found.get("purposesRestrictedBy"))),
            (
                "export regions",
                "any"
                if found.get("exportRegions") is None
                else ", ".join(found.get("exportRegions") or []) or "none",
            ),
            ("regions restricted by", sources(found.get("regionsRestrictedBy"))),
            ("retention days", found.get("retentionDays")),
            ("retention expires", found.get("retentionExpiresAt")),
            ("PII flags", ", ".join(found.get("piiFlags") or []) or "none"),
            ("PII from", sources(found.get("piiFrom"))),
        ]
    )


# --- the page ---------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #18181b; background: #f4f4f5; }
header { background: #18181b; color: #fafafa; padding: 20px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: #d4d4d8; }
nav { padding: 8px 32px; background: #e4e4e7; position: sticky; top: 0; }
nav a { margin-right: 14px; color: #1d4ed8; text-decoration: none; }
main { padding: 8px 32px 40px; max-width: 1240px; }
section { background: #fff; border: 1px solid #e4e4e7; border-radius: 10px; margin: 16px 0;
  padding: 6px 20px 16px; }
h2 { font-size: 18px; border-bottom: 1px solid #e4e4e7; padding-bottom: 6px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
h4 { font-size: 13px; margin: 14px 0 4px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 12.5px; }
th, td { border: 1px solid #e4e4e7; padding: 3px 8px; text-align: left; vertical-align: top; }
thead th { background: #f4f4f5; }
table.kv th { background: #fafafa; font-weight: 600; width: 220px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.empty { color: #71717a; font-style: italic; }
.note { color: #52525b; font-size: 12px; }
.badge { border-radius: 4px; padding: 0 6px; font-size: 11.5px; font-weight: 600; }
.badge.ok { background: #dcfce7; color: #166534; }
.badge.bad, .badge.alarm { background: #fee2e2; color: #991b1b; }
.badge.warn { background: #fef9c3; color: #854d0e; }
.badge.none { background: #f4f4f5; color: #52525b; }
.verdict { font-weight: 600; padding: 8px 12px; border-radius: 6px; }
.verdict.ok { background: #dcfce7; color: #166534; }
.verdict.bad { background: #fee2e2; color: #991b1b; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.scroll { overflow-x: auto; }
svg.chart { background: #fff; font-family: system-ui, sans-serif; max-width: 100%; height: auto; }
svg.chart text { fill: #27272a; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin-top: 12px; }
.card { background: #27272a; border-radius: 8px; padding: 8px 14px; min-width: 140px; }
.card b { display: block; font-size: 16px; color: #fff; }
.card span { font-size: 11px; color: #a1a1aa; text-transform: uppercase; }
footer { color: #71717a; font-size: 12px; padding: 0 32px 32px; }
"""

# Marks each chart with the size Chromium (or any browser) drew it at and its shape count
# (``data-drawn="WxH:N"``), and the page with its height: what the rendering test reads back
# from the DOM. Allowed by its SHA-256 in the page's Content-Security-Policy; nothing else runs.
SCRIPT = (
    "document.querySelectorAll('svg.chart').forEach(function (s) {"
    " var b = s.getBBox();"
    " var n = s.querySelectorAll('rect,path,line,circle,polyline,polygon').length;"
    " s.setAttribute('data-drawn', Math.round(b.width) + 'x' + Math.round(b.height) + ':' + n);"
    " });"
    "document.documentElement.setAttribute('data-height',"
    " String(document.documentElement.scrollHeight));"
)
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()

SECTIONS: tuple[tuple[str, str, Callable[[ReportData], str]], ...] = (
    ("lineage", "Lineage", lineage_section),
    ("training", "Training curves", training_section),
    ("evaluation", "Evaluation, fairness and gates", evaluation_section),
    ("deployments", "Deployments and canaries", deployments_section),
    ("drift", "Drift", drift_section),
    ("cost", "Cost", cost_section),
    ("ledger", "Audit ledger", ledger_section),
    ("restrictions", "Effective restrictions", restrictions_section),
)


def render(data: ReportData, generated_at: datetime | None = None) -> str:
    model = (data.detail or {}).get("model") or {}
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    title = f"{model.get('family', '?')} {model.get('version', '')} ({data.model_id})"
    finding = data.finding or {}
    ledger_ok = ((data.ledger or {}).get("report") or {}).get("ok")
    cards = [
        ("stage", model.get("status", "unknown")),
        ("deployments", len(data.deployments)),
        ("drift", str(finding.get("status") or "no finding").upper()),
        ("cost (USD)", ((data.cost or {}).get("total") or {}).get("costUsd", "\u2014")),
        ("ledger", "verified" if ledger_ok else ("FAILED" if ledger_ok is False else "unknown")),
    ]
    bodies = []
    for anchor, heading, render_section in SECTIONS:
        try:
            body = render_section(data)
        except Exception as error:  # one broken section must not cost the whole report
            body = (
                f'<p class="section-error">This section could not be drawn: '
                f"{esc(type(error).__name__)}: {esc(error)}</p>"
            )
        bodies.append(_section(anchor, heading, body))
    calls = data.fetched.calls if data.fetched else []
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f"style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{SCRIPT_HASH}'\">"
        f"<title>Run report: {esc(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>Run report: {esc(title)}</h1>"
        f"<p>root digest <code>{esc(model.get('rootDigest', ''))}</code></p>"
        f"<p>created {esc(model.get('createdAt', ''))} by {esc(model.get('createdBy', ''))}; "
        f"report generated {esc(when)}</p>"
        '<div class="cards">'
        + "".join(f'<div class="card"><span>{esc(k)}</span><b>{esc(v)}</b></div>' for k, v in cards)
        + "</div></header><nav>"
        + "".join(f'<a href="#{esc(a)}">{esc(h)}</a>' for a, h, _ in SECTIONS)
        + "</nav><main>"
        + "".join(bodies)
        + "</main><footer><details><summary>API calls behind this report</summary><ul>"
        + "".join(
            f"<li><code>GET {esc(path)}</code> \u2192 {esc(status)}</li>" for path, status in calls
        )
        + f"</ul></details></footer><script>{SCRIPT}</script></body></html>\n"
    )


def build_report(
    client: Client,
    model_id: str,
    *,
    deployments: Sequence[str] = (),
    documents: Documents | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The report as one HTML document."""
    data = collect(client, model_id, deployments=deployments, documents=documents)
    return render(data, generated_at)


def write_report(
    client: Client,
    model_id: str,
    path: str | Path,
    *,
    deployments: Sequence[str] = (),
    documents: Documents | None = None,
) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(client, model_id, deployments=deployments, documents=documents)
    target.write_text(text, encoding="utf-8")
    return target


def s3_documents(bucket: str, session: Any = None, client: Any = None) -> Documents:
    """A drift-document reader over S3: ``client``, else one of ``session`` (default: the
    standard credential chain)."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = client or (session or boto3.session.Session()).client("s3")

    def read(key: str) -> bytes | None:
        try:
            return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise

    return read


def _run(args: argparse.Namespace) -> int:
    from modelops_cli.client import ModelOpsClient

    api_url = args.api_url or os.environ.get("MODELOPS_API_URL")
    if not api_url:
        raise SystemExit("give --api-url (or MODELOPS_API_URL)")
    bucket = args.evidence_bucket or os.environ.get("MODELOPS_EVIDENCE_BUCKET")
    out = args.out or f"report-{args.model_id}.html"
    written = write_report(
        ModelOpsClient(api_url),
        args.model_id,
        out,
        deployments=args.deployment or (),
        documents=s3_documents(bucket) if bucket else None,
    )
    print(f"wrote {written}")
    return 0


def add_parser(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="one self-contained HTML report about a model version"
    )
    report.add_argument("model_id", metavar="modelId")
    report.add_argument(
        "--api-url", "--endpoint-url", dest="api_url", help="the API (default: MODELOPS_API_URL)"
    )
    report.add_argument("--out", help="the HTML file to write (default: report-<modelId>.html)")
    report.add_argument(
        "--deployment",
        action="append",
        metavar="DEPLOY_ID",
        help="a deployment to show (repeatable); others are found in the serving audit stream",
    )
    report.add_argument(
        "--evidence-bucket",
        help="the artifacts bucket, to draw drift histograms from the finding's documents "
        "(default: MODELOPS_EVIDENCE_BUCKET; read with the standard AWS credential chain)",
    )
    report.set_defaults(run=_run)
