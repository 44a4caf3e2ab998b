"""Iris classifier written to the SageMaker training-container contract.

Multinomial logistic regression trained by mini-batch gradient descent in numpy, float64
throughout, so every step is under our control and runs bit for bit the same.

Contract (every path from the SageMaker environment, defaults in brackets):
  SM_INPUT_CONFIG_DIR   [/opt/ml/input/config]      hyperparameters.json (a string map)
  SM_CHANNEL_TRAIN      [/opt/ml/input/data/train]  train.csv (or the only CSV), optional test.csv
  SM_CHANNEL_TEST       [/opt/ml/input/data/test]   test data if the train channel has none
  SM_CHANNEL_PARENT     [/opt/ml/input/data/parent] optional model.json to fine-tune from
  SM_MODEL_DIR          [/opt/ml/model]             model.json, metrics.json
  SM_OUTPUT_DATA_DIR    [/opt/ml/output/data]       metrics.json
  SM_CHECKPOINT_DIR     [/opt/ml/checkpoints]       checkpoint-epoch-NNNNNN.json, one per epoch
  SM_OUTPUT_DIR         [/opt/ml/output]            failure (reason of a failed run)

Data: a CSV with a header row; ``species`` is the label and every other column is a float
feature, except the columns named in ``exclude_columns``.

Hyperparameters (strings, as SageMaker passes them): epochs, learning_rate, seed,
batch_size, l2, min_epoch_seconds, exclude_columns. Keys starting with ``sagemaker_`` are
ignored; any other key is an error. ``min_epoch_seconds`` (default 0) only paces the run: an
epoch that finishes sooner sleeps for the rest (demos, interruption tests). It never enters
the numbers. ``exclude_columns`` (default empty) is a comma-separated list of columns that
are identifiers or codes, not features (e.g. a pseudonym or a postcode district left by
sanitization): they are ignored in the train and test CSVs, and each must be in each CSV's
header (a name that is not is an error, as is the label). It is recorded normalised (names
stripped, deduplicated, sorted, comma-joined) and, as it changes the features, it is part of
the run fingerprint. A feature cell that is not a number fails the run with the file, line
and column (never the cell's value) and a hint to exclude the column.

Fine-tuning: when the parent channel holds a ``model.json`` written by this script (alone, or
with the other files of its model.tar.gz), training starts from its weights and bias instead
of the random initialisation and standardizes with the parent's mean and scale, so the
weights keep their meaning. The parent must have the same features and classes as the
training data. Its SHA-256 is recorded in model.json (``parent_model_sha256``, null without a
parent).

Determinism: initial weights come from ``default_rng([seed, 0])`` (or are the parent's); the
shuffle of epoch e from ``default_rng([seed, 1, e])``. No RNG state is carried between epochs,
so a run resumed from the checkpoint of epoch e replays exactly the batches an uninterrupted
run would. A checkpoint is only resumed by a run with the same fingerprint: the SHA-256 of the
hyperparameters that change the numbers (all but ``min_epoch_seconds``), the training data's
SHA-256 and the parent model's SHA-256. Pacing changes no output byte except the value of
``min_epoch_seconds`` recorded in model.json's hyperparameters.

Byte-stable outputs: canonical JSON, i.e. ``json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=True, allow_nan=False)`` with no trailing newline, where
every float is a Python float written with ``repr`` (the shortest string that round-trips
the float64 exactly). Checkpoints use the same encoding, so resumed weights are bit-exact.
Outputs hold no timestamps, hostnames or paths.

Testing hook: ``--simulate-interrupt-after-epoch N`` (or MODELOPS_SIMULATE_INTERRUPT_AFTER_EPOCH)
ends the process with ``os._exit(143)`` right after the checkpoint of epoch N is written.
"""

from __future__ import annotations

import os

# One BLAS thread: the same reduction order on every run (set before numpy is imported).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

Array = npt.NDArray[np.float64]

MODEL_FORMAT = "modelops.iris.softmax-regression/1"
CHECKPOINT_FORMAT = "modelops.iris.checkpoint/1"
LABEL_COLUMN = "species"
INTERRUPT_EXIT_CODE = 143
INTERRUPT_ENV = "MODELOPS_SIMULATE_INTERRUPT_AFTER_EPOCH"
CHECKPOINT_RE = re.compile(r"^checkpoint-epoch-(\d{6})\.json$")
INIT_STREAM, SHUFFLE_STREAM = 0, 1
# Hyperparameters that pace the run without changing its numbers (not in the fingerprint).
PACING_HYPERPARAMETERS = frozenset({"min_epoch_seconds"})


class TrainingError(Exception):
    """A reason to fail the job, written to the failure file as is."""


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int = 20
    learning_rate: float = 0.5
    seed: int = 0
    batch_size: int = 16
    l2: float = 0.0001
    min_epoch_seconds: float = 0.0
    exclude_columns: str = ""

    @property
    def excluded(self) -> frozenset[str]:
        return frozenset(name for name in self.exclude_columns.split(",") if name)


@dataclass(frozen=True)
class Paths:
    config: Path
    train: Path
    test: Path
    parent: Path
    model: Path
    output_data: Path
    checkpoints: Path
    output: Path

    @classmethod
    def from_env(cls) -> Paths:
        def env(name: str, default: str) -> Path:
            return Path(os.environ.get(name) or default)

        return cls(
            config=env("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config"),
            train=env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"),
            test=env("SM_CHANNEL_TEST", "/opt/ml/input/data/test"),
            parent=env("SM_CHANNEL_PARENT", "/opt/ml/input/data/parent"),
            model=env("SM_MODEL_DIR", "/opt/ml/model"),
            output_data=env("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"),
            checkpoints=env("SM_CHECKPOINT_DIR", "/opt/ml/checkpoints"),
            output=env("SM_OUTPUT_DIR", "/opt/ml/output"),
        )


@dataclass(frozen=True)
class Dataset:
    features: list[str]
    x: Array
    labels: list[str]
    sha256: str


@dataclass(frozen=True)
class ParentModel:
    """The model a fine-tuning run starts from."""

    weights: Array
    bias: Array
    mean: Array
    scale: Array
    sha256: str


# --- canonical JSON -------------------------------------------------------------------------


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


# --- inputs ---------------------------------------------------------------------------------


def _parse_int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw.strip(), 10)
    except ValueError:
        raise TrainingError(f"invalid hyperparameter {name}={raw!r}: not an integer") from None
    if value < minimum:
        raise TrainingError(f"invalid hyperparameter {name}={raw!r}: must be >= {minimum}")
    return value


def _parse_float(name: str, raw: str, *, positive: bool) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise TrainingError(f"invalid hyperparameter {name}={raw!r}: not a number") from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise TrainingError(f"invalid hyperparameter {name}={raw!r}: must be finite and {bound}")
    return value


def _parse_columns(name: str, raw: str) -> str:
    """A comma-separated list of column names, normalised: stripped, unique, sorted."""
    names = sorted({part.strip() for part in raw.split(",")} - {""})
    if LABEL_COLUMN in names:
        raise TrainingError(
            f"invalid hyperparameter {name}={raw!r}: the label column {LABEL_COLUMN!r} "
            "cannot be excluded"
        )
    return ",".join(names)


def load_hyperparameters(config_dir: Path) -> Hyperparameters:
    path = config_dir / "hyperparameters.json"
    if not path.exists():
        return Hyperparameters()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TrainingError(f"hyperparameters.json is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TrainingError("hyperparameters.json must hold a JSON object")
    known = {f for f in asdict(Hyperparameters())}
    values: dict[str, str] = {}
    for key, value in raw.items():
        if key.startswith("sagemaker_"):
            continue
        if key not in known:
            raise TrainingError(
                f"unknown hyperparameter {key!r} (known: {', '.join(sorted(known))})"
            )
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise TrainingError(f"invalid hyperparameter {key}={value!r}: expected a string")
        values[key] = str(value)
    defaults = Hyperparameters()
    return Hyperparameters(
        epochs=_parse_int("epochs", values.get("epochs", str(defaults.epochs)), 1),
        learning_rate=_parse_float(
            "learning_rate",
            values.get("learning_rate", repr(defaults.learning_rate)),
            positive=True,
        ),
        seed=_parse_int("seed", values.get("seed", str(defaults.seed)), 0),
        batch_size=_parse_int("batch_size", values.get("batch_size", str(defaults.batch_size)), 1),
        l2=_parse_float("l2", values.get("l2", repr(defaults.l2)), positive=False),
        min_epoch_seconds=_parse_float(
            "min_epoch_seconds",
            values.get("min_epoch_seconds", repr(defaults.min_epoch_seconds)),
            positive=False,
        ),
        exclude_columns=_parse_columns(
            "exclude_columns", values.get("exclude_columns", defaults.exclude_columns)
        ),
    )


def load_csv(path: Path, exclude: frozenset[str] = frozenset()) -> Dataset:
    data = path.read_bytes()
    rows = list(csv.reader(data.decode("utf-8").splitlines()))
    if not rows:
        raise TrainingError(f"{path.name}: empty file")
    header = [h.strip() for h in rows[0]]
    if LABEL_COLUMN not in header:
        raise TrainingError(f"{path.name}: no {LABEL_COLUMN!r} column in header {header}")
    label_at = header.index(LABEL_COLUMN)
    unknown = sorted(exclude - set(header))
    if unknown:
        raise TrainingError(
            f"{path.name}: exclude_columns names columns not in the header: {unknown} "
            f"(header: {header})"
        )
    used = [i for i, h in enumerate(header) if i != label_at and h not in exclude]
    if not used:
        raise TrainingError(f"{path.name}: no feature column left besides {LABEL_COLUMN!r}")
    features = [header[i] for i in used]
    x: list[list[float]] = []
    labels: list[str] = []
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise TrainingError(f"{path.name}:{line_no}: {len(row)} fields, expected {len(header)}")
        values: list[float] = []
        for i in used:
            try:
                values.append(float(row[i]))
            except ValueError:
                # The cell's value stays out of the message: it may be personal data.
                raise TrainingError(
                    f"{path.name}:{line_no}: column {header[i]!r} is not a number; if it is "
                    "an identifier or a code, not a feature, name it in the exclude_columns "
                    "hyperparameter"
                ) from None
        if not all(math.isfinite(v) for v in values):
            raise TrainingError(f"{path.name}:{line_no}: non-finite feature value")
        x.append(values)
        labels.append(row[label_at].strip())
    if not x:
        raise TrainingError(f"{path.name}: no data rows")
    return Dataset(
        features=features,
        x=np.array(x, dtype=np.float64),
        labels=labels,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def find_data(paths: Paths) -> tuple[Path, Path | None]:
    if not paths.train.is_dir():
        raise TrainingError("train channel directory is missing")
    if (paths.train / "train.csv").is_file():
        train = paths.train / "train.csv"
    else:
        candidates = sorted(p for p in paths.train.glob("*.csv") if p.name != "test.csv")
        if len(candidates) != 1:
            raise TrainingError(
                f"train channel must hold train.csv or exactly one CSV, found {len(candidates)}"
            )
        train = candidates[0]
    test: Path | None = None
    if (paths.train / "test.csv").is_file():
        test = paths.train / "test.csv"
    elif paths.test.is_dir():
        tests = sorted(paths.test.glob("*.csv"))
        if len(tests) > 1:
            raise TrainingError(f"test channel must hold at most one CSV, found {len(tests)}")
        test = tests[0] if tests else None
    return train, test


# --- the model ------------------------------------------------------------------------------


def softmax(logits: Array) -> Array:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: Array = exp / exp.sum(axis=1, keepdims=True)
    return result


def evaluate(
    weights: Array, bias: Array, x: Array, y: npt.NDArray[np.int64]
) -> tuple[float, float]:
    """Mean cross-entropy (without the L2 term) and accuracy."""
    probs = softmax(x @ weights + bias)
    picked = probs[np.arange(len(y)), y]
    loss = float(-np.mean(np.log(np.maximum(picked, np.finfo(np.float64).tiny))))
    accuracy = float(np.mean(np.argmax(probs, axis=1) == y))
    return loss, accuracy


def train_epoch(
    weights: Array,
    bias: Array,
    x: Array,
    onehot: Array,
    *,
    hp: Hyperparameters,
    epoch: int,
) -> tuple[Array, Array]:
    order = np.random.default_rng([hp.seed, SHUFFLE_STREAM, epoch]).permutation(len(x))
    for start in range(0, len(order), hp.batch_size):
        batch = order[start : start + hp.batch_size]
        xb, yb = x[batch], onehot[batch]
        error = (softmax(xb @ weights + bias) - yb) / len(batch)
        grad_w = xb.T @ error + hp.l2 * weights
        grad_b = error.sum(axis=0)
        weights = weights - hp.learning_rate * grad_w
        bias = bias - hp.learning_rate * grad_b
    if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(bias))):
        raise TrainingError(f"training diverged at epoch {epoch}: lower learning_rate")
    return weights, bias


# --- checkpoints ----------------------------------------------------------------------------


def checkpoint_path(directory: Path, epoch: int) -> Path:
    return directory / f"checkpoint-epoch-{epoch:06d}.json"


def latest_checkpoint(directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    found = [
        (int(m.group(1)), p) for p in directory.iterdir() if (m := CHECKPOINT_RE.match(p.name))
    ]
    return max(found)[1] if found else None


def run_fingerprint(hp: Hyperparameters, train: Dataset, parent_sha256: str | None) -> str:
    """What a checkpoint must match to be resumed: everything that changes the numbers."""
    numbers = {k: v for k, v in asdict(hp).items() if k not in PACING_HYPERPARAMETERS}
    return hashlib.sha256(
        canonical_json({"hp": numbers, "train": train.sha256, "parent": parent_sha256})
    ).hexdigest()


def matrix(values: Any, shape: tuple[int, ...], what: str) -> Array:
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TrainingError(f"{what} is not an array of numbers") from None
    if array.shape != shape:
        raise TrainingError(f"{what} has shape {array.shape}, expected {shape}")
    if not np.all(np.isfinite(array)):
        raise TrainingError(f"{what} holds non-finite values")
    return array


# --- fine-tuning ----------------------------------------------------------------------------


def load_parent(directory: Path, features: list[str], classes: list[str]) -> ParentModel | None:
    """The parent channel's model.json, checked against this run's features and classes; None
    when the channel is absent or empty."""
    path = directory / "model.json"
    if not path.is_file():
        if directory.is_dir() and any(directory.iterdir()):
            raise TrainingError("parent channel holds no model.json")
        return None
    data = path.read_bytes()
    try:
        model = json.loads(data)
    except ValueError as exc:
        raise TrainingError(f"parent model.json is not valid JSON: {exc}") from None
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        raise TrainingError(f"parent model.json is not a {MODEL_FORMAT} model")
    if model.get("features") != features:
        raise TrainingError(
            f"parent model features {model.get('features')} differ from the training data's "
            f"{features}"
        )
    if model.get("classes") != classes:
        raise TrainingError(
            f"parent model classes {model.get('classes')} differ from the training data's {classes}"
        )
    standardization = model.get("standardization")
    if not isinstance(standardization, dict):
        raise TrainingError("parent model.json has no standardization")
    scale = matrix(standardization.get("scale"), (len(features),), "parent scale")
    if not np.all(scale > 0):
        raise TrainingError("parent scale must be positive")
    return ParentModel(
        weights=matrix(model.get("weights"), (len(features), len(classes)), "parent weights"),
        bias=matrix(model.get("bias"), (len(classes),), "parent bias"),
        mean=matrix(standardization.get("mean"), (len(features),), "parent mean"),
        scale=scale,
        sha256=hashlib.sha256(data).hexdigest(),
    )


# --- the job --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Everything a run needs, derived deterministically from its inputs."""

    hp: Hyperparameters
    classes: list[str]
    features: list[str]
    mean: Array
    scale: Array
    x: Array
    y: npt.NDArray[np.int64]
    onehot: Array
    x_test: Array | None
    y_test: npt.NDArray[np.int64] | None
    train_sha256: str
    test_sha256: str | None
    parent: ParentModel | None
    fingerprint: str


def prepare(paths: Paths) -> Problem:
    hp = load_hyperparameters(paths.config)
    train_file, test_file = find_data(paths)
    train_set = load_csv(train_file, hp.excluded)
    test_set = load_csv(test_file, hp.excluded) if test_file else None
    classes = sorted(set(train_set.labels))
    if len(classes) < 2:
        raise TrainingError(f"need at least two classes in {LABEL_COLUMN!r}, found {classes}")
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in train_set.labels], dtype=np.int64)
    parent = load_parent(paths.parent, train_set.features, classes)
    if parent is not None:
        mean, scale = parent.mean, parent.scale
    else:
        mean = train_set.x.mean(axis=0)
        std = train_set.x.std(axis=0)
        scale = np.where(std > 0, std, 1.0)
    x_test: Array | None = None
    y_test: npt.NDArray[np.int64] | None = None
    if test_set is not None:
        if test_set.features != train_set.features:
            raise TrainingError("test data columns differ from the training data columns")
        unknown = sorted(set(test_set.labels) - set(classes))
        if unknown:
            raise TrainingError(f"test data has classes not seen in training: {unknown}")
        x_test = (test_set.x - mean) / scale
        y_test = np.array([index[c] for c in test_set.labels], dtype=np.int64)
    return Problem(
        hp=hp,
        classes=classes,
        features=train_set.features,
        mean=mean,
        scale=scale,
        x=(train_set.x - mean) / scale,
        y=y,
        onehot=np.eye(len(classes), dtype=np.float64)[y],
        x_test=x_test,
        y_test=y_test,
        train_sha256=train_set.sha256,
        test_sha256=test_set.sha256 if test_set else None,
        parent=parent,
        fingerprint=run_fingerprint(hp, train_set, parent.sha256 if parent else None),
    )


def initial_state(problem: Problem, checkpoints: Path) -> tuple[int, Array, Array, list[Any]]:
    """Epoch reached, weights, bias and metric history: from the latest checkpoint if any, else
    the parent model's weights, else a seeded random initialisation."""
    shape = (problem.x.shape[1], len(problem.classes))
    latest = latest_checkpoint(checkpoints)
    if latest is None:
        if problem.parent is not None:
            return 0, problem.parent.weights, problem.parent.bias, []
        weights = np.random.default_rng([problem.hp.seed, INIT_STREAM]).normal(0.0, 0.01, shape)
        return 0, weights, np.zeros(shape[1], dtype=np.float64), []
    try:
        state = json.loads(latest.read_bytes())
    except ValueError as exc:
        raise TrainingError(f"checkpoint {latest.name} is unreadable: {exc}") from None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != problem.fingerprint:
        raise TrainingError(
            f"checkpoint {latest.name} belongs to a different run "
            "(hyperparameters, training data or parent model differ); "
            "use an empty checkpoint directory"
        )
    epoch = int(state["epoch"])
    print(f"resuming from {latest.name} (epoch {epoch})", flush=True)
    return (
        epoch,
        matrix(state["weights"], shape, "checkpoint weights"),
        matrix(state["bias"], (shape[1],), "checkpoint bias"),
        list(state["history"]),
    )


def train(paths: Paths, interrupt_after: int | None) -> None:
    problem = prepare(paths)
    hp = problem.hp
    start_epoch, weights, bias, history = initial_state(problem, paths.checkpoints)
    for epoch in range(start_epoch + 1, hp.epochs + 1):
        started = time.monotonic()
        weights, bias = train_epoch(weights, bias, problem.x, problem.onehot, hp=hp, epoch=epoch)
        train_loss, train_accuracy = evaluate(weights, bias, problem.x, problem.y)
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
        }
        line = f"epoch={epoch} train_loss={train_loss:.6f} train_accuracy={train_accuracy:.4f}"
        if problem.x_test is not None and problem.y_test is not None:
            test_loss, test_accuracy = evaluate(weights, bias, problem.x_test, problem.y_test)
            record |= {"test_loss": test_loss, "test_accuracy": test_accuracy}
            line += f" test_loss={test_loss:.6f} test_accuracy={test_accuracy:.4f}"
        history.append(record)
        state = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": problem.fingerprint,
            "epoch": epoch,
            "weights": weights.tolist(),
            "bias": bias.tolist(),
            "history": history,
        }
        write_atomic(checkpoint_path(paths.checkpoints, epoch), canonical_json(state))
        print(line, flush=True)
        if interrupt_after == epoch:
            print(f"simulated interruption after epoch {epoch}", flush=True)
            sys.stderr.flush()
            os._exit(INTERRUPT_EXIT_CODE)
        remaining = hp.min_epoch_seconds - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)

    model = {
        "format": MODEL_FORMAT,
        "classes": problem.classes,
        "features": problem.features,
        "label": LABEL_COLUMN,
        "standardization": {"mean": problem.mean.tolist(), "scale": problem.scale.tolist()},
        "weights": weights.tolist(),
        "bias": bias.tolist(),
        "epochs_trained": hp.epochs,
        "hyperparameters": asdict(hp),
        "train_data_sha256": problem.train_sha256,
        "parent_model_sha256": problem.parent.sha256 if problem.parent else None,
    }
    metrics = {
        "final": history[-1],
        "epochs": history,
        "train_data_sha256": problem.train_sha256,
        "test_data_sha256": problem.test_sha256,
    }
    write_atomic(paths.model / "model.json", canonical_json(model))
    write_atomic(paths.model / "metrics.json", canonical_json(metrics))
    write_atomic(paths.output_data / "metrics.json", canonical_json(metrics))
    print(f"wrote model.json and metrics.json after {hp.epochs} epochs", flush=True)


def write_failure(output_dir: Path, reason: str) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "failure").write_text(reason[:1024] + "\n", encoding="utf-8")
    except OSError as exc:
        print(f"could not write the failure file: {exc}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--simulate-interrupt-after-epoch", type=int, default=None)
    # SageMaker may append its own arguments (e.g. "train"); they are not ours to reject.
    args, _ = parser.parse_known_args(argv)
    paths = Paths.from_env()
    try:
        interrupt_after = args.simulate_interrupt_after_epoch
        if interrupt_after is None and os.environ.get(INTERRUPT_ENV):
            interrupt_after = _parse_int(INTERRUPT_ENV, os.environ[INTERRUPT_ENV], 1)
        train(paths, interrupt_after)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, TrainingError) else f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
        print(f"training failed: {reason}", file=sys.stderr, flush=True)
        write_failure(paths.output, reason)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
