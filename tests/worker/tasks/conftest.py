"""The tasks in process, on a local folder as the bucket, with the real weights of ../shared/weights
beside the oracle's stand-ins for the face, matting and refinement networks."""
from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import DEVICE, link_real_weights
from worker.config import Settings
from worker.jobs import Worker

STAND_INS = ["retinaface-resnet50", "gfpgan-v1.4", "parsenet", "bmv2-mobilenetv2", "realesrgan-x2plus", "fba",
             "cascadepsp-carveset"]


@pytest.fixture(scope="session")
def task_weights(tmp_path_factory, install_stand_ins) -> Path:
    return install_stand_ins(STAND_INS, link_real_weights(tmp_path_factory.mktemp("task-weights")))


def encoded(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


class Bucket:
    """A local bucket folder and a worker serving it."""

    def __init__(self, root: Path, weights: Path, **settings):
        self.root = root
        base = Settings(local_bucket_dir=str(root), weights_dir=weights, device=DEVICE, default_model="u2netp",
                        batch_wait_ms=0, max_concurrency=1)
        self.worker = Worker(replace(base, **settings))

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def run(self, job: dict) -> dict:
        return asyncio.run(self.worker.run(job, "test"))

    def written(self) -> list[str]:
        img = self.root / "img"
        return sorted(str(p.relative_to(self.root)) for p in img.rglob("*") if p.is_file()) if img.exists() else []

    def refused(self, job: dict) -> str:
        """The error a job answers; it must have written nothing under img/."""
        before = self.written()
        answer = self.run(job)
        assert "error" in answer and "internal error" not in answer["error"], answer
        assert self.written() == before
        return answer["error"]

    def read(self, key: str) -> Image.Image:
        return Image.open(self.root / key)


@pytest.fixture
def bucket(tmp_path, task_weights) -> Bucket:
    return Bucket(tmp_path, task_weights)
