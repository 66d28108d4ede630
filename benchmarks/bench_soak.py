"""Soak: many sequential jobs in one worker; resident memory must not grow after warm-up.

    PYTHONPATH=. python benchmarks/bench_soak.py [--jobs 500] [--model u2netp] [--device cpu]

Runs the jobs in process on a local-folder bucket (small photos, alternating remove_background and
mask, with a bad input every 25th job), then prints the resident set size after the warm-up (the
first 100 jobs) and at the end, with the RSS every 50 jobs on stderr, and the growth between them.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from worker import config  # noqa: E402
from worker.jobs import Worker  # noqa: E402

WARM_UP = 100  # measured: RSS steps once between jobs 50 and 100 (allocator high-water), then stays flat


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


async def serve(worker: Worker, jobs: int, model: str) -> tuple[int, int]:
    """The jobs one after another in one event loop, as runpod's serverless loop runs them: (RSS after
    the warm-up, unexpected failures)."""
    after_warm_up, failures = 0, 0
    for n in range(jobs):
        job = {"id": "bad" if n % 25 == 24 else "photo", "model": model,
               "task": "mask" if n % 2 else "remove_background"}
        answer = await worker.run(job, f"soak-{n}")
        failures += "error" in answer and job["id"] != "bad"
        if n + 1 == WARM_UP:
            after_warm_up = rss_bytes()
        if (n + 1) % 50 == 0:
            print(f"after {n + 1} jobs: RSS {rss_bytes() / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    return after_warm_up, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--model", default="u2netp")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory()  # removed as the script ends
    bucket = Path(scratch.name)
    (bucket / "ogs").mkdir()
    photo = Image.open(SHARED / "data" / "rembg" / "car-1.jpg").convert("RGB").resize((320, 240))
    out = io.BytesIO()
    photo.save(out, format="JPEG")
    (bucket / "ogs" / "photo").write_bytes(out.getvalue())
    (bucket / "ogs" / "bad").write_bytes(b"not an image")
    worker = Worker(replace(config.read_settings(), bucket=None, local_bucket_dir=str(bucket), device=args.device,
                            weights_dir=SHARED / "weights"))
    start = time.perf_counter()
    after_warm_up, failures = asyncio.run(serve(worker, args.jobs, args.model))
    end = rss_bytes()
    growth = (end - after_warm_up) / after_warm_up
    print(f"{args.jobs} jobs ({args.model}, {args.device}) in {time.perf_counter() - start:.0f} s, unexpected failures "
          f"{failures}\n| RSS after {WARM_UP} jobs MiB | RSS after {args.jobs} MiB | growth |\n|---|---|---|\n"
          f"| {after_warm_up / 2**20:.0f} | {end / 2**20:.0f} | {growth:+.1%} |")


if __name__ == "__main__":
    main()
