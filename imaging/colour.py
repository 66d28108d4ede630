"""OpenCV's colour conversions where their rounding reaches a result, reproduced with torch ops.

`cv2_gray_float32`: cv2.cvtColor(bgr, COLOR_BGR2GRAY) of a float32 image (imgproc color_rgb.simd.hpp,
RGB2Gray<float>, coefficients 0.299 / 0.587 / 0.114 as float32), bit for bit. Which of two orders
of fused multiply-adds a pixel gets was measured against opencv-python 5.0.0 on an AVX2 machine
(BENCHMARKS.md, "OpenCV reproductions": 0 of 724,500 values differ), one row at a time:
  - the vector loop, 8 pixels a step: fma(R, 0.299, fma(B, 0.114, G * 0.587));
  - the last W % 8 pixels of a row: the same, except that when 4 or more are left, the first and
    third of them get fma(R, 0.299, fma(G, 0.587, B * 0.114)) (the compiled scalar loop's order).
A fused multiply-add is one rounding of the exact a * b + c. Here the product is exact in float64
(24 + 24 bits); the sum is rounded to float64 with round-to-odd (its exact error from TwoSum decides),
which makes the final rounding to float32 the single correct one: plain float64 rounding would round
twice and land on the wrong neighbour when the exact sum lies just off a float32 midpoint
(tests/imaging/test_colour.py holds such pixels).
"""
from __future__ import annotations

import torch

_GREY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).tolist()  # R, G, B as float32
_OPENCV_SIMD_PIXELS = 8  # v_float32 lanes of the AVX2 build


def _fma(a: torch.Tensor, b: float, c: torch.Tensor) -> torch.Tensor:
    """float32 fma(a, b, c), correctly rounded, of float64 tensors holding float32 values."""
    product = a * b  # exact
    total = product + c
    # TwoSum: the exact rounding error of that sum
    c_part = total - product
    error = (product - (total - c_part)) + (c - c_part)
    # round to odd: an inexact sum whose last bit is even moves one float64 ulp toward the exact value
    even = (total.view(torch.int64) & 1) == 0
    toward = torch.where(error > 0, torch.inf, -torch.inf).to(total.dtype)
    total = torch.where((error != 0) & even, torch.nextafter(total, toward), total)
    return total.float().double()


def _scalar_order_columns(width: int, device: torch.device) -> torch.Tensor:
    """The columns of a row that get the scalar loop's order: the 1st and 3rd of a tail of >= 4."""
    tail_start = width - width % _OPENCV_SIMD_PIXELS
    if width - tail_start < 4:
        return torch.zeros(width, dtype=torch.bool, device=device)
    column = torch.arange(width, device=device)
    return (column == tail_start) | (column == tail_start + 2)


def cv2_gray_float32(rgb: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] float32 RGB planes -> [..., H, W] float32 grey, as OpenCV's BGR2GRAY of that image."""
    wr, wg, wb = _GREY_WEIGHTS
    r, g, b = (plane.double() for plane in rgb.unbind(-3))
    vector = _fma(r, wr, _fma(b, wb, (g * wg).float().double()))
    scalar = _fma(r, wr, _fma(g, wg, (b * wb).float().double()))
    return torch.where(_scalar_order_columns(rgb.shape[-1], rgb.device), scalar, vector).float()
