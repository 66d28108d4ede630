"""The output knobs of a cut-out: every default, bound and allowed value written once.

`OutputOptions` is what the matte operations, the crop, the resize and the encoders read; the job
schema takes its knobs from `OUTPUT_KNOBS` and its per-task key lists from `applies_to`. Constructing
one converts every value through its knob, so a function called directly refuses a bad knob with the
same message (a ValueError naming the key) as the schema does.

Semantics follow remove.bg's API where it has the knob (`format`, `channels`, `crop`, `crop_margin`,
`size`): crop_margin is one, two (top/bottom, left/right) or four (top, right, bottom, left) values,
each "Npx" or "N%" of the subject's size, at most 500 px or 50 % a side.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from imaging.knobs import Knob
from imaging.video import VIDEO_FORMATS

# What a task writes, which decides the output knobs it takes (a task's descriptor, pipeline/, names its
# kind): a cut-out (colour and alpha), an alpha matte alone (grey), or a whole image (restored, enlarged).
OutputKind = Literal["cutout", "alpha", "image"]
_CUTOUT: tuple[OutputKind, ...] = ("cutout",)
_MATTE: tuple[OutputKind, ...] = ("cutout", "alpha")  # anything with a matte: its knobs
_EVERY: tuple[OutputKind, ...] = ("cutout", "alpha", "image")

JPEG_QUALITY = 90  # `quality` left unset on a jpg
MAX_MARGIN_PX = 500
MAX_MARGIN_PERCENT = 50.0

# remove.bg's size names and their pixel budgets (None: the image's own resolution).
SIZE_PIXELS: dict[str, int | None] = {"full": None, "preview": 250_000, "medium": 1_500_000, "hd": 4_000_000}

# ASCII digits only (\d takes any script's); values separated by spaces or one comma, nothing around them.
_MARGIN_TOKEN = r"([0-9]+(?:\.[0-9]+)?)(px|%)?"
_MARGIN_SEPARATOR = r" *, *| +"
_MARGIN = re.compile(rf"{_MARGIN_TOKEN}(?:(?:{_MARGIN_SEPARATOR}){_MARGIN_TOKEN})*")
# The default crop_threshold: u2netp leaves faint alpha (up to about 30) around the subject of a photo
# and across its background. Measured on rembg's sample photos' u2netp mattes, cropping at alpha > 32
# gives the subject's box (car-1 480x360: 351x131, cloth-1 739x1134: 307x1064) where 0 gives 445x298
# and 543x1129, and 16 still takes in a faint patch beside the cloth-1 subject (528 wide).
CROP_THRESHOLD = 32
# The least feather sigma: a Gaussian narrower than this changes no 8-bit pixel (its neighbour weight is
# below 1e-21), and one that underflows float32 (sigma ~1e-23) is refused by the blur.
MIN_FEATHER = 0.1


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
    (top, right, bottom, left); a bare number is pixels. Values are separated by spaces or a comma.
    A ValueError's message leaves the key out (the knob names it)."""
    if not _MARGIN.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a margin; use 1, 2 or 4 values separated by spaces, each Npx "
                         f"or N% (e.g. '30px', '10%', '10px 5%')")
    tokens = re.split(_MARGIN_SEPARATOR, text)
    if len(tokens) not in (1, 2, 4):
        raise ValueError(f"{text[:40]!r} needs 1, 2 or 4 values (e.g. '30px', '10%', '10px 5%')")
    values = []
    for token in tokens:
        amount, unit = re.fullmatch(_MARGIN_TOKEN, token).groups()
        amount, unit = float(amount), unit or "px"
        if unit == "px" and (amount > MAX_MARGIN_PX or not amount.is_integer()):
            raise ValueError(f"{token[:40]!r}: pixels must be a whole number 0..{MAX_MARGIN_PX}")
        if unit == "%" and amount > MAX_MARGIN_PERCENT:
            raise ValueError(f"{token[:40]!r}: percent must be 0..{MAX_MARGIN_PERCENT:g}")
        values.append(MarginValue(amount, unit))
    if len(values) == 1:
        values *= 4
    elif len(values) == 2:
        values = [values[0], values[1], values[0], values[1]]
    return Margin(*values)


def parse_color(value: str) -> tuple[int, int, int, int]:
    """#RRGGBB or #RRGGBBAA to an RGBA tuple."""
    digits = value.lstrip("#")
    rgba = [int(digits[i:i + 2], 16) for i in range(0, len(digits), 2)]
    return (*rgba, 255)[:4] if len(rgba) == 3 else tuple(rgba)


def check_feather(sigma: float) -> None:
    if 0 < sigma < MIN_FEATHER:
        raise ValueError(f"{sigma!r} is too small to blur anything; use 0 (off) or {MIN_FEATHER:g}..50")


def _knob(default: Any, doc: str, kinds: tuple[OutputKind, ...], kind: type | None = None, **allowed: Any):
    """A dataclass field whose metadata holds its Knob (named after the field in `OUTPUT_KNOBS`) and
    the output kinds that take it. `kind` is the knob's type where the default (None) does not tell it."""
    return field(default=default, metadata={"kinds": kinds, "knob": dict(
        type=kind or type(default), default=default, doc=doc, **allowed)})


@dataclass(frozen=True)
class OutputOptions:
    format: str = _knob("png", "file format: png (lossless), webp (alpha kept; lossless unless quality is "
                        "set), jpg (no transparency: a cut-out needs an opaque bg_color, or channels=alpha; upscale "
                        "and restore drop the image's alpha), gif (256 colours, 1-bit alpha: alpha >= 128 is "
                        "opaque). Animated inputs: png = APNG, webp, gif",
                        _EVERY, choices=("png", "webp", "jpg", "gif"))
    channels: str = _knob("rgba", "rgba: the cut-out; alpha: the alpha matte alone as a grey image",
                          _CUTOUT, choices=("rgba", "alpha"))
    quality: int | None = _knob(None, f"lossy quality 1..100 for webp and jpg; unset: lossless webp, jpg "
                                f"{JPEG_QUALITY}", _EVERY, int, bounds=(1, 100), nullable=True)
    keep_invisible_rgb: bool = _knob(False, "keep the photo's colour under fully transparent pixels (png, still "
                                     "webp); by default it is zeroed, which makes files smaller and faster",
                                     _CUTOUT)
    threshold: int | None = _knob(None, "hard threshold of the matte: alpha >= threshold becomes opaque, the rest "
                                  "transparent (applied first)", _MATTE, int, bounds=(1, 255), nullable=True)
    grow: int = _knob(0, "grow (> 0) or shrink (< 0) the matte by this many pixels, a disc-shaped dilation or "
                      "erosion (applied after threshold)", _MATTE, bounds=(-100, 100))
    feather: float = _knob(0.0, f"soften the matte's edge: Gaussian blur of this sigma in pixels, 0 (off) or "
                           f"{MIN_FEATHER:g}..50 (applied last)", _MATTE, bounds=(0, 50), parse=check_feather)
    crop: bool = _knob(False, "crop to the subject's bounding box (alpha > crop_threshold); an empty matte is "
                       "not cropped", _MATTE)
    crop_margin: str = _knob("0", f"margin around the cropped subject: 1, 2 (top/bottom, left/right) "
                             f"or 4 values (top, right, bottom, left) separated by spaces, each Npx or N% of the "
                             f"subject's size, at most {MAX_MARGIN_PX}px or {MAX_MARGIN_PERCENT:g}% a side; beyond "
                             f"the image it is transparent (or bg_color)", _MATTE, max_length=100,
                             parse=parse_margin, needs="crop")
    crop_threshold: int = _knob(CROP_THRESHOLD, f"alpha above this counts as subject for crop; "
                                f"{CROP_THRESHOLD} leaves out the faint alpha (up to about 30) that u2netp "
                                f"spreads around a photo's subject", _MATTE, bounds=(0, 254), needs="crop")
    size: str = _knob("full", "largest output: full (the image's own size), preview (0.25 MP), medium (1.5 MP), "
                      "hd (4 MP); scaled down keeping the aspect ratio, antialiased; never enlarged",
                      _MATTE, choices=tuple(SIZE_PIXELS))
    video_format: str = _knob("webm", "video inputs: webm (VP9 with alpha), mov (ProRes 4444 with alpha, for "
                              "editors), mp4 (H.264, no transparency: a cut-out needs an opaque bg_color); the mask "
                              "task writes its matte as a grey video in any of them", _MATTE,
                              choices=VIDEO_FORMATS)
    smoothing: float = _knob(0.0, "video inputs: temporal smoothing of the matte, 0 (off) to 0.9: where a pixel's "
                             "luma changed by less than 4/255 since the previous frame, alpha = smoothing * previous + "
                             "(1 - smoothing) * new; moving pixels keep their new alpha, so edges do not trail "
                             "(applied before threshold, grow and feather)", _MATTE, bounds=(0, 0.9))
    frames: str = _knob("all", "animated inputs (GIF, WebP, APNG): all = every frame, written as an animation "
                        "in png (APNG), webp or gif; first = the first frame only, as a still", _MATTE,
                        choices=("all", "first"))

    def __post_init__(self) -> None:
        """Every value through its knob's conversion (a direct caller gets the schema's refusals)."""
        for name, knob in OUTPUT_KNOBS.items():
            object.__setattr__(self, name, knob.convert(getattr(self, name)))
        if self.quality is not None and self.format not in ("webp", "jpg"):
            raise ValueError(f"quality: applies to webp and jpg only, not {self.format!r}")

    @property
    def margin(self) -> Margin:
        return parse_margin(self.crop_margin)

    @property
    def max_pixels(self) -> int | None:
        return SIZE_PIXELS[self.size]

    def check_background(self, kind: OutputKind, bg_color: str | None) -> None:
        """A jpg has no transparency: a cut-out (remove_background, matte) to jpg needs an opaque bg_color
        (or only the matte written: channels=alpha, which is what the mask task sets). A whole image
        (upscale, restore) is written to jpg as its colour, its alpha dropped."""
        opaque = bg_color is not None and parse_color(bg_color)[3] == 255
        if kind == "cutout" and self.format == "jpg" and self.channels == "rgba" and not opaque:
            raise ValueError("format: 'jpg' has no transparency; set an opaque bg_color (#RRGGBB), "
                             "or use png or webp")
        if kind == "cutout" and self.video_format == "mp4" and self.channels == "rgba" and not opaque:
            raise ValueError("video_format: 'mp4' has no transparency; set an opaque bg_color (#RRGGBB), "
                             "or use webm or mov")

    @classmethod
    def applies_to(cls, kind: OutputKind) -> frozenset[str]:
        """The knobs that a task writing this kind of output takes."""
        return frozenset(spec.name for spec in fields(cls) if kind in spec.metadata["kinds"])


OUTPUT_KNOBS: dict[str, Knob] = {spec.name: Knob(spec.name, **spec.metadata["knob"]) for spec in fields(OutputOptions)}
