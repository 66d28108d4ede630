"""Where inputs come from and outputs go: an S3 bucket, or a local folder with the same layout.

Inputs are `ogs/<id>` (and `bgr/<id>` for background plates), outputs `img/<id>/<file>`. Each output is
written in one request (S3 PUT, or a rename on disk), so a reader never sees half a file and a failed
job leaves nothing behind.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

from worker.config import Settings
from worker.errors import ImageNotFound, InputTooLarge, StorageFailure


class Storage(Protocol):
    name: str

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; InputTooLarge, before its body is read, when it is over max_bytes."""
        ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...


class LocalStorage:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.name = f"file://{self.root}"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StorageFailure(f"key {key!r} escapes the bucket folder")
        return path

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise ImageNotFound(key)
        _check_size(key, path.stat().st_size, max_bytes)
        return path.read_bytes()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide outputs from other users of the folder
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class S3Storage:
    """boto3 with botocore's standard retry mode: throttling, 5xx and dropped connections are retried."""

    def __init__(self, bucket: str, max_attempts: int = 4, connect_timeout_s: float = 5, read_timeout_s: float = 30):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.name = f"s3://{bucket}"
        config = Config(
            # every attempt, the first included (botocore's "max_attempts" would count the retries only)
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            tcp_keepalive=True,
        )
        # AWS_ENDPOINT_URL and the other AWS_* variables are read by boto3 itself.
        self.client = boto3.session.Session().client("s3", config=config)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            # The size is in the response headers: an oversized object is refused unread.
            body = response["Body"]
            try:
                _check_size(key, response.get("ContentLength", 0), max_bytes)
                return body.read()
            finally:
                body.close()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise ImageNotFound(key) from None
            raise StorageFailure(f"cannot read s3://{self.bucket}/{key}: {code or exc}") from None
        except BotoCoreError as exc:
            raise StorageFailure(f"cannot read s3://{self.bucket}/{key}: {exc}") from None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise StorageFailure(f"cannot write s3://{self.bucket}/{key}: {exc}") from None


def _check_size(key: str, size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise InputTooLarge(f"input too large: {key} is {size} bytes, the limit (MAX_INPUT_BYTES) is {max_bytes}")


def from_settings(settings: Settings) -> Storage:
    if settings.bucket:
        return S3Storage(settings.bucket, settings.s3_max_attempts, settings.s3_connect_timeout_s,
                         settings.s3_read_timeout_s)
    return LocalStorage(settings.local_bucket_dir)
