"""PNG writers on 12 MP u2netp cut-outs, against Pillow level 6 (what rembg writes).

    PYTHONPATH=. python benchmarks/bench_png.py [--runs 3] [--photos GT04 GT01] [--megapixels 12]

Each photo is resized (bicubic) to --megapixels, cut out as the worker does it (real u2netp weights
from ../shared/weights, the matte resized to full size, imaging/output.cutout) and its colour
under fully transparent pixels zeroed (imaging/encode.zero_invisible, as the worker and rembg do).
"GT04" is ../shared/data/hires/GT04.jpg; "GT04-true-alpha" the same photo with its true alpha (the
earlier section's cut-out); any other name is a photo of ../shared/data/alphamatting/image/.

Every writer encodes the same array in this process, the runs interleaved round-robin so that they
share the machine's conditions. CPU time is the process's (time.process_time: every thread's time
summed), the figure to trust on a shared machine; wall time is printed beside it. Medians of --runs.
Each file is decoded with Pillow and compared with the pixels it was given. The "rows filtered on the
device" rows time the host's part of PNG_FILTER_ON_DEVICE: deflate alone over rows filtered beforehand.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared"
sys.path.insert(0, str(REPO))

from benchmarks.timing import cpu_and_wall  # noqa: E402
from imaging.decode import DecodedImage  # noqa: E402
from imaging.encode import Z_RLE, zero_invisible  # noqa: E402
from imaging.output import cutout, filter_rows, to_host  # noqa: E402
from imaging.png import FilteredRows, write_filtered_png, write_png  # noqa: E402
from models import registry  # noqa: E402
from pipeline.segmentation.postprocess import full_size_alpha  # noqa: E402
from pipeline.segmentation.segment import predict_mattes  # noqa: E402

BASE = "Pillow level 6 (rembg)"


def photo(name: str, megapixels: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The photo at `megapixels` as HxWx3 uint8, and its true alpha when the name asks for it."""
    hires = name in ("GT04", "GT04-true-alpha")
    path = SHARED / "data" / ("hires/GT04.jpg" if hires else f"alphamatting/image/{name}.png")
    image = Image.open(path).convert("RGB")
    scale = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
    size = (round(image.width * scale), round(image.height * scale))
    rgb = np.array(image.resize(size, Image.Resampling.BICUBIC))  # writable, for torch.from_numpy
    if name != "GT04-true-alpha":
        return rgb, None
    alpha = Image.open(SHARED / "data" / "hires" / "GT04_alpha.png").convert("L")
    return rgb, np.array(alpha.resize(size, Image.Resampling.BICUBIC))


def zeroed_cutout(name: str, megapixels: float, model, spec) -> np.ndarray:
    rgb, alpha = photo(name, megapixels)
    if alpha is None:
        matte = predict_mattes(model, spec, [rgb], 1)[0]
        alpha = full_size_alpha(matte, DecodedImage(rgb, None, "jpeg")).numpy()
    return zero_invisible(to_host(cutout(torch.from_numpy(rgb).permute(2, 0, 1), torch.from_numpy(alpha), None)))


def pillow(pixels: np.ndarray, **kwargs) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", **kwargs)
    return out.getvalue()


def on_device(pixels: np.ndarray, writer: str) -> FilteredRows:
    """The rows as PNG_FILTER_ON_DEVICE hands them to the host (filtered here, outside the timing: on
    a GPU it is device time)."""
    return to_host(filter_rows(torch.from_numpy(pixels), writer))


def writers(pixels: np.ndarray) -> dict:
    filtered = {writer: on_device(pixels, writer) for writer in ("compact", "fast")}
    return {
        BASE: lambda: pillow(pixels, compress_level=6),
        "Pillow Z_RLE level 1 (the worker before)": lambda: pillow(pixels, compress_level=1, compress_type=Z_RLE),
        "compact, 1 thread": lambda: write_png(pixels, "compact", 1),
        "compact, 2 threads (default)": lambda: write_png(pixels, "compact", 2),
        "compact, rows filtered on the device, 1 thread": lambda: write_filtered_png(filtered["compact"], "compact", 1),
        "fast, 1 thread": lambda: write_png(pixels, "fast", 1),
        "fast, 2 threads": lambda: write_png(pixels, "fast", 2),
        "fast, rows filtered on the device, 1 thread": lambda: write_filtered_png(filtered["fast"], "fast", 1),
    }


def measure(name: str, pixels: np.ndarray, runs: int) -> list[str]:
    table = writers(pixels)
    cpu: dict[str, list[float]] = {w: [] for w in table}
    wall: dict[str, list[float]] = {w: [] for w in table}
    files = {}
    for _ in range(runs):
        for writer, encode in table.items():
            files[writer], seconds_cpu, seconds_wall = cpu_and_wall(encode)
            cpu[writer].append(seconds_cpu)
            wall[writer].append(seconds_wall)
    base_cpu, base_bytes = statistics.median(cpu[BASE]), len(files[BASE])
    lines = []
    for writer in table:
        same = np.array_equal(np.asarray(Image.open(io.BytesIO(files[writer]))), pixels)
        c, w = statistics.median(cpu[writer]), statistics.median(wall[writer])
        lines.append(f"| {writer} | {name} | {c * 1000:.0f} | {w * 1000:.0f} | {len(files[writer]) / 1e6:.3f} | "
                     f"{len(files[writer]) / base_bytes:.3f} | {c / base_cpu:.3f} | {'yes' if same else 'NO'} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--photos", nargs="+", default=["GT04", "GT01"])
    parser.add_argument("--megapixels", type=float, default=12.0)
    args = parser.parse_args()
    model = registry.load("u2netp", weights_dir=SHARED / "weights", device=torch.device("cpu"))
    spec = registry.get_spec("u2netp")
    print(f"median of {args.runs} runs; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    cutouts = {name: zeroed_cutout(name, args.megapixels, model, spec) for name in args.photos}
    for name, pixels in cutouts.items():
        height, width = pixels.shape[:2]
        print(f"{name}: {width}x{height}, {(pixels[..., 3] == 0).mean() * 100:.1f} % fully transparent")
    print("| writer | photo | CPU ms | wall ms | MB | bytes x level 6 | CPU x level 6 | same pixels |")
    print("|---|---|---|---|---|---|---|---|")
    for name, pixels in cutouts.items():
        print("\n".join(measure(name, pixels, args.runs)), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
