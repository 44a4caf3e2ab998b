"""``LedgerStore`` over DynamoDB (the records, an index of checkpoints) and S3 with Object Lock
(the write-once checkpoints that verification trusts), with boto3.

Items of the ledger table (partition key ``stream``, sort key ``seq``, both strings):
  <stream> / <seq>                           a record: prevHash, hash, body
  CHECKPOINT#<stream> / <fromSeq>            a checkpoint (``doc``: its canonical JSON)
  STREAMS / <stream>                         the stream exists (written with its record 1)

Numbers in keys are zero-padded to 20 digits so that items sort by them. A record is put
with ``attribute_not_exists``: of two writers that sealed the same seq, one gets
``SequenceTaken`` and re-reads the head, so the chain cannot fork. A checkpoint is put the
same way keyed by its ``fromSeq``, so two writers cannot both checkpoint the range after the
previous checkpoint.

Objects of the audit bucket (versioned, Object Lock default retention):
  checkpoints/<stream>/<toSeq>.json          the checkpoint, canonical JSON

Stream names never contain ``#`` or capitals (``STREAM_PATTERN``), so the ``CHECKPOINT#``
and ``STREAMS`` partitions cannot collide with a stream.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from modelops.domain.digests import canonical_json
from modelops.domain.ledger import Checkpoint, LedgerRecord
from modelops.ports import AlreadyExists, Page, SequenceTaken, UnreadableEntry

SEQ_DIGITS = 20
STREAMS = "STREAMS"
CHECKPOINT_PREFIX = "CHECKPOINT#"
OBJECT_PREFIX = "checkpoints/"
_KEY_NAMES = {"#p": "stream", "#s": "seq"}
_NEW_ITEM = "attribute_not_exists(#s)"
_PAGE_ITEMS = 1000  # per Query call; DynamoDB also stops at 1 MB


def padded(seq: int) -> str:
    return f"{seq:0{SEQ_DIGITS}d}"


def checkpoint_key(stream: str, to_seq: int) -> str:
    return f"{OBJECT_PREFIX}{stream}/{padded(to_seq)}.json"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class DynamoLedgerStore:
    def __init__(self, dynamodb: Any, s3: Any, table: str, bucket: str) -> None:
        self._ddb = dynamodb
        self._s3 = s3
        self._table = table
        self._bucket = bucket

    # --- records -------------------------------------------------------------------------

    def append(self, record: LedgerRecord) -> None:
        item = {
            "stream": _s(record.stream),
            "seq": _s(padded(record.seq)),
            "prevHash": _s(record.prevHash),
            "hash": _s(record.hash),
            "body": _s(record.body),
        }
        put = {
            "TableName": self._table,
            "Item": item,
            "ConditionExpression": _NEW_ITEM,
            "ExpressionAttributeNames": {"#s": "seq"},
            # On a conflict, the record that holds the seq: ours if an earlier attempt of
            # this call was stored but its answer was lost (the SDK retried the put).
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        try:
            if record.seq == 1:
                # The stream's first record also registers the stream, atomically.
                marker = {"stream": _s(STREAMS), "seq": _s(record.stream)}
                self._ddb.transact_write_items(
                    TransactItems=[
                        {"Put": put},
                        {"Put": {"TableName": self._table, "Item": marker}},
                    ]
                )
            else:
                self._ddb.put_item(**put)
        except ClientError as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                if _holds(exc.response.get("Item"), record):
                    return  # stored by an earlier attempt whose answer was lost
                raise SequenceTaken(f"{record.stream} {record.seq}") from exc
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    if _holds(reasons[0].get("Item"), record):
                        return
                    raise SequenceTaken(f"{record.stream} {record.seq}") from exc
            raise

    def head(self, stream: str) -> LedgerRecord | None:
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="#p = :p",
            ExpressionAttributeNames={"#p": "stream"},
            ExpressionAttributeValues={":p": _s(stream)},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return _record(stream, items[0]) if items else None

    def records(self, stream: str, from_seq: int, limit: int) -> Page[LedgerRecord]:
        found: list[LedgerRecord] = []
        start: dict[str, Any] | None = None
        more = True
        while more and len(found) < limit:
            args: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "#p = :p AND #s >= :from",
                "ExpressionAttributeNames": _KEY_NAMES,
                "ExpressionAttributeValues": {":p": _s(stream), ":from": _s(padded(from_seq))},
                "Limit": min(limit - len(found), _PAGE_ITEMS),
                "ConsistentRead": True,
            }
            if start is not None:
                args["ExclusiveStartKey"] = start
            response = self._ddb.query(**args)
            found += [_record(stream, item) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            more = start is not None
        next_token = str(found[-1].seq + 1) if more and found else None
        return Page(found, next_token)

    def streams(self) -> list[str]:
        names: set[str] = set()
        start: dict[str, Any] | None = None
        while True:
            args: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "#p = :p",
                "ExpressionAttributeNames": {"#p": "stream"},
                "ExpressionAttributeValues": {":p": _s(STREAMS)},
                "ConsistentRead": True,
            }
            if start is not None:
                args["ExclusiveStartKey"] = start
            response = self._ddb.query(**args)
            names |= {item["seq"]["S"] for item in response.get("Items", [])}
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
        # Streams whose records were deleted still have their write-once checkpoints.
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=OBJECT_PREFIX, Delimiter="/"):
            for prefix in page.get("CommonPrefixes", []):
                names.add(prefix["Prefix"].removeprefix(OBJECT_PREFIX).rstrip("/"))
        return sorted(names)

    # --- checkpoints ---------------------------------------------------------------------

    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        document = canonical_json(checkpoint.model_dump(mode="json")).decode()
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "stream": _s(CHECKPOINT_PREFIX + checkpoint.stream),
                    "seq": _s(padded(checkpoint.fromSeq)),
                    "toSeq": _s(padded(checkpoint.toSeq)),
                    "doc": _s(document),
                },
                ConditionExpression=_NEW_ITEM,
                ExpressionAttributeNames={"#s": "seq"},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            if self._indexed(checkpoint.stream, checkpoint.fromSeq) != checkpoint:
                raise AlreadyExists(
                    f"{checkpoint.stream}: a checkpoint from {checkpoint.fromSeq} exists"
                ) from exc
        self._archive(checkpoint, document)

    def latest_checkpoint(self, stream: str) -> Checkpoint | None:
        """The last checkpoint of the index; its write-once copy is completed here if the put
        that stored it failed between the two writes."""
        response = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="#p = :p",
            ExpressionAttributeNames={"#p": "stream"},
            ExpressionAttributeValues={":p": _s(CHECKPOINT_PREFIX + stream)},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        if not items:
            return None
        checkpoint = Checkpoint.model_validate_json(items[0]["doc"]["S"])
        if not self._archived(checkpoint):
            self._archive(checkpoint, canonical_json(checkpoint.model_dump(mode="json")).decode())
        return checkpoint

    def checkpoints(
        self, stream: str, from_seq: int = 1, to_seq: int | None = None
    ) -> list[Checkpoint]:
        prefix = f"{OBJECT_PREFIX}{stream}/"
        keys: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        # Keys sort by toSeq: start after the last one that ends before from_seq.
        start_after = checkpoint_key(stream, from_seq - 1) if from_seq > 1 else ""
        for page in paginator.paginate(Bucket=self._bucket, Prefix=prefix, StartAfter=start_after):
            keys += [item["Key"] for item in page.get("Contents", [])]
        selected: list[tuple[int, str]] = []
        for index, key in enumerate(sorted(keys)):
            name = key.removeprefix(prefix).removesuffix(".json")
            if not (len(name) == SEQ_DIGITS and name.isdigit()):
                raise UnreadableEntry(
                    stream, f"{key} is not named for a checkpoint", checkpoint=index
                )
            selected.append((index, key))
            if to_seq is not None and int(name) >= to_seq:
                break  # the first one reaching to_seq is the last that can cover it
        found: list[Checkpoint] = []
        for index, key in selected:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"].read()
            try:
                checkpoint = Checkpoint.model_validate_json(body)
            except ValidationError as exc:
                raise UnreadableEntry(
                    stream, f"checkpoint {index} ({key}) is not a checkpoint", checkpoint=index
                ) from exc
            if to_seq is None or checkpoint.fromSeq <= to_seq:
                found.append(checkpoint)
        return found

    def _archived(self, checkpoint: Checkpoint) -> bool:
        try:
            self._s3.head_object(
                Bucket=self._bucket, Key=checkpoint_key(checkpoint.stream, checkpoint.toSeq)
            )
        except ClientError as exc:
            if _code(exc) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def _archive(self, checkpoint: Checkpoint, document: str) -> None:
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=checkpoint_key(checkpoint.stream, checkpoint.toSeq),
                Body=document.encode(),
                ContentType="application/json",
                # Object Lock needs an integrity checksum on every put.
                ChecksumAlgorithm="SHA256",
                IfNoneMatch="*",  # write-once: a retry never adds a version
            )
        except ClientError as exc:
            if _code(exc) != "PreconditionFailed":
                raise

    def _indexed(self, stream: str, from_seq: int) -> Checkpoint | None:
        item = self._ddb.get_item(
            TableName=self._table,
            Key={"stream": _s(CHECKPOINT_PREFIX + stream), "seq": _s(padded(from_seq))},
            ConsistentRead=True,
        ).get("Item")
        return Checkpoint.model_validate_json(item["doc"]["S"]) if item else None


def _holds(item: dict[str, Any] | None, record: LedgerRecord) -> bool:
    """Whether the stored ``item`` is ``record`` (its hash covers its seq and event id)."""
    return item is not None and item.get("hash", {}).get("S") == record.hash


def _record(stream: str, item: dict[str, Any]) -> LedgerRecord:
    seq_text = item.get("seq", {}).get("S", "")
    try:
        return LedgerRecord(
            stream=stream,
            seq=int(seq_text),
            prevHash=item["prevHash"]["S"],
            hash=item["hash"]["S"],
            body=item["body"]["S"],
        )
    except (KeyError, ValueError, ValidationError) as exc:
        seq = int(seq_text) if seq_text.isdigit() else None
        raise UnreadableEntry(
            stream, f"record {seq if seq is not None else '?'} is not a ledger record", seq=seq
        ) from exc
