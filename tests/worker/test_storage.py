"""Both storage backends, the S3 one against a real HTTP S3 server."""
from __future__ import annotations

import http.client
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
import pytest

from tests.conftest import free_port, keys_under

from worker.errors import ImageNotFound, InputTooLarge, StorageFailure
from worker.storage import InputLimits, LocalStorage, S3Storage


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


SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
ACCESS_DENIED = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"


@contextmanager
def flaky_front(upstream: str, failure: str, failures: int, only: str = ""):
    """An HTTP server on 127.0.0.1 in front of the S3 server that fails the first `failures` requests
    whose path holds `only` (failure "drop": closes the connection unanswered; "503": answers S3's
    SlowDown; "403": AccessDenied, which is not retried) and relays the rest. Yields (its URL, the
    paths it was asked for)."""
    target = urlsplit(upstream)
    asked: list[str] = []
    failed: list[str] = []

    class Front(BaseHTTPRequestHandler):
        def _serve(self):
            asked.append(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if only in self.path and len(failed) < failures:
                failed.append(self.path)
                if failure == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, error = (403, ACCESS_DENIED) if failure == "403" else (503, SLOW_DOWN)
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            upstream_conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            upstream_conn.request(self.command, self.path, body, dict(self.headers))
            answer = upstream_conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            upstream_conn.close()

        do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _serve

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Front)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("failure", ["drop", "503"])
def test_s3_retries_dropped_connections_and_throttling(bucket, s3_server, monkeypatch, failure):
    """botocore's standard mode retries a connection that drops and a SlowDown: the next attempt succeeds."""
    name, client = bucket
    client.put_object(Bucket=name, Key="ogs/x", Body=b"data")
    with flaky_front(s3_server["AWS_ENDPOINT_URL"], failure, failures=2) as (url, asked):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        assert S3Storage(name, max_attempts=3).get("ogs/x") == b"data"
    assert asked == [f"/{name}/ogs/x"] * 3


@pytest.mark.parametrize("failure", ["drop", "503"])
def test_s3_gives_up_after_its_attempts(bucket, s3_server, monkeypatch, failure):
    name, client = bucket
    client.put_object(Bucket=name, Key="ogs/x", Body=b"data")
    with flaky_front(s3_server["AWS_ENDPOINT_URL"], failure, failures=10) as (url, asked):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        with pytest.raises(StorageFailure, match=f"cannot read s3://{name}/ogs/x"):
            S3Storage(name, max_attempts=2).get("ogs/x")
    assert len(asked) == 2


def test_s3_with_nothing_listening_is_a_storage_failure(bucket, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # bound once, then freed
    with pytest.raises(StorageFailure, match="cannot read .*Could not connect"):
        S3Storage(bucket[0], max_attempts=2, connect_timeout_s=2).get("ogs/x")


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


CLIP_HEAD = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00"  # what imaging.video.sniff takes for an MP4


def _stores(tmp_path, bucket_name):
    return [LocalStorage(tmp_path), S3Storage(bucket_name)]


def test_get_input_spools_a_video_to_a_file_and_keeps_an_image_in_memory(tmp_path, bucket):
    name, client = bucket
    clip = CLIP_HEAD + bytes(range(256)) * 5000
    for key, data in (("ogs/clip", clip), ("ogs/image", b"\x89PNG\r\n\x1a\n" + b"x" * 100)):
        client.put_object(Bucket=name, Key=key, Body=data)
        (tmp_path / key).parent.mkdir(exist_ok=True)
        (tmp_path / key).write_bytes(data)
    for store in _stores(tmp_path, name):
        spooled = store.get_input("ogs/clip", InputLimits(max_bytes=1000, max_video_bytes=len(clip)))
        try:
            assert spooled.read_bytes() == clip  # over the images' limit, within the videos'
        finally:
            spooled.unlink()
        assert store.get_input("ogs/image", InputLimits(1000, 1000)).startswith(b"\x89PNG")
        with pytest.raises(InputTooLarge, match=r"ogs/clip is 1280016 bytes, the limit \(MAX_VIDEO_BYTES\) is 1000"):
            store.get_input("ogs/clip", InputLimits(max_bytes=10**9, max_video_bytes=1000))
        with pytest.raises(InputTooLarge, match=r"the limit \(MAX_INPUT_BYTES\) is 10"):
            store.get_input("ogs/image", InputLimits(max_bytes=10, max_video_bytes=10**9))
        with pytest.raises(ImageNotFound):
            store.get_input("ogs/none", InputLimits(10, 10))


def test_s3_put_file_is_one_multipart_upload(tmp_path, bucket):
    name, client = bucket
    path = tmp_path / "out.webm"
    path.write_bytes(np.random.default_rng(0).bytes(11 * 2**20))
    S3Storage(name, multipart_bytes=5 * 2**20).put_file("img/a/trans.webm", path, "video/webm")
    head = client.head_object(Bucket=name, Key="img/a/trans.webm")
    assert head["ContentType"] == "video/webm" and head["ETag"].endswith('-3"')  # three parts, one object
    assert client.get_object(Bucket=name, Key="img/a/trans.webm")["Body"].read() == path.read_bytes()


def test_s3_put_file_aborts_a_failed_upload_and_leaves_nothing(tmp_path, bucket, s3_server, monkeypatch):
    name, client = bucket
    path = tmp_path / "out.webm"
    path.write_bytes(np.random.default_rng(1).bytes(11 * 2**20))
    with flaky_front(s3_server["AWS_ENDPOINT_URL"], "403", failures=10, only="partNumber=2") as (url, asked):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        with pytest.raises(StorageFailure, match=f"cannot write s3://{name}/img/a/trans.webm"):
            S3Storage(name, multipart_bytes=5 * 2**20).put_file("img/a/trans.webm", path, "video/webm")
    assert any("uploads" in p for p in asked)  # it was a multipart upload ...
    assert keys_under(client, name, "img/") == []  # ... that shows nothing ...
    assert client.list_multipart_uploads(Bucket=name).get("Uploads", []) == []  # ... and was aborted


def test_local_put_file_is_atomic(tmp_path):
    store = LocalStorage(tmp_path / "bucket")
    source = tmp_path / "out.mov"
    source.write_bytes(b"mov bytes")
    store.put_file("img/a/trans.mov", source, "video/quicktime")
    folder = tmp_path / "bucket" / "img" / "a"
    assert [p.name for p in folder.iterdir()] == ["trans.mov"] and (folder / "trans.mov").read_bytes() == b"mov bytes"
    with pytest.raises(FileNotFoundError):
        store.put_file("img/b/trans.mov", tmp_path / "missing", "video/quicktime")
    assert list((tmp_path / "bucket" / "img" / "b").iterdir()) == []
