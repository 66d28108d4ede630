"""OpenCV's float BGR2GRAY (imaging/colour.py): BT.601 luma with OpenCV's float32 rounding."""
from __future__ import annotations

import torch

from imaging.colour import cv2_gray_float32


def test_grey_is_bt601_luma_to_float32_rounding():
    rgb = torch.rand(3, 5, 37, generator=torch.Generator().manual_seed(0))
    luma = 0.299 * rgb[0].double() + 0.587 * rgb[1].double() + 0.114 * rgb[2].double()
    grey = cv2_gray_float32(rgb)
    assert grey.dtype == torch.float32 and grey.shape == (5, 37)
    # each fused multiply-add rounds once: within two float32 ulps of the exact luma
    assert ((grey.double() - luma).abs() <= 2 * 2.0**-24 * luma.abs().clamp_min(2.0**-10)).all()


def test_equal_channels_keep_their_value_within_an_ulp():
    value = torch.rand(1, 4, 20, generator=torch.Generator().manual_seed(1))
    grey = cv2_gray_float32(value.expand(3, 4, 20))
    assert ((grey - value[0]).abs() <= 2.0**-23).all()


def test_leading_dimensions_are_kept():
    assert cv2_gray_float32(torch.rand(2, 3, 4, 12)).shape == (2, 4, 12)
