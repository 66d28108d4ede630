"""Stills in every output format: lossless where promised, zeroed invisible colour, refusals."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from imaging.encode import encode_image, encode_png, zero_invisible
from imaging.options import OutputOptions
from imaging.output import png_rows, to_host
from imaging.png import PngSettings, write_png
from tests.conftest import png_filter_types


@pytest.fixture(scope="module")
def cutout() -> np.ndarray:
    """A photo-like RGBA cut-out: noise colour, a soft disc of alpha, 40 % fully transparent."""
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:60, :80]
    distance = np.hypot(yy - 30, xx - 40)
    alpha = np.clip((26 - distance) * 40, 0, 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def _decode(data: bytes) -> tuple[str, np.ndarray]:
    image = Image.open(io.BytesIO(data))
    return image.format, np.asarray(image)


def test_png_zeroes_invisible_colour_and_is_otherwise_lossless(cutout):
    fmt, pixels = _decode(encode_png(cutout))
    assert fmt == "PNG"
    visible = cutout[..., 3] > 0
    assert np.array_equal(pixels[visible], cutout[visible])
    assert not pixels[~visible].any()
    assert np.array_equal(pixels, zero_invisible(cutout))
    assert np.array_equal(_decode(encode_png(cutout, keep_invisible_rgb=True))[1], cutout)


@pytest.mark.parametrize("writer, filter_type", [("compact", 4), ("fast", 2)])
def test_rgb_and_rgba_png_come_from_our_writer(cutout, writer, filter_type):
    png = PngSettings(writer=writer)
    for pixels in (cutout, cutout[..., :3]):
        data = encode_image(pixels, OutputOptions(), png).data
        assert data == write_png(zero_invisible(pixels), writer)
        assert png_filter_types(data) == {filter_type}
        assert np.array_equal(_decode(data)[1], zero_invisible(pixels))


def test_zero_invisible_takes_any_layout_of_rgba(cutout):
    for pixels in (cutout[:, ::3], cutout[::2].transpose(1, 0, 2), np.asfortranarray(cutout)):
        zeroed = zero_invisible(pixels)
        visible = pixels[..., 3] > 0
        assert zeroed.shape == pixels.shape and np.array_equal(zeroed[visible], pixels[visible])
        assert not zeroed[~visible].any()


@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("writer", ["compact", "fast"])
def test_a_png_filtered_on_the_device_decodes_to_the_host_written_pixels(cutout, writer, keep):
    """PNG_FILTER_ON_DEVICE: the still leaves the device as its filtered rows (the invisible colour zeroed
    there unless kept); its file decodes to the pixels the host path writes, RGB, RGBA and grey alike."""
    options = OutputOptions(keep_invisible_rgb=keep)
    png = PngSettings(writer=writer, filter_on_device=True)
    for pixels in (cutout, np.ascontiguousarray(cutout[..., :3]), np.ascontiguousarray(cutout[..., 3])):
        from_device = to_host(png_rows(torch.from_numpy(pixels), options, png))
        data = encode_image(from_device, options, png).data
        assert np.array_equal(_decode(data)[1], _decode(encode_image(pixels, options, png).data)[1])
        if pixels.ndim == 3:
            assert png_filter_types(data) == {4 if writer == "compact" else 2}


def test_grey_png_keeps_pillows_encoder(cutout):
    matte = np.ascontiguousarray(cutout[..., 3])
    fmt, pixels = _decode(encode_image(matte, OutputOptions()).data)
    assert fmt == "PNG" and pixels.dtype == np.uint8 and np.array_equal(pixels, matte)


def test_png_zeroing_makes_it_smaller(cutout):
    assert len(encode_png(cutout)) < 0.8 * len(encode_png(cutout, keep_invisible_rgb=True))


@pytest.mark.parametrize("shape", [(60, 80), (60, 80, 3)])
def test_png_grey_and_rgb(cutout, shape):
    pixels = cutout[..., 0] if len(shape) == 2 else cutout[..., :3]
    assert np.array_equal(_decode(encode_image(pixels, OutputOptions()).data)[1], pixels)


def test_webp_lossless_keeps_alpha_and_visible_colour(cutout):
    encoded = encode_image(cutout, OutputOptions(format="webp"))
    assert (encoded.content_type, encoded.extension) == ("image/webp", "webp")
    fmt, pixels = _decode(encoded.data)
    assert fmt == "WEBP" and np.array_equal(pixels, zero_invisible(cutout))
    kept = encode_image(cutout, OutputOptions(format="webp", keep_invisible_rgb=True)).data
    assert np.array_equal(_decode(kept)[1], cutout)


def test_webp_quality_is_lossy_and_smaller(cutout):
    lossless = encode_image(cutout, OutputOptions(format="webp")).data
    lossy = encode_image(cutout, OutputOptions(format="webp", quality=50)).data
    pixels = _decode(lossy)[1]
    assert len(lossy) < len(lossless)
    assert pixels.shape == cutout.shape
    assert np.abs(pixels[..., 3].astype(int) - cutout[..., 3]).mean() < 1  # alpha stays lossless by default


def test_jpg_refuses_transparency_and_writes_opaque_pixels(cutout):
    with pytest.raises(ValueError, match="'jpg' has no transparency"):
        encode_image(cutout, OutputOptions(format="jpg"))
    smooth = np.tile(np.linspace(0, 255, 80, dtype=np.uint8)[None, :, None], (60, 1, 3))
    encoded = encode_image(smooth, OutputOptions(format="jpg"))
    fmt, pixels = _decode(encoded.data)
    assert (fmt, encoded.content_type, encoded.extension) == ("JPEG", "image/jpeg", "jpg")
    assert np.abs(pixels.astype(int) - smooth).mean() < 2
    assert len(encode_image(smooth, OutputOptions(format="jpg", quality=20)).data) < len(encoded.data)
    assert _decode(encode_image(smooth[..., 0], OutputOptions(format="jpg")).data)[1].ndim == 2  # a matte


def test_gif_still_has_one_bit_alpha(cutout):
    encoded = encode_image(cutout, OutputOptions(format="gif"))
    image = Image.open(io.BytesIO(encoded.data))
    assert image.format == "GIF" and getattr(image, "n_frames", 1) == 1 and "loop" not in image.info
    rgba = np.asarray(image.convert("RGBA"))
    assert np.array_equal(rgba[..., 3] == 255, cutout[..., 3] >= 128)
    assert set(np.unique(rgba[..., 3])) <= {0, 255}
