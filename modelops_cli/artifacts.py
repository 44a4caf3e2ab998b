"""``modelops artifact upload|get``: content-addressed uploads through presigned URLs, and
downloads verified against the registered SHA-256 of every file."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import requests

from modelops.domain.manifest import GIT_PATHS
from modelops_cli import cli

Say = Callable[[str], None]


def local_sizes(source: Path) -> dict[str, int]:
    """Relative path -> size of what ``upload_artifact`` sends for ``source``."""
    if source.is_file():
        return {source.name: source.stat().st_size}
    return {
        path.relative_to(source).as_posix(): path.stat().st_size
        for path in sorted(source.rglob("*"))
        if path.is_file()
        and not path.is_symlink()
        and path.relative_to(source).parts[0] not in GIT_PATHS
    }


def upload(
    client: Any,
    source: Path,
    name: str,
    say: Say,
    *,
    part_bytes: int | None = None,
    escrow: bool = False,
) -> dict[str, Any]:
    """Upload ``source`` (a file or a directory) with progress; returns the artifact."""
    sizes = local_sizes(source)
    meter = cli.TransferMeter(say, sizes)
    where = " into escrow" if escrow else ""
    say(f"uploading {len(sizes)} file(s), {cli.human_bytes(meter.total)}, as {name}{where}")
    return dict(
        client.upload_artifact(
            source, name, part_bytes=part_bytes, progress=meter.update, escrow=escrow
        )
    )


class DigestMismatch(Exception):
    pass


def download(client: Any, artifact_id: str, target: Path, say: Say | None = None) -> dict[str, Any]:
    """Download every file of an artifact into ``target`` through its presigned URLs,
    checking each file's SHA-256 and size against the registry; returns the API's answer
    (``artifact`` and ``downloads``). ``DigestMismatch`` names the first file that differs."""
    answer = client.get_artifact(artifact_id, download=True)
    download_files(answer["artifact"]["files"], answer.get("downloads") or {}, target, say)
    return dict(answer)


def download_files(
    registered: Iterable[Mapping[str, Any]],
    urls: Mapping[str, str],
    target: Path,
    say: Say | None = None,
) -> None:
    """Fetch each presigned URL into ``target``/path, checking the bytes against the
    registered size and SHA-256 as they stream; ``DigestMismatch`` names the first file that
    differs (or that the registry does not list)."""
    files: Mapping[str, Mapping[str, Any]] = {f["path"]: f for f in registered}
    sizes = {path: int(entry["size"]) for path, entry in files.items()}
    meter = cli.TransferMeter(say or (lambda _: None), sizes, verb="downloaded")
    for path, url in sorted(urls.items()):
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            with destination.open("wb") as out:
                for block in response.iter_content(64 * 1024):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
                    meter.update(path, len(block))
        expected = files.get(path)
        if expected is None or expected["sha256"] != digest.hexdigest() or expected["size"] != size:
            registered_as = (
                f"{expected['size']} bytes with sha256 {expected['sha256']}"
                if expected
                else "no such file"
            )
            raise DigestMismatch(
                f"{path}: got {size} bytes with sha256 {digest.hexdigest()}, "
                f"the registry has {registered_as}"
            )
        if size == 0:
            meter.update(path, 0)


def _artifact_view(answer: Mapping[str, Any]) -> str:
    artifact = answer.get("artifact", answer)
    lines = [cli.render_record(artifact, skip=("files",))]
    lines.append("files:")
    lines.append(cli.render_table(list(artifact.get("files", [])), ["path", "size", "sha256"]))
    if answer.get("downloaded"):
        lines.append(f"downloaded to {answer['downloaded']} (every SHA-256 verified)")
    return "\n".join(lines)


def _run_upload(args: argparse.Namespace) -> int:
    source = Path(args.path)
    if not source.exists():
        raise cli.CliError(cli.EXIT_USAGE, "USAGE", f"{source} does not exist")
    client = cli.make_client(args)
    artifact = upload(
        client,
        source,
        args.name,
        cli.progress_for(args),
        part_bytes=args.part_bytes,
        escrow=args.escrow,
    )
    cli.emit(args, {"artifact": artifact}, _artifact_view)
    return cli.EXIT_OK


def _run_get(args: argparse.Namespace) -> int:
    client = cli.make_client(args)
    if not args.download:
        cli.emit(args, client.get_artifact(args.artifact_id), _artifact_view)
        return cli.EXIT_OK
    target = Path(args.download)
    try:
        answer = download(client, args.artifact_id, target, cli.progress_for(args))
    except DigestMismatch as error:
        raise cli.CliError(cli.EXIT_ERROR, "DIGEST_MISMATCH", str(error)) from error
    if args.output == "json":
        cli.emit(args, answer)
    else:
        cli.emit(args, {**answer, "downloaded": str(target)}, _artifact_view)
    return cli.EXIT_OK


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    artifact = commands.add_parser("artifact", help="artifacts (files with digests)")
    actions = artifact.add_subparsers(dest="action", required=True)
    up = actions.add_parser(
        "upload", parents=[common], help="upload a file or a directory (verified by SHA-256)"
    )
    up.add_argument("path", help="a file or a directory")
    up.add_argument("--name", required=True, help="the artifact's name")
    up.add_argument("--escrow", action="store_true", help="raw personal data: into escrow")
    up.add_argument("--part-bytes", type=int, help="multipart part size (>= 5 MiB)")
    up.set_defaults(run=_run_upload)
    get = actions.add_parser("get", parents=[common], help="an artifact; --download fetches it")
    get.add_argument("artifact_id")
    get.add_argument("--download", metavar="DIR", help="download here, verifying each SHA-256")
    get.set_defaults(run=_run_get)
