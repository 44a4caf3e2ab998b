"""The audit ledger on the local cloud: every mutating call recorded, parallel writers,
tampering through storage detected by GET /audit/verify and by the offline CLI, events on
EventBridge, checkpoints under Object Lock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from localcloud.cloud import LocalCloud
from modelops import platform
from modelops.adapters.eventbridge import SOURCE, EventBridgePublisher
from modelops.adapters.kms import KmsSigner
from modelops.adapters.ledger import DynamoLedgerStore, checkpoint_key, padded
from modelops.contracts.events import AuditEventRecorded
from modelops.domain.ledger import AuditEvent, LedgerRecord, Outcome, ProblemKind, seal
from modelops.domain.signing import public_key_pem
from modelops.ports import SequenceTaken
from modelops.services.audit import AuditService
from modelops.wiring import SystemClock
from modelops_cli.client import ModelOpsClient
from modelops_cli.main import main as modelops

# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def as_role(local_cloud: LocalCloud) -> dict[str, ModelOpsClient]:
    return {
        name: ModelOpsClient(local_cloud.api_url, principal.session(local_cloud.region))
        for name, principal in local_cloud.principals.items()
    }


@pytest.fixture(scope="module")
def store(local_cloud: LocalCloud) -> DynamoLedgerStore:
    return DynamoLedgerStore(
        local_cloud.client("dynamodb"),
        local_cloud.client("s3"),
        local_cloud.names[platform.LEDGER_TABLE.logical_id],
        local_cloud.names[platform.AUDIT_BUCKET.logical_id],
    )


@pytest.fixture(scope="module")
def audit(local_cloud: LocalCloud, store: DynamoLedgerStore) -> Callable[[int], AuditService]:
    """An AuditService on the local cloud's ledger, KMS key and bus, as functions build it."""
    signer = KmsSigner(
        local_cloud.client("kms"), local_cloud.key_arns[platform.SIGNING_KEY.logical_id]
    )
    publisher = EventBridgePublisher(
        local_cloud.client("events"), local_cloud.names[platform.EVENT_BUS.logical_id]
    )
    return lambda every: AuditService(store, signer, publisher, SystemClock(), every)


def fresh_stream() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def event(stream: str, action: str = "models.register") -> AuditEvent:
    return AuditEvent(
        stream=stream,
        eventId=str(uuid.uuid4()),
        time=datetime.now(UTC),
        principal="arn:aws:iam::123456789012:user/ml-engineer",
        action=action,
        resources=("mdl-0123456789abcdef01234567",),
        requestId=str(uuid.uuid4()),
        correlationId="test",
        outcome=Outcome.SUCCEEDED,
        status=201,
    )


def registry_events(client: ModelOpsClient, after: int) -> list[AuditEvent]:
    """The registry stream's events after seq ``after``, read over the audit API."""
    page = client.call("GET", "/audit/export", query={"stream": "registry", "fromSeq": after + 1})
    return [LedgerRecord.from_line(line).event() for line in page["records"]]


def head(store: DynamoLedgerStore, stream: str) -> int:
    record = store.head(stream)
    return 0 if record is None else record.seq


# --- every mutating call is recorded ---------------------------------------------------------


def test_every_mutating_registry_call_appends_exactly_one_event_and_reads_append_none(
    local_cloud: LocalCloud,
    as_role: dict[str, ModelOpsClient],
    store: DynamoLedgerStore,
    tmp_path: Path,
) -> None:
    engineer, approver = as_role["ml-engineer"], as_role["approver"]
    arn = {name: p.arn for name, p in local_cloud.principals.items()}
    (tmp_path / "w.bin").write_bytes(uuid.uuid4().bytes)
    artifact = engineer.upload_artifact(tmp_path, "audited")  # start + complete
    family = f"audited-{uuid.uuid4().hex[:8]}"
    body = {"family": family, "version": "1.0.0", "artifactId": artifact["artifactId"]}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    files = {"name": "x", "files": [{"path": "a", "size": 1, "sha256": "a" * 64}]}
    before = head(store, "registry")

    calls: list[tuple[ModelOpsClient, str, str, Any, dict[str, str] | None]] = [
        (engineer, "POST", "/models/register", {**body, "codeRef": "c"}, None),
        (engineer, "GET", "/models", None, None),
        (engineer, "GET", f"/artifact/{artifact['artifactId']}", None, None),
        (engineer, "POST", "/models/register", {**body, "codeRef": "other"}, None),
        (approver, "POST", "/models/register", {**body, "codeRef": "c"}, None),
        (engineer, "POST", "/models/register", {**body, "version": "x"}, None),
        (
            engineer,
            "POST",
            "/models/register",
            {
                **body,
                "version": "2.0.0",
                "codeRef": "c",
                "lineage": {"datasets": ["ds-" + "0" * 24]},
            },
            None,
        ),
        (engineer, "POST", "/artifact/upload", files, key),
        (engineer, "POST", "/artifact/upload", files, key),
        (engineer, "GET", "/models/mdl-000000000000000000000000", None, None),
    ]
    statuses = [
        client.request(method, path, payload, headers=headers)[0]
        for client, method, path, payload, headers in calls
    ]
    assert statuses == [201, 200, 200, 409, 403, 400, 422, 201, 201, 404]

    events = registry_events(engineer, before)
    assert [(e.action, e.outcome, e.status) for e in events] == [
        ("models.register", Outcome.SUCCEEDED, 201),
        ("models.register", Outcome.REJECTED, 409),
        ("models.register", Outcome.REJECTED, 403),
        ("models.register", Outcome.REJECTED, 400),
        ("models.register", Outcome.REJECTED, 422),
        ("artifact.upload", Outcome.SUCCEEDED, 201),
        ("artifact.upload", Outcome.SUCCEEDED, 201),  # the replay is recorded too
    ]
    principals = [e.principal for e in events]
    assert principals == [arn["ml-engineer"]] * 2 + [arn["approver"]] + [arn["ml-engineer"]] * 4
    registered, conflict, forbidden, invalid, missing, upload, replay = events
    assert registered.resources[0].startswith("mdl-") and registered.reason == ""
    assert conflict.reason.startswith("CONFLICT") and forbidden.reason.startswith("FORBIDDEN")
    assert invalid.reason.startswith("VALIDATION_FAILED")
    assert missing.reason.startswith("REFERENCE_NOT_FOUND")
    assert registered.inputDigest != conflict.inputDigest and len(registered.inputDigest) == 64
    assert upload.resources == replay.resources and upload.resources[0].startswith("upl-")
    assert upload.details["idempotencyKey"] == replay.details["idempotencyKey"]
    assert registered.details["route"] == "/models/register"


def test_an_unbound_caller_is_refused_and_still_recorded(
    local_cloud: LocalCloud, as_role: dict[str, ModelOpsClient], store: DynamoLedgerStore
) -> None:
    iam = local_cloud.client("iam")
    name = f"stranger-{uuid.uuid4().hex[:6]}"
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    keys = iam.create_access_key(UserName=name)["AccessKey"]
    stranger = ModelOpsClient(
        local_cloud.api_url,
        boto3.session.Session(
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            region_name=local_cloud.region,
        ),
    )
    before = head(store, "registry")
    dataset = {"name": "x", "artifactId": "art-" + "0" * 32, "license": "MIT"}
    status, _ = stranger.request("POST", "/dataset/register", dataset)
    assert status == 403

    (recorded,) = registry_events(as_role["ml-engineer"], before)
    assert (recorded.principal, recorded.action, recorded.outcome) == (
        arn,
        "dataset.register",
        Outcome.REJECTED,
    )


def test_forcing_a_checkpoint_is_for_platform_admins_and_both_answers_are_audited(
    as_role: dict[str, ModelOpsClient], store: DynamoLedgerStore, local_cloud: LocalCloud
) -> None:
    before = head(store, "audit")
    query = {"stream": "registry"}
    status, refused = as_role["ml-engineer"].request("POST", "/audit/checkpoint", query=query)
    assert (status, refused["error"]["code"]) == (403, "FORBIDDEN")
    status, made = as_role["platform-admin"].request("POST", "/audit/checkpoint", query=query)
    assert status == 201 and made["created"] and made["checkpoint"]["stream"] == "registry"
    status, again = as_role["platform-admin"].request("POST", "/audit/checkpoint", query=query)
    assert status == 200 and not again["created"]

    page = store.records("audit", before + 1, 10).items
    assert [(r.event().action, r.event().status) for r in page] == [
        ("audit.checkpoint", 403),
        ("audit.checkpoint", 201),
        ("audit.checkpoint", 200),
    ]
    assert page[0].event().principal == local_cloud.principals["ml-engineer"].arn
    report = as_role["approver"].call("GET", "/audit/verify", query={"stream": "registry"})
    assert report["report"]["ok"] and report["report"]["checkpointsChecked"] >= 1


# --- many writers ------------------------------------------------------------------------


def test_many_parallel_writers_get_seq_1_to_n_with_no_gap_or_fork(
    audit: Callable[[int], AuditService], store: DynamoLedgerStore
) -> None:
    stream = fresh_stream()
    service = audit(50)
    taken = 0
    original = store.append

    def counting_append(record: LedgerRecord) -> None:
        nonlocal taken
        try:
            original(record)
        except SequenceTaken:
            taken += 1
            raise

    store.append = counting_append  # type: ignore[method-assign]
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(
                pool.map(lambda _: [service.record(event(stream)) for _ in range(10)], range(16))
            )
    finally:
        del store.append

    seqs = sorted(r.seq for batch in results for r in batch)
    assert seqs == list(range(1, 161))
    stored = store.records(stream, 1, 1000).items
    assert [r.seq for r in stored] == seqs
    assert [r.prevHash for r in stored[1:]] == [r.hash for r in stored[:-1]]
    assert taken > 0, "the writers never contended: the test proves nothing"
    report = service.verify(stream)
    assert report.ok and report.recordsChecked == 160 and report.checkpointsChecked >= 3


# --- tampering through storage -------------------------------------------------------------

Tamper = Callable[[LocalCloud, str], None]


def _ledger_item(cloud: LocalCloud, stream: str, seq: int) -> dict[str, Any]:
    item: dict[str, Any] = cloud.client("dynamodb").get_item(
        TableName=cloud.names["LedgerTable"],
        Key={"stream": {"S": stream}, "seq": {"S": padded(seq)}},
        ConsistentRead=True,
    )["Item"]
    return item


def _put_item(cloud: LocalCloud, item: dict[str, Any]) -> None:
    cloud.client("dynamodb").put_item(TableName=cloud.names["LedgerTable"], Item=item)


def _edit_body(cloud: LocalCloud, stream: str, seq: int = 6) -> None:
    item = _ledger_item(cloud, stream, seq)
    item["body"]["S"] = item["body"]["S"].replace("ml-engineer", "ml-engineeR")
    _put_item(cloud, item)


def _delete(cloud: LocalCloud, stream: str) -> None:
    cloud.client("dynamodb").delete_item(
        TableName=cloud.names["LedgerTable"],
        Key={"stream": {"S": stream}, "seq": {"S": padded(6)}},
    )


def _insert(cloud: LocalCloud, stream: str) -> None:
    """A forged record at 6, correctly chained to 5, and 6..10 moved up by one."""
    for seq in range(10, 5, -1):
        item = _ledger_item(cloud, stream, seq)
        _put_item(cloud, {**item, "seq": {"S": padded(seq + 1)}})
    five = _ledger_item(cloud, stream, 5)
    previous = LedgerRecord(
        stream=stream, seq=5, prevHash=five["prevHash"]["S"], hash=five["hash"]["S"], body="x"
    )
    forged = seal(event(stream, action="models.forged"), previous)
    _put_item(
        cloud,
        {
            "stream": {"S": stream},
            "seq": {"S": padded(6)},
            "prevHash": {"S": forged.prevHash},
            "hash": {"S": forged.hash},
            "body": {"S": forged.body},
        },
    )


def _reorder(cloud: LocalCloud, stream: str) -> None:
    six, seven = _ledger_item(cloud, stream, 6), _ledger_item(cloud, stream, 7)
    _put_item(cloud, {**seven, "seq": six["seq"]})
    _put_item(cloud, {**six, "seq": seven["seq"]})


def _corrupt_at(cloud: LocalCloud, stream: str, seq: int) -> None:
    item = _ledger_item(cloud, stream, seq)
    _put_item(cloud, {**item, "hash": {"S": "not-a-hash"}})


def _corrupt(cloud: LocalCloud, stream: str) -> None:
    _corrupt_at(cloud, stream, 6)


def _overwrite_checkpoint(cloud: LocalCloud, stream: str) -> None:
    """Object Lock keeps the original version; a new latest version is all one can add."""
    s3, bucket = cloud.client("s3"), cloud.names["AuditBucket"]
    key = checkpoint_key(stream, 8)
    document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    document["createdAt"] = "2020-01-01T00:00:00Z"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())


def _hide_checkpoint(cloud: LocalCloud, stream: str) -> None:
    """A delete marker over the first checkpoint (its locked version stays)."""
    cloud.client("s3").delete_object(
        Bucket=cloud.names["AuditBucket"], Key=checkpoint_key(stream, 4)
    )


def _edit_tail(cloud: LocalCloud, stream: str) -> None:
    _edit_body(cloud, stream, 10)


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_edit_body, (ProblemKind.HASH_MISMATCH, 6, None)),
        (_delete, (ProblemKind.SEQ_GAP, 6, None)),
        # The forged record chains to 5; the moved record after it no longer links.
        (_insert, (ProblemKind.PREV_HASH_MISMATCH, 7, None)),
        (_reorder, (ProblemKind.PREV_HASH_MISMATCH, 6, None)),
        (_corrupt, (ProblemKind.UNREADABLE, 6, None)),
        (_overwrite_checkpoint, (ProblemKind.CHECKPOINT_SIGNATURE_INVALID, None, 1)),
        (_hide_checkpoint, (ProblemKind.CHECKPOINT_RANGE, None, 0)),
        (_edit_tail, (ProblemKind.HASH_MISMATCH, 10, None)),
    ],
    ids=[
        "edit",
        "delete",
        "insert",
        "reorder",
        "corrupt",
        "overwrite-checkpoint",
        "hide-checkpoint",
        "edit-uncheckpointed",
    ],
)
def test_tampering_through_storage_is_reported_at_the_first_bad_record(
    local_cloud: LocalCloud,
    as_role: dict[str, ModelOpsClient],
    audit: Callable[[int], AuditService],
    tamper: Tamper,
    expected: tuple[ProblemKind, int | None, int | None],
) -> None:
    # Given a stream of 10 records, checkpointed at 4 and 8
    stream = fresh_stream()
    service = audit(4)
    for _ in range(10):
        service.record(event(stream))
    reader = as_role["kernel"]
    intact = reader.call("GET", "/audit/verify", query={"stream": stream})["report"]
    assert intact["ok"] and intact["checkpointsChecked"] == 2 and intact["uncheckpointed"] == 2

    # When someone with storage access tampers with it
    tamper(local_cloud, stream)

    # Then verification names the first bad record or checkpoint
    report = reader.call("GET", "/audit/verify", query={"stream": stream})["report"]
    assert not report["ok"]
    problem = report["problem"]
    kind, seq, checkpoint = expected
    assert (problem["kind"], problem["stream"]) == (kind.value, stream)
    assert (problem["seq"], problem["checkpoint"]) == (seq, checkpoint)


# --- offline verification -------------------------------------------------------------------


@pytest.fixture
def credentials(local_cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI finds credentials in the standard chain: here, the environment."""
    kernel = local_cloud.principals["kernel"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", kernel.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", kernel.secret_access_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", local_cloud.region)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("MODELOPS_API_URL", raising=False)
    yield


def test_cli_verifies_an_export_offline_and_fails_on_a_tampered_file(
    local_cloud: LocalCloud,
    audit: Callable[[int], AuditService],
    credentials: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = fresh_stream()
    service = audit(4)
    for _ in range(10):
        service.record(event(stream))
    (key,) = ModelOpsClient(local_cloud.api_url).call("GET", "/audit/keys")["keys"]
    pem = tmp_path / "ledger.pem"
    pem.write_text(key["publicKeyPem"])
    export = tmp_path / "export"

    # Download (keys from GET /audit/keys), then verify the directory with the PEM only
    argv = ["audit", "verify", "--api-url", local_cloud.api_url, "--stream", stream]
    assert modelops([*argv, "--export-dir", str(export)]) == 0
    assert "ledger OK: 1 stream(s)" in capsys.readouterr().out
    offline = ["audit", "verify", "--export-dir", str(export), "--public-key", str(pem)]
    assert modelops(offline) == 0
    out = capsys.readouterr().out
    assert "10 records, 2 signed checkpoints, 2 records not yet checkpointed" in out
    assert key["fingerprint"] in out

    records = (export / "records.jsonl").read_text().splitlines()
    checkpoints = (export / "checkpoints.jsonl").read_text().splitlines()
    assert len(records) == 10 and len(checkpoints) == 2

    def verify_with(lines: list[str], name: str = "records.jsonl") -> str:
        (export / name).write_text("\n".join(lines) + "\n")
        assert modelops(offline) == 1
        return capsys.readouterr().out

    edited = json.loads(records[2])
    edited["body"] = edited["body"].replace('"status":201', '"status":200')
    out = verify_with([*records[:2], json.dumps(edited), *records[3:]])
    assert "FAILED at stream" in out and "record 3: hash_mismatch" in out
    out = verify_with([*records[:2], records[3], records[2], *records[4:]])
    assert "record 3: seq_order" in out
    out = verify_with([*records[:5], *records[6:]])
    assert "record 6: seq_gap" in out
    (export / "records.jsonl").write_text("\n".join(records) + "\n")
    out = verify_with(checkpoints[1:], "checkpoints.jsonl")
    assert "checkpoint 0: checkpoint_range" in out

    # A key that did not sign the checkpoints fails them
    (export / "checkpoints.jsonl").write_text("\n".join(checkpoints) + "\n")
    other = Ed25519PrivateKey.generate().public_key()
    pem.write_text(
        public_key_pem(other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    )
    assert modelops(offline) == 1
    assert "checkpoint 0: checkpoint_signature_invalid" in capsys.readouterr().out


def test_cli_verifies_the_api_streams_and_reports_one_the_server_cannot_export(
    local_cloud: LocalCloud,
    as_role: dict[str, ModelOpsClient],
    audit: Callable[[int], AuditService],
    credentials: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Something in both API streams: two refused calls
    assert as_role["kernel"].request("POST", "/audit/checkpoint", query={"stream": "x"})[0] == 403
    assert as_role["approver"].request("POST", "/models/register", {})[0] == 400
    argv = ["audit", "verify", "--api-url", local_cloud.api_url, "--stream"]
    for stream in ("registry", "audit"):
        assert modelops([*argv, stream]) == 0
        assert f"ledger OK: 1 stream(s) ({stream})" in capsys.readouterr().out

    stream = fresh_stream()
    for _ in range(3):
        audit(100).record(event(stream))
    _corrupt_at(local_cloud, stream, 2)
    assert modelops([*argv, stream]) == 1
    assert "FAILED: the export stopped: record 2 is not a ledger record" in (
        capsys.readouterr().out
    )


# --- EventBridge and Object Lock ------------------------------------------------------------


def test_audit_events_reach_eventbridge_rules_and_their_sqs_targets(
    local_cloud: LocalCloud, as_role: dict[str, ModelOpsClient]
) -> None:
    sqs, events = local_cloud.client("sqs"), local_cloud.client("events")
    bus = local_cloud.names[platform.EVENT_BUS.logical_id]
    queue_url = sqs.create_queue(QueueName=f"kernel-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = f"audit-to-kernel-{uuid.uuid4().hex[:8]}"
    events.put_rule(
        Name=rule,
        EventBusName=bus,
        EventPattern=json.dumps(
            {"source": [SOURCE], "detail-type": [AuditEventRecorded.DETAIL_TYPE]}
        ),
    )
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "kernel", "Arn": queue_arn}])
    correlation = f"kernel-flow-{uuid.uuid4().hex[:8]}"

    status, _ = as_role["approver"].request(
        "POST", "/dataset/register", {"name": "x"}, headers={"X-Correlation-Id": correlation}
    )
    assert status in {400, 403}

    received: list[dict[str, Any]] = []
    for _ in range(5):
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", [])
        received += [json.loads(m["Body"]) for m in messages]
        if any(m["detail"]["event"]["correlationId"] == correlation for m in received):
            break
    (ours,) = [m for m in received if m["detail"]["event"]["correlationId"] == correlation]
    assert (ours["source"], ours["detail-type"]) == (SOURCE, AuditEventRecorded.DETAIL_TYPE)
    detail = ours["detail"]
    assert detail["stream"] == "registry" and detail["seq"] >= 1 and len(detail["hash"]) == 64
    assert detail["event"]["principal"] == local_cloud.principals["approver"].arn
    assert detail["event"]["outcome"] == "REJECTED"


def test_checkpoints_are_written_under_object_lock_in_compliance_mode(
    local_cloud: LocalCloud, audit: Callable[[int], AuditService]
) -> None:
    stream = fresh_stream()
    service = audit(100)
    service.record(event(stream))
    made = service.checkpoint(stream)
    assert made is not None

    s3, bucket = local_cloud.client("s3"), local_cloud.names[platform.AUDIT_BUCKET.logical_id]
    head = s3.head_object(Bucket=bucket, Key=checkpoint_key(stream, made.toSeq))
    assert head["ObjectLockMode"] == "COMPLIANCE"
    retain_until = head["ObjectLockRetainUntilDate"]
    expected = datetime.now(UTC) + timedelta(days=platform.AUDIT_BUCKET.object_lock_days or 0)
    assert abs(retain_until - expected) < timedelta(days=1)
    # The locked version cannot be deleted before its retention date.
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(
            Bucket=bucket, Key=checkpoint_key(stream, made.toSeq), VersionId=head["VersionId"]
        )


def test_the_scheduled_function_checkpoints_every_stream_and_fails_loudly_on_a_broken_one(
    local_cloud: LocalCloud, audit: Callable[[int], AuditService], store: DynamoLedgerStore
) -> None:
    good, broken = fresh_stream(), fresh_stream()
    for _ in range(3):
        audit(100).record(event(good))
        audit(100).record(event(broken))
    _edit_body(local_cloud, broken, 2)

    # What the 15-minute schedule does in AWS (the local cloud runs no schedules)
    response = local_cloud.client("lambda").invoke(
        FunctionName=platform.AUDIT_CHECKPOINTS.name, Payload=b"{}"
    )

    # Then every intact stream is checkpointed, and the run fails naming the broken one
    assert response.get("FunctionError") == "Unhandled"
    error = json.loads(response["Payload"].read())["errorMessage"]
    assert broken in error and good not in error
    (checkpoint,) = store.checkpoints(good)
    assert (checkpoint.fromSeq, checkpoint.toSeq) == (1, 3)
    assert store.checkpoints(broken) == []
