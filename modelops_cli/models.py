"""``modelops model ...``: register, read, list, trace, promote and approve model versions."""

from __future__ import annotations

import argparse
import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelops.domain.ids import approver_key_id
from modelops.domain.signing import fingerprint
from modelops_cli import cli
from modelops_cli.datasets import lineage_view

LIST_COLUMNS = ["modelId", "family", "version", "status", "createdBy", "createdAt"]


def approval(private_key_pem: bytes, statement: str) -> dict[str, str]:
    """The body of ``POST /models/{id}/promotions/{pid}/approve``: the approver's Ed25519
    signature over the promotion statement's bytes, and the id the platform gave the key
    when it was registered (derived from the public key's fingerprint)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_private_key,
    )

    private = load_pem_private_key(private_key_pem, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError("an approver key is an Ed25519 private key (PEM, PKCS#8)")
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return {
        "keyId": approver_key_id(fingerprint(der)),
        "signature": base64.b64encode(private.sign(statement.encode())).decode(),
    }


def _metrics(items: list[str]) -> dict[str, float]:
    metrics = {}
    for key, value in cli.key_values(items, "--metric").items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise cli.CliError(
                cli.EXIT_USAGE, "USAGE", f"--metric {key}={value}: the value is not a number"
            ) from None
    return metrics


def _run_register(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "family": args.family,
        "version": args.version,
        "artifactId": args.artifact,
        "codeRef": args.code_ref,
        "metrics": _metrics(args.metric),
        "lineage": {"datasets": args.dataset, "parentModels": args.parent},
        "description": args.description,
    }
    answer = cli.make_client(args).call("POST", "/models/register", body)
    created = {"created": answer.get("created")}
    cli.emit(args, answer, lambda a: cli.render_record({**a["model"], **created}))
    return cli.EXIT_OK


def _detail_view(detail: Mapping[str, Any]) -> str:
    model = detail.get("model", detail)
    parts = [cli.render_record(model)]
    if detail.get("promotions") is not None:
        parts.append("promotions:")
        columns = ["promotionId", "fromStage", "toStage", "status", "requestedAt"]
        parts.append(cli.render_table(list(detail["promotions"]), columns))
    if detail.get("lineage"):
        parts.append("lineage:")
        parts.append(lineage_view(detail["lineage"]))
    if detail.get("effectiveRestrictions"):
        parts.append("effective restrictions:")
        parts.append(cli.render_record(detail["effectiveRestrictions"]))
    if detail.get("watermark"):
        parts.append("watermark:")
        parts.append(cli.render_record(detail["watermark"]))
    return "\n".join(parts)


def _run_get(args: argparse.Namespace) -> int:
    cli.emit(args, cli.make_client(args).get_model(args.model_id), _detail_view)
    return cli.EXIT_OK


def _run_list(args: argparse.Namespace) -> int:
    items = list(cli.make_client(args).iter_models(family=args.family, status=args.status))
    cli.emit(args, {"items": items}, lambda d: cli.render_table(d["items"], LIST_COLUMNS))
    return cli.EXIT_OK


def _run_lineage(args: argparse.Namespace) -> int:
    answer = cli.make_client(args).model_lineage(args.model_id, openlineage=args.openlineage)
    cli.emit(args, answer, None if args.openlineage else lineage_view)
    return cli.EXIT_OK


def _run_provenance(args: argparse.Namespace) -> int:
    answer = cli.make_client(args).call("GET", f"/models/{args.model_id}/provenance")
    cli.emit(args, answer)
    return cli.EXIT_OK


def verify_watermark(client: Any, model_id: str, artifact: str) -> dict[str, Any]:
    """``POST /models/{id}/watermark/verify`` of ``artifact``: an artifact id, or a local
    model.json / model.tar.gz (or a directory) that is uploaded first."""
    source = Path(artifact)
    if source.exists():
        artifact = client.upload_artifact(source, "watermark-suspect")["artifactId"]
    body = {"artifactId": artifact}
    return dict(client.call("POST", f"/models/{model_id}/watermark/verify", body))


def watermark_view(answer: Mapping[str, Any]) -> str:
    """Matched or not, from which version, and the score against the threshold."""
    source = answer.get("source")
    verdict = (
        f"matched: {source['family']} {source['version']} ({source['modelId']})"
        if source
        else f"not matched by any of {answer['comparedVersions']} watermarked versions of "
        f"{answer['family']}"
    )
    return "\n".join(
        [
            verdict,
            f"best score {answer['matchedBits']}/{answer['totalBits']} bits "
            f"(threshold {answer['threshold']}, P[chance] {answer['falseMatchProbability']:.3g})",
            cli.render_table(
                list(answer["candidates"]),
                ["modelId", "version", "matchedBits", "totalBits", "threshold", "matched"],
            ),
        ]
    )


def _run_watermark_verify(args: argparse.Namespace) -> int:
    answer = verify_watermark(cli.make_client(args), args.model_id, args.artifact)
    cli.emit(args, answer, watermark_view)
    return cli.EXIT_OK if answer["matched"] else cli.EXIT_ERROR


def promotion_view(answer: Mapping[str, Any]) -> str:
    """The model's stage, the promotion and its gates; says so when approvals are pending."""
    model, promotion = answer["model"], answer.get("promotion")
    lines = [f"model {model['modelId']} ({model['family']} {model['version']}): {model['status']}"]
    if promotion is None:
        return "\n".join(lines)
    lines.append(
        f"promotion {promotion['promotionId']} {promotion['fromStage']} -> "
        f"{promotion['toStage']}: {promotion['status']}"
    )
    lines.append(cli.render_table(list(promotion.get("gates", [])), ["gate", "passed", "message"]))
    if promotion["status"] == "PENDING_APPROVAL":
        done = len(promotion.get("approvals", []))
        lines.append(
            f"pending: {done} of {promotion['approvalsRequired']} approvals; each approver runs "
            f"`modelops model approve {model['modelId']} {promotion['promotionId']} "
            "--key APPROVER.pem`"
        )
    elif promotion.get("signature"):
        lines.append(f"signed by {promotion['signature']['keyId']}")
    return "\n".join(lines)


def _run_promote(args: argparse.Namespace) -> int:
    body = {"targetStage": args.to, "reason": args.reason}
    answer = cli.make_client(args).call("POST", f"/models/{args.model_id}/promote", body)
    cli.emit(args, answer, promotion_view)
    return cli.EXIT_OK


def _run_approve(args: argparse.Namespace) -> int:
    try:
        pem = Path(args.key).read_bytes()
    except OSError as error:
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"cannot read {args.key}: {error}") from error
    client = cli.make_client(args)
    path = f"/models/{args.model_id}/promotions/{args.promotion_id}"
    promotion = client.call("GET", path)
    try:
        body = approval(pem, promotion["statement"])
    except (ValueError, TypeError) as error:
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"{args.key}: {error}") from error
    if args.key_id:
        body["keyId"] = args.key_id
    answer = client.call("POST", f"{path}/approve", body)
    cli.emit(args, answer, promotion_view)
    return cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    model = commands.add_parser("model", help="model versions: registry, lineage, promotion")
    actions = model.add_subparsers(dest="action", required=True)

    new = actions.add_parser("register", parents=[common], help="register a model version")
    new.add_argument("--family", required=True)
    new.add_argument("--version", required=True, help="semantic version, e.g. 1.2.0")
    new.add_argument("--artifact", required=True, help="artifact id (art-...)")
    new.add_argument("--code-ref", required=True, help="the code that trained it")
    new.add_argument(
        "--metric", action="append", default=[], metavar="K=V", help="a metric (repeat)"
    )
    new.add_argument(
        "--dataset", action="append", default=[], metavar="ID", help="trained on (repeat)"
    )
    new.add_argument(
        "--parent", action="append", default=[], metavar="ID", help="parent model (repeat)"
    )
    new.add_argument("--description", default="")
    new.set_defaults(run=_run_register)

    get = actions.add_parser("get", parents=[common], help="a model version with its lineage")
    get.add_argument("model_id")
    get.set_defaults(run=_run_get)

    listing = actions.add_parser("list", parents=[common], help="model versions")
    listing.add_argument("--family")
    listing.add_argument("--status", choices=["draft", "staging", "prod", "deprecated"])
    listing.set_defaults(run=_run_list)

    lineage = actions.add_parser("lineage", parents=[common], help="a model's lineage graph")
    lineage.add_argument("model_id")
    lineage.add_argument("--openlineage", action="store_true", help="as OpenLineage RunEvents")
    lineage.set_defaults(run=_run_lineage)

    provenance = actions.add_parser(
        "provenance", parents=[common], help="signed provenance: promotions, bundle, keys"
    )
    provenance.add_argument("model_id")
    provenance.set_defaults(run=_run_provenance)

    promote = actions.add_parser(
        "promote", parents=[common], help="move a version to staging or prod (gated, signed)"
    )
    promote.add_argument("model_id")
    promote.add_argument("--to", required=True, choices=["staging", "prod", "draft", "deprecated"])
    promote.add_argument("--reason", default="")
    promote.set_defaults(run=_run_promote)

    approve = actions.add_parser(
        "approve",
        parents=[common],
        help="approve a pending promotion with your Ed25519 key",
        description="Signs the promotion's statement with the approver's Ed25519 private key "
        "(PEM); the key id is derived from its public key, as when it was registered.",
    )
    approve.add_argument("model_id")
    approve.add_argument("promotion_id")
    approve.add_argument("--key", required=True, metavar="PEM_FILE", help="Ed25519 private key")
    approve.add_argument("--key-id", help="the registered key id (default: from the key)")
    approve.set_defaults(run=_run_approve)

    watermark = actions.add_parser("watermark", help="model watermarks (docs/watermarking.md)")
    watermark_actions = watermark.add_subparsers(dest="watermark_action", required=True)
    verify = watermark_actions.add_parser(
        "verify",
        parents=[common],
        help="which watermarked version of the model's family a suspect model came from",
        description="Exit code 0 when the suspect matches a version, 1 when it matches none.",
    )
    verify.add_argument("model_id")
    verify.add_argument(
        "--artifact",
        required=True,
        help="the suspect: an artifact id (art-...) or a local model.json/model.tar.gz",
    )
    verify.set_defaults(run=_run_watermark_verify)
