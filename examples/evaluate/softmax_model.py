"""The reader of ``model.json`` of ``modelops.iris.softmax-regression/1``, and its predictions.

The one piece of code that reads the format ``examples/iris_train/train.py`` writes: the
local model server (:mod:`localcloud.model_server`) and the evaluation job
(``examples/evaluate/evaluate.py``) both score with it. Standard library and numpy only, so
it runs in an inference or training container as it is.

The format: a JSON object with ``format``, ``classes`` (k names), ``features`` (n names),
``standardization`` (``mean`` and ``scale``, n numbers each, every scale > 0), ``weights``
(n x k) and ``bias`` (k). The probabilities of the rows of an (m, n) array ``x`` are
``softmax(((x - mean) / scale) @ weights + bias)`` over ``classes``, in float64; the
predicted class of a row is its most probable class, the first of ``classes`` on a tie.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_FORMAT = "modelops.iris.softmax-regression/1"
Array = npt.NDArray[np.float64]
Indices = npt.NDArray[np.intp]


class ModelError(Exception):
    """A model that cannot be loaded, or input it cannot score (the message says why)."""


def finite_array(value: Any, shape: tuple[int, ...], what: str) -> Array:
    """``value`` as a float64 array of exactly ``shape`` with only finite numbers."""
    try:
        array = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ModelError(f"{what} is not an array of numbers") from None
    if array.shape != shape or not np.all(np.isfinite(array)):
        raise ModelError(f"{what} must be finite numbers of shape {shape}, got {array.shape}")
    return array


@dataclass(frozen=True)
class SoftmaxModel:
    classes: list[str]
    features: list[str]
    mean: Array
    scale: Array
    weights: Array
    bias: Array
    sha256: str
    """SHA-256 of the model.json bytes the model was read from."""

    @classmethod
    def load(cls, model_dir: Path) -> SoftmaxModel:
        """The model in ``model_dir/model.json`` (an extracted model.tar.gz)."""
        path = model_dir / "model.json"
        if not path.is_file():
            raise ModelError("model.tar.gz holds no model.json")
        return cls.from_json(path.read_bytes())

    @classmethod
    def from_json(cls, data: bytes) -> SoftmaxModel:
        """The model a model.json's bytes hold."""
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise ModelError(f"model.json is not valid JSON: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
            raise ModelError(f"model.json is not a {MODEL_FORMAT} model")
        classes, features = raw.get("classes"), raw.get("features")
        if not (isinstance(classes, list) and isinstance(features, list) and classes and features):
            raise ModelError("model.json must list its classes and features")
        standardization = raw.get("standardization") or {}
        n, k = len(features), len(classes)
        scale = finite_array(standardization.get("scale"), (n,), "standardization.scale")
        if not np.all(scale > 0):
            raise ModelError("standardization.scale must be positive")
        return cls(
            classes=[str(c) for c in classes],
            features=[str(f) for f in features],
            mean=finite_array(standardization.get("mean"), (n,), "standardization.mean"),
            scale=scale,
            weights=finite_array(raw.get("weights"), (n, k), "weights"),
            bias=finite_array(raw.get("bias"), (k,), "bias"),
            sha256=hashlib.sha256(data).hexdigest(),
        )

    def probabilities(self, x: Array) -> Array:
        """The (m, k) class probabilities of the rows of the (m, n) array ``x``."""
        logits = ((x - self.mean) / self.scale) @ self.weights + self.bias
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        result: Array = shifted / shifted.sum(axis=1, keepdims=True)
        return result

    def predict(self, x: Array) -> tuple[Indices, Array]:
        """The predicted class (an index into ``classes``) and the probabilities of each row."""
        probabilities = self.probabilities(x)
        return np.argmax(probabilities, axis=1), probabilities
