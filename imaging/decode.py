"""Bytes to pixels, surviving what callers upload.

Every format Pillow reads, normalised to 8-bit RGB plus the image's own alpha when it has one: EXIF
orientation applied, CMYK converted, 16-bit scaled (not clipped), palette transparency kept, the first
frame of animations. The pixel limit is checked from the header, before any pixel is decoded, so a
decompression bomb costs nothing.
"""
from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError


class UndecodableImage(ValueError):
    """Not an image, a truncated file, or a format we cannot read (the message is for the caller)."""


class ImageTooLarge(ValueError):
    """More pixels than the configured limit (decompression bombs included); the message is for the caller."""


# Our own limit is checked explicitly below; Pillow's warning would only duplicate it.
Image.MAX_IMAGE_PIXELS = None


@dataclass
class DecodedImage:
    # HxWx3 uint8: a numpy array, or a tensor on the device when the JPEG was decoded there
    # (`decode_jpeg_on`); `as_array` / `as_tensor` give either form.
    rgb: np.ndarray | torch.Tensor
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


def to_rgb_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """A loaded Pillow image (any mode) to HxWx3 uint8 RGB and its HxW alpha (None when opaque)."""
    rgb, alpha = _split_alpha(_to_uint8(image))
    return np.array(rgb), alpha


@contextmanager
def decoding_errors() -> Iterator[None]:
    """Pillow's many failure types as one UndecodableImage with a message for the caller."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except (ImageTooLarge, UndecodableImage):
        raise
    except UnidentifiedImageError:
        raise UndecodableImage("cannot decode image: not an image format this worker reads") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"cannot decode image: {exc}") from None


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """The image's header, opened lazily; refused when empty or over `max_pixels` (per frame)."""
    if not data:
        raise UndecodableImage("cannot decode image: the object is empty")
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image too large: {width}x{height} = {width * height} pixels, the limit is {max_pixels}")
    return image


def displayed_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) as decoding will give it (EXIF rotations by 90 degrees swap the sides), from the
    header alone: enough to refuse work whose output would be too large before decoding anything."""
    with decoding_errors():
        image = open_image(data, max_pixels)
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
        return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def as_array(rgb: np.ndarray | torch.Tensor) -> np.ndarray:
    """HxWx3 uint8 numpy, wherever the pixels are."""
    return rgb if isinstance(rgb, np.ndarray) else np.ascontiguousarray(rgb.cpu().numpy())


def as_tensor(rgb: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [3,H,W] on `device`, wherever the pixels are."""
    pixels = torch.from_numpy(rgb) if isinstance(rgb, np.ndarray) else rgb
    return pixels.to(device, non_blocking=True).permute(2, 0, 1)


# EXIF orientation -> the torch ops of Pillow's ImageOps.exif_transpose on [C,H,W].
_ORIENT = {
    2: lambda x: x.flip(-1),  # FLIP_LEFT_RIGHT
    3: lambda x: x.flip(-2, -1),  # ROTATE_180
    4: lambda x: x.flip(-2),  # FLIP_TOP_BOTTOM
    5: lambda x: x.transpose(-2, -1),  # TRANSPOSE
    6: lambda x: x.rot90(-1, (-2, -1)),  # ROTATE_270 (clockwise)
    7: lambda x: x.transpose(-2, -1).flip(-2, -1),  # TRANSVERSE
    8: lambda x: x.rot90(1, (-2, -1)),  # ROTATE_90 (counter-clockwise)
}


def decode_jpeg_on(data: bytes, max_pixels: int, device: torch.device) -> DecodedImage | None:
    """A baseline or progressive RGB / grey JPEG decoded by torchvision on `device` (nvJPEG on CUDA),
    oriented as its EXIF says: the same size and orientation as `decode`, the pixels within the
    difference of the two decoders (identical on the CPU: both libjpeg-turbo; nvJPEG rounds its
    IDCT and chroma upsampling differently, BENCHMARKS.md). None for anything else (CMYK/YCCK,
    not a JPEG, a decoder failure): the caller decodes it with Pillow. Limits as `decode`."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with decoding_errors():
        image = open_image(data, max_pixels)
        if image.format != "JPEG" or image.mode not in ("RGB", "L"):
            return None
        orientation = image.getexif().get(0x0112, 1)
    try:
        pixels = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB,
                             device=device)
    except RuntimeError:
        return None
    pixels = _ORIENT.get(orientation, lambda x: x)(pixels)
    return DecodedImage(pixels.permute(1, 2, 0), None, "JPEG")


def decode(data: bytes, max_pixels: int) -> DecodedImage:
    """The first frame (of an animation too), normalised as this module's docstring says."""
    with decoding_errors():
        image = open_image(data, max_pixels)
        source_format = image.format or "unknown"
        image.seek(0)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # without a rotation it would return a copy
        rgb, alpha = to_rgb_alpha(image)
        return DecodedImage(rgb, alpha, source_format)
