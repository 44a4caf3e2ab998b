"""``modelops report`` against the local cloud, rendered by headless Chromium: every chart is
drawn, nothing is logged to the console, and the screenshot and the HTML are kept under
build/test-artifacts/. Chromium is Debian's ``chromium`` package; without it the rendering
test skips, unless CI is set (then it fails)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops_cli import evaluation, report
from modelops_cli.cli import wait_for
from modelops_cli.client import ModelOpsClient
from modelops_cli.demo import Traffic, iris_rows, runtime_invoker
from modelops_cli.demo_monitoring import (
    EVALUATION_CONFIG,
    GATES,
    drifted_rows,
    holdout_with_site,
)
from tests.integration.test_training_api import _request, _train, engineer, iris

pytestmark = pytest.mark.slow
__all__ = ["engineer", "iris"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
CHARTS = report.CHARTS


# --- the data: a minimal run of the example flow ---------------------------------------

FAMILY = "iris-report-it"
ROUTE = "report-it"
CANARY = {
    "canaryPercent": 30,
    "bakeSeconds": 3,
    "thresholds": {"minInvocations": 10, "maxErrorRate": 0.05, "maxPredictionDivergence": 0.5},
}
Say = Callable[[str], None]


def _deploy(client: ModelOpsClient, model_id: str, **fields: Any) -> dict[str, Any]:
    return dict(
        client.call(
            "POST",
            "/serve/deploy",
            {"modelId": model_id, "env": "prod", "route": ROUTE, **fields},
            headers={"Idempotency-Key": f"report-{model_id}-{time.monotonic_ns()}"},
        )
    )


def _settle(client: ModelOpsClient, deploy_id: str, *statuses: str) -> dict[str, Any]:
    wanted = statuses or ("IN_SERVICE", "ROLLED_BACK", "FAILED", "SUPERSEDED")
    return dict(
        wait_for(lambda: client.call("GET", f"/serve/{deploy_id}"), lambda r: r["status"] in wanted)
    )


def _promote(client: ModelOpsClient, model_id: str) -> None:
    for stage in ("staging", "prod"):
        client.call("POST", f"/models/{model_id}/promote", {"targetStage": stage})


def make_report_data(
    cloud: LocalCloud, iris: dict[str, Any], workdir: Path, say: Say = lambda _: None
) -> dict[str, Any]:
    principals = cloud.principals
    engineer = ModelOpsClient(cloud.api_url, principals["ml-engineer"].session(cloud.region))
    admin = ModelOpsClient(cloud.api_url, principals["platform-admin"].session(cloud.region))
    started = time.monotonic()

    def trained(seed: int) -> str:
        request = _request(iris, modelFamily=FAMILY, seed=seed, hyperparameters={"epochs": 8})
        job = _train(engineer, request)
        assert job["status"] == "COMPLETED", job.get("failure")
        say(f"trained {job['modelId']} ({time.monotonic() - started:.1f} s)")
        return str(job["modelId"])

    model, candidate = trained(41), trained(42)
    _promote(engineer, candidate)  # before the family's policy: no evaluation needed
    admin.call(
        "POST",
        f"/models/families/{FAMILY}/policy",
        {"evaluationRequired": ["prod"], "gates": GATES},
    )
    holdout = holdout_with_site(engineer, iris["datasetId"], iris["split"] / "test.csv", workdir)
    record = evaluation.run(
        engineer, model, [holdout], EVALUATION_CONFIG, workdir / "eval", say=lambda _: None
    )
    assert record["status"] == "COMPLETED", record["statusReason"]
    _promote(engineer, model)
    say(f"evaluated and promoted ({time.monotonic() - started:.1f} s)")

    live = _settle(engineer, _deploy(engineer, model)["deployId"])
    assert live["status"] == "IN_SERVICE", live["statusReason"]
    endpoint = str(live["endpointName"])
    runtime = cloud.client("sagemaker-runtime")
    send = runtime_invoker(runtime)
    wait_for(
        lambda: engineer.call("GET", f"/drift/{model}")["baseline"],
        lambda b: b is not None and b["status"] == "READY",
    )

    def rows(batch: list[list[float]]) -> None:
        runtime.invoke_endpoint(
            EndpointName=endpoint,
            Body=json.dumps({"instances": batch}),
            ContentType="application/json",
        )

    normal = iris_rows()
    for start in range(0, len(normal), 10):
        rows(normal[start : start + 10])
    for batch in range(12):
        rows(drifted_rows(25, seed=70 + batch))

    def checked() -> dict[str, Any] | None:
        """The finding of one check, or None when the monitor found nothing to compare yet
        (data capture reaches S3 in the background: on a loaded machine, later)."""
        before = {f["findingId"] for f in engineer.call("GET", f"/drift/{model}")["findings"]}
        engineer.call("POST", f"/drift/{model}/check", {"hours": 1})
        try:
            view = wait_for(
                lambda: engineer.call("GET", f"/drift/{model}"),
                lambda v: any(f["findingId"] not in before for f in v["findings"]),
                20,
            )
        except TimeoutError:
            return None
        return dict(view["findings"][0])

    finding = wait_for(checked, lambda f: f is not None and f["rows"] >= 150 + 300, 180)
    say(f"drift finding {finding['findingId']} ({time.monotonic() - started:.1f} s)")

    canary = _deploy(engineer, candidate, canary=CANARY)
    _settle(engineer, canary["deployId"], "BAKING", "ROLLED_BACK", "FAILED", "IN_SERVICE")
    assert cloud.endpoints is not None
    cloud.endpoints.inject_fault(endpoint, "canary", error_rate=0.5)
    with Traffic(send, endpoint):
        rolled = _settle(engineer, canary["deployId"])
    say(f"canary {rolled['status']} ({time.monotonic() - started:.1f} s)")
    return {
        "modelId": model,
        "candidateId": candidate,
        "live": live,
        "canary": rolled,
        "finding": finding,
        "evaluation": record,
        "engineer": engineer,
    }


@pytest.fixture(scope="module")
def flow(
    local_cloud: LocalCloud, iris: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    return make_report_data(local_cloud, iris, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def written(local_cloud: LocalCloud, flow: dict[str, Any]) -> Path:
    s3 = local_cloud.client("s3")
    bucket = local_cloud.names[platform.ARTIFACT_BUCKET.logical_id]

    def documents(key: str) -> bytes:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    return report.write_report(
        flow["engineer"], flow["modelId"], ARTIFACTS / "report.html", documents=documents
    )


def test_per_epoch_metrics_come_from_the_training_logs(
    engineer: ModelOpsClient, flow: dict[str, Any]
) -> None:
    model = engineer.get_model(flow["modelId"])["model"]
    job_id = model["provenance"]["trainingJobId"]
    job = engineer.get_training(job_id)
    history = engineer.call("GET", f"/train/jobs/{job_id}/metrics")
    series = {s["name"]: s["points"] for s in history["series"]}
    assert set(series) == {d["Name"] for d in job["metricDefinitions"]}
    assert [p["epoch"] for p in series["train:loss"]] == list(range(1, 9))
    assert series["train:loss"][0]["value"] > series["train:loss"][-1]["value"]
    for name, final in job["metrics"].items():  # the last epoch is what SageMaker reported
        assert series[name][-1]["value"] == pytest.approx(final)
    assert history["final"] == job["metrics"] and history["truncated"] is False
    status, body = engineer.request("GET", "/train/jobs/trn-" + "0" * 24 + "/metrics")
    assert (status, body["error"]["code"]) == (404, "NOT_FOUND")


def test_the_report_shows_what_the_platform_recorded(flow: dict[str, Any], written: Path) -> None:
    page = written.read_text()
    assert "section-error" not in page
    model = flow["engineer"].get_model(flow["modelId"])
    for node in model["lineage"]["nodes"]:
        assert f'data-id="{node["nodeId"]}"' in page
    for deploy_id in (flow["live"]["deployId"], flow["canary"]["deployId"]):
        assert f'data-id="{deploy_id}"' in page  # found in the serving audit stream
    assert flow["canary"]["status"] == "ROLLED_BACK" and "rollback at +" in page
    signed = {p["signature"]["keyId"].rsplit("/", 1)[-1] for p in model["promotions"]}
    assert all(f"prod signed {key[:13]}" in page for key in signed)
    assert f"Finding {flow['finding']['findingId']}: ALARM" in page
    assert "documents read and checked against their SHA-256" in page
    # The session's ledger is shared with tests that tamper with it on purpose: the page
    # says what the API says.
    ledger = flow["engineer"].call("GET", "/audit/verify")["report"]
    assert ("Ledger verified" if ledger["ok"] else "Ledger verification FAILED") in page
    assert flow["evaluation"]["evaluationId"] in page


class DrawnCharts(HTMLParser):
    """From Chromium's DOM: each chart's name and the ``data-drawn`` mark its script set."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: list[tuple[str, str | None]] = []
        self.height = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg" and found.get("data-chart"):
            self.charts.append((str(found["data-chart"]), found.get("data-drawn")))
        if tag == "html" and found.get("data-height"):
            self.height = int(str(found["data-height"]))


@pytest.fixture(scope="module")
def chromium() -> str:
    """Checked before the local cloud's flow runs, so a skip costs nothing."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    message = "chromium is not installed (Debian: apt-get install -y chromium); CI=true fails"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message}; CI must render the report")
    pytest.skip(message)


def _run(command: list[str], profile: Path) -> tuple[str, list[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [
            *command[:1],
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *command[1:],
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console, elapsed


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def test_chromium_draws_every_chart_without_a_console_message(
    chromium: str, written: Path, tmp_path: Path
) -> None:
    url = written.resolve().as_uri()
    dom, console, dump_s = _run([chromium, "--dump-dom", url], tmp_path / "dump")
    assert console == [], console
    drawn = DrawnCharts()
    drawn.feed(dom)
    assert drawn.charts, dom[:2000]
    for name, mark in drawn.charts:
        assert mark is not None, f"{name}: the page's script did not run (CSP?)"
        size = re.fullmatch(r"(\d+)x(\d+):(\d+)", mark)
        assert size is not None, (name, mark)
        width, height, shapes = (int(g) for g in size.groups())
        assert width > 0 and height > 0 and shapes >= 3, (name, mark)
    assert set(CHARTS) <= {name for name, _ in drawn.charts}

    page_height = min(max(drawn.height, 800), 16000)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    _, console, shot_s = _run(
        [
            chromium,
            "--hide-scrollbars",
            f"--window-size=1280,{page_height}",
            f"--screenshot={screenshot}",
            url,
        ],
        tmp_path / "shot",
    )
    assert console == [], console
    assert _png_size(screenshot) == (1280, page_height)
    assert screenshot.stat().st_size > 50_000  # drawn, not blank
    timing = {"dumpDomSeconds": round(dump_s, 2), "screenshotSeconds": round(shot_s, 2)}
    (ARTIFACTS / "report-timing.json").write_text(json.dumps({**timing, "height": page_height}))
    print(f"chromium: --dump-dom {dump_s:.2f} s, --screenshot {shot_s:.2f} s ({page_height} px)")
