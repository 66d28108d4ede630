"""PNG encoders on a 12 MP RGBA cut-out, against Pillow level 6 (rembg's default).

    PYTHONPATH=. python benchmarks/bench_png.py [--runs 5] [--megapixels 12]

The cut-out: ../shared/data/hires/GT04.jpg with its true alpha (about 40 % fully transparent),
resized (bicubic) to 4240x2832. Every candidate encodes the same array in this process, the runs
interleaved round-robin so that they share the machine's conditions; the figures are medians of
wall time and of CPU time (a loaded machine inflates wall time), and each file is decoded with
Pillow and compared with the pixels it was given. `imagecodecs` is measured when it is installed.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from imaging.encode import Z_RLE, encode_png, zero_invisible  # noqa: E402


def cutout(megapixels: float) -> np.ndarray:
    photo = Image.open(SHARED / "data" / "hires" / "GT04.jpg").convert("RGB")
    alpha = Image.open(SHARED / "data" / "hires" / "GT04_alpha.png").convert("L")
    scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
    size = (round(photo.width * scale), round(photo.height * scale))
    return np.dstack([np.asarray(photo.resize(size, Image.Resampling.BICUBIC)),
                      np.asarray(alpha.resize(size, Image.Resampling.BICUBIC))])


def pillow(pixels: np.ndarray, **kwargs) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", **kwargs)
    return out.getvalue()


def candidates(pixels: np.ndarray) -> dict[str, tuple]:
    """name -> (encode function, the pixels its file must decode to)."""
    zeroed = zero_invisible(pixels)
    table = {
        "Pillow level 6 (rembg)": (lambda: pillow(pixels, compress_level=6), pixels),
        "Pillow level 1": (lambda: pillow(pixels, compress_level=1), pixels),
        "Pillow level 6, zeroed": (lambda: pillow(zeroed, compress_level=6), zeroed),
        "Pillow level 1, zeroed": (lambda: pillow(zeroed, compress_level=1), zeroed),
        "Pillow level 3, zeroed": (lambda: pillow(zeroed, compress_level=3), zeroed),
        "Z_RLE, kept colour": (lambda: pillow(pixels, compress_level=1, compress_type=Z_RLE), pixels),
        "encode_png (Z_RLE, zeroed)": (lambda: encode_png(pixels), zeroed),
    }
    try:
        import imagecodecs
    except ImportError:
        return table
    table["imagecodecs level 3, zeroed"] = (lambda: imagecodecs.png_encode(zeroed, level=3), zeroed)
    table["imagecodecs level 1 Z_RLE, zeroed"] = (lambda: imagecodecs.png_encode(zeroed, level=1, strategy=3), zeroed)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--megapixels", type=float, default=12.0)
    args = parser.parse_args()
    pixels = cutout(args.megapixels)
    height, width = pixels.shape[:2]
    print(f"cut-out {width}x{height} ({width * height / 1e6:.1f} MP), "
          f"{(pixels[..., 3] == 0).mean() * 100:.1f} % fully transparent; median of {args.runs} runs")
    table = candidates(pixels)
    wall = {name: [] for name in table}
    cpu = {name: [] for name in table}
    sizes = {}
    for _ in range(args.runs):
        for name, (encode, _) in table.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            data = encode()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
            sizes[name] = data
    base = "Pillow level 6 (rembg)"
    base_wall, base_cpu = statistics.median(wall[base]), statistics.median(cpu[base])
    print("| encoder | wall ms | cpu ms | cpu x level 6 | MB | bytes x level 6 | same pixels |")
    print("|---|---|---|---|---|---|---|")
    for name, (_, expected) in table.items():
        decoded = np.asarray(Image.open(io.BytesIO(sizes[name])))
        same = decoded.shape == expected.shape and np.array_equal(decoded, expected)
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"| {name} | {w * 1000:.0f} | {c * 1000:.0f} | {c / base_cpu:.3f} | {len(sizes[name]) / 1e6:.3f} | "
              f"{len(sizes[name]) / len(sizes[base]):.3f} | {'yes' if same else 'NO'} |")
    print(f"(wall x level 6 for encode_png: {statistics.median(wall['encode_png (Z_RLE, zeroed)']) / base_wall:.3f})")


if __name__ == "__main__":
    main()
