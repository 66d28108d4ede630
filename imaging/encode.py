"""Pixels to file bytes: PNG, WebP, JPEG and GIF stills, APNG / WebP / GIF animations.

PNG: 8-bit RGB and RGBA through our own writer (imaging/png.py: the Paeth filter and zlib-ng's
run-length strategy, strips compressed on threads; or the `fast` writer), on a cut-out whose colour
under fully transparent pixels is zeroed; grey mattes and APNG animations through Pillow's encoder
(adaptive per-row filters) with the same Z_RLE strategy at PNG_COMPRESS_LEVEL. Filtered photo rows
have few long matches, so run-length matching loses little to a full LZ77 search, and the zeroed
background becomes runs (benchmarks/bench_png.py, BENCHMARKS.md). The file decodes to exactly the
encoder's input after the zeroing, which changes no visible pixel (`keep_invisible_rgb` keeps that
colour too).

WebP: lossless by default at libwebp's fastest effort (method 0: about 1 s for a 12 MP cut-out,
where the default effort takes over 20 s for 17 % less); lossy with `quality`. JPEG: no alpha, so a
cut-out with transparency is refused. GIF: 256 colours per frame (median cut, no dithering, so
animations do not shimmer) and 1-bit alpha: alpha >= 128 is opaque, the rest transparent.

Animations keep their durations and loop count (`loop` = number of plays, 0 = forever; see
imaging/animation.py). The writers merge a frame identical to the one before into it (its duration
is added), as Pillow and libwebp do: what a viewer shows is the same, the frame count may drop.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from imaging.errors import CallerValueError
from imaging.options import JPEG_QUALITY, OutputOptions
from imaging.png import COLOUR_TYPES, FilteredRows, PngSettings, write_filtered_png, write_png

PNG = "image/png"
Z_RLE = 3  # zlib's run-length strategy (zlib.Z_RLE)
WEBP_METHOD = 0  # libwebp's fastest effort, lossless and lossy
WEBP_LOSSLESS_EFFORT = 0  # Pillow's `quality` in lossless mode: 0 = fastest
GIF_TRANSPARENT = 255  # the palette index kept for transparency; 255 colours for the image
GIF_ALPHA_CUT = 128  # alpha >= this is opaque in a GIF

CONTENT_TYPES = {"png": PNG, "webp": "image/webp", "jpg": "image/jpeg", "gif": "image/gif"}


@dataclass(frozen=True)
class Encoded:
    data: bytes
    content_type: str
    extension: str  # "png", "webp", "jpg", "gif" (an APNG is a .png)


def zero_invisible(pixels: np.ndarray) -> np.ndarray:
    """HxWx4 RGBA with the colour under alpha == 0 set to 0 (a copy); other shapes unchanged."""
    if pixels.ndim != 3 or pixels.shape[2] != 4:
        return pixels
    # Each pixel as one little-endian word, alpha its top byte: a comparison and a select over words
    # take a ninth of the time of a masked multiply over bytes (10 against 93 ms on 7.6 MP).
    words = np.ascontiguousarray(pixels).view("<u4")[..., 0]
    kept = np.where(words < 1 << 24, np.uint32(0), words).astype("<u4", copy=False)
    return kept.view(np.uint8).reshape(pixels.shape)


def encode_png(pixels: np.ndarray | FilteredRows, png: PngSettings = PngSettings(),
               keep_invisible_rgb: bool = False) -> bytes:
    """HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) uint8 to PNG bytes; or FilteredRows (their invisible colour
    zeroed or kept where they were made: imaging/output.py's png_rows)."""
    if isinstance(pixels, FilteredRows):
        return write_filtered_png(pixels, png.writer, png.threads)
    if not keep_invisible_rgb:
        pixels = zero_invisible(pixels)
    if pixels.ndim == 3 and pixels.shape[2] in COLOUR_TYPES:
        return write_png(pixels, png.writer, png.threads)
    out = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(out, format="PNG", compress_level=png.compress_level,
                                                       compress_type=Z_RLE)
    return out.getvalue()


def _webp_args(options: OutputOptions) -> dict:
    if options.quality is None:
        return {"lossless": True, "quality": WEBP_LOSSLESS_EFFORT, "method": WEBP_METHOD,
                "exact": options.keep_invisible_rgb}
    return {"quality": options.quality, "method": WEBP_METHOD, "exact": options.keep_invisible_rgb}


def _refuse_transparent_jpeg(pixels: np.ndarray) -> None:
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        raise CallerValueError("format", "'jpg' has no transparency; composite onto an opaque bg_color (#RRGGBB) "
                               "or use png or webp")


def holds_animations(options: OutputOptions) -> bool:
    """Whether the output format can hold several frames (a jpg is one picture)."""
    return options.format != "jpg"


def check_frame_count(frames: int, options: OutputOptions) -> None:
    """Refuse a format that cannot hold this many frames: callable as soon as the input's frames are
    counted, before any network runs on them."""
    if frames > 1 and not holds_animations(options):
        raise CallerValueError("format", f"'jpg' cannot hold an animation (the input has {frames} frames); "
                               f"use png (APNG), webp or gif, or frames='first'")


def _gif_frame(pixels: np.ndarray) -> Image.Image:
    """A palette image: 255 median-cut colours, index 255 transparent where alpha < GIF_ALPHA_CUT."""
    rgb = pixels[..., :3] if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=2)
    quantised = Image.fromarray(np.ascontiguousarray(rgb)).quantize(
        GIF_TRANSPARENT, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    indices = np.asarray(quantised).copy()
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        indices[pixels[..., 3] < GIF_ALPHA_CUT] = GIF_TRANSPARENT
    frame = Image.fromarray(indices, "P")
    palette = quantised.getpalette()[:GIF_TRANSPARENT * 3]
    frame.putpalette(palette + [0] * (768 - len(palette)))
    return frame


def _gif_loop(plays: int) -> dict:
    """Plays to the NETSCAPE repetition count Pillow writes (no extension: play once)."""
    return {} if plays == 1 else {"loop": max(plays - 1, 0)}


def encode_image(pixels: np.ndarray | FilteredRows, options: OutputOptions, png: PngSettings = PngSettings()) -> Encoded:
    """A still: HxW grey, HxWx3 RGB or HxWx4 RGBA uint8 in options.format (FilteredRows: a PNG's)."""
    fmt = options.format
    if fmt == "gif":
        return encode_animation([pixels], [0], 1, options)
    if fmt == "png":
        data = encode_png(pixels, png, options.keep_invisible_rgb)
        return Encoded(data, PNG, "png")
    if fmt == "jpg":
        _refuse_transparent_jpeg(pixels)
    if not options.keep_invisible_rgb:
        pixels = zero_invisible(pixels)
    out = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if fmt == "webp":
        image.save(out, format="WEBP", **_webp_args(options))
    else:
        image.save(out, format="JPEG", quality=options.quality or JPEG_QUALITY)
    return Encoded(out.getvalue(), CONTENT_TYPES[fmt], fmt)


def _one_per_duration(frames: Iterable[np.ndarray], durations: int) -> Iterator[np.ndarray]:
    """The frames, with a ValueError as soon as their number is known to differ from `durations`."""
    count = 0
    for count, frame in enumerate(frames, 1):
        if count > durations:
            raise ValueError(f"more than {durations} frames but {durations} durations")
        yield frame
    if count != durations:
        raise ValueError(f"{count} frames but {durations} durations")


def _animation_image(pixels: np.ndarray, options: OutputOptions) -> Image.Image:
    """One frame as the animated writers take it: a palette image for a GIF, else as it is (with the
    colour under full transparency zeroed unless kept)."""
    if options.format == "gif":
        return _gif_frame(pixels)
    if not options.keep_invisible_rgb:
        pixels = zero_invisible(pixels)
    return Image.fromarray(np.ascontiguousarray(pixels))


def encode_animation(frames: Iterable[np.ndarray], durations: list[int], loop: int, options: OutputOptions,
                     png: PngSettings = PngSettings()) -> Encoded:
    """Frames of one shape (grey, RGB or RGBA uint8), one per duration, as an APNG (format png),
    animated WebP or GIF.

    `durations` in milliseconds per frame, `loop` the number of plays (0 = forever). `frames` may be a
    generator: each frame is converted as the writer asks for it, so the caller's frames need not all
    exist at once for a GIF (Pillow 13's GIF writer takes them one by one and keeps each as a palette
    image); its APNG and WebP writers need every frame at once (BENCHMARKS.md, streamed animations).
    """
    fmt = options.format
    check_frame_count(len(durations), options)
    images = (_animation_image(f, options) for f in _one_per_duration(frames, len(durations)))
    if fmt == "gif":
        args = {"disposal": 2, "transparency": GIF_TRANSPARENT, **_gif_loop(loop)}
    elif fmt == "png":
        args = {"loop": loop, "disposal": 0, "blend": 0, "compress_level": png.compress_level, "compress_type": Z_RLE}
    else:
        args = {"loop": loop, **_webp_args(options)}
    if fmt == "gif":  # Pillow's GIF writer takes its frames one at a time
        first, rest = next(images), images
    else:  # its APNG writer reads append_images twice, its WebP writer makes a list of it first
        first, *rest = images
    out = io.BytesIO()
    first.save(out, format="WEBP" if fmt == "webp" else fmt.upper(), save_all=True, append_images=rest,
               duration=list(durations), **args)
    return Encoded(out.getvalue(), CONTENT_TYPES[fmt], fmt)


def encode_frames(frames: list[np.ndarray | FilteredRows], durations: list[int], loop: int, options: OutputOptions,
                  png: PngSettings = PngSettings()) -> Encoded:
    """One frame as a still (FilteredRows too), several as an animation."""
    if len(frames) == 1:
        return encode_image(frames[0], options, png)
    return encode_animation(frames, durations, loop, options, png)
