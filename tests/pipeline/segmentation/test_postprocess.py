"""Full-size alpha and the cut-out's pixels."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from imaging.decode import DecodedImage
from imaging.output import cutout, to_host
from pipeline.segmentation.postprocess import full_size_alpha


def _image(height: int, width: int) -> DecodedImage:
    rgb = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return DecodedImage(rgb, None, "PNG")


def test_full_size_alpha_is_the_bilinear_matte_rounded_to_8_bits():
    matte = torch.rand(1, 1, 32, 40, generator=torch.Generator().manual_seed(0))
    matte[0, 0, 0, :4] = torch.tensor([0.0, 1.0, 0.5 / 255, 254.5 / 255])
    image = _image(301, 411)
    expected = F.interpolate(matte, size=(301, 411), mode="bilinear", align_corners=False)[0, 0]
    expected = (expected * 255).round().clamp(0, 255).to(torch.uint8)
    assert torch.equal(full_size_alpha(matte, image), expected)
    assert torch.equal(full_size_alpha(matte, _image(32, 40)), (matte[0, 0] * 255).round().to(torch.uint8))
    assert matte[0, 0, 0, 0] == 0 and matte[0, 0, 0, 1] == 1  # the matte itself is left as it was


def test_transparent_cutout_is_one_contiguous_rgba_array():
    image = _image(37, 53)
    rgb = torch.from_numpy(image.rgb).permute(2, 0, 1)
    alpha = torch.randint(0, 256, (37, 53), dtype=torch.uint8)
    pixels = to_host(cutout(rgb, alpha, None))
    assert pixels.shape == (37, 53, 4) and pixels.flags.c_contiguous  # the encoder takes it without a copy
    assert np.array_equal(pixels[..., :3], image.rgb) and np.array_equal(pixels[..., 3], alpha.numpy())


def test_background_colour_cutout_is_contiguous_rgb():
    rgb = torch.from_numpy(_image(9, 7).rgb).permute(2, 0, 1)
    alpha = torch.zeros(9, 7, dtype=torch.uint8)
    pixels = to_host(cutout(rgb, alpha, "#00ff00"))
    assert pixels.shape == (9, 7, 3) and pixels.flags.c_contiguous
    assert (pixels == np.array([0, 255, 0], np.uint8)).all()
