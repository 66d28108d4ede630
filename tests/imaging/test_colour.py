"""OpenCV's float BGR2GRAY (imaging/colour.py) bit for bit, against a plain reference: every fused
multiply-add evaluated exactly with fractions and rounded once to float32, in the order OpenCV's AVX2
build uses for that column (measured against opencv-python 5.0.0: BENCHMARKS.md, "OpenCV
reproductions"): fma(R, .299, fma(B, .114, G * .587)) in the 8-pixel vector loop; in the last W % 8
pixels of a row, when 4 or more are left, the 1st and 3rd get fma(R, .299, fma(G, .587, B * .114))."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

from imaging.colour import cv2_gray_float32

WR, WG, WB = (float(np.float32(w)) for w in (0.299, 0.587, 0.114))


def round_to_float32(x: Fraction) -> float:
    """The float32 nearest to the exact value x, ties to an even mantissa."""
    guess = np.float32(float(x))  # within one float32 of the answer (float() rounds once already)
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    return float(min(candidates, key=lambda c: (abs(Fraction(float(c)) - x), int(c.view(np.uint32)) & 1)))


def fma32(a: float, b: float, c: float) -> float:
    return round_to_float32(Fraction(a) * Fraction(b) + Fraction(c))


def mul32(a: float, b: float) -> float:
    return round_to_float32(Fraction(a) * Fraction(b))


def vector_order(r: float, g: float, b: float) -> float:
    return fma32(r, WR, fma32(b, WB, mul32(g, WG)))


def scalar_order(r: float, g: float, b: float) -> float:
    return fma32(r, WR, fma32(g, WG, mul32(b, WB)))


def scalar_order_columns(width: int) -> set[int]:
    tail_start = width - width % 8
    return {tail_start, tail_start + 2} if width - tail_start >= 4 else set()


def reference(rgb: torch.Tensor) -> torch.Tensor:
    """[3, H, W] float32 -> [H, W], one pixel at a time."""
    _, height, width = rgb.shape
    scalar = scalar_order_columns(width)
    out = torch.empty(height, width, dtype=torch.float32)
    for y in range(height):
        for x in range(width):
            order = scalar_order if x in scalar else vector_order
            out[y, x] = order(*(float(v) for v in rgb[:, y, x]))
    return out


# Pixels whose exact sum lies within 2^-53 (relative) of a float32 midpoint, found by search (R, G, B are
# float32 values): R * .299 + float32(G * .587) in a vector column, G * .587 + float32(B * .114) in a
# scalar one (the other term is 0, so exact).
DOUBLE_ROUNDING_VECTOR = (float.fromhex("0x1.0000fap-1"), float.fromhex("0x1.1e3a46p-44"), 0.0)
DOUBLE_ROUNDING_SCALAR = (0.0, float.fromhex("0x1.022c76p-1"), float.fromhex("0x1.0cea2cp-34"))


def test_grey_is_opencvs_fma_order_bit_for_bit():
    generator = torch.Generator().manual_seed(0)
    for width in (1, 3, 4, 7, 8, 12, 13, 15, 37):  # tails of 0..7 pixels, with and without the scalar order
        rgb = torch.rand(3, 4, width, generator=generator)
        rgb[:, 0, width // 2] = 1.0  # saturated pixels, as in photos
        grey = cv2_gray_float32(rgb)
        assert grey.dtype == torch.float32 and grey.shape == (4, width)
        assert torch.equal(grey, reference(rgb)), width


def test_fused_multiply_adds_round_once():
    """Pixels whose exact sum lies just off a float32 midpoint: rounding it to float64 first and then
    to float32 (two roundings) gives the neighbour one float32 ulp away."""
    rgb = torch.zeros(3, 1, 12)  # 12 = one vector step and a tail of 4: columns 8 and 10 are scalar
    rgb[:, 0, 0] = torch.tensor(DOUBLE_ROUNDING_VECTOR)
    rgb[:, 0, 8] = torch.tensor(DOUBLE_ROUNDING_SCALAR)
    grey = cv2_gray_float32(rgb)[0]
    assert torch.equal(grey, reference(rgb)[0])
    (r, g, b), (r8, g8, b8) = DOUBLE_ROUNDING_VECTOR, DOUBLE_ROUNDING_SCALAR
    assert float(grey[0]) != float(np.float32(r * WR + (b * WB + float(np.float32(g * WG)))))
    assert float(grey[8]) != float(np.float32(r8 * WR + (g8 * WG + float(np.float32(b8 * WB)))))


def test_a_swapped_order_would_be_seen():
    """On ordinary pixels the two orders often disagree, so each column's order shows in the output."""
    rgb = torch.rand(3, 64, 12, generator=torch.Generator().manual_seed(2))
    grey = cv2_gray_float32(rgb)
    pixels = {(y, x): tuple(float(v) for v in rgb[:, y, x]) for y in range(64) for x in range(12)}
    scalar_columns_off = sum(float(grey[y, x]) != vector_order(*p) for (y, x), p in pixels.items() if x in (8, 10))
    vector_columns_off = sum(float(grey[y, x]) != scalar_order(*p) for (y, x), p in pixels.items() if x not in (8, 10))
    assert scalar_columns_off > 3 and vector_columns_off > 10


def test_leading_dimensions_are_kept():
    assert cv2_gray_float32(torch.rand(2, 3, 4, 12)).shape == (2, 4, 12)
