"""``modelops verify tombstone``: offline from a saved proof and a pinned key, exit status
0 when every check passes, 1 when the proof was altered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelops.domain.retention import TombstoneProof
from modelops.domain.signing import public_key_pem
from modelops_cli.main import main
from tests.unit.test_retention import World, expired_proof, make_world


@pytest.fixture
def world() -> World:
    return make_world()


def _files(world: World, directory: Path, proof: TombstoneProof) -> tuple[Path, Path]:
    document = {
        "tombstone": proof.tombstone.model_dump(mode="json"),
        "proof": proof.model_dump(mode="json"),
    }
    saved = directory / "tombstone.json"
    saved.write_text(json.dumps(document))
    key = directory / "ledger.pem"
    key.write_text(public_key_pem(world.signer.public_key()))
    return saved, key


def test_verify_tombstone_passes_offline_with_a_saved_proof_and_a_pinned_key(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = expired_proof(world)
    saved, key = _files(world, tmp_path, proof)

    status = main(
        ["verify", "tombstone", proof.tombstone.tombstoneId, "--proof", str(saved),
         "--public-key", str(key)]
    )  # fmt: skip

    assert status == 0
    assert "tombstone VERIFIED" in capsys.readouterr().out


def test_verify_tombstone_fails_when_a_file_digest_was_altered(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proof = expired_proof(world)
    saved, key = _files(world, tmp_path, proof)
    document = json.loads(saved.read_text())
    document["proof"]["tombstone"]["files"][0]["size"] += 1
    saved.write_text(json.dumps(document))

    status = main(
        ["verify", "tombstone", proof.tombstone.tombstoneId, "--proof", str(saved),
         "--public-key", str(key)]
    )  # fmt: skip

    assert status == 1
    out = capsys.readouterr().out
    assert "FAIL digests" in out and "tombstone verification FAILED" in out
