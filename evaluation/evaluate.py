"""Matte quality against true alphas: `python -m evaluation.evaluate --model u2netp --images DIR --alphas DIR`.

Every image with a true alpha goes through the worker's own path (decode -> predict_mattes ->
full_size_alpha, the alpha a `mask` job writes), and the result is compared with the truth
(evaluation.metrics): SAD, MSE, gradient and connectivity errors as the alphamatting.com benchmark
defines them, MAD and IoU at 0.5, and the time the alpha took. A fixed-width table goes to stdout;
`--out` writes the mattes and a metrics.csv, `--sheet` a contact sheet to look at.

What turns an image into an alpha is a parameter (`AlphaFn`): the segmentation networks here, a chain of
segmentation and matting later.

Layouts: `--alphas` holds `<stem><alpha-suffix>.<ext>` for each image `<stem>.<ext>` of `--images`
(alphamatting: image/GT01.png and alpha/GT01.png; hires: GT04.jpg and GT04_alpha.png in one folder,
`--alphas` = `--images` with `--alpha-suffix _alpha`). `--trimaps` likewise, with `--trimap-suffix`.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image

from evaluation import metrics
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
from imaging.decode import DecodedImage
from worker.device import synchronize

AlphaFn = Callable[[DecodedImage], torch.Tensor]  # image -> [H,W] uint8 alpha, as a job writes it


@dataclass(frozen=True)
class Method:
    name: str
    alpha: AlphaFn
    description: str = ""


@dataclass(frozen=True)
class Sample:
    name: str
    image: Path
    alpha: Path
    trimap: Path | None = None


@dataclass
class Row:
    method: str
    image: str
    width: int
    height: int
    errors: dict[str, float]
    ms: float


# -- the data -----------------------------------------------------------------------------------
def find_samples(
    images: Path,
    alphas: Path,
    alpha_suffix: str = "",
    trimaps: Path | None = None,
    trimap_suffix: str = "",
    limit: int | None = None,
) -> tuple[list[Sample], list[str]]:
    """The images that have a true alpha (and a trimap, when `trimaps` is given), in name order, and
    the names of those skipped for want of one. Files that are another image's alpha or trimap (one
    folder holding all three) are not images."""
    pictures = files_by_stem(images)
    truths = files_by_stem(alphas)
    maps = files_by_stem(trimaps) if trimaps else {}
    helpers = set()
    for stem in pictures:
        if alphas.resolve() == images.resolve() and stem + alpha_suffix in truths and alpha_suffix:
            helpers.add(stem + alpha_suffix)
        if trimaps and trimaps.resolve() == images.resolve() and trimap_suffix and stem + trimap_suffix in maps:
            helpers.add(stem + trimap_suffix)
    samples, skipped = [], []
    for stem, path in pictures.items():
        if stem in helpers:
            continue
        alpha = truths.get(stem + alpha_suffix)
        trimap = maps.get(stem + trimap_suffix) if trimaps else None
        if alpha is None or alpha == path or (trimaps and trimap is None):
            skipped.append(stem)
            continue
        samples.append(Sample(stem, path, alpha, trimap))
    return samples[:limit] if limit else samples, skipped


def read_grey(path: Path) -> np.ndarray:
    """An 8-bit [H,W] map (true alpha or trimap): the alpha channel of an image that has one, else its
    grey level (8-bit RGB renderings of grey mattes come back exactly)."""
    image = read_image(path)
    if image.alpha is not None:
        return np.array(image.alpha)
    return np.array(Image.fromarray(image.rgb).convert("L"))


# -- the methods ----------------------------------------------------------------------------------
def segmentation_alpha(model: torch.nn.Module, spec, seg_mask_size: int | None = None) -> AlphaFn:
    """A job's `mask` alpha from a segmentation network: predict_mattes, then full_size_alpha."""
    from pipeline.segmentation.postprocess import full_size_alpha
    from pipeline.segmentation.segment import predict_mattes

    def alpha_of(image: DecodedImage) -> torch.Tensor:
        matte = predict_mattes(model, spec, [image.rgb], 1, seg_mask_size)[0]
        return full_size_alpha(matte, image)

    return alpha_of


def segmentation_method(name: str, models, precision: str, seg_mask_size: int | None) -> Method:
    """A registered segmentation network (or a weights folder under WEIGHTS_DIR), loaded the way the
    worker loads it (its ModelCache: device, channels_last, half-precision fallback)."""
    from models import registry
    from worker.cache import resolve_dtype

    spec = registry.resolve(name, models.weights_dir)
    model = models.get(spec, resolve_dtype(precision, models.device))
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    size = f"{seg_mask_size}x{seg_mask_size}" if seg_mask_size else "x".join(map(str, spec.preprocess.size))
    return Method(name, segmentation_alpha(model, spec, seg_mask_size), f"{name}: {dtype}, network input {size}")


# -- the measurement ------------------------------------------------------------------------------
def evaluate(
    samples: list[Sample], method: Method, warmup: bool = True, device: torch.device | None = None
) -> Iterator[tuple[Row, np.ndarray, DecodedImage, np.ndarray]]:
    """(row, alpha, image, true alpha) per sample: the method's alpha timed (after one untimed run on
    the first image when `warmup`), the errors computed on `device` (default: where the alpha is)."""
    for i, sample in enumerate(samples):
        image = read_image(sample.image)
        true = read_grey(sample.alpha)
        width, height = image.size
        if true.shape != (height, width):
            raise ValueError(f"{sample.alpha}: true alpha is {true.shape[1]}x{true.shape[0]}, "
                             f"the image {width}x{height}")
        if warmup and i == 0:
            alpha = method.alpha(image)
            synchronize(alpha.device)
        start = time.perf_counter()
        alpha = method.alpha(image)
        synchronize(alpha.device)
        ms = (time.perf_counter() - start) * 1000
        where = device or alpha.device
        region = None
        if sample.trimap is not None:
            trimap = read_grey(sample.trimap)
            if trimap.shape != true.shape:
                raise ValueError(f"{sample.trimap}: trimap size differs from the image's")
            region = metrics.unknown_region(torch.from_numpy(trimap).to(where))
        errors = metrics.matte_errors(metrics.unit_alpha(alpha.to(where)),
                                      metrics.unit_alpha(torch.from_numpy(true).to(where)), region)
        yield Row(method.name, sample.name, width, height, errors, ms), alpha.cpu().numpy(), image, true


def mean_row(rows: list[Row]) -> Row:
    errors = {k: float(np.mean([r.errors[k] for r in rows])) for k in metrics.METRICS}
    return Row(rows[0].method, "mean", 0, 0, errors, float(np.mean([r.ms for r in rows])))


# -- the outputs ----------------------------------------------------------------------------------
COLUMNS = (  # header, width, format
    ("SAD", 9, "{:9.3f}"),
    ("MSE", 9, "{:9.5f}"),
    ("Grad", 9, "{:9.3f}"),
    ("Conn", 9, "{:9.3f}"),
    ("MAD", 8, "{:8.5f}"),
    ("IoU", 7, "{:7.4f}"),
    ("ms", 9, "{:9.1f}"),
)


def error_table(image_width: int, method_width: int, stream=sys.stdout) -> Table:
    """image, model, size, then every error and the time."""
    labels = [Column("image", image_width, align="<"), Column("model", method_width, align="<"), Column("size", 9)]
    return Table(labels + [Column(*column) for column in COLUMNS], stream)


def table_values(row: Row) -> list[object]:
    size = f"{row.width}x{row.height}" if row.width else None
    return [row.image, row.method, size, *(row.errors[k] for k in metrics.METRICS), row.ms]


def write_errors_csv(path: Path, rows: list[Row], region: str) -> None:
    write_csv(path, ["model", "image", "width", "height", *metrics.METRICS, "ms", "region"],
              ([row.method, row.image, row.width or "", row.height or "",
                *(f"{row.errors[k]:.6g}" for k in metrics.METRICS), f"{row.ms:.1f}", region] for row in rows))


# -- the command ----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m evaluation.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, help="a segmentation model; repeat for several")
    p.add_argument("--images", type=Path, required=True, help="folder of photos")
    p.add_argument("--alphas", type=Path, required=True, help="folder of true alphas (may be --images)")
    p.add_argument("--alpha-suffix", default="", help="true alpha of <stem>.ext is <stem><suffix>.*")
    p.add_argument("--trimaps", type=Path, help="restrict SAD/MSE/Grad/Conn to the trimaps' unknown band")
    p.add_argument("--trimap-suffix", default="")
    p.add_argument("--weights-dir", type=Path, help="where the weights are (default: $WEIGHTS_DIR)")
    p.add_argument("--seg-mask-size", type=int, help="square network input size, as a job's seg_mask_size")
    p.add_argument("--limit", type=int, help="the first N images only")
    p.add_argument("--out", type=Path, help="write <model>/<image>.png mattes and metrics.csv here")
    p.add_argument("--sheet", type=Path, help="write a contact sheet PNG here")
    p.add_argument("--sheet-row-height", type=int, default=160)
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: the worker's: cuda when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                   help="as a job's precision (auto: bfloat16 on CUDA, float32 on the CPU)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-warmup", action="store_true", help="time the first image's run too")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from models.registry import WeightsNotFound

    samples, skipped = find_samples(args.images, args.alphas, args.alpha_suffix, args.trimaps,
                                    args.trimap_suffix, args.limit)
    for name in skipped:
        print(f"skipped {name}: no true alpha{' or trimap' if args.trimaps else ''}", file=sys.stderr)
    if not samples:
        print(f"no image in {args.images} has a true alpha in {args.alphas}", file=sys.stderr)
        return 2

    models = worker_models(args.device, args.weights_dir, max_resident_models=1)
    region = "trimap unknown" if args.trimaps else "whole image"

    table = error_table(max(len(s.name) for s in samples), max(len(m) for m in args.model))
    table.print(f"# {len(samples)} images of {args.images} against {args.alphas}; device {models.device}, "
                f"precision {args.precision}, {torch.get_num_threads()} CPU threads")
    if args.trimaps:
        table.print(f"# SAD, MSE, Grad, Conn over the unknown band of the trimaps in {args.trimaps} "
                    "(the alphamatting benchmark's region); MAD, IoU@0.5 over the whole image")
    else:
        table.print("# SAD, MSE, Grad, Conn, MAD, IoU@0.5 over the whole image (no --trimaps; the "
                    "alphamatting benchmark sums over the trimap's unknown band)")
    table.print("# SAD, Grad, Conn: sums / 1000 with alphas in [0,1]; Grad: Gaussian-derivative sigma 1.4; "
                "Conn: threshold step 0.1, 4-connected")
    table.print("# ms: decoded image to full-size alpha (predict_mattes + full_size_alpha), per image, "
                + ("first run included" if args.no_warmup else "after one untimed warm-up run"))

    sheet = Sheet(args.sheet_row_height, ["image", "true alpha", *args.model]) if args.sheet else None
    all_rows: list[Row] = []
    header_done = False
    for name in args.model:
        try:
            method = segmentation_method(name, models, args.precision, args.seg_mask_size)
        except KeyError:
            print(f"error: unknown model {name!r}", file=sys.stderr)
            return 2
        except WeightsNotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        table.print(f"# {method.description}")
        if not header_done:
            table.header()
            header_done = True
        rows = []
        for row, alpha, image, true in evaluate(samples, method, warmup=not args.no_warmup):
            rows.append(row)
            table.row(table_values(row))
            if args.out:
                folder = args.out / safe_name(name)
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(alpha).save(folder / f"{row.image}.png", compress_level=1)
            if sheet:
                if row.image not in sheet.cells:
                    sheet.add(row.image, "image", image.rgb)
                    sheet.add(row.image, "true alpha", true)
                sheet.add(row.image, name, alpha)
        table.rule()
        mean = mean_row(rows)
        table.row(table_values(mean))
        table.rule()
        all_rows += rows + [mean]
        del method  # with one resident model, the next load evicts this one
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_errors_csv(args.out / "metrics.csv", all_rows, region)
        print(f"wrote {args.out}/metrics.csv and the mattes", file=sys.stderr)
    if sheet:
        sheet.save(args.sheet)
        print(f"wrote {args.sheet}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
