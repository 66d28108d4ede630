"""Decoding survives the contract's list of inputs: a correct image or a clear error."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imaging.decode import ImageTooLarge, UndecodableImage, decode

LIMIT = 50_000_000


def _gradient(width: int = 64, height: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float64)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float64)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (height, width, 1)), np.broadcast_to(y, (height, width, 1)),
                           np.full((height, width, 1), 128.0)], 2).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


@pytest.mark.parametrize("fmt,kwargs", [
    ("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("WEBP", {"lossless": True}),
    ("BMP", {}), ("TIFF", {}), ("GIF", {}),
])
def test_common_formats_decode_to_rgb(fmt, kwargs):
    rgb = _gradient()
    decoded = decode(_save(Image.fromarray(rgb), fmt, **kwargs), LIMIT)
    assert decoded.rgb.shape == rgb.shape and decoded.rgb.dtype == np.uint8
    assert decoded.alpha is None
    tolerance = {"JPEG": 12, "GIF": 40}.get(fmt, 0)
    assert np.abs(decoded.rgb.astype(int) - rgb).mean() <= tolerance


def test_cmyk_jpeg_becomes_rgb():
    decoded = decode(_save(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), "JPEG"), LIMIT)
    assert decoded.rgb.shape == (10, 20, 3)
    r, g, b = decoded.rgb[5, 10].astype(int)
    assert r > 200 and g < 60 and b < 60  # full magenta + yellow ink is red


def test_exif_orientation_is_applied():
    image = Image.fromarray(_gradient(64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode(_save(image, "JPEG", exif=exif), LIMIT)
    assert decoded.size == (48, 64)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    array = np.full((8, 8), 40000, dtype=np.uint16)
    decoded = decode(_save(Image.fromarray(array), "PNG"), LIMIT)
    assert decoded.rgb.shape == (8, 8, 3)
    assert int(decoded.rgb[0, 0, 0]) == 40000 >> 8


def _png_rgb16(array: np.ndarray) -> bytes:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width, _ = array.shape
    rows = b"".join(b"\0" + array[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_sixteen_bit_rgb_png():
    array = np.zeros((4, 6, 3), dtype=np.uint16)
    array[..., 0] = 65535
    array[..., 1] = 30000
    decoded = decode(_png_rgb16(array), LIMIT)
    assert decoded.rgb.shape == (4, 6, 3)
    assert decoded.rgb[0, 0].tolist() == [255, 30000 >> 8, 0]


def test_grey_and_palette_with_transparency():
    grey = decode(_save(Image.fromarray(_gradient()[..., 0]), "PNG"), LIMIT)
    assert grey.rgb.shape == (48, 64, 3) and (grey.rgb[..., 0] == grey.rgb[..., 1]).all()
    palette = Image.fromarray(_gradient()).convert("P")
    transparent_index = palette.getpixel((0, 0))
    decoded = decode(_save(palette, "PNG", transparency=transparent_index), LIMIT)
    assert decoded.alpha is not None and decoded.alpha[0, 0] == 0


def test_own_alpha_is_kept():
    rgba = np.dstack([_gradient(), np.full((48, 64), 255, np.uint8)])
    rgba[:10, :10, 3] = 0
    decoded = decode(_save(Image.fromarray(rgba), "PNG"), LIMIT)
    assert decoded.alpha is not None and decoded.alpha[0, 0] == 0 and decoded.alpha[20, 20] == 255


def test_animation_gives_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    decoded = decode(out.getvalue(), LIMIT)
    assert decoded.rgb[8, 8, 0] > 200 and decoded.rgb[8, 8, 2] < 50


def test_tiny_image():
    assert decode(_save(Image.new("RGB", (1, 1), (1, 2, 3)), "PNG"), LIMIT).rgb.tolist() == [[[1, 2, 3]]]


def test_pixel_limit_refuses_before_decoding():
    bomb = _save(Image.new("L", (20000, 20000)), "PNG")  # a few hundred KB, 400 MP
    assert len(bomb) < 2_000_000
    with pytest.raises(ImageTooLarge, match="400000000 pixels"):
        decode(bomb, LIMIT)


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 20])
def test_non_images(data):
    with pytest.raises(UndecodableImage, match="cannot decode image"):
        decode(data, LIMIT)


def test_truncated_jpeg():
    data = _save(Image.fromarray(_gradient(256, 256)), "JPEG")
    with pytest.raises(UndecodableImage, match="truncated|cannot decode"):
        decode(data[: len(data) // 2], LIMIT)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_decoded_by_torchvision_matches_the_pillow_path(orientation):
    """The GPU path's decoder (torchvision's decode_jpeg; nvJPEG on CUDA), run here on the CPU: the same
    orientation, size and, on the CPU, the same pixels as Pillow's path, for every EXIF orientation."""
    import torch

    from imaging.decode import as_array, decode_jpeg_on

    photo = Image.fromarray(_gradient(96, 64))
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _save(photo, "JPEG", exif=exif)
    ours = decode_jpeg_on(data, 10**8, torch.device("cpu"))
    pillow = decode(data, 10**8)
    assert ours is not None and ours.size == pillow.size
    assert np.array_equal(as_array(ours.rgb), pillow.rgb)


def test_torchvision_jpeg_path_declines_what_it_does_not_handle():
    import torch

    from imaging.decode import decode_jpeg_on

    photo = Image.fromarray(_gradient(96, 64))
    cpu = torch.device("cpu")
    assert decode_jpeg_on(_save(photo.convert("CMYK"), "JPEG"), 10**8, cpu) is None  # Pillow's path inverts Adobe CMYK
    assert decode_jpeg_on(_save(photo, "PNG"), 10**8, cpu) is None
    grey = decode_jpeg_on(_save(photo.convert("L"), "JPEG"), 10**8, cpu)
    assert grey is not None and grey.rgb.shape == (64, 96, 3)
    with pytest.raises(ImageTooLarge):
        decode_jpeg_on(_save(photo, "JPEG"), 1000, cpu)
