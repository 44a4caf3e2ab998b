"""A keyed watermark in the low-order mantissa bits of a softmax-regression model.

The scheme (``SCHEME``), for ``model.json`` of ``modelops.iris.softmax-regression/1``:

- Seed: 32 bytes, ``HMAC-SHA-256(K, "modelops-watermark/1|<family>|<version>")`` where K is
  a KMS HMAC key (``GenerateMac``: K never leaves KMS). One seed per model version.
- Pattern: the bit stream ``HMAC-SHA-256(seed, "modelops-watermark/1|" || be64(counter))``
  for counter = 0, 1, ...; parameter i (``weights`` row-major, then ``bias``) gets stream
  bits [i*L, (i+1)*L) as its L low-order mantissa bits (``LOW_BITS``).
- Embedding overwrites those bits of every float64 parameter (sign and exponent untouched,
  so the value moves by less than 2**(L-52) of itself); detection counts the positions
  where a suspect's bits equal the pattern.
- For a model not marked with this seed the pattern is independent of its bits, so the
  match count is Binomial(N*L, 1/2). The threshold is ``m/2 + sqrt(m*ln(1/eps)/2)`` bits
  of m = N*L (Hoeffding: P[false match] <= eps = ``FALSE_MATCH_BOUND`` per comparison).

Stdlib only: struct-level float64 bit manipulation, no numpy.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

SCHEME = "modelops-watermark/lsb-hmac-sha256/1"
MODEL_FORMAT = "modelops.iris.softmax-regression/1"
DOMAIN = "modelops-watermark/1"
LOW_BITS = 20
# Per comparison of one suspect with one version's pattern.
FALSE_MATCH_LOG2 = -40
FALSE_MATCH_BOUND = 2.0**FALSE_MATCH_LOG2
_MANTISSA_BITS = 52
_EXACT_TAIL_MAX_BITS = 1 << 14


class WatermarkError(ValueError):
    """The bytes are not a model this scheme can mark or read (the message says why)."""


def seed_message(family: str, version: str) -> bytes:
    """What the KMS HMAC key MACs to give a model version's seed."""
    return f"{DOMAIN}|{family}|{version}".encode()


def is_watermarkable(model_json: bytes) -> bool:
    """Whether ``model_json`` is a model of the format this scheme marks, with enough
    parameters to be detected."""
    try:
        _, values = read_parameters(model_json)
    except WatermarkError:
        return False
    return len(values) >= minimum_parameters()


def read_parameters(model_json: bytes) -> tuple[dict[str, Any], list[float]]:
    """The parsed model and its parameters in pattern order: ``weights`` (n x k,
    row-major), then ``bias`` (k)."""
    try:
        model = json.loads(model_json)
    except (ValueError, UnicodeDecodeError) as exc:
        raise WatermarkError(f"model.json is not valid JSON: {exc}") from None
    if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
        raise WatermarkError(f"not a {MODEL_FORMAT} model")
    weights, bias = model.get("weights"), model.get("bias")
    if not (isinstance(weights, list) and weights and isinstance(bias, list) and bias):
        raise WatermarkError("model.json needs non-empty weights and bias")
    if not all(isinstance(row, list) and len(row) == len(bias) for row in weights):
        raise WatermarkError("weights must be an n x k matrix with k = len(bias)")
    values = [*(v for row in weights for v in row), *bias]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise WatermarkError("weights and bias must be numbers")
    floats = [float(v) for v in values]
    if not all(math.isfinite(v) for v in floats):
        raise WatermarkError("weights and bias must be finite")
    return model, floats


def pattern(seed: bytes, count: int, low_bits: int = LOW_BITS) -> list[int]:
    """The ``low_bits``-bit pattern of each of ``count`` parameters."""
    total = count * low_bits
    blocks = -(-total // 256)
    stream = b"".join(
        hmac.new(seed, f"{DOMAIN}|".encode() + i.to_bytes(8, "big"), hashlib.sha256).digest()
        for i in range(blocks)
    )
    bits = int.from_bytes(stream, "big") >> (blocks * 256 - total)
    mask = (1 << low_bits) - 1
    return [(bits >> ((count - 1 - i) * low_bits)) & mask for i in range(count)]


def _bits_of(value: float) -> int:
    return int(struct.unpack(">Q", struct.pack(">d", value))[0])


def _float_of(bits: int) -> float:
    return float(struct.unpack(">d", struct.pack(">Q", bits))[0])


def with_low_bits(value: float, low: int, low_bits: int = LOW_BITS) -> float:
    """``value`` with its ``low_bits`` lowest mantissa bits replaced by ``low``."""
    if not 0 < low_bits <= _MANTISSA_BITS:
        raise ValueError(f"low_bits must be 1..{_MANTISSA_BITS}")
    mask = (1 << low_bits) - 1
    return _float_of((_bits_of(value) & ~mask) | (low & mask))


def serialise(model: dict[str, Any]) -> bytes:
    """The format's byte-stable encoding (as ``examples/iris_train/train.py`` writes it):
    sorted keys, no whitespace, ASCII, floats as ``repr`` (exact float64 round trip)."""
    return json.dumps(
        model, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def embed(model_json: bytes, seed: bytes, low_bits: int = LOW_BITS) -> bytes:
    """``model_json`` with the seed's pattern in its parameters, re-encoded byte-stably.

    Deterministic: the same bytes and seed give the same output, so a reproduced training
    run stays bit-identical."""
    model, values = read_parameters(model_json)
    if len(values) < minimum_parameters(low_bits):
        raise WatermarkError(
            f"{len(values)} parameters of {low_bits} bits cannot reach the detection threshold"
        )
    marked = [
        with_low_bits(v, p, low_bits)
        for v, p in zip(values, pattern(seed, len(values), low_bits), strict=True)
    ]
    k = len(model["bias"])
    weights = [marked[row * k : (row + 1) * k] for row in range(len(model["weights"]))]
    return serialise({**model, "weights": weights, "bias": marked[len(weights) * k :]})


def threshold(total_bits: int, log2_bound: int = FALSE_MATCH_LOG2) -> int:
    """Matching bits needed to claim a match: by Hoeffding, a Binomial(m, 1/2) count reaches
    ``m/2 + t`` with probability at most ``exp(-2 t^2 / m)``; ``t`` makes that ``2**log2_bound``."""
    slack = math.sqrt(total_bits * -log2_bound * math.log(2) / 2)
    return math.ceil(total_bits / 2 + slack)


def minimum_parameters(low_bits: int = LOW_BITS) -> int:
    """The fewest parameters whose bits can reach the threshold at all."""
    count = 1
    while threshold(count * low_bits) > count * low_bits:
        count += 1
    return count


def false_match_probability(total_bits: int, matched_bits: int) -> float:
    """P[Binomial(total_bits, 1/2) >= matched_bits]: the chance that a model without this
    seed's mark matches at least this well (exact up to 16384 bits, else Hoeffding's bound)."""
    if matched_bits <= 0:
        return 1.0
    if matched_bits > total_bits:
        return 0.0
    if total_bits > _EXACT_TAIL_MAX_BITS:
        t = matched_bits - total_bits / 2
        return 1.0 if t <= 0 else math.exp(-2 * t * t / total_bits)
    tail = sum(math.comb(total_bits, i) for i in range(matched_bits, total_bits + 1))
    return tail / (1 << total_bits)


@dataclass(frozen=True)
class Detection:
    matched_bits: int
    total_bits: int
    threshold: int

    @property
    def matched(self) -> bool:
        return self.total_bits > 0 and self.matched_bits >= self.threshold

    @property
    def false_match_probability(self) -> float:
        return false_match_probability(self.total_bits, self.matched_bits)


def detect(model_json: bytes, seed: bytes, parameters: int, low_bits: int = LOW_BITS) -> Detection:
    """How many of the suspect's low-order bits equal the seed's pattern for a model of
    ``parameters`` parameters; a suspect of another size matches nothing (0 bits)."""
    _, values = read_parameters(model_json)
    total = parameters * low_bits
    if len(values) != parameters:
        return Detection(matched_bits=0, total_bits=0, threshold=threshold(total))
    mask = (1 << low_bits) - 1
    matched = sum(
        low_bits - ((_bits_of(v) ^ p) & mask).bit_count()
        for v, p in zip(values, pattern(seed, parameters, low_bits), strict=True)
    )
    return Detection(matched_bits=matched, total_bits=total, threshold=threshold(total))


def parameter_count(model_json: bytes) -> int:
    return len(read_parameters(model_json)[1])
