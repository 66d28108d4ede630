"""How far half precision moves Real-ESRGAN's uint8 output from float32, on the REAL weights.

    PYTHONPATH=. python benchmarks/upscale_precision.py [--crop 48] [--dtypes bfloat16 float16] [--device cpu]

Every input of ../shared/data/upscale (cropped to --crop pixels at the top left, to keep CPU time
short) goes through `restoration.upscale.upscale` (tile 0, outscale 4) with each model of the shared
weights loaded in float32 and in each dtype; prints the largest and mean absolute uint8 difference,
and the share of values off by more than 2 (the CPU runs the dtype's kernels where torch has them).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.tensors import DTYPES  # noqa: E402
from models import registry  # noqa: E402
from pipeline.restoration.upscale import UpscaleParams, upscale  # noqa: E402

SHARED = REPO / ".." / "shared"
REAL = {"RealESRGAN_x4plus": ("realesrgan-x4plus", "RealESRGAN_x4plus-fp16.pth"),
        "RealESRGAN_x4plus_anime_6B": ("realesrgan-x4plus-anime", "RealESRGAN_x4plus_anime_6B-fp16.pth")}
HALF = ("bfloat16", "float16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--dtypes", nargs="+", choices=HALF, default=list(HALF))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cases = json.loads((SHARED / "data" / "upscale" / "cases.json").read_text())["cases"]
    with tempfile.TemporaryDirectory() as folder:
        for name, shared_name in REAL.values():
            (Path(folder) / registry.get_spec(name).weights.filename).symlink_to((SHARED / "weights" / shared_name).resolve())
        for case in cases:
            if case["tile"]:
                continue
            name = REAL[case["model"]][0]
            image = np.asarray(Image.open(SHARED / "data" / "upscale" / case["input"]))[:args.crop, :args.crop].copy()
            reference = upscale(registry.load(name, Path(folder), args.device), image, 4, UpscaleParams())
            for dtype in args.dtypes:
                out = upscale(registry.load(name, Path(folder), args.device, DTYPES[dtype]), image, 4, UpscaleParams())
                diff = np.abs(out.astype(int) - reference)
                print(f"{case['input']:14s} {name:24s} {dtype:9s} max {diff.max():3d} mean {diff.mean():.3f} "
                      f"off by >2: {100 * (diff > 2).mean():.2f} %", flush=True)


if __name__ == "__main__":
    main()
