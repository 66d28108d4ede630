"""Our torch reproductions of OpenCV against real OpenCV, and our upscale procedure against the
original RealESRGANer, run offline with a Python that has opencv (cv2); nothing here is a test.

    PYTHONPATH=. python benchmarks/compare_opencv.py [--original /tmp/esrgan-orig]

Prints, for each reproduction, how many values differ from cv2's: INTER_LANCZOS4 of uint8 and
uint16 images, float32 BGR2GRAY over widths 1..69, float32 INTER_LINEAR upscales (the alpha path of
alpha_upsampler "linear"). With `--original` (a local copy of xinntao/Real-ESRGAN@a4abfb29
realesrgan/utils.py and BasicSR@8d56e3a0 rrdbnet_arch.py, stubbed as ../shared/data/upscale/README.md
describes, never part of this repo) it also runs RealESRGANer.enhance and `restoration.upscale.upscale`
on the same small random RRDBNets (x4, x2, x1) for grey, RGB, RGBA and 16-bit images, tiled and not,
tile_pad 4 (x2/x1 tiles must have even sides: the original asserts in pixel_unshuffle), pre_pad 0 and 3,
outscale None / 1.5, both alpha upsamplers, and prints the largest difference.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from imaging.colour import cv2_gray_float32  # noqa: E402
from imaging.resample import cv2_resize_lanczos4, cv2_resize_linear  # noqa: E402

RNG = np.random.default_rng(0)


def textured(h: int, w: int, c: int, top: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    base = (np.sin(x / 3.0) * np.cos(y / 5.0) * 0.5 + 0.5)[..., None] * top
    image = np.clip(base + RNG.normal(0, top / 8, (h, w, c)), 0, top)
    image[RNG.random((h, w)) < 0.05] = top
    image[RNG.random((h, w)) < 0.05] = 0
    image = image.astype(np.uint8 if top == 255 else np.uint16)
    return image[..., 0] if c == 1 else image


def to_chw(image: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(image.astype(np.int32)).to(torch.uint8 if image.dtype == np.uint8 else torch.uint16)
    return t.permute(2, 0, 1) if image.ndim == 3 else t


def from_chw(t: torch.Tensor) -> np.ndarray:
    t = t.to(torch.int32)
    return (t.permute(1, 2, 0) if t.dim() == 3 else t).numpy()


def compare_lanczos() -> None:
    for top in (255, 65535):
        differing = total = 0
        for (h, w, c), scale in itertools.product([(40, 52, 3), (33, 17, 4), (20, 30, 1), (64, 48, 3)],
                                                  [0.3, 0.5, 0.75, 1.25, 1.5, 2.5, 3.7]):
            image = textured(h, w, c, top)
            size = (int(w * scale), int(h * scale))
            expected = cv2.resize(image, size, interpolation=cv2.INTER_LANCZOS4).astype(np.int32)
            ours = from_chw(cv2_resize_lanczos4(to_chw(image), size[::-1]))
            differing += int((ours != expected).sum())
            total += expected.size
        print(f"INTER_LANCZOS4 {'uint8' if top == 255 else 'uint16'}: {differing} of {total} values differ")


def compare_grey() -> None:
    differing = total = 0
    for width in range(1, 70):
        bgr = RNG.random((300, width, 3), dtype=np.float32)
        bgr[RNG.random((300, width)) < 0.2] = 1.0
        expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        ours = cv2_gray_float32(torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1)).numpy()
        differing += int((ours != expected).sum())
        total += expected.size
    print(f"BGR2GRAY float32, widths 1..69: {differing} of {total} values differ")


def compare_linear() -> None:
    for (h, w), scale in itertools.product([(30, 37), (112, 112), (64, 63)], [2, 4]):
        alpha = RNG.random((h, w), dtype=np.float32)
        alpha[alpha < 0.3], alpha[alpha > 0.8] = 0, 1
        expected = cv2.resize(alpha, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)
        ours = cv2_resize_linear(torch.from_numpy(alpha), (h * scale, w * scale)).numpy()
        u8 = lambda x: np.round(x * np.float32(255)).astype(np.uint8)  # noqa: E731
        print(f"INTER_LINEAR float32 {h}x{w} x{scale}: {(ours != expected).sum()} of {expected.size} floats differ "
              f"(max {np.abs(ours - expected).max():.2g}); after x255 rounding {(u8(ours) != u8(expected)).sum()} differ")


def compare_procedure(original: Path) -> None:
    sys.path.insert(0, str(original))
    from basicsr.archs.rrdbnet_arch import RRDBNet as OriginalRRDBNet
    from realesrgan.utils import RealESRGANer

    from models.rrdbnet import RRDBNet
    from pipeline.restoration.upscale import UpscaleParams, upscale

    worst: dict[tuple, list[int]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for scale in (4, 2, 1):
            torch.manual_seed(scale)
            theirs = OriginalRRDBNet(3, 3, scale=scale, num_feat=16, num_block=1, num_grow_ch=8)
            state = {k: v * 0.3 if v.dim() > 1 else v for k, v in theirs.state_dict().items()}
            path = os.path.join(folder, f"x{scale}.pth")
            torch.save({"params_ema": state}, path)
            ours = RRDBNet(3, 3, scale=scale, num_feat=16, num_block=1, num_grow_ch=8).eval()
            ours.load_state_dict(state)
            for kind, (h, w), tile, pre_pad, outscale, alpha in itertools.product(
                    ["L", "RGB", "RGBA"], [(13, 18)], [0, 8], [0, 3], [None, 1.5],
                    ["realesrgan", "bicubic"]):
                for top in (255, 65535):
                    if alpha == "bicubic" and kind != "RGBA":
                        continue
                    image = textured(h, w, {"L": 1, "RGB": 3, "RGBA": 4}[kind], top)
                    bgr = image if image.ndim == 2 else np.concatenate([image[..., 2::-1], image[..., 3:]], -1)
                    upsampler = RealESRGANer(scale=scale, model_path=path, model=theirs, tile=tile, tile_pad=4,
                                             pre_pad=pre_pad, half=False, device=torch.device("cpu"))
                    with contextlib.redirect_stdout(io.StringIO()):
                        expected, _ = upsampler.enhance(bgr.copy(), outscale=outscale, alpha_upsampler=alpha)
                    if expected.ndim == 3:
                        expected = np.concatenate([expected[..., 2::-1], expected[..., 3:]], -1)
                    params = UpscaleParams(tile=tile, tile_pad=4, pre_pad=pre_pad, outscale=outscale,
                                           alpha_upsampler="realesrgan" if alpha == "realesrgan" else "linear")
                    out = upscale(ours, image, scale, params)
                    assert out.shape == expected.shape and out.dtype == expected.dtype
                    diff = np.abs(out.astype(np.int64) - expected)
                    key = (f"x{scale}", kind, f"{top.bit_length()}-bit", f"alpha {alpha}" if kind == "RGBA" else "",
                           "outscale" if outscale else "")
                    entry = worst.setdefault(key, [0, 0, 0])
                    entry[0] = max(entry[0], int(diff.max()))
                    entry[1] += int((diff > 0).sum())
                    entry[2] += diff.size
    for key, (max_diff, differing, total) in worst.items():
        print(f"upscale vs RealESRGANer {' '.join(k for k in key if k):40s} max |diff| {max_diff}, "
              f"{differing} of {total} values differ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, help="local copy of the original code (see above)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"opencv {cv2.__version__}, torch {torch.__version__}")
    compare_lanczos()
    compare_grey()
    compare_linear()
    if args.original:
        compare_procedure(args.original)


if __name__ == "__main__":
    main()
