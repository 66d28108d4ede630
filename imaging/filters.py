"""OpenCV's GaussianBlur and erode as facexlib's paste-back calls them, in torch on the tensor's device.

facexlib blurs a float64 face mask with cv2.GaussianBlur(mask, (101, 101), 11) twice; its uint8 result
truncates a float64 blend, so a mask off by one ulp flips output pixels, and the blur is reproduced
bit for bit (checked against opencv-python 5.0.0, the build the face-align oracle was made with):

  kernel  getGaussianKernel -> getGaussianKernelBitExact (imgproc/src/smooth.dispatch.cpp): softfloat
          arithmetic, which is IEEE double arithmetic, except its exp, OpenCV's own table-and-polynomial
          f64_exp (core/src/softfloat.cpp), reproduced in `_softfloat_exp`. sigma <= 0 takes the fixed
          tables for 1..9 taps and sigma = 0.15 n + 0.35 (one fused multiply-add) otherwise.
  rows    RowFilter (imgproc/src/filter.simd.hpp): each output sums its taps in order,
          s = k0*x0, s += kj*xj. The AVX2 build contracts the += into FMA in the 4-wide unrolled loop;
          the last width % 4 columns of a row take the plain loop.
  columns SymmColumnFilter: s = k_c*x_c, then s += k_j*(x_{c+j} + x_{c-j}) for j = 1..r, no FMA.
  border  BORDER_REFLECT_101 (GaussianBlur's default).
float32 images follow the same order with float32 taps (the facexlib path without parsing uses it);
that path is not bit-checked.
"""
from __future__ import annotations

import math
import struct
from fractions import Fraction
from functools import lru_cache

import torch
import torch.nn.functional as F

from imaging.exact import fma_scalar

# core/src/softfloat.cpp f64_exp: 2^(i/64) table, scaled polynomial, EXPTAB_SCALE 6.
_EXPTAB_SCALE = 6


def _from_bits(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


_EXPPOLY_A0 = _from_bits(0x3F83CE0F3E46F431)
_EXP_PRESCALE = _from_bits(0x3FF71547652B82FE) * float(1 << _EXPTAB_SCALE)  # 64 / ln 2
_EXP_POSTSCALE = 1.0 / (1 << _EXPTAB_SCALE)
_EXP_MAX = 3000.0 * (1 << _EXPTAB_SCALE)
_EXP_POLY = tuple(_from_bits(b) / _EXPPOLY_A0 for b in (
    0x3F55E7AA1566C2A4, 0x3F83B2A72B4F3CD3, 0x3FAC6B08D81FEC75, 0x3FCEBFBDFF82A45A, 0x3FE62E42FEFA39F1,
    0x3FF0000000000000))  # A0..A5


@lru_cache(maxsize=1)
def _exp_table() -> tuple[float, ...]:
    """2^(i/64), i = 0..63, correctly rounded (the values of softfloat.cpp's expTab)."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 50
        return tuple(float(Decimal(2) ** (Decimal(i) / 64)) for i in range(64))


def _softfloat_exp(x: float) -> float:
    """OpenCV's softdouble exp(x), in its order of double operations."""
    exponent = (struct.unpack("<Q", struct.pack("<d", x))[0] >> 52) & 0x7FF
    x0 = math.copysign(_EXP_MAX, x) if exponent > 1023 + 10 else x * _EXP_PRESCALE
    k = round(x0)  # cvRound: halves to even, as Python's round
    scale = _from_bits(min(max((k >> _EXPTAB_SCALE) + 1023, 0), 2047) << 52)
    x0 = (x0 - float(round(x0))) * _EXP_POSTSCALE
    a0, a1, a2, a3, a4, a5 = _EXP_POLY
    poly = ((((a0 * x0 + a1) * x0 + a2) * x0 + a3) * x0 + a4) * x0 + a5
    return scale * _EXPPOLY_A0 * _exp_table()[k & ((1 << _EXPTAB_SCALE) - 1)] * poly


_SMALL_GAUSSIANS = {1: (1.0,), 3: (0.25, 0.5, 0.25), 5: (0.0625, 0.25, 0.375, 0.25, 0.0625),
                    7: (0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125),
                    9: tuple(v / 256 for v in (4, 13, 30, 51, 60, 51, 30, 13, 4))}


@lru_cache(maxsize=64)
def gaussian_kernel(size: int, sigma: float) -> tuple[float, ...]:
    """cv2.getGaussianKernel(size, sigma, CV_64F), bit for bit."""
    if sigma <= 0 and size in _SMALL_GAUSSIANS:
        return _SMALL_GAUSSIANS[size]
    # mulAdd(n, 0.15, 0.35) is fused: the exact value, rounded once
    sigma = sigma if sigma > 0 else float(Fraction(size) * Fraction(0.15) + Fraction(0.35))
    scale = -0.125 / (sigma * sigma)  # x runs over 1-n, 3-n, ...: twice the offset, hence 1/8
    half = (size - 1) // 2
    values = [_softfloat_exp(float((1 - size + 2 * i) ** 2) * scale) for i in range(half)]
    total = 0.0
    for value in values:
        total += value
    total = total * 2.0 + 1.0
    if size % 2 == 0:
        total += 1.0
    inverse = 1.0 / total
    kernel = [v * inverse for v in values]
    centre = [1.0 * inverse] * (2 - size % 2)
    return tuple(kernel + centre + kernel[::-1])


def reflect101_index(length: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source indices of a row padded by `pad` on each side with BORDER_REFLECT_101 (borderInterpolate)."""
    index = torch.arange(-pad, length + pad, device=device)
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * (length - 1)
    index = index.remainder(period)
    return torch.where(index >= length, period - index, index)


def _row_pass(x: torch.Tensor, kernel: tuple[float, ...]) -> torch.Tensor:
    """Along the last dim. Run on the transposed tensor, so that every tap is a slice of whole rows."""
    size, width = len(kernel), x.shape[-1]
    padded = x[..., reflect101_index(width, size // 2, x.device)].transpose(-1, -2).contiguous()
    if x.dtype != torch.float64:
        acc = padded[..., :width, :] * kernel[0]
        for j in range(1, size):
            acc = fma_scalar(kernel[j], padded[..., j:j + width, :], acc)
        return acc.transpose(-1, -2)
    fused_width = width - width % 4  # OpenCV's unrolled (contracted) loop; the rest is the plain loop
    acc = padded[..., :fused_width, :] * kernel[0]
    tail = padded[..., fused_width:width, :] * kernel[0]
    for j in range(1, size):
        acc = fma_scalar(kernel[j], padded[..., j:j + fused_width, :], acc)
        tail = tail + kernel[j] * padded[..., j + fused_width:j + width, :]
    return torch.cat((acc, tail), dim=-2).transpose(-1, -2)


def _symmetric_column_pass(x: torch.Tensor, kernel: tuple[float, ...]) -> torch.Tensor:
    size, height = len(kernel), x.shape[-2]
    radius = size // 2
    padded = x[..., reflect101_index(height, radius, x.device), :]
    acc = padded[..., radius:radius + height, :] * kernel[radius]
    pair = torch.empty_like(acc)
    for j in range(1, radius + 1):
        torch.add(padded[..., radius + j:radius + j + height, :], padded[..., radius - j:radius - j + height, :], out=pair)
        if x.dtype == torch.float64:  # two roundings, as OpenCV's double loop (no FMA)
            acc.add_(pair.mul_(kernel[radius + j]))
        else:
            acc = fma_scalar(kernel[radius + j], pair, acc)
    return acc


def gaussian_blur(x: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """cv2.GaussianBlur(x, (size, size), sigma) of float64 (bit-exact) or float32 [..., H, W]."""
    kernel = gaussian_kernel(size, sigma)
    if x.dtype == torch.float32:  # float32 images get float32 taps
        kernel = tuple(torch.tensor(kernel).float().tolist())
    if size == 1:
        return x.clone()
    return _symmetric_column_pass(_row_pass(x, kernel), kernel)


def dilate(x: torch.Tensor, size: int) -> torch.Tensor:
    """cv2.dilate(x, np.ones((size, size))) of float [..., H, W]: the maximum over a size x size window
    anchored at its centre (size // 2 for even sizes); outside the image does not count (OpenCV's
    default border value for dilation is -inf, as max_pool2d's padding). size <= 1 leaves x unchanged.

    Separable (a square's maximum is a row maximum, then a column maximum): 2 size reads per pixel
    instead of size^2, which matters for carvekit's 61x61 trimap dilation at 12 MP. An even size,
    padded by size // 2 on both sides, gives one output too many at the end: dropped.
    """
    if size <= 1:
        return x.clone()
    height, width = x.shape[-2:]
    half = size // 2
    rows = F.max_pool2d(x.reshape(-1, 1, height, width), (1, size), stride=1, padding=(0, half))[..., :width]
    return F.max_pool2d(rows, (size, 1), stride=1, padding=(half, 0))[..., :height, :].reshape(x.shape)


def erode(x: torch.Tensor, size: int) -> torch.Tensor:
    """cv2.erode(x, np.ones((size, size))) of float [..., H, W]: the minimum over the window `dilate`
    takes; outside the image does not count (OpenCV's default border value for erosion is +inf)."""
    return -dilate(-x, size)
