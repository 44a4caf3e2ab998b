"""The agent runtime's gate (Agent Manager): load a model version only if it checks out.

``fetch_package`` asks ``GET /models/{id}/package`` for short-lived download URLs and the
signed provenance, and downloads every file against its registered SHA-256. ``verify_package``
then checks, offline: the files' root digest is the registered one, every completed
promotion's statement is validly signed and binds these files, the OpenSSF model-signing
bundle verifies, and (``require_stage``) the version is at that stage by a signed promotion.
``load_verified`` does both and raises ``ModelRefused`` with every failed check, so a runtime
never serves a model whose digest or signature does not check out. Pin the public keys
(``statement_key``/``model_key``, DER) for trust; without them the keys come from the
provenance itself, which proves integrity but not origin.

``modelops verify package <modelId>`` is the same check from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelops_cli.artifacts import DigestMismatch, download_files
from modelops_cli.verify import pinned_keys, verify_model


@dataclass(frozen=True)
class PackageVerdict:
    modelId: str
    stage: str
    ok: bool
    checks: list[str] = field(default_factory=list)


class ModelRefused(Exception):
    def __init__(self, verdict: PackageVerdict) -> None:
        super().__init__(f"model {verdict.modelId} refused: " + "; ".join(verdict.checks))
        self.verdict = verdict


def fetch_package(client: Any, model_id: str, target: Path) -> dict[str, Any]:
    """The package of ``model_id``, its files downloaded into ``target`` and each checked
    against its registered SHA-256 and size (``DigestMismatch`` otherwise)."""
    package: dict[str, Any] = client.call("GET", f"/models/{model_id}/package")
    download_files(package["files"], package["downloads"], target)
    return package


def verify_package(
    package: Mapping[str, Any],
    model_dir: Path,
    *,
    require_stage: str | None = None,
    statement_key: bytes | None = None,
    model_key: bytes | None = None,
) -> PackageVerdict:
    """Every check on the downloaded files and the package's provenance, from public keys."""
    provenance = dict(package["provenance"])
    model = provenance["model"]
    checks: list[str] = []
    ok = verify_model(provenance, model_dir, checks.append, statement_key, model_key)
    if require_stage is not None:
        signed_into = [
            p["promotionId"]
            for p in provenance["promotions"]
            if p["status"] == "COMPLETED" and json.loads(p["statement"])["to"] == require_stage
        ]
        at_stage = model["status"] == require_stage and bool(signed_into)
        ok &= at_stage
        checks.append(
            f"stage {model['status']}: "
            + (
                f"signed into {require_stage} by {signed_into[-1]}"
                if at_stage
                else f"NOT {require_stage} by a signed promotion"
            )
        )
    return PackageVerdict(model["modelId"], model["status"], ok, checks)


def load_verified(
    client: Any,
    model_id: str,
    target: Path,
    *,
    require_stage: str | None = None,
    statement_key: bytes | None = None,
    model_key: bytes | None = None,
) -> PackageVerdict:
    """Fetch and verify; ``ModelRefused`` (with every check) unless everything passes."""
    try:
        package = fetch_package(client, model_id, target)
    except DigestMismatch as error:
        raise ModelRefused(
            PackageVerdict(model_id, "unknown", False, [f"download FAILS: {error}"])
        ) from error
    verdict = verify_package(
        package,
        target,
        require_stage=require_stage,
        statement_key=statement_key,
        model_key=model_key,
    )
    if not verdict.ok:
        raise ModelRefused(verdict)
    return verdict


def run_verify_package(args: argparse.Namespace) -> int:
    from modelops_cli import cli

    statement_key, model_key = pinned_keys(args)
    client = cli.make_client(args)
    with tempfile.TemporaryDirectory(prefix="modelops-package-") as tmp:
        try:
            verdict = load_verified(
                client,
                args.model_id,
                Path(args.dir) if args.dir else Path(tmp),
                require_stage=args.require_stage,
                statement_key=statement_key,
                model_key=model_key,
            )
        except ModelRefused as refused:
            verdict = refused.verdict
    if args.output == "json":
        cli.emit(args, dataclasses.asdict(verdict))
    else:
        for line in verdict.checks:
            print(line)
        print(f"package {'VERIFIED' if verdict.ok else 'REFUSED'}: {verdict.modelId}")
    return cli.EXIT_OK if verdict.ok else cli.EXIT_ERROR
