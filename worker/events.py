"""S3 ObjectCreated notifications: which `ogs/<id>` objects a notification's records name.

Keys arrive URL-encoded (spaces as '+'); test events and keys outside `ogs/` are skipped with a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

from worker.errors import InvalidInput
from worker.schema import validate_id

INPUT_PREFIX = "ogs/"


@dataclass(frozen=True)
class RecordRef:
    key: str | None
    id: str | None  # None when the record is skipped
    skip_reason: str | None = None


def _parse_record(record: object, bucket: str | None) -> RecordRef:
    if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
        return RecordRef(None, None, "not an S3 record")
    event = str(record.get("eventName", ""))
    if event and not event.startswith("ObjectCreated"):
        return RecordRef(None, None, f"event {event} is not ObjectCreated")
    s3 = record["s3"]
    raw_key = (s3.get("object") or {}).get("key")
    if not isinstance(raw_key, str):
        return RecordRef(None, None, "record has no object key")
    key = unquote_plus(raw_key)
    if not key.startswith(INPUT_PREFIX):
        return RecordRef(key, None, f"key outside {INPUT_PREFIX}")
    record_bucket = (s3.get("bucket") or {}).get("name")
    if bucket and record_bucket and record_bucket != bucket:
        return RecordRef(key, None, f"bucket {record_bucket} is not this worker's bucket {bucket}")
    try:
        return RecordRef(key, validate_id(key[len(INPUT_PREFIX):]))
    except InvalidInput as exc:
        return RecordRef(key, None, str(exc))


def parse_records(records: list, bucket: str | None) -> list[RecordRef]:
    """One RecordRef per record, in order; S3's test event carries no records and yields none."""
    return [_parse_record(record, bucket) for record in records]
