"""The example training script (examples/iris_train/train.py) under the SageMaker contract.

Each test runs the script as a subprocess with the SM_* variables pointing into tmp dirs, on
the Iris split the demo produces, and checks that model.json is reproducible bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelops_cli.demo import _write_iris, stratified_split

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "iris_train" / "train.py"
HYPERPARAMETERS = {
    "epochs": "6",
    "learning_rate": "0.5",
    "seed": "7",
    "batch_size": "16",
    "l2": "0.0001",
}
METRICS_LINE = re.compile(
    r"^epoch=(\d+) train_loss=([0-9.]+) train_accuracy=([0-9.]+)"
    r" test_loss=([0-9.]+) test_accuracy=([0-9.]+)$"
)


@dataclass
class Run:
    root: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def model_digest(self) -> str:
        return hashlib.sha256((self.root / "model" / "model.json").read_bytes()).hexdigest()

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def failure_text(self) -> str:
        return self.failure.read_text()

    @property
    def model(self) -> dict[str, Any]:
        model: dict[str, Any] = json.loads((self.root / "model" / "model.json").read_bytes())
        return model


@pytest.fixture(scope="module")
def iris_split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("iris")
    return stratified_split(_write_iris(base / "raw"), base / "split")


def run_training(
    root: Path,
    data: Path,
    hyperparameters: dict[str, str] | None = None,
    *,
    interrupt_after: int | None = None,
    parent: Path | None = None,
) -> Run:
    """Lay out the container contract under ``root`` (reused across restarts) and run."""
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters or HYPERPARAMETERS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
    env |= {
        "SM_INPUT_CONFIG_DIR": str(config),
        "SM_CHANNEL_TRAIN": str(data),
        "SM_CHANNEL_TEST": str(root / "input" / "data" / "test"),
        "SM_CHANNEL_PARENT": str(parent or root / "input" / "data" / "parent"),
        "SM_MODEL_DIR": str(root / "model"),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_CHECKPOINT_DIR": str(root / "checkpoints"),
    }
    args = [sys.executable, str(SCRIPT)]
    if interrupt_after is not None:
        args += ["--simulate-interrupt-after-epoch", str(interrupt_after)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    return Run(root, done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def baseline(iris_split: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    run = run_training(tmp_path_factory.mktemp("baseline"), iris_split)
    assert run.returncode == 0, run.stderr
    return run


def test_two_runs_with_the_same_inputs_write_byte_identical_models(
    baseline: Run, iris_split: Path, tmp_path: Path
) -> None:
    again = run_training(tmp_path, iris_split)

    assert again.returncode == 0, again.stderr
    assert again.model_digest == baseline.model_digest
    assert (again.root / "model" / "metrics.json").read_bytes() == (
        baseline.root / "model" / "metrics.json"
    ).read_bytes()


def test_model_json_is_canonical_and_floats_round_trip(baseline: Run) -> None:
    raw = (baseline.root / "model" / "model.json").read_bytes()
    model = json.loads(raw)

    canonical = json.dumps(model, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert raw == canonical.encode("ascii")
    assert b"/" not in raw.replace(b"softmax-regression/1", b"")  # no paths leak in
    assert model["classes"] == ["setosa", "versicolor", "virginica"]
    assert len(model["weights"]) == 4 and all(len(row) == 3 for row in model["weights"])


def test_run_interrupted_after_epochs_1_2_and_3_resumes_to_the_same_model(
    baseline: Run, iris_split: Path, tmp_path: Path
) -> None:
    for epoch in (1, 2, 3):
        interrupted = run_training(tmp_path, iris_split, interrupt_after=epoch)
        assert interrupted.returncode == 143, interrupted.stderr
        assert not (tmp_path / "model" / "model.json").exists()
        assert (tmp_path / "checkpoints" / f"checkpoint-epoch-{epoch:06d}.json").is_file()
        if epoch > 1:
            assert f"resuming from checkpoint-epoch-{epoch - 1:06d}.json" in interrupted.stdout
        assert [
            m.group(1) for m in map(METRICS_LINE.match, interrupted.stdout.splitlines()) if m
        ] == [str(epoch)]

    finished = run_training(tmp_path, iris_split)

    assert finished.returncode == 0, finished.stderr
    assert "resuming from checkpoint-epoch-000003.json" in finished.stdout
    assert finished.model_digest == baseline.model_digest
    assert (finished.root / "model" / "metrics.json").read_bytes() == (
        baseline.root / "model" / "metrics.json"
    ).read_bytes()


def test_changing_the_seed_changes_the_model_digest(
    baseline: Run, iris_split: Path, tmp_path: Path
) -> None:
    other = run_training(tmp_path, iris_split, HYPERPARAMETERS | {"seed": "8"})

    assert other.returncode == 0, other.stderr
    assert other.model_digest != baseline.model_digest


def test_changing_one_byte_of_training_data_changes_the_model_weights(
    baseline: Run, iris_split: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.csv").write_bytes((iris_split / "test.csv").read_bytes())
    train = bytearray((iris_split / "train.csv").read_bytes())
    first_row = train.index(b"\n") + 1
    assert chr(train[first_row]).isdigit()
    train[first_row] = ord("9") if train[first_row] != ord("9") else ord("8")
    (data / "train.csv").write_bytes(bytes(train))

    other = run_training(tmp_path / "job", data)

    assert other.returncode == 0, other.stderr
    assert other.model_digest != baseline.model_digest
    before = json.loads((baseline.root / "model" / "model.json").read_bytes())["weights"]
    after = json.loads((other.root / "model" / "model.json").read_bytes())["weights"]
    assert before != after


def test_prints_one_parsable_metrics_line_per_epoch_and_reaches_good_test_accuracy(
    baseline: Run,
) -> None:
    matches = [m for m in map(METRICS_LINE.match, baseline.stdout.splitlines()) if m]

    assert [int(m.group(1)) for m in matches] == list(range(1, 7))
    assert float(matches[-1].group(5)) > 0.85
    metrics = json.loads((baseline.root / "model" / "metrics.json").read_bytes())
    assert metrics["final"]["test_accuracy"] > 0.85
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, 7))


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("epochs", "abc", "invalid hyperparameter epochs='abc': not an integer"),
        ("learning_rate", "-1", "invalid hyperparameter learning_rate='-1'"),
        ("momentum", "0.9", "unknown hyperparameter 'momentum'"),
    ],
)
def test_bad_hyperparameter_writes_the_failure_file_and_exits_non_zero(
    iris_split: Path, tmp_path: Path, name: str, value: str, reason: str
) -> None:
    run = run_training(tmp_path, iris_split, HYPERPARAMETERS | {name: value})

    assert run.returncode != 0
    assert reason in run.failure.read_text()
    assert reason in run.stderr
    assert not (tmp_path / "model" / "model.json").exists()
    assert not (tmp_path / "checkpoints").exists()


def test_checkpoint_from_a_different_run_is_refused_not_silently_resumed(
    iris_split: Path, tmp_path: Path
) -> None:
    first = run_training(tmp_path, iris_split, interrupt_after=2)
    assert first.returncode == 143

    changed = run_training(tmp_path, iris_split, HYPERPARAMETERS | {"seed": "99"})

    assert changed.returncode != 0
    assert "belongs to a different run" in changed.failure.read_text()


def _checkpoints(run: Run) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run.root / "checkpoints").iterdir())}


def test_min_epoch_seconds_paces_epochs_without_changing_any_other_output_byte(
    baseline: Run, iris_split: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    paced = run_training(tmp_path, iris_split, HYPERPARAMETERS | {"min_epoch_seconds": "0.1"})
    elapsed = time.monotonic() - started

    assert paced.returncode == 0, paced.stderr
    assert elapsed >= 6 * 0.1
    paced_model, baseline_model = paced.model, baseline.model
    assert paced_model.pop("hyperparameters") == {
        **baseline_model.pop("hyperparameters"),
        "min_epoch_seconds": 0.1,
    }
    assert paced_model == baseline_model
    assert (paced.root / "model" / "metrics.json").read_bytes() == (
        baseline.root / "model" / "metrics.json"
    ).read_bytes()
    assert _checkpoints(paced) == _checkpoints(baseline)  # same fingerprint: resumable


@pytest.fixture(scope="module")
def parent_model(baseline: Run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The baseline's model files, as a registered model's model.tar.gz holds them."""
    parent = tmp_path_factory.mktemp("parent")
    for name in ("model.json", "metrics.json"):
        shutil.copy(baseline.root / "model" / name, parent / name)
    return parent


def test_fine_tuning_from_a_parent_is_deterministic_and_differs_from_training_from_scratch(
    baseline: Run, parent_model: Path, iris_split: Path, tmp_path: Path
) -> None:
    first = run_training(tmp_path / "first", iris_split, parent=parent_model)
    second = run_training(tmp_path / "second", iris_split, parent=parent_model)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert first.model_digest == second.model_digest
    assert first.model_digest != baseline.model_digest
    tuned, parent = first.model, baseline.model
    assert tuned["parent_model_sha256"] == baseline.model_digest
    assert parent["parent_model_sha256"] is None
    assert tuned["standardization"] == parent["standardization"]
    assert tuned["weights"] != parent["weights"]
    # The parent's weights are the starting point: the first epoch already fits well.
    first_epoch = json.loads((first.root / "model" / "metrics.json").read_bytes())["epochs"][0]
    scratch_epoch = json.loads((baseline.root / "model" / "metrics.json").read_bytes())["epochs"][0]
    assert first_epoch["train_loss"] < scratch_epoch["train_loss"]


def test_fine_tuning_resumes_only_its_own_checkpoints(
    parent_model: Path, iris_split: Path, tmp_path: Path
) -> None:
    scratch = run_training(tmp_path, iris_split, interrupt_after=2)
    assert scratch.returncode == 143

    tuned = run_training(tmp_path, iris_split, parent=parent_model)

    assert tuned.returncode != 0
    assert "belongs to a different run" in tuned.failure.read_text()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"features": ["a", "b", "c", "d"]}, "parent model features"),
        ({"classes": ["setosa", "versicolor"]}, "parent model classes"),
        ({"format": "other/1"}, "is not a modelops.iris.softmax-regression/1 model"),
        ({"weights": [[0.0, 0.0, 0.0]]}, "parent weights has shape (1, 3), expected (4, 3)"),
    ],
)
def test_parent_model_that_does_not_match_the_training_data_fails_clearly(
    baseline: Run,
    iris_split: Path,
    tmp_path: Path,
    change: dict[str, object],
    reason: str,
) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "model.json").write_text(json.dumps(baseline.model | change))

    run = run_training(tmp_path / "job", iris_split, parent=parent)

    assert run.returncode != 0
    assert reason in run.failure.read_text()
    assert not (tmp_path / "job" / "model" / "model.json").exists()


def test_parent_channel_without_model_json_fails_clearly(iris_split: Path, tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "weights.bin").write_bytes(b"\0")

    run = run_training(tmp_path / "job", iris_split, parent=parent)

    assert run.returncode != 0
    assert "parent channel holds no model.json" in run.failure.read_text()
