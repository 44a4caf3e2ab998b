"""The audit ledger's use cases: append events, sign checkpoints, verify, export.

Appending reads the stream's head, seals the event after it (``modelops.domain.ledger``) and
puts the record with a condition on its seq. Of concurrent writers that sealed the same seq
one wins; the others re-read the head and try again, after a jittered, growing pause, up to
``attempts`` times. The chain therefore never forks, and a writer that cannot get a seq
fails loudly (``LedgerUnavailable``) instead of dropping the event.

Every ``checkpoint_every`` records (when a record's seq is a multiple of it) the writer that
appended it signs a checkpoint over the records since the previous checkpoint; the scheduled
``audit-checkpoints`` function (and ``POST /audit/checkpoint``) checkpoints whatever is left,
so a record waits at most one schedule period for a signature. Events and checkpoints are
published to EventBridge after they are stored. The ledger is the record: a failed
checkpoint or publication is logged and left to the next checkpoint or to readers of the
export, never allowed to fail the append that came before it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from modelops import correlation
from modelops.contracts.events import AuditCheckpointSigned, AuditEventRecorded, EventDetail
from modelops.domain.access import Caller, Permission
from modelops.domain.ledger import (
    AuditEvent,
    Checkpoint,
    LedgerProblem,
    LedgerRecord,
    LedgerReport,
    ProblemKind,
    make_checkpoint,
    seal,
    verify_ledger,
)
from modelops.errors import Conflict, LedgerCorrupt
from modelops.ports import (
    AlreadyExists,
    Clock,
    LedgerStore,
    SequenceTaken,
    Signer,
    UnreadableEntry,
)

# Sixteen writers on one stream need up to about 20 attempts each on the local cloud; 40
# with pauses of at most 0.5 s (0.25 s on average) stays well inside the API's 29 s.
APPEND_ATTEMPTS = 40
CHECKPOINT_ATTEMPTS = 3
BACKOFF_BASE_S = 0.01
BACKOFF_CAP_S = 0.5
READ_PAGE = 1000
MAX_EXPORT_PAGE = 1000

log = logging.getLogger(__name__)


class LedgerUnavailable(Exception):
    """The event could not be appended (contention beyond the retries, or storage failed)."""


@dataclass(frozen=True)
class ExportPage:
    """Records ``from_seq`` on, and the checkpoints that cover any of them (on the last
    page: every checkpoint from ``from_seq`` on, including ones past the last record)."""

    stream: str
    records: list[LedgerRecord]
    checkpoints: list[Checkpoint]
    next_from_seq: int | None


class AuditService:
    def __init__(
        self,
        store: LedgerStore,
        signer: Signer,
        publish: Callable[[EventDetail], None],
        clock: Clock,
        checkpoint_every: int = 100,
        *,
        attempts: int = APPEND_ATTEMPTS,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if checkpoint_every < 1 or attempts < 1:
            raise ValueError("checkpoint_every and attempts are at least 1")
        self._store = store
        self._signer = signer
        self._publish_event = publish
        self._clock = clock
        self._every = checkpoint_every
        self._attempts = attempts
        self._sleep = sleep
        self._jitter = jitter

    # --- writing ---------------------------------------------------------------------------

    def record(self, event: AuditEvent) -> LedgerRecord:
        """Append ``event`` to its stream; raises LedgerUnavailable if it could not be."""
        record = self._append(event)
        if record.seq % self._every == 0:
            try:
                self._checkpoint_through(record.stream, record.seq)
            except Exception:
                log.exception("checkpoint at %s %d failed; the next one covers it", *_at(record))
        self._publish(
            AuditEventRecorded(
                stream=record.stream,
                seq=record.seq,
                hash=record.hash,
                event=event,
                correlationId=event.correlationId,
            )
        )
        return record

    def checkpoint(self, stream: str) -> Checkpoint | None:
        """Sign a checkpoint over the stream's records since its last one, now; None if there
        are none (or another writer checkpointed them meanwhile)."""
        head = self._store.head(stream)
        if head is None:
            return None
        return self._checkpoint_through(stream, head.seq)

    def force_checkpoint(self, stream: str, caller: Caller) -> Checkpoint | None:
        """``checkpoint`` on request: platform administrators only."""
        caller.require(Permission.ADMINISTER)
        return self.checkpoint(stream)

    def checkpoint_all(self) -> dict[str, Checkpoint | None]:
        """``checkpoint`` every stream; raises after trying them all if any failed."""
        made: dict[str, Checkpoint | None] = {}
        failed: list[str] = []
        for stream in self._store.streams():
            try:
                made[stream] = self.checkpoint(stream)
            except Exception:
                log.exception("checkpoint of stream %s failed", stream)
                failed.append(stream)
        if failed:
            raise LedgerUnavailable(f"checkpoints failed for streams: {', '.join(failed)}")
        return made

    def _append(self, event: AuditEvent) -> LedgerRecord:
        for attempt in range(self._attempts):
            record = seal(event, self._store.head(event.stream))
            try:
                self._store.append(record)
            except SequenceTaken:
                self._sleep(self._jitter() * min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt))
                continue
            except Exception as exc:
                raise LedgerUnavailable(f"appending to {event.stream} failed: {exc}") from exc
            return record
        raise LedgerUnavailable(
            f"no free seq in {event.stream} after {self._attempts} attempts (contention)"
        )

    def _checkpoint_through(self, stream: str, to_seq: int) -> Checkpoint | None:
        for _ in range(CHECKPOINT_ATTEMPTS):
            previous = self._store.latest_checkpoint(stream)
            from_seq = 1 if previous is None else previous.toSeq + 1
            if to_seq < from_seq:
                return None
            records = self._read(stream, from_seq, to_seq)
            try:
                checkpoint = make_checkpoint(
                    records, previous, self._signer.key_id, self._signer.sign, self._clock.now()
                )
            except ValueError as exc:
                raise Conflict(f"refusing to checkpoint stream {stream}: {exc}") from exc
            try:
                self._store.put_checkpoint(checkpoint)
            except AlreadyExists:
                continue  # another writer checkpointed from the same seq: start from theirs
            self._publish(
                AuditCheckpointSigned(
                    **checkpoint.model_dump(),
                    correlationId=correlation.current(f"checkpoint:{stream}:{to_seq}"),
                )
            )
            return checkpoint
        return None

    def _publish(self, event: EventDetail) -> None:
        try:
            self._publish_event(event)
        except Exception:
            log.exception(
                "publishing %s failed; the ledger export still has it", type(event).DETAIL_TYPE
            )

    # --- reading ---------------------------------------------------------------------------

    def _read(self, stream: str, from_seq: int, to_seq: int | None) -> list[LedgerRecord]:
        """Records from_seq..to_seq (None: to the end), in order, as stored."""
        found: list[LedgerRecord] = []
        next_seq: int | None = from_seq
        while next_seq is not None and (to_seq is None or next_seq <= to_seq):
            wanted = READ_PAGE if to_seq is None else min(READ_PAGE, to_seq - next_seq + 1)
            page = self._store.records(stream, next_seq, wanted)
            found += [r for r in page.items if to_seq is None or r.seq <= to_seq]
            next_seq = int(page.next_token) if page.next_token else None
        return found

    def public_keys(self) -> dict[str, bytes]:
        """Key id -> DER SubjectPublicKeyInfo of every key that signs checkpoints."""
        return {self._signer.key_id: self._signer.public_key()}

    def streams(self) -> list[str]:
        return self._store.streams()

    def verify(self, stream: str | None = None) -> LedgerReport:
        """Recompute chains, Merkle roots and signatures of one stream (None: every stream)
        from storage, against the write-once checkpoints; report the first problem."""
        streams = [stream] if stream is not None else self._store.streams()
        records: list[LedgerRecord] = []
        checkpoints: list[Checkpoint] = []
        try:
            for name in streams:
                records += self._read(name, 1, None)
                checkpoints += self._store.checkpoints(name)
        except UnreadableEntry as exc:
            problem = LedgerProblem(
                kind=ProblemKind.UNREADABLE,
                stream=exc.stream,
                seq=exc.seq,
                checkpoint=exc.checkpoint,
                message=exc.message,
            )
            return LedgerReport(
                ok=False,
                streams=tuple(streams),
                recordsChecked=0,
                checkpointsChecked=0,
                uncheckpointed=0,
                problem=problem,
            )
        return verify_ledger(records, checkpoints, self.public_keys())

    def export(self, stream: str, from_seq: int, limit: int) -> ExportPage:
        if not 1 <= limit <= MAX_EXPORT_PAGE or from_seq < 1:
            raise ValueError(f"limit is 1..{MAX_EXPORT_PAGE} and from_seq at least 1")
        try:
            page = self._store.records(stream, from_seq, limit)
            last = page.items[-1].seq if page.items else from_seq - 1
            final = page.next_token is None
            checkpoints = self._store.checkpoints(stream, from_seq, None if final else last)
        except UnreadableEntry as exc:
            raise LedgerCorrupt(f"{exc.message}; GET /audit/verify reports it") from exc
        next_from = int(page.next_token) if page.next_token else None
        return ExportPage(stream, page.items, checkpoints, next_from)


def _at(record: LedgerRecord) -> tuple[str, int]:
    return record.stream, record.seq
