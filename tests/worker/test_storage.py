"""Both storage backends, the S3 one against a real HTTP S3 server."""
from __future__ import annotations

import pytest

from worker.errors import ImageNotFound, StorageFailure
from worker.storage import LocalStorage, S3Storage


def test_s3_round_trip_and_content_type(bucket):
    name, client = bucket
    store = S3Storage(name)
    store.put("img/a/trans.png", b"png bytes", "image/png")
    head = client.head_object(Bucket=name, Key="img/a/trans.png")
    assert head["ContentType"] == "image/png"
    assert store.get("img/a/trans.png") == b"png bytes"


def test_s3_missing_key(bucket):
    with pytest.raises(ImageNotFound, match="no image at ogs/nothing"):
        S3Storage(bucket[0]).get("ogs/nothing")


def test_s3_missing_bucket(s3_server):
    with pytest.raises(StorageFailure, match="cannot read"):
        S3Storage("no-such-bucket-here").get("ogs/x")


def test_s3_retries_dropped_connections(bucket, monkeypatch):
    """botocore's standard mode retries a connection that drops: the second attempt succeeds."""
    name, client = bucket
    client.put_object(Bucket=name, Key="ogs/x", Body=b"data")
    store = S3Storage(name, max_attempts=3)
    from botocore.exceptions import ConnectionClosedError

    calls = []
    original = store.client._endpoint.http_session.send

    def flaky_send(request):
        calls.append(request.url)
        if len(calls) == 1:
            raise ConnectionClosedError(endpoint_url=request.url)
        return original(request)

    monkeypatch.setattr(store.client._endpoint.http_session, "send", flaky_send)
    assert store.get("ogs/x") == b"data"
    assert len(calls) == 2


def test_s3_retries_throttling(bucket, monkeypatch):
    name, client = bucket
    client.put_object(Bucket=name, Key="ogs/x", Body=b"data")
    store = S3Storage(name, max_attempts=3)
    from botocore.awsrequest import AWSResponse

    calls = []
    original = store.client._endpoint.http_session.send

    class Raw:
        def stream(self, **_):
            yield b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    def throttled_send(request):
        calls.append(request.url)
        if len(calls) == 1:
            return AWSResponse(request.url, 503, {}, Raw())
        return original(request)

    monkeypatch.setattr(store.client._endpoint.http_session, "send", throttled_send)
    assert store.get("ogs/x") == b"data"
    assert len(calls) == 2


def test_local_storage_layout_and_atomic_put(tmp_path):
    store = LocalStorage(tmp_path)
    (tmp_path / "ogs").mkdir()
    (tmp_path / "ogs" / "a").write_bytes(b"in")
    assert store.get("ogs/a") == b"in"
    store.put("img/a/trans.png", b"out", "image/png")
    assert (tmp_path / "img" / "a" / "trans.png").read_bytes() == b"out"
    assert [p.name for p in (tmp_path / "img" / "a").iterdir()] == ["trans.png"]
    with pytest.raises(ImageNotFound, match="no image at ogs/b"):
        store.get("ogs/b")
    with pytest.raises(StorageFailure, match="escapes"):
        store.get("ogs/../../etc/passwd")
