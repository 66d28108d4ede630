"""Upscale / restore quality against originals: `python -m evaluation.restoration --task upscale --images DIR`.

Every image of the folder is an original. It is cropped to a multiple of the scale (BasicSR's modcrop), a
degraded copy is made from it (`Degradation`), the worker's own procedure runs on that copy, and the
result is compared with the original (evaluation.fidelity: PSNR and SSIM as BasicSR computes them), next to
the same figures for a plain bicubic enlargement of the degraded copy (MATLAB's imresize, the super-
resolution papers' baseline), with the time the procedure took.

- upscale: the copy is the original shrunk by the network's scale with MATLAB's bicubic imresize, the way
  BasicSR makes its LR test sets (generate_bicubic_img.m); the procedure is restoration.upscale.upscale
  (RealESRGANer.enhance) with the registry's network, outscale = the network's scale.
- restore: the copy is blurred, shrunk, noised and JPEG-compressed, in the order of GFPGAN's training
  degradation (FFHQDegradationDataset) but with fixed values and a fixed noise seed; the procedure is
  restoration.restore.restore (GFPGANer.enhance) with the registry's RetinaFace, the face restorer and
  ParseNet, at upscale = the degradation's scale (no background upsampler: the background is the
  Lanczos-4 enlargement, as a `restore` job without bg_upsampler).

A fixed-width table goes to stdout; `--out` writes the degraded copies, the bicubic enlargements, the
outputs and a metrics.csv, `--sheet` a contact sheet (original, degraded copy enlarged, output) per image.
RGBA originals are measured on their colour; the alpha is not part of the comparison.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from evaluation import fidelity
from evaluation.report import (
    Column,
    Sheet,
    Table,
    files_by_stem,
    read_image,
    safe_name,
    worker_models,
    write_csv,
)
from imaging.filters import gaussian_blur
from imaging.resample import matlab_resize, to_uint8_matlab
from pipeline.restoration.restore import RestoreParams, restore
from pipeline.restoration.upscale import UpscaleParams, upscale
from worker.device import synchronize

TASKS = ("upscale", "restore")


# -- the degraded copy ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Degradation:
    """How the degraded copy is made from the original, in this order (each step off at 0):

    1. blur: cv2.GaussianBlur with this sigma and a kernel of 2 ceil(3 sigma) + 1 taps, float64;
    2. scale: shrink by this integer factor with MATLAB's bicubic imresize (antialiased), unrounded;
    3. noise: add Gaussian noise of this standard deviation (0..255 scale), drawn on the CPU from
       torch.Generator().manual_seed(seed), the same for every image of one size;
    4. round to uint8 as MATLAB's im2uint8;
    5. jpeg: encode with Pillow at this quality (4:2:0) and decode again.

    With scale alone this is exactly BasicSR's bicubic LR image.
    """

    scale: int
    blur: float = 0.0
    noise: float = 0.0
    jpeg: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.scale, int) and self.scale >= 1):
            raise ValueError(f"scale must be an integer >= 1, not {self.scale!r}")
        if not (self.blur >= 0 and self.noise >= 0 and math.isfinite(self.blur) and math.isfinite(self.noise)):
            raise ValueError("blur and noise must be finite and >= 0")
        if not 0 <= self.jpeg <= 100:
            raise ValueError(f"jpeg quality must be 1..100 (0: none), not {self.jpeg}")

    def describe(self) -> str:
        steps = [f"Gaussian blur sigma {self.blur:g}"] if self.blur else []
        steps.append(f"MATLAB bicubic /{self.scale}")
        if self.noise:
            steps.append(f"Gaussian noise sigma {self.noise:g} (seed {self.seed})")
        if self.jpeg:
            steps.append(f"JPEG quality {self.jpeg}")
        return ", ".join(steps)


RESTORE_DEGRADATION = Degradation(scale=2, blur=1.5, noise=5.0, jpeg=60)  # GFPGAN's -s 2, moderate damage
_DEGRADATION_TYPES = {"scale": int, "blur": float, "noise": float, "jpeg": int, "seed": int}


def parse_degradation(text: str, base: Degradation) -> Degradation:
    """`base` with the "name=value,..." settings of `text` (names: scale, blur, noise, jpeg, seed)."""
    changes = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in _DEGRADATION_TYPES:
            raise ValueError(f"--degrade takes name=value pairs of {', '.join(_DEGRADATION_TYPES)}, not {item!r}")
        try:
            changes[name] = _DEGRADATION_TYPES[name](value)
        except ValueError:
            raise ValueError(f"--degrade {name}: {value!r} is not a number of the right kind") from None
    return dataclasses.replace(base, **changes)


def mod_crop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """[..., H, W] without its last H % scale rows and W % scale columns (BasicSR's modcrop)."""
    height, width = image.shape[-2:]
    return image[..., :height - height % scale, :width - width % scale]


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).cpu().numpy()).save(buffer, format="JPEG", quality=quality)
    decoded = np.array(Image.open(buffer).convert("RGB"))
    return torch.from_numpy(decoded).permute(2, 0, 1).to(image.device)


def degrade(original: torch.Tensor, degradation: Degradation) -> torch.Tensor:
    """uint8 RGB [3, H, W] (H and W multiples of the scale) -> the degraded uint8 [3, H / scale, W / scale]."""
    height, width = original.shape[-2:]
    if height % degradation.scale or width % degradation.scale:
        raise ValueError(f"a {height}x{width} image is not a multiple of the scale {degradation.scale}: mod_crop it")
    x = original.to(torch.float64)
    if degradation.blur:
        x = gaussian_blur(x, 2 * math.ceil(3 * degradation.blur) + 1, degradation.blur)
    x = matlab_resize(x, 1 / degradation.scale)
    if degradation.noise:
        generator = torch.Generator().manual_seed(degradation.seed)
        x = x + degradation.noise * torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.device)
    small = to_uint8_matlab(x)
    return _jpeg(small, degradation.jpeg) if degradation.jpeg else small


def bicubic_enlargement(degraded: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline: MATLAB's bicubic imresize of the degraded copy back to the original's size."""
    return matlab_resize(degraded, float(scale))


# -- the procedures --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    image: torch.Tensor  # uint8 RGB [3, H, W] on the device
    faces: int | None = None  # faces restored (restore only)


Procedure = Callable[[torch.Tensor], Output]  # degraded uint8 RGB [3, h, w] on the device -> output


def upscale_procedure(model: torch.nn.Module, net_scale: int, tile: int = 0) -> Procedure:
    """restoration.upscale.upscale as an `upscale` job runs it (outscale = the network's scale)."""
    params = UpscaleParams(tile=tile, outscale=None)

    def run(degraded: torch.Tensor) -> Output:
        pixels = np.ascontiguousarray(degraded.permute(1, 2, 0).cpu().numpy())
        out = upscale(model, pixels, net_scale, params)
        return Output(torch.from_numpy(out).to(degraded.device).permute(2, 0, 1))

    return run


def restore_procedure(detector: torch.nn.Module, restorer: torch.nn.Module, parser: torch.nn.Module,
                      scale: int) -> Procedure:
    """restoration.restore.restore as a `restore` job runs it (upscale = scale, no background upsampler)."""
    params = RestoreParams(upscale=float(scale))

    def run(degraded: torch.Tensor) -> Output:
        with torch.inference_mode():
            result = restore(degraded, detector, restorer, parser, params)
        return Output(result.image, result.faces_found)

    return run


# -- the measurement ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    """How outputs are compared with the originals."""

    crop_border: int = 0
    y_channel: bool = False

    def __call__(self, original: torch.Tensor, image: torch.Tensor) -> tuple[float, float]:
        return (fidelity.psnr(original, image, crop_border=self.crop_border, y_channel=self.y_channel),
                fidelity.ssim(original, image, crop_border=self.crop_border, y_channel=self.y_channel))

    def describe(self) -> str:
        channels = "the Y channel (BT.601)" if self.y_channel else "the RGB channels"
        return f"over {channels}, {self.crop_border} border pixels left out"


@dataclass
class Row:
    image: str
    width: int  # of the (mod-cropped) original
    height: int
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    ms: float
    faces: int | None = None


@dataclass(frozen=True)
class Pictures:
    original: np.ndarray  # HxWx3 uint8, mod-cropped
    degraded: np.ndarray  # the degraded copy
    bicubic: np.ndarray  # its bicubic enlargement
    output: np.ndarray  # the procedure's


def _pixels(image: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy())


def evaluate(images: dict[str, Path], procedure: Procedure, degradation: Degradation, measure: Measure,
             device: torch.device, warmup: bool = True) -> Iterator[tuple[Row, Pictures]]:
    """(row, pictures) per image, in name order: the procedure timed on the degraded copy (after one
    untimed run on the first image when `warmup`), both enlargements measured against the original."""
    for i, (name, path) in enumerate(images.items()):
        original = mod_crop(torch.from_numpy(read_image(path).rgb).to(device).permute(2, 0, 1), degradation.scale)
        height, width = original.shape[-2:]
        if min(height, width) < degradation.scale:
            raise ValueError(f"{path}: {width}x{height} is smaller than the scale {degradation.scale}")
        degraded = degrade(original, degradation)
        bicubic = bicubic_enlargement(degraded, degradation.scale)
        if warmup and i == 0:
            procedure(degraded)
            synchronize(device)
        start = time.perf_counter()
        output = procedure(degraded)
        synchronize(device)
        ms = (time.perf_counter() - start) * 1000
        if output.image.shape != original.shape:
            raise RuntimeError(f"{name}: the output is {tuple(output.image.shape)}, the original {tuple(original.shape)}")
        psnr, ssim = measure(original, output.image)
        bicubic_psnr, bicubic_ssim = measure(original, bicubic)
        row = Row(name, width, height, psnr, ssim, bicubic_psnr, bicubic_ssim, ms, output.faces)
        yield row, Pictures(_pixels(original), _pixels(degraded), _pixels(bicubic), _pixels(output.image))


def mean_row(rows: list[Row]) -> Row:
    """The mean of every figure over the images (PSNR: of the per-image dB values, as BasicSR averages);
    faces: the total."""
    def mean(field: str) -> float:
        return float(np.mean([getattr(r, field) for r in rows]))

    faces = None if rows[0].faces is None else sum(r.faces for r in rows)
    return Row("mean", 0, 0, mean("psnr"), mean("ssim"), mean("bicubic_psnr"), mean("bicubic_ssim"), mean("ms"),
               faces)


# -- the outputs ----------------------------------------------------------------------------------
def figures_table(image_width: int, with_faces: bool, stream=sys.stdout) -> Table:
    columns = [Column("image", image_width, align="<"), Column("size", 9),
               Column("PSNR", 7, "{:7.2f}"), Column("SSIM", 6, "{:6.4f}"),
               Column("PSNR-bicubic", 12, "{:12.2f}"), Column("SSIM-bicubic", 12, "{:12.4f}"),
               Column("ms", 9, "{:9.1f}")]
    if with_faces:
        columns.append(Column("faces", 5))
    return Table(columns, stream)


def table_values(row: Row) -> list[object]:
    size = f"{row.width}x{row.height}" if row.width else None
    values = [row.image, size, row.psnr, row.ssim, row.bicubic_psnr, row.bicubic_ssim, row.ms]
    return values + ([row.faces] if row.faces is not None else [])


CSV_HEADER = ("task", "model", "image", "width", "height", "psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "ms",
              "faces", "crop_border", "channels", "degradation")


def write_figures_csv(path: Path, rows: list[Row], task: str, model: str, measure: Measure,
                      degradation: Degradation) -> None:
    channels = "y" if measure.y_channel else "rgb"
    write_csv(path, CSV_HEADER, (
        [task, model, row.image, row.width or "", row.height or "", f"{row.psnr:.4f}", f"{row.ssim:.6f}",
         f"{row.bicubic_psnr:.4f}", f"{row.bicubic_ssim:.6f}", f"{row.ms:.1f}",
         "" if row.faces is None else row.faces, measure.crop_border, channels, degradation.describe()]
        for row in rows))


def save_pictures(folder: Path, model: str, name: str, pictures: Pictures) -> None:
    for kind, pixels in (("degraded", pictures.degraded), ("bicubic", pictures.bicubic),
                         (safe_name(model), pictures.output)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / kind / f"{name}.png", compress_level=1)


# -- the command ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evaluation.restoration", description=__doc__.split("\n\n")[0])
    p.add_argument("--task", choices=TASKS, required=True)
    p.add_argument("--images", type=Path, required=True, help="folder of originals")
    p.add_argument("--model", help="the upscaler (default realesrgan-x4plus) or face restorer (default "
                                   "gfpgan-v1.4), as a job's model")
    p.add_argument("--degrade", default="",
                   help="name=value,... changing the degradation: scale, blur, noise, jpeg, seed (upscale: only "
                        "the network's scale; restore default: scale=2,blur=1.5,noise=5,jpeg=60,seed=0)")
    p.add_argument("--tile", type=int, default=0, help="upscale: tile size, as a job's tile (0: whole image)")
    p.add_argument("--crop-border", type=int, help="border pixels left out of PSNR/SSIM (default: the scale)")
    p.add_argument("--y-channel", action="store_true", help="measure the BT.601 Y channel (BasicSR's test_y_channel)")
    p.add_argument("--pattern", default="*", help="only the files of the folder whose names match this glob")
    p.add_argument("--limit", type=int, help="the first N images only")
    p.add_argument("--out", type=Path, help="write degraded/, bicubic/, <model>/ images and metrics.csv here")
    p.add_argument("--sheet", type=Path, help="write a before/after contact sheet PNG here")
    p.add_argument("--sheet-row-height", type=int, default=256)
    p.add_argument("--weights-dir", type=Path, help="where the weights are (default: $WEIGHTS_DIR)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the worker's: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="as a job's precision (auto: bfloat16 on CUDA, float32 on the CPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-warmup", action="store_true", help="time the first image's run too")
    return p.parse_args(argv)


@dataclass(frozen=True)
class Setup:
    model: str
    description: str
    procedure: Procedure
    degradation: Degradation


def _setup(args: argparse.Namespace, models) -> Setup:
    """The networks loaded the way the worker loads them (its ModelCache), the procedure and the degradation.
    ValueError for a model of the wrong role or a degradation the task cannot take."""
    from models import registry
    from worker.cache import resolve_dtype
    from pipeline import TASKS
    from pipeline.restore import DETECTOR, PARSER

    name = args.model or TASKS[args.task].default_model
    role = TASKS[args.task].role
    if name not in registry.names(role):
        raise ValueError(f"{name!r} is not a registered {role.replace('_', ' ')}; one of: {', '.join(registry.names(role))}")
    spec = registry.get_spec(name)
    # the degradation is checked before any network loads: a typo costs no load
    if args.task == "upscale":
        net_scale = spec.extra["scale"]
        degradation = parse_degradation(args.degrade, Degradation(scale=net_scale))
        if degradation.scale != net_scale:
            raise ValueError(f"--degrade scale: {name} enlarges by {net_scale}, the copy must be shrunk by as much")
    else:
        degradation = parse_degradation(args.degrade, RESTORE_DEGRADATION)
    dtype = resolve_dtype(args.precision, models.device)
    network = models.get(spec, dtype)
    precision = str(next(network.parameters()).dtype).removeprefix("torch.")
    if args.task == "upscale":
        return Setup(name, f"{name} ({precision}), tile {args.tile}", upscale_procedure(network, net_scale, args.tile),
                     degradation)
    detector = models.get(registry.get_spec(DETECTOR), dtype)
    parser = models.get(registry.get_spec(PARSER), dtype)
    return Setup(name, f"{DETECTOR} + {name} ({precision}) + {PARSER}, upscale {degradation.scale}",
                 restore_procedure(detector, network, parser, degradation.scale), degradation)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from models.registry import WeightsNotFound

    images = files_by_stem(args.images, args.pattern) if args.images.is_dir() else {}
    if args.limit:
        images = dict(list(images.items())[:args.limit])
    if not images:
        print(f"no images in {args.images}", file=sys.stderr)
        return 2
    models = worker_models(args.device, args.weights_dir, max_resident_models=0)
    try:
        setup = _setup(args, models)
    except (ValueError, WeightsNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scale = setup.degradation.scale
    measure = Measure(scale if args.crop_border is None else args.crop_border, args.y_channel)

    table = figures_table(max(len(name) for name in images), args.task == "restore")
    table.print(f"# {len(images)} images of {args.images}; task {args.task}: {setup.description}; device "
                f"{models.device}, {torch.get_num_threads()} CPU threads")
    table.print(f"# originals cropped to multiples of {scale}; degraded copy: {setup.degradation.describe()}")
    table.print(f"# PSNR (dB) and SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, valid windows) "
                f"against the original, {measure.describe()}")
    table.print(f"# -bicubic: the degraded copy enlarged x{scale} with MATLAB's bicubic imresize")
    table.print("# ms: the procedure on the degraded copy, per image, "
                + ("first run included" if args.no_warmup else "after one untimed warm-up run"))
    table.header()
    sheet = Sheet(args.sheet_row_height, ["original", f"degraded, bicubic x{scale}", setup.model]) if args.sheet else None
    rows = []
    for row, pictures in evaluate(images, setup.procedure, setup.degradation, measure, models.device,
                                  warmup=not args.no_warmup):
        rows.append(row)
        table.row(table_values(row))
        if args.out:
            save_pictures(args.out, setup.model, row.image, pictures)
        if sheet:
            sheet.add(row.image, "original", pictures.original)
            sheet.add(row.image, f"degraded, bicubic x{scale}", pictures.bicubic)
            sheet.add(row.image, setup.model, pictures.output)
    table.rule()
    mean = mean_row(rows)
    table.row(table_values(mean))
    table.rule()
    if args.out:
        write_figures_csv(args.out / "metrics.csv", rows + [mean], args.task, setup.model, measure, setup.degradation)
        print(f"wrote {args.out}/metrics.csv and the images", file=sys.stderr)
    if sheet:
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
