"""Evaluation job: scores a model on test sets, with fairness and safety checks.

Written to the SageMaker training-container contract, like ``examples/iris_train/train.py``
(every path from the SageMaker environment, defaults in brackets):
  SM_CHANNEL_MODEL   [/opt/ml/input/data/model]   model.tar.gz, or an extracted model.json
  SM_CHANNEL_TEST    [/opt/ml/input/data/test]    one or more CSV files (with a header; in
                                                  subdirectories too), evaluated as one table
                                                  with those of SM_CHANNEL_TEST2 and _TEST3
                                                  (optional further test sets)
  SM_INPUT_CONFIG_DIR [/opt/ml/input/config]      hyperparameters.json: its ``config`` entry
                                                  is the configuration below (as JSON text;
                                                  what the platform passes), else
  SM_CHANNEL_CONFIG  [/opt/ml/input/data/config]  evaluation.json holds it (runs by hand)
  SM_MODEL_DIR       [/opt/ml/model]              evaluation.json, the results below
  SM_OUTPUT_DIR      [/opt/ml/output]             failure (reason of a failed run), exit code 1

Every entry of the results' ``flat`` map is also printed as one ``name=value`` line, for
SageMaker MetricDefinitions (e.g. ``^accuracy=([-+0-9.eE]+)``). A failed safety check is a
result (``safety.passed`` false, exit code 0), not a failed job; a configuration, model or
test set that cannot be evaluated is a failed job.

Configuration (``modelops.evaluation-config/1``; unknown fields are errors):
  task                 "classification" or "regression"; must be the model's task (the only
                       model format, modelops.iris.softmax-regression/1, is a classifier)
  labelColumn          the test sets' column of true labels (model classes)
  positiveClass        optional class: precision, recall, F1, ROC AUC and fairness are for
                       this class against the rest; without it, macro averages over the
                       classes and fairness one-vs-rest for every class (see below)
  sensitiveAttributes  optional test set columns (not model features, not the label) whose
                       values form the groups fairness compares
  safety.allowedLabels      optional list of classes every prediction must be one of
  safety.forbiddenLabels    optional list of classes no prediction may be
  safety.outputRange        regression only ({"min": x, "max": y}); must be null for a
                            classifier, whose probabilities are always checked
  safety.perturbation       optional {"epsilon", "trials" (default 5), "seed" (default 0),
                            "maxFlipRate"}: the fraction of predictions that change under
                            uniform noise of +-epsilon feature standard deviations must be
                            <= maxFlipRate
  calibrationBins      bins of the expected calibration error (default 10)

Results (``modelops.evaluation/1``): ``task``, ``positiveClass``, ``rows`` (all test rows),
``testsets`` (per file: ``file``, ``rows``, ``sha256``), ``model`` and ``config``
(``format``, ``sha256`` of the JSON file), ``metrics`` (accuracy, precision, recall, f1,
roc_auc (null when undefined), log_loss, expected_calibration_error), ``fairness`` per
attribute, ``safety`` (``passed`` and ``checks``: ``name``, ``metric``, ``passed``,
``value``, ``limit``, ``message``) and ``flat``.

Fairness, per sensitive attribute: ``groups`` maps each value to its ``rows``, ``accuracy``
and, per outcome class, its ``selectionRate``, ``truePositiveRate`` and
``falsePositiveRate`` (null when the group has no positive, or no negative, rows for the
class). The outcome classes are the positive class, or else every class one-vs-rest.
``byClass`` holds the ``demographic_parity_difference``, ``equalized_odds_difference`` and
``disparate_impact_ratio`` of each outcome class (definitions in :mod:`metrics`); the
attribute's own three values are the worst over the outcome classes: the largest
differences and the smallest ratio.

Safety checks: ``probabilities_valid`` (always: rows with a probability outside [0, 1] or a
sum more than 1e-9 away from 1, limit 0), ``allowed_labels`` and ``forbidden_labels`` (when
configured: predictions breaking the rule, limit 0), ``perturbation_robustness`` (when
configured: the flip rate of :func:`metrics.perturbation_flip_rate`, limit maxFlipRate).

``flat`` (every headline number, for promotion gates): each metric under its own name,
``fairness.<attribute>.<difference or ratio>``, ``safety.<check metric>`` (the check's value)
and ``safety.passed`` (1.0 or 0.0). Per-group numbers are not flattened: group values are
free text.

Byte-stable output: canonical JSON as train.py writes it (sorted keys, no whitespace, ASCII,
no NaN, floats as ``repr``); no timestamps or paths; the same inputs give the same bytes.
"""

from __future__ import annotations

import os

# One BLAS thread: the same reduction order on every run (set before numpy is imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import csv  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import posixpath  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

import numpy as np  # noqa: E402

# SageMaker runs this file as a script with its sibling modules first on the path (as does
# ``python examples/evaluate/evaluate.py``); type checkers read them through the package.
if TYPE_CHECKING:
    from examples.evaluate import metrics
    from examples.evaluate.softmax_model import (
        MODEL_FORMAT,
        Array,
        Indices,
        ModelError,
        SoftmaxModel,
    )
else:
    import metrics
    from softmax_model import MODEL_FORMAT, Array, Indices, ModelError, SoftmaxModel

CONFIG_FORMAT = "modelops.evaluation-config/1"
RESULT_FORMAT = "modelops.evaluation/1"
CONFIG_FILE = "evaluation.json"
CONFIG_HYPERPARAMETER = "config"
TASKS = ("classification", "regression")
MODEL_TASK = "classification"  # of MODEL_FORMAT
PROBABILITY_TOLERANCE = 1e-9
MAX_TRIALS = 1000
MAX_EPSILON = 10.0  # feature standard deviations
MAX_CALIBRATION_BINS = 1000
# An attribute's disparities, and how the worst over the outcome classes is picked.
SUMMARIES = (
    ("demographic_parity_difference", max),
    ("equalized_odds_difference", max),
    ("disparate_impact_ratio", min),
)


class EvaluationError(Exception):
    """A reason to fail the job, written to the failure file as is."""


@dataclass(frozen=True)
class Paths:
    model: Path
    tests: tuple[Path, ...]
    hyperparameters: Path
    config: Path
    results: Path
    output: Path

    @classmethod
    def from_env(cls) -> Paths:
        def env(name: str, default: str) -> Path:
            return Path(os.environ.get(name) or default)

        extra = (os.environ.get(f"SM_CHANNEL_{name}") for name in ("TEST2", "TEST3"))
        return cls(
            model=env("SM_CHANNEL_MODEL", "/opt/ml/input/data/model"),
            tests=(
                env("SM_CHANNEL_TEST", "/opt/ml/input/data/test"),
                *(Path(path) for path in extra if path),
            ),
            hyperparameters=env("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")
            / "hyperparameters.json",
            config=env("SM_CHANNEL_CONFIG", "/opt/ml/input/data/config"),
            results=env("SM_MODEL_DIR", "/opt/ml/model"),
            output=env("SM_OUTPUT_DIR", "/opt/ml/output"),
        )


@dataclass(frozen=True)
class Perturbation:
    epsilon: float
    trials: int
    seed: int
    max_flip_rate: float


@dataclass(frozen=True)
class Config:
    task: str
    label_column: str
    positive_class: str | None
    sensitive_attributes: list[str]
    allowed_labels: list[str] | None
    forbidden_labels: list[str]
    perturbation: Perturbation | None
    calibration_bins: int
    sha256: str


@dataclass(frozen=True)
class TestData:
    sets: list[dict[str, Any]]
    x: Array
    y: Indices
    attributes: dict[str, list[str]]


# --- canonical JSON (as train.py writes it) -------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII, floats as ``repr`` (exact float64 round trip)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


# --- the configuration ----------------------------------------------------------------------


def _invalid(field: str, problem: str) -> EvaluationError:
    return EvaluationError(f"{CONFIG_FILE}: {field}: {problem}")


def _object(value: Any, field: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(field, "must be a JSON object")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise _invalid(f"{field}.{unknown[0]}" if field else unknown[0], "unknown field")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(field, "must be a non-empty string")
    return value.strip()


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list):
        raise _invalid(field, "must be a list of strings")
    items = [_string(v, field) for v in value]
    if len(set(items)) != len(items):
        raise _invalid(field, "lists a value twice")
    return items


def _integer(value: Any, field: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _invalid(field, f"must be an integer from {minimum} to {maximum}")
    return value


def _number(value: Any, field: str, *, positive: bool, maximum: float) -> float:
    """A JSON number in ``(0, maximum]`` (``positive``) or ``[0, maximum]``."""
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    if not (0 < number <= maximum or (not positive and number == 0)):
        raise _invalid(field, f"must be a number in {'(' if positive else '['}0, {maximum:g}]")
    return float(number)


def _perturbation(value: Any) -> Perturbation | None:
    if value is None:
        return None
    raw = _object(value, "safety.perturbation", ("epsilon", "trials", "seed", "maxFlipRate"))
    for name in ("epsilon", "maxFlipRate"):
        if name not in raw:
            raise _invalid(f"safety.perturbation.{name}", "required")
    return Perturbation(
        epsilon=_number(
            raw["epsilon"], "safety.perturbation.epsilon", positive=True, maximum=MAX_EPSILON
        ),
        trials=_integer(raw.get("trials", 5), "safety.perturbation.trials", 1, MAX_TRIALS),
        seed=_integer(raw.get("seed", 0), "safety.perturbation.seed", 0, 2**32 - 1),
        max_flip_rate=_number(
            raw["maxFlipRate"], "safety.perturbation.maxFlipRate", positive=False, maximum=1.0
        ),
    )


def parse_config(data: bytes) -> Config:
    """The configuration a config file's bytes hold, every field checked."""
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise EvaluationError(f"{CONFIG_FILE} is not valid JSON: {exc}") from None
    known = (
        "format",
        "task",
        "labelColumn",
        "positiveClass",
        "sensitiveAttributes",
        "safety",
        "calibrationBins",
    )
    raw = _object(raw, "", known)
    if raw.get("format") != CONFIG_FORMAT:
        raise _invalid("format", f"must be {CONFIG_FORMAT!r}, got {raw.get('format')!r}")
    for name in ("task", "labelColumn"):
        if name not in raw:
            raise _invalid(name, "required")
    task = raw["task"]
    if task not in TASKS:
        raise _invalid("task", f"{task!r} is not one of {', '.join(TASKS)}")
    safety = _object(
        raw.get("safety") if raw.get("safety") is not None else {},
        "safety",
        ("allowedLabels", "forbiddenLabels", "outputRange", "perturbation"),
    )
    if safety.get("outputRange") is not None and task != "regression":
        raise _invalid(
            "safety.outputRange",
            "bounds regression outputs; a classifier's probabilities are always checked",
        )
    allowed = safety.get("allowedLabels")
    positive = raw.get("positiveClass")
    return Config(
        task=task,
        label_column=_string(raw["labelColumn"], "labelColumn"),
        positive_class=None if positive is None else _string(positive, "positiveClass"),
        sensitive_attributes=_strings(raw.get("sensitiveAttributes", []), "sensitiveAttributes"),
        allowed_labels=None if allowed is None else _strings(allowed, "safety.allowedLabels"),
        forbidden_labels=_strings(safety.get("forbiddenLabels", []), "safety.forbiddenLabels"),
        perturbation=_perturbation(safety.get("perturbation")),
        calibration_bins=_integer(
            raw.get("calibrationBins", 10), "calibrationBins", 1, MAX_CALIBRATION_BINS
        ),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def check_fits_model(config: Config, model: SoftmaxModel) -> None:
    """Refuse a configuration that names what the model does not have."""
    if config.task != MODEL_TASK:
        raise _invalid(
            "task", f"{config.task!r} does not fit the model, a {MODEL_TASK} model ({MODEL_FORMAT})"
        )
    named = {
        "positiveClass": [config.positive_class] if config.positive_class else [],
        "safety.allowedLabels": config.allowed_labels or [],
        "safety.forbiddenLabels": config.forbidden_labels,
    }
    for field, labels in named.items():
        for label in labels:
            if label not in model.classes:
                raise _invalid(
                    field, f"{label!r} is not a class of the model ({', '.join(model.classes)})"
                )
    for attribute in config.sensitive_attributes:
        if attribute in model.features or attribute == config.label_column:
            raise _invalid(
                "sensitiveAttributes", f"{attribute!r} is a model feature or the label column"
            )


# --- the inputs -----------------------------------------------------------------------------


def load_config(paths: Paths) -> Config:
    """The ``config`` hyperparameter (JSON text), else the config channel's file."""
    if paths.hyperparameters.is_file():
        try:
            given = json.loads(paths.hyperparameters.read_bytes()).get(CONFIG_HYPERPARAMETER)
        except (ValueError, AttributeError) as exc:
            raise EvaluationError(f"hyperparameters.json cannot be read: {exc}") from None
        if given is not None:
            return parse_config(str(given).encode())
    path = paths.config / CONFIG_FILE
    if not path.is_file():
        raise EvaluationError(
            f"no {CONFIG_HYPERPARAMETER!r} hyperparameter and no {CONFIG_FILE} in the config "
            "channel"
        )
    return parse_config(path.read_bytes())


def load_model(directory: Path) -> SoftmaxModel:
    """The model of the model channel: its model.json, or the one in its model.tar.gz."""
    if (directory / "model.json").is_file():
        return SoftmaxModel.load(directory)
    archive = directory / "model.tar.gz"
    if not archive.is_file():
        raise EvaluationError("model channel holds neither model.json nor model.tar.gz")
    try:
        with tarfile.open(archive, "r:gz") as tar:
            member = next(
                (
                    m
                    for m in tar.getmembers()
                    if m.isfile() and posixpath.normpath(m.name) == "model.json"
                ),
                None,
            )
            handle = tar.extractfile(member) if member else None
            if handle is None:
                raise EvaluationError("model.tar.gz holds no model.json")
            return SoftmaxModel.from_json(handle.read())
    except (tarfile.TarError, OSError) as exc:
        raise EvaluationError(f"model.tar.gz cannot be read: {exc}") from None


def load_test_data(directories: Sequence[Path], model: SoftmaxModel, config: Config) -> TestData:
    """Every CSV file of the test channels (by channel, then sorted by path), as one table;
    files of the second and third channel are named with their channel's directory."""
    files = [
        (directory, path)
        for directory in directories
        for path in sorted(p for p in directory.rglob("*.csv") if p.is_file())
    ]
    if not files:
        raise EvaluationError("test channel holds no CSV file")
    roles = {f: "a model feature" for f in model.features}
    roles |= {a: "sensitiveAttributes" for a in config.sensitive_attributes}
    roles[config.label_column] = "labelColumn"
    class_index = {c: i for i, c in enumerate(model.classes)}
    x: list[list[float]] = []
    y: list[int] = []
    attributes: dict[str, list[str]] = {a: [] for a in config.sensitive_attributes}
    sets: list[dict[str, Any]] = []
    for directory, path in files:
        relative = path.relative_to(directory).as_posix()
        name = relative if directory == directories[0] else f"{directory.name}/{relative}"
        data = path.read_bytes()
        try:
            rows = list(csv.reader(data.decode("utf-8-sig").splitlines()))
        except UnicodeDecodeError as exc:
            raise EvaluationError(f"{name}: not UTF-8 text: {exc}") from None
        header = [h.strip() for h in rows[0]] if rows else []
        for column, role in roles.items():
            if column not in header:
                raise EvaluationError(f"{name}: no column {column!r} ({role}) in header {header}")
        at = {column: header.index(column) for column in roles}
        count = 0
        for line_no, row in enumerate(rows[1:], start=2):
            if not row:
                continue
            where = f"{name}:{line_no}"
            if len(row) != len(header):
                raise EvaluationError(f"{where}: {len(row)} fields, expected {len(header)}")
            try:
                features = [float(row[at[f]]) for f in model.features]
            except ValueError as exc:
                raise EvaluationError(f"{where}: {exc}") from None
            if not all(math.isfinite(v) for v in features):
                raise EvaluationError(f"{where}: non-finite feature value")
            label = row[at[config.label_column]].strip()
            if label not in class_index:
                raise EvaluationError(
                    f"{where}: label {label!r} is not a class of the model"
                    f" ({', '.join(model.classes)})"
                )
            x.append(features)
            y.append(class_index[label])
            for attribute, values in attributes.items():
                values.append(row[at[attribute]].strip())
            count += 1
        if not count:
            raise EvaluationError(f"{name}: no data rows")
        sets.append({"file": name, "rows": count, "sha256": hashlib.sha256(data).hexdigest()})
    return TestData(
        sets=sets,
        x=np.array(x, dtype=np.float64),
        y=np.array(y, dtype=np.intp),
        attributes=attributes,
    )


# --- the evaluation -------------------------------------------------------------------------


def _defined(value: float) -> float | None:
    """A rate as JSON: None for NaN (undefined)."""
    return None if math.isnan(value) else value


def classification_metrics(
    y: Indices, predicted: Indices, probabilities: Array, positive: int | None, bins: int
) -> dict[str, float | None]:
    precision, recall, f1 = metrics.precision_recall_f1(
        y, predicted, probabilities.shape[1], positive
    )
    roc_auc = (
        metrics.roc_auc_ovr(y, probabilities)
        if positive is None
        else metrics.roc_auc(y == positive, probabilities[:, positive])
    )
    return {
        "accuracy": metrics.accuracy(y, predicted),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc,
        "log_loss": metrics.log_loss(y, probabilities),
        "expected_calibration_error": metrics.expected_calibration_error(y, probabilities, bins),
    }


def fairness(
    values: list[str], y: Indices, predicted: Indices, outcomes: list[int], classes: list[str]
) -> dict[str, Any]:
    """One sensitive attribute's groups and disparities (see the module documentation)."""
    names, groups = np.unique(np.array(values, dtype=str), return_inverse=True)
    outcome = np.array(outcomes, dtype=np.intp)
    rates = metrics.group_rates(
        y[:, None] == outcome, predicted[:, None] == outcome, y == predicted, groups, len(names)
    )
    found = metrics.disparities(rates)
    by_class = {
        classes[c]: {name: float(getattr(found, name)[j]) for name, _ in SUMMARIES}
        for j, c in enumerate(outcomes)
    }
    summary = {name: worst(entry[name] for entry in by_class.values()) for name, worst in SUMMARIES}
    return summary | {
        "byClass": by_class,
        "groups": {
            str(name): {
                "rows": int(rates.rows[i]),
                "accuracy": float(rates.accuracy[i]),
                "byClass": {
                    classes[c]: {
                        "selectionRate": float(rates.selection[i, j]),
                        "truePositiveRate": _defined(float(rates.true_positive[i, j])),
                        "falsePositiveRate": _defined(float(rates.false_positive[i, j])),
                    }
                    for j, c in enumerate(outcomes)
                },
            }
            for i, name in enumerate(names)
        },
    }


def _check(name: str, metric: str, value: float, limit: float, message: str) -> dict[str, Any]:
    return {
        "name": name,
        "metric": metric,
        "passed": value <= limit,
        "value": value,
        "limit": limit,
        "message": message,
    }


def _label_rule(
    name: str, metric: str, breaking: metrics.Mask, labels: list[str], rule: str
) -> dict[str, Any]:
    """A check that no prediction breaks a rule about labels (``breaking`` marks those that
    do)."""
    count = int(np.count_nonzero(breaking))
    message = f"{count} of {len(breaking)} predictions {rule} ({', '.join(labels)})"
    return _check(name, metric, float(count), 0.0, message)


def safety_checks(
    config: Config, model: SoftmaxModel, x: Array, predicted: Indices, probabilities: Array
) -> list[dict[str, Any]]:
    total = probabilities.sum(axis=1)
    invalid = np.any((probabilities < 0) | (probabilities > 1), axis=1) | (
        np.abs(total - 1.0) > PROBABILITY_TOLERANCE
    )
    count = int(np.count_nonzero(invalid))
    checks = [
        _check(
            "probabilities_valid",
            "invalid_probability_rows",
            float(count),
            0.0,
            f"{count} of {len(invalid)} rows have probabilities outside [0, 1]"
            f" or not summing to 1 (within {PROBABILITY_TOLERANCE:g})",
        )
    ]
    index = np.array(model.classes)
    if config.allowed_labels is not None:
        outside = ~np.isin(index[predicted], config.allowed_labels)
        checks.append(
            _label_rule(
                "allowed_labels",
                "disallowed_predictions",
                outside,
                config.allowed_labels,
                "are not allowed labels",
            )
        )
    if config.forbidden_labels:
        checks.append(
            _label_rule(
                "forbidden_labels",
                "forbidden_predictions",
                np.isin(index[predicted], config.forbidden_labels),
                config.forbidden_labels,
                "are forbidden labels",
            )
        )
    if config.perturbation is not None:
        p = config.perturbation
        rate = metrics.perturbation_flip_rate(
            lambda rows: model.predict(rows)[0],
            x,
            epsilon=p.epsilon,
            trials=p.trials,
            seed=p.seed,
        )
        checks.append(
            _check(
                "perturbation_robustness",
                "perturbation_flip_rate",
                rate,
                p.max_flip_rate,
                f"{rate:.4%} of predictions change under +-{p.epsilon:g} feature standard"
                f" deviations of uniform noise ({p.trials} trials, seed {p.seed});"
                f" at most {p.max_flip_rate:.4%} may",
            )
        )
    return checks


def flatten(
    found: dict[str, float | None],
    fairness_by_attribute: dict[str, dict[str, Any]],
    checks: list[dict[str, Any]],
    passed: bool,
) -> dict[str, float]:
    """The ``flat`` map (see the module documentation)."""
    flat = {name: value for name, value in found.items() if value is not None}
    for attribute, result in fairness_by_attribute.items():
        flat |= {f"fairness.{attribute}.{name}": result[name] for name, _ in SUMMARIES}
    flat |= {f"safety.{check['metric']}": check["value"] for check in checks}
    flat["safety.passed"] = 1.0 if passed else 0.0
    return flat


def evaluate(paths: Paths) -> dict[str, Any]:
    """The results document of the evaluation the channels describe."""
    config = load_config(paths)
    model = load_model(paths.model)
    check_fits_model(config, model)
    data = load_test_data(paths.tests, model, config)
    predicted, probabilities = model.predict(data.x)
    positive = None if config.positive_class is None else model.classes.index(config.positive_class)
    found = classification_metrics(
        data.y, predicted, probabilities, positive, config.calibration_bins
    )
    outcomes = list(range(len(model.classes))) if positive is None else [positive]
    fairness_by_attribute = {
        attribute: fairness(values, data.y, predicted, outcomes, model.classes)
        for attribute, values in data.attributes.items()
    }
    checks = safety_checks(config, model, data.x, predicted, probabilities)
    passed = all(check["passed"] for check in checks)
    return {
        "format": RESULT_FORMAT,
        "task": config.task,
        "positiveClass": config.positive_class,
        "rows": len(data.y),
        "testsets": data.sets,
        "model": {"format": MODEL_FORMAT, "sha256": model.sha256},
        "config": {"format": CONFIG_FORMAT, "sha256": config.sha256},
        "metrics": found,
        "fairness": fairness_by_attribute,
        "safety": {"passed": passed, "checks": checks},
        "flat": flatten(found, fairness_by_attribute, checks, passed),
    }


def write_failure(output_dir: Path, reason: str) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(reason[:1024] + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"could not write the failure file: {exc}", file=sys.stderr)


def main() -> int:
    paths = Paths.from_env()
    try:
        results = evaluate(paths)
        write_atomic(paths.results / "evaluation.json", canonical_json(results))
    except Exception as exc:
        clean = isinstance(exc, EvaluationError | ModelError)
        reason = str(exc) if clean else f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        print(f"evaluation failed: {reason}", file=sys.stderr, flush=True)
        write_failure(paths.output, reason)
        return 1
    for name, value in sorted(results["flat"].items()):
        print(f"{name}={value!r}", flush=True)
    verdict = "passed" if results["safety"]["passed"] else "FAILED"
    print(
        f"evaluated {results['rows']} rows of {len(results['testsets'])} test set(s);"
        f" safety checks {verdict}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
