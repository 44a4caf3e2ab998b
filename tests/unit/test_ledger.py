from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelops.domain.digests import canonical_json
from modelops.domain.ledger import (
    GENESIS,
    AuditEvent,
    Checkpoint,
    LedgerProblem,
    LedgerRecord,
    Outcome,
    ProblemKind,
    checkpoint_digest,
    checkpoint_statement,
    inclusion_proof,
    leaf_hash,
    make_checkpoint,
    merkle_root,
    record_hash,
    seal,
    verify_inclusion,
    verify_ledger,
)

KEY_ID = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
PRINCIPAL = "arn:aws:sts::123456789012:assumed-role/ml-engineer/alice"
START = datetime(2025, 3, 1, tzinfo=UTC)
EVERY = 100
COUNT = 350  # checkpoints after 100, 200 and 300; 50 uncheckpointed


def _event(n: int, **changes: object) -> AuditEvent:
    fields: dict[str, object] = {
        "stream": "registry",
        "eventId": f"evt-{n}",
        "time": START + timedelta(seconds=n),
        "principal": PRINCIPAL,
        "action": "models.register",
        "resources": (f"mdl-{n:024x}",),
        "requestId": f"req-{n}",
        "correlationId": f"corr-{n}",
        "outcome": Outcome.SUCCEEDED,
        "status": 201,
        "inputDigest": hashlib.sha256(str(n).encode()).hexdigest(),
        "details": {"family": "fraud-detector", "version": f"1.0.{n}"},
    }
    return AuditEvent.model_validate({**fields, **changes})


def _der(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _chain(events: Sequence[AuditEvent]) -> list[LedgerRecord]:
    records: list[LedgerRecord] = []
    for event in events:
        records.append(seal(event, records[-1] if records else None))
    return records


def _checkpoints(
    records: Sequence[LedgerRecord], key: Ed25519PrivateKey, key_id: str = KEY_ID
) -> list[Checkpoint]:
    checkpoints: list[Checkpoint] = []
    for end in range(EVERY, len(records) + 1, EVERY):
        previous = checkpoints[-1] if checkpoints else None
        checkpoints.append(
            make_checkpoint(records[end - EVERY : end], previous, key_id, key.sign, START)
        )
    return checkpoints


@dataclass(frozen=True)
class Ledger:
    records: list[LedgerRecord]
    checkpoints: list[Checkpoint]
    key: Ed25519PrivateKey
    keys: dict[str, bytes]

    def problem(
        self,
        records: Sequence[LedgerRecord] | None = None,
        checkpoints: Sequence[Checkpoint] | None = None,
    ) -> LedgerProblem:
        report = verify_ledger(
            self.records if records is None else records,
            self.checkpoints if checkpoints is None else checkpoints,
            self.keys,
        )
        assert not report.ok
        assert report.problem is not None
        return report.problem


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    key = Ed25519PrivateKey.generate()
    records = _chain([_event(n) for n in range(1, COUNT + 1)])
    return Ledger(records, _checkpoints(records, key), key, {KEY_ID: _der(key)})


def _edited_body(record: LedgerRecord) -> str:
    envelope = json.loads(record.body)
    envelope["event"]["outcome"] = "REJECTED"
    return canonical_json(envelope).decode()


# --- Sealing and records ---------------------------------------------------------------------


def test_seal_starts_a_stream_at_seq_1_after_64_zeros() -> None:
    record = seal(_event(1), None)
    assert (record.stream, record.seq, record.prevHash) == ("registry", 1, "0" * 64)
    assert record.hash == record_hash(GENESIS, record.body)


def test_seal_chains_each_record_on_the_previous_hash() -> None:
    first, second, third = _chain([_event(1), _event(2), _event(3)])
    assert [second.seq, third.seq] == [2, 3]
    assert (second.prevHash, third.prevHash) == (first.hash, second.hash)
    assert len({first.hash, second.hash, third.hash}) == 3


def test_record_hash_is_the_rfc6962_leaf_hash_of_prev_hash_and_body() -> None:
    first, second = _chain([_event(1), _event(2)])
    data = bytes.fromhex(first.hash) + second.body.encode()
    assert second.hash == hashlib.sha256(b"\x00" + data).hexdigest() == leaf_hash(data).hex()


def test_body_is_canonical_json_of_the_event_with_its_seq_and_stream() -> None:
    event = _event(7, details={"z": "last", "a": "first"})
    record = _chain([_event(1), event])[1]
    envelope = json.loads(record.body)
    assert envelope == {
        "event": event.model_dump(mode="json", exclude={"stream"}),
        "seq": 2,
        "stream": "registry",
    }
    assert canonical_json(envelope).decode() == record.body
    assert record.body.endswith(',"seq":2,"stream":"registry"}')


def test_record_event_returns_the_sealed_event() -> None:
    event = _event(3, outcome=Outcome.REJECTED, status=409, reason="VERSION_CONFLICT")
    assert seal(event, None).event() == event


def test_seal_refuses_an_event_of_another_stream_than_the_previous_record() -> None:
    with pytest.raises(ValueError, match="stream"):
        seal(_event(2, stream="promotions"), seal(_event(1), None))


def test_record_round_trips_through_a_json_line() -> None:
    record = _chain([_event(1), _event(2, details={"note": 'naïve "quoted"\nline'})])[1]
    line = record.to_line()
    assert "\n" not in line
    assert LedgerRecord.from_line(line) == record
    assert LedgerRecord.from_line(line + "\n") == record
    assert json.loads(line)["body"] == record.body


def test_audit_event_times_are_utc_and_naive_times_are_refused() -> None:
    paris = timezone(timedelta(hours=2))
    event = _event(1, time=datetime(2025, 3, 1, 14, 0, tzinfo=paris))
    assert event.time == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert event.model_dump(mode="json")["time"] == "2025-03-01T12:00:00Z"
    with pytest.raises(ValidationError):
        _event(1, time=datetime(2025, 3, 1))


@pytest.mark.parametrize(
    "changes",
    [
        {"principal": "alice"},
        {"principal": "arn:aws:iam::1:user/alice"},
        {"action": "Register"},
        {"outcome": "DONE"},
        {"status": 42},
        {"inputDigest": "abc"},
        {"stream": "Registry"},
        {"resources": ("",)},
        {"unknown": "field"},
    ],
)
def test_audit_event_refuses_malformed_fields(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _event(1, **changes)


# --- Merkle trees ----------------------------------------------------------------------------


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(f"leaf {n}".encode()) for n in range(count)]


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _rfc6962_root(leaves: Sequence[bytes]) -> bytes:
    """MTH as RFC 6962 defines it: split at the largest power of two below n."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return _node(_rfc6962_root(leaves[:split]), _rfc6962_root(leaves[split:]))


def test_merkle_root_matches_hand_computed_trees_of_1_2_3_5_leaves() -> None:
    a, b, c, d, e = _leaves(5)
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == _node(a, b)
    assert merkle_root([a, b, c]) == _node(_node(a, b), c)
    assert merkle_root([a, b, c, d, e]) == _node(_node(_node(a, b), _node(c, d)), e)


def test_merkle_root_of_no_leaves_is_the_hash_of_the_empty_string() -> None:
    assert merkle_root([]) == hashlib.sha256(b"").digest()


@given(st.integers(min_value=1, max_value=300))
def test_merkle_root_agrees_with_the_rfc6962_recursive_definition(count: int) -> None:
    leaves = _leaves(count)
    assert merkle_root(leaves) == _rfc6962_root(leaves)


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = _leaves(2)
    assert leaf_hash(b"\x01" + a + b) != _node(a, b)
    assert merkle_root([leaf_hash(a + b)]) != merkle_root([a, b])


@pytest.mark.parametrize("size", range(1, 18))
def test_inclusion_proofs_verify_for_every_leaf_of_trees_of_1_to_17_leaves(size: int) -> None:
    leaves = _leaves(size)
    root = merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, index)
        assert verify_inclusion(leaf, index, size, proof, root), (size, index)
        assert len(proof) <= max(1, (size - 1).bit_length())


@pytest.mark.parametrize("size", [2, 5, 11, 16, 17])
def test_inclusion_proofs_fail_with_a_wrong_leaf_index_root_or_path(size: int) -> None:
    leaves = _leaves(size)
    root = merkle_root(leaves)
    other = leaf_hash(b"not in the tree")
    for index, leaf in enumerate(leaves):
        proof = inclusion_proof(leaves, index)
        assert not verify_inclusion(other, index, size, proof, root)
        assert not verify_inclusion(leaf, index, size, proof, other)
        assert not verify_inclusion(leaf, (index + 1) % size, size, proof, root)
        assert not verify_inclusion(leaf, index, size, [*proof, other], root)
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
        for position in range(len(proof)):
            forged = [*proof[:position], other, *proof[position + 1 :]]
            assert not verify_inclusion(leaf, index, size, forged, root)
        assert not verify_inclusion(leaf, size, size, proof, root)
        assert not verify_inclusion(leaf, -1, size, proof, root)


def test_inclusion_proof_refuses_an_index_outside_the_tree() -> None:
    with pytest.raises(IndexError):
        inclusion_proof(_leaves(3), 3)


def test_a_record_is_proven_in_its_checkpoint_by_its_hash(ledger: Ledger) -> None:
    checkpoint = ledger.checkpoints[1]
    covered = [bytes.fromhex(r.hash) for r in ledger.records[100:200]]
    record = ledger.records[141]
    proof = inclusion_proof(covered, record.seq - checkpoint.fromSeq)
    root = bytes.fromhex(checkpoint.merkleRoot)
    assert verify_inclusion(bytes.fromhex(record.hash), 41, checkpoint.size, proof, root)


# --- Checkpoints -----------------------------------------------------------------------------


def test_make_checkpoint_signs_the_statement_of_the_range_after_the_previous(
    ledger: Ledger,
) -> None:
    first, second = ledger.checkpoints[:2]
    assert (first.fromSeq, first.toSeq, first.size) == (1, 100, 100)
    assert (second.fromSeq, second.toSeq, second.size) == (101, 200, 100)
    assert first.previousCheckpoint == GENESIS
    assert second.previousCheckpoint == checkpoint_digest(first)
    assert second.lastHash == ledger.records[199].hash
    covered = [bytes.fromhex(r.hash) for r in ledger.records[100:200]]
    assert second.merkleRoot == merkle_root(covered).hex()
    assert (second.algorithm, second.keyId) == ("ED25519_SHA_512", KEY_ID)
    signature = base64.b64decode(second.signature)
    ledger.key.public_key().verify(signature, checkpoint_statement(second))


def test_checkpoint_statement_is_canonical_json_of_every_field_but_the_signature(
    ledger: Ledger,
) -> None:
    checkpoint = ledger.checkpoints[0]
    statement = checkpoint_statement(checkpoint)
    expected = checkpoint.model_dump(mode="json", exclude={"signature"})
    assert json.loads(statement) == expected
    assert statement == canonical_json(expected)
    assert expected["statementType"] == "modelops.audit.checkpoint/v1"
    assert len(statement) <= 4096


def test_checkpoint_statement_refuses_more_than_4096_bytes(ledger: Ledger) -> None:
    oversized = Checkpoint.model_construct(**{**dict(ledger.checkpoints[0]), "keyId": "k" * 4096})
    with pytest.raises(ValueError, match="4096"):
        checkpoint_statement(oversized)


def test_make_checkpoint_refuses_empty_broken_or_misplaced_ranges(ledger: Ledger) -> None:
    records, key = ledger.records, ledger.key
    with pytest.raises(ValueError, match="at least one"):
        make_checkpoint([], None, KEY_ID, key.sign, START)
    with pytest.raises(ValueError, match="broken chain"):
        make_checkpoint(records[1:100], None, KEY_ID, key.sign, START)
    with pytest.raises(ValueError, match="broken chain"):
        make_checkpoint(records[100:200], ledger.checkpoints[1], KEY_ID, key.sign, START)
    edited = records[40].model_copy(update={"body": _edited_body(records[40])})
    with pytest.raises(ValueError, match="broken chain"):
        make_checkpoint([*records[:40], edited], None, KEY_ID, key.sign, START)


def test_make_checkpoint_refuses_a_signature_that_is_not_64_bytes(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        make_checkpoint(ledger.records[:10], None, KEY_ID, lambda _: b"short", START)


# --- Verification: an intact ledger ----------------------------------------------------------


def test_an_intact_ledger_verifies_and_counts_records_after_the_last_checkpoint(
    ledger: Ledger,
) -> None:
    report = verify_ledger(iter(ledger.records), ledger.checkpoints, ledger.keys)
    assert report.ok and report.problem is None
    assert report.streams == ("registry",)
    assert (report.recordsChecked, report.checkpointsChecked, report.uncheckpointed) == (
        350,
        3,
        50,
    )


def test_an_empty_ledger_verifies() -> None:
    report = verify_ledger([], [], {})
    assert report.ok and (report.streams, report.recordsChecked) == ((), 0)


def test_streams_are_verified_separately_when_their_records_are_mixed(ledger: Ledger) -> None:
    promotions = _chain([_event(n, stream="promotions") for n in range(1, 151)])
    promotion_checkpoints = _checkpoints(promotions, ledger.key)
    mixed = [r for pair in zip(ledger.records, promotions, strict=False) for r in pair]
    mixed += ledger.records[len(promotions) :]
    checkpoints = [*promotion_checkpoints, *ledger.checkpoints]
    report = verify_ledger(mixed, checkpoints, ledger.keys)
    assert report.ok
    assert report.streams == ("registry", "promotions")
    assert (report.recordsChecked, report.checkpointsChecked, report.uncheckpointed) == (
        500,
        4,
        100,
    )
    tampered = [*promotions[:120], promotions[120].model_copy(update={"hash": GENESIS})]
    problem = ledger.problem([*ledger.records, *tampered], checkpoints)
    assert (problem.kind, problem.stream, problem.seq) == (
        ProblemKind.HASH_MISMATCH,
        "promotions",
        121,
    )


# --- Verification: every tamper is detected at its place -------------------------------------


def test_editing_a_body_field_is_a_hash_mismatch_at_that_record(ledger: Ledger) -> None:
    records = list(ledger.records)
    records[149] = records[149].model_copy(update={"body": _edited_body(records[149])})
    report = verify_ledger(records, ledger.checkpoints, ledger.keys)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.HASH_MISMATCH, 150)
    assert report.recordsChecked == 149
    assert report.checkpointsChecked == 1


def test_editing_a_body_and_recomputing_its_hash_breaks_the_link_of_the_next_record(
    ledger: Ledger,
) -> None:
    records = list(ledger.records)
    body = _edited_body(records[149])
    records[149] = records[149].model_copy(
        update={"body": body, "hash": record_hash(records[149].prevHash, body)}
    )
    problem = ledger.problem(records)
    assert (problem.kind, problem.seq) == (ProblemKind.PREV_HASH_MISMATCH, 151)


def test_editing_a_body_and_resealing_every_later_record_breaks_the_checkpoint_root(
    ledger: Ledger,
) -> None:
    records = list(ledger.records)
    records[149] = seal(_event(150, outcome=Outcome.REJECTED, status=403), records[148])
    for index in range(150, len(records)):
        records[index] = seal(records[index].event(), records[index - 1])
    problem = ledger.problem(records)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_ROOT_MISMATCH, 1)


def test_editing_only_a_stored_hash_is_a_hash_mismatch(ledger: Ledger) -> None:
    records = list(ledger.records)
    records[9] = records[9].model_copy(update={"hash": "f" * 64})
    problem = ledger.problem(records)
    assert (problem.kind, problem.seq) == (ProblemKind.HASH_MISMATCH, 10)


def test_deleting_a_record_is_a_seq_gap_naming_the_missing_seq(ledger: Ledger) -> None:
    records = [r for r in ledger.records if r.seq != 150]
    problem = ledger.problem(records)
    assert (problem.kind, problem.seq) == (ProblemKind.SEQ_GAP, 150)


def test_deleting_checkpointed_records_at_the_end_leaves_a_checkpoint_without_records(
    ledger: Ledger,
) -> None:
    problem = ledger.problem(ledger.records[:250])
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_RECORDS_MISSING, 2)


def test_deleting_every_record_of_a_checkpointed_stream_is_detected(ledger: Ledger) -> None:
    promotions = _chain([_event(n, stream="promotions") for n in range(1, 101)])
    checkpoints = [*ledger.checkpoints, *_checkpoints(promotions, ledger.key)]
    problem = ledger.problem(ledger.records, checkpoints)
    assert (problem.kind, problem.stream, problem.checkpoint) == (
        ProblemKind.CHECKPOINT_RECORDS_MISSING,
        "promotions",
        0,
    )


def test_deleting_records_after_the_last_checkpoint_only_lowers_uncheckpointed(
    ledger: Ledger,
) -> None:
    # The limit of any hash chain: its unsigned tail can be cut. Checkpoint often.
    report = verify_ledger(ledger.records[:320], ledger.checkpoints, ledger.keys)
    assert report.ok and report.uncheckpointed == 20


def test_inserting_a_record_is_a_duplicate_seq(ledger: Ledger) -> None:
    records = list(ledger.records)
    records.insert(149, seal(_event(999), records[148]))
    problem = ledger.problem(records)
    assert (problem.kind, problem.seq) == (ProblemKind.SEQ_DUPLICATE, 150)


def test_inserting_a_record_and_renumbering_the_rest_breaks_the_link(ledger: Ledger) -> None:
    records = list(ledger.records)
    later = [r.model_copy(update={"seq": r.seq + 1}) for r in records[149:]]
    records[149:] = [seal(_event(999), records[148]), *later]
    problem = ledger.problem(records)
    assert (problem.kind, problem.seq) == (ProblemKind.PREV_HASH_MISMATCH, 151)


def test_reordering_two_records_is_a_seq_order_problem(ledger: Ledger) -> None:
    records = list(ledger.records)
    records[149], records[152] = records[152], records[149]
    problem = ledger.problem(records)
    assert (problem.kind, problem.seq) == (ProblemKind.SEQ_ORDER, 150)


def test_reordering_two_records_and_swapping_their_seqs_breaks_the_link(ledger: Ledger) -> None:
    records = list(ledger.records)
    first, second = records[149], records[150]
    records[149] = second.model_copy(update={"seq": 150})
    records[150] = first.model_copy(update={"seq": 151})
    problem = ledger.problem(records)
    assert (problem.kind, problem.seq) == (ProblemKind.PREV_HASH_MISMATCH, 150)


def test_a_body_replayed_at_another_seq_is_a_position_mismatch(ledger: Ledger) -> None:
    last, replayed = ledger.records[-1], ledger.records[9].body
    forged = LedgerRecord(
        stream="registry",
        seq=last.seq + 1,
        prevHash=last.hash,
        hash=record_hash(last.hash, replayed),
        body=replayed,
    )
    problem = ledger.problem([*ledger.records, forged])
    assert (problem.kind, problem.seq) == (ProblemKind.BODY_POSITION_MISMATCH, 351)


def test_records_moved_to_another_stream_are_a_position_mismatch(ledger: Ledger) -> None:
    moved = [r.model_copy(update={"stream": "promotions"}) for r in ledger.records[:5]]
    problem = ledger.problem([*ledger.records, *moved])
    assert (problem.kind, problem.stream, problem.seq) == (
        ProblemKind.BODY_POSITION_MISMATCH,
        "promotions",
        1,
    )


def test_replacing_a_checkpoint_signed_with_another_key_is_an_invalid_signature(
    ledger: Ledger,
) -> None:
    forged = _checkpoints(ledger.records, Ed25519PrivateKey.generate())
    checkpoints = [ledger.checkpoints[0], forged[1], ledger.checkpoints[2]]
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, 1)


def test_a_checkpoint_under_an_unknown_key_is_reported(ledger: Ledger) -> None:
    forged = _checkpoints(ledger.records, Ed25519PrivateKey.generate(), key_id="alias/other")
    problem = ledger.problem(checkpoints=forged)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_UNKNOWN_KEY, 0)


def test_changing_a_checkpoint_merkle_root_is_a_root_mismatch(ledger: Ledger) -> None:
    checkpoints = list(ledger.checkpoints)
    checkpoints[1] = checkpoints[1].model_copy(update={"merkleRoot": "ab" * 32})
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_ROOT_MISMATCH, 1)


def test_changing_a_checkpoint_last_hash_is_a_last_hash_mismatch(ledger: Ledger) -> None:
    checkpoints = list(ledger.checkpoints)
    checkpoints[2] = checkpoints[2].model_copy(update={"lastHash": ledger.records[0].hash})
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_LAST_HASH_MISMATCH, 2)


@pytest.mark.parametrize(
    "signature",
    ["", "not base64!", base64.b64encode(bytes(64)).decode(), base64.b64encode(b"x").decode()],
)
def test_a_forged_checkpoint_signature_is_invalid(ledger: Ledger, signature: str) -> None:
    checkpoints = list(ledger.checkpoints)
    checkpoints[1] = checkpoints[1].model_copy(update={"signature": signature})
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, 1)


def test_editing_a_signed_checkpoint_field_invalidates_its_signature(
    ledger: Ledger,
) -> None:
    checkpoints = list(ledger.checkpoints)
    earlier = checkpoints[1].model_copy(update={"createdAt": START - timedelta(days=1)})
    checkpoints[1] = earlier.model_copy(update={"signature": checkpoints[1].signature})
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, 1)


def test_dropping_a_checkpoint_from_the_middle_breaks_the_ranges(ledger: Ledger) -> None:
    checkpoints = [ledger.checkpoints[0], ledger.checkpoints[2]]
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_RANGE, 1)


def test_a_checkpoint_that_does_not_name_the_previous_one_breaks_the_chain(
    ledger: Ledger,
) -> None:
    unsigned = ledger.checkpoints[1].model_copy(update={"previousCheckpoint": "cd" * 32})
    signature = ledger.key.sign(checkpoint_statement(unsigned))
    resigned = unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})
    checkpoints = [ledger.checkpoints[0], resigned, ledger.checkpoints[2]]
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_CHAIN, 1)


def test_a_checkpoint_with_an_inconsistent_size_breaks_the_ranges(ledger: Ledger) -> None:
    checkpoints = list(ledger.checkpoints)
    checkpoints[0] = checkpoints[0].model_copy(update={"size": 99})
    problem = ledger.problem(checkpoints=checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_RANGE, 0)


def test_the_first_problem_in_ledger_order_is_reported(ledger: Ledger) -> None:
    records = list(ledger.records)
    records[49] = records[49].model_copy(update={"body": _edited_body(records[49])})
    checkpoints = list(ledger.checkpoints)
    checkpoints[2] = checkpoints[2].model_copy(update={"merkleRoot": "ab" * 32})
    problem = ledger.problem(records, checkpoints)
    assert (problem.kind, problem.seq) == (ProblemKind.HASH_MISMATCH, 50)

    records = list(ledger.records)
    records[249] = records[249].model_copy(update={"body": _edited_body(records[249])})
    checkpoints[0] = checkpoints[0].model_copy(update={"signature": ""})
    problem = ledger.problem(records, checkpoints)
    assert (problem.kind, problem.checkpoint) == (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, 0)


def test_a_public_key_that_is_not_ed25519_is_refused(ledger: Ledger) -> None:
    p256 = generate_private_key(SECP256R1()).public_key()
    der = p256.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="Ed25519"):
        verify_ledger(ledger.records, ledger.checkpoints, {KEY_ID: der})


@settings(max_examples=60, deadline=None)
@given(index=st.integers(0, COUNT - 1), position=st.integers(0, 10_000), char=st.characters())
def test_any_change_to_any_body_is_detected_at_its_record(
    ledger: Ledger, index: int, position: int, char: str
) -> None:
    record = ledger.records[index]
    at = position % len(record.body)
    if record.body[at] == char:
        char = "x" if char != "x" else "y"
    body = record.body[:at] + char + record.body[at + 1 :]
    records = [*ledger.records[:index], record.model_copy(update={"body": body})]
    problem = ledger.problem(records + list(ledger.records[index + 1 :]))
    assert (problem.kind, problem.seq) == (ProblemKind.HASH_MISMATCH, index + 1)
