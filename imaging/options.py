"""The output knobs of a cut-out: every default, bound and allowed value written once.

`OutputOptions` is what the matte operations, the crop, the resize and the encoders read; the job
schema builds its entries from `OutputOptions.schema()` (descriptions, defaults, bounds, choices) and
its per-task key lists from `applies_to`. Constructing one checks every value, so a function called
directly refuses a bad knob with the same message (a ValueError naming the key) as the schema does.

Semantics follow remove.bg's API where it has the knob (`format`, `channels`, `crop`, `crop_margin`,
`size`): crop_margin is one, two (top/bottom, left/right) or four (top, right, bottom, left) values,
each "Npx" or "N%" of the subject's size, at most 500 px or 50 % a side.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from imaging.postprocess import parse_color

CUTOUT_TASKS = ("remove_background", "matte")
MATTE_TASKS = CUTOUT_TASKS + ("mask",)
EVERY_TASK = MATTE_TASKS + ("restore", "upscale")

JPEG_QUALITY = 90  # `quality` left unset on a jpg
MAX_MARGIN_PX = 500
MAX_MARGIN_PERCENT = 50.0

# remove.bg's size names and their pixel budgets (None: the image's own resolution).
SIZE_PIXELS: dict[str, int | None] = {"full": None, "preview": 250_000, "medium": 1_500_000, "hd": 4_000_000}

_MARGIN_TOKEN = re.compile(r"^(\d+(?:\.\d+)?)(px|%)?$")


@dataclass(frozen=True)
class MarginValue:
    amount: float
    unit: str  # "px" or "%"

    def pixels(self, subject_extent: int) -> int:
        """The margin in pixels for a subject `subject_extent` pixels long along this side's axis."""
        if self.unit == "px":
            return int(self.amount)
        return int(math.floor(self.amount / 100 * subject_extent + 0.5))


@dataclass(frozen=True)
class Margin:
    top: MarginValue
    right: MarginValue
    bottom: MarginValue
    left: MarginValue


def parse_margin(text: str) -> Margin:
    """remove.bg's crop_margin: "30px", "10%", "10px 5%" (top/bottom, left/right) or four values
    (top, right, bottom, left); a bare number is pixels. Spaces or commas separate values."""
    tokens = [t for t in re.split(r"[\s,]+", text.strip()) if t]
    if len(tokens) not in (1, 2, 4):
        raise ValueError(f"crop_margin: {text!r} needs 1, 2 or 4 values (e.g. '30px', '10%', '10px 5%')")
    values = []
    for token in tokens:
        match = _MARGIN_TOKEN.match(token)
        if not match:
            raise ValueError(f"crop_margin: {token!r} is not a margin; use e.g. '30px' or '10%'")
        amount, unit = float(match.group(1)), match.group(2) or "px"
        if unit == "px" and (amount != int(amount) or amount > MAX_MARGIN_PX):
            raise ValueError(f"crop_margin: {token!r}; pixels must be a whole number 0..{MAX_MARGIN_PX}")
        if unit == "%" and amount > MAX_MARGIN_PERCENT:
            raise ValueError(f"crop_margin: {token!r}; percent must be 0..{MAX_MARGIN_PERCENT:g}")
        values.append(MarginValue(amount, unit))
    if len(values) == 1:
        values *= 4
    elif len(values) == 2:
        values = [values[0], values[1], values[0], values[1]]
    return Margin(*values)


def _knob(default: Any, description: str, tasks: tuple[str, ...], *, choices: tuple | None = None,
          bounds: tuple[float, float] | None = None, kind: type | tuple | None = None, nullable: bool = False):
    return field(default=default, metadata={
        "description": description, "tasks": tasks, "choices": choices, "bounds": bounds,
        "kind": kind if kind is not None else type(default), "nullable": nullable,
    })


@dataclass(frozen=True)
class OutputOptions:
    format: str = _knob("png", "file format: png (lossless), webp (alpha kept; lossless unless quality is "
                        "set), jpg (no transparency: needs an opaque bg_color, or channels=alpha), gif (256 colours, "
                        "1-bit alpha: alpha >= 128 is opaque). Animated inputs: png = APNG, webp, gif",
                        EVERY_TASK, choices=("png", "webp", "jpg", "gif"))
    channels: str = _knob("rgba", "rgba: the cut-out; alpha: the alpha matte alone as a grey image",
                          CUTOUT_TASKS, choices=("rgba", "alpha"))
    quality: int | None = _knob(None, f"lossy quality 1..100 for webp and jpg; unset: lossless webp, jpg "
                                f"{JPEG_QUALITY}", EVERY_TASK, bounds=(1, 100), kind=int, nullable=True)
    keep_invisible_rgb: bool = _knob(False, "keep the photo's colour under fully transparent pixels (png, still "
                                     "webp); by default it is zeroed, which makes files smaller and faster",
                                     CUTOUT_TASKS)
    threshold: int | None = _knob(None, "hard threshold of the matte: alpha >= threshold becomes opaque, the rest "
                                  "transparent (applied first)", MATTE_TASKS, bounds=(1, 255), kind=int,
                                  nullable=True)
    grow: int = _knob(0, "grow (> 0) or shrink (< 0) the matte by this many pixels, a disc-shaped dilation or "
                      "erosion (applied after threshold)", MATTE_TASKS, bounds=(-100, 100))
    feather: float = _knob(0.0, "soften the matte's edge: Gaussian blur of this sigma in pixels (applied last)",
                           MATTE_TASKS, bounds=(0, 50), kind=(int, float))
    crop: bool = _knob(False, "crop to the subject's bounding box (alpha > crop_threshold); an empty matte is "
                       "not cropped", MATTE_TASKS)
    crop_margin: str = _knob("0", f"margin around the cropped subject: 1, 2 (top/bottom, left/right) or 4 values "
                             f"(top, right, bottom, left), each Npx or N% of the subject's size, at most "
                             f"{MAX_MARGIN_PX}px or {MAX_MARGIN_PERCENT:g}% a side; beyond the image it is "
                             f"transparent (or bg_color)", MATTE_TASKS)
    crop_threshold: int = _knob(0, "alpha above this counts as subject for crop", MATTE_TASKS, bounds=(0, 254))
    size: str = _knob("full", "largest output: full (the image's own size), preview (0.25 MP), medium (1.5 MP), "
                      "hd (4 MP); scaled down keeping the aspect ratio, antialiased; never enlarged",
                      MATTE_TASKS, choices=tuple(SIZE_PIXELS))
    frames: str = _knob("all", "animated inputs (GIF, WebP, APNG): all = every frame, written as an animation "
                        "in png (APNG), webp or gif; first = the first frame only, as a still", MATTE_TASKS,
                        choices=("all", "first"))

    def __post_init__(self) -> None:
        for spec in fields(self):
            _check(spec.name, getattr(self, spec.name), spec.metadata)
        parse_margin(self.crop_margin)
        if self.quality is not None and self.format not in ("webp", "jpg"):
            raise ValueError(f"quality: applies to webp and jpg only, not {self.format!r}")

    @property
    def margin(self) -> Margin:
        return parse_margin(self.crop_margin)

    @property
    def max_pixels(self) -> int | None:
        return SIZE_PIXELS[self.size]

    def check_background(self, bg_color: str | None) -> None:
        """A jpg has no transparency: refuse it unless the cut-out is composited onto an opaque colour
        (or only the matte is written: channels=alpha, which is what the mask task should set)."""
        opaque = bg_color is not None and parse_color(bg_color)[3] == 255
        if self.format == "jpg" and self.channels == "rgba" and not opaque:
            raise ValueError("format: 'jpg' has no transparency; set an opaque bg_color (#RRGGBB), "
                             "or use png or webp")

    @classmethod
    def schema(cls) -> dict[str, dict[str, Any]]:
        """JSON-schema entries, one per knob: type, default, bounds or enum, description."""
        return {spec.name: _schema_entry(spec.default, spec.metadata) for spec in fields(cls)}

    @classmethod
    def applies_to(cls, task: str) -> frozenset[str]:
        """The knobs that a task takes."""
        return frozenset(spec.name for spec in fields(cls) if task in spec.metadata["tasks"])


_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _schema_entry(default: Any, meta: dict) -> dict[str, Any]:
    kinds = meta["kind"] if isinstance(meta["kind"], tuple) else (meta["kind"],)
    types = [_JSON_TYPES[k] for k in kinds if not (k is int and float in kinds)] + (["null"] if meta["nullable"] else [])
    entry: dict[str, Any] = {"type": types[0] if len(types) == 1 else types, "default": default,
                             "description": meta["description"]}
    if meta["choices"]:
        entry["enum"] = list(meta["choices"])
    if meta["bounds"]:
        entry["minimum"], entry["maximum"] = meta["bounds"]
    return entry


def _check(name: str, value: Any, meta: dict) -> None:
    if value is None and meta["nullable"]:
        return
    kinds = meta["kind"] if isinstance(meta["kind"], tuple) else (meta["kind"],)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        wanted = " or ".join(_JSON_TYPES[k] for k in kinds)
        raise ValueError(f"{name}: {value!r} has the wrong type; expected {wanted}")
    if meta["choices"] and value not in meta["choices"]:
        raise ValueError(f"{name}: {value!r} is not allowed; allowed values: {', '.join(meta['choices'])}")
    if meta["bounds"] and not meta["bounds"][0] <= value <= meta["bounds"][1]:
        low, high = meta["bounds"]
        raise ValueError(f"{name}: {value!r} is out of range; allowed: {low:g}..{high:g}")
