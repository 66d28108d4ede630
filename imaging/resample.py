"""Pillow's and OpenCV's resizes, reproduced bit for bit with torch ops on the tensor's device.

carvekit's recipes resize with Pillow on 8-bit images and with cv2.resize on float images; the
wrappers (pipeline/carvekit/cascadepsp.py, pipeline/carvekit/fba_matting.py) run those steps on the GPU with these.

Pillow 13, 8-bit images (Resample.c, Reduce.c, Image.thumbnail):
  `pil_bicubic_resize`     Image.resize(size, BICUBIC, box): fixed-point taps with 22 fractional bits, int32
                   sums, two separable passes each rounded to 8 bits (vertical first when the height
                   shrinks by more than twice as many pixels as the width, Pillow 13's rule).
  `pil_reduce`     Image.reduce(factor): block means, partial blocks at the far edges.
  `pil_thumbnail`  Image.thumbnail((n, n)) (BICUBIC, reducing_gap 2.0): `reduce` first when that
                   leaves >= 2x to the bicubic resize; `thumbnail_size` gives its size.
OpenCV (resizeGeneric_ path):
  `cv2_resize_lanczos4`  INTER_LANCZOS4 of float64 (float32 taps summed in float64), uint8 (11-bit
                         fixed-point taps, exact int sums, one rounding shift) or uint16 (float32).
  `cv2_resize_linear`    float32 INTER_LINEAR.
MATLAB (imresize.m, as BasicSR's data scripts and its Python port basicsr/utils/matlab_functions.py use it):
  `matlab_resize`        imresize(im2double(x), scale, 'bicubic') (antialiased when shrinking) in float64,
                         written back as uint8 as im2uint8: the super-resolution papers' bicubic
                         degradation and baseline.

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


@lru_cache(maxsize=128)
def _resident(table_fn, args: tuple, device: torch.device) -> tuple[torch.Tensor, ...]:
    """A tap table kept on the device it is used on: built once on the CPU, copied once (copying it
    on every pass would stall the GPU for a host-to-device transfer each time)."""
    return tuple(t.to(device) for t in table_fn(*args))


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
    index, taps = _resident(_pil_bicubic_taps, (x.shape[dim], in0, in1, out_size), x.device)
    half = torch.full((), 1 << (_PIL_PRECISION_BITS - 1), dtype=torch.int32, device=x.device)
    return (_tap_sum(x, dim, index, taps, half) >> _PIL_PRECISION_BITS).clamp_(0, 255)


def pil_bicubic_resize(
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
        return pil_bicubic_resize(pil_reduce(x, (fx, fy)), size, box=(0, 0, width / fx, height / fy))
    return pil_bicubic_resize(x, size)


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
    return index, coeffs.double()  # float32 taps, summed in float64 as OpenCV does


# OpenCV's fixed-point resize of 8-bit images (INTER_RESIZE_COEF_BITS): taps are cvRound(c * 2^11) as
# int16, both passes are summed exactly in int, and the result is (sum + 2^21) >> 22 saturated to 8 bits.
_CV2_COEF_BITS = 11


def cv2_resize_lanczos4(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """cv2.resize(x, (w, h), interpolation=INTER_LANCZOS4) of float64, uint8 or uint16 [..., H, W].

    Same size is a copy; otherwise a horizontal then a vertical 8-tap pass (resizeGeneric_ with
    HResizeLanczos4 / VResizeLanczos4, edge pixels replicated):
      float64  each pass summed tap by tap in float64 (float32 taps promoted to double);
      uint8    taps rounded to 11-bit int16, int sums (exact, so the order is immaterial), one final
               rounding shift by 22 bits saturated to [0, 255];
      uint16   each pass summed tap by tap in float32, rounded half to even and saturated to 16 bits.
    """
    if tuple(size) == tuple(x.shape[-2:]):
        return x.clone()
    if x.dtype == torch.uint8:
        return _cv2_lanczos4_u8(x, size)
    work = {torch.float64: torch.float64, torch.uint16: torch.float32}.get(x.dtype)
    if work is None:
        raise TypeError(f"cv2_resize_lanczos4 takes float64, uint8 or uint16, not {x.dtype}")
    y = x.to(work)
    for dim, out in ((-1, size[1]), (-2, size[0])):
        index, coeffs = _resident(_cv2_lanczos4_taps, (y.shape[dim], out), y.device)
        y = _tap_sum(y, dim, index, coeffs.to(work))
    if x.dtype == torch.uint16:
        return y.round_().clamp_(0, 65535).to(torch.int32).to(torch.uint16)
    return y


def _cv2_lanczos4_u8(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    y = x.to(torch.int64)
    for dim, out in ((-1, size[1]), (-2, size[0])):
        index, coeffs = _resident(_cv2_lanczos4_taps, (y.shape[dim], out), y.device)
        # saturate_cast<short>(c * INTER_RESIZE_COEF_SCALE): cvRound, half to even like torch.round.
        fixed = (coeffs * (1 << _CV2_COEF_BITS)).round().to(torch.int64)
        y = _tap_sum(y, dim, index, fixed)
    half = 1 << (2 * _CV2_COEF_BITS - 1)
    return ((y + half) >> (2 * _CV2_COEF_BITS)).clamp_(0, 255).to(torch.uint8)


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
        x = _tap_sum(x, dim, *_resident(_cv2_linear_taps, (x.shape[dim], out, clamp_weights), x.device))
    return x


# --------------------------------------------------------------------------------------------------
# MATLAB: imresize(img, scale, 'bicubic') with its default antialiasing (imresize.m `contributions`).


def _matlab_cubic(x: torch.Tensor) -> torch.Tensor:
    """imresize.m's cubic kernel (Keys, a = -0.5), in its form and order of operations."""
    absx = x.abs()
    absx2, absx3 = absx.square(), absx.pow(3)
    inner = (1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2))
    return inner + outer


@lru_cache(maxsize=64)
def _matlab_bicubic_taps(in_size: int, out_size: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """imresize.m `contributions` along one axis: source indices [out, taps] (0-based, mirrored into the
    image) and float64 weights [out, taps]. Shrinking (scale < 1) widens the kernel by 1 / scale and
    scales it, which is MATLAB's antialiasing; the columns MATLAB drops for being all zero weigh 0 here."""
    shrinking = scale < 1
    kernel_width = 4.0 / scale if shrinking else 4.0
    x = torch.arange(1, out_size + 1, dtype=torch.float64)  # 1-based output coordinates
    u = x / scale + 0.5 * (1 - 1 / scale)  # the centre of output x in 1-based input coordinates
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    index = left[:, None] + torch.arange(taps, dtype=torch.float64)
    distance = u[:, None] - index
    weights = scale * _matlab_cubic(scale * distance) if shrinking else _matlab_cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # aux = [1:in_length, in_length:-1:1]; indices = aux(mod(indices - 1, length(aux)) + 1): a symmetric
    # mirror that repeats the edge pixel.
    mirror = torch.cat((torch.arange(in_size), torch.arange(in_size - 1, -1, -1)))
    return mirror[(index.long() - 1).remainder(2 * in_size)], weights


def matlab_resize_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """imresize's output size for a scale factor: ceil(scale * size)."""
    return math.ceil(height * scale), math.ceil(width * scale)


def to_uint8_matlab(x: torch.Tensor) -> torch.Tensor:
    """float values on the 0..255 scale -> uint8 as MATLAB converts: rounded half away from zero, saturated."""
    return x.clamp(0, 255).add_(0.5).floor_().to(torch.uint8)


def matlab_resize(x: torch.Tensor, scale: float) -> torch.Tensor:
    """MATLAB's `im2uint8(imresize(im2double(x), scale, 'bicubic'))` of uint8 [..., H, W] -> uint8
    [..., ceil(H * scale), ceil(W * scale)], on x's device; float64 x (0..255 scale) comes back float64,
    unrounded.

    The way BasicSR makes its LR sets and bicubic baselines (scripts/matlab_scripts/generate_bicubic_img.m:
    im2double, modcrop, imresize(img, 1 / up_scale, 'bicubic'), imwrite). The height is resized first,
    then the width (MATLAB's order for equal scales), both in float64 on the 0..255 scale (im2double's
    division by 255 and im2uint8's multiplication cancel), with no rounding in between; a uint8 result is
    rounded as im2uint8 (`to_uint8_matlab`). BasicSR's Python port (matlab_functions.imresize) is the same
    computation in float32.
    """
    if x.dtype not in (torch.uint8, torch.float64):
        raise TypeError(f"matlab_resize takes uint8 or float64, not {x.dtype}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a positive number, not {scale}")
    out_h, out_w = matlab_resize_size(*x.shape[-2:], scale)
    y = x.to(torch.float64)
    for dim, out in ((-2, out_h), (-1, out_w)):
        index, weights = _resident(_matlab_bicubic_taps, (y.shape[dim], out, float(scale)), y.device)
        y = _tap_sum(y, dim, index, weights)
    return to_uint8_matlab(y) if x.dtype == torch.uint8 else y


# --------------------------------------------------------------------------------------------------
# torch: F.interpolate(bilinear/bicubic, antialias=True) for any shrink ratio.

# PyTorch's CUDA antialias kernel keeps a window's taps in shared memory and refuses shrinks past
# about 190x on one axis ("Too much shared memory required"); an allowed panorama (200,000 x 300 to
# 1024 x 1024) reaches it. Past this ratio an axis is resized here instead, on every device alike.
MAX_NATIVE_SHRINK = 64.0


def _aa_filter(x: torch.Tensor, mode: str) -> torch.Tensor:
    """UpSampleKernel's antialias filters: triangle (bilinear) and Keys a = -0.5 (bicubic)."""
    x = x.abs()
    if mode == "bilinear":
        return (1 - x).clamp_min(0)
    a = -0.5
    inner = ((a + 2) * x - (a + 3)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, inner, torch.where(x < 2, outer, torch.zeros_like(x)))


@lru_cache(maxsize=16)
def _torch_aa_taps(in_size: int, out_size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """_compute_indices_weights_aa of UpSampleKernel.cpp (align_corners False): the source window of
    every output pixel and its normalised filter weights (float32; unused taps weigh 0)."""
    scale = in_size / out_size
    support = (2.0 if mode == "bilinear" else 4.0) * 0.5 * max(scale, 1.0)
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    center = scale * (torch.arange(out_size, dtype=torch.float64) + 0.5)
    xmin = (center - support + 0.5).trunc().clamp_min(0)
    xsize = (center + support + 0.5).trunc().clamp_max(in_size) - xmin
    taps = int(math.ceil(support)) * 2 + 1
    offsets = torch.arange(taps, dtype=torch.float64)
    weights = _aa_filter((offsets + xmin[:, None] - center[:, None] + 0.5) * invscale, mode)
    weights = torch.where(offsets < xsize[:, None], weights, torch.zeros_like(weights))
    total = weights.sum(dim=1, keepdim=True)
    weights = torch.where(total != 0, weights / total, weights)
    index = (xmin.long()[:, None] + offsets.long()).clamp_max(in_size - 1)
    return index, weights.float()


def antialiased_resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """F.interpolate(x, size, mode, align_corners=False, antialias=True) of float [B,C,H,W], also for
    shrinks torch's CUDA kernel refuses: an axis shrunk more than MAX_NATIVE_SHRINK times is resized
    first by the same filter as a sum over its taps (equal to torch's to float32 rounding)."""
    for dim, out in ((-1, size[1]), (-2, size[0])):
        if x.shape[dim] / out > MAX_NATIVE_SHRINK:
            index, weights = _resident(_torch_aa_taps, (x.shape[dim], out, mode), x.device)
            x = _tap_sum(x, dim, index, weights.to(x.dtype))
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
