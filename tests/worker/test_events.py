"""S3 notifications: which records are jobs, and why the others are skipped."""
from __future__ import annotations

from worker.events import parse_records


def record(key: str, bucket: str = "b", event: str = "ObjectCreated:Put") -> dict:
    return {"eventSource": "aws:s3", "eventName": event, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def test_keys_are_url_decoded():
    refs = parse_records([record("ogs/my+photo%2B1.jpg"), record("ogs/a%2Fb")], "b")
    assert [r.id for r in refs] == ["my photo+1.jpg", "a/b"]


def test_skips_with_reasons():
    refs = parse_records([
        record("img/x/trans.png"), record("ogs/x", event="ObjectRemoved:Delete"), record("ogs/x", bucket="other"),
        record("ogs/..%2Fetc"), {"Event": "s3:TestEvent"}, "junk",
    ], "b")
    assert all(r.id is None for r in refs)
    reasons = [r.skip_reason for r in refs]
    assert "outside ogs/" in reasons[0] and "ObjectRemoved" in reasons[1] and "other" in reasons[2]
    assert "'..'" in reasons[3] and reasons[4] == reasons[5] == "not an S3 record"


def test_any_bucket_when_none_is_configured():
    assert parse_records([record("ogs/x", bucket="whatever")], None)[0].id == "x"
