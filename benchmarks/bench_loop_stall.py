"""How long the worker's event loop is kept from running: removal, mask, restore (RGBA, upscale 2),
upscale (RGBA) and matte jobs in flight together, beside a probe coroutine that sleeps 10 ms in a
loop and notes how late each wake-up is. Work on the loop's thread (instead of a stage's thread)
shows up as a long stall: every job in flight waits for it.

    PYTHONPATH=. python benchmarks/bench_loop_stall.py [--megapixels 1] [--upscale-megapixels 0.02]
                                                       [--rounds 2] [--device cpu]

A local bucket in a temporary folder; real u2netp and Real-ESRGAN weights from ../shared/weights,
the parity oracle's stand-ins for GFPGAN, RetinaFace, ParseNet and BackgroundMattingV2. Prints the
longest stall and the 99th percentile of the probe's lateness, and the machine's load average
(a loaded machine delays wake-ups too: compare against --no-jobs on the same machine).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

import parity  # noqa: E402
from worker.config import Settings  # noqa: E402
from worker.jobs import Worker  # noqa: E402

STAND_INS = ["retinaface-resnet50", "gfpgan-v1.4", "parsenet", "bmv2-mobilenetv2"]
PROBE_S = 0.010
JOBS = [
    {"id": "photo", "model": "u2netp"},
    {"id": "photo", "model": "u2netp", "task": "mask"},
    {"id": "rgba", "task": "restore", "upscale": 2},
    {"id": "small", "task": "upscale"},
    {"id": "matte", "task": "matte"},
]


def sized(image: Image.Image, megapixels: float) -> Image.Image:
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def fill_bucket(root: Path, megapixels: float, upscale_megapixels: float) -> None:
    photo = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    rgba = sized(photo, megapixels).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
    bgm = SHARED / "data" / "bgm"
    objects = {
        "ogs/photo": png(sized(photo, megapixels)),
        "ogs/rgba": png(rgba),
        "ogs/small": png(sized(rgba, upscale_megapixels)),
        "ogs/matte": png(sized(Image.open(bgm / "0001_img.png").convert("RGB"), megapixels)),
        "bgr/matte": png(sized(Image.open(bgm / "0001_back.png").convert("RGB"), megapixels)),
    }
    for key, body in objects.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(body)


async def probe(stop: asyncio.Event, lateness: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(PROBE_S)
        lateness.append(time.perf_counter() - start - PROBE_S)


async def one_round(worker: Worker, with_jobs: bool) -> tuple[list[float], list[dict]]:
    stop, lateness = asyncio.Event(), []
    probing = asyncio.ensure_future(probe(stop, lateness))
    answers = await asyncio.gather(*(worker.run(job) for job in JOBS)) if with_jobs else []
    if not with_jobs:
        await asyncio.sleep(5)
    stop.set()
    await probing
    return lateness, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--upscale-megapixels", type=float, default=0.02, help="the upscale job's input")
    parser.add_argument("--rounds", type=int, default=2, help="after one warm-up round")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-jobs", action="store_true", help="the probe alone: the machine's own lateness")
    args = parser.parse_args()

    scratch = tempfile.TemporaryDirectory()  # bucket and weights (stand-ins of ~600 MB), removed as the script ends
    root, weights = Path(scratch.name) / "bucket", Path(scratch.name) / "weights"
    root.mkdir()
    weights.mkdir()
    fill_bucket(root, args.megapixels, args.upscale_megapixels)
    for real in (SHARED / "weights").glob("*.pth"):  # the shared Real-ESRGAN files are its fp16 copies
        (weights / real.name.replace("-fp16", "")).symlink_to(real)
    parity.install_oracle_weights(STAND_INS, weights)
    worker = Worker(Settings(local_bucket_dir=str(root), weights_dir=weights, device=args.device,
                             default_model="u2netp", max_concurrency=len(JOBS)))
    asyncio.run(one_round(worker, True))  # load every network
    lateness: list[float] = []
    for _ in range(args.rounds):
        late, answers = asyncio.run(one_round(worker, not args.no_jobs))
        lateness += late
        failed = [a["error"] for a in answers if "error" in a]
        if failed:
            print("failed:", failed)
    worker.close()
    lateness.sort()
    print(f"{'probe alone' if args.no_jobs else 'job mix'}: {args.megapixels:g} MP (upscale "
          f"{args.upscale_megapixels:g} MP), {worker.services.device.describe()}, {args.rounds} rounds, "
          f"load avg {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"longest stall {lateness[-1] * 1000:.0f} ms, p99 {lateness[int(0.99 * (len(lateness) - 1))] * 1000:.0f} ms, "
          f"median {lateness[len(lateness) // 2] * 1000:.1f} ms over {len(lateness)} wake-ups")


if __name__ == "__main__":
    main()
