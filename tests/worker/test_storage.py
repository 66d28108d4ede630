"""Both storage backends, the S3 one against a real HTTP S3 server."""
from __future__ import annotations

import http.client
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from tests.conftest import free_port

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


SLOW_DOWN = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"


@contextmanager
def flaky_front(upstream: str, failure: str, failures: int):
    """An HTTP server on 127.0.0.1 in front of the S3 server that fails the first `failures` requests
    (failure "drop": closes the connection unanswered; "503": answers S3's SlowDown) and relays the
    rest. Yields (its URL, the paths it was asked for)."""
    target = urlsplit(upstream)
    asked: list[str] = []

    class Front(BaseHTTPRequestHandler):
        def _serve(self):
            asked.append(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if len(asked) <= failures:
                if failure == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(503)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(SLOW_DOWN)))
                self.end_headers()
                self.wfile.write(SLOW_DOWN)
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
