"""examples/iris_train/train.py with columns that are not features: ``exclude_columns``.

The script runs as a subprocess under the SageMaker contract, as in test_example_training.py,
on the demo's Iris split with an identifier and a code column added to both CSVs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops_cli.demo import _write_iris, stratified_split
from tests.unit.test_example_training import run_training

HYPERPARAMETERS = {"epochs": "4", "learning_rate": "0.5", "seed": "7", "batch_size": "16"}
SITES = ("north", "south", "east")


def _with_codes(source: Path, target: Path) -> None:
    """``source`` with a ``plant_id`` first and a ``site`` code before ``species``."""
    lines = source.read_text().splitlines()
    out = []
    for n, line in enumerate(lines):
        cells = line.split(",")
        plant, site = ("plant_id", "site") if n == 0 else (f"P-{n:04d}", SITES[n % len(SITES)])
        out.append(",".join([plant, *cells[:-1], site, cells[-1]]))
    target.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("iris")
    return stratified_split(_write_iris(base / "raw"), base / "split")


@pytest.fixture(scope="module")
def coded(plain: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("coded")
    for name in ("train.csv", "test.csv"):
        _with_codes(plain / name, data / name)
    return data


def test_excluded_columns_are_ignored_and_the_model_equals_one_trained_without_them(
    plain: Path, coded: Path, tmp_path: Path
) -> None:
    without = run_training(tmp_path / "plain", plain, HYPERPARAMETERS)
    excluded = run_training(
        tmp_path / "coded", coded, HYPERPARAMETERS | {"exclude_columns": " site , plant_id"}
    )

    assert without.returncode == 0, without.stderr
    assert excluded.returncode == 0, excluded.stderr
    model, reference = excluded.model, without.model
    assert model["features"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert model["hyperparameters"]["exclude_columns"] == "plant_id,site"  # normalised
    assert reference["hyperparameters"]["exclude_columns"] == ""
    for key in ("weights", "bias", "standardization", "classes", "features"):
        assert model[key] == reference[key]
    assert model["train_data_sha256"] != reference["train_data_sha256"]  # the file as given


def test_string_column_not_excluded_fails_naming_file_line_and_column_not_the_value(
    coded: Path, tmp_path: Path
) -> None:
    run = run_training(tmp_path, coded, HYPERPARAMETERS)

    assert run.returncode != 0
    assert "train.csv:2: column 'plant_id' is not a number" in run.failure_text
    assert "exclude_columns" in run.failure_text
    assert "P-0001" not in run.failure_text
    assert not (tmp_path / "model" / "model.json").exists()


def test_excluding_only_some_string_columns_names_the_next_one(coded: Path, tmp_path: Path) -> None:
    run = run_training(tmp_path, coded, HYPERPARAMETERS | {"exclude_columns": "plant_id"})

    assert run.returncode != 0
    assert "column 'site' is not a number" in run.failure_text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("plant_id,site,owner", "exclude_columns names columns not in the header: ['owner']"),
        ("site,species", "the label column 'species' cannot be excluded"),
        (
            "plant_id,site,sepal_length,sepal_width,petal_length,petal_width",
            "no feature column left besides 'species'",
        ),
    ],
)
def test_bad_exclude_columns_fail_clearly(
    coded: Path, tmp_path: Path, value: str, reason: str
) -> None:
    run = run_training(tmp_path, coded, HYPERPARAMETERS | {"exclude_columns": value})

    assert run.returncode != 0
    assert reason in run.failure_text
    assert not (tmp_path / "checkpoints").exists()


def test_exclude_columns_is_part_of_the_run_fingerprint(coded: Path, tmp_path: Path) -> None:
    first = run_training(
        tmp_path, coded, HYPERPARAMETERS | {"exclude_columns": "plant_id,site"}, interrupt_after=1
    )
    assert first.returncode == 143, first.stderr

    changed = run_training(
        tmp_path, coded, HYPERPARAMETERS | {"exclude_columns": "plant_id,site,sepal_width"}
    )

    assert changed.returncode != 0
    assert "belongs to a different run" in changed.failure_text
