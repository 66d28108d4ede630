"""OpenCV's colour conversions where their rounding reaches a result, reproduced with torch ops.

`cv2_gray_float32`: cv2.cvtColor(bgr, COLOR_BGR2GRAY) of a float32 image (imgproc color_rgb.simd.hpp,
RGB2Gray<float>, coefficients 0.299 / 0.587 / 0.114 as float32), bit for bit. Which of two orders
of fused multiply-adds a pixel gets was measured against opencv-python 5.0.0 on an AVX2 machine
(figures in notes/esrgan.md), one row at a time:
  - the vector loop, 8 pixels a step: fma(R, 0.299, fma(B, 0.114, G * 0.587));
  - the last W % 8 pixels of a row: the same, except that when 4 or more are left, the first and
    third of them get fma(R, 0.299, fma(G, 0.587, B * 0.114)) (the compiled scalar loop's order).
A fused multiply-add is one rounding of the exact a * b + c: the product is exact in float64
(24 + 24 bits) and the sum is rounded to float64, then to float32 (a double rounding, off only when
the exact sum lies within 2^-53 of a float32 midpoint).
"""
from __future__ import annotations

import torch

_GREY_WEIGHTS = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32).tolist()  # R, G, B as float32
_OPENCV_SIMD_PIXELS = 8  # v_float32 lanes of the AVX2 build


def _fma(a: torch.Tensor, b: float, c: torch.Tensor) -> torch.Tensor:
    """float32 fma(a, b, c) of float64 tensors holding float32 values."""
    return (a * b + c).float().double()


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
