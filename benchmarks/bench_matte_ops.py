"""Milliseconds per matte operation on a 12 MP matte (GT04's true alpha, resized).

    PYTHONPATH=. python benchmarks/bench_matte_ops.py [--device cpu] [--runs 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from imaging.confidence import matte_confidence  # noqa: E402
from imaging.matte_ops import crop, crop_box, feather_matte, fit_within, grow_matte, resize_cutout, threshold_matte  # noqa: E402
from imaging.options import parse_margin  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    matte = Image.open(SHARED / "data" / "hires" / "GT04_alpha.png").convert("L").resize((4240, 2832))
    alpha = torch.from_numpy(np.array(matte)).to(device)
    colour = torch.randint(0, 256, (3, *alpha.shape), dtype=torch.uint8, device=device)
    box = crop_box(alpha, parse_margin("5%"))
    operations = {
        "threshold 128": lambda: threshold_matte(alpha, 128),
        "grow 3": lambda: grow_matte(alpha, 3),
        "grow 10": lambda: grow_matte(alpha, 10),
        "shrink 10": lambda: grow_matte(alpha, -10),
        "feather sigma 2": lambda: feather_matte(alpha, 2.0),
        "feather sigma 8": lambda: feather_matte(alpha, 8.0),
        "confidence": lambda: matte_confidence(alpha),
        "crop box + crop (5 % margin)": lambda: (crop(colour, box), crop(alpha, crop_box(alpha, parse_margin("5%")))),
        "resize to preview (0.25 MP)": lambda: resize_cutout(colour, alpha, fit_within(*alpha.shape, 250_000)),
    }
    print(f"matte {alpha.shape[1]}x{alpha.shape[0]} on {args.device}, {torch.get_num_threads()} threads; "
          f"median of {args.runs}")
    print("| operation | ms |")
    print("|---|---|")
    for name, operation in operations.items():
        times = []
        for _ in range(args.runs):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            operation()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        print(f"| {name} | {statistics.median(times) * 1000:.0f} |")


if __name__ == "__main__":
    main()
