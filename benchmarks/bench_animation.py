"""Frames per second cutting out a 2-second animated GIF with u2netp on this machine.

    PYTHONPATH=. python benchmarks/bench_animation.py [--batch 1 4 10] [--device cpu] [--format webp]

The GIF: 20 frames of 100 ms, 320x240 crops panning across ../shared/data/hires/GT04.jpg (scaled to
960x676), quantised by Pillow. Real u2netp weights (../shared/weights/u2netp.pth) through
registry.load. Stages: decode every frame, the network on batches of frames (pipeline.segmentation.segment),
alpha at full size + confidence + the RGBA frames (imaging.output), and the animated file
(imaging.encode). One warm-up pass, then the median of --runs passes per batch size.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from imaging.animation import decode_animation  # noqa: E402
from imaging.confidence import matte_confidence  # noqa: E402
from imaging.encode import encode_frames  # noqa: E402
from imaging.options import OutputOptions  # noqa: E402
from imaging.output import output_frames, to_host  # noqa: E402
from models import registry  # noqa: E402
from pipeline.segmentation.postprocess import full_size_alpha, keep_own_alpha  # noqa: E402
from pipeline.segmentation.segment import predict_mattes  # noqa: E402

FRAMES, DURATION_MS, CROP = 20, 100, (320, 240)


def panning_gif() -> bytes:
    photo = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    photo = photo.resize((960, round(960 * photo.height / photo.width)), Image.Resampling.LANCZOS)
    step_x = (photo.width - CROP[0]) / (FRAMES - 1)
    step_y = (photo.height - CROP[1]) / (FRAMES - 1)
    frames = [photo.crop((round(i * step_x), round(i * step_y), round(i * step_x) + CROP[0],
                          round(i * step_y) + CROP[1])) for i in range(FRAMES)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=DURATION_MS, loop=0)
    return out.getvalue()


def cut_out(data: bytes, model, spec, batch: int, options: OutputOptions) -> dict[str, float]:
    times = {}
    start = time.perf_counter()
    animation = decode_animation(data, 10**9)
    times["decode"] = time.perf_counter()
    mattes = predict_mattes(model, spec, [f.rgb for f in animation.frames], batch)
    times["network"] = time.perf_counter()
    alphas = [keep_own_alpha(full_size_alpha(m, f), f) for m, f in zip(mattes, animation.frames)]
    matte_confidence(torch.stack(alphas))
    device = alphas[0].device
    colours = [torch.from_numpy(f.rgb).to(device).permute(2, 0, 1) for f in animation.frames]
    frames = [to_host(frame) for frame in output_frames(colours, alphas, options)]
    times["post-process"] = time.perf_counter()
    encode_frames(frames, animation.durations, animation.loop, options)
    times["encode"] = time.perf_counter()
    stages, previous = {}, start
    for name, moment in times.items():
        stages[name] = moment - previous
        previous = moment
    stages["total"] = previous - start
    return stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 10])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--format", default="webp", choices=["webp", "png", "gif"])
    args = parser.parse_args()
    data = panning_gif()
    model = registry.load("u2netp", weights_dir=SHARED / "weights", device=torch.device(args.device))
    spec = registry.get_spec("u2netp")
    options = OutputOptions(format=args.format)
    print(f"{FRAMES} frames {CROP[0]}x{CROP[1]} ({FRAMES * DURATION_MS / 1000:.0f} s), GIF {len(data) / 1e3:.0f} kB; "
          f"device {args.device}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; "
          f"output {args.format}")
    print("| batch | decode ms | network ms | post-process ms | encode ms | total ms | frames/s |")
    print("|---|---|---|---|---|---|---|")
    for batch in args.batch:
        cut_out(data, model, spec, batch, options)  # warm-up
        runs = [cut_out(data, model, spec, batch, options) for _ in range(args.runs)]
        median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {batch} | " + " | ".join(f"{median[k] * 1000:.0f}" for k in median)
              + f" | {FRAMES / median['total']:.2f} |")


if __name__ == "__main__":
    main()
