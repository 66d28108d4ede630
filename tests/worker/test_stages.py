"""Every stage of every task runs off the event loop: removal, mask, restore (RGBA, upscale 2), upscale
(RGBA) and matte jobs in flight together, with real u2netp / Real-ESRGAN weights and the parity
oracle's stand-ins for the face and matting networks; the stage runner's records say where each ran."""
from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import replace

import pytest
from PIL import Image

from tests.conftest import CAR, DEVICE, SHARED, link_real_weights
from worker.config import Settings
from worker.context import JobRun
from worker.jobs import Worker

STAND_INS = ["retinaface-resnet50", "gfpgan-v1.4", "parsenet", "bmv2-mobilenetv2"]
BGM = SHARED / "data" / "bgm"


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def bucket(tmp_path_factory):
    root = tmp_path_factory.mktemp("bucket")
    (root / "ogs").mkdir()
    (root / "bgr").mkdir()
    car = Image.open(CAR).convert("RGB")
    rgba = car.resize((160, 120)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((160, 120)))
    objects = {
        "ogs/photo": png(car.resize((160, 120))),
        "ogs/face": png(rgba),  # the stand-in RetinaFace finds a face in this crop of the car photo
        "ogs/small": png(rgba.resize((32, 24))),
        "ogs/matte": png(Image.open(BGM / "0001_img.png").convert("RGB").resize((256, 144))),
        "bgr/matte": png(Image.open(BGM / "0001_back.png").convert("RGB").resize((256, 144))),
    }
    for key, body in objects.items():
        (root / key).write_bytes(body)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory, install_stand_ins):
    return install_stand_ins(STAND_INS, link_real_weights(tmp_path_factory.mktemp("weights")))


JOBS = [
    {"id": "photo", "model": "u2netp"},
    {"id": "photo", "model": "u2netp", "task": "mask"},
    {"id": "face", "task": "restore", "upscale": 2},
    {"id": "small", "task": "upscale"},
    {"id": "matte", "task": "matte"},
]


@pytest.mark.slow
def test_no_stage_of_any_task_runs_on_the_event_loop(bucket, weights):
    settings = replace(Settings(local_bucket_dir=str(bucket), weights_dir=weights, device=DEVICE,
                                default_model="u2netp"), max_concurrency=len(JOBS))
    worker = Worker(settings)
    runs: list[JobRun] = []
    worker.observe = runs.append

    async def main():
        loop_thread = threading.get_ident()
        answers = await asyncio.gather(*(worker.run(job, f"req-{n}") for n, job in enumerate(JOBS)))
        return loop_thread, answers

    try:
        loop_thread, answers = asyncio.run(main())
    finally:
        worker.close()
    assert all("key" in a for a in answers), answers
    assert answers[2]["width"] == 320 and answers[3]["width"] == 128  # restore x2, upscale x4, both RGBA
    assert len(runs) == len(JOBS)
    stages = {(run.job.options.task, record.stage): record for run in runs for record in run.stages}
    assert {("restore", "to_host"), ("upscale", "pixels"), ("matte", "model"), ("mask", "postprocess"),
            ("remove_background", "encode")} <= set(stages)
    on_loop = [key for key, record in stages.items() if record.thread == loop_thread]
    assert on_loop == []
    assert all(record.cpu_ms >= 0 and record.wall_ms >= 0 for record in stages.values())
