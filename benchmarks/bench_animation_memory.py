"""Peak memory (RSS) of one animated `remove_background` job, in a fresh process per measurement.

    PYTHONPATH=. python benchmarks/bench_animation_memory.py [--frames 50 100] [--side 1000]
        [--format gif png webp] [--repo PATH]

The input: GIFs of --frames frames of --side x --side, crops panning across
../shared/data/hires/GT04.jpg, quantised by Pillow (kept in a temporary folder). Each
measurement is a fresh Python process that loads the worker from --repo (this checkout by default;
point it at another checkout to measure that code), serves a local bucket folder with the real u2netp
weights (../shared/weights) on the CPU, runs one job (foreground blur_fusion: float colour) and
prints ru_maxrss. Two frame counts give what each frame adds (the model and the forward's activations
do not grow with the animation), and from it the peak at MAX_TOTAL_PIXELS.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared").resolve()

# Run in the child process: the worker and one job (or none, for the baseline), then peak RSS in MB.
CHILD = """
import asyncio, json, resource, sys
sys.path.insert(0, {repo!r})
from worker.config import Settings
from worker.jobs import Worker
settings = Settings(local_bucket_dir={bucket!r}, weights_dir={weights!r}, device="cpu", default_model="u2netp",
                    batch_wait_ms=0, max_concurrency=1)
worker = Worker(settings)
job = {job!r}
answer = asyncio.run(worker.run(job, "bench")) if job else {{}}
print(json.dumps({{"answer": answer, "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def panning_gif(frames: int, side: int) -> bytes:
    photo = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    scale = side * 1.5 / min(photo.size)
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    step = (photo.width - side) / max(frames - 1, 1)
    crops = [photo.crop((round(i * step), 0, round(i * step) + side, side)).quantize(256) for i in range(frames)]
    out = io.BytesIO()
    crops[0].save(out, format="GIF", save_all=True, append_images=crops[1:], duration=100, loop=0)
    return out.getvalue()


def measure(repo: Path, bucket: Path, job: dict | None) -> dict:
    code = CHILD.format(repo=str(repo), bucket=str(bucket), weights=str(SHARED / "weights"), job=job)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"HF_HUB_OFFLINE": "1", "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--side", type=int, default=1000)
    parser.add_argument("--format", nargs="+", default=["gif", "png", "webp"])
    parser.add_argument("--repo", type=Path, default=REPO)
    args = parser.parse_args()
    print(f"frames of {args.side}x{args.side}, code from {args.repo}")
    with tempfile.TemporaryDirectory() as folder:
        bucket = Path(folder)
        (bucket / "ogs").mkdir()
        print(f"baseline (worker + u2netp loaded, no job): {measure(args.repo, bucket, None)['max_rss_mb']:.0f} MB")
        for fmt in args.format:
            peaks = {}
            for frames in args.frames:
                (bucket / "ogs" / f"{frames}.gif").write_bytes(panning_gif(frames, args.side))
                result = measure(args.repo, bucket, {"id": f"{frames}.gif", "format": fmt, "foreground": "blur_fusion"})
                assert "error" not in result["answer"], result["answer"]
                peaks[frames] = result["max_rss_mb"]
                print(f"{fmt:5s} {frames:4d} frames: peak RSS {peaks[frames]:6.0f} MB")
            (low, high), pixels = (min(peaks), max(peaks)), args.side * args.side
            if high > low:  # what each frame adds; the rest (model, forward activations) does not grow
                per_frame = (peaks[high] - peaks[low]) / (high - low)
                print(f"{fmt:5s} growth: {per_frame:.1f} MB per frame = {per_frame * 2**20 / pixels:.1f} bytes per "
                      f"pixel; at 200 MP (MAX_TOTAL_PIXELS): {peaks[high] + per_frame * (2e8 / pixels - high):.0f} MB")


if __name__ == "__main__":
    main()
