"""Test-wide settings: offline, deterministic, and the paths of ../shared."""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TORCH_NUM_THREADS", "2")

import pytest  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPO / ".." / "shared")).resolve()
sys.path.insert(0, str(REPO))
torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return SHARED / "parity"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real HTTP S3 (moto's server) on 127.0.0.1, with credentials for it in the environment."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def bucket(s3_server, request):
    """A fresh bucket on the S3 server: (name, boto3 client)."""
    import re

    import boto3

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + f"-{free_port()}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=name)
    return name, client


def keys_under(client, bucket_name: str, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=bucket_name, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]
