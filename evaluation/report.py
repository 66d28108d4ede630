"""What the evaluation commands share: reading a folder of images, timing on the device, and the three
outputs (a fixed-width table on stdout, a CSV, a contact sheet PNG)."""
from __future__ import annotations

import csv
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from imaging.decode import DecodedImage, decode

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MAX_PIXELS = 1 << 40  # evaluation reads trusted files of any size


# -- the data -----------------------------------------------------------------------------------
def files_by_stem(folder: Path, pattern: str = "*") -> dict[str, Path]:
    """The images of a folder whose names match the glob `pattern`, by file name without extension, in
    name order."""
    return {p.stem: p for p in sorted(folder.glob(pattern)) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS}


def read_image(path: Path) -> DecodedImage:
    return decode(path.read_bytes(), MAX_PIXELS)


def safe_name(name: str) -> str:
    """A name usable as a file name: anything but letters, digits and -_. becomes _."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def worker_models(device: str | None, weights_dir: Path | None, max_resident_models: int):
    """The worker's ModelCache under the worker's settings (environment), with the command's device and
    weights folder when given: the evaluated networks load exactly as a job loads them."""
    from worker import config
    from worker.cache import ModelCache

    settings = config.read_settings()
    if device:
        settings = dataclasses.replace(settings, device=device)
    if weights_dir:
        settings = dataclasses.replace(settings, weights_dir=weights_dir)
    return ModelCache(dataclasses.replace(settings, max_resident_models=max_resident_models),
                      log=lambda message: print(message, file=sys.stderr))


# -- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    """One column of a Table: text (no `number` format) or a number written with `number`, e.g. "{:9.3f}"."""

    header: str
    width: int
    number: str = ""
    align: str = ">"

    def cell(self, value: object) -> str:
        if value is None:
            return " " * self.width
        text = self.number.format(value) if self.number else str(value)
        return f"{text:{self.align}{self.width}}"


class Table:
    """Fixed-width rows printed as they come."""

    def __init__(self, columns: Sequence[Column], stream=sys.stdout):
        self.columns = [Column(c.header, max(c.width, len(c.header)), c.number, c.align) for c in columns]
        self.stream = stream
        self.width = 0

    def print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def header(self) -> None:
        line = "  ".join(f"{c.header:{c.align}{c.width}}" for c in self.columns)
        self.width = len(line)
        self.print(line)
        self.rule()

    def row(self, values: Sequence[object]) -> None:
        """One value per column; None leaves the cell blank."""
        self.print("  ".join(c.cell(v) for c, v in zip(self.columns, values, strict=True)))

    def rule(self) -> None:
        self.print("-" * self.width)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


# -- the contact sheet ----------------------------------------------------------------------------
class Sheet:
    """Contact sheet: one row per sample, one labelled column per kind of picture, at a fixed height.

    Pictures taller than the row are shrunk with Lanczos; smaller ones are enlarged by repeating pixels
    (nearest neighbour), so that the sheet shows what each picture holds and smooths nothing of its own in.
    """

    LABEL_HEIGHT = 16

    def __init__(self, row_height: int, columns: Sequence[str]):
        self.row_height = row_height
        self.columns = list(columns)
        self.cells: dict[str, dict[str, Image.Image]] = {}

    def _thumb(self, pixels: np.ndarray) -> Image.Image:
        image = Image.fromarray(pixels).convert("RGB")
        width = max(1, round(image.width * self.row_height / image.height))
        if self.row_height > image.height:
            return image.resize((width, self.row_height), Image.Resampling.NEAREST)
        return image.resize((width, self.row_height), Image.Resampling.LANCZOS, reducing_gap=3.0)

    def add(self, sample: str, column: str, pixels: np.ndarray) -> None:
        if column not in self.columns:
            raise KeyError(f"the sheet has no column {column!r}")
        self.cells.setdefault(sample, {})[column] = self._thumb(pixels)

    def save(self, path: Path, gap: int = 4) -> None:
        widths = [max((row[c].width for row in self.cells.values() if c in row), default=0)
                  for c in self.columns]
        sheet = Image.new("RGB", (sum(widths) + gap * (len(widths) + 1),
                                  self.LABEL_HEIGHT + len(self.cells) * (self.row_height + gap) + gap), "white")
        draw = ImageDraw.Draw(sheet)
        x = gap
        for column, width in zip(self.columns, widths):
            draw.text((x, 2), column, fill="black")
            x += width + gap
        y = self.LABEL_HEIGHT
        for name, row in self.cells.items():
            x = gap
            for column, width in zip(self.columns, widths):
                if column in row:
                    sheet.paste(row[column], (x, y))
                x += width + gap
            draw.text((gap + 2, y + 2), name, fill="yellow")
            y += self.row_height + gap
        path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(path)
