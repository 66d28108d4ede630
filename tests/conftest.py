"""Test-wide settings: offline, deterministic, and the paths of ../shared."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TORCH_NUM_THREADS", "2")

import pytest  # noqa: E402
import requests  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPO / ".." / "shared")).resolve()
# The device the end-to-end tests run the worker on: the CPU unless DEVICE says otherwise
# (benchmarks/gpu_check.sh runs the suite with DEVICE=cuda).
DEVICE = os.environ.get("DEVICE") or "cpu"
sys.path.insert(0, str(REPO))
torch.set_num_threads(int(os.environ["TORCH_NUM_THREADS"]))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: left out of the quick subset (pytest -m \"not slow\"): real weights at full size, "
        "parity oracles of the large networks, a worker process per test or a module of chain runs")


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return SHARED / "parity"


# --- helpers shared by the end-to-end tests ---------------------------------------------------------

CAR = SHARED / "data" / "rembg" / "car-1.jpg"


def worker_env(s3_env: dict, bucket_name: str, **extra: str) -> dict:
    env = {**os.environ, **s3_env, "S3_BUCKET": bucket_name, "WEIGHTS_DIR": str(SHARED / "weights"),
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "DEVICE": DEVICE}
    env.update(extra)
    return env


def run_local(env: dict, job_input: dict, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "handler.py"), "--test_input", json.dumps({"input": job_input})],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )


def read_png(client, bucket_name: str, key: str) -> Image.Image:
    body = client.get_object(Bucket=bucket_name, Key=key)
    assert body["ContentType"] == "image/png"
    return Image.open(io.BytesIO(body["Body"].read()))


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk of a PNG, each CRC checked with zlib.crc32 over type and data."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + data), kind
        chunks.append((kind, data))
        pos += 12 + length
    return chunks


def png_filter_types(png: bytes) -> set[int]:
    """The filter types of an 8-bit RGB/RGBA PNG's rows (the first byte of each decompressed row)."""
    chunks = png_chunks(png)
    width, height, _, colour_type = struct.unpack(">IIBB", chunks[0][1][:10])
    rows = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    stride = 1 + width * {2: 3, 6: 4}[colour_type]
    return set(rows[::stride][:height])


@contextmanager
def serve_api(env: dict, log_path: Path | None = None):
    """handler.py --rp_serve_api in a subprocess: runpod's local /run, /runsync and /status server
    (its log written to `log_path` when given)."""
    port = free_port()
    log_file = open(log_path, "w") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "handler.py"), "--rp_serve_api", "--rp_api_port", str(port),
         "--rp_api_host", "127.0.0.1"],
        env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                requests.get(url + "/docs", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if log_path:
            log_file.close()


def runsync(url: str, job_input: dict) -> dict:
    return requests.post(url + "/runsync", json={"input": job_input}, timeout=300).json()


def photo_bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


# ../shared/weights stores the Real-ESRGAN files under names of their own (float16 convolutions).
REAL_WEIGHT_FILES = {"RealESRGAN_x4plus-fp16.pth": "RealESRGAN_x4plus.pth",
                     "RealESRGAN_x4plus_anime_6B-fp16.pth": "RealESRGAN_x4plus_anime_6B.pth"}


def link_real_weights(folder: Path) -> Path:
    """A weights folder holding every real file of ../shared/weights under the name the registry
    looks for (links, nothing copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in (SHARED / "weights").iterdir():
        if path.suffix in (".pth", ".safetensors"):
            (folder / REAL_WEIGHT_FILES.get(path.name, path.name)).symlink_to(path)
    return folder


@pytest.fixture(scope="session")
def install_stand_ins(tmp_path_factory):
    """install(names, folder): the oracle's stand-in checkpoint of each registry name linked into `folder`
    under the file name the registry looks for. Each is written once per run (GFPGAN's is 349 MB and
    six modules want it), so the suite's disk stays a few GB on CI's shared disk. The links lead to files
    that every module shares: a test that writes a checkpoint of its own into `folder` leaves that name out."""
    import parity
    from models import registry

    store = tmp_path_factory.mktemp("stand-ins")

    def install(names: list[str], folder: Path) -> Path:
        for name in names:
            filename = registry.get_spec(name).weights.filename
            home = store / name.replace("/", "--")
            source = home / filename
            if not source.exists():
                parity.install_oracle_weights([name], home)
            target = folder / filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
        return folder

    return install


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
