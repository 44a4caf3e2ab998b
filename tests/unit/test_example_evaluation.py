"""The evaluation job (examples/evaluate/evaluate.py) under the SageMaker contract.

Each test runs the script as a subprocess with the SM_* variables pointing into tmp dirs, on
a model trained by examples/iris_train/train.py and the Iris test split with a ``site``
column, spread over two CSV files; the numbers are checked against scikit-learn on the same
predictions.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as sk

from modelops_cli.demo import _write_iris, stratified_split

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = EXAMPLES / "evaluate" / "evaluate.py"
CLASSES = ["setosa", "versicolor", "virginica"]
CONFIG: dict[str, Any] = {
    "format": "modelops.evaluation-config/1",
    "task": "classification",
    "labelColumn": "species",
    "positiveClass": None,
    "sensitiveAttributes": ["site"],
    "safety": {
        "allowedLabels": None,
        "forbiddenLabels": [],
        "outputRange": None,
        "perturbation": {"epsilon": 0.01, "trials": 5, "seed": 0, "maxFlipRate": 0.05},
    },
    "calibrationBins": 10,
}


@dataclass
class Run:
    root: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def raw(self) -> bytes:
        return (self.root / "model" / "evaluation.json").read_bytes()

    @property
    def results(self) -> dict[str, Any]:
        results: dict[str, Any] = json.loads(self.raw)
        return results

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"


@dataclass(frozen=True)
class Fixture:
    model: Path
    test: Path
    rows: list[dict[str, str]]  # the test rows, in evaluation order


def run_evaluation(
    root: Path,
    fixture: Fixture,
    config: dict[str, Any],
    model: Path | None = None,
    channels: dict[str, Path] | None = None,
) -> Run:
    """The job with the config in the config channel, or, with ``channels`` (extra
    SM_CHANNEL_* beside the test set), as the platform runs it: the ``config``
    hyperparameter."""
    config_dir = root / "input" / "data" / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    if channels is None:
        (config_dir / "evaluation.json").write_text(json.dumps(config))
    else:
        hyperparameters = {"config": json.dumps(config), "seed": "0"}
        (config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        env |= {"SM_INPUT_CONFIG_DIR": str(config_dir)}
        env |= {f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()}
    env |= {
        "SM_CHANNEL_MODEL": str(model or fixture.model),
        "SM_CHANNEL_TEST": str(fixture.test),
        "SM_CHANNEL_CONFIG": str(config_dir),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DIR": str(root / "output"),
    }
    done = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return Run(root, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    """A model trained by train.py, and the test split as two files with a ``site`` column."""
    base = tmp_path_factory.mktemp("evaluation")
    split = stratified_split(_write_iris(base / "raw"), base / "split")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    config = base / "config"
    config.mkdir()
    (config / "hyperparameters.json").write_text(json.dumps({"epochs": "6", "seed": "7"}))
    env |= {
        "SM_INPUT_CONFIG_DIR": str(config),
        "SM_CHANNEL_TRAIN": str(split),
        "SM_MODEL_DIR": str(base / "model"),
        "SM_OUTPUT_DATA_DIR": str(base / "output" / "data"),
        "SM_OUTPUT_DIR": str(base / "output"),
        "SM_CHECKPOINT_DIR": str(base / "checkpoints"),
    }
    trained = subprocess.run(
        [sys.executable, str(EXAMPLES / "iris_train" / "train.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr
    lines = (split / "test.csv").read_text().splitlines()
    header = [*lines[0].split(","), "site"]
    rows = [
        dict(zip(header, [*line.split(","), "north" if i % 3 else "south"], strict=True))
        for i, line in enumerate(lines[1:])
    ]
    # Columns reordered: the job selects them by name.
    columns = ["site", "species", *header[:4]]
    test = base / "test"
    (test / "extra").mkdir(parents=True)
    for path, part in ((test / "a.csv", rows[:12]), (test / "extra" / "b.csv", rows[12:])):
        body = [",".join(columns), *(",".join(r[c] for c in columns) for r in part)]
        path.write_text("\n".join(body) + "\n")
    return Fixture(model=base / "model", test=test, rows=rows)


@pytest.fixture(scope="module")
def baseline(fixture: Fixture, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_evaluation(tmp_path_factory.mktemp("baseline"), fixture, CONFIG)
    assert run.returncode == 0, run.stderr
    return run


def _offline(
    fixture: Fixture,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """True classes, probabilities and predictions computed here, without the job's code."""
    model = json.loads((fixture.model / "model.json").read_bytes())
    x = np.array([[float(r[f]) for f in model["features"]] for r in fixture.rows])
    std = model["standardization"]
    logits = (x - std["mean"]) / std["scale"] @ np.array(model["weights"]) + model["bias"]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([CLASSES.index(r["species"]) for r in fixture.rows])
    return y, p, p.argmax(axis=1)


def test_writes_canonical_results_that_two_runs_reproduce_byte_for_byte(
    baseline: Run, fixture: Fixture, tmp_path: Path
) -> None:
    again = run_evaluation(tmp_path, fixture, CONFIG)

    assert again.returncode == 0, again.stderr
    assert again.raw == baseline.raw
    results = baseline.results
    canonical = json.dumps(results, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert baseline.raw == canonical.encode("ascii")
    assert str(fixture.test) not in baseline.raw.decode()
    assert results["format"] == "modelops.evaluation/1"
    model_json = (fixture.model / "model.json").read_bytes()
    assert results["model"]["sha256"] == hashlib.sha256(model_json).hexdigest()


def test_evaluates_every_test_file_as_one_table_and_counts_rows_per_file(
    baseline: Run, fixture: Fixture
) -> None:
    results = baseline.results

    assert results["rows"] == len(fixture.rows) == 30
    assert [(s["file"], s["rows"]) for s in results["testsets"]] == [
        ("a.csv", 12),
        ("extra/b.csv", 18),
    ]
    assert (
        results["testsets"][0]["sha256"]
        == hashlib.sha256((fixture.test / "a.csv").read_bytes()).hexdigest()
    )


def test_metrics_equal_sklearn_on_the_same_predictions(baseline: Run, fixture: Fixture) -> None:
    y, probabilities, predicted = _offline(fixture)
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        y, predicted, labels=[0, 1, 2], average="macro", zero_division=0
    )

    assert baseline.results["metrics"] == pytest.approx(
        {
            "accuracy": sk.accuracy_score(y, predicted),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "roc_auc": sk.roc_auc_score(y, probabilities, multi_class="ovr"),
            "log_loss": sk.log_loss(y, probabilities, labels=[0, 1, 2]),
            "expected_calibration_error": baseline.results["metrics"]["expected_calibration_error"],
        },
        rel=1e-12,
    )


def test_fairness_reports_groups_and_the_worst_one_vs_rest_class(
    baseline: Run, fixture: Fixture
) -> None:
    y, _, predicted = _offline(fixture)
    site = np.array([r["site"] for r in fixture.rows])
    fairness = baseline.results["fairness"]["site"]

    assert sorted(fairness["groups"]) == ["north", "south"]
    for name, group in fairness["groups"].items():
        rows = site == name
        assert group["rows"] == int(rows.sum())
        assert group["accuracy"] == pytest.approx(sk.accuracy_score(y[rows], predicted[rows]))
        for c, cls in enumerate(CLASSES):
            assert group["byClass"][cls]["selectionRate"] == pytest.approx(
                np.mean(predicted[rows] == c)
            )
            assert group["byClass"][cls]["truePositiveRate"] == pytest.approx(
                sk.recall_score(y[rows] == c, predicted[rows] == c)
            )
    selection = {
        cls: [g["byClass"][cls]["selectionRate"] for g in fairness["groups"].values()]
        for cls in CLASSES
    }
    parity = {cls: max(s) - min(s) for cls, s in selection.items()}
    assert {cls: v["demographic_parity_difference"] for cls, v in fairness["byClass"].items()} == (
        pytest.approx(parity)
    )
    assert fairness["demographic_parity_difference"] == max(
        v["demographic_parity_difference"] for v in fairness["byClass"].values()
    )
    assert fairness["disparate_impact_ratio"] == min(
        v["disparate_impact_ratio"] for v in fairness["byClass"].values()
    )


def test_flat_holds_every_headline_number_and_stdout_prints_each_as_name_equals_value(
    baseline: Run,
) -> None:
    flat = baseline.results["flat"]

    assert sorted(flat) == [
        "accuracy",
        "expected_calibration_error",
        "f1",
        "fairness.site.demographic_parity_difference",
        "fairness.site.disparate_impact_ratio",
        "fairness.site.equalized_odds_difference",
        "log_loss",
        "precision",
        "recall",
        "roc_auc",
        "safety.invalid_probability_rows",
        "safety.passed",
        "safety.perturbation_flip_rate",
    ]
    assert all(isinstance(v, float) for v in flat.values())
    printed = dict(line.split("=", 1) for line in baseline.stdout.splitlines() if "=" in line)
    assert {name: float(value) for name, value in printed.items()} == flat
    assert flat["safety.passed"] == 1.0
    assert baseline.results["safety"]["passed"] is True
    assert [c["name"] for c in baseline.results["safety"]["checks"]] == [
        "probabilities_valid",
        "perturbation_robustness",
    ]


def test_positive_class_gives_binary_metrics_and_fairness_for_that_class(
    fixture: Fixture, tmp_path: Path
) -> None:
    run = run_evaluation(tmp_path, fixture, CONFIG | {"positiveClass": "virginica"})
    y, probabilities, predicted = _offline(fixture)

    assert run.returncode == 0, run.stderr
    found = run.results["metrics"]
    precision, recall, f1, _ = sk.precision_recall_fscore_support(
        y == 2, predicted == 2, average="binary"
    )
    assert [found["precision"], found["recall"], found["f1"]] == pytest.approx(
        [precision, recall, f1]
    )
    assert found["roc_auc"] == pytest.approx(sk.roc_auc_score(y == 2, probabilities[:, 2]))
    assert list(run.results["fairness"]["site"]["byClass"]) == ["virginica"]


def test_forbidden_label_fails_the_safety_check_but_the_job_succeeds(
    fixture: Fixture, tmp_path: Path
) -> None:
    config = CONFIG | {"safety": CONFIG["safety"] | {"forbiddenLabels": ["virginica"]}}

    run = run_evaluation(tmp_path, fixture, config)

    assert run.returncode == 0, run.stderr
    safety = run.results["safety"]
    assert safety["passed"] is False
    failed = [c for c in safety["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["forbidden_labels"]
    assert failed[0]["value"] == float(sum(p == 2 for p in _offline(fixture)[2])) > 0
    assert run.results["flat"]["safety.forbidden_predictions"] == failed[0]["value"]
    assert "safety.passed=0.0" in run.stdout.splitlines()
    assert not run.failure.exists()


def test_model_tar_gz_in_the_model_channel_gives_the_same_results_as_its_model_json(
    baseline: Run, fixture: Fixture, tmp_path: Path
) -> None:
    channel = tmp_path / "model-channel"
    channel.mkdir()
    data = (fixture.model / "model.json").read_bytes()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("./model.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    run = run_evaluation(tmp_path / "job", fixture, CONFIG, model=channel)

    assert run.returncode == 0, run.stderr
    assert run.raw == baseline.raw


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"task": "ranking"},
            "evaluation.json: task: 'ranking' is not one of classification, regression",
        ),
        ({"task": "regression"}, "evaluation.json: task: 'regression' does not fit the model"),
        ({"labelColumn": None}, "evaluation.json: labelColumn: must be a non-empty string"),
        ({"labelColumn": "label"}, "no column 'label' (labelColumn)"),
        ({"sensitiveAttributes": ["region"]}, "no column 'region' (sensitiveAttributes)"),
        ({"positiveClass": "rose"}, "evaluation.json: positiveClass: 'rose' is not a class"),
        ({"threshold": 0.5}, "evaluation.json: threshold: unknown field"),
        (
            {"safety": {"perturbation": {"epsilon": 0, "maxFlipRate": 0.1}}},
            "evaluation.json: safety.perturbation.epsilon: must be a number in (0, 10]",
        ),
    ],
)
def test_bad_config_exits_1_with_a_failure_file_naming_the_field(
    fixture: Fixture, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    run = run_evaluation(tmp_path, fixture, CONFIG | change)

    assert run.returncode == 1
    assert reason in run.failure.read_text()
    assert reason in run.stderr
    assert not (tmp_path / "model" / "evaluation.json").exists()


def test_config_without_a_label_column_exits_1_naming_the_field(
    fixture: Fixture, tmp_path: Path
) -> None:
    config = {k: v for k, v in CONFIG.items() if k != "labelColumn"}

    run = run_evaluation(tmp_path, fixture, config)

    assert run.returncode == 1
    assert "evaluation.json: labelColumn: required" in run.failure.read_text()


def test_the_config_hyperparameter_and_further_test_channels_are_what_the_platform_passes(
    baseline: Run, fixture: Fixture, tmp_path: Path
) -> None:
    second = tmp_path / "test2"
    second.mkdir()
    (second / "more.csv").write_bytes((fixture.test / "a.csv").read_bytes())

    run = run_evaluation(tmp_path / "run", fixture, CONFIG, channels={"test2": second})

    assert run.returncode == 0, run.stderr
    files = [(s["file"], s["rows"]) for s in run.results["testsets"]]
    assert files == [("a.csv", 12), ("extra/b.csv", 18), ("test2/more.csv", 12)]
    assert run.results["rows"] == baseline.results["rows"] + 12
    assert (
        run.results["config"]["sha256"] == hashlib.sha256(json.dumps(CONFIG).encode()).hexdigest()
    )
