"""Animated inputs (GIF, animated WebP, APNG) to every frame as it is displayed.

Pillow composites each frame onto the canvas (GIF disposal, APNG dispose/blend ops, WebP's
blending), so frame i here is the whole canvas as a viewer shows it at that moment, normalised like a
still image (imaging/decode.py): 8-bit RGB plus the frame's alpha when it has transparency.

Timing and looping, made uniform across the three containers:
- `durations`: milliseconds per frame, as stored (GIF stores hundredths of a second, so GIF
  durations are multiples of 10 ms);
- `loop`: how many times the animation plays, 0 = forever (APNG's num_plays and WebP's loop count).
  A GIF's NETSCAPE count is the number of repetitions after the first play (how browsers read it),
  so GIF n > 0 plays n + 1 times; a GIF without the extension plays once.
An APNG whose default image is not part of the animation has that image skipped.

Other multi-image containers are not animations: the pages of a TIFF (which may differ in size), an
MPO's second view, an ICO's sizes. Those give their first image, as a still, exactly as `decode` does.

Limits are checked from the header, before any frame is decoded: the canvas against the still-image
pixel limit, the frame count, and frames x canvas pixels (every decoded frame is the full canvas).
"""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from imaging.decode import (
    DecodedImage,
    ImageTooLarge,
    decoding_errors,
    open_image,
    to_rgb_alpha,
)


class AnimationTooLarge(ImageTooLarge):
    """More frames, or more pixels over all frames, than the configured limits."""


ANIMATED_FORMATS = ("GIF", "WEBP", "PNG")  # Pillow's names; PNG: an APNG


@dataclass(frozen=True)
class AnimationLimits:
    # The worker passes its MAX_FRAMES and MAX_TOTAL_PIXELS settings (worker/config.py); these are their defaults.
    max_frames: int = 300
    max_total_pixels: int = 200_000_000  # frames x canvas; 0.8 GB as decoded RGBA


@dataclass
class DecodedAnimation:
    frames: list[DecodedImage]
    durations: list[int]  # milliseconds per frame; [0] for a still image
    loop: int  # number of plays, 0 = forever
    source_format: str

    @property
    def animated(self) -> bool:
        return len(self.frames) > 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the canvas"""
        return self.frames[0].size


def _plays(image: Image.Image) -> int:
    """The container's loop count as a number of plays (0 = forever)."""
    stored = image.info.get("loop")
    if image.format == "GIF":
        return 1 if stored is None else (0 if stored == 0 else stored + 1)
    return 0 if stored is None else int(stored)


def _check_limits(width: int, height: int, frames: int, limits: AnimationLimits) -> None:
    if frames > limits.max_frames:
        raise AnimationTooLarge(f"animation too long: {frames} frames, the limit is {limits.max_frames}")
    total = frames * width * height
    if total > limits.max_total_pixels:
        raise AnimationTooLarge(f"animation too large: {frames} frames of {width}x{height} = {total} pixels, "
                                f"the limit is {limits.max_total_pixels}")


def _frame(image: Image.Image, source_format: str) -> DecodedImage:
    image.load()
    rgb, alpha = to_rgb_alpha(ImageOps.exif_transpose(image))
    return DecodedImage(rgb, alpha, source_format)


def _frames_of(image: Image.Image) -> tuple[int, int]:
    """(index of the first frame, number of frames) of an opened image, from its header: an APNG's
    default image is not a frame; a container that is not an animation has one."""
    if image.format not in ANIMATED_FORMATS:
        return 0, 1
    first = 1 if image.info.get("default_image") else 0
    return first, getattr(image, "n_frames", 1) - first


def frame_count(data: bytes, max_pixels: int) -> int:
    """How many frames `decode_animation` gives for `data` (1 for a still), from the header alone: a
    job can refuse an animation it cannot write before anything is decoded."""
    with decoding_errors():
        return _frames_of(open_image(data, max_pixels))[1]


def decode_animation(data: bytes, max_pixels: int, limits: AnimationLimits = AnimationLimits(),
                     first_frame_only: bool = False) -> DecodedAnimation:
    """Every displayed frame of an animated GIF/WebP/PNG, with durations and loop count.

    A still image, a container that is not an animation (a multi-page TIFF), or `first_frame_only`
    gives one frame (exactly what imaging.decode.decode gives).
    """
    with decoding_errors():
        image = open_image(data, max_pixels)
        source_format = image.format or "unknown"
        first, count = _frames_of(image)
        if first_frame_only or count <= 1:
            image.seek(0)  # what viewers without animation show, and what decode() gives
            return DecodedAnimation([_frame(image, source_format)], [0], 0, source_format)
        _check_limits(*image.size, count, limits)
        loop = _plays(image)
        frames, durations = [], []
        for index in range(first, first + count):
            image.seek(index)
            frames.append(_frame(image, source_format))
            durations.append(int(round(image.info.get("duration") or 0)))
        return DecodedAnimation(frames, durations, loop, source_format)
