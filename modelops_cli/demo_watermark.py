"""The demo's watermark step: a copy of the deployed model, re-serialised as anyone might,
is traced back to the version it came from; the same model with its low-order bits
re-randomised (same predictions) is refused as not ours (docs/watermarking.md)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelops.domain import watermark
from modelops_cli import artifacts
from modelops_cli.models import verify_watermark

Say = Callable[[str], None]
# Stands in for another organisation's key: their seed, not derivable from ours.
FOREIGN_SEED = hashlib.sha256(b"a watermark key that is not the platform's").digest()


def run_watermark_flow(client: Any, workdir: Path, say: Say, *, model_id: str) -> dict[str, Any]:
    """Download the model's artifact, verify a re-serialised copy (matched, with its version),
    then a foreign variant (not matched). Returns both answers."""
    detail = client.get_model(model_id)
    model, record = detail["model"], detail.get("watermark")
    say(f"25. Watermark: trace a copy of {model['family']} {model['version']} back to its version")
    if record is None:
        raise RuntimeError(f"{model_id} carries no watermark; was it trained on the platform?")
    say(
        f"   training embedded it at registration: {record['totalBits']} bits, the low "
        f"{record['lowBits']} mantissa bits of {record['parameters']} weights and biases"
    )
    say(f"   seed = KMS GenerateMac(watermark key, {record['message']!r}); the key stays in KMS")

    base = workdir / "watermark"
    artifacts.download(client, model["artifactId"], base / "deployed")
    original = (base / "deployed" / record["path"]).read_bytes()
    copy = base / "copy" / "model.json"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(json.dumps(json.loads(original), indent=2))  # re-serialised, as anyone might
    ours = verify_watermark(client, model_id, str(copy))
    source = ours.get("source") or {}
    say(
        f"   a re-serialised copy: matched {source.get('family')} {source.get('version')} "
        f"with {ours['matchedBits']}/{ours['totalBits']} bits (threshold {ours['threshold']}, "
        f"chance {ours['falseMatchProbability']:.1e}); {ours['comparedVersions']} watermarked "
        "version(s) compared"
    )

    foreign = base / "foreign" / "model.json"
    foreign.parent.mkdir(parents=True, exist_ok=True)
    foreign.write_bytes(watermark.embed(original, FOREIGN_SEED))
    theirs = verify_watermark(client, model_id, str(foreign))
    say(
        "   the same model with its low-order bits re-randomised (same predictions): "
        f"{'MATCHED (unexpected)' if theirs['matched'] else 'not matched'}, best "
        f"{theirs['matchedBits']}/{theirs['totalBits']} bits < {theirs['threshold']}: "
        "refused as not from this registry"
    )
    return {"verified": ours, "foreign": theirs}
