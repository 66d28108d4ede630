"""Pillow's and OpenCV's resizes, reproduced bit for bit with torch ops on the tensor's device.

carvekit's recipes resize with Pillow on 8-bit images and with cv2.resize on float images; the
wrappers (carvekit/refine.py, carvekit/fba_matting.py) run those steps on the GPU with these.

Pillow 13, 8-bit images (Resample.c, Reduce.c, Image.thumbnail):
  `pil_resize`     Image.resize(size, BICUBIC, box): fixed-point taps with 22 fractional bits, int32
                   sums, two separable passes each rounded to 8 bits (vertical first when the height
                   shrinks by more than twice as many pixels as the width, Pillow 13's rule).
  `pil_reduce`     Image.reduce(factor): block means, partial blocks at the far edges.
  `pil_thumbnail`  Image.thumbnail((n, n)) (BICUBIC, reducing_gap 2.0): `reduce` first when that
                   leaves >= 2x to the bicubic resize; `thumbnail_size` gives its size.
OpenCV (resizeGeneric_ path):
  `cv2_resize_lanczos4`  float64 INTER_LANCZOS4 (float32 taps summed in float64).
  `cv2_resize_lanczos4_u8`  uint8 INTER_LANCZOS4 (taps in 11-bit fixed point, int sums, >> 22).
  `cv2_resize_linear`    float32 INTER_LINEAR.

Tap tables are built on the CPU in float64 (C doubles) and cached per size; each pass is a sum over
taps, one gather-multiply-add per tap in the C loops' order.
"""
from __future__ import annotations

import math
import struct
from functools import lru_cache

import torch
import torch.nn.functional as F

_PIL_PRECISION_BITS = 32 - 8 - 2  # Resample.c: 8-bit images use 22-bit fixed-point taps
_PIL_BICUBIC_SUPPORT = 2.0
_PIL_REDUCING_GAP = 2.0


def _f32(value: float) -> float:
    """Round a Python float (a C double) to float32, as a C (float) cast does."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _tap_sum(x: torch.Tensor, dim: int, index: torch.Tensor, weights: torch.Tensor,
             init: torch.Tensor | None = None) -> torch.Tensor:
    """sum_j x.index_select(dim, index[:, j]) * weights[:, j], added tap by tap from j = 0 onto `init`.

    One separate multiply and add per tap (never fused), so float sums round as the C loops do.
    Gathers whole rows (dim -2), which is several times faster than gathering along the last dim on
    the CPU, so a horizontal pass runs on the transposed tensor.
    """
    if dim == -1:
        x = x.transpose(-1, -2)
    x = x.contiguous()
    index, weights = index.to(x.device), weights.to(x.device)
    acc = init
    for j in range(index.shape[1]):
        term = x.index_select(-2, index[:, j]) * weights[:, j].view(-1, 1)
        acc = term if acc is None else acc + term
    return acc.transpose(-1, -2) if dim == -1 else acc


# --------------------------------------------------------------------------------------------------
# Pillow: Image.resize(size, BICUBIC, box), Image.reduce, Image.thumbnail on 8-bit images.


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    """Pillow's bicubic kernel (a = -0.5), evaluated in Resample.c's order of operations."""
    a = -0.5
    x = x.abs()
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1.0, inner, torch.where(x < 2.0, outer, torch.zeros_like(x)))


@lru_cache(maxsize=64)
def _pil_bicubic_taps(in_size: int, in0: float, in1: float, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample.c precompute_coeffs + normalize_coeffs_8bpc for the source box (in0, in1) along one axis.

    in0 and in1 are float32 values (the box reaches Resample.c as C floats). Returns CPU tensors: source
    indices [out, taps] (long) and fixed-point weights [out, taps] (int32); taps past a window's end
    weigh 0 and their index is only kept valid.
    """
    # (double)(in1 - in0): a float32 subtraction. Rounding the double difference to float32 gives the
    # same value (53 >= 2 * 24 + 2 bits, so double rounding is innocuous).
    scale = _f32(in1 - in0) / out_size
    filterscale = max(scale, 1.0)
    support = _PIL_BICUBIC_SUPPORT * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    center = in0 + (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale
    xmin = (center - support + 0.5).trunc().clamp_min(0)  # C's (int) truncates toward zero
    xmax = (center + support + 0.5).trunc().clamp_max(in_size)
    offsets = torch.arange(taps, dtype=torch.float64)
    k = _bicubic((offsets + xmin[:, None] - center[:, None] + 0.5) * (1.0 / filterscale))
    k = torch.where(offsets < (xmax - xmin)[:, None], k, torch.zeros_like(k))
    total = torch.zeros(out_size, dtype=torch.float64)
    for t in range(taps):  # summed tap by tap, in Resample.c's order, so the rounding below is identical
        total = total + k[:, t]
    k = torch.where(total[:, None] != 0, k / total[:, None], k)
    k = k * (1 << _PIL_PRECISION_BITS)
    fixed = torch.where(k < 0, (k - 0.5).trunc(), (k + 0.5).trunc()).to(torch.int32)
    index = (xmin.long()[:, None] + offsets.long()).clamp_max(in_size - 1)
    return index, fixed


def _pil_resample_axis(x: torch.Tensor, dim: int, in0: float, in1: float, out_size: int) -> torch.Tensor:
    """One 8-bit bicubic pass along `dim` of an int32 tensor: fixed-point sum, >> 22, clipped as clip8."""
    index, taps = _pil_bicubic_taps(x.shape[dim], in0, in1, out_size)
    half = torch.full((), 1 << (_PIL_PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    return (_tap_sum(x, dim, index, taps, half) >> _PIL_PRECISION_BITS).clamp_(0, 255)


def pil_resize(
    x: torch.Tensor, size: tuple[int, int], box: tuple[float, float, float, float] | None = None
) -> torch.Tensor:
    """Pillow's `Image.resize(size[::-1], BICUBIC, box)` of uint8 [..., H, W] -> uint8 [..., h, w], exactly.

    `size` is (height, width); `box` is Pillow's (left, upper, right, lower) source region, rounded to
    float32 as Pillow passes it to C. As in Resample.c, the two passes are separable, a pass is skipped
    when it is the identity, and the first is rounded to 8 bits before the second (int32 sums, as C's
    int). Pillow 13 runs the vertical pass first when the height shrinks by more than twice as many
    pixels as the width (python-pillow/Pillow#9549), the horizontal pass first otherwise.
    """
    height, width = x.shape[-2:]
    out_h, out_w = size
    box = (0, 0, width, height) if box is None else box
    left, upper, right, lower = (_f32(float(v)) for v in box)
    passes = []
    if out_w != width or left or right != out_w:
        passes.append((-1, left, right, out_w))
    if out_h != height or upper or lower != out_h:
        passes.append((-2, upper, lower, out_h))
    if not passes:
        return x.clone()
    if out_h < height and height - out_h > 2 * (width - out_w):
        passes.reverse()
    y = x.to(torch.int32)
    for dim, in0, in1, out in passes:
        y = _pil_resample_axis(y, dim, in0, in1, out)
    return y.to(torch.uint8).contiguous()


def pil_reduce(x: torch.Tensor, factor: tuple[int, int]) -> torch.Tensor:
    """Pillow's `Image.reduce((fx, fy))` of uint8 [..., H, W]: block means, partial blocks at the far edges.

    Reduce.c rounds every block of n pixels as ((sum + n // 2) * m) >> 24 with
    m = uint32(float32(2^32) / float32(256 n)) (its shift forms for n = 2, 4, 16 are the same).
    """
    fx, fy = factor
    height, width = x.shape[-2:]
    out_h, out_w = -(-height // fy), -(-width // fx)
    padded = F.pad(x.long(), (0, out_w * fx - width, 0, out_h * fy - height))
    sums = padded.reshape(*x.shape[:-2], out_h, fy, out_w, fx).sum(dim=(-3, -1))
    rows = (height - torch.arange(out_h, device=x.device) * fy).clamp_max(fy)
    cols = (width - torch.arange(out_w, device=x.device) * fx).clamp_max(fx)
    count = rows[:, None] * cols[None, :]
    multiplier = (torch.tensor(2.0**32, dtype=torch.float32, device=x.device) / (256 * count).float()).long()
    return (((sums + count // 2) * multiplier) >> 24).to(torch.uint8)


def thumbnail_size(height: int, width: int, max_size: int) -> tuple[int, int]:
    """The (height, width) Pillow's `thumbnail((max_size, max_size))` gives; unchanged if it fits."""
    if max_size >= width and max_size >= height:
        return height, width
    aspect = width / height
    x = y = max_size

    def round_aspect(number: float, key) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    if x / y >= aspect:
        x = round_aspect(y * aspect, key=lambda n: abs(aspect - n / y))
    else:
        y = round_aspect(x / aspect, key=lambda n: 0 if n == 0 else abs(aspect - x / n))
    return y, x


def pil_thumbnail(x: torch.Tensor, max_size: int) -> torch.Tensor:
    """Pillow's `Image.thumbnail((max_size, max_size))` (BICUBIC, reducing_gap=2.0) of uint8 [..., H, W].

    Returns `x` itself when it already fits.
    """
    height, width = x.shape[-2:]
    size = thumbnail_size(height, width, max_size)
    if size == (height, width):
        return x
    # Image.resize(reducing_gap=2): first an integer box reduction, if it leaves >= 2x to the resize.
    fx = int(width / size[1] / _PIL_REDUCING_GAP) or 1
    fy = int(height / size[0] / _PIL_REDUCING_GAP) or 1
    if fx > 1 or fy > 1:
        return pil_resize(pil_reduce(x, (fx, fy)), size, box=(0, 0, width / fx, height / fy))
    return pil_resize(x, size)


# --------------------------------------------------------------------------------------------------
# OpenCV: cv2.resize for float64 INTER_LANCZOS4 and float32 INTER_LINEAR (resizeGeneric_ path).

_S45 = 0.70710678118654752440084436210485
_LANCZOS_CS = ((1, 0), (-_S45, -_S45), (0, 1), (_S45, -_S45), (-1, 0), (_S45, _S45), (0, -1), (-_S45, _S45))


def _cv2_source_position(dst: int, scale: float) -> tuple[int, float]:
    # fx = (float)((dx + 0.5) * scale - 0.5); sx = cvFloor(fx); fx -= sx
    fx = _f32((dst + 0.5) * scale - 0.5)
    sx = math.floor(fx)
    return sx, _f32(fx - sx)


def _lanczos4_coeffs(x: float) -> list[float]:
    """imgproc interpolateLanczos4: float32 taps of the 8 source pixels sx-3..sx+4."""
    y0 = -_f32(x + 3) * math.pi * 0.25
    s0, c0 = math.sin(y0), math.cos(y0)
    coeffs = []
    total = 0.0
    for i in range(8):
        t = _f32(_f32(x + 3) - i)
        if abs(t) >= _f32(1e-6):
            y = -t * math.pi * 0.25
            coeffs.append(_f32((_LANCZOS_CS[i][0] * s0 + _LANCZOS_CS[i][1] * c0) / (y * y)))
        else:
            coeffs.append(_f32(1e30))  # x ~ 0 or ~1: normalisation makes it the only tap
        total = _f32(total + coeffs[-1])
    inv = _f32(1.0 / total)
    return [_f32(c * inv) for c in coeffs]


@lru_cache(maxsize=64)
def _cv2_lanczos4_taps(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    scale = 1.0 / (out_size / in_size)
    index = torch.empty(out_size, 8, dtype=torch.long)
    coeffs = torch.empty(out_size, 8, dtype=torch.float32)
    for dx in range(out_size):
        sx, fx = _cv2_source_position(dx, scale)
        # Pixels outside the source replicate the edge pixel.
        index[dx] = torch.arange(sx - 3, sx + 5).clamp_(0, in_size - 1)
        coeffs[dx] = torch.tensor(_lanczos4_coeffs(fx), dtype=torch.float32)
    return index, coeffs


def cv2_resize_lanczos4(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(x, (w, h), interpolation=INTER_LANCZOS4) of float64 [..., H, W].

    Same size is a copy; otherwise a horizontal then a vertical 8-tap pass, each summed tap by tap in
    float64 in OpenCV's order (float32 taps promoted to double).
    """
    if tuple(size) == tuple(x.shape[-2:]):
        return x.clone()
    for dim, out in ((-1, size[1]), (-2, size[0])):
        index, coeffs = _cv2_lanczos4_taps(x.shape[dim], out)
        x = _tap_sum(x, dim, index, coeffs.double())
    return x


_CV2_RESIZE_COEF_BITS = 11  # imgproc INTER_RESIZE_COEF_BITS: 8-bit images use 2048-scaled short taps


@lru_cache(maxsize=64)
def _cv2_lanczos4_fixed_taps(in_size: int, out_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    # saturate_cast<short>(cbuf[k] * INTER_RESIZE_COEF_SCALE): cvRound, halves to even like torch.round
    index, coeffs = _cv2_lanczos4_taps(in_size, out_size)
    return index, torch.round(coeffs * (1 << _CV2_RESIZE_COEF_BITS)).to(torch.int32)


def cv2_resize_lanczos4_u8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(x, (w, h), interpolation=INTER_LANCZOS4) of uint8 [..., H, W], exactly.

    OpenCV's 8-bit path: taps rounded to 11-bit fixed point, a horizontal pass into an int buffer,
    a vertical pass of int products, then (sum + 2^21) >> 22 saturated to 0..255. Same size is a copy.
    """
    if tuple(size) == tuple(x.shape[-2:]):
        return x.clone()
    y = x.to(torch.int32)
    y = _tap_sum(y, -1, *_cv2_lanczos4_fixed_taps(x.shape[-1], size[1]))
    shift = 2 * _CV2_RESIZE_COEF_BITS
    half = torch.full((), 1 << (shift - 1), dtype=torch.int32, device=x.device)
    y = _tap_sum(y, -2, *_cv2_lanczos4_fixed_taps(x.shape[-2], size[0]), init=half)
    return (y >> shift).clamp_(0, 255).to(torch.uint8)


@lru_cache(maxsize=64)
def _cv2_linear_taps(in_size: int, out_size: int, clamp_weights: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows/columns and float32 weights (1 - f, f) of OpenCV's INTER_LINEAR.

    Horizontally OpenCV moves positions left of the first pixel or right of the last onto that pixel
    with weights (1, 0) (`clamp_weights`); vertically it only clamps the row indices and keeps f.
    """
    scale = 1.0 / (out_size / in_size)
    index = torch.empty(out_size, 2, dtype=torch.long)
    weights = torch.empty(out_size, 2, dtype=torch.float32)
    for d in range(out_size):
        s, f = _cv2_source_position(d, scale)
        if clamp_weights and s < 0:
            s, f = 0, 0.0
        if clamp_weights and s >= in_size - 1:
            s, f = in_size - 1, 0.0
        index[d] = torch.tensor([s, s + 1]).clamp_(0, in_size - 1)
        weights[d] = torch.tensor([_f32(1.0 - f), f])
    return index, weights


def cv2_resize_linear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(x, (w, h)) (INTER_LINEAR) of float32 [..., H, W]: float32 arithmetic, OpenCV's order."""
    if tuple(size) == tuple(x.shape[-2:]):
        return x.clone()
    for dim, out, clamp_weights in ((-1, size[1], True), (-2, size[0], False)):
        x = _tap_sum(x, dim, *_cv2_linear_taps(x.shape[dim], out, clamp_weights))
    return x
