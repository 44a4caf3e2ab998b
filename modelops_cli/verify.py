"""``modelops verify model <id>``: check a model version offline, from public keys alone.

Downloads (or reads) the model's files, then checks: the files' root digest is the
registered one; every completed promotion's statement names that digest and carries a valid
Ed25519 signature by the statement key; the OpenSSF model-signing bundle verifies against
the files with the P-256 key (the same check as ``model_signing verify key``). Keys come from
``--statement-key``/``--model-key`` PEM files when given (pin them), else from the API.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from modelops.domain.manifest import Manifest
from modelops.domain.openssf import BundleError, verify_bundle
from modelops.domain.signing import ManifestSignature, public_key_der, verify_statement

Say = Callable[[str], None]


def download_model(client: Any, artifact_id: str, target: Path) -> Path:
    files = client.get_artifact(artifact_id, download=True)["downloads"]
    for path, url in files.items():
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        response = requests.get(url, timeout=60)
        response.raise_for_status()
        destination.write_bytes(response.content)
    return target


def verify_model(
    provenance: dict[str, Any],
    model_dir: Path,
    say: Say,
    statement_key: bytes | None = None,
    model_key: bytes | None = None,
) -> bool:
    """Every check, reported line by line; True when all pass."""
    model = provenance["model"]
    keys = {k["keyId"]: base64.b64decode(k["publicKeyDer"]) for k in provenance["keys"]}
    by_algorithm = {k["algorithm"]: base64.b64decode(k["publicKeyDer"]) for k in provenance["keys"]}
    ok = True

    root = Manifest.of_directory(model_dir).root_digest
    same = root == model["rootDigest"]
    ok &= same
    say(f"files' root digest {root[:16]}... {'matches' if same else 'DIFFERS FROM'} the registry")

    completed = [p for p in provenance["promotions"] if p["status"] == "COMPLETED"]
    for promotion in completed:
        record = ManifestSignature.model_validate(promotion["signature"])
        key = statement_key or keys.get(record.keyId)
        statement = json.loads(promotion["statement"])
        valid = key is not None and verify_statement(record, promotion["statement"].encode(), key)
        binds = statement["rootDigest"] == root and statement["modelId"] == model["modelId"]
        ok &= valid and binds
        say(
            f"promotion {promotion['promotionId']} {statement['from']} -> {statement['to']}: "
            f"signature {'valid' if valid else 'INVALID'}, "
            f"{'binds these files' if binds else 'DOES NOT BIND THESE FILES'}, "
            f"{len(promotion['approvals'])} approval(s)"
        )
    if not completed:
        say("no completed promotion: nothing has been signed for this version yet")

    bundle = provenance.get("modelSigningBundle")
    p256 = model_key or by_algorithm.get("ECDSA_SHA_256")
    if bundle is None or p256 is None:
        say("no OpenSSF model-signing bundle")
        return ok and bool(completed)
    try:
        verify_bundle(bundle, p256, model_dir)
        say("OpenSSF model-signing bundle verifies against the files")
    except BundleError as error:
        ok = False
        say(f"OpenSSF model-signing bundle FAILS: {error}")
    return ok


def run_verify_model(args: argparse.Namespace) -> int:
    from modelops_cli.client import ModelOpsClient

    api_url = args.api_url or os.environ.get("MODELOPS_API_URL")
    if not api_url:
        print("give --api-url (or MODELOPS_API_URL)", file=sys.stderr)
        return 2
    client = ModelOpsClient(api_url)
    provenance = client.call("GET", f"/models/{args.model_id}/provenance")
    statement_key = (
        public_key_der(Path(args.statement_key).read_text()) if args.statement_key else None
    )
    model_key = public_key_der(Path(args.model_key).read_text()) if args.model_key else None
    with tempfile.TemporaryDirectory(prefix="modelops-verify-") as tmp:
        model_dir = (
            Path(args.dir)
            if args.dir
            else download_model(client, provenance["model"]["artifactId"], Path(tmp) / "model")
        )
        ok = verify_model(provenance, model_dir, print, statement_key, model_key)
    print("model VERIFIED" if ok else "model verification FAILED")
    return 0 if ok else 1


def add_parser(commands: Any) -> None:
    verify = commands.add_parser("verify", help="verify signatures offline").add_subparsers(
        dest="what", required=True
    )
    model = verify.add_parser("model", help="a model version: files, promotions, OpenSSF bundle")
    model.add_argument("model_id")
    model.add_argument("--api-url", help="the API (default: MODELOPS_API_URL)")
    model.add_argument("--dir", help="the model's files, already downloaded (default: download)")
    model.add_argument("--statement-key", help="PEM of the Ed25519 key that signs statements")
    model.add_argument("--model-key", help="PEM of the P-256 key that signs model bundles")
    model.set_defaults(run=run_verify_model)
