"""Per-epoch metrics from a training job's log lines (GET /train/jobs/{jobId}/metrics)."""

from __future__ import annotations

from typing import Any

from modelops import platform
from modelops.domain.training import MetricDefinition
from modelops.services.training import METRIC_LOG_LINES, TrainingService, metric_series

DEFINITIONS = (
    MetricDefinition(Name="train:loss", Regex=r"train_loss=([-+0-9.eE]+)"),
    MetricDefinition(Name="test:accuracy", Regex=r"test_accuracy=([-+0-9.eE]+)"),
    MetricDefinition(Name="never", Regex=r"never=(\d+)"),
)


def _points(series: Any) -> dict[str, list[tuple[int, float]]]:
    return {s.name: [(p.epoch, p.value) for p in s.points] for s in series}


def test_each_definition_gives_a_point_per_epoch_in_definition_order() -> None:
    lines = [
        "loading data",
        "epoch=1 train_loss=0.9 train_accuracy=0.5 test_loss=1.0 test_accuracy=0.40",
        "epoch=2 train_loss=0.5 test_accuracy=0.70",
        "epoch=3 train_loss=nan test_accuracy=0.90",  # not finite: skipped, as SageMaker does
        "wrote model.json",
    ]
    series = metric_series(DEFINITIONS, lines)
    assert [s.name for s in series] == ["train:loss", "test:accuracy", "never"]
    assert series[0].regex == r"train_loss=([-+0-9.eE]+)"
    assert _points(series) == {
        "train:loss": [(1, 0.9), (2, 0.5)],
        "test:accuracy": [(1, 0.4), (2, 0.7), (3, 0.9)],
        "never": [],
    }


def test_a_resumed_run_keeps_its_epoch_numbers_and_the_last_value_of_a_repeated_epoch() -> None:
    lines = [
        "resuming from checkpoint-4.json (epoch 4)",
        "epoch=5 train_loss=0.30",
        "epoch=5 train_loss=0.25",
        "EPOCH: 6 train_loss=0.20",
    ]
    assert _points(metric_series(DEFINITIONS, lines))["train:loss"] == [(5, 0.25), (6, 0.2)]


def test_lines_without_an_epoch_are_numbered_in_order() -> None:
    lines = ["train_loss=3", "noise", "train_loss=2 test_accuracy=0.5", "train_loss=1e0"]
    assert _points(metric_series(DEFINITIONS, lines))["train:loss"] == [
        (1, 3.0),
        (2, 2.0),
        (3, 1.0),
    ]


def test_the_service_reads_the_jobs_newest_log_stream() -> None:
    asked: list[tuple[str, str, int]] = []

    class Logs:
        def tail(self, group: str, stream_prefix: str, lines: int) -> list[str]:
            asked.append((group, stream_prefix, lines))
            return ["epoch=1 train_loss=0.5", "epoch=2 train_loss=0.25"]

    class Job:
        jobId = "trn-1"
        trainingJobName = "modelops-trn-1"
        status = type("S", (), {"value": "COMPLETED"})()
        logsRef = "/aws/sagemaker/TrainingJobs/modelops-trn-1"
        metricDefinitions = DEFINITIONS
        metrics = {"train:loss": 0.25}

    service = object.__new__(TrainingService)
    service._logs = Logs()
    service.get = lambda job_id: Job()  # type: ignore[method-assign,assignment,return-value]
    history = service.metric_history("trn-1")
    assert asked == [(platform.TRAINING_LOG_GROUP, "modelops-trn-1/", METRIC_LOG_LINES)]
    assert history.linesRead == 2 and history.truncated is False
    assert history.final == {"train:loss": 0.25}
    assert _points(history.series)["train:loss"] == [(1, 0.5), (2, 0.25)]
