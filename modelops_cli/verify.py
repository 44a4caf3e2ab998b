"""``modelops verify model <id>``: check a model version offline, from public keys alone.

Downloads (or reads) the model's files, then checks: the files' root digest is the
registered one; every completed promotion's statement names that digest and carries a valid
Ed25519 signature by the statement key; the OpenSSF model-signing bundle verifies against
the files with the P-256 key (the same check as ``model_signing verify key``). Keys come from
``--statement-key``/``--model-key`` PEM files when given (pin them), else from the API; the
provenance from ``--provenance`` (a saved ``GET /models/{id}/provenance``) when given. With
``--provenance``, ``--dir`` and both keys, nothing touches the network.
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelops.domain.manifest import Manifest
from modelops.domain.openssf import BundleError, verify_bundle
from modelops.domain.signing import ManifestSignature, public_key_der, verify_statement

Say = Callable[[str], None]


def download_model(client: Any, artifact_id: str, target: Path) -> Path:
    """Download the model's files (each checked against its registered SHA-256)."""
    from modelops_cli.artifacts import download

    download(client, artifact_id, target)
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


def pinned_keys(args: argparse.Namespace) -> tuple[bytes | None, bytes | None]:
    """The DER of ``--statement-key`` and ``--model-key`` (PEM files), None where not given."""
    from modelops_cli import cli

    def read(path: str | None) -> bytes | None:
        return public_key_der(Path(path).read_text()) if path else None

    try:
        return read(args.statement_key), read(args.model_key)
    except (OSError, ValueError) as error:
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"a key file: {error}") from error


def run_verify_model(args: argparse.Namespace) -> int:
    from modelops_cli import cli
    from modelops_cli.artifacts import DigestMismatch

    statement_key, model_key = pinned_keys(args)
    client = None
    if args.provenance:  # with --dir and both keys, nothing is asked of the API
        try:
            provenance = json.loads(Path(args.provenance).read_text())
        except (OSError, ValueError) as error:
            raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"--provenance: {error}") from error
    else:
        client = cli.make_client(args)
        provenance = client.call("GET", f"/models/{args.model_id}/provenance")
    lines: list[str] = []
    say: Say = lines.append if args.output == "json" else print
    with tempfile.TemporaryDirectory(prefix="modelops-verify-") as tmp:
        try:
            model_dir = (
                Path(args.dir)
                if args.dir
                else download_model(
                    client or cli.make_client(args),
                    provenance["model"]["artifactId"],
                    Path(tmp) / "model",
                )
            )
        except DigestMismatch as error:
            raise cli.CliError(cli.EXIT_ERROR, "DIGEST_MISMATCH", str(error)) from error
        ok = verify_model(provenance, model_dir, say, statement_key, model_key)
    if args.output == "json":
        cli.emit(args, {"modelId": args.model_id, "verified": ok, "checks": lines})
    else:
        print("model VERIFIED" if ok else "model verification FAILED")
    return cli.EXIT_OK if ok else cli.EXIT_ERROR


def verify_tombstone_proof(
    document: dict[str, Any], public_keys: Mapping[str, bytes] | bytes, say: Say
) -> bool:
    """Check a saved ``GET /retention/tombstones/{id}`` from the public keys alone (a
    pinned DER key, or key id -> DER); every check is reported; True when all pass. The
    expired objects are not needed: the proof is about what they were."""
    from modelops.domain.retention import TombstoneProof, verify_tombstone

    if document.get("proof") is None:
        say("no signed checkpoint covers this tombstone yet: nothing to verify")
        return False
    proof = TombstoneProof.model_validate(document["proof"])
    if isinstance(public_keys, bytes):
        public_keys = {proof.checkpoint.keyId: public_keys}
    checks = verify_tombstone(proof, public_keys)
    for check in checks:
        say(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.message}")
    return all(check.ok for check in checks)


def run_verify_tombstone(args: argparse.Namespace) -> int:
    from modelops_cli import cli
    from modelops_cli.audit import fetch_public_keys

    try:
        pinned = public_key_der(Path(args.public_key).read_text()) if args.public_key else None
        document = json.loads(Path(args.proof).read_text()) if args.proof else None
    except (OSError, ValueError) as error:
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"a key or proof file: {error}") from error
    client = cli.make_client(args) if document is None or pinned is None else None
    if document is None:
        assert client is not None
        document = client.call("GET", f"/retention/tombstones/{args.tombstone_id}")
    keys: Mapping[str, bytes] | bytes
    if pinned is not None:
        keys = pinned
    else:
        assert client is not None
        keys = fetch_public_keys(client)
    lines: list[str] = []
    say: Say = lines.append if args.output == "json" else print
    ok = verify_tombstone_proof(document, keys, say)
    if args.output == "json":
        cli.emit(args, {"tombstoneId": args.tombstone_id, "verified": ok, "checks": lines})
    else:
        print("tombstone VERIFIED" if ok else "tombstone verification FAILED")
    return cli.EXIT_OK if ok else cli.EXIT_ERROR


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    verify = commands.add_parser("verify", help="verify signatures offline").add_subparsers(
        dest="what", required=True
    )
    model = verify.add_parser(
        "model", parents=[common], help="a model version: files, promotions, OpenSSF bundle"
    )
    model.add_argument("model_id")
    model.add_argument("--dir", help="the model's files, already downloaded (default: download)")
    model.add_argument("--statement-key", help="PEM of the Ed25519 key that signs statements")
    model.add_argument("--model-key", help="PEM of the P-256 key that signs model bundles")
    model.add_argument(
        "--provenance",
        help="GET /models/{id}/provenance saved as JSON (default: fetch it); with --dir and "
        "both keys, verification needs no network at all",
    )
    model.set_defaults(run=run_verify_model)
    tombstone = verify.add_parser(
        "tombstone",
        parents=[common],
        help="an expired object's tombstone: ledger record, Merkle inclusion, signed checkpoint",
    )
    tombstone.add_argument("tombstone_id")
    tombstone.add_argument(
        "--proof",
        help="GET /retention/tombstones/{id} saved as JSON (default: fetch it); with "
        "--public-key, verification needs no network at all",
    )
    tombstone.add_argument(
        "--public-key", help="PEM of the Ed25519 checkpoint key (default: GET /audit/keys)"
    )
    tombstone.set_defaults(run=run_verify_tombstone)
    from modelops_cli.package import run_verify_package

    package = verify.add_parser(
        "package",
        parents=[common],
        help="what an agent runtime checks before loading a model: GET /models/{id}/package, "
        "files against their digests, signatures, and the stage",
    )
    package.add_argument("model_id")
    package.add_argument("--dir", help="where to download the files (default: a temporary one)")
    package.add_argument(
        "--require-stage",
        choices=("staging", "prod"),
        help="refuse unless the version is at this stage by a signed promotion",
    )
    package.add_argument("--statement-key", help="PEM of the Ed25519 key that signs statements")
    package.add_argument("--model-key", help="PEM of the P-256 key that signs model bundles")
    package.set_defaults(run=run_verify_package)
