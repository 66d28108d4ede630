"""Bytes to pixels, surviving what callers upload.

Every format Pillow reads, normalised to 8-bit RGB plus the image's own alpha when it has one: EXIF
orientation applied, CMYK converted, 16-bit scaled (not clipped), palette transparency kept, the first
frame of animations. The pixel limit is checked from the header, before any pixel is decoded, so a
decompression bomb costs nothing.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError


class UndecodableImage(ValueError):
    """Not an image, a truncated file, or a format we cannot read (the message is for the caller)."""


class ImageTooLarge(ValueError):
    """More pixels than the configured limit (decompression bombs included); the message is for the caller."""


# Our own limit is checked explicitly below; Pillow's warning would only duplicate it.
Image.MAX_IMAGE_PIXELS = None


@dataclass
class DecodedImage:
    rgb: np.ndarray  # HxWx3 uint8
    alpha: np.ndarray | None  # HxW uint8, or None when the image is opaque
    source_format: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)"""
        return self.rgb.shape[1], self.rgb.shape[0]


def _to_uint8(image: Image.Image) -> Image.Image:
    """16- and 32-bit greyscale scaled to 8 bits by their range (Pillow's convert would clip at 255)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        array = np.asarray(image, dtype=np.uint16)
        return Image.fromarray((array >> 8).astype(np.uint8), "L")
    if image.mode == "I":
        array = np.asarray(image, dtype=np.int64)
        top = 65535 if array.max() > 255 else 255
        return Image.fromarray((np.clip(array, 0, top) * 255 // top).astype(np.uint8), "L")
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float32))
        top = 1.0 if array.max() <= 1.0 else float(array.max())
        return Image.fromarray((np.clip(array / top, 0, 1) * 255).round().astype(np.uint8), "L")
    return image


def _split_alpha(image: Image.Image) -> tuple[Image.Image, np.ndarray | None]:
    has_alpha = image.mode in ("RGBA", "LA", "La", "RGBa", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return (image if image.mode == "RGB" else image.convert("RGB")), None  # convert would copy
    rgba = image.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"))
    if alpha.min() == 255:
        alpha = None
    return rgba.convert("RGB"), alpha


def decode(data: bytes, max_pixels: int) -> DecodedImage:
    if not data:
        raise UndecodableImage("cannot decode image: the object is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"image too large: {width}x{height} = {width * height} pixels, the limit is {max_pixels}"
                )
            source_format = image.format or "unknown"
            image.seek(0)  # first frame of animations
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # without a rotation it would return a copy
            image = _to_uint8(image)
            rgb, alpha = _split_alpha(image)
            return DecodedImage(np.array(rgb), alpha, source_format)
    except (ImageTooLarge, UndecodableImage):
        raise
    except UnidentifiedImageError:
        raise UndecodableImage("cannot decode image: not an image format this worker reads") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"cannot decode image: {exc}") from None
