"""The audit ledger: hash-chained streams of audit events, Merkle checkpoints signed with
Ed25519, and a verifier that reports the first problem. Pure: no I/O, no clocks, no keys.

Records
    A ledger is a set of streams (``registry``, ...). Each stream is a chain of
    ``LedgerRecord`` with sequence numbers 1, 2, 3, ... A record's ``body`` is the RFC 8785
    canonical JSON text of the envelope ``{"event": <AuditEvent without stream>, "seq": n,
    "stream": s}``. The envelope carries the record's position, so a body cannot be replayed
    at another seq or in another stream: canonical key order puts ``seq`` and ``stream``
    last, and the verifier checks that the body ends with ``,"seq":n,"stream":"s"}``. That
    suffix can only be the envelope's own members (JSON strings escape their quotes, event
    ``details`` values are strings and never an integer after ``"seq":``).

    ``hash = SHA-256(0x00 || prevHash (32 raw bytes) || body (UTF-8))``, hex; the first
    record's ``prevHash`` is 64 zeros. The 0x00 prefix makes a record hash exactly the
    RFC 6962 leaf hash of the leaf data ``prevHash || body``, so checkpoints build their
    Merkle tree directly on record hashes, with no second hash per leaf. Verifying a record
    is one SHA-256 over bytes it already holds: bodies are never parsed or re-canonicalised,
    and they are hashed as stored. ``verify_ledger`` therefore proves integrity and
    position, not schema; ``LedgerRecord.event()`` parses a body back into an ``AuditEvent``.

Merkle trees (RFC 6962 / RFC 9162 section 2.1)
    Leaves are leaf hashes (``leaf_hash(data) = SHA-256(0x00 || data)``; for the ledger, the
    record hashes). An interior node is ``SHA-256(0x01 || left || right)``. A tree of n > 1
    leaves splits at k, the largest power of two below n: ``MTH(D[0:k])`` and
    ``MTH(D[k:n])``. Built level by level this is the same tree: adjacent nodes pair from
    the left and a last, unpaired node moves up a level unchanged. The root of no leaves is
    ``SHA-256("")``. Inclusion proofs are RFC 9162 audit paths, leaf to root.

Checkpoints
    A ``Checkpoint`` covers the records ``fromSeq..toSeq`` of one stream, the range right
    after the previous checkpoint's. It states their Merkle root, the hash of record
    ``toSeq`` and the SHA-256 of the previous checkpoint's statement (64 zeros for the
    first), so checkpoints chain too. The signed statement is the canonical JSON of every
    field but ``signature`` (at most 4096 bytes, KMS's RAW message limit); its
    ``statementType`` keeps a checkpoint signature from being taken for another statement
    signed with the same key. The signature is Ed25519 (KMS ``ED25519_SHA_512``, RAW),
    base64.

Verification
    ``verify_ledger`` verifies each stream separately and stops at the first problem. In a
    stream, records are checked in order: seq (gap, duplicate or order), ``prevHash``
    linking to the previous record's hash, the hash recomputing, the body's position.
    Checkpoints are checked in order: the range and the link to the previous checkpoint;
    then, if the checkpoint reaches past the first bad record, that record's problem (or,
    if the stream ends before the checkpoint does, the records it covers are missing); then
    the Merkle root, the last hash and the signature. Records after the last checkpoint are
    counted as ``uncheckpointed``: their chain is verified, but nothing signed vouches for
    them yet. A problem names its stream and either a ``seq`` or a ``checkpoint`` (the index
    among the stream's checkpoints, from 0); for a gap, ``seq`` is the first missing one.
    Deleting a stream's records and checkpoints together leaves nothing to detect here:
    checkpoints live in write-once storage for that reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, AwareDatetime, Field

from modelops.domain.crypto import verify_ed25519
from modelops.domain.digests import SHA256_HEX, canonical_json
from modelops.domain.entities import Entity
from modelops.domain.signing import MAX_STATEMENT_BYTES

GENESIS = "0" * 64  # prevHash of a stream's first record, previousCheckpoint of its first
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
SIGNING_ALGORITHM: Final = "ED25519_SHA_512"
STATEMENT_TYPE: Final = "modelops.audit.checkpoint/v1"
ED25519_SIGNATURE_BYTES = 64

STREAM_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
PRINCIPAL_PATTERN = r"^arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[!-~]{1,1024}$"
ACTION_PATTERN = r"^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)+$"
SHA256_OR_EMPTY = r"^([0-9a-f]{64})?$"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
ResourceId = Annotated[str, Field(min_length=1, max_length=256)]
Sha256Hex = Annotated[str, Field(pattern=SHA256_HEX.pattern)]


class Outcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"


class AuditEvent(Entity):
    """What a mutating call did: who, what, to what, when, with which answer."""

    stream: str = Field(pattern=STREAM_PATTERN)
    eventId: str = Field(min_length=1, max_length=128)
    time: UtcDatetime
    principal: str = Field(pattern=PRINCIPAL_PATTERN, description="The caller's IAM ARN.")
    action: str = Field(pattern=ACTION_PATTERN, description="e.g. models.register")
    resources: tuple[ResourceId, ...] = Field(description="Ids of the resources acted on.")
    requestId: str = Field(min_length=1, max_length=128)
    correlationId: str = Field(min_length=1, max_length=128)
    outcome: Outcome
    status: int = Field(ge=100, le=599, description="HTTP status of the answer.")
    reason: str = Field(default="", max_length=1024, description="Why, if not SUCCEEDED.")
    inputDigest: str = Field(
        default="", pattern=SHA256_OR_EMPTY, description="SHA-256 of the request body, or ''."
    )
    details: dict[str, str] = Field(default_factory=dict)


class LedgerRecord(Entity):
    """One sealed event at its place in its stream's chain."""

    stream: str = Field(pattern=STREAM_PATTERN)
    seq: int = Field(ge=1)
    prevHash: Sha256Hex
    hash: Sha256Hex
    body: str = Field(description="RFC 8785 JSON of {event, seq, stream}, hashed as stored.")

    def to_line(self) -> str:
        """The offline export format: one canonical JSON object per line (no newline)."""
        return canonical_json(self.model_dump()).decode()

    @classmethod
    def from_line(cls, line: str) -> LedgerRecord:
        return cls.model_validate_json(line)

    def event(self) -> AuditEvent:
        envelope = json.loads(self.body)
        return AuditEvent.model_validate({**envelope["event"], "stream": envelope["stream"]})


class Checkpoint(Entity):
    statementType: Literal["modelops.audit.checkpoint/v1"] = STATEMENT_TYPE
    stream: str = Field(pattern=STREAM_PATTERN)
    fromSeq: int = Field(ge=1)
    toSeq: int = Field(ge=1)
    size: int = Field(ge=1, description="toSeq - fromSeq + 1")
    merkleRoot: Sha256Hex
    lastHash: Sha256Hex = Field(description="Hash of record toSeq.")
    previousCheckpoint: Sha256Hex = Field(
        description="SHA-256 of the previous checkpoint's statement; 64 zeros for the first."
    )
    createdAt: UtcDatetime
    keyId: str = Field(min_length=1, max_length=512)
    algorithm: Literal["ED25519_SHA_512"] = SIGNING_ALGORITHM
    signature: str = Field(description="Base64 Ed25519 signature over the statement.")


class ProblemKind(StrEnum):
    SEQ_GAP = "seq_gap"  # a record is missing (deleted)
    SEQ_DUPLICATE = "seq_duplicate"  # a seq repeats or goes back (inserted)
    SEQ_ORDER = "seq_order"  # the expected seq comes later (reordered)
    PREV_HASH_MISMATCH = "prev_hash_mismatch"  # prevHash is not the previous record's hash
    HASH_MISMATCH = "hash_mismatch"  # the hash does not recompute (edited)
    BODY_POSITION_MISMATCH = "body_position_mismatch"  # body names another seq or stream
    CHECKPOINT_RANGE = "checkpoint_range"  # does not start right after the previous one
    CHECKPOINT_CHAIN = "checkpoint_chain"  # previousCheckpoint is not the previous digest
    CHECKPOINT_RECORDS_MISSING = "checkpoint_records_missing"  # covers absent records
    CHECKPOINT_ROOT_MISMATCH = "checkpoint_root_mismatch"
    CHECKPOINT_LAST_HASH_MISMATCH = "checkpoint_last_hash_mismatch"
    CHECKPOINT_UNKNOWN_KEY = "checkpoint_unknown_key"
    CHECKPOINT_SIGNATURE_INVALID = "checkpoint_signature_invalid"
    UNREADABLE = "unreadable"  # a stored record or checkpoint is not one (storage-level edit)


class LedgerProblem(Entity):
    kind: ProblemKind
    stream: str
    seq: int | None = None
    checkpoint: int | None = Field(
        default=None, description="Index among the stream's checkpoints, from 0."
    )
    message: str


class LedgerReport(Entity):
    ok: bool
    streams: tuple[str, ...]
    recordsChecked: int
    checkpointsChecked: int
    uncheckpointed: int = Field(description="Verified records after the last checkpoint.")
    problem: LedgerProblem | None = None


# --- Records -------------------------------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def record_hash(prev_hash: str, body: str) -> str:
    return leaf_hash(bytes.fromhex(prev_hash) + body.encode()).hex()


def event_body(event: AuditEvent, seq: int) -> str:
    """The canonical body of ``event`` sealed at ``seq`` of its stream."""
    envelope = {
        "event": event.model_dump(mode="json", exclude={"stream"}),
        "seq": seq,
        "stream": event.stream,
    }
    return canonical_json(envelope).decode()


def _position_suffix(stream: str) -> str:
    """The envelope's last member, ``,"stream":"s"}``; the seq member precedes it."""
    return ',"stream":' + canonical_json(stream).decode() + "}"


def seal(event: AuditEvent, previous: LedgerRecord | None) -> LedgerRecord:
    """The record that appends ``event`` after ``previous`` (None: the stream's first)."""
    if previous is None:
        seq, prev_hash = 1, GENESIS
    elif previous.stream != event.stream:
        raise ValueError(f"event of stream {event.stream!r} sealed after {previous.stream!r}")
    else:
        seq, prev_hash = previous.seq + 1, previous.hash
    body = event_body(event, seq)
    return LedgerRecord(
        stream=event.stream,
        seq=seq,
        prevHash=prev_hash,
        hash=record_hash(prev_hash, body),
        body=body,
    )


# --- Merkle trees ----------------------------------------------------------------------------


def _next_level(level: list[bytes]) -> list[bytes]:
    """Pair adjacent nodes from the left; a last, unpaired node moves up unchanged."""
    sha256 = hashlib.sha256
    pairs = iter(level)
    parents = [
        sha256(NODE_PREFIX + left + right).digest()
        for left, right in zip(pairs, pairs, strict=False)
    ]
    if len(level) % 2:
        parents.append(level[-1])
    return parents


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over leaf hashes (for the ledger: record hashes)."""
    if not leaf_hashes:
        return hashlib.sha256(b"").digest()
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 audit path for the leaf at ``index``, from the leaf's sibling up."""
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaf_hashes)}")
    proof: list[bytes] = []
    level = list(leaf_hashes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level)
        index //= 2
    return proof


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` place ``leaf_hash`` at ``index`` under
    ``root`` in a tree of ``tree_size`` leaves?"""
    if not 0 <= index < tree_size:
        return False
    fn, sn, node = index, tree_size - 1, leaf_hash
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = hashlib.sha256(NODE_PREFIX + sibling + node).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = hashlib.sha256(NODE_PREFIX + node + sibling).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and node == root


# --- Checkpoints -----------------------------------------------------------------------------


def checkpoint_statement(checkpoint: Checkpoint) -> bytes:
    """The signed bytes: canonical JSON of every field but ``signature``."""
    statement = canonical_json(checkpoint.model_dump(mode="json", exclude={"signature"}))
    if len(statement) > MAX_STATEMENT_BYTES:
        raise ValueError(f"a checkpoint statement is at most {MAX_STATEMENT_BYTES} bytes")
    return statement


def checkpoint_digest(checkpoint: Checkpoint) -> str:
    """What the next checkpoint names as ``previousCheckpoint``."""
    return hashlib.sha256(checkpoint_statement(checkpoint)).hexdigest()


def make_checkpoint(
    records: Sequence[LedgerRecord],
    previous: Checkpoint | None,
    key_id: str,
    sign: Callable[[bytes], bytes],
    now: datetime,
) -> Checkpoint:
    """Sign the records right after ``previous`` (None: from the stream's first record).

    ``sign`` gets the statement bytes and returns the raw 64-byte Ed25519 signature (KMS
    Sign, ``ED25519_SHA_512``, RAW). The records are verified first: a broken chain is never
    signed.
    """
    if not records:
        raise ValueError("a checkpoint covers at least one record")
    stream = records[0].stream
    if previous is not None and previous.stream != stream:
        raise ValueError(f"records of stream {stream!r} after a checkpoint of {previous.stream!r}")
    from_seq = 1 if previous is None else previous.toSeq + 1
    prev_hash = GENESIS if previous is None else previous.lastHash
    if any(record.stream != stream for record in records):
        raise ValueError("a checkpoint covers records of one stream")
    leaves, problem = _chain(stream, list(records), from_seq, prev_hash)
    if problem is not None:
        raise ValueError(f"refusing to checkpoint a broken chain: {problem.message}")
    unsigned = Checkpoint(
        stream=stream,
        fromSeq=from_seq,
        toSeq=records[-1].seq,
        size=len(records),
        merkleRoot=merkle_root(leaves).hex(),
        lastHash=records[-1].hash,
        previousCheckpoint=GENESIS if previous is None else checkpoint_digest(previous),
        createdAt=now,
        keyId=key_id,
        signature="",
    )
    signature = sign(checkpoint_statement(unsigned))
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise ValueError(f"an Ed25519 signature is 64 bytes, got {len(signature)}")
    return unsigned.model_copy(update={"signature": base64.b64encode(signature).decode()})


class _Signatures:
    """Checks checkpoint signatures against DER SubjectPublicKeyInfo keys by keyId (what KMS
    GetPublicKey returns)."""

    def __init__(self, public_keys: Mapping[str, bytes]) -> None:
        self._der = public_keys

    def problem(self, checkpoint: Checkpoint, statement: bytes) -> ProblemKind | None:
        der = self._der.get(checkpoint.keyId)
        if der is None:
            return ProblemKind.CHECKPOINT_UNKNOWN_KEY
        try:
            signature = base64.b64decode(checkpoint.signature, validate=True)
        except binascii.Error:
            return ProblemKind.CHECKPOINT_SIGNATURE_INVALID
        try:
            valid = verify_ed25519(der, signature, statement)
        except ValueError as exc:
            raise ValueError(f"public key {checkpoint.keyId!r} is not an Ed25519 key") from exc
        return None if valid else ProblemKind.CHECKPOINT_SIGNATURE_INVALID


# --- Verification ----------------------------------------------------------------------------


def _chain(
    stream: str, records: list[LedgerRecord], first_seq: int, prev_hash: str
) -> tuple[list[bytes], LedgerProblem | None]:
    """Record hashes (raw) of the verified prefix of ``records``, and the first problem.

    The fast path checks the whole run with list-wide comparisons; only a run that fails
    them is walked record by record (``_locate``) to name the first problem.
    """
    if not records:
        return [], None
    sha256 = hashlib.sha256
    digest = bytes.fromhex(prev_hash)
    bodies = [record.body for record in records]
    # Each hash chains on the previous computed one; stored prevHashes are compared below.
    digests = [digest := sha256(LEAF_PREFIX + digest + body.encode()).digest() for body in bodies]
    hashes = [record.hash for record in records]
    suffix = _position_suffix(stream)
    intact = (
        b"".join(digests).hex() == "".join(hashes)
        and [record.prevHash for record in records] == [prev_hash, *hashes[:-1]]
        and [record.seq for record in records] == list(range(first_seq, first_seq + len(records)))
        and all(
            [body.endswith(f',"seq":{seq}{suffix}') for seq, body in enumerate(bodies, first_seq)]
        )
    )
    if intact:
        return digests, None
    return _locate(stream, records, first_seq, prev_hash)


def _locate(
    stream: str, records: list[LedgerRecord], first_seq: int, prev_hash: str
) -> tuple[list[bytes], LedgerProblem]:
    suffix = _position_suffix(stream)
    digests: list[bytes] = []
    expected, link = first_seq, prev_hash
    for index, record in enumerate(records):
        seq = record.seq
        if seq != expected:
            return digests, _seq_problem(stream, records, index, expected)
        if record.prevHash != link:
            return digests, LedgerProblem(
                kind=ProblemKind.PREV_HASH_MISMATCH,
                stream=stream,
                seq=seq,
                message=f"record {seq}: prevHash is not the hash of record {seq - 1}",
            )
        digest = leaf_hash(bytes.fromhex(link) + record.body.encode())
        if digest.hex() != record.hash:
            return digests, LedgerProblem(
                kind=ProblemKind.HASH_MISMATCH,
                stream=stream,
                seq=seq,
                message=f"record {seq}: the hash does not recompute from prevHash and body",
            )
        if not record.body.endswith(f',"seq":{seq}{suffix}'):
            return digests, LedgerProblem(
                kind=ProblemKind.BODY_POSITION_MISMATCH,
                stream=stream,
                seq=seq,
                message=f"record {seq}: the body does not name seq {seq} of stream {stream}",
            )
        digests.append(digest)
        expected, link = seq + 1, record.hash
    raise AssertionError("_locate called on an intact chain")


def _seq_problem(
    stream: str, records: list[LedgerRecord], index: int, expected: int
) -> LedgerProblem:
    found = records[index].seq
    if found < expected:
        kind, seq = ProblemKind.SEQ_DUPLICATE, found
        message = f"record {found} appears again after record {expected - 1}"
    elif any(record.seq == expected for record in records[index + 1 :]):
        kind, seq = ProblemKind.SEQ_ORDER, expected
        message = f"record {expected} comes after record {found}"
    else:
        kind, seq = ProblemKind.SEQ_GAP, expected
        message = f"record {expected} is missing: record {expected - 1} is followed by {found}"
    return LedgerProblem(kind=kind, stream=stream, seq=seq, message=message)


@dataclass(frozen=True, slots=True)
class _StreamResult:
    records: int
    checkpoints: int
    uncheckpointed: int
    problem: LedgerProblem | None


def _verify_stream(
    stream: str,
    records: list[LedgerRecord],
    checkpoints: Sequence[Checkpoint],
    signatures: _Signatures,
) -> _StreamResult:
    leaves, record_problem = _chain(stream, records, 1, GENESIS)
    verified = len(leaves)

    def failed(kind: ProblemKind, index: int, message: str) -> _StreamResult:
        problem = LedgerProblem(kind=kind, stream=stream, checkpoint=index, message=message)
        return _StreamResult(verified, index, 0, problem)

    from_seq, previous_digest = 1, GENESIS
    for index, checkpoint in enumerate(checkpoints):
        first, last = checkpoint.fromSeq, checkpoint.toSeq
        if first != from_seq or last < first or checkpoint.size != last - first + 1:
            return failed(
                ProblemKind.CHECKPOINT_RANGE,
                index,
                f"checkpoint {index} covers {first}..{last} (size {checkpoint.size}); "
                f"the next range starts at {from_seq}",
            )
        if checkpoint.previousCheckpoint != previous_digest:
            return failed(
                ProblemKind.CHECKPOINT_CHAIN,
                index,
                f"checkpoint {index}: previousCheckpoint is not "
                + ("64 zeros" if index == 0 else f"the digest of checkpoint {index - 1}"),
            )
        if last > verified:
            if record_problem is not None:
                return _StreamResult(verified, index, 0, record_problem)
            return failed(
                ProblemKind.CHECKPOINT_RECORDS_MISSING,
                index,
                f"checkpoint {index} covers records up to {last}; the stream ends at {verified}",
            )
        covered = leaves[first - 1 : last]
        if merkle_root(covered).hex() != checkpoint.merkleRoot:
            return failed(
                ProblemKind.CHECKPOINT_ROOT_MISMATCH,
                index,
                f"checkpoint {index}: the Merkle root of records {first}..{last} differs",
            )
        if covered[-1].hex() != checkpoint.lastHash:
            return failed(
                ProblemKind.CHECKPOINT_LAST_HASH_MISMATCH,
                index,
                f"checkpoint {index}: lastHash is not the hash of record {last}",
            )
        statement = checkpoint_statement(checkpoint)
        signature_problem = signatures.problem(checkpoint, statement)
        if signature_problem is not None:
            return failed(
                signature_problem,
                index,
                f"checkpoint {index}: no valid signature by key {checkpoint.keyId!r}",
            )
        from_seq, previous_digest = last + 1, hashlib.sha256(statement).hexdigest()
    if record_problem is not None:
        return _StreamResult(verified, len(checkpoints), 0, record_problem)
    return _StreamResult(verified, len(checkpoints), verified - (from_seq - 1), None)


def verify_ledger(
    records: Iterable[LedgerRecord],
    checkpoints: Sequence[Checkpoint],
    public_keys: Mapping[str, bytes],
) -> LedgerReport:
    """Recompute chains, Merkle roots and signatures; report the first problem.

    ``records`` may mix streams, each in seq order; ``public_keys`` maps keyId to the DER
    SubjectPublicKeyInfo of an Ed25519 key.
    """
    all_records = list(records)
    names = dict.fromkeys([record.stream for record in all_records])
    record_streams: dict[str, list[LedgerRecord]] = {}
    if len(names) == 1:  # the usual case, without a per-record loop
        record_streams = {name: all_records for name in names}
    else:
        for record in all_records:
            record_streams.setdefault(record.stream, []).append(record)
    checkpoint_streams: dict[str, list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        checkpoint_streams.setdefault(checkpoint.stream, []).append(checkpoint)
    streams = tuple(dict.fromkeys([*record_streams, *checkpoint_streams]))

    signatures = _Signatures(public_keys)
    records_checked = checkpoints_checked = uncheckpointed = 0
    for stream in streams:
        result = _verify_stream(
            stream,
            record_streams.get(stream, []),
            checkpoint_streams.get(stream, []),
            signatures,
        )
        records_checked += result.records
        checkpoints_checked += result.checkpoints
        uncheckpointed += result.uncheckpointed
        if result.problem is not None:
            return LedgerReport(
                ok=False,
                streams=streams,
                recordsChecked=records_checked,
                checkpointsChecked=checkpoints_checked,
                uncheckpointed=uncheckpointed,
                problem=result.problem,
            )
    return LedgerReport(
        ok=True,
        streams=streams,
        recordsChecked=records_checked,
        checkpointsChecked=checkpoints_checked,
        uncheckpointed=uncheckpointed,
    )
