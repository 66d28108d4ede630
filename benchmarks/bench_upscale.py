"""Real-ESRGAN x4plus upscaling speed and memory on the CPU, ours and (optionally) the original's.

    PYTHONPATH=. python benchmarks/bench_upscale.py [--sizes 64 128] [--tiles 0 32] [--threads 2]
        [--weights ../shared/weights/RealESRGAN_x4plus-fp16.pth] [--original /tmp/esrgan-orig]

Each (implementation, size, tile) runs in a fresh process, so its peak RSS is its own. `--original`
names a local copy of xinntao/Real-ESRGAN@a4abfb29 realesrgan/utils.py and BasicSR@8d56e3a0
basicsr/archs/rrdbnet_arch.py (imports that cannot work stubbed, as ../shared/data/upscale/README.md
describes; never part of this repo); it needs a Python with opencv (cv2). Without it, only ours runs.
Both get the same RGB image (BGR for the original), the same weights file, the same threads, and the
same call: tile, tile_pad 10, pre_pad 0, outscale 4, float32. The last line of each pair gives the
largest difference between the two outputs.

A 1 MP x4 upscale on a 2-core CPU takes far too long to run here; the script extrapolates seconds per
1 MP from the largest measured size (network cost is linear in the pixels the network sees; tiling
adds each tile's context, counted exactly), and says so.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO / ".." / "shared" / "weights" / "RealESRGAN_x4plus-fp16.pth"
TILE_PAD = 10
MEGAPIXEL_SIDE = 1024  # 1024 x 1024 input


def test_image(size: int) -> np.ndarray:
    """A deterministic photo-like RGB uint8 image (smooth gradients plus texture)."""
    rng = np.random.default_rng(size)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(6 * x + 2 * y), np.cos(5 * y - 3 * x), np.sin(4 * (x + y))], -1) * 0.4 + 0.5
    return np.clip((base + rng.normal(0, 0.05, base.shape)) * 255, 0, 255).astype(np.uint8)


def network_pixels(height: int, width: int, tile: int) -> int:
    """Input pixels the network sees: the image, or every tile with its clamped context."""
    if tile == 0:
        return height * width
    total = 0
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            h = min(y0 + tile + TILE_PAD, height) - max(y0 - TILE_PAD, 0)
            w = min(x0 + tile + TILE_PAD, width) - max(x0 - TILE_PAD, 0)
            total += h * w
    return total


def run_ours(weights: Path, image: np.ndarray, tile: int) -> tuple[float, np.ndarray]:
    sys.path.insert(0, str(REPO))
    import tempfile

    from models import registry
    from pipeline.restoration.upscale import UpscaleParams, upscale

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / registry.get_spec("realesrgan-x4plus").weights.filename).symlink_to(weights.resolve())
        model = registry.load("realesrgan-x4plus", Path(folder))
    start = time.perf_counter()
    out = upscale(model, image, 4, UpscaleParams(tile=tile, tile_pad=TILE_PAD, pre_pad=0, outscale=4))
    return time.perf_counter() - start, out


def run_original(original: Path, weights: Path, image: np.ndarray, tile: int) -> tuple[float, np.ndarray]:
    import contextlib
    import io

    import torch

    sys.path.insert(0, str(original))
    from basicsr.archs.rrdbnet_arch import RRDBNet
    from realesrgan.utils import RealESRGANer

    net = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=4)
    upsampler = RealESRGANer(scale=4, model_path=str(weights), model=net, tile=tile, tile_pad=TILE_PAD, pre_pad=0,
                             half=False, device=torch.device("cpu"))
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a line per tile
        out, _ = upsampler.enhance(np.ascontiguousarray(image[..., ::-1]), outscale=4)
    return time.perf_counter() - start, np.ascontiguousarray(out[..., ::-1])


def one(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    image = test_image(args.size)
    if args.impl == "ours":
        seconds, out = run_ours(args.weights, image, args.tile)
    else:
        seconds, out = run_original(args.original, args.weights, image, args.tile)
    np.save(args.save, out)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--tiles", type=int, nargs="+", default=[0, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--original", type=Path, help="local copy of the original code (see above)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="ours", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args)
        return
    import tempfile

    impls = ["ours"] + (["original"] if args.original else [])
    print(f"RealESRGAN_x4plus, CPU float32, {args.threads} threads, tile_pad {TILE_PAD}, pre_pad 0, outscale 4")
    best: dict[tuple[str, int], float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            for tile in args.tiles:
                outputs = {}
                for impl in impls:
                    save = Path(folder) / f"{impl}.npy"
                    command = [sys.executable, __file__, "--one", "--impl", impl, "--size", str(size), "--tile",
                               str(tile), "--threads", str(args.threads), "--weights", str(args.weights),
                               "--save", str(save)] + (["--original", str(args.original)] if args.original else [])
                    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout
                                        .strip().splitlines()[-1])
                    outputs[impl] = np.load(save)
                    per_mpx = result["seconds"] / network_pixels(size, size, tile) * 1e6
                    best[(impl, tile)] = per_mpx
                    print(f"{impl:8s} {size}x{size} tile {tile:3d}: {result['seconds']:7.1f} s, "
                          f"peak RSS {result['peak_rss_mib']:6.0f} MiB, {per_mpx:7.1f} s per network megapixel")
                if "original" in outputs:
                    diff = np.abs(outputs["ours"].astype(int) - outputs["original"].astype(int))
                    print(f"         ours vs original: max |diff| {diff.max()}, values differing {(diff > 0).sum()}")
    print(f"Extrapolated to a {MEGAPIXEL_SIDE}x{MEGAPIXEL_SIDE} input (NOT measured: seconds per network megapixel "
          f"at {args.sizes[-1]}x{args.sizes[-1]} times the pixels the network sees):")
    for impl in impls:
        for tile in (0, 256, 512):
            rate = best.get((impl, tile if tile in args.tiles else args.tiles[-1]))
            pixels = network_pixels(MEGAPIXEL_SIDE, MEGAPIXEL_SIDE, tile)
            print(f"  {impl:8s} tile {tile:3d}: network sees {pixels / 1e6:.2f} MP -> ~{rate * pixels / 1e6:.0f} s")


if __name__ == "__main__":
    main()
