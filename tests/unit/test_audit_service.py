"""AuditService with in-memory fakes: chaining, retries on a taken seq, checkpoints every N,
publication, verification and export."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from modelops.contracts.events import AuditCheckpointSigned, AuditEventRecorded
from modelops.domain.access import Caller, Role
from modelops.domain.ledger import (
    AuditEvent,
    Checkpoint,
    LedgerRecord,
    Outcome,
    ProblemKind,
    make_checkpoint,
    seal,
)
from modelops.errors import Conflict, Forbidden, LedgerCorrupt
from modelops.ports import SequenceTaken, UnreadableEntry
from modelops.services.audit import (
    APPEND_ATTEMPTS,
    BACKOFF_CAP_S,
    AuditService,
    LedgerUnavailable,
)

from .fakes import FixedClock, MemoryLedgerStore, MemoryPublisher, MemorySigner

ADMIN = Caller("arn:aws:iam::123456789012:user/admin", frozenset({Role.PLATFORM_ADMIN}))
ENGINEER = Caller("arn:aws:iam::123456789012:user/eng", frozenset({Role.ML_ENGINEER}))


def event(stream: str = "registry", action: str = "models.register") -> AuditEvent:
    return AuditEvent(
        stream=stream,
        eventId=str(uuid.uuid4()),
        time=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        principal=ENGINEER.principal,
        action=action,
        resources=("mdl-0123456789abcdef01234567",),
        requestId="req-1",
        correlationId="corr-1",
        outcome=Outcome.SUCCEEDED,
        status=201,
    )


class Setup:
    def __init__(self, checkpoint_every: int = 100, publisher: MemoryPublisher | None = None):
        self.store = MemoryLedgerStore()
        self.signer = MemorySigner()
        self.publisher = publisher or MemoryPublisher()
        self.sleeps: list[float] = []
        self.service = AuditService(
            self.store,
            self.signer,
            self.publisher,
            FixedClock(),
            checkpoint_every,
            sleep=self.sleeps.append,
            jitter=lambda: 1.0,
        )


@pytest.fixture
def setup() -> Iterator[Setup]:
    yield Setup()


def test_events_are_chained_from_seq_1_and_the_ledger_verifies(setup: Setup) -> None:
    records = [setup.service.record(event()) for _ in range(5)]

    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert [r.prevHash for r in records[1:]] == [r.hash for r in records[:-1]]
    report = setup.service.verify("registry")
    assert report.ok and report.recordsChecked == 5 and report.uncheckpointed == 5


def test_a_checkpoint_is_signed_every_n_records_over_the_records_since_the_last_one() -> None:
    setup = Setup(checkpoint_every=3)
    for _ in range(7):
        setup.service.record(event())

    ranges = [(c.fromSeq, c.toSeq) for c in setup.store.checkpoints("registry")]
    assert ranges == [(1, 3), (4, 6)]
    forced = setup.service.checkpoint("registry")
    assert forced is not None and (forced.fromSeq, forced.toSeq) == (7, 7)
    report = setup.service.verify()
    assert report.ok and report.checkpointsChecked == 3 and report.uncheckpointed == 0


def test_a_writer_that_loses_its_seq_re_reads_the_head_and_appends_after_the_winner(
    setup: Setup,
) -> None:
    first = setup.service.record(event())

    # Given another writer appends seq 2 between our read of the head and our put
    def other_writer(_: LedgerRecord) -> None:
        setup.store.append(seal(event(action="dataset.register"), first))

    setup.store.before_append = other_writer
    # When we append
    ours = setup.service.record(event())
    # Then our put of seq 2 is refused, and we land on 3, chained to theirs
    assert setup.store.conflicts == 1 and len(setup.sleeps) == 1
    assert ours.seq == 3
    assert ours.prevHash == setup.store.records_by_stream["registry"][2].hash
    assert setup.service.verify().ok


def test_appending_gives_up_after_its_attempts_with_growing_bounded_pauses() -> None:
    class AlwaysTaken(MemoryLedgerStore):
        def append(self, record: LedgerRecord) -> None:
            raise SequenceTaken(str(record.seq))

    sleeps: list[float] = []
    service = AuditService(
        AlwaysTaken(),
        MemorySigner(),
        MemoryPublisher(),
        FixedClock(),
        sleep=sleeps.append,
        jitter=lambda: 1.0,
    )
    with pytest.raises(LedgerUnavailable, match=f"after {APPEND_ATTEMPTS} attempts"):
        service.record(event())
    assert len(sleeps) == APPEND_ATTEMPTS
    assert sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1] == BACKOFF_CAP_S


def test_many_parallel_writers_produce_one_unbroken_chain() -> None:
    setup = Setup(checkpoint_every=10)
    threads = [
        threading.Thread(target=lambda: [setup.service.record(event()) for _ in range(25)])
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(setup.store.records_by_stream["registry"]) == list(range(1, 201))
    report = setup.service.verify("registry")
    assert report.ok and report.recordsChecked == 200 and report.uncheckpointed == 0
    # A writer whose checkpoint a later one already covered makes none: ranges vary, but
    # each ends at a multiple of checkpoint_every and they tile 1..200.
    ends = [c.toSeq for c in setup.store.checkpoints("registry")]
    assert ends[-1] == 200 and all(end % 10 == 0 for end in ends)


def test_events_and_checkpoints_are_published_after_they_are_stored() -> None:
    setup = Setup(checkpoint_every=2)
    first = setup.service.record(event())
    setup.service.record(event())

    kinds = [kind for kind, _ in setup.publisher.published]
    assert kinds == [
        AuditEventRecorded.DETAIL_TYPE,
        AuditCheckpointSigned.DETAIL_TYPE,
        AuditEventRecorded.DETAIL_TYPE,
    ]
    detail = setup.publisher.published[0][1]
    assert (detail["stream"], detail["seq"], detail["hash"]) == ("registry", 1, first.hash)
    assert detail["event"]["action"] == "models.register"
    assert setup.publisher.published[1][1]["toSeq"] == 2


def test_a_failing_publisher_or_checkpoint_never_fails_the_append() -> None:
    setup = Setup(checkpoint_every=1, publisher=MemoryPublisher(failing=True))

    def broken_signer(message: bytes) -> bytes:
        raise RuntimeError("KMS is down")

    setup.signer.sign = broken_signer  # type: ignore[method-assign]
    record = setup.service.record(event())
    assert record.seq == 1
    assert setup.store.checkpoints("registry") == []
    assert setup.service.verify().ok


def test_a_forced_checkpoint_needs_platform_admin_and_is_none_when_nothing_is_new(
    setup: Setup,
) -> None:
    setup.service.record(event())
    with pytest.raises(Forbidden):
        setup.service.force_checkpoint("registry", ENGINEER)
    assert setup.store.checkpoints("registry") == []
    made = setup.service.force_checkpoint("registry", ADMIN)
    assert made is not None and (made.fromSeq, made.toSeq) == (1, 1)
    assert setup.service.force_checkpoint("registry", ADMIN) is None
    assert setup.service.force_checkpoint("empty", ADMIN) is None


def test_a_checkpoint_racing_another_over_the_same_start_builds_on_the_winner(
    setup: Setup,
) -> None:
    for _ in range(4):
        setup.service.record(event())
    store, signer = setup.store, setup.signer
    put = store.put_checkpoint

    # Given a rival stores its checkpoint of 1..2 just before ours of 1..4
    def rival_first(checkpoint: Checkpoint) -> None:
        store.put_checkpoint = put  # type: ignore[method-assign]
        records = store.records("registry", 1, 2).items
        put(make_checkpoint(records, None, signer.key_id, signer.sign, checkpoint.createdAt))
        put(checkpoint)

    store.put_checkpoint = rival_first  # type: ignore[method-assign]
    made = setup.service.checkpoint("registry")

    # Then ours is refused, and the retry covers 3..4, after the rival's
    assert made is not None and (made.fromSeq, made.toSeq) == (3, 4)
    assert [(c.fromSeq, c.toSeq) for c in store.checkpoints("registry")] == [(1, 2), (3, 4)]
    assert setup.service.verify("registry").ok


def test_checkpointing_a_broken_chain_is_refused(setup: Setup) -> None:
    for _ in range(3):
        setup.service.record(event())
    del setup.store.records_by_stream["registry"][2]

    with pytest.raises(Conflict, match="broken chain"):
        setup.service.checkpoint("registry")
    report = setup.service.verify("registry")
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.SEQ_GAP, 2)


def test_export_pages_carry_the_checkpoints_covering_them_and_the_last_page_all_later_ones() -> (
    None
):
    setup = Setup(checkpoint_every=4)
    for _ in range(10):
        setup.service.record(event())

    first = setup.service.export("registry", 1, 5)
    assert [r.seq for r in first.records] == [1, 2, 3, 4, 5] and first.next_from_seq == 6
    assert [(c.fromSeq, c.toSeq) for c in first.checkpoints] == [(1, 4), (5, 8)]
    last = setup.service.export("registry", 6, 5)
    assert [r.seq for r in last.records] == [6, 7, 8, 9, 10] and last.next_from_seq is None
    assert [(c.fromSeq, c.toSeq) for c in last.checkpoints] == [(5, 8)]

    # Records deleted at the end: the last page still names every later checkpoint.
    for seq in (5, 6, 7, 8, 9, 10):
        del setup.store.records_by_stream["registry"][seq]
    tail = setup.service.export("registry", 5, 5)
    assert tail.records == [] and [(c.fromSeq, c.toSeq) for c in tail.checkpoints] == [(5, 8)]


def test_an_entry_that_is_not_a_record_is_reported_not_raised(setup: Setup) -> None:
    setup.service.record(event())

    class Unreadable(MemoryLedgerStore):
        def records(self, stream: str, from_seq: int, limit: int):  # type: ignore[no-untyped-def]
            raise UnreadableEntry(stream, "record 1 is not a ledger record", seq=1)

    service = AuditService(Unreadable(), setup.signer, MemoryPublisher(), FixedClock())
    report = service.verify("registry")
    assert not report.ok and report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.UNREADABLE, 1)
    with pytest.raises(LedgerCorrupt):
        service.export("registry", 1, 10)


def test_scheduled_checkpointing_covers_every_stream_and_reports_failures() -> None:
    setup = Setup()
    setup.service.record(event("registry"))
    setup.service.record(event("audit", action="audit.checkpoint"))

    made = setup.service.checkpoint_all()
    assert {s: (c.fromSeq, c.toSeq) for s, c in made.items() if c} == {
        "audit": (1, 1),
        "registry": (1, 1),
    }
    assert setup.service.checkpoint_all() == {"audit": None, "registry": None}
    setup.service.record(event("registry"))
    setup.service.record(event("registry"))
    del setup.store.records_by_stream["registry"][2]
    with pytest.raises(LedgerUnavailable, match="registry"):
        setup.service.checkpoint_all()
