"""Where inputs come from and outputs go: an S3 bucket, or a local folder with the same layout.

Inputs are `ogs/<id>` (and `bgr/<id>` for background plates), outputs `img/<id>/<file>`. Each output is
written in one request (S3 PUT, or a rename on disk), so a reader never sees half a file and a failed
job leaves nothing behind. A video goes through files, not memory: the input is streamed to a temporary
file (recognised by its first bytes, with its own size limit), and an output file goes up as one managed
transfer (a multipart upload above MULTIPART_THRESHOLD) that S3 shows only once it is complete and that
is aborted on failure.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from imaging.video import sniff
from worker.config import Settings
from worker.errors import ImageNotFound, InputTooLarge, StorageFailure


class Storage(Protocol):
    name: str

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; InputTooLarge, before its body is read, when it is over max_bytes."""
        ...

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get_input(self, key: str, limits: InputLimits) -> bytes | Path:
        """An input's bytes, or a temporary file holding it when it is a video (the caller deletes it)."""
        ...

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """The file's content at `key`, visible only once whole; nothing there on failure."""
        ...


SNIFF_BYTES = 16  # enough for every signature imaging.video.sniff reads
CHUNK_BYTES = 2**20
MULTIPART_THRESHOLD = 16 * 2**20  # files above this go up as one multipart upload of 16 MiB parts


@dataclass(frozen=True)
class InputLimits:
    max_bytes: int  # MAX_INPUT_BYTES, for images
    max_video_bytes: int  # MAX_VIDEO_BYTES

    @classmethod
    def of(cls, settings: Settings) -> InputLimits:
        return cls(settings.max_input_bytes, settings.max_video_bytes)


def _receive(key: str, size: int, body: BinaryIO, limits: InputLimits) -> bytes | Path:
    """The body of an object of `size` bytes: an image in memory; a video (by its first bytes) streamed
    to a temporary file. Each is refused unread over its limit."""
    head = body.read(SNIFF_BYTES)
    if sniff(head) is None:
        _check_size(key, size, limits.max_bytes)
        return head + body.read()
    _check_size(key, size, limits.max_video_bytes, "MAX_VIDEO_BYTES")
    fd, name = tempfile.mkstemp(prefix="video-in-")
    try:
        with os.fdopen(fd, "wb") as spool:
            spool.write(head)
            shutil.copyfileobj(body, spool, CHUNK_BYTES)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


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

    def get_input(self, key: str, limits: InputLimits) -> bytes | Path:
        path = self._path(key)
        if not path.is_file():
            raise ImageNotFound(key)
        with path.open("rb") as body:
            return _receive(key, path.stat().st_size, body, limits)

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class S3Storage:
    """boto3 with botocore's standard retry mode: throttling, 5xx and dropped connections are retried."""

    def __init__(self, bucket: str, max_attempts: int = 4, connect_timeout_s: float = 5, read_timeout_s: float = 30,
                 multipart_bytes: int = MULTIPART_THRESHOLD):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.multipart_bytes = multipart_bytes
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
        def read(response: dict) -> bytes:
            _check_size(key, response.get("ContentLength", 0), max_bytes)
            return response["Body"].read()

        return self._get(key, read)

    def get_input(self, key: str, limits: InputLimits) -> bytes | Path:
        return self._get(key, lambda response: _receive(key, response.get("ContentLength", 0), response["Body"],
                                                        limits))

    def _get(self, key: str, read):
        """read(get_object's response): the size is in its headers, so an oversized object is refused
        before its body is read."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            try:
                return read(response)
            finally:
                response["Body"].close()
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

    def put_file(self, key: str, path: Path, content_type: str) -> None:
        """boto3's managed transfer: one PUT up to `multipart_bytes`, else one multipart upload, which
        S3 shows only when completed and which s3transfer aborts when a part fails."""
        from boto3.exceptions import S3UploadFailedError
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        config = TransferConfig(multipart_threshold=self.multipart_bytes, multipart_chunksize=self.multipart_bytes,
                                max_concurrency=4)
        try:
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type},
                                    Config=config)
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise StorageFailure(f"cannot write s3://{self.bucket}/{key}: {exc}") from None


def _check_size(key: str, size: int, max_bytes: int | None, limit: str = "MAX_INPUT_BYTES") -> None:
    if max_bytes is not None and size > max_bytes:
        raise InputTooLarge(f"input too large: {key} is {size} bytes, the limit ({limit}) is {max_bytes}")


def from_settings(settings: Settings) -> Storage:
    if settings.bucket:
        return S3Storage(settings.bucket, settings.s3_max_attempts, settings.s3_connect_timeout_s,
                         settings.s3_read_timeout_s)
    return LocalStorage(settings.local_bucket_dir)
