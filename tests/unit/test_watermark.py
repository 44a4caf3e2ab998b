"""The keyed watermark of softmax-regression models (modelops.domain.watermark), measured on
models that examples/iris_train/train.py trains on the Iris split the demo uses.

The numbers docs/watermarking.md states come from these tests: accuracy change, true- and
false-positive rates, bits, thresholds, and which edits the mark survives.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rfc8785

from examples.evaluate.softmax_model import SoftmaxModel
from examples.iris_train import train
from modelops.domain import watermark
from modelops_cli.demo import _write_iris, stratified_split

TRAINED_MODELS = 50
UNWATERMARKED_MODELS = 200
OTHER_KEYS = 200
FAMILY = "iris-softmax"
# The bound docs/watermarking.md states: no prediction changes, probabilities move < 1e-8.
MAX_PROBABILITY_CHANGE = 1e-8


def kms_mac(key: bytes) -> Callable[[bytes], bytes]:
    """What KMS GenerateMac (HMAC_SHA_256) computes with an HMAC_256 key."""
    return lambda message: hmac.new(key, message, hashlib.sha256).digest()


def seed_of(key: bytes, version: str, family: str = FAMILY) -> bytes:
    return kms_mac(key)(watermark.seed_message(family, version))


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("iris")
    return stratified_split(_write_iris(base / "raw"), base / "split")


def _train(split: Path, root: Path, seed: int, **hyperparameters: str) -> bytes:
    config = root / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(
        json.dumps({"epochs": "10", "seed": str(seed), **hyperparameters})
    )
    paths = train.Paths(
        config=config,
        train=split,
        test=root / "no-test",
        parent=root / "parent",
        model=root / "model",
        output_data=root / "output" / "data",
        checkpoints=root / "checkpoints",
        output=root / "output",
    )
    train.train(paths, None)
    return (root / "model" / "model.json").read_bytes()


@pytest.fixture(scope="module")
def models(split: Path, tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """UNWATERMARKED_MODELS models, each trained with its own seed."""
    base = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        # Checkpoint durability (an fsync per epoch) is not what is measured here.
        patch.setattr(os, "fsync", lambda _: None)
        return [_train(split, base / str(seed), seed) for seed in range(UNWATERMARKED_MODELS)]


@pytest.fixture(scope="module")
def test_set(split: Path) -> tuple[np.ndarray[Any, Any], list[str]]:
    lines = (split / "test.csv").read_text().splitlines()[1:]
    rows = [line.split(",") for line in lines if line]
    return np.array([[float(v) for v in row[:-1]] for row in rows]), [row[-1] for row in rows]


def _parameters(model_json: bytes) -> list[float]:
    return watermark.read_parameters(model_json)[1]


def _bits(value: float) -> int:
    return int(struct.unpack(">Q", struct.pack(">d", value))[0])


def test_embedding_changes_only_the_low_order_bits_of_weights_and_bias(
    models: list[bytes],
) -> None:
    original = models[0]
    marked = watermark.embed(original, seed_of(b"k" * 32, "1.0.0"))
    before, after = json.loads(original), json.loads(marked)
    assert {k: v for k, v in before.items() if k not in ("weights", "bias")} == {
        k: v for k, v in after.items() if k not in ("weights", "bias")
    }
    high = ~((1 << watermark.LOW_BITS) - 1) & (2**64 - 1)
    for old, new in zip(_parameters(original), _parameters(marked), strict=True):
        assert _bits(old) & high == _bits(new) & high
        assert abs(new - old) <= abs(old) * 2.0 ** (watermark.LOW_BITS - 52)
    assert _parameters(original) != _parameters(marked)


def test_embedding_is_deterministic_so_reproduced_runs_stay_bit_identical(
    models: list[bytes],
) -> None:
    seed = seed_of(b"k" * 32, "1.0.0")
    assert watermark.embed(models[1], seed) == watermark.embed(models[1], seed)
    # Training output is already in the format's byte-stable encoding: re-encoding adds nothing.
    assert watermark.serialise(json.loads(models[1])) == models[1]


def test_watermarking_changes_no_prediction_and_probabilities_by_less_than_the_bound(
    models: list[bytes], test_set: tuple[np.ndarray[Any, Any], list[str]]
) -> None:
    x, labels = test_set
    accuracy_changes, probability_changes = [], []
    for i, original in enumerate(models[:TRAINED_MODELS]):
        marked = watermark.embed(original, seed_of(os.urandom(32), f"1.0.{i}"))
        plain, wm = SoftmaxModel.from_json(original), SoftmaxModel.from_json(marked)
        (p_idx, p_prob), (w_idx, w_prob) = plain.predict(x), wm.predict(x)
        truth = np.array([plain.classes.index(label) for label in labels])
        accuracy_changes.append(float(np.mean(w_idx == truth) - np.mean(p_idx == truth)))
        probability_changes.append(float(np.max(np.abs(w_prob - p_prob))))
        assert np.array_equal(p_idx, w_idx)
    assert accuracy_changes == [0.0] * TRAINED_MODELS
    assert max(probability_changes) < MAX_PROBABILITY_CHANGE


def test_every_watermarked_model_is_detected_with_every_bit(models: list[bytes]) -> None:
    key = os.urandom(32)
    detections = []
    for i, original in enumerate(models[:TRAINED_MODELS]):
        seed = seed_of(key, f"2.0.{i}")
        marked = watermark.embed(original, seed)
        detections.append(watermark.detect(marked, seed, watermark.parameter_count(marked)))
    assert all(d.matched for d in detections)  # true-positive rate 100%
    assert {(d.matched_bits, d.total_bits) for d in detections} == {(300, 300)}


def test_no_unwatermarked_model_matches_any_seed(models: list[bytes]) -> None:
    key = os.urandom(32)
    scores = [
        watermark.detect(model, seed_of(key, f"3.0.{i}"), 15) for i, model in enumerate(models)
    ]
    assert len(scores) == UNWATERMARKED_MODELS
    assert not any(d.matched for d in scores)  # false-positive rate 0
    assert max(d.matched_bits for d in scores) < scores[0].threshold


def test_no_model_marked_with_another_key_or_version_matches(models: list[bytes]) -> None:
    ours, theirs = os.urandom(32), os.urandom(32)
    foreign = [
        watermark.embed(models[i % len(models)], seed_of(theirs, f"4.0.{i}"))
        for i in range(OTHER_KEYS)
    ]
    other_key = [watermark.detect(m, seed_of(ours, f"4.0.{i}"), 15) for i, m in enumerate(foreign)]
    # The same key, another version of the family: each version's pattern is its own.
    ours_next = [watermark.embed(m, seed_of(ours, "9.9.9")) for m in models[:TRAINED_MODELS]]
    other_version = [watermark.detect(m, seed_of(ours, "9.9.8"), 15) for m in ours_next]
    assert not any(d.matched for d in (*other_key, *other_version))


def _printed(model: dict[str, Any], digits: int) -> bytes:
    """The model with every parameter printed with ``digits`` significant digits."""

    def text(value: float) -> str:
        return f"{value:.{digits}g}"

    weights = "[" + ",".join("[" + ",".join(map(text, row)) + "]" for row in model["weights"])
    parameters = f'"weights":{weights}],"bias":[{",".join(map(text, model["bias"]))}]'
    rest = json.dumps({k: v for k, v in model.items() if k not in ("weights", "bias")})
    return (rest[:-1] + "," + parameters + "}").encode()


def _reencodings(model_json: bytes) -> dict[str, bytes]:
    model = json.loads(model_json)
    return {
        "indented": json.dumps(model, indent=2).encode(),
        "unsorted, spaced, non-ASCII": json.dumps(
            dict(reversed(list(model.items()))), ensure_ascii=False
        ).encode(),
        "RFC 8785 (JCS)": rfc8785.dumps(model),
        "through numpy float64": json.dumps(
            {
                **model,
                "weights": np.array(model["weights"], dtype=np.float64).tolist(),
                "bias": np.array(model["bias"], dtype=np.float64).tolist(),
            }
        ).encode(),
        "17 significant digits": _printed(model, 17),
    }


def test_detection_survives_every_lossless_reserialisation(models: list[bytes]) -> None:
    seed = seed_of(os.urandom(32), "5.0.0")
    marked = watermark.embed(models[2], seed)
    for name, data in _reencodings(marked).items():
        assert data != marked, name
        detection = watermark.detect(data, seed, 15)
        assert detection.matched_bits == detection.total_bits, name


def test_detection_survives_printing_with_15_significant_digits_but_not_12(
    models: list[bytes],
) -> None:
    seed = seed_of(os.urandom(32), "5.0.1")
    marked = json.loads(watermark.embed(models[2], seed))
    fifteen = watermark.detect(_printed(marked, 15), seed, 15)
    twelve = watermark.detect(_printed(marked, 12), seed, 15)
    assert fifteen.matched and fifteen.matched_bits < fifteen.total_bits
    assert not twelve.matched


def test_detection_survives_overwriting_a_fifth_of_the_parameters(models: list[bytes]) -> None:
    seed = seed_of(os.urandom(32), "6.0.0")
    marked = json.loads(watermark.embed(models[3], seed))
    other = json.loads(models[4])
    for row in range(3):  # 3 of the 15 parameters replaced by another model's
        marked["weights"][row][0] = other["weights"][row][0]
    detection = watermark.detect(json.dumps(marked).encode(), seed, 15)
    assert detection.matched
    assert detection.matched_bits < detection.total_bits


def test_rounding_to_float32_or_fine_tuning_removes_the_mark_as_documented(
    models: list[bytes], split: Path, tmp_path: Path
) -> None:
    seed = seed_of(os.urandom(32), "7.0.0")
    marked = watermark.embed(models[5], seed)
    model = json.loads(marked)
    rounded = {
        **model,
        "weights": np.array(model["weights"], dtype=np.float32).astype(float).tolist(),
        "bias": np.array(model["bias"], dtype=np.float32).astype(float).tolist(),
    }
    assert not watermark.detect(json.dumps(rounded).encode(), seed, 15).matched
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "model.json").write_bytes(marked)
    tuned = _fine_tune(split, tmp_path / "tuned", parent)
    assert not watermark.detect(tuned, seed, 15).matched


def _fine_tune(split: Path, root: Path, parent: Path) -> bytes:
    config = root / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"epochs": "1", "seed": "1"}))
    paths = train.Paths(
        config=config,
        train=split,
        test=root / "no-test",
        parent=parent,
        model=root / "model",
        output_data=root / "output" / "data",
        checkpoints=root / "checkpoints",
        output=root / "output",
    )
    train.train(paths, None)
    return (root / "model" / "model.json").read_bytes()


@pytest.mark.parametrize("total_bits", [60, 100, 300, 1000, 4000])
def test_the_threshold_keeps_the_exact_false_match_probability_below_two_to_the_minus_40(
    total_bits: int,
) -> None:
    threshold = watermark.threshold(total_bits)
    assert watermark.false_match_probability(total_bits, threshold) <= 2.0**-40
    # Hoeffding's bound is what the threshold is derived from; the exact tail is below it.
    slack = threshold - total_bits / 2
    assert watermark.false_match_probability(total_bits, threshold) <= math.exp(
        -2 * slack * slack / total_bits
    )


def test_the_iris_model_has_300_bits_and_a_threshold_of_215() -> None:
    assert watermark.threshold(15 * watermark.LOW_BITS) == 215
    assert watermark.false_match_probability(300, 215) < 2e-14


def test_models_of_another_format_or_too_small_are_not_watermarkable(models: list[bytes]) -> None:
    other_format = json.dumps({**json.loads(models[0]), "format": "something/1"}).encode()
    tiny = json.dumps(
        {"format": watermark.MODEL_FORMAT, "weights": [[0.5]], "bias": [0.25]}
    ).encode()
    assert not watermark.is_watermarkable(other_format)
    assert not watermark.is_watermarkable(tiny)
    assert not watermark.is_watermarkable(b"not json")
    assert watermark.is_watermarkable(models[0])
    with pytest.raises(watermark.WatermarkError):
        watermark.embed(tiny, b"s" * 32)


def test_a_zero_parameter_stays_finite_and_keeps_its_sign_and_exponent() -> None:
    marked = watermark.with_low_bits(0.0, (1 << watermark.LOW_BITS) - 1)
    assert math.isfinite(marked) and 0.0 < marked < 1e-300
    assert watermark.with_low_bits(-2.5, 0) == pytest.approx(-2.5, rel=2**-32)
